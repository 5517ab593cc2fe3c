"""make test-kustomize: the Kustomize base is what the chart renders (no
drift), and every overlay builds with `kubectl kustomize` and passes the same
checks as the chart's scenarios: restricted pods, probes/shutdown/strategy/
storage rules, references, kubernetes-validate --strict for the oldest and
newest supported Kubernetes, checkov with only the listed skips, plus what
each overlay promises (dev: one SQLite pod; staging/prod: PostgreSQL, HPA,
PDB; prod: at least three pods, more resources, NetworkPolicy).

The last line is "N passed, M failed".
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

import chartlib
import checks
import manifests
from test_chart import Results, write_yaml

OVERLAYS = ["dev", "staging", "prod"]
# Secrets the overlays expect to be created beforehand (see their kustomization.yaml).
EXTERNAL = {"Secret/userapi-tokens", "Secret/userapi-db", "Secret/rds-ca"}


def kubectl() -> str:
    found = shutil.which("kubectl")
    if not found:
        raise SystemExit("test-kustomize: kubectl not found on PATH (it provides `kubectl kustomize`)")
    return found


def expectations(name: str, objs: list[dict[str, Any]]) -> list[str]:
    problems = []
    kinds = [o["kind"] for o in objs]
    wl = checks.workload(objs)
    if wl is None:
        return ["no single Deployment"]
    env = checks.env_map(checks.api_container(wl["spec"]["template"]["spec"]))
    hpa = next((o for o in objs if o["kind"] == "HorizontalPodAutoscaler"), None)
    namespaces = {o["metadata"].get("namespace") for o in objs}
    if namespaces != {f"userapi-{name}"}:
        problems.append(f"objects in namespaces {namespaces}, expected userapi-{name}")
    if name == "dev":
        if not env.get("DATABASE_URL", "").startswith("sqlite:") or wl["spec"].get("replicas") != 1:
            problems.append("dev must be one pod on SQLite")
        if "PersistentVolumeClaim" not in kinds:
            problems.append("dev has no volume for SQLite")
    else:
        if not env.get("DATABASE_URL", "").startswith("postgres://"):
            problems.append(f"{name} must use PostgreSQL")
        if "PersistentVolumeClaim" in kinds:
            problems.append(f"{name} still has the SQLite volume")
        if hpa is None or "PodDisruptionBudget" not in kinds:
            problems.append(f"{name} needs an HPA and a PDB")
    if name == "prod":
        if hpa is None or hpa["spec"]["minReplicas"] < 3:
            problems.append("prod must run at least 3 pods")
        res = checks.api_container(wl["spec"]["template"]["spec"])["resources"]
        if res.get("requests", {}).get("cpu") == "100m":
            problems.append("prod keeps the default resources")
        if "NetworkPolicy" not in kinds:
            problems.append("prod has no NetworkPolicy")
        if env.get("DATABASE_TLS_MODE") != "verify-full":
            problems.append("prod must verify the database certificate")
    return problems


def main() -> int:
    started = time.monotonic()
    results = Results()
    work = Path(tempfile.mkdtemp(prefix="userapi-kustomize-"))
    generated = manifests.generate()
    drift = [f"{p.relative_to(chartlib.ROOT)} differs from the chart's output: run `make manifests`"
             for p, text in generated.items() if not p.exists() or p.read_text() != text]
    results.check("committed Kustomize base and components match the chart (make manifests)", drift)

    schemas = checks.load_crd_schemas()
    core_files, checkov_files = [], []
    for name in OVERLAYS:
        proc = subprocess.run([kubectl(), "kustomize", str(chartlib.KUSTOMIZE_DIR / "overlays" / name)],
                              text=True, capture_output=True)
        results.check(f"{name}: kubectl kustomize builds", [proc.stderr.strip()] if proc.returncode else [])
        if proc.returncode:
            continue
        objs = [o for o in yaml.safe_load_all(proc.stdout) if o]
        results.check(f"{name}: overlay promises", expectations(name, objs))
        results.check(f"{name}: restricted pod security", checks.check_hardening(objs))
        results.check(f"{name}: probes, ports, shutdown, strategy, storage, PDB/HPA", checks.check_api_pod(objs))
        results.check(f"{name}: references between objects", checks.check_references(objs, EXTERNAL))
        core, crd_problems = checks.split_for_validation(objs, schemas)
        if crd_problems:
            results.check(f"{name}: custom resources", crd_problems)
        core_files.append(write_yaml(work / "core" / f"{name}.yaml", core))
        checkov_files.append(write_yaml(work / "checkov" / f"{name}.yaml", objs))

    for kv in chartlib.KUBE_VERSIONS:
        results.check(f"kubernetes-validate --strict -k {kv} ({len(core_files)} overlays)", checks.kubernetes_validate(core_files, kv))

    skips = checks.load_checkov_skips()
    proc = subprocess.run(checks.checkov_command(["-d", str(work / "checkov")], "kubernetes"), text=True, capture_output=True)
    problems, passed = [], 0
    try:
        for report in checks.checkov_results(proc.stdout):
            failures, accepted, n = checks.classify_checkov(report, skips, set())
            problems += failures
            passed += n
            for a in accepted:
                print(f"     accepted (checkov-skips.yaml): {a}")
    except ValueError:
        problems.append(f"checkov printed no JSON (exit {proc.returncode}): {proc.stderr.strip()[-800:]}")
    if passed == 0 and not problems:
        problems.append("checkov ran no passing check at all: nothing was scanned")
    results.check(f"checkov kubernetes on the overlays: {passed} passed", problems)

    shutil.rmtree(work, ignore_errors=True)
    print(f"test-kustomize: {time.monotonic() - started:.0f}s")
    print(f"{results.passed} passed, {len(results.failed)} failed")
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
