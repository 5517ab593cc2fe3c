"""make test-monitoring (and test-infra): deploy/monitoring with real tools.

Static: promtool check rules (and a broken copy rejected), the promtool unit
tests pass and cover every alert both firing and quiet (the rules mutated so
every alert never fires, then always fires: the tests must fail for each),
the dashboard's structure, every alert's annotations and runbook link.

Live: Debian's Prometheus (scraping every second, the rules loaded) scrapes
two real userapi processes (userapi_bin) on loopback, one on SQLite and one
on the throwaway PostgreSQL, which is stopped for a while to get real 5xx,
storage errors, failing readiness and refused feed watchers; on SQLite a
feed watcher catches up, then is dropped for falling behind. After the
traffic, each PromQL
expression of the dashboard and the rules (alerts with `bool` comparisons,
see promql.py) must return data, and every userapi_*/http_*/process_* metric
it names must be exported. Expressions only kube-state-metrics can feed are
listed in monitoring-live-allowlist.yaml.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from http.client import HTTPConnection
from pathlib import Path

import pytest
import yaml

import promql
from harness import ROOT, assert_none, free_port, http, tail, wait_for

pytestmark = pytest.mark.monitoring

MON = ROOT / "deploy" / "monitoring"
RULES = MON / "rules" / "userapi-alerts.yaml"
DASHBOARD = MON / "dashboards" / "userapi.json"
TESTS_DIR = MON / "tests"
RUNBOOK = ROOT / "docs" / "operations.md"
ALLOWLIST = Path(__file__).resolve().parent / "monitoring-live-allowlist.yaml"
# Metric families the service itself must export; any other name must be a
# recording rule of ours, Prometheus' own `up`, or allowlisted.
OWN_PREFIXES = ("userapi_", "http_", "process_")
# Grafana's built-in variables, replaced the way Grafana would for a 1s scrape.
GRAFANA_BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m", "__range_s": "300"}
LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$", re.S)


# ---------------------------------------------------------------- sources

def load_rules() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def load_dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_panels(dash: dict) -> list[dict]:
    return [q for p in dash.get("panels", []) for q in [p, *p.get("panels", [])]]  # collapsed rows nest panels


def expressions() -> dict[str, tuple[str, bool]]:
    """{source: (expr, is_alert)} of the dashboard's queries and every rule; empty if a file is unreadable
    (its own tests report that)."""
    try:
        out = {f"panel:{p['title']}/{t.get('refId', '?')}": (t["expr"], False)
               for p in dashboard_panels(load_dashboard()) for t in p.get("targets", []) if t.get("expr")}
        for r in load_rules():
            out[f"alert:{r['alert']}" if "alert" in r else f"record:{r['record']}"] = (r["expr"], "alert" in r)
        return out
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError):
        return {}


def dashboard_variables(dash: dict) -> list[tuple[str, str, str]]:
    """(name, selector expression, label) for each label_values() query variable, in order."""
    out = []
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = LABEL_VALUES.match(q or "")
        if not m:
            raise ValueError(f"variable {v.get('name')}: only label_values(<selector>, <label>) is supported, got {q!r}")
        out.append((v["name"], m.group(1), m.group(2)))
    return out


def substitute(expr: str, values: dict[str, str]) -> str:
    def repl(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name not in values:
            raise KeyError(f"unknown dashboard variable ${name} in {expr!r}")
        return values[name]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?\}|\$([A-Za-z_][A-Za-z0-9_]*)", repl, expr)


def load_allowlist() -> dict[str, str]:
    entries = yaml.safe_load(ALLOWLIST.read_text()) or []
    assert_none([str(e) for e in entries if not e.get("source") or not str(e.get("reason", "")).strip()],
                "allowlist entries need a source and a reason")
    return {e["source"]: e["reason"] for e in entries}


EXPRESSIONS = expressions()
try:
    VARIABLES = [v[0] for v in dashboard_variables(load_dashboard())]
except (OSError, ValueError):
    VARIABLES = []  # test_dashboard_structure reports it
ALERTS = sorted(s.removeprefix("alert:") for s in EXPRESSIONS if s.startswith("alert:"))


# ---------------------------------------------------------------- promql.py

def test_promql_metric_names():
    e = 'sum by (route, le) (rate(http_request_duration_seconds_bucket{job=~"a|b",route!="/x{y}"}[5m])) > 0.5 and on (job) up == 0'
    assert promql.metric_names(e) == {"http_request_duration_seconds_bucket", "up"}
    assert promql.metric_names("histogram_quantile(0.99, sum without (instance) (rate(x_bucket[1m] offset 5m)))") == {"x_bucket"}
    assert promql.metric_names("ns:rec:ratio_rate5m / 1e3") == {"ns:rec:ratio_rate5m"}


def test_promql_with_bool():
    e = 'rate(x{route!="/x{y}"}[5m]) > 0.5 and on (job) up == 0'
    assert promql.with_bool(e) == 'rate(x{route!="/x{y}"}[5m]) > bool 0.5 and on (job) up == bool 0'
    assert promql.with_bool("a > bool 1") == "a > bool 1"


# ---------------------------------------------------------------- promtool

def test_promtool_check_rules(tools):
    p = subprocess.run([tools.promtool, "check", "rules", *map(str, sorted(RULES.parent.glob("*.yaml")))],
                       capture_output=True, text=True)
    assert p.returncode == 0 and "SUCCESS" in p.stdout, p.stdout + p.stderr


def test_promtool_check_rules_rejects_a_broken_expression(tools, tmp_path):
    text = RULES.read_text()
    broken = text.replace("(rate(http_requests_total", "(rate(http_requests_total[", 1)
    assert broken != text, "no rate(http_requests_total ...) to break"
    (tmp_path / "broken.yaml").write_text(broken)
    p = subprocess.run([tools.promtool, "check", "rules", str(tmp_path / "broken.yaml")], capture_output=True, text=True)
    assert p.returncode != 0, p.stdout


def mutate_alerts(expr: str) -> str:
    data = yaml.safe_load(RULES.read_text())
    for r in (r for g in data["groups"] for r in g["rules"] if "alert" in r):
        r["expr"] = expr
    return yaml.safe_dump(data, sort_keys=False)


@pytest.mark.parametrize("alerts", [None, "vector(1) == 2", "vector(1)"], ids=["real rules pass", "never firing caught",
                                                                               "always firing caught"])
def test_promtool_unit_tests(alerts, tools, tmp_path):
    """promtool test rules on copies of the tests, against the real rules or rules whose
    every alert never (always) fires: then each alert's firing (quiet) test must fail."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / RULES.name).write_text(RULES.read_text() if alerts is None else mutate_alerts(alerts))
    shutil.copytree(TESTS_DIR, tmp_path / "tests")
    p = subprocess.run([tools.promtool, "test", "rules", *map(str, sorted((tmp_path / "tests").glob("*.yaml")))],
                       capture_output=True, text=True, timeout=600)
    if alerts is None:
        assert p.returncode == 0, p.stdout + p.stderr
    else:
        missed = set(ALERTS) - set(re.findall(r"alertname: (\w+)", p.stdout + p.stderr))
        assert p.returncode != 0 and not missed, f"no failing test for {sorted(missed)}"


def test_every_alert_has_a_firing_and_a_quiet_unit_test():
    firing, quiet = set(), set()
    for t in sorted(TESTS_DIR.glob("*.yaml")):
        for case in yaml.safe_load(t.read_text()).get("tests", []):
            for a in case.get("alert_rule_test", []):
                (firing if a.get("exp_alerts") else quiet).add(a["alertname"])
    alerts = set(ALERTS)
    assert_none([f"{a}: no firing test" for a in sorted(alerts - firing)] + [f"{a}: no quiet test" for a in sorted(alerts - quiet)]
                 + [f"{a}: tested but not an alert" for a in sorted((firing | quiet) - alerts)])


# ---------------------------------------------------------------- dashboard, annotations

def test_dashboard_structure():
    dash = load_dashboard()
    assert dash.get("uid") and dash.get("title"), "dashboard without uid or title"
    panels = dashboard_panels(dash)
    ids = [p.get("id") for p in panels]
    assert len(ids) == len(set(ids)) and None not in ids, f"panel ids not unique: {ids}"
    graphs = [p for p in panels if p.get("type") != "row"]
    assert_none([f"{p.get('title')}: no queries" for p in graphs if not p.get("targets")])
    assert_none([f"{p.get('title')}: not on the $datasource variable" for p in graphs
                 if (p.get("datasource") or {}).get("uid") != "${datasource}"
                 or any((t.get("datasource") or {}).get("uid") != "${datasource}" for t in p.get("targets", []))])
    assert_none([f"{p.get('title')}: refIds repeat" for p in graphs
                 if len({t.get("refId") for t in p.get("targets", [])}) != len(p.get("targets", []))])
    boxes = [(p.get("title"), p["gridPos"]) for p in panels]
    assert_none([f"{ta} overlaps {tb}" for i, (ta, a) in enumerate(boxes) for tb, b in boxes[i + 1:]
                 if a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]])
    assert_none([f"{t}: beyond the 24-column grid" for t, g in boxes if g["x"] + g["w"] > 24])
    dashboard_variables(dash)  # raises unless every variable is a label_values() query


# The list of what the dashboard must show, by the metric that carries it.
@pytest.mark.parametrize("metric", ["http_requests_total", "http_request_duration_seconds_bucket",
                                    "userapi_storage_operation_duration_seconds_bucket", "userapi_storage_errors_total",
                                    "userapi_db_pool_connections_in_use", "process_resident_memory_bytes",
                                    "process_cpu_seconds_total", "userapi_build_info", "userapi_feed_watchers",
                                    "userapi_feed_events_sent_total", "userapi_feed_watchers_dropped_total"])
def test_dashboard_shows(metric):
    assert metric in " ".join(e for s, (e, _) in EXPRESSIONS.items() if s.startswith("panel:"))


def github_anchor(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("alert", ALERTS)
def test_alert_annotations_and_runbook(alert):
    rule = next(r for r in load_rules() if r.get("alert") == alert)
    headings = {github_anchor(m) for m in re.findall(r"(?m)^#{1,6}\s+(.*)$", RUNBOOK.read_text())} if RUNBOOK.exists() else set()
    url = rule.get("annotations", {}).get("runbook_url", "")
    anchor = url.split("#", 1)[1] if "#" in url else ""
    assert url.endswith(f"docs/operations.md#{anchor}") and anchor in headings, f"runbook_url {url or 'missing'}"
    assert rule["annotations"].get("summary") and rule["annotations"].get("description"), "summary or description missing"
    assert rule.get("labels", {}).get("severity") in ("critical", "warning")


# ---------------------------------------------------------------- allowlist

def name_problems(names: set[str], exported: set[str], recorded: set[str]) -> list[str]:
    """Names an expression uses that nothing provides."""
    bad = []
    for n in sorted(names):
        if ":" in n:
            if n not in recorded:
                bad.append(f"{n} (no recording rule defines it)")
        elif n.startswith(OWN_PREFIXES):
            if n not in exported:
                bad.append(f"{n} (userapi does not export it)")
        elif n != "up" and not n.startswith("kube_"):
            bad.append(f"{n} (unknown metric family)")
    return bad


def not_kube_state_metrics(expr: str) -> list[str]:
    return sorted(n for n in promql.metric_names(expr) if not n.startswith("kube_"))


def test_allowlist_entries_match_expressions():
    assert_none(sorted(set(load_allowlist()) - set(EXPRESSIONS)), "stale allowlist entries")


@pytest.mark.parametrize("source", [s for s in EXPRESSIONS if s in load_allowlist()])
def test_allowlisted_expression_uses_only_kube_state_metrics(source):
    assert_none(not_kube_state_metrics(EXPRESSIONS[source][0]))


def test_an_allowlist_entry_cannot_hide_other_metrics():
    assert not_kube_state_metrics("up") == ["up"]


# ---------------------------------------------------------------- live

@dataclass
class Live:
    prom: str
    counts: dict[str, dict[int, int]]
    outage: dict[int, int]
    rules_loaded: int
    exported: set[str]
    recorded: set[str]
    variables: dict[str, str]
    variable_values: dict[str, list[str]]


def prom_query(base: str, expr: str) -> list:
    status, body = http("GET", f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    data = json.loads(body or b"{}")
    if status != 200 or data.get("status") != "success":
        raise ValueError(data.get("error", f"HTTP {status}"))
    result = data["data"]["result"]
    return [result] if data["data"]["resultType"] == "scalar" else result


def prom_json(base: str, path: str):
    status, body = http("GET", base + path)
    assert status == 200, f"{path}: HTTP {status}"
    return json.loads(body)["data"]


def timestamp(rfc3339: str) -> float:
    # Prometheus prints nanoseconds; Python's fromisoformat takes up to microseconds.
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", rfc3339)
    assert m, f"bad timestamp {rfc3339}"
    return datetime.fromisoformat(m.group(1) + (m.group(2) or ".0")[:7] + ("+00:00" if m.group(3) == "Z" else m.group(3))).timestamp()


def generate_traffic(base: str, token: str, tag: str) -> dict[int, int]:
    """Reads, writes, client errors and a conflict against one instance; returns status counts."""
    counts: dict[int, int] = {}

    def hit(method, path, body=None, auth=True, headers=None):
        h = dict(headers or {}) | ({"Authorization": f"Bearer {token}"} if auth else {})
        status, answer = http(method, base + path, body, h)
        counts[status] = counts.get(status, 0) + 1
        return status, answer

    for path in ("/", "/version", "/healthz", "/readyz", "/openapi.yaml", "/users", "/users?limit=2"):
        hit("GET", path, auth=False)
    ids = []
    for i in range(6):
        status, answer = hit("POST", "/users", {"name": f"Live {i}", "username": f"{tag}{i}", "email": f"{tag}{i}@example.test"})
        if status == 201:
            ids.append(json.loads(answer)["id"])
    hit("POST", "/users", {"name": "Dup", "username": f"{tag}0", "email": f"{tag}0@example.test"})  # 409
    hit("POST", "/users", {"name": "No token", "username": f"{tag}x", "email": f"{tag}x@example.test"}, auth=False)  # 401
    hit("POST", "/users", {"name": "", "username": "!", "email": "nope"})  # 422
    hit("GET", "/users/00000000-0000-0000-0000-000000000000", auth=False)  # 404
    hit("GET", "/no/such/route", auth=False)  # unmatched 404
    for uid in ids[:3]:
        hit("GET", f"/users/{uid}", auth=False)
        hit("PATCH", f"/users/{uid}", {"name": "Patched"})
        hit("PUT", f"/users/{uid}", {"name": "Put", "username": f"{tag}p{uid[:4]}", "email": f"{tag}p{uid[:4]}@example.test"},
            headers={"If-Match": '"stale"'})  # 412
    for uid in ids[3:]:
        hit("DELETE", f"/users/{uid}")
    return counts


def drop_a_slow_watcher(base: str, token: str, tag: str) -> None:
    """A feed watcher (GET /users/events?since=0) gets the events so far, then, once a
    heartbeat says it has caught up, bursts of concurrent creates until the server drops it
    for falling more than events.max_lag (1 here) behind: a burst committed between two
    reads of the feed is one batch. Feeds userapi_feed_* (sent, watchers, dropped too_slow)."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    conn = HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", "/users/events?since=0", headers={"Authorization": f"Bearer {token}"})
    stream = conn.getresponse()
    assert stream.status == 200, f"GET /users/events: {stream.status}"
    bursts = iter(range(1000))

    def create(i: int) -> None:
        http("POST", base + "/users", {"name": "Feed", "username": f"{tag}f{i}", "email": f"{tag}f{i}@example.test"},
             {"Authorization": f"Bearer {token}"})

    def dropped() -> bool:
        """Reads up to the next heartbeat (then sends a burst: False) or to the end of the stream."""
        while line := stream.readline():
            if line.startswith(b": disconnected"):
                return True
            if line.startswith(b": heartbeat"):
                n = next(bursts)
                with ThreadPoolExecutor(8) as pool:
                    list(pool.map(create, range(n * 8, n * 8 + 8)))
                return False
        raise RuntimeError("the feed stream ended without dropping the watcher")

    try:
        wait_for("a feed watcher dropped as too slow", dropped, interval=0)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def live(tools, start_userapi, postgres, tmp_path_factory):
    prometheus = tools.prometheus
    tmp = tmp_path_factory.mktemp("live")
    token = "live-" + os.urandom(8).hex()
    (tmp / "empty.env").write_text("")  # so a developer's config/.env cannot change the test
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "AUTH_", "HTTP_", "CONFIG_FILE", "ENV_FILE"))}
    env |= {"AUTH_TOKENS": token, "ENV_FILE": str(tmp / "empty.env")}
    common = ["--log-format", "json", "--set", "log.access=false", "--set", "shutdown.drain_delay=0s"]
    servers = {
        # A lag of 1 and a 1 s heartbeat so that drop_a_slow_watcher gets its drop at once.
        "sqlite": start_userapi("userapi-sqlite", *common, "--database-url", f"sqlite:{tmp}/live.sqlite",
                                "--set", "instance.name=live-sqlite", "--set", "events.max_lag=1",
                                "--set", "events.heartbeat=1s", env=env),
        "postgres": start_userapi("userapi-postgres", *common, "--database-url", postgres.fresh_database(),
                                  "--set", "instance.name=live-postgres", env=env),
    }
    port = free_port()
    (tmp / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        # The namespace label is what Kubernetes service discovery adds (the dashboard selects by it).
        "scrape_configs": [{"job_name": "userapi", "static_configs": [{"targets": [s.url.removeprefix("http://") for s in servers.values()],
                                                                     "labels": {"namespace": "userapi-live"}}]}],
    }))
    log = tmp / "prometheus.log"
    with open(log, "wb") as out:
        prom_proc = subprocess.Popen([prometheus, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                                      f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"], stdout=out, stderr=subprocess.STDOUT)
    prom = f"http://127.0.0.1:{port}"
    watched = [prom_proc, *(s.process for s in servers.values())]
    stopped, result = False, None
    try:
        wait_for("prometheus ready", lambda: http("GET", prom + "/-/ready")[0] == 200, process=watched, log=log)
        rules_loaded = sum(len(g["rules"]) for g in prom_json(prom, "/api/v1/rules")["groups"])
        # Traffic on both instances, then a PostgreSQL outage for real 5xx, storage
        # "unavailable" errors and failing readiness.
        counts = {k: generate_traffic(s.url, token, f"live{k[:2]}") for k, s in servers.items()}
        drop_a_slow_watcher(servers["sqlite"].url, token, "livefeed")
        postgres.stop("immediate")
        stopped = True
        outage: dict[int, int] = {}
        lock = threading.Lock()

        def during_outage(path: str, method: str = "GET", body=None) -> None:
            status = http(method, servers["postgres"].url + path, body, {"Authorization": f"Bearer {token}"}, timeout=30)[0]
            with lock:
                outage[status] = outage.get(status, 0) + 1

        # A feed watcher cannot start without the database either: 503 (refused watchers).
        paths = ["/users"] * 6 + ["/readyz"] * 4 + ["/users/events"] * 2
        threads = [threading.Thread(target=during_outage, args=(p,)) for p in paths]
        threads.append(threading.Thread(target=during_outage, args=("/users", "POST", {"name": "X", "username": "outage", "email": "o@example.test"})))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        traffic_end = time.time()

        def scraped_twice_then_evaluated() -> bool:
            """Two scrapes of every target after the traffic, then one rule evaluation after those."""
            targets = prom_json(prom, "/api/v1/targets")["activeTargets"]
            samples = prom_query(prom, 'count_over_time(up{job="userapi"}[1h])')
            return (len(targets) == 2 and all(t["health"] == "up" and timestamp(t["lastScrape"]) > traffic_end + 1.0 for t in targets)
                    and len(samples) == 2 and all(float(s["value"][1]) >= 2 for s in samples)
                    and all(timestamp(g["lastEvaluation"]) > traffic_end + 2.0 for g in prom_json(prom, "/api/v1/rules")["groups"]))

        wait_for("two scrapes of both targets after the traffic and a rule evaluation", scraped_twice_then_evaluated,
                 interval=0.5, process=watched, log=log)
        variables, found = dict(GRAFANA_BUILTINS), {}
        for name, selector, label in dashboard_variables(load_dashboard()):
            found[name] = sorted({s["metric"].get(label, "") for s in prom_query(prom, substitute(selector, variables))} - {""})
            # What Grafana sends with several values selected: a regex alternation.
            variables[name] = "|".join(found[name]) if found[name] else "^$"
        result = Live(prom, counts, outage, rules_loaded, set(prom_json(prom, "/api/v1/label/__name__/values")),
                      {r["record"] for r in load_rules() if "record" in r}, variables, found)
    except Exception as exc:  # noqa: BLE001 - reported below; the logs once, in the first test's captured output
        error = f"live setup: {type(exc).__name__}: {exc}"
        print("".join(tail(s.log, 60) for s in servers.values()) + tail(log), file=sys.stderr)
    try:
        if result is None:
            pytest.fail(error, pytrace=False)
        yield result
    finally:
        prom_proc.terminate()
        prom_proc.wait(timeout=60)
        if stopped:
            postgres.start()


def test_live_prometheus_loaded_every_rule(live):
    assert live.rules_loaded == len(load_rules())


def test_live_traffic_got_2xx_and_4xx(live):
    statuses = live.counts["sqlite"]
    assert any(200 <= s < 300 for s in statuses) and any(400 <= s < 500 for s in statuses), live.counts


def test_live_outage_answered_503(live):
    assert live.outage.get(503, 0) > 0, live.outage


def test_live_every_rule_evaluates_without_error(live):
    rules = [r for g in prom_json(live.prom, "/api/v1/rules")["groups"] for r in g["rules"]]
    assert_none([f"{r['name']}: {r.get('lastError')}" for r in rules if r.get("health") != "ok"])


@pytest.mark.parametrize("variable", VARIABLES)
def test_live_dashboard_variable_has_values(variable, live):
    assert live.variable_values[variable], f"label_values for ${variable} found nothing"


@pytest.mark.parametrize("source", EXPRESSIONS)
def test_live_expression_returns_data(source, live):
    expr, is_alert = EXPRESSIONS[source]
    if source in load_allowlist():
        pytest.skip(f"allowlisted: {load_allowlist()[source]}")
    query = promql.with_bool(expr) if is_alert else substitute(expr, live.variables)
    assert_none(name_problems(promql.metric_names(query), live.exported, live.recorded), "metric names nothing provides")
    prom_query(live.prom, query)  # a query Prometheus rejects fails here, without waiting
    wait_for(f"data for {source}: {query}", lambda: prom_query(live.prom, query), interval=1)


def test_live_a_metric_the_service_does_not_export_is_rejected(live):
    names = promql.metric_names('sum(rate(userapi_not_exported_total{job=~"userapi"}[1m]))')
    assert name_problems(names, live.exported, live.recorded) == ["userapi_not_exported_total (userapi does not export it)"]


def test_live_an_expression_without_data_is_rejected(live):
    assert prom_query(live.prom, 'sum by (route) (rate(http_requests_total{route="/definitely-not-a-route"}[1m]))') == []
