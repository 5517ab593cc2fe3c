#!/usr/bin/env python3
"""userapi benchmark: throughput and latency of the release binary next to
nginx serving a fixed 200 under the same conditions (the machine's ceiling).

Server on CPU 0, load generator (wrk) on CPU 1, loopback only, bounded
runs. SQLite first, then PostgreSQL when USERAPI_TEST_POSTGRES_URL is set
(make bench starts one; the database shares CPU 0 with the server). Prints a
Markdown table and writes JSON to bench/results/.

When BASELINES_BIN names the release build directory of bench/baselines
(make bench builds it), the same `/healthz` answer is also measured from
SwiftNIO's HTTP/1 pipeline alone, from the same pipeline with the conversion to
swift-http-types and Hummingbird's connection-state handler (where userapi
answers probes on the event loop), from the pipeline handing each request to a
Swift task, and from a one-route Hummingbird app: the floors of the stack
userapi is built on, in the same run.

  USERAPI_BIN=.build/release/userapi bench/run.py [--duration 10] [--connections 64]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVER_CPU, LOAD_CPU = "0", "1"

# Targets, as fractions of nginx's fixed 200 on this machine (see bench/README.md).
TARGETS = {"GET /healthz": 0.35, "GET /users/{id}": 0.20, "GET /users?limit=50": 0.05, "POST /users": 0.08}


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cpu: str, cmd: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *cmd] if shutil.which("taskset") and os.cpu_count() > 1 else cmd


def rss_kb(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def wait_http(port: int, path: str, timeout: float = 30) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", path)
            if c.getresponse().status == 200:
                return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.001)
    raise RuntimeError(f"nothing ready on {port}{path}")


def wrk(url: str, args, script: Path | None = None, connections: int | None = None) -> dict:
    cmd = pinned(LOAD_CPU, ["wrk", "-t1", f"-c{connections or args.connections}", f"-d{args.duration}s", "--latency",
                            "--timeout", "5s"])
    if script:
        cmd += ["-s", str(script)]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)\b", out)
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"rps": rps, "p50_ms": pct("50"), "p99_ms": pct("99"), "non2xx": non2xx,
            "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0}


class Sampler(threading.Thread):
    """Samples the server's resident memory while load runs."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop_flag = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.stop_flag.is_set():
            self.peak = max(self.peak, rss_kb(self.pid))
            time.sleep(0.05)

    def stop(self) -> int:
        self.stop_flag.set()
        self.join()
        return self.peak


def nginx_ceiling(args, work: Path) -> dict:
    port = free_port()
    conf = work / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{port};
    location / {{ default_type text/plain; return 200 "ok\\n"; }}
  }}
}}
""")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.Popen(pinned(SERVER_CPU, [nginx, "-c", str(conf), "-p", str(work)]), stderr=subprocess.DEVNULL)
    try:
        wait_http(port, "/")
        return wrk(f"http://127.0.0.1:{port}/", args)
    finally:
        proc.terminate()
        proc.wait()


def baselines(directory: str, args) -> dict:
    """`GET /healthz`-equivalent answers from the stack without userapi:
    SwiftNIO alone, SwiftNIO with userapi's probe pipeline (swift-http-types,
    connection state), SwiftNIO with a Swift task per request, then Hummingbird
    with one route (bench/baselines)."""
    results = {}
    for label, name in (("SwiftNIO HTTP/1 pipeline, fixed answer", "nio-fixed-200"),
                        ("SwiftNIO HTTP/1 + swift-http-types + connection state, on the loop", "nio-httptypes-200"),
                        ("SwiftNIO HTTP/1 pipeline, one Swift task per request", "nio-task-200"),
                        ("Hummingbird 2, one route, no middleware", "hummingbird-fixed-200")):
        port = free_port()
        # One event loop for all three, as userapi runs on one pinned core (`EventLoopSizing`): the NIO
        # baselines create one themselves, Hummingbird's shared group would otherwise start one per core.
        proc = subprocess.Popen(pinned(SERVER_CPU, [os.path.join(directory, name), str(port)]),
                                env={**os.environ, "NIO_SINGLETON_GROUP_LOOP_COUNT": "1"},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_http(port, "/healthz")
            results[label] = wrk(f"http://127.0.0.1:{port}/healthz", args)
        finally:
            proc.terminate()
            proc.wait()
        print(f"  baseline {label:54} {results[label]['rps']:>10.0f} req/s  p99 {results[label]['p99_ms']:.2f} ms",
              flush=True)
    return results


def start_server(binary: str, database_url: str, token: str, work: Path) -> tuple[subprocess.Popen, int, float]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env.update({"HTTP_PORT": str(port), "DATABASE_URL": database_url, "AUTH_TOKENS": token, "LOG_FORMAT": "json"})
    start = time.monotonic()
    proc = subprocess.Popen(pinned(SERVER_CPU, [binary, "serve"]), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=work)
    ready = wait_http(port, "/readyz")
    return proc, port, (time.monotonic() - start) - 0  # includes taskset exec


def exec_to_ready(binary: str, work: Path, token: str, runs: int = 5) -> dict:
    fresh, existing = [], []
    db = work / "ready.sqlite"
    for i in range(runs):
        for bucket, reuse in ((fresh, False), (existing, True)):
            if not reuse:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{db}{suffix}").unlink(missing_ok=True)
            proc, _, seconds = start_server(binary, f"sqlite:{db}", token, work)
            bucket.append(seconds * 1000)
            proc.kill()
            proc.wait()
    return {"fresh_ms": round(statistics.median(fresh), 1), "existing_ms": round(statistics.median(existing), 1)}


def seed(port: int, token: str, count: int) -> list[str]:
    body = lambda i: json.dumps({"name": f"Bench User {i}", "username": f"bench{i}", "email": f"bench{i}@example.com"})
    local = threading.local()

    def post(i: int) -> str:
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        local.conn.request("POST", "/users", body(i), {"Content-Type": "application/json",
                                                       "Authorization": f"Bearer {token}"})
        response = local.conn.getresponse()
        data = response.read()
        if response.status != 201:
            raise RuntimeError(f"seed POST answered {response.status}: {data[:200]!r}")
        return json.loads(data)["id"]

    with ThreadPoolExecutor(max_workers=32) as pool:
        return list(pool.map(post, range(count)))


def scripts(work: Path, ids: list[str], token: str) -> tuple[Path, Path]:
    ids_lua = work / "get.lua"
    sample = ids[:: max(1, len(ids) // 2000)]
    ids_lua.write_text("ids = {" + ",".join(f'"{i}"' for i in sample) + "}\n"
                       "request = function()\n  return wrk.format(\"GET\", \"/users/\" .. ids[math.random(#ids)])\nend\n")
    post_lua = work / "post.lua"
    post_lua.write_text(
        # A prefix of its own for each wrk run (the saturated and the paced one use this script, at least
        # 10 s apart): wrk's Lua random generator is never seeded, so a random prefix alone repeats, and
        # the second run's users would all be 409 conflicts instead of durable writes.
        f"counter = 0\nprefix = \"{os.getpid()}\" .. tostring(os.time())\n"
        "request = function()\n  counter = counter + 1\n"
        "  local u = \"w\" .. prefix .. \"_\" .. counter\n"
        "  return wrk.format(\"POST\", \"/users\", {[\"Content-Type\"]=\"application/json\", "
        f"[\"Authorization\"]=\"Bearer {token}\"}}, "
        "\"{\\\"name\\\":\\\"Bench\\\",\\\"username\\\":\\\"\" .. u .. \"\\\",\\\"email\\\":\\\"\" .. u .. \"@example.com\\\"}\")\n"
        "end\n")
    return ids_lua, post_lua


def paced(script: Path | None, work: Path, rate: float) -> tuple[Path, int, float]:
    """A wrk script sending at `rate` requests/s: each connection waits `delay`
    ms between requests (wrk's delay() hook; integer milliseconds), so the
    latency measured is at that rate, not at saturation."""
    delay_ms = 5
    connections = max(4, round(rate * delay_ms / 1000))
    base = script.read_text() if script else ""
    paced_script = work / f"paced-{script.name if script else 'plain'}.lua"
    paced_script.write_text(base + f"\nfunction delay() return {delay_ms} end\n")
    return paced_script, connections, connections * 1000 / delay_ms


def run_backend(name: str, database_url: str, binary: str, args, work: Path, token: str,
                ceiling: float | None = None) -> dict:
    proc, port, _ = start_server(binary, database_url, token, work)
    time.sleep(1.0)
    idle = rss_kb(proc.pid)
    t = time.monotonic()
    ids = seed(port, token, args.users)
    seed_rate = args.users / (time.monotonic() - t)
    get_lua, post_lua = scripts(work, ids, token)
    base = f"http://127.0.0.1:{port}"
    results = {}
    sampler = Sampler(proc.pid)
    sampler.start()
    most_connections = args.connections
    for label, url, script in (("GET /healthz", base + "/healthz", None),
                               ("GET /users/{id}", base, get_lua),
                               ("GET /users?limit=50", base + "/users?limit=50", None),
                               ("POST /users", base, post_lua)):
        results[label] = wrk(url, args, script)
        print(f"  {name:8} {label:22} {results[label]['rps']:>10.0f} req/s  p50 {results[label]['p50_ms']:.2f} ms"
              f"  p99 {results[label]['p99_ms']:.2f} ms", flush=True)
        if ceiling and label in TARGETS:
            # Latency at the target rate (or at what was reached, if lower).
            rate = min(TARGETS[label] * ceiling, results[label]["rps"] * 0.9)
            script_at_rate, connections, planned = paced(script, work, rate)
            at = wrk(url, args, script_at_rate, connections=connections)
            most_connections = max(most_connections, connections)
            results[label]["at_rate"] = {"planned_rps": round(planned), "rps": at["rps"], "p50_ms": at["p50_ms"],
                                         "p99_ms": at["p99_ms"], "non2xx": at["non2xx"],
                                         "socket_errors": at["socket_errors"]}
            print(f"  {name:8} {label:22} at {at['rps']:>7.0f} req/s: p99 {at['p99_ms']:.2f} ms", flush=True)
    peak = sampler.stop()
    proc.terminate()
    proc.wait()
    return {"endpoints": results, "idle_rss_mb": round(idle / 1024, 1), "peak_rss_mb": round(peak / 1024, 1),
            "peak_rss_connections": most_connections, "seed_rate": round(seed_rate)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--users", type=int, default=10_000)
    args = parser.parse_args()
    binary = os.path.abspath(os.environ.get("USERAPI_BIN", ROOT / ".build/release/userapi"))
    work = Path(tempfile.mkdtemp(prefix="userapi-bench-"))
    token = os.urandom(12).hex()
    version = subprocess.run([binary, "version"], capture_output=True, text=True).stdout.strip()
    print(f"bench: {version}; server on CPU {SERVER_CPU}, wrk on CPU {LOAD_CPU}; {args.connections} connections, "
          f"{args.duration}s per run", flush=True)
    report = {"binary": version, "machine": platform.platform(), "cpus": os.cpu_count(),
              "connections": args.connections, "duration_s": args.duration, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    report["nginx"] = nginx_ceiling(args, work)
    print(f"  nginx    fixed 200              {report['nginx']['rps']:>10.0f} req/s  p99 {report['nginx']['p99_ms']:.2f} ms", flush=True)
    if os.environ.get("BASELINES_BIN"):
        report["baselines"] = baselines(os.environ["BASELINES_BIN"], args)
    report["exec_to_ready"] = exec_to_ready(binary, work, token)
    report["sqlite"] = run_backend("sqlite", f"sqlite:{work}/bench.sqlite", binary, args, work, token,
                                   report["nginx"]["rps"])
    # nginx again after the SQLite runs: this machine's speed drifts by 10-20 % between minutes, and
    # the ratios are taken against the higher of the two (the stricter ceiling). The first one paces
    # the runs at the target rates above.
    report["nginx_after"] = nginx_ceiling(args, work)
    print(f"  nginx    fixed 200 (again)      {report['nginx_after']['rps']:>10.0f} req/s  p99 "
          f"{report['nginx_after']['p99_ms']:.2f} ms", flush=True)
    if report["nginx_after"]["rps"] > report["nginx"]["rps"]:
        report["nginx"], report["nginx_after"] = report["nginx_after"], report["nginx"]
    ceiling = report["nginx"]["rps"]
    if os.environ.get("USERAPI_TEST_POSTGRES_URL"):
        report["postgres"] = run_backend("postgres", os.environ["USERAPI_TEST_POSTGRES_URL"], binary, args, work, token)
    shutil.rmtree(work, ignore_errors=True)

    pg = "postgres" in report
    lines = ["| Measurement | SQLite | % of nginx | Target | p50 / p99 at saturation | p99 at the target rate (< 10 ms) |"
             + (" PostgreSQL | p50 / p99 (PostgreSQL) |" if pg else ""),
             "| --- | ---: | ---: | ---: | ---: | ---: |" + (" ---: | ---: |" if pg else "")]
    lines.append(f"| nginx fixed 200 (ceiling: the higher of two runs; the other: {report['nginx_after']['rps']:,.0f}) | {ceiling:,.0f} req/s | 100 % | – | {report['nginx']['p50_ms']:.2f} / {report['nginx']['p99_ms']:.2f} ms | |"
                 + (" | |" if "postgres" in report else ""))
    for label, r in report.get("baselines", {}).items():
        lines.append(f"| baseline: {label} | {r['rps']:,.0f} req/s | {100 * r['rps'] / ceiling:.1f} % | – | "
                     f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f} ms | |" + (" | |" if "postgres" in report else ""))
    for label, target in TARGETS.items():
        s = report["sqlite"]["endpoints"][label]
        at = s.get("at_rate", {})
        row = (f"| {label} | {s['rps']:,.0f} req/s | {100 * s['rps'] / ceiling:.1f} % | ≥ {100 * target:.0f} % | "
               f"{s['p50_ms']:.2f} / {s['p99_ms']:.2f} ms | "
               f"{at.get('p99_ms', 0):.2f} ms at {at.get('rps', 0):,.0f} req/s |")
        if "postgres" in report:
            p = report["postgres"]["endpoints"][label]
            row += f" {p['rps']:,.0f} req/s | {p['p50_ms']:.2f} / {p['p99_ms']:.2f} ms |"
        lines.append(row)
    e = report["exec_to_ready"]
    lines.append(f"| exec to first 200 on /readyz | {e['existing_ms']} ms (new database: {e['fresh_ms']} ms) | | < 100 ms | | |" + (" | |" if "postgres" in report else ""))
    lines.append(f"| idle RSS | {report['sqlite']['idle_rss_mb']} MB | | < 25 MB | | |" + (f" {report['postgres']['idle_rss_mb']} MB | |" if "postgres" in report else ""))
    # The paced runs open more connections than the saturated ones (see paced()), and each costs memory.
    lines.append(f"| peak RSS under load (up to {report['sqlite']['peak_rss_connections']} connections) | {report['sqlite']['peak_rss_mb']} MB | | < 40 MB | | |"
                 + (f" {report['postgres']['peak_rss_mb']} MB ({report['postgres']['peak_rss_connections']} connections) | |" if "postgres" in report else ""))
    errors = sum(run["non2xx"] + run["socket_errors"]
                 for b in ("sqlite", "postgres") if b in report for r in report[b]["endpoints"].values()
                 for run in (r, r.get("at_rate", {"non2xx": 0, "socket_errors": 0})))
    table = "\n".join(lines)
    print("\n" + table)
    if errors:
        print(f"\nbench: WARNING {errors} non-2xx answers or socket errors during the runs")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"bench-{stamp}.json").write_text(json.dumps(report, indent=2))
    (out / "bench-latest.md").write_text(table + "\n")
    print(f"\nbench: results in bench/results/bench-{stamp}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
