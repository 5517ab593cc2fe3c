"""make test-chart: everything that can be checked about the Helm chart
without a cluster, with the real tools.

For every scenario deploy/helm/userapi/ci/*-values.yaml:
  - helm lint --strict (Helm v4 library) and a render for the oldest and the
    newest supported Kubernetes release (the chart's kubeVersion is enforced);
  - the chart's promises asserted on the rendered objects (checks.py):
    restricted pods, probes, shutdown timing, strategy, storage rules, PDB/HPA,
    references between objects, values reaching the objects;
  - kubernetes-validate --strict for both releases (core kinds), the
    custom resources against scripts/chart/crd-schemas.yaml;
  - checkov on the rendered output, zero failures outside checkov-skips.yaml.
Plus: checkov's own helm framework over the chart (through the helm shim),
the values schema covering every value, the monitoring files in sync with
deploy/monitoring, a render below kubeVersion refused, and the negative tests.

The last line is "N passed, M failed".
"""

from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

import chartlib
import checks
import monitoring_sync
import negative_tests


class Results:
    def __init__(self) -> None:
        self.passed = 0
        self.failed: list[str] = []

    def check(self, label: str, problems: list[str]) -> None:
        if problems:
            self.failed.append(label)
            print(f"FAIL {label}")
            for p in problems:
                print(f"     {p}")
        else:
            self.passed += 1
            print(f"ok   {label}")


def effective_values(values: dict[str, Any]) -> dict[str, Any]:
    helm = chartlib._helm()
    with helm.Chart.load(str(chartlib.CHART_DIR)) as chart:
        return chart.merge_values(values)


def external_objects(v: dict[str, Any]) -> set[str]:
    """Objects the scenario expects to exist outside the release."""
    ext = set()
    if v["tokens"]["existingSecret"]:
        ext.add(f"Secret/{v['tokens']['existingSecret']}")
    if v["database"]["type"] == "postgres":
        if v["postgres"]["cloudnativepg"]["enabled"]:
            # Created by the CloudNativePG operator for the Cluster the chart renders.
            ext |= {f"Secret/{chartlib.RELEASE}-db-app", f"Secret/{chartlib.RELEASE}-db-ca"}
        else:
            ext.add(f"Secret/{v['postgres']['external']['existingSecret']}")
            if v["postgres"]["tls"]["caSecret"]:
                ext.add(f"Secret/{v['postgres']['tls']['caSecret']}")
    if v["persistence"]["existingClaim"]:
        ext.add(f"PersistentVolumeClaim/{v['persistence']['existingClaim']}")
    if not v["serviceAccount"]["create"] and v["serviceAccount"]["name"]:
        ext.add(f"ServiceAccount/{v['serviceAccount']['name']}")
    return ext


def check_values_reach_objects(objs: list[dict[str, Any]], v: dict[str, Any]) -> list[str]:
    """The values that feed both the app and Kubernetes arrive in both places."""
    problems = []
    wl = checks.workload(objs)
    if wl is None:
        return ["no single workload"]
    pod = wl["spec"]["template"]["spec"]
    c = checks.api_container(pod)
    env = checks.env_map(c)
    drain, timeout = v["shutdown"]["drainDelaySeconds"], v["shutdown"]["timeoutSeconds"]
    if env.get("SHUTDOWN_DRAIN_DELAY") != f"{drain}s" or env.get("SHUTDOWN_TIMEOUT") != f"{timeout}s":
        problems.append(f"shutdown env {env.get('SHUTDOWN_DRAIN_DELAY')}/{env.get('SHUTDOWN_TIMEOUT')} != values {drain}s/{timeout}s")
    # Helm drops null values when merging, so an unset grace period is absent here.
    grace = v.get("terminationGracePeriodSeconds") or drain + timeout + 10
    if pod.get("terminationGracePeriodSeconds") != grace:
        problems.append(f"terminationGracePeriodSeconds {pod.get('terminationGracePeriodSeconds')} != {grace}")
    app_version = yaml.safe_load((chartlib.CHART_DIR / "Chart.yaml").read_text())["appVersion"]
    image = v["image"]
    want = f"{image['repository']}@{image['digest']}" if image["digest"] else f"{image['repository']}:{image['tag'] or app_version}"
    if c["image"] != want:
        problems.append(f"image {c['image']} != {want}")
    cms = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ConfigMap"}
    config = cms.get(chartlib.RELEASE, {}).get("data", {}).get("config.yaml")
    if config is None or yaml.safe_load(config) != v["config"]:
        problems.append("config.yaml in the ConfigMap differs from values.config")
    if v["dotenv"]:
        text = cms.get(f"{chartlib.RELEASE}-dotenv", {}).get("data", {}).get("userapi.env", "")
        lines = {l.split("=", 1)[0]: l.split("=", 1)[1] for l in text.splitlines() if "=" in l}
        if lines != {k: str(val) for k, val in v["dotenv"].items()}:
            problems.append(f"dotenv file {lines} != values.dotenv")
        if env.get("ENV_FILE") != "/etc/userapi/userapi.env":
            problems.append("ENV_FILE not set although dotenv is")
    if "checksum/config" not in wl["spec"]["template"]["metadata"].get("annotations", {}):
        problems.append("no checksum/config annotation (pods would not roll on config changes)")
    if not v["autoscaling"]["enabled"] and wl["spec"].get("replicas") != v["replicaCount"]:
        problems.append(f"replicas {wl['spec'].get('replicas')} != replicaCount {v['replicaCount']}")
    if not v["tokens"]["existingSecret"]:
        secret = next((o for o in objs if o["kind"] == "Secret" and o["metadata"]["name"] == f"{chartlib.RELEASE}-tokens"), None)
        token = base64.b64decode(secret["data"][v["tokens"]["key"]]).decode().strip() if secret else ""
        if len(token) != 40 or not token.isalnum():
            problems.append("generated tokens Secret missing or not a 40-character token")
    mode = v["migrations"]["mode"]
    if env.get("DATABASE_MIGRATE_ON_START") != ("true" if mode == "onStart" else "false"):
        problems.append(f"DATABASE_MIGRATE_ON_START={env.get('DATABASE_MIGRATE_ON_START')} with migrations.mode={mode}")
    jobs = [o for o in objs if o["kind"] == "Job"]
    if mode == "hook":
        if len(jobs) != 1 or jobs[0]["spec"]["template"]["spec"]["containers"][0]["args"] != ["migrate"]:
            problems.append("migrations.mode=hook without a `userapi migrate` Job")
        elif "pre-install" not in jobs[0]["metadata"]["annotations"].get("helm.sh/hook", ""):
            problems.append("migration Job is not a pre-install/pre-upgrade hook")
    tests = [o for o in objs if o.get("metadata", {}).get("annotations", {}).get("helm.sh/hook") == "test"]
    if v["tests"]["enabled"] and len(tests) != 1:
        problems.append("helm test pod missing")
    return problems


def check_schema_covers_values() -> list[str]:
    """Every key in values.yaml is declared in values.schema.json, with a type."""
    import json

    schema = json.loads((chartlib.CHART_DIR / "values.schema.json").read_text())
    values = yaml.safe_load((chartlib.CHART_DIR / "values.yaml").read_text())
    problems = []

    def walk(node: Any, sch: dict[str, Any], path: str) -> None:
        if "type" not in sch and "oneOf" not in sch and "anyOf" not in sch:
            problems.append(f"{path or '/'}: schema has no type")
        if isinstance(node, dict) and sch.get("properties") is not None:
            if sch.get("additionalProperties", True) is not False:
                problems.append(f"{path or '/'}: object with declared properties allows unknown keys")
            for key, child in node.items():
                sub = sch["properties"].get(key)
                if sub is None:
                    problems.append(f"{path}/{key}: in values.yaml but not in values.schema.json")
                else:
                    walk(child, sub, f"{path}/{key}")

    walk(values, schema, "")
    return problems


def check_the_checks() -> list[str]:
    """The object checks must catch what they claim to: break a good render in
    known ways and expect each breakage to be reported."""
    import copy

    good = chartlib.objects(chartlib.render({}))
    if checks.check_hardening(good) or checks.check_api_pod(good):
        return ["the default render itself does not pass"]

    def pod(objs):
        return checks.workload(objs)["spec"]["template"]["spec"]

    def env(objs, name, value):
        next(e for e in checks.api_container(pod(objs))["env"] if e["name"] == name)["value"] = value

    breakages = [
        ("root allowed", lambda o: pod(o)["securityContext"].update(runAsNonRoot=False), checks.check_hardening, "runAsNonRoot"),
        ("writable root fs", lambda o: checks.api_container(pod(o))["securityContext"].update(readOnlyRootFilesystem=False), checks.check_hardening, "root filesystem is writable"),
        ("token mounted", lambda o: pod(o).update(automountServiceAccountToken=True), checks.check_hardening, "service-account token"),
        ("readiness on /healthz", lambda o: checks.api_container(pod(o))["readinessProbe"]["httpGet"].update(path="/healthz"), checks.check_api_pod, "readinessProbe"),
        ("grace too short", lambda o: pod(o).update(terminationGracePeriodSeconds=20), checks.check_api_pod, "terminationGracePeriodSeconds 20"),
        ("sqlite with 2 replicas", lambda o: checks.workload(o)["spec"].update(replicas=2), checks.check_api_pod, "SQLite with 2 replicas"),
        ("sqlite rolling update", lambda o: checks.workload(o)["spec"].update(strategy={"type": "RollingUpdate"}), checks.check_api_pod, "strategy Recreate"),
        ("tokens file not mounted", lambda o: env(o, "AUTH_TOKENS_FILE", "/run/tokens"), checks.check_api_pod, "AUTH_TOKENS_FILE=/run/tokens is not provided"),
        ("port mismatch", lambda o: env(o, "HTTP_PORT", "9000"), checks.check_api_pod, "differs from containerPort"),
    ]
    problems = []
    for name, breakage, check, expected in breakages:
        objs = copy.deepcopy(good)
        breakage(objs)
        found = check(objs)
        if not any(expected in f for f in found):
            problems.append(f"breakage '{name}' not reported (expected {expected!r}; got {found})")
    return problems


def write_yaml(path: Path, objs: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(chartlib.to_yaml_stream(objs))
    return path


def run_checkov(work: Path, groups: list[list[Path]], results: Results, check_stale: bool) -> None:
    """checkov's kubernetes framework over the rendered scenarios (two
    processes in parallel) and its helm framework over the chart through the
    helm shim, at the same time."""
    skips = checks.load_checkov_skips()
    used: set[int] = set()
    procs = []
    for i, files in enumerate(g for g in groups if g):
        d = work / f"checkov-{i}"
        d.mkdir()
        for f in files:
            (d / f.name).write_text(f.read_text())
        procs.append((f"checkov kubernetes ({', '.join(f.stem for f in files)})", subprocess.Popen(
            checks.checkov_command(["-d", str(d)], "kubernetes"), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)))
    env = chartlib.env_with_shim()
    env["HELM_NAMESPACE"] = chartlib.NAMESPACE
    procs.append(("checkov helm framework on the chart (defaults, via scripts/chart/bin/helm)", subprocess.Popen(
        checks.checkov_command(["-d", str(chartlib.CHART_DIR)], "helm"),
        text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=str(work))))
    for label, proc in procs:
        out, err = proc.communicate(timeout=900)
        problems: list[str] = []
        try:
            reports = checks.checkov_results(out)
        except ValueError:
            results.check(label, [f"checkov printed no JSON (exit {proc.returncode}): {err.strip()[-800:]}"])
            continue
        passed = 0
        for report in reports:
            failures, accepted, n = checks.classify_checkov(report, skips, used)
            problems += failures
            passed += n
            for a in accepted:
                print(f"     accepted (checkov-skips.yaml): {a}")
        if passed == 0:
            problems.append("checkov ran no passing check at all: nothing was scanned")
        if any(r.get("summary", {}).get("parsing_errors") for r in reports):
            problems.append("checkov could not parse some of the input")
        results.check(f"{label}: {passed} passed", problems)
    if not check_stale:
        return
    unused = [f"{s['check']} {s.get('resource', '')}".strip() for i, s in enumerate(skips) if i not in used]
    results.check("checkov-skips.yaml lists only skips that are still needed",
                  [f"skip no longer matches any finding: {u}" for u in unused])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", help="scenario name(s) to run (default: all)")
    parser.add_argument("--no-checkov", action="store_true", help="skip the checkov runs (quick local loop)")
    parser.add_argument("--keep", action="store_true", help="keep the rendered output directory")
    args = parser.parse_args()
    started = time.monotonic()
    results = Results()
    work = Path(tempfile.mkdtemp(prefix="userapi-chart-"))

    results.check("monitoring files in the chart match deploy/monitoring (make chart-sync)", monitoring_sync.drift())
    results.check("values.schema.json declares every value in values.yaml", check_schema_covers_values())
    results.check("the object checks report known breakages", check_the_checks())
    kube_floor = yaml.safe_load((chartlib.CHART_DIR / "Chart.yaml").read_text())["kubeVersion"]
    results.check(f"Chart.yaml kubeVersion {kube_floor!r} starts at the oldest validated release {chartlib.KUBE_VERSIONS[0]}",
                  [] if kube_floor == f">={chartlib.KUBE_VERSIONS[0]}-0" else ["kubeVersion and KUBE_VERSIONS disagree"])

    schemas = checks.load_crd_schemas()
    core_files: list[Path] = []
    checkov_files: list[Path] = []
    scenarios = [s for s in chartlib.scenarios() if not args.only or chartlib.scenario_name(s) in args.only]
    if not scenarios:
        print("no scenarios selected")
        return 1
    for path in scenarios:
        name = chartlib.scenario_name(path)
        values = chartlib.load_values([path])
        results.check(f"{name}: helm lint --strict", chartlib.lint(values))
        renders = {}
        problems = []
        for kv in chartlib.KUBE_VERSIONS:
            try:
                renders[kv] = chartlib.render(values, kube_version=kv)
            except chartlib.RenderError as exc:
                problems.append(f"render for Kubernetes {kv}: {exc}")
        results.check(f"{name}: renders for Kubernetes {' and '.join(chartlib.KUBE_VERSIONS)}", problems)
        if problems:
            continue
        objs = chartlib.objects(renders[chartlib.KUBE_VERSIONS[-1]])
        v = effective_values(values)
        results.check(f"{name}: restricted pod security", checks.check_hardening(objs))
        results.check(f"{name}: probes, ports, shutdown, strategy, storage, PDB/HPA", checks.check_api_pod(objs))
        results.check(f"{name}: references between objects", checks.check_references(objs, external_objects(v)))
        results.check(f"{name}: values reach the objects", check_values_reach_objects(objs, v))
        core, crd_problems = checks.split_for_validation(objs, schemas)
        crd_kinds = sorted({o["kind"] for o in objs if checks.is_custom(o, schemas)})
        if crd_kinds:
            results.check(f"{name}: custom resources valid ({', '.join(crd_kinds)})", crd_problems)
        elif crd_problems:
            results.check(f"{name}: custom resources", crd_problems)
        core_files.append(write_yaml(work / "core" / f"{name}.yaml", core))
        # checkov sees the Rollout's pod template as a Deployment too (it has no Rollout policies).
        checkov_files.append(write_yaml(work / "checkov" / f"{name}.yaml", objs + [o for o in core if o["metadata"]["name"].endswith("-rollout-template")]))

    for app_file in sorted((chartlib.ROOT / "deploy" / "argocd").glob("*.yaml")):
        label = f"Argo CD {app_file.name}"
        app = yaml.safe_load(app_file.read_text())
        problems = checks.validate_custom(app, schemas) if checks.is_custom(app, schemas) else [f"not an Argo CD Application: {app.get('kind')}"]
        source = app.get("spec", {}).get("source", {})
        if (chartlib.ROOT / source.get("path", "-")).resolve() != chartlib.CHART_DIR:
            problems.append(f"source.path {source.get('path')} is not the chart directory")
        if not problems:
            values = source.get("helm", {}).get("valuesObject", {})
            try:
                objs = chartlib.objects(chartlib.render(values, name=source["helm"].get("releaseName", app["metadata"]["name"]),
                                                        namespace=app["spec"]["destination"]["namespace"]))
                v = effective_values(values)
                ext = {e.replace(f"/{chartlib.RELEASE}-", f"/{source['helm'].get('releaseName', 'userapi')}-") for e in external_objects(v)}
                problems += checks.check_hardening(objs) + checks.check_api_pod(objs) + checks.check_references(objs, ext)
                core, crd_problems = checks.split_for_validation(objs, schemas)
                problems += crd_problems
                core_files.append(write_yaml(work / "core" / f"argocd-{app_file.stem}.yaml", core))
            except chartlib.RenderError as exc:
                problems.append(f"the chart does not render with the Application's values: {exc}")
        results.check(f"{label}: valid Application whose values render a sound release", problems)

    for kv in chartlib.KUBE_VERSIONS:
        results.check(f"kubernetes-validate --strict -k {kv} ({len(core_files)} scenarios)", checks.kubernetes_validate(core_files, kv))

    passed, failures = negative_tests.run_cases()
    results.check(f"negative tests: {passed} unsafe or invalid values refused with the expected message", failures)

    if not args.no_checkov:
        half = (len(checkov_files) + 1) // 2
        run_checkov(work, [checkov_files[:half], checkov_files[half:]], results, check_stale=not args.only)

    if args.keep:
        print(f"rendered output kept in {work}")
    else:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    print(f"test-chart: {time.monotonic() - started:.0f}s")
    print(f"{results.passed} passed, {len(results.failed)} failed")
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
