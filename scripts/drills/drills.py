#!/usr/bin/env python3
"""Rollout and failure drills with real processes and a real load balancer.

What Kubernetes would do, measured on one machine: release userapi binaries,
PostgreSQL, and HAProxy standing in for the Service/Ingress (health checks on
the chart's readiness probe). Settings (drain delay, shutdown timeout, probe
path and timing, grace period, minReadySeconds, surge, memory limit) come
from the rendered Helm chart, so the drills test what would ship.

  drills.py [--short] [--only rolling,crash,database,freeze,sqlite,overload,feed]

Each drill prints what it does and a result row; the run ends with a table,
writes JSON and Markdown to bench/results/, and exits non-zero when an
expectation fails (make drills). The CI short drills run as pytest tests
(test_drills.py, make test-drills). Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from http.client import HTTPConnection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import feed  # noqa: E402
from cluster import ROOT, Balancer, ChartSettings, Replica, kill_all, stop_all, version_of, workdir  # noqa: E402
from harness import Postgres, http, wait_for  # noqa: E402
from load import Load, verify_acknowledged  # noqa: E402

PG_VALUES = {
    "replicaCount": 3,
    "database": {"type": "postgres"},
    "postgres": {"external": {"host": "db.internal", "existingSecret": "userapi-db"}, "tls": {"mode": "disable"}},
}
SQLITE_VALUES: dict = {}


class Drill:
    def __init__(self, name: str):
        self.name = name
        self.row: dict = {"drill": name}
        self.failures: list[str] = []

    def say(self, text: str) -> None:
        print(f"  [{self.name}] {text}", flush=True)

    def expect(self, ok: bool, what: str) -> None:
        if not ok:
            self.failures.append(what)
            self.say(f"EXPECTATION FAILED: {what}")


def launch(lb: Balancer, s: ChartSettings, binary: str, names: list[str], url: str, token: str, work) -> list[Replica]:
    """Starts pods and adds them to the balancer, which routes to each once
    its readiness probe passes (as endpoints do); returns when all serve."""
    replicas = [Replica(binary, name, s, url, token, work) for name in names]
    for r in replicas:
        r.wait_ready(s.readiness_path)
        lb.add(r)
    for r in replicas:
        lb.wait_serving(r)
    return replicas


def stats(d: Drill, result, acknowledged_ok: int, acknowledged_total: int) -> None:
    s = result.summary()
    d.row.update({"sent": s["sent"], "ok": s["ok"], "failed": s["failed"], "p99_ms": s["p99_ms"],
                  "writes_verified": f"{acknowledged_ok}/{acknowledged_total}"})


def rolling_update(args, pg: Postgres, old_bin: str, new_bin: str) -> Drill:
    d = Drill("rolling update")
    s = ChartSettings.render(PG_VALUES)
    d.say(f"chart: {s.replicas} replicas, maxSurge {s.max_surge}, maxUnavailable {s.max_unavailable}, "
          f"minReadySeconds {s.min_ready_seconds:g}, drain {s.drain_delay:g}s, timeout {s.shutdown_timeout:g}s, "
          f"grace {s.grace_period:g}s, readiness {s.readiness_path} every {s.readiness_period:g}s")
    work, token = workdir(), os.urandom(12).hex()
    url = pg.fresh_database()
    lb = Balancer(s, slots=s.replicas * 2, workdir=work)
    old_version, new_version = version_of(old_bin), version_of(new_bin)
    replicas = launch(lb, s, old_bin, [f"old-{i}" for i in range(s.replicas)], url, token, work)
    d.say(f"{len(replicas)} replicas of {old_version} serving behind haproxy {lb.url}")
    load = Load(lb.url, token, rate=args.rate).start()
    time.sleep(args.warmup)
    new_replicas = []
    for i, old in enumerate(list(replicas)):
        new = launch(lb, s, new_bin, [f"new-{i}"], url, token, work)[0]
        time.sleep(s.min_ready_seconds)  # the Deployment counts it available only after this
        new_replicas.append(new)
        # Pod deletion: SIGTERM and endpoint removal start together; proxies see the
        # removal after a propagation delay, which the app's drain delay must cover.
        old.signal(signal.SIGTERM)
        t0 = time.monotonic()
        threading.Timer(args.propagation, lb.remove, args=(old,)).start()
        code = old.wait_exit(s.grace_period)
        if code is None:
            old.signal(signal.SIGKILL)
            d.expect(False, f"{old.name} outlived the grace period ({s.grace_period:g}s) and was killed")
        else:
            d.expect(code == 0, f"{old.name} exited {code}, not 0")
        d.say(f"replaced {old.name} by {new.name}: old exited {code} after {time.monotonic() - t0:.1f}s")
        old.stop_now()
    time.sleep(args.cooldown)
    result = load.stop()
    found, missing = verify_acknowledged(new_replicas[0].url, result.acknowledged, token)
    stats(d, result, found, len(result.acknowledged))
    versions = [v for _, v in result.versions_seen]
    d.row["versions"] = f"{old_version} -> {new_version}"
    d.expect(sum(result.summary()["failed"].values()) == 0, f"failed requests: {result.summary()['failed']}")
    d.expect(not missing, f"{len(missing)} acknowledged writes are missing")
    d.expect(old_version in versions and versions[-1] == new_version,
             f"GET /version did not show {old_version} then {new_version} (saw {sorted(set(versions))})")
    d.expect(len(result.acknowledged) > 0, "no write was acknowledged during the drill")
    kill_all(new_replicas)
    lb.stop()
    shutil.rmtree(work, ignore_errors=True)
    return d


def crash(args, pg: Postgres, binary: str) -> Drill:
    d = Drill("crash (kill -9)")
    s = ChartSettings.render(PG_VALUES)
    work, token = workdir(), os.urandom(12).hex()
    url = pg.fresh_database()
    lb = Balancer(s, slots=s.replicas + 1, workdir=work)
    replicas = launch(lb, s, binary, [f"pod-{i}" for i in range(s.replicas)], url, token, work)
    load = Load(lb.url, token, rate=args.rate).start()
    time.sleep(args.warmup)
    victim = replicas[0]
    t_kill = time.monotonic()
    victim.signal(signal.SIGKILL)
    victim.stop_now()
    d.say(f"killed {victim.name} with SIGKILL under {args.rate:g} req/s")
    # The kubelet restarts the container: a new process on the same "pod" (same endpoint).
    time.sleep(1.0)
    # Until then the dead process stays in the balancer, as a pod stays in the endpoints
    # until its readiness probe fails: the balancer's retries are what protect clients.
    restarted = launch(lb, s, binary, ["pod-0-restarted"], url, token, work)[0]
    lb.remove(victim)
    recovery = time.monotonic() - t_kill
    d.say(f"replacement serving {recovery:.1f}s after the kill")
    time.sleep(args.cooldown)
    result = load.stop()
    found, missing = verify_acknowledged(replicas[1].url, result.acknowledged, token)
    stats(d, result, found, len(result.acknowledged))
    d.row["recovery_s"] = round(recovery, 1)
    failed = sum(result.summary()["failed"].values())
    # Only requests in flight on the killed process may fail (the balancer retries refused connections).
    d.expect(failed <= args.workers, f"{failed} failed requests, more than could have been in flight ({args.workers})")
    d.expect(not missing, f"{len(missing)} acknowledged writes are missing")
    kill_all(replicas[1:] + [restarted])
    lb.stop()
    shutil.rmtree(work, ignore_errors=True)
    return d


def database_outage(args, pg: Postgres, binary: str, freeze: bool) -> Drill:
    """PostgreSQL stopped (connections closed, nothing listens) or frozen (SIGSTOP: connections
    stay open and nothing answers, as on a network partition) for a few seconds under load."""
    d = Drill("database freeze" if freeze else "database restart")
    s = ChartSettings.render(PG_VALUES)
    statement_timeout = 5.0
    work, token = workdir(), os.urandom(12).hex()
    url = pg.fresh_database()
    lb = Balancer(s, slots=s.replicas, workdir=work)
    replicas = launch(lb, s, binary, [f"pod-{i}" for i in range(s.replicas)], url, token, work)
    load = Load(lb.url, token, rate=args.rate).start()
    time.sleep(args.warmup)
    # Probe one replica directly too: the balancer answers its own 503 once all are unready.
    direct = Load(replicas[0].url, token, rate=20, workers=4).start()
    # A freeze must outlast the statement timeout: only then does a query stuck on a silent
    # connection show whether its deadline ends it or it waits for the database to come back.
    outage = max(args.outage, statement_timeout + 3) if freeze else args.outage
    frozen = pg.freeze() if freeze else pg.stop()
    t_stop = time.monotonic()
    d.say(f"PostgreSQL {'frozen (SIGSTOP)' if freeze else 'stopped'} for {outage:g}s under load")
    readiness_during = set()
    while time.monotonic() - t_stop < outage:
        readiness_during.add(http("GET", replicas[1].probe_url + s.readiness_path, timeout=2)[0])
        time.sleep(0.25)
    if freeze:
        pg.thaw(frozen)
    else:
        pg.start()
    t_start = time.monotonic()
    recovered = None
    while time.monotonic() - t_start < 30:
        if all(http("GET", r.probe_url + s.readiness_path, timeout=2)[0] == 200 for r in replicas):
            recovered = time.monotonic() - t_start
            break
        time.sleep(0.1)
    d.say(f"PostgreSQL answering again; all replicas ready after {recovered if recovered is None else round(recovered, 2)}s")
    # Traffic through the balancer resumes once its health checks see readiness again.
    time.sleep(s.readiness_period + args.cooldown)
    result, direct_result = load.stop(), direct.stop()
    found, missing = verify_acknowledged(replicas[0].url, result.acknowledged | direct_result.acknowledged, token)
    stats(d, result, found, len(result.acknowledged) + len(direct_result.acknowledged))
    d.row["recovery_s"] = None if recovered is None else round(recovered, 2)
    outage_records = [r for r in direct_result.records if t_stop <= r.at <= t_start]
    kinds = {r.outcome for r in outage_records}
    statuses = {r.status for r in outage_records if r.outcome == "5xx"}
    # Every request in flight at some point of the outage, through the balancer too: one that
    # waited for the database to come back ends after t_start, with the outage's length or the
    # load's 10 s timeout.
    answered_around = [r for r in result.records + direct_result.records if r.at >= t_stop and r.at - r.latency <= t_start]
    slowest = max((r.latency for r in answered_around), default=0.0)
    for r in sorted(answered_around, key=lambda r: -r.latency)[:5]:
        if r.latency > statement_timeout + 1:
            d.say(f"slow: {r.kind} {r.outcome} {r.status} took {r.latency:.2f}s, started "
                  f"{r.at - r.latency - t_stop:+.2f}s from the outage's start "
                  f"({'direct' if r in direct_result.records else 'balancer'})")
    d.row["outage_answers"] = f"{len(outage_records)} direct, statuses {sorted(statuses)}, slowest {slowest * 1000:.0f} ms"
    d.expect(503 in readiness_during and 200 not in readiness_during, f"readiness during the outage: {sorted(readiness_during)}")
    d.expect(statuses <= {503}, f"errors during the outage were not all 503: {sorted(statuses)}")
    d.expect("conn-error" not in kinds and "timeout" not in kinds, f"connection errors or timeouts during the outage: {kinds}")
    d.expect(slowest <= statement_timeout + 1, f"a request took {slowest:.1f}s during the outage (timeout {statement_timeout:g}s)")
    d.expect(recovered is not None and recovered <= 5.0, f"recovery took {recovered}s (expected within 5s)")
    d.expect(all(r.alive() for r in replicas), "a replica crashed during the outage")
    for r in replicas:
        if not r.alive():
            # The Swift runtime's crash report (thread backtraces) can run to a few hundred lines.
            d.say(f"{r.name} exited with {r.process.returncode}:{r.tail(80)}")
    d.expect(not missing, f"{len(missing)} acknowledged writes are missing")
    kill_all(replicas)
    lb.stop()
    shutil.rmtree(work, ignore_errors=True)
    return d


def feed_rollout(args, pg: Postgres, binary: str) -> Drill:
    """Watchers of GET /users/events follow the feed through HAProxy while the replicas on
    one PostgreSQL (the chart's replicaCount, 3; 2 in the CI short run) are replaced one by
    one (as the rolling drill does) and writes go on.
    Each watcher resumes with Last-Event-ID whenever its stream ends; at the end every one
    must hold exactly the events of a reference read from seq 0, once each and in order,
    and those must be the events of the acknowledged writes. Before the writes, the
    replicas' RSS with the watchers connected, against before, gives the memory an idle
    watcher costs. Both sides run `binary`: the feed is new, so the old release has none."""
    d = Drill("feed rollout")
    s = ChartSettings.render(PG_VALUES)
    n = args.feed_watchers
    count = args.feed_replicas or s.replicas
    work, token = workdir(), os.urandom(12).hex()
    url = pg.fresh_database()
    # One slot per replica, one for the surge, one for the old pod until its endpoint goes.
    lb = Balancer(s, slots=count + 2, workdir=work)
    olds = launch(lb, s, binary, [f"feed-{chr(ord('a') + i)}" for i in range(count)], url, token, work)
    watchers: list[feed.Watcher] = []

    def watched(replicas: list[Replica]) -> int:
        """userapi_feed_watchers summed over `replicas`; fails at once when a watcher gave up."""
        if failed := [w for w in watchers if w.fatal]:
            raise RuntimeError(f"{len(failed)} watchers gave up, e.g. {failed[0].fatal}")
        return int(sum(feed.feed_watchers(r.probe_url + "/metrics") for r in replicas))

    # One stream per replica first, held open, so the baseline already has the feed's code
    # paths paged in and its metrics registered: the delta is what each further watcher costs.
    warm = []
    for r in olds:
        conn = HTTPConnection("127.0.0.1", r.port, timeout=30)
        conn.request("GET", "/users/events", headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        d.expect(response.status == 200, f"GET /users/events on {r.name}: {response.status}")
        response.readline()
        warm.append(conn)
    wait_for("the warm-up streams counted", lambda: watched(olds) == len(olds), interval=0.1)
    rss_idle = sum(r.rss_bytes() for r in olds)
    stop_name = feed.stop_username()
    watchers = [feed.Watcher(lb.url, token, stop_name, since=0, name=f"watcher-{i}").start() for i in range(n)]
    wait_for(f"{n} watchers streaming", lambda: watched(olds) == n + len(olds)
             and all(w.streams_opened.is_set() for w in watchers), interval=0.1, process=[r.process for r in olds])
    per_watcher = (sum(r.rss_bytes() for r in olds) - rss_idle) / n
    split = ", ".join(f"{r.name} {watched([r]) - 1}" for r in olds)  # less the warm-up stream
    for conn in warm:
        conn.close()
    d.say(f"{n} SSE watchers through haproxy {lb.url} ({split}): "
          f"idle RSS {per_watcher / 1024:.1f} KiB per watcher ({rss_idle / 2**20:.1f} MiB for the {count} replicas before)")
    d.row["idle_kib_per_watcher"] = round(per_watcher / 1024, 1)
    # A pod at events.max_watchers idle watchers must stay within the chart's memory limit.
    cap = int(m.group(1)) if (m := re.search(r"max_watchers:\s*(\d+)", s.config_yaml)) else 1000
    at_cap = rss_idle / len(olds) + cap * per_watcher
    d.expect(at_cap < s.memory_limit, f"{cap} idle watchers (events.max_watchers) would take a pod to "
             f"{at_cap / 2**20:.0f} MiB, over the chart's memory limit ({s.memory_limit >> 20} MiB)")

    writer = feed.Writer(lb.url, token, rate=args.feed_rate).start()
    wait_for("writes acknowledged before the rollout", lambda: writer.acknowledged_count() >= 20,
             process=[r.process for r in olds])
    live, news = list(olds), []
    for i, old in enumerate(olds):
        new = launch(lb, s, binary, [f"feed-new-{i}"], url, token, work)[0]
        time.sleep(s.min_ready_seconds)  # the Deployment counts it available only after this
        news.append(new)
        live.append(new)
        old.signal(signal.SIGTERM)
        t0 = time.monotonic()
        threading.Timer(args.propagation, lb.remove, args=(old,)).start()
        live.remove(old)
        # The old pod ends its streams; each watcher resumes on a replica that stays.
        wait_for(f"all {n} watchers streaming again without {old.name}", lambda: watched(live) >= n,
                 interval=0.05, process=[r.process for r in live])
        resumed = time.monotonic() - t0
        code = old.wait_exit(s.grace_period - resumed)
        if code is None:
            old.signal(signal.SIGKILL)
            d.expect(False, f"{old.name} outlived the grace period ({s.grace_period:g}s) and was killed")
        else:
            d.expect(code == 0, f"{old.name} exited {code}, not 0")
        d.say(f"replaced {old.name} by {new.name}: all {n} watchers streaming again {resumed:.1f}s after its SIGTERM "
              f"({', '.join(f'{r.name} {watched([r])}' for r in live)}); old exited {code} after {time.monotonic() - t0:.1f}s")
        old.stop_now()
    more = writer.acknowledged_count() + 20
    wait_for("writes acknowledged after the rollout", lambda: writer.acknowledged_count() >= more,
             process=[r.process for r in live])
    writes = writer.stop()
    status, end_user = feed.create_user(lb.url, token, stop_name)
    d.expect(status == 201, f"the last write (POST /users {stop_name}) answered {status}")
    try:
        wait_for("every watcher received the last write's event",
                 lambda: all(w.done.is_set() for w in watchers), interval=0.2, process=[r.process for r in live])
    except TimeoutError as exc:
        d.expect(False, str(exc))
    reference = feed.Watcher(news[0].url, token, stop_name, since=0, name="reference").start()
    reference.join(timeout=60)
    d.expect(reference.done.is_set() and not reference.fatal and reference.outcomes == {"stream": 1},
             f"the reference read (since 0, straight to {news[0].name}): {dict(reference.outcomes)} {reference.fatal or ''}")
    feed.stop_all()

    events = reference.events
    stop_event = ("user.created", (end_user or {}).get("id", "?"))
    d.expect(bool(events) and events[-1].change == stop_event, "the reference read does not end with the last write")
    against_writes = feed.check_against_writes(events, writes, stop_event)
    for problem in against_writes[:10]:
        d.expect(False, problem)
    wrong = {w.name: p for w in watchers if (p := feed.check_watcher(w.events, events))}
    for name, problem in list(wrong.items())[:5]:
        d.say(f"{name}: {problem}")
    d.expect(not wrong, f"{len(wrong)} of {n} watchers did not get every event exactly once, in order")
    d.expect(not any(w.problems for w in watchers), f"malformed events: {next((w.problems[0] for w in watchers if w.problems), '')}")
    d.expect(not any(w.fatal for w in watchers), f"watchers gave up: {next((w.fatal for w in watchers if w.fatal), '')}")
    outcomes = sum((w.outcomes for w in watchers), start=Counter())
    resumed = sum(1 for w in watchers if w.outcomes["stream"] >= 2)
    # Every watcher started on an old replica, and every old replica went away.
    d.expect(resumed == n, f"only {resumed} of {n} watchers resumed after a stream ended")
    d.expect(outcomes["stalled"] == 0 and outcomes["cut"] == 0,
             f"streams stalled or broken instead of ended: {dict(outcomes)}")
    refused = {k: v for k, v in outcomes.items() if k.startswith("status") or k == "conn-error"}
    d.expect(not refused, f"reconnects refused: {refused} (a stream the feed ends must be resumable elsewhere at once)")
    failed_writes = {k: v for k, v in writes.outcomes.items() if not k.endswith((" 200", " 201", " 204"))}
    d.row.update({"sent": sum(writes.outcomes.values()), "ok": len(writes.acknowledged), "failed": failed_writes,
                  "writes_verified": f"{len(writes.acknowledged) - sum(p.startswith('acknowledged') for p in against_writes)}"
                                     f"/{len(writes.acknowledged)}",
                  "notes": f"{n} watchers x {len(events)} events (seq {events[0].seq if events else '-'}..{events[-1].seq if events else '-'}), "
                           f"{sum(w.outcomes['stream'] for w in watchers) - n} resumes across {count} replicas replaced, "
                           f"{len(wrong)} wrong; "
                           f"idle {d.row['idle_kib_per_watcher']} KiB/watcher"})
    d.say(f"{len(events)} events; watchers: {dict(outcomes)}; writes: {dict(writes.outcomes)}")
    kill_all(news)
    lb.stop()
    shutil.rmtree(work, ignore_errors=True)
    return d


def sqlite_recreate(args, binary: str) -> Drill:
    d = Drill("sqlite recreate")
    s = ChartSettings.render(SQLITE_VALUES)
    work, token = workdir(), os.urandom(12).hex()
    url = f"sqlite:{work}/data/userapi.sqlite"
    lb = Balancer(s, slots=2, workdir=work)
    pod = launch(lb, s, binary, ["pod-a"], url, token, work)[0]
    load = Load(lb.url, token, rate=args.rate).start()
    time.sleep(args.warmup)
    d.say("Recreate: the old pod terminates fully before the new one starts (one writer per SQLite file)")
    t0 = time.monotonic()
    pod.signal(signal.SIGTERM)
    threading.Timer(args.propagation, lb.remove, args=(pod,)).start()
    code = pod.wait_exit(s.grace_period)
    d.expect(code == 0, f"old pod exited {code}")
    pod.stop_now()
    new = launch(lb, s, binary, ["pod-b"], url, token, work)[0]
    restart = time.monotonic() - t0
    time.sleep(args.cooldown)
    result = load.stop()
    found, missing = verify_acknowledged(new.url, result.acknowledged, token)
    stats(d, result, found, len(result.acknowledged))
    ok_times = sorted(r.at for r in result.records if r.outcome == "ok")
    gap = max((b - a for a, b in zip(ok_times, ok_times[1:])), default=0.0)
    d.row["recovery_s"] = round(restart, 1)
    d.row["downtime_s"] = round(gap, 1)
    d.say(f"restart took {restart:.1f}s; longest gap without a successful answer {gap:.1f}s")
    d.expect(not missing, f"{len(missing)} acknowledged writes are missing")
    kill_all([new])
    lb.stop()
    shutil.rmtree(work, ignore_errors=True)
    return d


def overload(args, binary: str) -> Drill:
    d = Drill("overload")
    s = ChartSettings.render(SQLITE_VALUES)
    limit = int(re.search(r"max_in_flight:\s*(\d+)", s.config_yaml).group(1)) if "max_in_flight" in s.config_yaml else 1024
    work, token = workdir(), os.urandom(12).hex()
    pod = Replica(binary, "pod", s, f"sqlite:{work}/users.sqlite", token, work)
    pod.wait_ready(s.readiness_path)
    clients = args.overload_clients
    d.say(f"{clients} concurrent connections against one replica (max_in_flight {limit}) for {args.overload_seconds}s, "
          f"memory limit {s.memory_limit >> 20} MiB")
    script = work / "post.lua"
    script.write_text(
        'counter = 0\n'
        'request = function()\n'
        '  counter = counter + 1\n'
        '  local u = string.format("ov%d_%d", math.random(1, 1000000000), counter)\n'
        '  return wrk.format("POST", "/users", {["Content-Type"]="application/json", '
        f'["Authorization"]="Bearer {token}"}}, '
        '"{\\"name\\":\\"Load\\",\\"username\\":\\"" .. u .. "\\",\\"email\\":\\"" .. u .. "@load.example\\"}")\n'
        'end\n')
    wrk = shutil.which("wrk") or "/usr/bin/wrk"
    probe_latencies, probe_codes = [], []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            t = time.monotonic()
            probe_codes.append(http("GET", pod.probe_url + s.liveness_path, timeout=5)[0])
            probe_latencies.append(time.monotonic() - t)
            time.sleep(0.2)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    reads = subprocess.Popen([wrk, "-t1", f"-c{clients // 2}", f"-d{args.overload_seconds}s", "--latency", "--timeout", "10s",
                              "-H", f"Authorization: Bearer {token}", f"{pod.url}/users?limit=50"], stdout=subprocess.PIPE, text=True)
    writes = subprocess.Popen([wrk, "-t1", f"-c{clients - clients // 2}", f"-d{args.overload_seconds}s", "--latency",
                               "--timeout", "10s", "-s", str(script), f"{pod.url}/users"], stdout=subprocess.PIPE, text=True)
    peak = 0
    while reads.poll() is None or writes.poll() is None:
        peak = max(peak, pod.rss_bytes())
        time.sleep(0.2)
    out_reads, out_writes = reads.stdout.read(), writes.stdout.read()
    stop.set()
    prober.join()
    t_end = time.monotonic()
    recovered = None
    while time.monotonic() - t_end < 10:
        status, _ = http("GET", pod.url + "/users?limit=1", headers={"Authorization": f"Bearer {token}"}, timeout=2)
        if status == 200 and http("GET", pod.probe_url + s.readiness_path, timeout=2)[0] == 200:
            recovered = time.monotonic() - t_end
            break
        time.sleep(0.05)

    def parse(out: str) -> dict:
        total = int(re.search(r"(\d+) requests in", out).group(1))
        non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
        errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        sock = sum(int(x) for x in errors.groups()) if errors else 0
        p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
        return {"total": total, "non2xx": non2xx, "socket_errors": sock,
                "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else None}

    r, w = parse(out_reads), parse(out_writes)
    d.row.update({
        "sent": r["total"] + w["total"], "ok": r["total"] + w["total"] - r["non2xx"] - w["non2xx"] - r["socket_errors"] - w["socket_errors"],
        "failed": {"shed (503)": r["non2xx"] + w["non2xx"], "socket errors": r["socket_errors"] + w["socket_errors"]},
        "p99_ms": max(x for x in (r["p99_ms"], w["p99_ms"]) if x is not None),
        "writes_verified": "-", "recovery_s": None if recovered is None else round(recovered, 2),
        "peak_rss_mb": round(max(peak, pod.peak_rss_bytes()) / 2**20, 1),
    })
    d.say(f"reads {r}; writes {w}; liveness probe max {max(probe_latencies) * 1000:.0f} ms; peak RSS {d.row['peak_rss_mb']} MiB")
    d.expect(pod.alive(), "the server died under overload")
    d.expect(all(c == 200 for c in probe_codes), f"liveness failed during overload: {sorted(set(probe_codes))}")
    d.expect(max(probe_latencies) < 2.0, f"liveness took {max(probe_latencies):.1f}s under overload")
    d.expect(d.row["p99_ms"] < 10_000, f"p99 {d.row['p99_ms']} ms: requests queued beyond the timeout")
    d.expect(recovered is not None and recovered < 2.0, f"did not recover within 2s after the load ({recovered})")
    d.expect(d.row["peak_rss_mb"] * 2**20 < s.memory_limit, f"peak RSS {d.row['peak_rss_mb']} MiB over the chart's memory limit")
    kill_all([pod])
    shutil.rmtree(work, ignore_errors=True)
    return d


def fmt_failed(failed) -> str:
    if isinstance(failed, dict):
        return ", ".join(f"{k} {v}" for k, v in failed.items() if v) or "0"
    return str(failed)


def table(drills: list[Drill]) -> str:
    lines = ["| Drill | Requests | OK | Failed (by kind) | Acknowledged writes verified | p99 | Recovery | Notes | Result |",
             "| --- | ---: | ---: | --- | --- | ---: | ---: | --- | --- |"]
    for d in drills:
        r = d.row
        notes = [str(r[k]) for k in ("versions", "outage_answers", "notes") if r.get(k)]
        if r.get("downtime_s") is not None:
            notes.append(f"downtime window {r['downtime_s']} s")
        if r.get("peak_rss_mb") is not None:
            notes.append(f"peak RSS {r['peak_rss_mb']} MiB")
        rec = f"{r['recovery_s']} s" if r.get("recovery_s") is not None else "–"
        p99 = f"{r['p99_ms']} ms" if r.get("p99_ms") is not None else "–"
        lines.append(f"| {d.name} | {r.get('sent', 0)} | {r.get('ok', 0)} | {fmt_failed(r.get('failed', {}))} | "
                     f"{r.get('writes_verified', '-')} | {p99} | {rec} | {'; '.join(notes)} | "
                     f"{'pass' if not d.failures else 'FAIL'} |")
    return "\n".join(lines)


# Each drill by its --only name; the CI short run (--short, test_drills.py) is SHORT.
DRILLS = {
    "rolling": lambda args, pg: rolling_update(args, pg, args.old_bin, args.new_bin),
    "crash": lambda args, pg: crash(args, pg, args.new_bin),
    "database": lambda args, pg: database_outage(args, pg, args.new_bin, freeze=False),
    "freeze": lambda args, pg: database_outage(args, pg, args.new_bin, freeze=True),
    "sqlite": lambda args, pg: sqlite_recreate(args, args.new_bin),
    "overload": lambda args, pg: overload(args, args.new_bin),
    "feed": lambda args, pg: feed_rollout(args, pg, args.new_bin),
}
SHORT = ["rolling", "database", "freeze", "feed"]


def cleanup() -> None:
    """Ends the load and every process a drill left behind (one that failed half-way)."""
    Load.stop_all()
    feed.stop_all()
    stop_all()


def options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true",
                        help="CI version: rolling update, database restart and freeze, feed rollout; shorter")
    parser.add_argument("--only", default="", help="comma-separated drills: " + ",".join(DRILLS))
    parser.add_argument("--old-bin", default=os.environ.get("USERAPI_BIN_OLD"))
    parser.add_argument("--new-bin", default=os.environ.get("USERAPI_BIN_NEW"))
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second of the steady load")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--propagation", type=float, default=1.0,
                        help="seconds until proxies stop routing to a terminating pod (endpoint propagation)")
    parser.add_argument("--feed-watchers", type=int, help="SSE watchers of the feed drill (default 100, --short 20)")
    parser.add_argument("--feed-rate", type=float, help="changes per second during the feed drill (default 40, --short 20)")
    parser.add_argument("--feed-replicas", type=int,
                        help="PostgreSQL replicas the feed drill replaces one by one (default the chart's replicaCount, 3; --short 2)")
    args = parser.parse_args(argv)
    args.feed_watchers = args.feed_watchers or (20 if args.short else 100)
    args.feed_rate = args.feed_rate or (20.0 if args.short else 40.0)
    args.feed_replicas = args.feed_replicas or (2 if args.short else None)  # None: the chart's replicaCount
    args.warmup, args.cooldown = (2.0, 1.0) if args.short else (5.0, 3.0)
    args.outage = 5.0 if args.short else 8.0
    args.overload_clients, args.overload_seconds = 2000, 10
    args.chosen = [d for d in DRILLS if d in set(filter(None, args.only.split(",")))] or (SHORT if args.short else list(DRILLS))
    if args.old_bin and args.new_bin:
        args.old_bin, args.new_bin = os.path.abspath(args.old_bin), os.path.abspath(args.new_bin)
    # Thousands of connections in the overload drill: raise the descriptor limit to the hard limit.
    import resource
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    return args


def main() -> int:
    args = options()
    if not args.old_bin or not args.new_bin:
        print("drills: set USERAPI_BIN_OLD and USERAPI_BIN_NEW (make drills does)", file=sys.stderr)
        return 2
    pg = Postgres.from_env()
    if pg is None and set(args.chosen) & {"rolling", "crash", "database", "freeze", "feed"}:
        print("drills: USERAPI_TEST_POSTGRES_URL not set; run through scripts/with-postgres.sh", file=sys.stderr)
        return 2
    print(f"drills: {', '.join(args.chosen)}; old {args.old_bin} ({version_of(args.old_bin)}), "
          f"new {args.new_bin} ({version_of(args.new_bin)}); load {args.rate:g} req/s", flush=True)
    drills: list[Drill] = []
    try:
        for key in args.chosen:
            print(f"drill: {key}", flush=True)
            drills.append(DRILLS[key](args, pg))
    finally:
        cleanup()
    text = table(drills)
    print("\n" + text)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"drills-{stamp}.json").write_text(json.dumps([d.row | {"failures": d.failures} for d in drills], indent=2))
    (out / "drills-latest.md").write_text(text + "\n")
    failed = [f"{d.name}: {f}" for d in drills for f in d.failures]
    if failed:
        print("\ndrills: FAILED\n  " + "\n  ".join(failed))
        return 1
    print("\ndrills: all expectations met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
