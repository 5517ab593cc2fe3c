"""The pieces a drill is made of: replicas (real userapi processes), a real
HAProxy standing in for the Service/Ingress, and the chart's rendered
settings; PostgreSQL control is harness.Postgres. Everything listens on
127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import ROOT, free_port, http, tail, wait_for  # noqa: E402


# Every process a drill starts, so that a drill that fails half-way leaves nothing running.
STARTED: list[subprocess.Popen] = []


def stop_all() -> None:
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            process.kill()
        process.wait()


def duration_seconds(text: str) -> float:
    text = str(text).strip()
    for suffix, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * scale
    return float(text)


def memory_bytes(text: str) -> int:
    text = str(text)
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "K": 1000, "M": 10**6, "G": 10**9}
    for suffix, scale in units.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * scale)
    return int(text)


@dataclass
class ChartSettings:
    """What the chart renders for a PostgreSQL release with 3 replicas: the
    drills use exactly these settings, so they test what would ship."""

    env: dict[str, str]
    config_yaml: str
    readiness_path: str
    readiness_period: float
    readiness_timeout: float
    readiness_failures: int
    liveness_path: str
    grace_period: float
    min_ready_seconds: float
    max_surge: int
    max_unavailable: int
    memory_limit: int
    replicas: int

    @property
    def drain_delay(self) -> float:
        return duration_seconds(self.env.get("SHUTDOWN_DRAIN_DELAY", "5s"))

    @property
    def shutdown_timeout(self) -> float:
        return duration_seconds(self.env.get("SHUTDOWN_TIMEOUT", "20s"))

    @staticmethod
    def render(values: dict) -> "ChartSettings":
        sys.path.insert(0, str(ROOT / "scripts" / "chart"))
        import chartlib  # noqa: E402  (needs the tools venv: run through `make drills`)

        objs = chartlib.objects(chartlib.render(values), include_tests=False)
        deployment = next(o for o in objs if o["kind"] == "Deployment")
        configmap = next(
            o for o in objs if o["kind"] == "ConfigMap" and "config.yaml" in (o.get("data") or {})
        )
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
        readiness = container["readinessProbe"]
        strategy = deployment["spec"]["strategy"]
        replicas = deployment["spec"].get("replicas", 1)

        def count(value, total: int, round_up: bool) -> int:
            if isinstance(value, str) and value.endswith("%"):
                raw = total * int(value[:-1]) / 100
                return int(-(-raw // 1)) if round_up else int(raw)
            return int(value)

        rolling = strategy.get("rollingUpdate", {})
        return ChartSettings(
            env=env,
            config_yaml=configmap["data"]["config.yaml"],
            readiness_path=readiness["httpGet"]["path"],
            readiness_period=float(readiness.get("periodSeconds", 10)),
            readiness_timeout=float(readiness.get("timeoutSeconds", 1)),
            readiness_failures=int(readiness.get("failureThreshold", 3)),
            liveness_path=container["livenessProbe"]["httpGet"]["path"],
            grace_period=float(pod.get("terminationGracePeriodSeconds", 30)),
            min_ready_seconds=float(deployment["spec"].get("minReadySeconds", 0)),
            max_surge=count(rolling.get("maxSurge", "25%"), replicas, True),
            max_unavailable=count(rolling.get("maxUnavailable", "25%"), replicas, False),
            memory_limit=memory_bytes(container.get("resources", {}).get("limits", {}).get("memory", "512Mi")),
            replicas=replicas,
        )


class Replica:
    """One userapi process, configured the way the chart configures a pod."""

    def __init__(self, binary: str, name: str, settings: ChartSettings, database_url: str, token: str,
                 workdir: Path, extra_env: dict[str, str] | None = None):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # With a management port (as the chart sets it) the probes are served there.
        self.management_port = free_port() if "HTTP_MANAGEMENT_PORT" in settings.env else None
        self.probe_url = f"http://127.0.0.1:{self.management_port}" if self.management_port else self.url
        self.log_path = workdir / f"{name}.log"
        config_path = workdir / f"{name}-config.yaml"
        config_path.write_text(settings.config_yaml)
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
        env.update(settings.env)
        env.update({
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(self.port),
            **({"HTTP_MANAGEMENT_PORT": str(self.management_port)} if self.management_port else {}),
            "CONFIG_FILE": str(config_path),
            "DATABASE_URL": database_url,
            "AUTH_TOKENS": token,
            "INSTANCE_NAME": name,
            "LOG_ACCESS": "false",
            "LOG_FORMAT": "json",
        })
        # The chart mounts these from Secrets; here the URL and token carry them.
        for key in ("AUTH_TOKENS_FILE", "DATABASE_PASSWORD_FILE", "DATABASE_TLS_CA_FILE"):
            env.pop(key, None)
        env.update(extra_env or {})
        self.started = time.monotonic()
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen([binary, "serve"], env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        cwd=workdir)
        STARTED.append(self.process)
        self.ready_at: float | None = None

    def wait_ready(self, path: str) -> float:
        wait_for(f"{self.name} ready", lambda: http("GET", self.probe_url + path, timeout=1.0)[0] == 200, interval=0.02,
                 process=self.process, log=self.log_path)
        self.ready_at = time.monotonic()
        return self.ready_at - self.started

    def signal(self, sig: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def rss_bytes(self) -> int:
        try:
            for line in open(f"/proc/{self.process.pid}/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def peak_rss_bytes(self) -> int:
        try:
            for line in open(f"/proc/{self.process.pid}/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 25) -> str:
        return tail(self.log_path, lines)

    def stop_now(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log.close()


class Balancer:
    """HAProxy in front of the replicas, standing in for a Service/Ingress.

    Active health checks use the chart's readiness probe (path, period,
    timeout, failure threshold), the way endpoint readiness works. Server
    slots are declared up front; `remove` is what the endpoint controller
    does when a pod starts terminating (the endpoint leaves the EndpointSlice,
    and the proxies stop sending new requests once they see it). Connection
    failures are retried on another server, as ingress-nginx does for errors
    before a request was sent.
    """

    def __init__(self, settings: ChartSettings, slots: int, workdir: Path):
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.socket_path = str(workdir / "haproxy.sock")
        self.slots: dict[str, int] = {}
        self.free = [f"s{i}" for i in range(slots)]
        servers = "\n".join(
            f"  server s{i} 127.0.0.1:{free_port()} check" for i in range(slots)
        )
        config = f"""
global
  maxconn 8000
  stats socket {self.socket_path} mode 600 level admin
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  retries 2
  option redispatch 1
  retry-on conn-failure
frontend api
  bind 127.0.0.1:{self.port}
  default_backend replicas
backend replicas
  balance roundrobin
  option httpchk GET {settings.readiness_path}
  http-check expect status 200
  timeout check {int(settings.readiness_timeout * 1000)}
  default-server inter {int(settings.readiness_period * 1000)} fall {settings.readiness_failures} rise 1
{servers}
"""
        (workdir / "haproxy.cfg").write_text(config)
        self.process = subprocess.Popen([haproxy, "-f", str(workdir / "haproxy.cfg"), "-db"],
                                        stdout=open(workdir / "haproxy.log", "w"), stderr=subprocess.STDOUT)
        STARTED.append(self.process)
        wait_for("haproxy started", lambda: os.path.exists(self.socket_path), interval=0.05, process=self.process,
                 log=workdir / "haproxy.log")
        # Empty slots wait in maintenance (not via `disabled` in the config, which the
        # runtime API cannot lift).
        for slot in self.free:
            self.command(f"set server replicas/{slot} state maint")

    def command(self, text: str) -> str:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(self.socket_path)
            s.sendall((text + "\n").encode())
            chunks = []
            while True:
                data = s.recv(65536)
                if not data:
                    break
                chunks.append(data)
        return b"".join(chunks).decode()

    def add(self, replica: Replica) -> None:
        """A new pod: its endpoint exists but serves only once readiness checks pass."""
        slot = self.free.pop(0)
        self.slots[replica.name] = slot
        self.command(f"set server replicas/{slot} addr 127.0.0.1 port {replica.port}")
        if replica.management_port:  # health checks go where the readiness probe goes
            self.command(f"set server replicas/{slot} check-port {replica.management_port}")
        self.command(f"set server replicas/{slot} state ready")
        # Start as not-ready: the health check must pass first (rise 1 at the probe period).
        self.command(f"set server replicas/{slot} health down")

    def remove(self, replica: Replica) -> None:
        """The pod is terminating: its endpoint is withdrawn."""
        slot = self.slots.pop(replica.name)
        self.command(f"set server replicas/{slot} state maint")
        self.free.append(slot)

    def serving(self) -> list[str]:
        state = self.command("show servers state replicas")
        names = {slot: name for name, slot in self.slots.items()}
        up = []
        for line in state.splitlines():
            parts = line.split()
            # Columns: be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state ...
            if len(parts) > 6 and parts[3] in names and parts[5] == "2" and parts[6] == "0":
                up.append(names[parts[3]])
        return up

    def wait_serving(self, replica: Replica) -> None:
        wait_for(f"{replica.name} an UP server in haproxy", lambda: replica.name in self.serving(), interval=0.05,
                 process=self.process)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait()


def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="userapi-drill-"))


def version_of(binary: str) -> str:
    out = subprocess.run([binary, "version", "--json"], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["version"]


def kill_all(replicas: list[Replica]) -> None:
    for r in replicas:
        r.signal(signal.SIGKILL)
        r.stop_now()
