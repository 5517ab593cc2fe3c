#!/usr/bin/env bash
# Creates (or refreshes) .tools/venv-checkov from checkov-requirements.txt and
# prints the path of its checkov executable. A separate venv because checkov's
# bc-python-hcl2 and python-hcl2 (in the shared .tools/venv) both install a
# module named `hcl2`. Re-installs only when the requirements file changed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/.tools/venv-checkov"
stamp="$venv/.requirements.sha256"
req="$here/checkov-requirements.txt"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv" >&2
fi
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  echo "tools: installing checkov into .tools/venv-checkov" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
  echo "$want" > "$stamp"
fi
echo "$venv/bin/checkov"
