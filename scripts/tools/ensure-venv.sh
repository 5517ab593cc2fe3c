#!/usr/bin/env bash
# Creates (or refreshes) the project's Python tool environment in .tools/venv
# from scripts/tools/requirements-*.txt and prints its bin directory.
# Re-installs only when a requirements file changed. Nothing is installed
# outside the repository.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/.tools/venv"
stamp="$venv/.requirements.sha256"
reqs=("$root"/scripts/tools/requirements-*.txt)
want="$(cat "${reqs[@]}" | sha256sum | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv" >&2
fi
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  echo "tools: installing Python tools into .tools/venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
  args=()
  for r in "${reqs[@]}"; do args+=(-r "$r"); done
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${args[@]}" >&2
  echo "$want" > "$stamp"
fi
echo "$venv/bin"
