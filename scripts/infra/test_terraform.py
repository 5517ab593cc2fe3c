"""make test-infra: offline checks of deploy/terraform. No provider can be
downloaded here, so the code is read with python-hcl2 (pins, backend,
variables, resources, the chart values the userapi release passes: keys,
schema, render); checkov runs with, and without, checkov-skips.yaml; terraform
fmt with terraform from PATH (a skip locally, a failure with CI=true);
`terraform validate` only with INFRA_TF_VALIDATE=1 (it needs the registry).
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
from pathlib import Path

import hcl2
import pytest
import yaml

import chartlib
import checks
from chart_values import find, has_path, key_paths, render, schema_errors, unknown_keys
from harness import ROOT, assert_none

pytestmark = pytest.mark.infra

TF_ROOT = ROOT / "deploy" / "terraform"
STACK = TF_ROOT / "aws"
SKIPS_FILE = STACK / "checkov-skips.yaml"
FILES = sorted(TF_ROOT.rglob("*.tf"))
# Stand-ins for values Terraform only knows at apply time, so the chart's
# schema can check the values the stack passes (types, patterns, enums).
APPLY_TIME_SAMPLES = {
    "${var.image_tag}": "1.4.2",
    "${var.hostname}": "users.example.com",
    "${local.image_repository}": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/userapi",
    "${local.certificate_arn}": "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-0000-0000-000000000000",
    "${aws_db_instance.userapi.address}": "userapi-prod.abcdefghijkl.eu-west-1.rds.amazonaws.com",
    "${aws_db_instance.userapi.port}": 5432,
    "${sha256(random_password.db.result)}": "0" * 64,
}
# Free-form maps in the chart (annotations, labels) accept any key.
FREE_FORM = (("podAnnotations",), ("podLabels",), ("commonLabels",))
INSECURE_TF = ('resource "aws_security_group" "open" {\n  ingress {\n    from_port = 22\n    to_port = 22\n    protocol = "tcp"\n'
               '    cidr_blocks = ["0.0.0.0/0"]\n  }\n}\nresource "aws_db_instance" "db" {\n  engine = "postgres"\n'
               '  instance_class = "db.t4g.micro"\n  publicly_accessible = true\n}\n')


def unq(v):
    """python-hcl2 keeps the quotes of string literals and quoted keys."""
    if isinstance(v, str) and len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        return v[1:-1]
    return v


def clean(v):
    """Recursively unquote keys and values and drop python-hcl2's metadata keys."""
    if isinstance(v, dict):
        return {unq(k): clean(x) for k, x in v.items() if not str(k).startswith("__")}
    if isinstance(v, list):
        return [clean(x) for x in v]
    return unq(v)


def parse(path: Path) -> dict:
    with path.open() as fh:
        return clean(hcl2.load(fh))


@functools.cache
def stack() -> list[dict]:
    return [parse(f) for f in sorted(STACK.glob("*.tf"))]


def blocks(kind: str) -> list[dict]:
    return [b for d in stack() for b in d.get(kind, [])]


def named(kind: str) -> dict[str, dict]:
    """{name: body} of variable/output/module blocks."""
    return {k: v for b in blocks(kind) for k, v in b.items()}


def resources(rtype: str) -> dict[str, dict]:
    return {k: v for b in blocks("resource") for t, items in b.items() if t == rtype for k, v in items.items()}


def terraform_block() -> dict:
    tf = blocks("terraform")
    assert len(tf) == 1, f"expected exactly one terraform block, found {len(tf)}"
    return tf[0]


def minimum_minor() -> int:
    m = re.search(r">=\s*1\.(\d+)", terraform_block().get("required_version", ""))
    return int(m.group(1)) if m else -1


def chart_values() -> dict:
    return {k: v for b in blocks("locals") for k, v in b.get("chart_values", {}).items()}


def resolve(value, unknown: list):
    """The value with Terraform interpolations replaced by defaults or samples."""
    if isinstance(value, dict):
        return {k: resolve(v, unknown) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, unknown) for v in value]
    if not (isinstance(value, str) and value.startswith("${")):
        return value
    if value in APPLY_TIME_SAMPLES:
        return APPLY_TIME_SAMPLES[value]
    variables, secrets = named("variable"), resources("kubernetes_secret")
    m = re.fullmatch(r"\$\{var\.(\w+)\}", value)
    if m and "default" in variables.get(m.group(1), {}):
        return unq(variables[m.group(1)]["default"])
    m = re.fullmatch(r"\$\{kubernetes_secret\.(\w+)\.metadata\[0\]\.name\}", value)
    if m and m.group(1) in secrets:
        return secrets[m.group(1)]["metadata"][0]["name"]
    unknown.append(value)
    return value


@functools.cache
def concrete_values() -> dict:
    return resolve(chart_values(), [])


# --- HCL --------------------------------------------------------------------

def test_tf_files_found():
    assert FILES, "no .tf files under deploy/terraform"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(TF_ROOT)))
def test_parses_with_python_hcl2(path):
    parse(path)


def test_broken_tf_does_not_parse(tmp_path):
    (tmp_path / "bad.tf").write_text('resource "aws_s3_bucket" "x" {\n  bucket = "unterminated\n')
    with pytest.raises(Exception):  # noqa: B017 - any parse error is the expected outcome
        parse(tmp_path / "bad.tf")


def test_required_version_at_least_1_6():
    assert minimum_minor() >= 6, terraform_block().get("required_version")


def test_providers_pinned_exactly():
    providers = {k: v for rp in terraform_block().get("required_providers", []) for k, v in rp.items()}
    assert providers
    assert_none([f"{name} {spec}" for name, spec in providers.items()
                 if not re.fullmatch(r"\d+\.\d+\.\d+", spec.get("version", "") if isinstance(spec, dict) else "")])


def test_state_backend_s3_encrypted_and_locked():
    backend = {k: v for b in terraform_block().get("backend", []) for k, v in b.items()}
    s3 = backend.get("s3")
    assert s3 is not None, f"state backend is {list(backend)}, not s3"
    assert s3.get("encrypt") is True, "s3 backend does not encrypt state"
    assert s3.get("use_lockfile") is True or s3.get("dynamodb_table"), "s3 backend does not lock state"
    if s3.get("use_lockfile") is True:
        assert minimum_minor() >= 10, "use_lockfile needs required_version >= 1.10"


def test_modules_pinned_to_commit_or_exact_version():
    assert_none([f"{name}: {m.get('source', '')} {m.get('version', '')}" for name, m in named("module").items()
                 if not (re.search(r"[?&]ref=[0-9a-f]{40}$", m.get("source", ""))
                         or (not m.get("source", "").startswith((".", "git::"))
                             and re.fullmatch(r"\d+\.\d+\.\d+", m.get("version", "") or "")))])


def test_variables_have_description_type_and_validation():
    problems = []
    for name, v in named("variable").items():
        problems += [f"variable {name} has no {what}" for what in ("description", "type") if not v.get(what)]
        if v.get("type") != "bool" and not v.get("validation"):
            problems.append(f"variable {name} has no validation")
    assert_none(problems)


def test_outputs_have_description():
    assert_none([f"output {name}" for name, o in named("output").items() if not o.get("description")])


# --- resources --------------------------------------------------------------

def test_ecr_tags_immutable_and_scanned_on_push():
    ecr = resources("aws_ecr_repository")
    assert ecr, "no ECR repository"
    assert all(r.get("image_tag_mutability") == "IMMUTABLE" for r in ecr.values()), "ECR tags are mutable"
    assert all(r.get("image_scanning_configuration", [{}])[0].get("scan_on_push") is True for r in ecr.values())


def test_rds_postgres_encrypted_private_multi_az():
    dbs = resources("aws_db_instance")
    assert len(dbs) == 1, f"expected one RDS instance, found {list(dbs)}"
    db = next(iter(dbs.values()))
    assert db.get("engine") == "postgres"
    assert db.get("storage_encrypted") is True, "RDS is not encrypted"
    assert db.get("publicly_accessible") is False, "RDS is publicly accessible"
    assert db.get("multi_az") == "${var.db_multi_az}" and named("variable").get("db_multi_az", {}).get("default") is True


def test_no_security_group_rule_open_to_the_world():
    rules = [r for t in ("aws_vpc_security_group_ingress_rule", "aws_security_group_rule") for r in resources(t).values()]
    assert not [r for r in rules if "0.0.0.0/0" in str(r.get("cidr_ipv4", "")) + str(r.get("cidr_blocks", ""))]


def test_database_password_in_secrets_manager_and_a_kubernetes_secret():
    assert resources("aws_secretsmanager_secret"), "database password is not kept in Secrets Manager"
    assert any("random_password.db" in str(s.get("data")) for s in resources("kubernetes_secret").values())


@pytest.mark.parametrize("chart", ["aws-load-balancer-controller", "metrics-server", "cert-manager"])
def test_helm_release_pinned(chart):
    rel = [r for r in resources("helm_release").values() if r.get("chart") == chart]
    assert len(rel) == 1 and re.fullmatch(r"v?\d+\.\d+\.\d+", rel[0].get("version", "")), rel


def test_userapi_release_installs_the_chart_in_postgres_mode_behind_alb():
    assert resources("helm_release").get("userapi", {}).get("chart") == "${path.module}/../../helm/userapi"
    assert (STACK / "../../helm/userapi/Chart.yaml").resolve().is_file(), "no chart relative to the stack"
    assert chart_values().get("database", {}).get("type") == "postgres"
    ing = chart_values().get("ingress", {})
    assert ing.get("enabled") is True and ing.get("preset") == "alb" and ing.get("alb", {}).get("certificateArn"), ing


# --- the chart values the stack passes ----------------------------------------

def test_chart_values_are_keys_of_the_chart():
    assert_none(unknown_keys(chart_values(), FREE_FORM))


def test_misspelt_chart_value_is_reported():
    assert unknown_keys({"postgres": {"external": {"hostname": "x"}}}, FREE_FORM) == ["postgres.external.hostname"]


def test_chart_value_interpolations_have_defaults_or_samples():
    unknown: list[str] = []
    resolve(chart_values(), unknown)
    assert_none(unknown)


def test_chart_values_pass_the_schema():
    assert_none(schema_errors(concrete_values()))
    assert schema_errors({**concrete_values(), "database": {"type": "mysql"}}), "the schema accepts database.type=mysql"


def test_rendered_release():
    objs = render(concrete_values())
    dep = find(objs, "Deployment")
    assert dep, "no Deployment rendered"
    env = {e["name"]: e.get("value") for e in dep[0]["spec"]["template"]["spec"]["containers"][0].get("env", [])}
    assert env.get("DATABASE_URL", "").startswith("postgres://userapi@userapi-prod.") and env.get("DATABASE_TLS_MODE") == "verify-full", env
    assert "DATABASE_PASSWORD_FILE" in env and "postgres://userapi:" not in env["DATABASE_URL"], "password not as a file"
    assert "userapi/db-password-sha256" in dep[0]["spec"]["template"]["metadata"].get("annotations", {}), \
        "a new database password does not change the pod template"
    ing = find(objs, "Ingress")
    ann = ing[0]["metadata"].get("annotations", {}) if ing else {}
    assert ing and ing[0]["spec"].get("ingressClassName") == "alb"
    assert ann.get("alb.ingress.kubernetes.io/certificate-arn") == APPLY_TIME_SAMPLES["${local.certificate_arn}"], ann
    assert find(objs, "HorizontalPodAutoscaler"), "no HorizontalPodAutoscaler"
    assert not find(objs, "PersistentVolumeClaim"), "postgres mode renders a PersistentVolumeClaim"


# --- checkov ------------------------------------------------------------------

def skip_ids() -> list[str]:
    entries = yaml.safe_load(SKIPS_FILE.read_text()) or []
    assert_none([str(e) for e in entries if not str(e.get("id", "")).strip() or not str(e.get("reason", "")).strip()],
                f"{SKIPS_FILE.name}: every skip needs an id and a reason")
    return sorted({e["id"] for e in entries})


@pytest.fixture(scope="module")
def checkov_runs(tools, tmp_path_factory) -> dict[str, subprocess.Popen]:
    """Three checkov runs at once: the stack with its skips, without them, and an insecure stack."""
    insecure = tmp_path_factory.mktemp("insecure")
    (insecure / "main.tf").write_text(INSECURE_TF)
    skip = ["--skip-check", ",".join(skip_ids())] if skip_ids() else []
    return {"skips": checks.checkov(tools.checkov, TF_ROOT, "terraform", *skip),
            "no skips": checks.checkov(tools.checkov, TF_ROOT, "terraform"),
            "insecure": checks.checkov(tools.checkov, insecure, "terraform")}


def summary(proc: subprocess.Popen) -> tuple[int, list[str]]:
    """(passed count, sorted failed check ids) of a run."""
    reports = checks.checkov_reports(proc)
    return (sum(r.get("summary", {}).get("passed", 0) for r in reports),
            sorted({c["check_id"] for c in checks.checkov_checks(reports, "failed")}))


def test_checkov_no_failure_with_the_listed_skips(checkov_runs):
    passed, failed = summary(checkov_runs["skips"])
    assert passed > 0 and not failed, f"passed {passed}, failed {failed}"


def test_checkov_skips_are_exactly_the_failures_without_them(checkov_runs):
    assert summary(checkov_runs["no skips"])[1] == skip_ids()


def test_checkov_fails_an_open_security_group_and_a_public_database(checkov_runs):
    assert summary(checkov_runs["insecure"])[1]


# --- terraform ------------------------------------------------------------------

@pytest.fixture(scope="module")
def terraform(tools, tmp_path_factory):
    """terraform from PATH with an empty CLI config and no checkpoint call (no network)."""
    rc = tmp_path_factory.mktemp("terraformrc") / "terraformrc"
    rc.write_text("")
    env = os.environ | {"CHECKPOINT_DISABLE": "1", "TF_CLI_CONFIG_FILE": str(rc), "TF_IN_AUTOMATION": "1"}
    binary = tools.terraform

    def run(*args: str, cwd: Path | None = None, **more_env: str) -> subprocess.CompletedProcess:
        return subprocess.run([binary, *args], env=env | more_env, cwd=cwd, capture_output=True, text=True)

    return run


def test_terraform_fmt(terraform):
    proc = terraform("fmt", "-check", "-recursive", "-diff", str(TF_ROOT))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_terraform_fmt_rejects_unformatted_code(terraform, tmp_path):
    (tmp_path / "main.tf").write_text('variable "x" {\ntype=string\n}\n')
    proc = terraform("fmt", "-check", str(tmp_path))
    assert proc.returncode != 0 and "main.tf" in proc.stdout, proc.stdout + proc.stderr


def test_terraform_validate(request, tmp_path):
    if os.environ.get("INFRA_TF_VALIDATE") != "1":
        pytest.skip("terraform init downloads providers and modules from the Terraform registry and GitHub, "
                    "which this offline machine cannot reach (set INFRA_TF_VALIDATE=1 where it can)")
    terraform = request.getfixturevalue("terraform")
    for args in (["init", "-backend=false", "-input=false"], ["validate"]):
        proc = terraform(*args, cwd=STACK, TF_DATA_DIR=str(tmp_path))
        assert proc.returncode == 0, proc.stdout + proc.stderr
