"""What the delivery checks (scripts/conftest.py) and the drills share, declared
once: the repository root, a free loopback port, HTTP without dependencies,
waiting for a state instead of a clock, and control of the throwaway
PostgreSQL of scripts/with-postgres.sh. Standard library only, so shell glue
can use it with the system Python:

  python3 scripts/harness.py free-port     prints a free port on 127.0.0.1
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NoReturn

ROOT = Path(__file__).resolve().parents[1]
# GitHub, GitLab and .ci/run set CI=true: there a missing tool, binary or database fails a check.
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# The one upper bound for waiting on a state (a server ready, data scraped) on a loaded machine.
WAIT_LIMIT = float(os.environ.get("USERAPI_TEST_WAIT_LIMIT", "180"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
         timeout: float = 10.0) -> tuple[int, bytes]:
    """(status, body); status 0 when nothing answered. A dict/list body is sent as JSON."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (OSError, ValueError):
        return 0, b""


def wait_for(what: str, predicate: Callable[[], Any], timeout: float = WAIT_LIMIT, interval: float = 0.1,
             process: subprocess.Popen | list[subprocess.Popen] | None = None, log: Path | None = None) -> Any:
    """Polls predicate until it returns something truthy (and returns that). Gives up after
    timeout, at once when a `process` has exited or the predicate raises RuntimeError
    (nothing will change); the error carries the log's tail. Other errors are retried."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    processes = process if isinstance(process, list) else [process] if process else []
    while True:
        if dead := [p for p in processes if p.poll() is not None]:
            raise RuntimeError(f"{what}: {Path(dead[0].args[0]).name} exited with {dead[0].returncode}{tail(log)}")
        try:
            value = predicate()
            if value:
                return value
        except RuntimeError:
            raise
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last = exc
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached within {timeout:g}s" + (f" ({last})" if last else "") + tail(log))
        time.sleep(interval)


def unavailable(reason: str) -> NoReturn:
    """Something a check needs is missing: a failure in CI, a skip with the reason elsewhere."""
    import pytest

    if IN_CI:
        pytest.fail(f"{reason} (CI=true: missing is a failure)", pytrace=False)
    pytest.skip(reason)


def assert_none(problems: list[str], what: str = "") -> None:
    """Fails with every problem listed; an empty list passes."""
    __tracebackhide__ = True
    assert not problems, (f"{what}:\n" if what else "") + "\n".join(map(str, problems))


def tail(log: Path | None, lines: int = 25) -> str:
    """The end of a log, or from its first line that is not JSON (a crash report) on."""
    if log is None or not Path(log).exists():
        return ""
    text = Path(log).read_text(errors="replace").splitlines()
    crash = next((i for i, line in enumerate(text) if line and not line.startswith("{")), None)
    shown = text[crash:crash + 3 * lines] if crash is not None else text[-lines:]
    return f"\n--- {Path(log).name}:\n" + "\n".join(shown)


@dataclass
class Postgres:
    """The throwaway server of scripts/with-postgres.sh: from its environment
    variables when the command runs under it, else started here (`start_throwaway`)."""

    url: str
    bin: str
    data: str
    run_as: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # the variables with-postgres.sh exports
    holder: subprocess.Popen | None = None

    KEYS = ("USERAPI_TEST_POSTGRES_URL", "USERAPI_TEST_POSTGRES_CA", "USERAPI_TEST_OTHER_CA",
            "PGDATA_DIR", "PG_BIN", "PG_PORT", "PG_RUN_AS")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, holder: subprocess.Popen | None = None) -> Postgres | None:
        env = dict(os.environ if env is None else env)
        if not env.get("USERAPI_TEST_POSTGRES_URL"):
            return None
        return cls(url=env["USERAPI_TEST_POSTGRES_URL"], bin=env.get("PG_BIN", ""), data=env.get("PGDATA_DIR", ""),
                   run_as=env.get("PG_RUN_AS", "").split(), env={k: env[k] for k in cls.KEYS if k in env},
                   holder=holder)

    @classmethod
    def start_throwaway(cls) -> Postgres:
        """Runs scripts/with-postgres.sh around a process that reports the server's
        environment and waits; `close` ends it, and with-postgres.sh removes the server."""
        log = Path(tempfile.mkstemp(prefix="userapi-with-postgres-", suffix=".log")[1])
        holder = subprocess.Popen(
            [str(ROOT / "scripts" / "with-postgres.sh"), sys.executable, "-c",
             "import json, os, sys; print(json.dumps(dict(os.environ)), flush=True); sys.stdin.read()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(log, "w"), text=True)  # noqa: SIM115
        line = holder.stdout.readline()
        if not line:
            holder.wait()
            raise RuntimeError(f"scripts/with-postgres.sh failed (exit {holder.returncode}){tail(log)}")
        log.unlink()
        return cls.from_env(json.loads(line), holder)

    def close(self) -> None:
        if self.holder is not None:
            self.holder.stdin.close()
            self.holder.wait(timeout=120)

    def pg_ctl(self, *args: str) -> None:
        subprocess.run([*self.run_as, f"{self.bin}/pg_ctl", "-D", self.data, *args], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=WAIT_LIMIT)

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("-m", mode, "-w", "stop")

    def start(self) -> None:
        self.pg_ctl("-l", f"{self.data}/../server.log", "-w", "-t", str(int(WAIT_LIMIT)), "start")

    def server_pids(self) -> list[str]:
        """The postmaster and every process it started (backends, background workers)."""
        postmaster = Path(self.data, "postmaster.pid").read_text().split("\n", 1)[0].strip()
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == postmaster:
                children.append(stat.parent.name)
        return [postmaster, *children]

    def freeze(self) -> list[str]:
        """SIGSTOP to every server process: connections stay open and nothing answers,
        as on a network partition. The postmaster first, so it starts no new backend."""
        pids = self.server_pids()
        subprocess.run([*self.run_as, "kill", "-STOP", *pids], check=True)
        return pids

    def thaw(self, pids: list[str]) -> None:
        subprocess.run([*self.run_as, "kill", "-CONT", *reversed(pids)], check=True)

    def fresh_database(self) -> str:
        name = "t_" + os.urandom(6).hex()
        subprocess.run([f"{self.bin}/psql" if self.bin else "psql", self.url, "-qc", f"CREATE DATABASE {name}"], check=True,
                       stdout=subprocess.DEVNULL)
        return f"{self.url.rpartition('/')[0]}/{name}"


if __name__ == "__main__":
    if sys.argv[1:] == ["free-port"]:
        print(free_port())
    else:
        sys.exit(__doc__)
