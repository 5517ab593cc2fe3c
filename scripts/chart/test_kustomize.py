"""make test-kustomize: the Kustomize base is what the chart renders (no
drift), and every overlay builds with `kubectl kustomize` and passes the same
checks as the chart's scenarios: restricted pods, probes/shutdown/strategy/
storage rules, references, kubernetes-validate (strict) for the oldest and
newest supported Kubernetes, checkov with only the listed skips, plus what
each overlay promises (dev: one SQLite pod; staging/prod: PostgreSQL, HPA,
PDB; prod: at least three pods, more resources, NetworkPolicy).
"""

from __future__ import annotations

import functools
import subprocess
from typing import Any

import pytest
import yaml

import chartlib
import checks
import manifests
from harness import assert_none

pytestmark = pytest.mark.kustomize

OVERLAYS = ["dev", "staging", "prod"]
# Secrets the overlays expect to be created beforehand (see their kustomization.yaml).
EXTERNAL = {"Secret/userapi-tokens", "Secret/userapi-db", "Secret/rds-ca"}


@pytest.fixture(scope="module")
def build(tools):
    """build(overlay) -> objects of `kubectl kustomize deploy/kustomize/overlays/<overlay>`."""

    @functools.cache
    def kustomize(name: str) -> subprocess.CompletedProcess:
        return subprocess.run([tools.kubectl, "kustomize", str(chartlib.KUSTOMIZE_DIR / "overlays" / name)],
                              text=True, capture_output=True)

    def objects(name: str) -> list[dict[str, Any]]:
        proc = kustomize(name)
        assert proc.returncode == 0, f"kubectl kustomize {name}: {proc.stderr.strip()}"
        return [o for o in yaml.safe_load_all(proc.stdout) if o]

    return objects


def promises(name: str, objs: list[dict[str, Any]]) -> list[str]:
    problems = []
    kinds = [o["kind"] for o in objs]
    wl = checks.workload(objs)
    if wl is None:
        return ["no single Deployment"]
    env = checks.env_map(checks.api_container(wl["spec"]["template"]["spec"]))
    hpa = next((o for o in objs if o["kind"] == "HorizontalPodAutoscaler"), None)
    namespaces = {o["metadata"].get("namespace") for o in objs if o["kind"] != "Namespace"}
    if namespaces != {f"userapi-{name}"}:
        problems.append(f"objects in namespaces {namespaces}, expected userapi-{name}")
    if any(o["metadata"]["name"] != f"userapi-{name}" for o in objs if o["kind"] == "Namespace"):
        problems.append(f"the overlay creates a Namespace other than userapi-{name}")
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


def test_base_and_components_match_the_chart():
    assert_none([f"{p.relative_to(chartlib.ROOT)} differs from the chart's output: run `make manifests`"
                 for p, text in manifests.generate().items() if not p.exists() or p.read_text() != text])


@pytest.mark.parametrize("name", OVERLAYS)
def test_kubectl_kustomize_builds(name, build):
    assert build(name)


@pytest.mark.parametrize("name", OVERLAYS)
def test_overlay_promises(name, build):
    assert_none(promises(name, build(name)))


@pytest.mark.parametrize("name", OVERLAYS)
def test_restricted_pod_security(name, build):
    assert_none(checks.check_hardening(build(name)))


@pytest.mark.parametrize("name", OVERLAYS)
def test_probes_ports_shutdown_strategy_storage(name, build):
    assert_none(checks.check_api_pod(build(name)))


@pytest.mark.parametrize("name", OVERLAYS)
def test_references_between_objects(name, build):
    assert_none(checks.check_references(build(name), EXTERNAL))


@pytest.mark.parametrize("name", OVERLAYS)
def test_custom_resources_valid(name, build):
    assert_none(checks.split_for_validation(build(name), checks.load_crd_schemas())[1])


@pytest.mark.parametrize("kube", chartlib.KUBE_VERSIONS)
@pytest.mark.parametrize("name", OVERLAYS)
def test_kubernetes_validate(name, kube, build):
    assert_none(checks.kubernetes_validate(checks.split_for_validation(build(name), checks.load_crd_schemas())[0], kube))


@pytest.fixture(scope="module")
def checkov_reports(tools, build, tmp_path_factory) -> list[dict]:
    work = tmp_path_factory.mktemp("checkov")
    for name in OVERLAYS:
        try:
            (work / f"{name}.yaml").write_text(chartlib.to_yaml_stream(build(name)))
        except AssertionError:
            continue  # reported by the overlay's own tests; its checkov test finds nothing scanned
    return checks.checkov_reports(checks.checkov(tools.checkov, work, "kubernetes"))


@pytest.mark.parametrize("name", OVERLAYS)
def test_checkov(name, checkov_reports):
    assert checks.checkov_checks(checkov_reports, "passed", name), f"checkov scanned nothing of {name}"
    assert_none(checks.unaccepted(checks.checkov_checks(checkov_reports, "failed", name), checks.load_checkov_skips()))
