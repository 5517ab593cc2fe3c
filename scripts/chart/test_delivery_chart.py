"""Chart promises added for issue 29 and its neighbours, asserted on the
rendered chart with the real tools: the management port (probes, metrics,
NetworkPolicy, helm test), reads with a token, ingress presets for the live
users feed, the ALB drain settings, the SQLite backup CronJob, the canary
analysis without data (promtool over the rendered query), checkov's helm
framework as a user runs it, and the chart README's values table.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import chartlib

ROOT = Path(__file__).resolve().parents[2]
POSTGRES = {"database": {"type": "postgres"}, "postgres": {"external": {"host": "db.example.com", "existingSecret": "userapi-db"}}}


def render(values: dict[str, Any] | None = None, files: list[str] = ()) -> list[dict[str, Any]]:
    merged = chartlib.deep_merge(chartlib.load_values([chartlib.CI_DIR / f for f in files]), values or {})
    return chartlib.objects(chartlib.render(merged))


def one(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def api(objs):
    wl = next(o for o in objs if o["kind"] in ("Deployment", "Rollout"))
    return wl["spec"]["template"], next(c for c in wl["spec"]["template"]["spec"]["containers"] if c["name"] == "userapi")


def refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(chartlib.RenderError, match=message):
        chartlib.render(values)


# ---------------------------------------------------------------- management port

def test_probes_metrics_and_env_use_the_management_port() -> None:
    objs = render({}, ["servicemonitor-values.yaml"])
    template, c = api(objs)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": 8080, "management": 9090}
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["HTTP_MANAGEMENT_PORT"] == "9090" and "METRICS_PORT" not in env
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"]["port"] == "management", probe
    assert template["metadata"]["annotations"]["prometheus.io/port"] == "9090"
    svc = one(objs, "Service", "userapi-management")
    assert svc["spec"]["type"] == "ClusterIP" and svc["spec"]["ports"][0]["targetPort"] == "management"
    sm = one(objs, "ServiceMonitor")
    assert sm["spec"]["endpoints"][0]["port"] == "management"
    assert sm["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "management"
    assert svc["metadata"]["labels"]["app.kubernetes.io/component"] == "management"
    api_svc = one(objs, "Service", "userapi")
    assert [p["name"] for p in api_svc["spec"]["ports"]] == ["http"], "the public Service must not carry the management port"


def test_management_port_zero_keeps_everything_on_the_api_port() -> None:
    objs = render({"management": {"port": 0}}, ["servicemonitor-values.yaml"])
    _, c = api(objs)
    assert [p["name"] for p in c["ports"]] == ["http"]
    assert {c[p]["httpGet"]["port"] for p in ("startupProbe", "livenessProbe", "readinessProbe")} == {"http"}
    assert one(objs, "ServiceMonitor")["spec"]["endpoints"][0]["port"] == "http"
    assert not [o for o in objs if o["metadata"]["name"] == "userapi-management"]


def test_management_port_is_refused_on_the_api_port_and_as_an_extra_env() -> None:
    refused({"management": {"port": 8080}}, "management.port .* must differ from containerPort")
    refused({"extraEnv": [{"name": "HTTP_MANAGEMENT_PORT", "value": "1"}]}, "extraEnv sets HTTP_MANAGEMENT_PORT")


def test_networkpolicy_admits_monitoring_and_peers_to_the_management_port() -> None:
    objs = render({"networkPolicy": {"managementPeers": [{"ipBlock": {"cidr": "10.0.0.0/16"}}]}}, ["networkpolicy-values.yaml"])
    rules = one(objs, "NetworkPolicy")["spec"]["ingress"]
    mgmt = [r for r in rules if any(p["port"] == "management" for p in r.get("ports", []))]
    peers = [p for r in mgmt for p in r.get("from", [])]
    assert any(p.get("ipBlock", {}).get("cidr") == "10.0.0.0/16" for p in peers)
    assert any("monitoring" in json.dumps(p) for p in peers)
    assert any(p.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component") == "test" for p in peers)
    http_peers = json.dumps([r for r in rules if any(p["port"] == "http" for p in r.get("ports", []))])
    assert "ingress-nginx" in http_peers


# ---------------------------------------------------------------- reads with a token

def test_reads_need_a_token_and_helm_test_and_notes_send_it() -> None:
    values = yaml.safe_load((chartlib.CHART_DIR / "values.yaml").read_text())
    assert values["config"]["auth"]["protect_reads"] is True
    manifests = chartlib.render({})
    script = one(chartlib.objects(manifests), "Pod")["spec"]["containers"][0]["args"][0]
    gets = [l for l in script.splitlines() if "curl_ " in l and "/users/$id" in l and "-X DELETE" not in l]
    assert gets and all('-H "$auth"' in l for l in gets), gets
    assert "USERAPI_MANAGEMENT_URL" in script and "/readyz" in script
    notes = next(text for path, text in manifests.items() if path.endswith("NOTES.txt"))
    assert 'curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/users' in notes


# ---------------------------------------------------------------- ingress presets, live feed

def ingress_annotations(files: list[str], values: dict[str, Any] | None = None) -> dict[str, str]:
    return one(render(values, files), "Ingress")["metadata"]["annotations"]


def test_nginx_preset_keeps_sse_and_websocket_open() -> None:
    ann = ingress_annotations(["ingress-nginx-tls-values.yaml"])
    assert int(ann["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert int(ann["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600
    assert ann["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert ann["nginx.ingress.kubernetes.io/proxy-body-size"] == "2m", "the user's own annotation must win"


def test_alb_preset_idle_timeout_drain_and_health_check() -> None:
    ann = ingress_annotations(["ingress-alb-tls-values.yaml"])
    idle = int(re.search(r"idle_timeout.timeout_seconds=(\d+)", ann["alb.ingress.kubernetes.io/load-balancer-attributes"]).group(1))
    assert idle > 15, "the ALB would cut /users/events between two heartbeats"
    dereg = int(re.search(r"deregistration_delay.timeout_seconds=(\d+)", ann["alb.ingress.kubernetes.io/target-group-attributes"]).group(1))
    template, _ = api(render({}, ["ingress-alb-tls-values.yaml"]))
    grace = template["spec"]["terminationGracePeriodSeconds"]
    assert 5 < dereg < grace, f"deregistration delay {dereg}s must exceed the 5 s drain and end before the pod is killed ({grace}s)"
    assert ann["alb.ingress.kubernetes.io/healthcheck-port"] == "9090"
    ann2 = ingress_annotations(["ingress-alb-tls-values.yaml"], {"shutdown": {"drainDelaySeconds": 15}})
    assert ann2["alb.ingress.kubernetes.io/target-group-attributes"] != ann["alb.ingress.kubernetes.io/target-group-attributes"]


def test_httproute_timeouts_are_passed_through() -> None:
    route = one(render({"httpRoute": {"timeouts": {"request": "0s"}}}, ["gateway-values.yaml"]), "HTTPRoute")
    assert route["spec"]["rules"][0]["timeouts"] == {"request": "0s"}
    assert "timeouts" not in one(render({}, ["gateway-values.yaml"]), "HTTPRoute")["spec"]["rules"][0]


# ---------------------------------------------------------------- backup CronJob

def test_backup_cronjob_runs_restricted_on_the_api_node() -> None:
    objs = render({}, ["backup-values.yaml"])
    cj = one(objs, "CronJob")
    assert cj["spec"]["schedule"] == "30 2 * * *" and cj["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for c in pod["initContainers"] + pod["containers"]:
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], c["name"]
        assert c["resources"]["limits"]["memory"] and c["resources"]["requests"]["cpu"], c["name"]
    backup = pod["initContainers"][0]
    assert backup["args"][:2] == ["db", "backup"] and backup["args"][2].startswith("/backup/")
    assert backup["image"] == api(objs)[1]["image"], "the backup must run the same userapi version as the server"
    term = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    pod_labels = api(objs)[0]["metadata"]["labels"]
    assert all(pod_labels.get(k) == v for k, v in term["labelSelector"]["matchLabels"].items())
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"data": "userapi-data", "backup": "userapi-backup"}
    assert one(objs, "PersistentVolumeClaim", "userapi-backup")["spec"]["resources"]["requests"]["storage"] == "10Gi"
    rotate = pod["containers"][0]
    assert "KEEP" in rotate["args"][0] and {e["name"]: e["value"] for e in rotate["env"]}["KEEP"] == "14"
    assert "app.kubernetes.io/name" not in cj["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"], \
        "the backup pod must not match the API Service/PDB selectors"


def test_backup_rotation_script_keeps_the_newest(tmp_path: Path) -> None:
    """The rotate container's shell script, run here with /backup pointed at a temp dir."""
    pod = one(render({}, ["backup-values.yaml"]), "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    script = pod["containers"][0]["args"][0].replace("/backup", str(tmp_path))
    for day in range(1, 20):
        (tmp_path / f"userapi-202601{day:02d}T031700Z.sqlite").write_text("old")
    (tmp_path / "unrelated.txt").write_text("keep me")
    (tmp_path / ".incoming-userapi.sqlite").write_text("new backup")
    proc = subprocess.run(["sh", "-c", script], env={**os.environ, "KEEP": "14"}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    kept = sorted(p.name for p in tmp_path.glob("userapi-*.sqlite"))
    assert len(kept) == 14 and "userapi-20260101T031700Z.sqlite" not in kept
    assert (tmp_path / "unrelated.txt").exists() and not (tmp_path / ".incoming-userapi.sqlite").exists()
    assert any((tmp_path / k).read_text() == "new backup" for k in kept)


def test_backup_is_refused_where_it_cannot_work() -> None:
    refused({**POSTGRES, "backup": {"enabled": True}}, "backup.enabled=true backs up the SQLite file")
    refused({"backup": {"enabled": True}, "persistence": {"enabled": False}}, "needs persistence.enabled=true")
    refused({"backup": {"enabled": True}, "persistence": {"accessModes": ["ReadWriteOncePod"]}}, "cannot use a ReadWriteOncePod")
    assert not [o for o in render({}) if o["kind"] == "CronJob"], "backups are opt-in"


# ---------------------------------------------------------------- canary analysis

def analysis_metric() -> dict[str, Any]:
    return one(render({}, ["rollout-values.yaml"]), "AnalysisTemplate")["spec"]["metrics"][0]


def evaluate(condition: str, result: list[float]) -> bool:
    """The subset of Argo's expr language the conditions use."""
    py = condition.replace("&&", " and ").replace("||", " or ")
    py = re.sub(r"!(?!=)", " not ", py)
    return bool(eval(py, {"__builtins__": {}}, {"len": len, "isNaN": lambda x: x != x, "result": result}))  # noqa: S307


def test_analysis_without_data_is_inconclusive() -> None:
    m = analysis_metric()
    ok, bad = m["successCondition"], m["failureCondition"]
    for result, want in (([], "inconclusive"), ([float("nan")], "inconclusive"), ([0.999], "success"), ([0.5], "failure"), ([0.0], "failure")):
        got = "success" if evaluate(ok, result) else "failure" if evaluate(bad, result) else "inconclusive"
        assert got == want, f"result {result}: {got}, expected {want}"
    assert m["inconclusiveLimit"] >= 0


def test_analysis_query_with_promtool(tmp_path: Path, tools) -> None:
    """No traffic gives no sample (so: inconclusive); all-5xx gives 0, not no data; probes do not count."""
    query = analysis_metric()["provider"]["prometheus"]["query"]
    query = query.replace("{{args.namespace}}", "shop").replace("{{args.service}}", "userapi-management")
    base = 'http_requests_total{namespace="shop",service="userapi-management",job="userapi-management"'
    (tmp_path / "rules.yaml").write_text("groups: []\n")
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [
        {"interval": "1m", "input_series": [{"series": base + ',route="/healthz",status="200"}', "values": "0+60x10"}],
         "promql_expr_test": [{"expr": query, "eval_time": "5m", "exp_samples": []}]},
        {"interval": "1m", "input_series": [{"series": base + ',route="/users",status="503"}', "values": "0+60x10"}],
         "promql_expr_test": [{"expr": query, "eval_time": "5m", "exp_samples": [{"labels": "{}", "value": 0}]}]},
        {"interval": "1m", "input_series": [{"series": base + ',route="/users",status="200"}', "values": "0+99x10"},
                                            {"series": base + ',route="/users",status="500"}', "values": "0+1x10"},
                                            {"series": base + ',route="/readyz",status="503"}', "values": "0+500x10"}],
         "promql_expr_test": [{"expr": query, "eval_time": "5m", "exp_samples": [{"labels": "{}", "value": 0.99}]}]},
    ]}
    (tmp_path / "analysis.test.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    proc = subprocess.run([tools.promtool, "test", "rules", "analysis.test.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---------------------------------------------------------------- checkov as a user runs it

def checkov_failures(checkov: str, workdir: Path, env: dict[str, str]) -> list[tuple[str, str]]:
    proc = subprocess.run([checkov, "--skip-download", "--framework", "helm", "--compact", "-o", "json",
                           "-d", str(chartlib.CHART_DIR)], capture_output=True, text=True, env=env, cwd=workdir)
    data = json.loads(proc.stdout) if proc.stdout.strip() else []
    reports = data if isinstance(data, list) else [data]
    assert reports and sum(r.get("summary", {}).get("passed", 0) for r in reports) > 0, proc.stderr[-800:]
    return [(c["check_id"], c["resource"]) for r in reports for c in r.get("results", {}).get("failed_checks", [])]


def test_checkov_helm_framework_findings_are_all_accounted_for(tools, tmp_path: Path) -> None:
    """`checkov -d deploy/helm/userapi --framework helm` (the 16 findings of the issue):
    in namespace default only CKV_K8S_21 is not in checkov-skips.yaml, and it is gone
    once checkov knows the release namespace (HELM_NAMESPACE, as `helm install -n`)."""
    skips = yaml.safe_load((ROOT / "scripts/chart/checkov-skips.yaml").read_text())["skips"]
    assert all(s.get("reason") for s in skips)

    def skipped(check: str, resource: str) -> bool:
        return any(s["check"] == check and re.search(s.get("resource", ".*"), resource) for s in skips)

    env = chartlib.env_with_shim()
    env.pop("HELM_NAMESPACE", None)
    plain = checkov_failures(tools.checkov, tmp_path, env)
    assert plain, "checkov found nothing at all: did it scan the chart?"
    unexplained = sorted({f for f in plain if not skipped(*f) and f[0] != "CKV_K8S_21"})
    assert not unexplained, unexplained
    env["HELM_NAMESPACE"] = chartlib.NAMESPACE
    namespaced = checkov_failures(tools.checkov, tmp_path, env)
    assert not [f for f in namespaced if not skipped(*f)], namespaced
    assert ("CKV_K8S_11", "Pod.userapi.release-name-userapi-test") not in namespaced, "the test pod has a CPU limit"


# ---------------------------------------------------------------- chart README

def test_chart_readme_values_table_is_current(tmp_path: Path) -> None:
    script = ROOT / "deploy/helm/readme_values.py"
    ok = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # The check fails on a stale table: run it against a copy with one more value.
    chart = tmp_path / "helm" / "userapi"
    chart.mkdir(parents=True)
    for name in ("values.yaml", "values.schema.json", "README.md"):
        (chart / name).write_text((chartlib.CHART_DIR / name).read_text())
    (tmp_path / "helm" / "readme_values.py").write_text(script.read_text())
    with (chart / "values.yaml").open("a") as f:
        f.write("\n# -- A value the table does not list yet.\nbrandNew: 1\n")
    stale = subprocess.run([sys.executable, str(tmp_path / "helm" / "readme_values.py"), "--check"], capture_output=True, text=True)
    assert stale.returncode == 1 and "brandNew" in stale.stdout
