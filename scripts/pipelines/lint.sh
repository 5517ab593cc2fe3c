#!/usr/bin/env bash
# Runs one pipeline linter over a repository tree (default: this one) and
# exits non-zero on any finding. Offline: no tool here fetches anything.
#
#   scripts/pipelines/lint.sh TOOL [ROOT]
#
# TOOL is one of:
#   - actionlint: every .github/workflows file (with shellcheck on each run: script)
#   - zizmor:     workflows and dependabot config, --offline, every persona-default audit
#   - checkov:    --framework github_actions and gitlab_ci, --skip-download
#   - yamllint:   every YAML file outside Helm chart templates, --strict (.yamllint)
#   - shellcheck: the shell scripts under scripts/pipelines and scripts/release
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
project="$(cd "$here/../.." && pwd)"
tool="${1:?usage: lint.sh actionlint|zizmor|checkov|yamllint|shellcheck [ROOT]}"
root="$(cd "${2:-$project}" && pwd)"

bin="$("$project/scripts/tools/ensure-venv.sh")"
# actionlint finds shellcheck on PATH; the venv's pinned one comes first.
export PATH="$bin:$PATH"

workflows=()
while IFS= read -r -d '' f; do workflows+=("$f"); done \
  < <(find "$root/.github/workflows" -maxdepth 1 -type f \( -name '*.yml' -o -name '*.yaml' \) -print0 2>/dev/null | sort -z)
[[ ${#workflows[@]} -gt 0 ]] || { echo "lint: no workflows under $root/.github/workflows" >&2; exit 1; }

# YAML files the project owns: git's view when ROOT is a work tree (tracked and
# new files, minus .gitignore'd build output and tool caches), else a walk that
# prunes the same directories. Helm templates are Go templates, not YAML.
yaml_files() {
  if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$root" ls-files -z -co --exclude-standard -- '*.yml' '*.yaml' '.yamllint' \
      | while IFS= read -r -d '' f; do [[ -e "$root/$f" ]] && printf '%s\0' "$root/$f"; done
  else
    find "$root" \( -name .git -o -name '.build*' -o -name .tools -o -name .swiftpm -o -name node_modules \) -prune \
      -o -type f \( -name '*.yml' -o -name '*.yaml' -o -name .yamllint \) -print0
  fi | while IFS= read -r -d '' f; do
    [[ "$f" =~ /deploy/helm/[^/]+/templates/ ]] || printf '%s\0' "$f"
  done
}

case "$tool" in
  actionlint)
    cd "$root"
    actionlint -no-color -shellcheck="$(command -v shellcheck)" "${workflows[@]#"$root"/}"
    echo "actionlint: ${#workflows[@]} workflows, no findings"
    ;;
  zizmor)
    inputs=("${workflows[@]}")
    for f in "$root"/.github/dependabot.y*ml; do [[ -f "$f" ]] && inputs+=("$f"); done
    zizmor --offline --no-progress --color=never "${inputs[@]}"
    ;;
  checkov)
    files=("${workflows[@]}")
    [[ -f "$root/.gitlab-ci.yml" ]] && files+=("$root/.gitlab-ci.yml")
    # checkov lives in its own venv (its bc-python-hcl2 clashes with python-hcl2 in
    # the shared one); the project's installer for it prints the executable.
    installer="$project/scripts/tools/ensure-checkov.sh"
    [[ -x "$installer" ]] || { echo "lint: no checkov installer ($installer)" >&2; exit 1; }
    checkov="$("$installer")"
    # --skip-download (no policy download), and a failure for any file checkov skipped.
    "$bin/python" "$here/checkov_gate.py" "$checkov" "$root" "${files[@]}"
    ;;
  yamllint)
    files=()
    while IFS= read -r -d '' f; do files+=("$f"); done < <(yaml_files | sort -z)
    [[ ${#files[@]} -gt 0 ]] || { echo "yamllint: no YAML files found" >&2; exit 1; }
    yamllint --strict --format parsable -c "$root/.yamllint" "${files[@]}"
    echo "yamllint: ${#files[@]} YAML files, no findings"
    ;;
  shellcheck)
    scripts=()
    while IFS= read -r -d '' f; do scripts+=("$f"); done \
      < <(find "$root/scripts/pipelines" "$root/scripts/release" -type f -name '*.sh' -print0 2>/dev/null | sort -z)
    shellcheck -x "${scripts[@]}"
    echo "shellcheck: ${#scripts[@]} scripts, no findings"
    ;;
  *)
    echo "lint: unknown tool '$tool'" >&2
    exit 2
    ;;
esac
