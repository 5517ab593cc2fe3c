"""Checks on rendered Kubernetes objects, shared by the chart and Kustomize
tests: the hardening and consistency rules the chart promises (asserted on
its output, not on its templates), schema validation of custom resources,
kubernetes-validate, and checkov's runs and skips.

Every function returns a list of problems (empty = pass) so callers can
report all of them at once.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate as k8s_schemas
import yaml

from chartlib import SCRIPTS_DIR

API_CONTAINER = "userapi"
WORKLOAD_KINDS = {"Deployment", "Rollout"}
CRD_SCHEMAS_FILE = SCRIPTS_DIR / "crd-schemas.yaml"
CHECKOV_SKIPS_FILE = SCRIPTS_DIR / "checkov-skips.yaml"


def name_of(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def seconds(value: str) -> float:
    """The app's duration syntax: 500ms, 5s, 2m or bare seconds."""
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m)?", value.strip())
    if not m:
        raise ValueError(f"not a duration: {value!r}")
    number, unit = float(m.group(1)), m.group(2) or "s"
    return number * {"ms": 0.001, "s": 1, "m": 60}[unit]


def pod_specs(objs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(owner name, pod spec) for every object that runs pods."""
    specs = []
    for o in objs:
        kind = o.get("kind")
        if kind == "Pod":
            specs.append((name_of(o), o["spec"]))
        elif kind in WORKLOAD_KINDS | {"Job", "StatefulSet", "DaemonSet"}:
            specs.append((name_of(o), o["spec"]["template"]["spec"]))
    return specs


def workload(objs: list[dict[str, Any]]) -> dict[str, Any] | None:
    found = [o for o in objs if o.get("kind") in WORKLOAD_KINDS]
    return found[0] if len(found) == 1 else None


def api_container(pod_spec: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in pod_spec["containers"] if c["name"] == API_CONTAINER)


def env_map(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def check_hardening(objs: list[dict[str, Any]]) -> list[str]:
    """Restricted Pod Security for every pod the manifests can start."""
    problems = []
    for owner, spec in pod_specs(objs):
        psc = spec.get("securityContext", {})
        if psc.get("runAsNonRoot") is not True:
            problems.append(f"{owner}: pod securityContext.runAsNonRoot is not true")
        if psc.get("runAsUser") != 65532 or psc.get("runAsGroup") != 65532:
            problems.append(f"{owner}: pod does not run as UID/GID 65532")
        if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{owner}: pod seccompProfile is not RuntimeDefault")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{owner}: service-account token is mounted")
        if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
            problems.append(f"{owner}: uses host namespaces")
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            sc = c.get("securityContext", {})
            where = f"{owner} container {c['name']}"
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: root filesystem is writable")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                problems.append(f"{where}: capabilities do not drop ALL")
            if sc.get("capabilities", {}).get("add"):
                problems.append(f"{where}: adds capabilities")
            if sc.get("privileged"):
                problems.append(f"{where}: privileged")
            res = c.get("resources", {})
            if not res.get("requests", {}).get("memory") or not res.get("limits", {}).get("memory"):
                problems.append(f"{where}: memory request/limit missing")
            if not res.get("requests", {}).get("cpu"):
                problems.append(f"{where}: cpu request missing")
    return problems


def check_api_pod(objs: list[dict[str, Any]]) -> list[str]:
    """Probes, ports, shutdown timing, strategy and storage rules of the API workload."""
    problems: list[str] = []
    wl = workload(objs)
    if wl is None:
        return ["expected exactly one Deployment or Rollout"]
    where = name_of(wl)
    spec = wl["spec"]
    pod = spec["template"]["spec"]
    c = api_container(pod)
    env = env_map(c)
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}

    if "http" not in ports:
        problems.append(f"{where}: no container port named http")
    elif env.get("HTTP_PORT") != str(ports["http"]):
        problems.append(f"{where}: HTTP_PORT {env.get('HTTP_PORT')} differs from containerPort {ports['http']}")
    if env.get("HTTP_HOST") != "0.0.0.0":
        problems.append(f"{where}: HTTP_HOST is not 0.0.0.0 (the app would listen on loopback only)")
    # With a management port (HTTP_MANAGEMENT_PORT) the app serves its probes there.
    probe_port = "management" if "management" in ports else "http"
    if "management" in ports and env.get("HTTP_MANAGEMENT_PORT") != str(ports["management"]):
        problems.append(f"{where}: HTTP_MANAGEMENT_PORT {env.get('HTTP_MANAGEMENT_PORT')} differs from containerPort {ports['management']}")
    expected = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in expected.items():
        get = c.get(probe, {}).get("httpGet", {})
        if get.get("path") != path or get.get("port") != probe_port:
            problems.append(f"{where}: {probe} is not httpGet {path} on port {probe_port}")

    try:
        drain, timeout = seconds(env["SHUTDOWN_DRAIN_DELAY"]), seconds(env["SHUTDOWN_TIMEOUT"])
        grace = pod.get("terminationGracePeriodSeconds", 30)
        if not grace > drain + timeout:
            problems.append(f"{where}: terminationGracePeriodSeconds {grace} <= drain {drain} + timeout {timeout}")
    except (KeyError, ValueError) as exc:
        problems.append(f"{where}: shutdown env missing or invalid: {exc}")

    for field in ("minReadySeconds", "revisionHistoryLimit", "progressDeadlineSeconds"):
        if field not in spec:
            problems.append(f"{where}: {field} not set")

    sqlite = env.get("DATABASE_URL", "").startswith("sqlite:")
    hpa = [o for o in objs if o.get("kind") == "HorizontalPodAutoscaler"]
    pdb = [o for o in objs if o.get("kind") == "PodDisruptionBudget"]
    replicas = spec.get("replicas", 1)
    if sqlite:
        if wl["kind"] != "Deployment" or spec.get("strategy", {}).get("type") != "Recreate":
            problems.append(f"{where}: SQLite needs a Deployment with strategy Recreate")
        if replicas != 1:
            problems.append(f"{where}: SQLite with {replicas} replicas")
        if hpa or pdb:
            problems.append(f"{where}: SQLite with an HPA or PDB")
        for o in objs:
            if o.get("kind") == "PersistentVolumeClaim":
                modes = set(o["spec"].get("accessModes", []))
                if modes - {"ReadWriteOnce", "ReadWriteOncePod"}:
                    problems.append(f"{name_of(o)}: SQLite volume with access modes {sorted(modes)}")
    else:
        if wl["kind"] == "Deployment":
            strategy = spec.get("strategy", {})
            if strategy.get("type") != "RollingUpdate" or strategy.get("rollingUpdate", {}).get("maxUnavailable") != 0:
                problems.append(f"{where}: expected RollingUpdate with maxUnavailable 0")
        else:
            if spec["strategy"]["canary"].get("maxUnavailable") != 0:
                problems.append(f"{where}: canary maxUnavailable is not 0")
        if not env.get("DATABASE_PASSWORD_FILE"):
            problems.append(f"{where}: PostgreSQL without DATABASE_PASSWORD_FILE")
        if re.match(r"^postgres(ql)?://[^/@]*:[^/@]*@", env.get("DATABASE_URL", "")):
            problems.append(f"{where}: DATABASE_URL contains a password")
    multi = bool(hpa) or replicas > 1
    if multi and not pdb:
        problems.append(f"{where}: more than one pod but no PodDisruptionBudget")
    if pdb and not multi:
        problems.append(f"{where}: PodDisruptionBudget on a single pod blocks node drains")
    for h in hpa:
        ref = h["spec"]["scaleTargetRef"]
        if (ref["kind"], ref["name"]) != (wl["kind"], wl["metadata"]["name"]):
            problems.append(f"{name_of(h)}: scaleTargetRef {ref['kind']}/{ref['name']} is not {where}")
        if "behavior" not in h["spec"]:
            problems.append(f"{name_of(h)}: no scaling behavior")
    if hpa and "replicas" in spec:
        problems.append(f"{where}: sets replicas although an HPA owns them")

    keys = {t.get("topologyKey") for t in pod.get("topologySpreadConstraints", [])}
    if not {"topology.kubernetes.io/zone", "kubernetes.io/hostname"} <= keys:
        problems.append(f"{where}: no topology spread over zones and nodes")

    problems += check_mounts(objs, where, pod, c, env)
    return problems


def check_mounts(objs, where, pod, c, env) -> list[str]:
    """Env vars that name files must point into a mounted volume that provides them."""
    problems = []
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}

    def provided(path: str) -> bool:
        for mount_path, vol_name in mounts.items():
            if not path.startswith(mount_path.rstrip("/") + "/"):
                continue
            rel = path[len(mount_path.rstrip("/")) + 1:]
            vol = volumes.get(vol_name, {})
            sources = vol.get("projected", {}).get("sources", [])
            if "secret" in vol or "configMap" in vol:
                sources = [vol]
            for src in sources:
                ref = src.get("secret") or src.get("configMap") or {}
                items = ref.get("items")
                if items is None or any(i["path"] == rel for i in items):
                    return True
        return False

    for var in ("CONFIG_FILE", "ENV_FILE", "AUTH_TOKENS_FILE", "DATABASE_PASSWORD_FILE", "DATABASE_TLS_CA_FILE"):
        if var in env and not provided(env[var]):
            problems.append(f"{where}: {var}={env[var]} is not provided by any mounted volume")
    for required in ("CONFIG_FILE", "AUTH_TOKENS_FILE"):
        if required not in env:
            problems.append(f"{where}: {required} not set")
    if "AUTH_TOKENS" in env:
        problems.append(f"{where}: tokens passed as an env var instead of a file")
    if env.get("DATABASE_URL", "").startswith("sqlite:"):
        path = env["DATABASE_URL"].removeprefix("sqlite:")
        if not any(path.startswith(m.rstrip("/") + "/") for m in mounts):
            problems.append(f"{where}: SQLite file {path} is not on a mounted volume")
    if not any(m == "/tmp" for m in mounts):
        problems.append(f"{where}: no writable /tmp (the root filesystem is read-only)")
    return problems


def check_references(objs: list[dict[str, Any]], external: set[str]) -> list[str]:
    """ConfigMaps/Secrets/PVCs used by pods exist (or are named external),
    and Services/Ingresses/routes/monitors point at things that exist."""
    problems = []
    have = {(o["kind"], o["metadata"]["name"]) for o in objs}
    for owner, spec in pod_specs(objs):
        for v in spec.get("volumes", []):
            refs = []
            if "configMap" in v:
                refs.append(("ConfigMap", v["configMap"]["name"]))
            if "secret" in v:
                refs.append(("Secret", v["secret"]["secretName"]))
            if "persistentVolumeClaim" in v:
                refs.append(("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"]))
            for src in v.get("projected", {}).get("sources", []):
                if "configMap" in src:
                    refs.append(("ConfigMap", src["configMap"]["name"]))
                if "secret" in src:
                    refs.append(("Secret", src["secret"]["name"]))
            for ref in refs:
                if ref not in have and f"{ref[0]}/{ref[1]}" not in external:
                    problems.append(f"{owner}: volume {v['name']} uses {ref[0]}/{ref[1]}, which is neither rendered nor a declared external object")
        sa = spec.get("serviceAccountName")
        if sa and sa != "default" and ("ServiceAccount", sa) not in have and f"ServiceAccount/{sa}" not in external:
            problems.append(f"{owner}: service account {sa} is not rendered")
    services = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Service"}
    wl = workload(objs)
    pod_labels = wl["spec"]["template"]["metadata"].get("labels", {}) if wl else {}
    container_ports = {p["name"] for p in api_container(wl["spec"]["template"]["spec"]).get("ports", [])} if wl else set()
    for svc in services.values():
        sel = svc["spec"].get("selector", {})
        if not sel or any(pod_labels.get(k) != v for k, v in sel.items()):
            problems.append(f"{name_of(svc)}: selector {sel} does not match the pods")
        for p in svc["spec"]["ports"]:
            if isinstance(p.get("targetPort"), str) and p["targetPort"] not in container_ports:
                problems.append(f"{name_of(svc)}: targetPort {p['targetPort']} is not a container port")
    selectors = [(name_of(o), o["spec"]["selector"]) for o in objs if o["kind"] == "Service"]
    selectors += [(name_of(o), o["spec"]["selector"].get("matchLabels", {})) for o in objs if o["kind"] == "PodDisruptionBudget"]
    for o in objs:
        if o["kind"] == "Pod" or o["kind"] == "Job":
            labels = o["metadata"].get("labels", {}) if o["kind"] == "Pod" else o["spec"]["template"]["metadata"].get("labels", {})
            for owner, sel in selectors:
                if sel and all(labels.get(k) == v for k, v in sel.items()):
                    problems.append(f"{owner}: selector also matches the non-API pod {name_of(o)}")
    for o in objs:
        if o["kind"] == "Ingress":
            for rule in o["spec"].get("rules", []):
                for path in rule["http"]["paths"]:
                    b = path["backend"]["service"]
                    svc = services.get(b["name"])
                    if not svc or b["port"].get("name") not in {p["name"] for p in svc["spec"]["ports"]}:
                        problems.append(f"{name_of(o)}: backend {b} is not a rendered Service port")
        if o["kind"] == "HTTPRoute":
            for rule in o["spec"]["rules"]:
                for b in rule.get("backendRefs", []):
                    svc = services.get(b["name"])
                    if not svc or b.get("port") not in {p["port"] for p in svc["spec"]["ports"]}:
                        problems.append(f"{name_of(o)}: backendRef {b} is not a rendered Service port")
        if o["kind"] == "ServiceMonitor":
            sel = o["spec"]["selector"].get("matchLabels", {})
            match = [s for s in services.values() if all(s["metadata"].get("labels", {}).get(k) == v for k, v in sel.items())]
            if not match:
                problems.append(f"{name_of(o)}: selects no rendered Service")
            for ep in o["spec"]["endpoints"]:
                if match and ep.get("port") not in {p["name"] for s in match for p in s["spec"]["ports"]}:
                    problems.append(f"{name_of(o)}: endpoint port {ep.get('port')} is not a Service port")
        if o["kind"] == "NetworkPolicy":
            for rule in o["spec"].get("ingress", []):
                for p in rule.get("ports", []):
                    if isinstance(p.get("port"), str) and p["port"] not in container_ports:
                        problems.append(f"{name_of(o)}: ingress port {p['port']} is not a container port")
    return problems


# --- custom resources -------------------------------------------------------

def load_crd_schemas() -> dict[str, Any]:
    return yaml.safe_load(CRD_SCHEMAS_FILE.read_text())["schemas"]


METADATA_SCHEMA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 63}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def is_custom(obj: dict[str, Any], schemas: dict[str, Any]) -> bool:
    return f"{obj.get('apiVersion')} {obj.get('kind')}" in schemas


def validate_custom(obj: dict[str, Any], schemas: dict[str, Any]) -> list[str]:
    schema = dict(schemas[f"{obj['apiVersion']} {obj['kind']}"])
    schema.setdefault("properties", {})
    schema = {**schema, "properties": {**schema["properties"], "metadata": METADATA_SCHEMA}}
    validator = jsonschema.Draft7Validator(schema)
    return [f"{name_of(obj)}: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]


def rollout_as_deployment(obj: dict[str, Any]) -> dict[str, Any]:
    """A Deployment carrying a Rollout's pod template, so the template gets the
    same strict Kubernetes validation and checkov policies as a Deployment's."""
    spec = {k: v for k, v in obj["spec"].items() if k in ("replicas", "selector", "template", "minReadySeconds", "revisionHistoryLimit", "progressDeadlineSeconds")}
    meta = copy.deepcopy(obj["metadata"])
    meta["name"] = f"{meta['name']}-rollout-template"
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": copy.deepcopy(spec)}


def split_for_validation(objs: list[dict[str, Any]], schemas: dict[str, Any]) -> tuple[list[dict], list[str]]:
    """Core objects for kubernetes-validate (Rollout templates included as
    Deployments), plus the problems found in custom resources."""
    core, problems = [], []
    for o in objs:
        if is_custom(o, schemas):
            problems += validate_custom(o, schemas)
            if o["kind"] == "Rollout":
                core.append(rollout_as_deployment(o))
        elif "." in o.get("apiVersion", "").split("/")[0] and not o["apiVersion"].split("/")[0].endswith("k8s.io"):
            problems.append(f"{name_of(o)}: custom resource {o['apiVersion']} has no schema in {CRD_SCHEMAS_FILE.name}")
        else:
            core.append(o)
    return core, problems


def kubernetes_validate(objs: list[dict[str, Any]], version: str) -> list[str]:
    """Strict validation of core objects against the Kubernetes release's OpenAPI schemas
    (the kubernetes-validate library); a kind without a schema is a problem too."""
    problems = []
    for o in objs:
        try:
            k8s_schemas.validate(o, version, strict=True)
        except k8s_schemas.ValidationError as e:
            problems.append(f"{name_of(o)}: {'.'.join(map(str, e.path))}: {e.message}")
        except (k8s_schemas.SchemaNotFoundError, k8s_schemas.InvalidSchemaError) as e:
            problems.append(f"{name_of(o)}: {e.message}")
    return problems


# --- checkov ----------------------------------------------------------------

def load_checkov_skips() -> list[dict[str, Any]]:
    skips = yaml.safe_load(CHECKOV_SKIPS_FILE.read_text())["skips"]
    for s in skips:
        if not s.get("reason") or not s.get("check"):
            raise ValueError(f"{CHECKOV_SKIPS_FILE.name}: every skip needs check and reason: {s}")
    return skips


def checkov(checkov_bin: str, directory: Path, framework: str, *extra: str, **popen: Any) -> subprocess.Popen:
    """checkov started on a directory, JSON on stdout; several can run at once."""
    cmd = [checkov_bin, "--skip-download", "--framework", framework, "--compact", "-o", "json", "-d", str(directory), *extra]
    return subprocess.Popen(cmd, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def checkov_reports(proc: subprocess.Popen) -> list[dict[str, Any]]:
    out, err = proc.communicate(timeout=1800)
    try:
        data = json.loads(out) if out.strip() else []
    except ValueError:
        data = None
    if not data:
        raise AssertionError(f"checkov printed no report (exit {proc.returncode}): {err.strip()[-800:]}")
    reports = data if isinstance(data, list) else [data]
    if any(r.get("summary", {}).get("parsing_errors") for r in reports):
        raise AssertionError("checkov could not parse some of the input")
    return reports


def checkov_checks(reports: list[dict[str, Any]], kind: str, file: str | None = None) -> list[dict[str, Any]]:
    """The passed_checks or failed_checks of the reports, of one file (its stem) when given."""
    return [c for r in reports for c in r.get("results", {}).get(f"{kind}_checks", [])
            if file is None or Path(c.get("file_path", "")).stem == file]


def skip_for(finding: dict[str, Any], skips: list[dict[str, Any]]) -> int | None:
    """Index of the checkov-skips.yaml entry that accepts a failed check, if any."""
    return next((i for i, s in enumerate(skips) if s["check"] == finding["check_id"]
                 and re.search(s.get("resource", ".*"), finding.get("resource", ""))), None)


def unaccepted(failed: list[dict[str, Any]], skips: list[dict[str, Any]]) -> list[str]:
    return [f"{f['check_id']} {f['check_name']} on {f.get('resource', '')} ({Path(f.get('file_path', '')).name})"
            for f in failed if skip_for(f, skips) is None]
