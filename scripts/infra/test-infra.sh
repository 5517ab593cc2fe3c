#!/usr/bin/env bash
# Offline checks of the infrastructure code: Terraform (python-hcl2, contract
# checks, checkov, terraform fmt), the k3s quick start (shellcheck, --dry-run,
# checksum verification) and, through test-monitoring.sh, the dashboard and
# alerts. Steps whose tool cannot work here are skipped with the reason.
#   INFRA_TF_VALIDATE=1   also run `terraform init -backend=false && terraform
#                         validate` (needs the Terraform registry, i.e. network)
#   INFRA_SKIP_MONITORING=1  leave out test-monitoring.sh (make test-monitoring runs it alone)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
# No __pycache__ next to the scripts in the work tree.
export PYTHONDONTWRITEBYTECODE=1
# shellcheck source=scripts/infra/lib.sh
source "$here/lib.sh"

venv_bin="$(scripts/tools/ensure-venv.sh)"
py="$venv_bin/python"
checkov="$("$here/../tools/ensure-checkov.sh")"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# ---------------------------------------------------------------- Terraform
check "terraform: python-hcl2 parse and contract checks" "$py" "$here/terraform_checks.py"

# checkov: zero failed checks with the skips of checkov-skips.yaml, and
# without them exactly the skipped checks fail (so no skip is stale).
skips_file=deploy/terraform/aws/checkov-skips.yaml
skip_ids="$("$py" - "$skips_file" <<'PY'
import sys, yaml
entries = yaml.safe_load(open(sys.argv[1])) or []
bad = [e for e in entries if not str(e.get("id", "")).strip() or not str(e.get("reason", "")).strip()]
if bad:
    sys.exit(f"every skip needs an id and a reason: {bad}")
print(",".join(sorted({e["id"] for e in entries})))
PY
)"
checkov_counts() {
  # Prints "passed failed skipped" and the failed ids of a checkov JSON report.
  "$py" - "$1" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
reports = data if isinstance(data, list) else [data]
s = {"passed": 0, "failed": 0, "skipped": 0}
ids = set()
for r in reports:
    for k in s:
        s[k] += r.get("summary", {}).get(k, 0)
    ids |= {c["check_id"] for c in r.get("results", {}).get("failed_checks", [])}
print(s["passed"], s["failed"], s["skipped"], ",".join(sorted(ids)))
PY
}
run_checkov() {
  local dir="$1" report="$2"
  shift 2
  "$checkov" -d "$dir" --framework terraform --skip-download --quiet --compact -o json "$@" >"$report" 2>"$report.log" || true
}
run_checkov deploy/terraform "$tmp/checkov.json" ${skip_ids:+--skip-check "$skip_ids"}
read -r ck_pass ck_fail _ ck_ids < <(checkov_counts "$tmp/checkov.json")
check "checkov --skip-download deploy/terraform: 0 failed (passed $ck_pass, failed $ck_fail${ck_ids:+: $ck_ids}; skipped by $skips_file: ${skip_ids:-none})" \
  test "$ck_fail" -eq 0 -a "$ck_pass" -gt 0
run_checkov deploy/terraform "$tmp/checkov-noskip.json"
read -r _ _ _ noskip_ids < <(checkov_counts "$tmp/checkov-noskip.json")
check "checkov without skips fails exactly on the skipped checks (${noskip_ids:-none})" test "$noskip_ids" = "$skip_ids"
mkdir -p "$tmp/insecure"
cat >"$tmp/insecure/main.tf" <<'TF'
resource "aws_security_group" "open" {
  name = "open"
  ingress {
    from_port   = 22
    to_port     = 22
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
}
resource "aws_db_instance" "db" {
  engine              = "postgres"
  instance_class      = "db.t4g.micro"
  publicly_accessible = true
}
TF
run_checkov "$tmp/insecure" "$tmp/checkov-insecure.json"
read -r _ bad_fail _ _ < <(checkov_counts "$tmp/checkov-insecure.json")
check "negative control: checkov fails an open security group and a public database ($bad_fail failed)" test "$bad_fail" -gt 0

if command -v terraform >/dev/null; then
  # An empty CLI config and no checkpoint call: fmt needs no network.
  : >"$tmp/terraformrc"
  tf() { CHECKPOINT_DISABLE=1 TF_CLI_CONFIG_FILE="$tmp/terraformrc" TF_IN_AUTOMATION=1 terraform "$@"; }
  check "terraform fmt -check -recursive deploy/terraform ($(tf version | head -n 1))" tf fmt -check -recursive -diff deploy/terraform
  mkdir -p "$tmp/unformatted"
  printf 'variable "x" {\ntype=string\n}\n' >"$tmp/unformatted/main.tf"
  check_fails "negative control: terraform fmt -check rejects unformatted code" tf fmt -check "$tmp/unformatted"
  if [[ "${INFRA_TF_VALIDATE:-0}" == "1" ]]; then
    check "terraform init -backend=false && terraform validate" \
      env TF_DATA_DIR="$tmp/tfdata" bash -c 'cd deploy/terraform/aws && CHECKPOINT_DISABLE=1 terraform init -backend=false -input=false >/dev/null && CHECKPOINT_DISABLE=1 terraform validate'
  else
    skip "terraform validate" "needs 'terraform init' to download providers and modules from the Terraform registry and GitHub, which this offline machine cannot reach (set INFRA_TF_VALIDATE=1 where it can)"
  fi
else
  skip "terraform fmt -check" "no terraform binary on PATH (the code is kept terraform fmt-clean by convention)"
  skip "terraform validate" "no terraform binary on PATH"
fi

# ---------------------------------------------------------------- shell scripts
shell_scripts=(deploy/k3s/*.sh scripts/infra/*.sh)
check "shellcheck ${shell_scripts[*]}" "$venv_bin/shellcheck" -x "${shell_scripts[@]}"
cat >"$tmp/bad.sh" <<'SH'
#!/usr/bin/env bash
for f in $(ls *.txt); do cat $f; done
SH
check_fails "negative control: shellcheck flags unquoted, ls-parsing code" "$venv_bin/shellcheck" "$tmp/bad.sh"

# ---------------------------------------------------------------- k3s quick start
check "k3s install.sh: --dry-run steps, chart values, checksum verification" "$py" "$here/k3s_checks.py"

# ---------------------------------------------------------------- monitoring
if [[ "${INFRA_SKIP_MONITORING:-0}" == "1" ]]; then
  skip "monitoring" "INFRA_SKIP_MONITORING=1"
else
  check_stream "monitoring (scripts/infra/test-monitoring.sh)" "$here/test-monitoring.sh"
fi

summary
