"""make test-chart: everything that can be checked about the Helm chart
without a cluster, with the real tools. For every scenario
deploy/helm/userapi/ci/<name>-values.yaml (a test id each):

  - helm lint --strict (Helm v4 library) and a render for the oldest and the
    newest supported Kubernetes release (the chart's kubeVersion is enforced);
  - the chart's promises asserted on the rendered objects (checks.py):
    restricted pods, probes, shutdown timing, strategy, storage rules, PDB/HPA,
    references between objects, values reaching the objects;
  - kubernetes-validate (strict) for both releases, the custom resources
    against scripts/chart/crd-schemas.yaml;
  - checkov on the rendered output, zero failures outside checkov-skips.yaml.

Plus checkov's own helm framework over the chart (through the helm shim), no
stale checkov skip, the values schema covering every value, the monitoring
files in sync with deploy/monitoring, the Argo CD Application, and the object
checks catching known breakages. Values the chart must refuse:
test_chart_negative.py; the real binary run as the chart configures it:
test_contract.py.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import chartlib
import checks
import monitoring_sync
from harness import assert_none

pytestmark = pytest.mark.chart

SCENARIOS = chartlib.scenarios()
KUBE = chartlib.KUBE_VERSIONS


def sources(app: dict[str, Any]) -> list[dict[str, Any]]:
    spec = app.get("spec", {})
    return spec.get("sources") or [spec.get("source", {})]


def argocd_applications() -> list[Path]:
    """Argo CD Applications under deploy/argocd that deploy the chart (one source's path)."""
    docs = {p: yaml.safe_load(p.read_text()) for p in sorted((chartlib.ROOT / "deploy" / "argocd").rglob("*.yaml"))}
    return [p for p, d in docs.items() if isinstance(d, dict) and d.get("kind") == "Application"
            and any(str(s.get("path", "")).rstrip("/") == "deploy/helm/userapi" for s in sources(d))]


ARGOCD = argocd_applications()
crd_schemas = functools.cache(checks.load_crd_schemas)
checkov_skips = functools.cache(checks.load_checkov_skips)


@functools.cache
def values(name: str) -> dict[str, Any]:
    return chartlib.load_values([SCENARIOS[name]])


@functools.cache
def render(name: str, kube: str = KUBE[-1]) -> list[dict[str, Any]]:
    return chartlib.objects(chartlib.render(values(name), kube_version=kube))


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


def values_reach_objects(objs: list[dict[str, Any]], v: dict[str, Any]) -> list[str]:
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


# --- every scenario ---------------------------------------------------------

@pytest.mark.parametrize("name", SCENARIOS)
def test_helm_lint_strict(name):
    assert_none(chartlib.lint(values(name)))


@pytest.mark.parametrize("kube", KUBE)
@pytest.mark.parametrize("name", SCENARIOS)
def test_renders(name, kube):
    assert render(name, kube), "rendered no object"


@pytest.mark.parametrize("name", SCENARIOS)
def test_restricted_pod_security(name):
    assert_none(checks.check_hardening(render(name)))


@pytest.mark.parametrize("name", SCENARIOS)
def test_probes_ports_shutdown_strategy_storage(name):
    assert_none(checks.check_api_pod(render(name)))


@pytest.mark.parametrize("name", SCENARIOS)
def test_references_between_objects(name):
    assert_none(checks.check_references(render(name), external_objects(effective_values(values(name)))))


@pytest.mark.parametrize("name", SCENARIOS)
def test_values_reach_objects(name):
    assert_none(values_reach_objects(render(name), effective_values(values(name))))


@pytest.mark.parametrize("name", SCENARIOS)
def test_custom_resources_valid(name):
    assert_none(checks.split_for_validation(render(name), crd_schemas())[1])


@pytest.mark.parametrize("kube", KUBE)
@pytest.mark.parametrize("name", SCENARIOS)
def test_kubernetes_validate(name, kube):
    core, _ = checks.split_for_validation(render(name, kube), crd_schemas())
    assert_none(checks.kubernetes_validate(core, kube))


@pytest.fixture(scope="module")
def checkov_runs(tools, tmp_path_factory) -> dict[str, list[dict] | AssertionError]:
    """checkov's kubernetes framework over the rendered scenarios (two processes)
    and its helm framework over the chart through the helm shim, all at once."""
    work = tmp_path_factory.mktemp("checkov")
    dirs = [work / "kubernetes-0", work / "kubernetes-1"]
    for d in dirs:
        d.mkdir()
    for i, name in enumerate(SCENARIOS):
        try:
            objs = render(name)
        except chartlib.RenderError:
            continue  # test_renders reports it; test_checkov finds nothing scanned
        # checkov sees the Rollout's pod template as a Deployment too (it has no Rollout policies).
        templates = [o for o in checks.split_for_validation(objs, crd_schemas())[0]
                     if o["metadata"]["name"].endswith("-rollout-template")]
        (dirs[i % 2] / f"{name}.yaml").write_text(chartlib.to_yaml_stream(objs + templates))
    env = chartlib.env_with_shim() | {"HELM_NAMESPACE": chartlib.NAMESPACE}
    procs = {"kubernetes": [checks.checkov(tools.checkov, d, "kubernetes") for d in dirs],
             "helm": [checks.checkov(tools.checkov, chartlib.CHART_DIR, "helm", env=env, cwd=work)]}

    def collect(ps):
        try:
            return [r for p in ps for r in checks.checkov_reports(p)]
        except AssertionError as exc:
            return exc

    return {kind: collect(ps) for kind, ps in procs.items()}


def reports(runs, kind: str) -> list[dict]:
    if isinstance(runs[kind], AssertionError):
        raise runs[kind]
    return runs[kind]


@pytest.mark.parametrize("name", SCENARIOS)
def test_checkov(name, checkov_runs):
    found = reports(checkov_runs, "kubernetes")
    assert checks.checkov_checks(found, "passed", name), f"checkov scanned nothing of {name}"
    assert_none(checks.unaccepted(checks.checkov_checks(found, "failed", name), checkov_skips()))


# --- the chart as a whole ---------------------------------------------------

def test_checkov_helm_framework(checkov_runs):
    found = reports(checkov_runs, "helm")
    assert checks.checkov_checks(found, "passed"), "checkov ran no passing check: nothing was scanned"
    assert_none(checks.unaccepted(checks.checkov_checks(found, "failed"), checkov_skips()))


def test_checkov_skips_still_needed(checkov_runs):
    failed = [f for kind in ("kubernetes", "helm") for f in checks.checkov_checks(reports(checkov_runs, kind), "failed")]
    used = {checks.skip_for(f, checkov_skips()) for f in failed}
    assert_none([f"no longer matches any finding: {s['check']} {s.get('resource', '')}"
                 for i, s in enumerate(checkov_skips()) if i not in used], "checkov-skips.yaml")


@pytest.mark.parametrize("app_file", ARGOCD, ids=lambda p: str(p.relative_to(chartlib.ROOT / "deploy" / "argocd")))
def test_argocd_application_renders_a_sound_release(app_file):
    """The Application is valid and the chart, with its values (valueFiles, `$ref/...` ones
    from this repository, then valuesObject), renders a sound release."""
    app = yaml.safe_load(app_file.read_text())
    assert_none(checks.validate_custom(app, crd_schemas()))
    source = next(s for s in sources(app) if s.get("path"))
    assert (chartlib.ROOT / source["path"]).resolve() == chartlib.CHART_DIR, f"source.path {source['path']}"
    helm, namespace = source.get("helm", {}), app["spec"]["destination"]["namespace"]
    release = helm.get("releaseName", app["metadata"]["name"])
    refs = {s["ref"] for s in sources(app) if s.get("ref")}
    files = [chartlib.ROOT / f.split("/", 1)[1] if f.startswith("$") else chartlib.CHART_DIR / f for f in helm.get("valueFiles", [])]
    assert_none([f"valueFiles {f}: no source with ref {f[1:].split('/')[0]}" for f in helm.get("valueFiles", [])
                 if f.startswith("$") and f[1:].split("/")[0] not in refs])
    app_values = chartlib.deep_merge(chartlib.load_values(files), helm.get("valuesObject", {}))
    external = {e.replace(f"/{chartlib.RELEASE}-", f"/{release}-") for e in external_objects(effective_values(app_values))}
    for kube in KUBE:
        objs = chartlib.objects(chartlib.render(app_values, name=release, namespace=namespace, kube_version=kube))
        core, crd_problems = checks.split_for_validation(objs, crd_schemas())
        assert_none(checks.check_hardening(objs) + checks.check_api_pod(objs) + checks.check_references(objs, external)
                    + crd_problems + checks.kubernetes_validate(core, kube), f"Kubernetes {kube}")


def test_monitoring_copies_match_deploy_monitoring():
    assert_none(monitoring_sync.drift())


def test_kube_version_floor_is_the_oldest_validated_release():
    assert yaml.safe_load((chartlib.CHART_DIR / "Chart.yaml").read_text())["kubeVersion"] == f">={KUBE[0]}-0"


def test_values_schema_declares_every_value():
    """Every key in values.yaml is declared in values.schema.json, with a type."""
    schema = json.loads((chartlib.CHART_DIR / "values.schema.json").read_text())
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

    walk(yaml.safe_load((chartlib.CHART_DIR / "values.yaml").read_text()), schema, "")
    assert_none(problems)


# --- the object checks catch what they claim to ------------------------------

@functools.cache
def default_objects() -> list[dict[str, Any]]:
    return chartlib.objects(chartlib.render({}))


def _pod(objs):
    return checks.workload(objs)["spec"]["template"]["spec"]


def _env(objs, name, value):
    next(e for e in checks.api_container(_pod(objs))["env"] if e["name"] == name)["value"] = value


BREAKAGES = {
    "root allowed": (lambda o: _pod(o)["securityContext"].update(runAsNonRoot=False), checks.check_hardening, "runAsNonRoot"),
    "writable root fs": (lambda o: checks.api_container(_pod(o))["securityContext"].update(readOnlyRootFilesystem=False),
                         checks.check_hardening, "root filesystem is writable"),
    "token mounted": (lambda o: _pod(o).update(automountServiceAccountToken=True), checks.check_hardening, "service-account token"),
    "readiness on /healthz": (lambda o: checks.api_container(_pod(o))["readinessProbe"]["httpGet"].update(path="/healthz"),
                              checks.check_api_pod, "readinessProbe"),
    "grace too short": (lambda o: _pod(o).update(terminationGracePeriodSeconds=20), checks.check_api_pod, "terminationGracePeriodSeconds 20"),
    "sqlite with 2 replicas": (lambda o: checks.workload(o)["spec"].update(replicas=2), checks.check_api_pod, "SQLite with 2 replicas"),
    "sqlite rolling update": (lambda o: checks.workload(o)["spec"].update(strategy={"type": "RollingUpdate"}),
                              checks.check_api_pod, "strategy Recreate"),
    "tokens file not mounted": (lambda o: _env(o, "AUTH_TOKENS_FILE", "/run/tokens"), checks.check_api_pod,
                                "AUTH_TOKENS_FILE=/run/tokens is not provided"),
    "port mismatch": (lambda o: _env(o, "HTTP_PORT", "9000"), checks.check_api_pod, "differs from containerPort"),
}


def test_default_render_passes_the_object_checks():
    assert_none(checks.check_hardening(default_objects()) + checks.check_api_pod(default_objects()))


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_object_checks_report(breakage):
    change, check, expected = BREAKAGES[breakage]
    objs = copy.deepcopy(default_objects())
    change(objs)
    found = check(objs)
    assert any(expected in f for f in found), f"expected {expected!r}; got {found}"
