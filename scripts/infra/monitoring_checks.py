#!/usr/bin/env python3
"""Checks for deploy/monitoring (run by scripts/infra/test-monitoring.sh).

  static  dashboard JSON structure, runbook links, and that the promtool unit
          tests cover every alert both firing and quiet (by mutating the rules
          and requiring the tests to fail).
  live    Debian's Prometheus scrapes two real userapi processes (SQLite and
          PostgreSQL) on loopback and evaluates the rules; after real traffic
          every PromQL expression of the dashboard and the rules must return
          data, and every userapi_*/http_*/process_* metric they name must be
          exported. Run it under scripts/with-postgres.sh.

Each check prints PASS/FAIL; the last line is "N passed, N failed".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import promql  # noqa: E402
from tally import Tally  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
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


# ---------------------------------------------------------------- sources


def load_rules(path: Path = RULES) -> list[dict]:
    data = yaml.safe_load(path.read_text())
    return [r for g in data["groups"] for r in g["rules"]]


def rule_expressions(path: Path = RULES) -> list[tuple[str, str, bool]]:
    """(source, expr, is_alert) for every rule."""
    out = []
    for r in load_rules(path):
        if "alert" in r:
            out.append((f"alert:{r['alert']}", r["expr"], True))
        else:
            out.append((f"record:{r['record']}", r["expr"], False))
    return out


def dashboard_panels(dash: dict) -> list[dict]:
    panels = []
    for p in dash.get("panels", []):
        panels.append(p)
        panels.extend(p.get("panels", []))  # collapsed rows nest their panels
    return panels


def dashboard_expressions(dash: dict) -> list[tuple[str, str]]:
    out = []
    for p in dashboard_panels(dash):
        for t in p.get("targets", []):
            if t.get("expr"):
                out.append((f"panel:{p['title']}/{t.get('refId', '?')}", t["expr"]))
    return out


LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$", re.S)


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


def github_anchor(heading: str) -> str:
    slug = heading.strip().lower()
    slug = re.sub(r"[^\w\- ]", "", slug)
    return slug.replace(" ", "-")


# ---------------------------------------------------------------- static


def check_dashboard(res: Tally) -> dict | None:
    try:
        dash = json.loads(DASHBOARD.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        res.check(False, "dashboard is valid JSON", str(exc))
        return None
    res.check(True, "dashboard is valid JSON")
    res.check(bool(dash.get("uid")) and bool(dash.get("title")), "dashboard has uid and title")
    panels = dashboard_panels(dash)
    ids = [p.get("id") for p in panels]
    res.check(len(ids) == len(set(ids)) and None not in ids, "panel ids are unique", str(ids))
    graph = [p for p in panels if p.get("type") != "row"]
    no_targets = [p.get("title") for p in graph if not p.get("targets")]
    res.check(not no_targets, "every panel has queries", str(no_targets))
    bad_ds = [p.get("title") for p in graph
              if (p.get("datasource") or {}).get("uid") != "${datasource}"
              or any((t.get("datasource") or {}).get("uid") != "${datasource}" for t in p.get("targets", []))]
    res.check(not bad_ds, "every panel and query uses the $datasource variable", str(bad_ds))
    for p in graph:
        refs = [t.get("refId") for t in p.get("targets", [])]
        if len(refs) != len(set(refs)):
            res.check(False, f"refIds unique in panel {p.get('title')}", str(refs))
    overlaps = []
    boxes = [(p.get("title"), p["gridPos"]) for p in panels]
    for i, (ta, a) in enumerate(boxes):
        for tb, b in boxes[i + 1:]:
            if a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]:
                overlaps.append(f"{ta} / {tb}")
    res.check(not overlaps, "panels do not overlap", "; ".join(overlaps))
    res.check(all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in panels), "panels fit the 24-column grid")
    text = " ".join(e for _, e in dashboard_expressions(dash))
    # The list of what the dashboard must show, by the metric that carries it.
    for need in ("http_requests_total", "http_request_duration_seconds_bucket", "userapi_storage_operation_duration_seconds_bucket",
                 "userapi_storage_errors_total", "userapi_db_pool_connections_in_use", "process_resident_memory_bytes",
                 "process_cpu_seconds_total", "userapi_build_info"):
        res.check(need in text, f"dashboard shows {need}")
    try:
        dashboard_variables(dash)
        res.check(True, "dashboard variables are label_values() queries")
    except ValueError as exc:
        res.check(False, "dashboard variables are label_values() queries", str(exc))
    return dash


def check_runbook_links(res: Tally) -> None:
    headings = set()
    if RUNBOOK.exists():
        for line in RUNBOOK.read_text().splitlines():
            m = re.match(r"^#{1,6}\s+(.*)$", line)
            if m:
                headings.add(github_anchor(m.group(1)))
    for r in load_rules():
        if "alert" not in r:
            continue
        url = r.get("annotations", {}).get("runbook_url", "")
        anchor = url.split("#", 1)[1] if "#" in url else ""
        res.check(url.endswith(f"docs/operations.md#{anchor}") and anchor in headings,
                  f"{r['alert']} runbook_url points at a heading of docs/operations.md", url or "missing")
        for key in ("summary", "description"):
            res.check(bool(r.get("annotations", {}).get(key)), f"{r['alert']} has a {key}")
        res.check(r.get("labels", {}).get("severity") in ("critical", "warning"), f"{r['alert']} has severity critical|warning")


def promtool_test(rules_text: str | None, workdir: Path) -> tuple[int, str]:
    """Run promtool test rules on copies of the test files against rules_text (None = the real rules)."""
    rules_dir = workdir / "rules"
    tests_dir = workdir / "tests"
    shutil.rmtree(workdir, ignore_errors=True)
    rules_dir.mkdir(parents=True)
    tests_dir.mkdir()
    (rules_dir / RULES.name).write_text(rules_text if rules_text is not None else RULES.read_text())
    files = []
    for t in sorted(TESTS_DIR.glob("*.yaml")):
        shutil.copy(t, tests_dir / t.name)
        files.append(str(tests_dir / t.name))
    p = subprocess.run(["promtool", "test", "rules", *files], capture_output=True, text=True, timeout=180)
    return p.returncode, p.stdout + p.stderr


def mutate_alerts(expr_for: str) -> str:
    data = yaml.safe_load(RULES.read_text())
    for g in data["groups"]:
        for r in g["rules"]:
            if "alert" in r:
                r["expr"] = expr_for
    return yaml.safe_dump(data, sort_keys=False)


def failed_alertnames(output: str) -> set[str]:
    return set(re.findall(r"alertname: (\w+)", output))


def check_test_coverage(res: Tally) -> None:
    alerts = {r["alert"] for r in load_rules() if "alert" in r}
    firing, quiet = set(), set()
    for t in sorted(TESTS_DIR.glob("*.yaml")):
        for case in yaml.safe_load(t.read_text()).get("tests", []):
            for a in case.get("alert_rule_test", []):
                (firing if a.get("exp_alerts") else quiet).add(a["alertname"])
    res.check(not (alerts - firing), "every alert has a firing unit test", str(sorted(alerts - firing)))
    res.check(not (alerts - quiet), "every alert has a not-firing unit test", str(sorted(alerts - quiet)))
    res.check(not ((firing | quiet) - alerts), "unit tests name only existing alerts", str(sorted((firing | quiet) - alerts)))
    with tempfile.TemporaryDirectory(prefix="userapi-promtool-") as tmp:
        code, out = promtool_test(None, Path(tmp) / "real")
        res.check(code == 0, "promtool test rules passes on the real rules", out[-2000:])
        # Negative controls: alerts that never fire must break every firing
        # test, alerts that always fire must break every quiet test.
        code, out = promtool_test(mutate_alerts("vector(1) == 2"), Path(tmp) / "never")
        missed = alerts - failed_alertnames(out)
        res.check(code != 0 and not missed, "tests catch each alert that never fires", str(sorted(missed)))
        code, out = promtool_test(mutate_alerts("vector(1)"), Path(tmp) / "always")
        missed = alerts - failed_alertnames(out)
        res.check(code != 0 and not missed, "tests catch each alert that always fires", str(sorted(missed)))


def cmd_static(_: argparse.Namespace) -> int:
    res = Tally()
    try:
        promql._self_test()
        res.check(True, "PromQL lexer self-test (metric names, bool rewriting)")
    except AssertionError as exc:
        res.check(False, "PromQL lexer self-test (metric names, bool rewriting)", str(exc))
    check_dashboard(res)
    check_runbook_links(res)
    check_test_coverage(res)
    return res.finish()


# ---------------------------------------------------------------- live


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: dict | None = None, headers: dict | None = None, timeout: float = 5) -> int:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code
    except (urllib.error.URLError, OSError):
        return 0


def http_json(url: str, timeout: float = 5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def wait_until(what: str, pred, timeout: float, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except RuntimeError:
            raise  # a process died: waiting longer cannot help
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last_exc = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}" + (f" ({last_exc})" if last_exc else ""))


class Procs:
    """Started processes, stopped (TERM, then KILL) on exit."""

    def __init__(self) -> None:
        self.items: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
        fh = open(log, "wb")  # noqa: SIM115 - closed with the process
        p = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.items.append((name, p))
        return p

    def stop_all(self) -> None:
        for _, p in reversed(self.items):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _, p in reversed(self.items):
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)


def generate_traffic(base: str, token: str, tag: str) -> dict[int, int]:
    """Reads, writes, client errors and a conflict against one instance; returns status counts."""
    counts: dict[int, int] = {}

    def hit(method, path, body=None, auth=True, headers=None):
        h = dict(headers or {})
        if auth:
            h["Authorization"] = f"Bearer {token}"
        s = http(method, base + path, body, h)
        counts[s] = counts.get(s, 0) + 1
        return s

    for path in ("/", "/version", "/healthz", "/readyz", "/openapi.yaml", "/users", "/users?limit=2"):
        hit("GET", path, auth=False)
    ids = []
    for i in range(6):
        req = urllib.request.Request(base + "/users", method="POST",
                                     data=json.dumps({"name": f"Live {i}", "username": f"{tag}{i}", "email": f"{tag}{i}@example.test"}).encode(),
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                ids.append(json.loads(r.read())["id"])
                counts[r.status] = counts.get(r.status, 0) + 1
        except urllib.error.HTTPError as e:
            counts[e.code] = counts.get(e.code, 0) + 1
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


def prom_query(base: str, expr: str) -> list:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        body = http_json(url, timeout=10)
    except urllib.error.HTTPError as e:
        body = json.loads(e.read() or b"{}")
        raise ValueError(body.get("error", f"HTTP {e.code}")) from None
    if body.get("status") != "success":
        raise ValueError(body.get("error", "query failed"))
    result = body["data"]["result"]
    if body["data"]["resultType"] == "scalar":
        return [result]
    return result


def load_allowlist() -> dict[str, str]:
    entries = yaml.safe_load(ALLOWLIST.read_text()) or []
    out = {}
    for e in entries:
        if not e.get("source") or not str(e.get("reason", "")).strip():
            raise ValueError(f"allowlist entry needs source and reason: {e}")
        out[e["source"]] = e["reason"]
    return out


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


def evaluate_all(res: Tally, prom: str, exprs: list[tuple[str, str]], exported: set[str], recorded: set[str],
                 allow: dict[str, str]) -> None:
    used_allow = set()
    for source, expr in exprs:
        names = promql.metric_names(expr)
        problems = name_problems(names, exported, recorded)
        if source in allow:
            used_allow.add(source)
            own = sorted(n for n in names if not n.startswith("kube_"))
            res.check(not own, f"{source}: allowlisted ({allow[source]})",
                      f"allowlisted expressions may only use kube-state-metrics, but it uses {own}")
            continue
        if not res.check(not problems, f"{source}: every metric name is provided", "; ".join(problems)):
            continue
        try:
            result = wait_until(f"data for {source}", lambda e=expr: prom_query(prom, e), timeout=15, interval=1)
            res.check(True, f"{source}: returns data ({len(result)} series)")
        except (TimeoutError, ValueError) as exc:
            res.check(False, f"{source}: returns data", f"{exc}; query: {expr}")
    stale = sorted(set(allow) - used_allow)
    res.check(not stale, "allowlist has no stale entries", str(stale))


def cmd_live(args: argparse.Namespace) -> int:
    res = Tally()
    binary = args.binary
    pg_url = os.environ.get("USERAPI_TEST_POSTGRES_URL")
    if not Path(binary).is_file() or not os.access(binary, os.X_OK):
        res.check(False, f"userapi binary at {binary}", "build it (make build) or set USERAPI_BIN")
        return res.finish()
    if not pg_url:
        res.check(False, "PostgreSQL for the live test", "run under scripts/with-postgres.sh")
        return res.finish()
    prometheus = shutil.which("prometheus")
    if not prometheus:
        res.check(False, "prometheus binary", "install Debian's prometheus (scripts/tools/ensure-apt.sh prometheus)")
        return res.finish()

    tmp = Path(tempfile.mkdtemp(prefix="userapi-live-"))
    procs = Procs()
    token = "live-" + os.urandom(8).hex()
    try:
        ports = {"sqlite": free_port(), "postgres": free_port(), "prom": free_port()}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "AUTH_", "HTTP_", "CONFIG_FILE", "ENV_FILE"))}
        # An empty .env so a developer's config/.env cannot change the test.
        (tmp / "empty.env").write_text("")
        env.update({"AUTH_TOKENS": token, "ENV_FILE": str(tmp / "empty.env")})
        common = ["serve", "--host", "127.0.0.1", "--log-format", "json", "--set", "log.access=false",
                  "--set", "shutdown.drain_delay=0s"]
        sqlite_proc = procs.start("userapi-sqlite", [binary, *common, "--port", str(ports["sqlite"]),
                                       "--database-url", f"sqlite:{tmp}/live.sqlite", "--set", "instance.name=live-sqlite"],
                    tmp / "userapi-sqlite.log", env)
        pg_proc = procs.start("userapi-postgres", [binary, *common, "--port", str(ports["postgres"]),
                                         "--database-url", pg_url, "--set", "instance.name=live-postgres"],
                    tmp / "userapi-postgres.log", env)
        bases = {k: f"http://127.0.0.1:{ports[k]}" for k in ("sqlite", "postgres")}
        for (k, b), proc in zip(bases.items(), (sqlite_proc, pg_proc)):
            wait_until(f"userapi ({k}) ready", lambda b=b, proc=proc: _alive(proc, k) and http("GET", b + "/readyz") == 200, timeout=60)
        res.check(True, "both userapi instances are ready (sqlite and postgres)")

        (tmp / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "userapi", "static_configs": [
                {"targets": [f"127.0.0.1:{ports['sqlite']}", f"127.0.0.1:{ports['postgres']}"]}]}],
        }))
        procs.start("prometheus", [prometheus, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                                   f"--web.listen-address=127.0.0.1:{ports['prom']}", "--log.level=warn"],
                    tmp / "prometheus.log")
        prom = f"http://127.0.0.1:{ports['prom']}"
        wait_until("prometheus ready", lambda: http("GET", prom + "/-/ready") == 200, timeout=60)
        rule_groups = http_json(prom + "/api/v1/rules")["data"]["groups"]
        loaded = sum(len(g["rules"]) for g in rule_groups)
        res.check(loaded == len(load_rules()), f"prometheus loaded all {loaded} rules")

        # Traffic: both instances, then a PostgreSQL outage for real 5xx,
        # storage "unavailable" errors and failing readiness.
        counts = {k: generate_traffic(b, token, f"live{k[:2]}") for k, b in bases.items()}
        pg_bin, pg_data = os.environ.get("PG_BIN", ""), os.environ.get("PGDATA_DIR", "")
        run_as = shlex.split(os.environ.get("PG_RUN_AS", ""))
        stop = subprocess.run([*run_as, f"{pg_bin}/pg_ctl", "-D", pg_data, "-m", "immediate", "-w", "stop"],
                              capture_output=True, text=True, timeout=60)
        res.check(stop.returncode == 0, "PostgreSQL stopped to simulate an outage", stop.stderr[-500:])
        outage: dict[int, int] = {}
        lock = threading.Lock()

        def during_outage(path: str, method: str = "GET", body=None) -> None:
            s = http(method, bases["postgres"] + path, body, {"Authorization": f"Bearer {token}"}, timeout=10)
            with lock:
                outage[s] = outage.get(s, 0) + 1

        threads = [threading.Thread(target=during_outage, args=(p,)) for p in ["/users"] * 6 + ["/readyz"] * 4]
        threads.append(threading.Thread(target=during_outage, args=("/users", "POST", {"name": "X", "username": "outage", "email": "o@example.test"})))
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        print(f"traffic status counts: sqlite={counts['sqlite']} postgres={counts['postgres']} outage={outage}")
        res.check(any(200 <= s < 300 for s in counts["sqlite"]) and any(400 <= s < 500 for s in counts["sqlite"]),
                  "traffic got 2xx and 4xx answers")
        res.check(outage.get(503, 0) > 0, "the outage produced 503 answers", str(outage))
        traffic_end = time.time()

        # At least two scrapes of every target after the traffic, then one
        # rule evaluation after those.
        def scraped_twice() -> bool:
            targets = http_json(prom + "/api/v1/targets")["data"]["activeTargets"]
            ok = len(targets) == 2 and all(t["health"] == "up" for t in targets)
            samples = prom_query(prom, 'count_over_time(up{job="userapi"}[1h])')
            ok = ok and len(samples) == 2 and all(float(s["value"][1]) >= 2 for s in samples)
            return ok and all(_ts(t["lastScrape"]) > traffic_end + 1.0 for t in targets)

        wait_until("two scrapes of both targets after the traffic", scraped_twice, timeout=30)

        def evaluated() -> bool:
            groups = http_json(prom + "/api/v1/rules")["data"]["groups"]
            return all(_ts(g["lastEvaluation"]) > traffic_end + 2.0 for g in groups)

        wait_until("rule evaluation after the scrapes", evaluated, timeout=30)
        res.check(True, "prometheus scraped both targets twice after the traffic and evaluated the rules")
        health = [r for g in http_json(prom + "/api/v1/rules")["data"]["groups"] for r in g["rules"] if r.get("health") != "ok"]
        res.check(not health, "every rule evaluates without error", str([(r["name"], r.get("lastError")) for r in health]))

        exported = set(http_json(prom + "/api/v1/label/__name__/values")["data"])
        recorded = {r["record"] for r in load_rules() if "record" in r}
        allow = load_allowlist()

        dash = json.loads(DASHBOARD.read_text())
        values = dict(GRAFANA_BUILTINS)
        for name, selector, label in dashboard_variables(dash):
            sel = substitute(selector, values)
            series = prom_query(prom, sel)
            found = sorted({s["metric"].get(label, "") for s in series} - {""})
            res.check(bool(found), f"variable:{name}: label_values({sel}, {label}) has values", "none")
            # What Grafana sends with several values selected: a regex alternation.
            values[name] = "|".join(found) if found else "^$"
        exprs = [(s, substitute(e, values)) for s, e in dashboard_expressions(dash)]
        exprs += [(s, promql.with_bool(e) if is_alert else e) for s, e, is_alert in rule_expressions()]
        evaluate_all(res, prom, exprs, exported, recorded, allow)

        # Negative controls: the same checks must reject a dashboard query on
        # a metric the service does not export, and a query that selects nothing.
        probe = Tally(prefix="    control: ")
        print("negative controls (their FAIL lines are expected):")
        evaluate_all(probe, prom, [("control:unexported", 'sum(rate(userapi_not_exported_total{job=~"userapi"}[1m]))')],
                     exported, recorded, {})
        res.check(probe.failed == 1, "a metric name the service does not export is rejected")
        probe = Tally(prefix="    control: ")
        evaluate_all(probe, prom, [("control:empty", 'sum by (route) (rate(http_requests_total{route="/definitely-not-a-route"}[1m]))')],
                     exported, recorded, {})
        res.check(probe.failed == 1, "an expression that returns no data is rejected")
        probe = Tally(prefix="    control: ")
        evaluate_all(probe, prom, [("control:allowlisted-own", "up")], exported, recorded, {"control:allowlisted-own": "test"})
        res.check(probe.failed == 1, "an allowlist entry cannot hide a non-kube-state-metrics expression")
    except Exception as exc:  # noqa: BLE001 - reported as a failed check, logs shown below
        res.check(False, "live monitoring test ran to the end", f"{type(exc).__name__}: {exc}")
        for log in sorted(tmp.glob("*.log")):
            print(f"--- last lines of {log.name}:")
            print("\n".join(log.read_text(errors="replace").splitlines()[-15:]))
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    return res.finish()


def _alive(proc: subprocess.Popen, name: str) -> bool:
    if proc.poll() is not None:
        raise RuntimeError(f"{name} exited with status {proc.returncode}")
    return True


def _ts(rfc3339: str) -> float:
    # Prometheus prints nanoseconds; Python's fromisoformat takes up to microseconds.
    from datetime import datetime

    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", rfc3339)
    if not m:
        raise ValueError(f"bad timestamp {rfc3339}")
    frac = (m.group(2) or ".0")[:7]
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.fromisoformat(m.group(1) + frac + tz).timestamp()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("static", help="dashboard structure, runbook links, unit-test coverage")
    live = sub.add_parser("live", help="real Prometheus against real userapi processes")
    live.add_argument("--binary", default=os.environ.get("USERAPI_BIN", str(ROOT / ".build" / "debug" / "userapi")))
    args = ap.parse_args()
    return {"static": cmd_static, "live": cmd_live}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
