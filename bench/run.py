#!/usr/bin/env python3
"""userapi benchmark: the release binary against the floors it is judged by, in one run.

- Floor: a one-route Hummingbird app answering `GET /healthz` (bench/baselines, in BASELINES_BIN).
- userapi on SQLite, 10,000 users seeded through the API: `GET /healthz`, `GET /users/{id}`,
  `GET /users?limit=50` and durable `POST /users`, saturated and then paced at the target rate;
  exec to ready, idle and peak RSS.
- userapi on PostgreSQL (when USERAPI_TEST_POSTGRES_URL is set): reads by id and pages of 50 against
  pgbench running the same selects with the same number of connections.

Server and database on CPU 0, wrk and pgbench on CPU 1, loopback, bounded runs. Prints a Markdown
table, writes it to bench/results/bench-latest.md and JSON to bench/results/bench-<stamp>.json.
A missed target is reported, not a failure: the exit status is non-zero only when a run could not be done.

  USERAPI_BIN=.build/release/userapi [BASELINES_BIN=dir] bench/run.py [--duration 10] [--users 10000]
"""

from __future__ import annotations

import argparse
import contextlib
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

# Every target, in one place (bench/README.md says why each is compared to what it is compared to).
TARGETS = {
    # userapi on SQLite: fraction of the Hummingbird floor's `GET /healthz` rate, same run, same core.
    "GET /healthz": 0.85, "GET /users/{id}": 0.65, "GET /users?limit=50": 0.18, "POST /users": 0.25,
    # userapi on PostgreSQL: fraction of pgbench's rate for the same select.
    "PostgreSQL GET /users/{id}": 0.40, "PostgreSQL GET /users?limit=50": 0.30,
    "paced p99 ms": 10.0, "exec to ready ms": 50.0, "idle RSS MB": 30.0,
}
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from harness import free_port  # noqa: E402  (the checks' helpers: one free_port for the repository)
SERVER_CPU, LOAD_CPU = "0", "1"
CONNECTIONS = 64
# pgbench prepares each script's statement the first time a client picks it: 64 x 128 prepares for reads
# by id, which hold its rate down for the first ~8 s on a 2-core VM. Not counted (see pgbench()).
PGBENCH_WARMUP_S = 10
# Must match what the server selects: `UserColumns.list` in Sources/UserAPI/Storage/UserStore.swift.
SELECT = "SELECT id, name, username, email, email_key, created_at, updated_at, version FROM users"
# `GET /users?limit=50`: one row more than the page, to know whether there is a next one.
FIRST_PAGE = SELECT + " WHERE id > '00000000-0000-0000-0000-000000000000' ORDER BY id LIMIT 51"


def pinned(cpu: str, cmd: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *cmd] if os.cpu_count() > 1 else cmd


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory now, or its high-water mark over the process's life (VmHWM)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return round(int(re.search(rf"^{field}:\s+(\d+) kB", status, re.M).group(1)) / 1024, 1)


def pin_postgres() -> None:
    """Moves the running PostgreSQL (postmaster, its threads and its processes) to the server's CPU;
    backends started later inherit the postmaster's affinity."""
    if "PGDATA_DIR" not in os.environ:  # set by scripts/with-postgres.sh
        print("  PostgreSQL not pinned: PGDATA_DIR not set", flush=True)
        return
    postmaster = Path(os.environ["PGDATA_DIR"], "postmaster.pid").read_text().split()[0]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):  # processes come and go
            pid, ppid = stat.parent.name, stat.read_text().rsplit(")", 1)[1].split()[1]
            if pid == postmaster or ppid == postmaster:
                subprocess.run(["taskset", "-a", "-p", "-c", SERVER_CPU, pid], stdout=subprocess.DEVNULL,
                               check=pid == postmaster)


class Bench:
    def __init__(self, args, work: Path):
        self.args, self.work, self.warnings = args, work, []
        self.token = os.urandom(12).hex()
        self.binary = os.path.abspath(os.environ.get("USERAPI_BIN", ROOT / ".build/release/userapi"))
        self.runs = 0

    @contextlib.contextmanager
    def serving(self, cmd: list[str], port: int, env: dict, ready: str = "/readyz"):
        """Runs `cmd` on the server CPU until it answers 200 on `ready`; yields (process, seconds from exec
        to that answer). Afterwards stops it and waits for it to exit: a SQLite database is locked
        (`<db>.lock`) while its server lives."""
        log = open(self.work / "server.log", "ab")
        start = time.monotonic()
        proc = subprocess.Popen(pinned(SERVER_CPU, cmd), env=env, stdout=log, stderr=log, cwd=self.work)
        try:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}: {self.log_tail()}")
                with contextlib.suppress(OSError), contextlib.closing(
                        http.client.HTTPConnection("127.0.0.1", port, timeout=1)) as conn:
                    conn.request("GET", ready)
                    if conn.getresponse().status == 200:
                        break
                if time.monotonic() - start > 30:
                    raise RuntimeError(f"{cmd[0]}: no 200 on {ready} after 30 s: {self.log_tail()}")
                time.sleep(0.001)
            yield proc, time.monotonic() - start
        finally:
            proc.terminate()
            proc.wait()
            log.close()

    def log_tail(self) -> str:
        return "\n".join((self.work / "server.log").read_text(errors="replace").splitlines()[-10:])

    def userapi(self, database_url: str):
        port = free_port()
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
        env.update({"HTTP_PORT": str(port), "DATABASE_URL": database_url, "AUTH_TOKENS": self.token,
                    "LOG_FORMAT": "json"})
        return port, self.serving([self.binary, "serve", "--set", "shutdown.drain_delay=0s"], port, env)

    def wrk(self, run: str, port: int, path: str = "/", lua: str = "", paced_at: float | None = None) -> dict:
        """One wrk run (one thread on the load CPU, every request with the token). Paced: each connection
        waits 5 ms between requests (wrk's delay() hook), with enough connections for `paced_at` req/s."""
        connections = CONNECTIONS
        if paced_at:
            connections, lua = max(4, round(paced_at * 5 / 1000)), lua + "\nfunction delay() return 5 end\n"
        cmd = ["wrk", "-t1", f"-c{connections}", f"-d{self.args.duration}s", "--latency", "--timeout", "5s",
               "-H", f"Authorization: Bearer {self.token}"]
        if lua:
            script = self.work / f"run{self.runs}.lua"
            script.write_text(lua)
            cmd += ["-s", str(script)]
        self.runs += 1
        out = subprocess.run(pinned(LOAD_CPU, cmd + [f"http://127.0.0.1:{port}{path}"]), capture_output=True,
                             text=True, check=True).stdout

        def ms(p: str) -> float:
            m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)\b", out)
            return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p50_ms": ms("50"),
                  "p99_ms": ms("99"), "connections": connections}
        self.report(run + (" (paced)" if paced_at else ""), result,
                    non2xx=int(non2xx.group(1)) if non2xx else 0,
                    socket_errors=sum(map(int, errors.groups())) if errors else 0)
        return result

    def pgbench(self, run: str, scripts: list[Path], url: str) -> dict:
        """pgbench with prepared statements and as many clients as wrk has connections, on the load CPU. The
        run lasts PGBENCH_WARMUP_S longer than `--duration`; the rate and percentiles come from its
        per-transaction log, over the transactions completed after the warm-up."""
        for old in self.work.glob("pgbench_log*"):
            old.unlink()  # one log per run
        cmd = [os.path.join(os.environ.get("PG_BIN", ""), "pgbench"), "-M", "prepared", "-n", "-c", str(CONNECTIONS), "-j", "1",
               "-T", str(PGBENCH_WARMUP_S + self.args.duration), "-l", "--log-prefix", str(self.work / "pgbench_log")]
        for script in scripts:
            cmd += ["-f", f"{script}@1"]
        began = time.time()  # the log's completion times are wall-clock seconds too
        out = subprocess.run(pinned(LOAD_CPU, cmd + [url]), capture_output=True, text=True, check=True).stdout
        # Log lines: client, transaction, latency (µs), script, completion time (s, µs).
        done = sorted((int(f[4]) + int(f[5]) / 1e6, int(f[2]) / 1000) for log in self.work.glob("pgbench_log*")
                      for f in map(str.split, log.open()) if f[2].isdigit())
        start = began + PGBENCH_WARMUP_S
        latencies = sorted(latency for at, latency in done if at >= start)
        if not latencies:
            raise RuntimeError(f"{run}: pgbench completed no transaction after its {PGBENCH_WARMUP_S} s warm-up")
        failed = re.search(r"number of failed transactions: (\d+)", out)
        result = {"rps": len(latencies) / (done[-1][0] - start),
                  "p50_ms": latencies[len(latencies) // 2], "p99_ms": latencies[int(len(latencies) * 0.99)],
                  "connections": CONNECTIONS}
        self.report(run, result, failed=int(failed.group(1)) if failed else 0)
        return result

    def report(self, run: str, result: dict, **errors: int) -> None:
        print(f"  {run:42} {result['rps']:>10,.0f} req/s  p50 {result['p50_ms']:6.2f} ms  p99 "
              f"{result['p99_ms']:6.2f} ms", flush=True)
        if any(errors.values()):
            self.warnings.append(f"{run}: " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in errors.items()))
            print(f"  WARNING {self.warnings[-1]}", flush=True)

    def seed(self, port: int) -> list[str]:
        local = threading.local()

        def post(i: int) -> str:
            if not hasattr(local, "conn"):
                local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            body = json.dumps({"name": f"Bench User {i}", "username": f"bench{i}", "email": f"bench{i}@example.com"})
            local.conn.request("POST", "/users", body, {"Content-Type": "application/json",
                                                         "Authorization": f"Bearer {self.token}"})
            response = local.conn.getresponse()
            data = response.read()
            if response.status != 201:
                raise RuntimeError(f"seeding: POST /users answered {response.status}: {data[:200]!r}")
            return json.loads(data)["id"]

        with ThreadPoolExecutor(max_workers=32) as pool:
            return list(pool.map(post, range(self.args.users)))

    def post_lua(self) -> str:
        """New users only (durable writes, no conflicts): a username prefix of its own for each run."""
        return (f'counter = 0\nheaders = {{["Content-Type"] = "application/json", '
                f'["Authorization"] = "Bearer {self.token}"}}\n'
                'request = function()\n  counter = counter + 1\n'
                f'  local u = "w{os.getpid()}r{self.runs}_" .. counter\n'
                '  return wrk.format("POST", "/users", headers, '
                '\'{"name":"Bench","username":"\' .. u .. \'","email":"\' .. u .. \'@example.com"}\')\nend\n')

    def sqlite(self, floor: float | None) -> dict:
        db = self.work / "bench.sqlite"
        port, server = self.userapi(f"sqlite:{db}")
        with server:
            ids = self.seed(port)
        copy = self.work / "ready.sqlite"
        for suffix in ("", "-wal"):
            if Path(f"{db}{suffix}").exists():
                shutil.copy(f"{db}{suffix}", f"{copy}{suffix}")
        existing, new = [], []
        for i in range(5):
            for times, url in ((existing, f"sqlite:{copy}"), (new, f"sqlite:{self.work}/new-{i}.sqlite")):
                with self.userapi(url)[1] as (_, seconds):
                    times.append(seconds * 1000)
        result = {"exec_to_ready_ms": round(statistics.median(existing), 1),
                  "exec_to_ready_new_ms": round(statistics.median(new), 1)}

        by_id = get_lua(ids[:: max(1, len(ids) // 2000)])
        port, server = self.userapi(f"sqlite:{db}")
        with server as (proc, _):
            time.sleep(1.0)
            result["idle_rss_mb"] = rss_mb(proc.pid)
            for label, path, lua in (("GET /healthz", "/healthz", lambda: ""), ("GET /users/{id}", "/", lambda: by_id),
                                     ("GET /users?limit=50", "/users?limit=50", lambda: ""),
                                     ("POST /users", "/", self.post_lua)):  # a new script for each POST run
                r = result[label] = self.wrk(f"SQLite {label}", port, path, lua())
                # Paced at the target rate, or at 90 % of the rate reached if that is lower.
                rate = min(TARGETS[label] * floor, 0.9 * r["rps"]) if floor else 0.9 * r["rps"]
                r["paced"] = self.wrk(f"SQLite {label}", port, path, lua(), paced_at=rate)
            result["peak_rss_mb"] = rss_mb(proc.pid, "VmHWM")  # this server did nothing but idle and these runs
        return result

    def postgres(self, url: str) -> dict:
        pin_postgres()
        result = {}
        port, server = self.userapi(url)
        with server as (proc, _):
            ids = self.seed(port)
            sample = ids[:: max(1, len(ids) // 128)][:128]  # pgbench takes at most 128 -f scripts
            by_id = []
            for n, user in enumerate(sample):
                by_id.append(self.work / f"by-id-{n}.sql")
                by_id[-1].write_text(f"{SELECT} WHERE id = '{user}';\n")
            page = self.work / "page.sql"
            page.write_text(FIRST_PAGE + ";\n")
            # userapi talks to PostgreSQL without TLS unless configured to; so does pgbench here.
            plain = url + ("&" if "?" in url else "?") + "sslmode=disable"
            result["pgbench by id"] = self.pgbench("pgbench select by id", by_id, plain)
            result["GET /users/{id}"] = self.wrk("PostgreSQL GET /users/{id}", port, "/", get_lua(sample))
            result["pgbench page"] = self.pgbench("pgbench select page of 50", [page], plain)
            result["GET /users?limit=50"] = self.wrk("PostgreSQL GET /users?limit=50", port, "/users?limit=50")
            result["GET /healthz"] = self.wrk("PostgreSQL GET /healthz", port, "/healthz")
            result["POST /users"] = self.wrk("PostgreSQL POST /users", port, "/", self.post_lua())
            result["peak_rss_mb"] = rss_mb(proc.pid, "VmHWM")  # seeding included
        return result


def get_lua(ids: list[str]) -> str:
    return ("ids = {" + ",".join(f'"{i}"' for i in ids) + "}\nrequest = function()\n"
            '  return wrk.format("GET", "/users/" .. ids[math.random(#ids)])\nend\n')


def judge(value: float, target: float, unit: str, lower_is_better: bool = False) -> str:
    missed = value > target if lower_is_better else value < target
    return f"missed by {abs(value - target):.1f} {unit}" if missed else "met"


def table(report: dict) -> str:
    lines = ["| What | Rate | Ratio to its floor | Target | p50 / p99 saturated | p99 at the target rate | Result |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]

    def line(what: str, r: dict, floor: float | None = None, target: float | None = None) -> None:
        ratio = f"{100 * r['rps'] / floor:.1f} %" if floor else ""
        verdicts = [("rate " + judge(100 * r["rps"] / floor, 100 * target, "points")) if floor
                    else "floor not measured"] if target else []
        paced = ""
        if "paced" in r:
            p = r["paced"]
            paced = f"{p['p99_ms']:.2f} ms at {p['rps']:,.0f} req/s"
            verdicts.append("paced p99 " + judge(p["p99_ms"], TARGETS["paced p99 ms"], "ms", lower_is_better=True))
        lines.append(f"| {what} | {r['rps']:,.0f} req/s | {ratio} | {f'≥ {100 * target:.0f} %' if target else '–'} | "
                     f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f} ms | {paced} | {'; '.join(verdicts) or '–'} |")

    floor = report["floor"]["rps"] if report["floor"] else None
    if floor:
        line("floor: Hummingbird, one route, `GET /healthz`", report["floor"], floor)
    else:
        lines.append("| floor: Hummingbird, one route | floor not measured (no BASELINES_BIN) | | | | | |")
    s = report["sqlite"]
    for label in ("GET /healthz", "GET /users/{id}", "GET /users?limit=50", "POST /users"):
        line(f"SQLite {label}", s[label], floor, TARGETS[label])
    if p := report.get("postgres"):
        line("pgbench: select by id", p["pgbench by id"], p["pgbench by id"]["rps"])
        line("PostgreSQL GET /users/{id}", p["GET /users/{id}"], p["pgbench by id"]["rps"],
             TARGETS["PostgreSQL GET /users/{id}"])
        line("pgbench: select page of 50", p["pgbench page"], p["pgbench page"]["rps"])
        line("PostgreSQL GET /users?limit=50", p["GET /users?limit=50"], p["pgbench page"]["rps"],
             TARGETS["PostgreSQL GET /users?limit=50"])
        line("PostgreSQL GET /healthz (information)", p["GET /healthz"])
        line("PostgreSQL POST /users (information)", p["POST /users"])
    limit = TARGETS["exec to ready ms"]
    lines.append(f"| exec to ready, existing database ({report['users']:,} users), median of 5 | "
                 f"{s['exec_to_ready_ms']} ms (new database: {s['exec_to_ready_new_ms']} ms) | | ≤ {limit:.0f} ms | | | "
                 f"{judge(s['exec_to_ready_ms'], limit, 'ms', lower_is_better=True)} |")
    limit = TARGETS["idle RSS MB"]
    lines.append(f"| idle RSS, {report['users']:,} users stored | {s['idle_rss_mb']} MB | | < {limit:.0f} MB | | | "
                 f"{judge(s['idle_rss_mb'], limit, 'MB', lower_is_better=True)} |")
    pg_peak = f" (PostgreSQL: {report['postgres']['peak_rss_mb']} MB)" if report.get("postgres") else ""
    lines.append(f"| peak RSS under load | {s['peak_rss_mb']} MB{pg_peak} | | – | | | – |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--users", type=int, default=10_000, help="users seeded before the runs")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="userapi-bench-"))
    bench = Bench(args, work)
    try:
        version = subprocess.run([bench.binary, "version"], capture_output=True, text=True, check=True).stdout.strip()
        print(f"bench: {version}; server and database on CPU {SERVER_CPU}, load on CPU {LOAD_CPU}; "
              f"{CONNECTIONS} connections, {args.duration} s per run, {args.users:,} users", flush=True)
        report = {"binary": version, "machine": platform.platform(), "cpus": os.cpu_count(), "users": args.users,
                  "connections": CONNECTIONS, "duration_s": args.duration, "targets": TARGETS,
                  "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "floor": None}
        if directory := os.environ.get("BASELINES_BIN"):
            port = free_port()
            # One event loop, as userapi runs on its one pinned core.
            env = {**os.environ, "NIO_SINGLETON_GROUP_LOOP_COUNT": "1"}
            with bench.serving([os.path.join(directory, "hummingbird-fixed-200"), str(port)], port, env, "/healthz"):
                report["floor"] = bench.wrk("floor: Hummingbird GET /healthz", port, "/healthz")
        else:
            print("  floor not measured (BASELINES_BIN not set): no ratios for the SQLite lines", flush=True)
        report["sqlite"] = bench.sqlite(report["floor"] and report["floor"]["rps"])
        if url := os.environ.get("USERAPI_TEST_POSTGRES_URL"):
            report["postgres"] = bench.postgres(url)
    except (subprocess.CalledProcessError, RuntimeError, OSError) as error:
        detail = getattr(error, "stderr", None) or ""
        print(f"bench: a run could not be done: {error}\n{detail}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["warnings"] = bench.warnings
    text = table(report)
    print("\n" + text)
    for warning in bench.warnings:
        print(f"bench: WARNING {warning}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"bench-{stamp}.json").write_text(json.dumps(report, indent=2))
    (out / "bench-latest.md").write_text(text + "\n")
    print(f"\nbench: results in bench/results/bench-latest.md and bench-{stamp}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
