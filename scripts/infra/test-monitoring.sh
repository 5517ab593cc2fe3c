#!/usr/bin/env bash
# Checks deploy/monitoring with real tools: promtool check/test rules, the
# dashboard's structure and runbook links, unit-test coverage of every alert
# (by mutating the rules), and a live Prometheus scraping real userapi
# processes (SQLite and PostgreSQL) that must return data for every
# expression of the dashboard and the rules.
#   USERAPI_BIN   userapi binary for the live test (default .build/debug/userapi;
#                 built with `swift build --product userapi` when missing)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
# No __pycache__ next to the scripts in the work tree.
export PYTHONDONTWRITEBYTECODE=1
# shellcheck source=scripts/infra/lib.sh
source "$here/lib.sh"

scripts/tools/ensure-apt.sh prometheus
venv_bin="$(scripts/tools/ensure-venv.sh)"
py="$venv_bin/python"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

rules=(deploy/monitoring/rules/*.yaml)
check "promtool check rules ${rules[*]}" promtool check rules "${rules[@]}"
# Negative control: promtool must reject a rule with a broken expression.
sed 's/sum by (namespace, job) (rate(http_requests_total/sum by (namespace, job) (rate(http_requests_total[/' \
  deploy/monitoring/rules/userapi-alerts.yaml >"$tmp/broken.yaml"
check_fails "negative control: promtool check rules rejects a broken expression" promtool check rules "$tmp/broken.yaml"
check "promtool test rules deploy/monitoring/tests/*.yaml" promtool test rules deploy/monitoring/tests/*.yaml
check "dashboard JSON, runbook links, alert test coverage" "$py" "$here/monitoring_checks.py" static

default_bin="$root/.build/debug/userapi"
bin="${USERAPI_BIN:-$default_bin}"
if [[ ! -x "$bin" && "$bin" == "$default_bin" ]] && command -v "${SWIFT:-swift}" >/dev/null; then
  echo "building $bin for the live test" >&2
  "${SWIFT:-swift}" build --product userapi >&2
fi
check "live Prometheus against userapi ($bin)" \
  env USERAPI_BIN="$bin" timeout 420 scripts/with-postgres.sh "$py" "$here/monitoring_checks.py" live

summary
