#!/usr/bin/env python3
"""Offline checks of deploy/terraform (run by scripts/infra/test-infra.sh).

No provider can be downloaded here, so `terraform validate` is not possible;
these checks read the code with python-hcl2 instead:

  * every .tf file parses (and a deliberately broken file does not);
  * Terraform and every provider are pinned to exact versions, every module
    to a commit (or an exact registry version);
  * the state backend is S3 with encryption and locking;
  * every variable has a description, a type and (unless boolean) a
    validation; every output has a description;
  * the userapi helm_release installs ../../helm/userapi in postgres mode
    behind the ALB preset, and every value key it sets exists in the chart's
    values.yaml (so a renamed chart value fails here, not at apply time);
  * the ECR repository has immutable tags and scan-on-push, the database is
    encrypted, private and Multi-AZ by default.

Last line: "N passed, N failed".
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

import hcl2
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tally import Tally  # noqa: E402
from chart_values import check_and_render, find, schema_errors  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
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
TF_ROOT = ROOT / "deploy" / "terraform"
STACK = TF_ROOT / "aws"
CHART = ROOT / "deploy" / "helm" / "userapi"

tally = Tally()
check = tally.check


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


def blocks(docs: list[dict], kind: str) -> list[dict]:
    return [b for d in docs for b in d.get(kind, [])]


def named(docs: list[dict], kind: str) -> dict[str, dict]:
    """{name: body} for variable/output/module blocks."""
    out = {}
    for b in blocks(docs, kind):
        out.update(b)
    return out


def resources(docs: list[dict], rtype: str) -> dict[str, dict]:
    out = {}
    for b in blocks(docs, "resource"):
        for t, items in b.items():
            if t == rtype:
                out.update(items)
    return out


def key_paths(value, prefix=()) -> list[tuple]:
    """Leaf key paths of a values tree; list items are checked through their first element."""
    paths = []
    if isinstance(value, dict):
        for k, v in value.items():
            paths.append(prefix + (k,))
            paths.extend(key_paths(v, prefix + (k,)))
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        paths.extend(key_paths(value[0], prefix + ("[]",)))
    return paths


def has_path(tree, path: tuple) -> bool:
    node = tree
    for part in path:
        if part == "[]":
            if not isinstance(node, list) or not node:
                return False
            node = node[0]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return False
    return True


def resolve(value, variables: dict, secrets: dict, unknown: list):
    """The value with Terraform interpolations replaced by defaults or samples."""
    if isinstance(value, dict):
        return {k: resolve(v, variables, secrets, unknown) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, variables, secrets, unknown) for v in value]
    if not (isinstance(value, str) and value.startswith("${")):
        return value
    if value in APPLY_TIME_SAMPLES:
        return APPLY_TIME_SAMPLES[value]
    m = re.fullmatch(r"\$\{var\.(\w+)\}", value)
    if m and "default" in variables.get(m.group(1), {}):
        return unq(variables[m.group(1)]["default"])
    m = re.fullmatch(r"\$\{kubernetes_secret\.(\w+)\.metadata\[0\]\.name\}", value)
    if m and m.group(1) in secrets:
        return secrets[m.group(1)]["metadata"][0]["name"]
    unknown.append(value)
    return value


def main() -> int:
    files = sorted(TF_ROOT.rglob("*.tf"))
    check(bool(files), f"found {len(files)} .tf files under deploy/terraform")
    docs = []
    for f in files:
        try:
            docs.append(parse(f))
            check(True, f"parses with python-hcl2: {f.relative_to(ROOT)}")
        except Exception as exc:  # noqa: BLE001 - any parse error is the finding
            check(False, f"parses with python-hcl2: {f.relative_to(ROOT)}", str(exc)[:300])
    with tempfile.NamedTemporaryFile("w", suffix=".tf") as bad:
        bad.write('resource "aws_s3_bucket" "x" {\n  bucket = "unterminated\n')
        bad.flush()
        try:
            parse(Path(bad.name))
            check(False, "negative control: a broken .tf file fails to parse")
        except Exception:  # noqa: BLE001
            check(True, "negative control: a broken .tf file fails to parse")

    stack = [parse(f) for f in sorted(STACK.glob("*.tf"))]
    tf = blocks(stack, "terraform")
    check(len(tf) == 1, "exactly one terraform block")
    tfb = tf[0] if tf else {}
    rv = tfb.get("required_version", "")
    m = re.search(r">=\s*1\.(\d+)", rv)
    check(bool(m) and int(m.group(1)) >= 6, "required_version demands Terraform >= 1.6", rv)
    providers = {}
    for rp in tfb.get("required_providers", []):
        providers.update(rp)
    for name, spec in providers.items():
        v = spec.get("version", "") if isinstance(spec, dict) else ""
        check(bool(re.fullmatch(r"\d+\.\d+\.\d+", v)), f"provider {name} pinned to an exact version", v)
    backend = {}
    for b in tfb.get("backend", []):
        backend.update(b)
    s3 = backend.get("s3")
    check(s3 is not None, "state backend is s3", str(list(backend)))
    s3 = s3 or {}
    check(s3.get("encrypt") is True, "s3 backend encrypts state")
    check(s3.get("use_lockfile") is True or bool(s3.get("dynamodb_table")), "s3 backend locks state (use_lockfile or dynamodb_table)")
    if s3.get("use_lockfile") is True:
        check(bool(m) and int(m.group(1)) >= 10, "use_lockfile needs required_version >= 1.10", rv)

    for name, mod in named(stack, "module").items():
        src, ver = mod.get("source", ""), mod.get("version", "")
        ok = bool(re.search(r"[?&]ref=[0-9a-f]{40}$", src)) or (not src.startswith((".", "git::")) and re.fullmatch(r"\d+\.\d+\.\d+", ver or ""))
        check(bool(ok), f"module {name} pinned to a commit or exact version", f"{src} {ver}")

    variables = named(stack, "variable")
    for name, v in variables.items():
        check(bool(v.get("description")), f"variable {name} has a description")
        check(bool(v.get("type")), f"variable {name} has a type")
        if v.get("type") != "bool":
            check(bool(v.get("validation")), f"variable {name} has a validation")
    for name, o in named(stack, "output").items():
        check(bool(o.get("description")), f"output {name} has a description")

    ecr = resources(stack, "aws_ecr_repository")
    check(bool(ecr) and all(r.get("image_tag_mutability") == "IMMUTABLE" for r in ecr.values()), "ECR tags are immutable")
    check(bool(ecr) and all(r.get("image_scanning_configuration", [{}])[0].get("scan_on_push") is True for r in ecr.values()),
          "ECR scans on push")
    dbs = resources(stack, "aws_db_instance")
    check(len(dbs) == 1, "one RDS instance")
    for name, db in dbs.items():
        check(db.get("engine") == "postgres", f"RDS {name} is PostgreSQL")
        check(db.get("storage_encrypted") is True, f"RDS {name} is encrypted")
        check(db.get("publicly_accessible") is False, f"RDS {name} is not publicly accessible")
        check(db.get("multi_az") == "${var.db_multi_az}" and variables.get("db_multi_az", {}).get("default") is True,
              f"RDS {name} Multi-AZ is a variable defaulting to true")
    sgs = [r for t in ("aws_vpc_security_group_ingress_rule", "aws_security_group_rule") for r in resources(stack, t).values()]
    open_world = [r for r in sgs if "0.0.0.0/0" in str(r.get("cidr_ipv4", "")) + str(r.get("cidr_blocks", ""))]
    check(not open_world, "no security group rule of this stack opens a port to 0.0.0.0/0")
    check(bool(resources(stack, "aws_secretsmanager_secret")), "database password is kept in Secrets Manager")
    check(any("random_password.db" in str(s.get("data")) for s in resources(stack, "kubernetes_secret").values()),
          "database password is delivered to the cluster as a Kubernetes Secret")

    releases = resources(stack, "helm_release")
    for chart in ("aws-load-balancer-controller", "metrics-server", "cert-manager"):
        rel = [r for r in releases.values() if r.get("chart") == chart]
        check(len(rel) == 1 and bool(re.fullmatch(r"v?\d+\.\d+\.\d+", rel[0].get("version", ""))),
              f"helm_release {chart} is installed with a pinned chart version")
    app = releases.get("userapi", {})
    chart_path = app.get("chart", "")
    check(chart_path == "${path.module}/../../helm/userapi", "helm_release userapi installs ../../helm/userapi", chart_path)
    check((STACK / "../../helm/userapi/Chart.yaml").resolve().is_file(), "the chart directory exists relative to the stack")
    values = {}
    for b in blocks(stack, "locals"):
        values.update(b.get("chart_values", {}))
    check(values.get("database", {}).get("type") == "postgres", "chart runs in postgres mode")
    ing = values.get("ingress", {})
    check(ing.get("enabled") is True and ing.get("preset") == "alb" and bool(ing.get("alb", {}).get("certificateArn")),
          "chart ingress uses the ALB preset with an ACM certificate (TLS)")
    chart_values_file = CHART / "values.yaml"
    if check(chart_values_file.is_file(), "chart values.yaml exists"):
        chart_defaults = yaml.safe_load(chart_values_file.read_text())
        # Free-form maps in the chart (annotations, labels) accept any key.
        free_form = {("podAnnotations",), ("podLabels",), ("commonLabels",)}
        unknown = [".".join(p) for p in key_paths(values)
                   if not any(p[:len(f)] == f and len(p) > len(f) for f in free_form) and not has_path(chart_defaults, p)]
        check(not unknown, "every value the stack sets is a key of the chart's values.yaml", ", ".join(unknown))
        unknown_refs: list[str] = []
        concrete = resolve(values, variables, resources(stack, "kubernetes_secret"), unknown_refs)
        check(not unknown_refs, "every interpolation in the chart values has a default or a sample", ", ".join(unknown_refs))
        objs = check_and_render(concrete, "the stack's", check)
        if objs:
            dep = find(objs, "Deployment")
            env = {e["name"]: e.get("value") for e in dep[0]["spec"]["template"]["spec"]["containers"][0].get("env", [])} if dep else {}
            check(env.get("DATABASE_URL", "").startswith("postgres://userapi@userapi-prod.") and env.get("DATABASE_TLS_MODE") == "verify-full",
                  "rendered pods use the RDS database with verify-full TLS", str(env))
            check("DATABASE_PASSWORD_FILE" in env and "postgres://userapi:" not in env.get("DATABASE_URL", ""),
                  "the password reaches the pods as a file, never in the URL")
            annotations = dep[0]["spec"]["template"]["metadata"].get("annotations", {}) if dep else {}
            check("userapi/db-password-sha256" in annotations, "a new database password changes the pod template (rolling restart)")
            ing = find(objs, "Ingress")
            ann = ing[0]["metadata"].get("annotations", {}) if ing else {}
            check(bool(ing) and ing[0]["spec"].get("ingressClassName") == "alb"
                  and ann.get("alb.ingress.kubernetes.io/certificate-arn") == APPLY_TIME_SAMPLES["${local.certificate_arn}"],
                  "rendered Ingress is an ALB with the ACM certificate", str(ann))
            check(bool(find(objs, "HorizontalPodAutoscaler")), "rendered chart has a HorizontalPodAutoscaler")
            check(not find(objs, "PersistentVolumeClaim"), "postgres mode renders no PersistentVolumeClaim")
        bad = schema_errors({**concrete, "database": {"type": "mysql"}})
        check(bool(bad), "negative control: the schema rejects database.type=mysql")
        # Negative control: a misspelt key must be caught by the same comparison.
        bogus = [p for p in key_paths({"postgres": {"external": {"hostname": "x"}}}) if not has_path(chart_defaults, p)]
        check(bool(bogus), "negative control: a key missing from values.yaml is reported")

    return tally.finish()


if __name__ == "__main__":
    sys.exit(main())
