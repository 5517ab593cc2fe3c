"""make test-image: the Dockerfile (hadolint), compose.yaml (resolved by
podman-compose, its hardening inspected on the parsed config), and a smoke
test of the built image $IMAGE:$TAG (make image) run the way a hardened
platform would: read-only root filesystem, its default non-root user, all
capabilities dropped, no-new-privileges, a /data volume, a loopback port.
The smoke test checks readiness, a write read back field by field with a
token, the HEALTHCHECK command, a graceful `podman stop` (exit 0), that the
data survives recreating the container on the same volume, and that crashes
leave a symbolicated report in the log. podman runs as root here.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from harness import ROOT, assert_none, free_port, http, unavailable, wait_for

pytestmark = pytest.mark.container

HERE = Path(__file__).resolve().parent
IMAGE = f"{os.environ.get('IMAGE', 'localhost/userapi')}:{os.environ.get('TAG', 'dev')}"
SWIFT_IMAGE = os.environ.get("SWIFT_IMAGE", "docker.io/library/swift:6.3.1-bookworm")
PODMAN_ENV = os.environ | {"CONTAINERS_CONF": str(HERE / "containers.conf")}


def test_hadolint_dockerfile(tools):
    p = subprocess.run([tools.hadolint, "--failure-threshold", "info", str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_hadolint_flags_a_careless_dockerfile(tools, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM debian:latest\nRUN apt-get update && apt-get install curl\n")
    p = subprocess.run([tools.hadolint, "--failure-threshold", "info", str(tmp_path / "Dockerfile")], capture_output=True, text=True)
    assert p.returncode != 0 and "DL3007" in p.stdout, p.stdout


# --- compose.yaml ---------------------------------------------------------------

@pytest.fixture(scope="module")
def compose(tools, tmp_path_factory) -> dict:
    """compose.yaml as podman-compose resolves it (with dummy secret files)."""
    tools.podman  # podman-compose calls `podman version` before anything else
    work = tmp_path_factory.mktemp("compose")
    shutil.copy(ROOT / "compose.yaml", work)
    (work / "deploy/compose").mkdir(parents=True)
    shutil.copy(ROOT / "deploy/compose/config.yaml", work / "deploy/compose")
    (work / "secrets").mkdir()
    for name in ("postgres-password", "api-tokens"):
        (work / "secrets" / name).write_text("dummy\n")
    p = subprocess.run([tools.podman_compose, "-f", "compose.yaml", "config"], cwd=work, env=PODMAN_ENV, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    return yaml.safe_load(p.stdout)


def test_compose_services_healthchecked_read_only_no_password_in_env(compose):
    problems = []
    for name, svc in compose["services"].items():
        if "healthcheck" not in svc:
            problems.append(f"{name} has no healthcheck")
        if not svc.get("read_only"):
            problems.append(f"{name} is not read-only")
        env = svc.get("environment", {})
        for k, v in (env if isinstance(env, dict) else dict(e.split("=", 1) for e in env)).items():
            if "PASSWORD" in k and not k.endswith("_FILE"):
                problems.append(f"{name} sets {k} in its environment")
            if "postgres://" in str(v) and ":" in str(v).split("@")[0][len("postgres://"):]:
                problems.append(f"{name}: {k} embeds a password")
    assert_none(problems)


def test_compose_userapi_waits_for_postgres_runs_hardened_on_loopback(compose):
    api = compose["services"]["userapi"]
    assert api.get("depends_on", {}).get("postgres", {}).get("condition") == "service_healthy"
    assert api.get("user") == "65532:65532" and "ALL" in api.get("cap_drop", [])
    assert_none([f"publishes {p} beyond loopback" for p in api.get("ports", []) if not str(p).startswith("127.0.0.1:")])


def test_compose_secrets_from_files_and_a_named_data_volume(compose):
    assert_none([f"secret {n} not from a file" for n, s in compose.get("secrets", {}).items() if "file" not in s])
    assert "postgres-data" in compose.get("volumes", {})


# --- smoke test of the image ----------------------------------------------------

def podman(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], env=PODMAN_ENV, capture_output=True, text=True, timeout=timeout)


class Smoke:
    """One container of the image on a volume, started and recreated by the tests."""

    def __init__(self) -> None:
        self.id = f"smoke-{os.getpid()}-{secrets.token_hex(3)}"
        self.volume = f"userapi-{self.id}"
        self.token = secrets.token_urlsafe(18)
        self.base = f"http://127.0.0.1:{free_port()}"

    def inspect(self, fmt: str, *what: str) -> str:
        return podman(*what, "inspect", "--format", fmt, *([self.id] if not what else [IMAGE])).stdout.strip()

    def running(self) -> bool:
        return self.inspect("{{.State.Running}}") == "true"

    def start(self) -> None:
        podman("rm", "-f", "-t", "0", self.id)
        p = podman("run", "-d", "--name", self.id, "--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges",
                   "-v", f"{self.volume}:/data", "-p", f"127.0.0.1:{self.base.rsplit(':', 1)[1]}:8080",
                   "-e", f"AUTH_TOKENS={self.token}", "-e", "SHUTDOWN_DRAIN_DELAY=2s", "-e", "SHUTDOWN_TIMEOUT=10s", IMAGE)
        assert p.returncode == 0, p.stderr

        def ready() -> bool:
            if not self.running():
                raise RuntimeError(f"{self.id} exited:\n{self.logs()[-3000:]}")
            return http("GET", self.base + "/readyz", timeout=2)[0] == 200

        wait_for(f"{self.id} ready", ready)

    def ensure_running(self) -> None:
        if not self.running():
            self.start()

    def logs(self) -> str:
        p = podman("logs", self.id)
        return p.stdout + p.stderr

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="module")
def smoke(tools):
    if os.geteuid() != 0:
        unavailable("the container checks run podman as root (sudo make test-image)")
    tools.podman
    if podman("image", "exists", IMAGE).returncode != 0:
        unavailable(f"image {IMAGE} not built (make image)")
    container = Smoke()
    assert podman("volume", "create", container.volume).returncode == 0
    try:
        container.start()
        yield container
    finally:
        podman("rm", "-f", "-t", "0", container.id, f"{container.id}-crash")
        podman("volume", "rm", "-f", container.volume)


@pytest.fixture(scope="module")
def created(smoke) -> dict:
    """A user created through the API; the tests read it back."""
    smoke.ensure_running()
    body = {"name": "Container Test", "username": "container", "email": "container@example.com"}
    status, answer = http("POST", smoke.base + "/users", body, smoke.auth())
    assert status == 201, f"create answered {status}: {answer[:500]!r}"
    user = json.loads(answer)
    assert user.get("id"), f"created user without an id: {user}"
    assert {k: user.get(k) for k in body} == body, f"create answered {user}"
    return user


def read_back(smoke: Smoke, user: dict) -> None:
    status, answer = http("GET", f"{smoke.base}/users/{user['id']}", headers=smoke.auth())
    assert status == 200, f"GET /users/{user['id']} answered {status}"
    got = json.loads(answer)
    assert {k: got.get(k) for k in ("id", "name", "username", "email")} == {k: user[k] for k in ("id", "name", "username", "email")}, got


def test_smoke_image_user_is_nonroot(smoke):
    assert smoke.inspect("{{.Config.User}}", "image") == "65532:65532"


def test_smoke_process_runs_as_uid_65532_read_only_without_capabilities(smoke):
    smoke.ensure_running()
    assert podman("top", smoke.id, "huser").stdout.strip().splitlines()[-1].strip() == "65532"
    assert smoke.inspect("{{.HostConfig.ReadonlyRootfs}}") == "true"
    assert smoke.inspect("{{.EffectiveCaps}}") == "[]"


def test_smoke_no_shell_in_the_image(smoke):
    smoke.ensure_running()
    p = podman("exec", smoke.id, "/bin/sh", "-c", "true")
    assert p.returncode != 0 and smoke.running(), "the image has a shell"


def test_smoke_create_and_read_back(smoke, created):
    read_back(smoke, created)


def test_smoke_writes_without_a_token_refused(smoke):
    smoke.ensure_running()
    assert http("POST", smoke.base + "/users", {})[0] == 401


def test_smoke_reads_without_a_token_refused(smoke):
    """The image's defaults protect reads (auth.protect_reads); the bare status page stays open."""
    smoke.ensure_running()
    assert http("GET", smoke.base + "/users")[0] == 401
    assert http("GET", smoke.base + "/openapi.yaml")[0] == 401
    assert http("GET", smoke.base + "/")[0] == 200


def test_smoke_openapi_served_and_build_stamped(smoke):
    smoke.ensure_running()
    assert http("GET", smoke.base + "/openapi.yaml", headers=smoke.auth())[1].startswith(b"openapi: 3.1")
    status, version = http("GET", smoke.base + "/version", headers=smoke.auth())
    assert status == 200 and json.loads(version).get("version") not in (None, "", "unknown"), version


def test_smoke_healthcheck_command(smoke):
    smoke.ensure_running()
    p = podman("healthcheck", "run", smoke.id)
    assert p.returncode == 0, p.stdout + p.stderr


def test_smoke_podman_stop_is_graceful(smoke):
    smoke.ensure_running()
    podman("stop", "-t", "15", smoke.id)
    assert smoke.inspect("{{.State.ExitCode}}") == "0", smoke.logs()[-2000:]
    assert '"msg":"stopped"' in smoke.logs(), "no clean stop in the logs"


def test_smoke_data_survives_recreating_the_container(smoke, created):
    podman("stop", "-t", "15", smoke.id)
    smoke.start()
    read_back(smoke, created)


def test_smoke_sigsegv_leaves_a_symbolicated_crash_report(smoke):
    """A SIGSEGV sent to the server makes the runtime's handler write the report, whose
    frames must carry names (the image strips debug info but keeps the symbol table)."""
    smoke.ensure_running()
    podman("kill", "--signal", "SEGV", smoke.id)
    report = wait_for("the crash report", lambda: "Backtrace took" in smoke.logs() and smoke.logs(), interval=0.5)
    report = "\n".join(line for line in report.splitlines() if not line.startswith("{"))
    assert "Program crashed" in report and re.search(r"(?m)0x[0-9a-f]+ [A-Za-z_$][^ ]* \+ [0-9]+ in userapi$", report), report[:3000]
    # A signal that is sent rather than caused does not end a Swift process: remove it.
    podman("rm", "-f", "-t", "0", smoke.id)


def test_smoke_trapping_swift_program_reports_and_exits_132(smoke, tmp_path):
    """A real crash (a trap, as from a Swift runtime error) under the same restrictions,
    as PID 1: a report naming the function, and exit 132 (SIGILL) instead of a hang. The
    probe is compiled in the image the Dockerfile builds in (same glibc as userapi)."""
    shutil.copy(HERE / "crash-probe.swift", tmp_path)
    build = podman("run", "--rm", "--network=none", "-v", f"{tmp_path}:/probe", SWIFT_IMAGE,
                   "swiftc", "-O", "-static-stdlib", "/probe/crash-probe.swift", "-o", "/probe/crash-probe", timeout=1800)
    assert build.returncode == 0, f"could not compile crash-probe.swift in {SWIFT_IMAGE}: {build.stderr[-2000:]}"
    crash = podman("run", "--name", f"{smoke.id}-crash", "--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges",
                   "-v", f"{tmp_path / 'crash-probe'}:/usr/local/bin/crash-probe:ro", "--entrypoint", "/usr/local/bin/crash-probe", IMAGE)
    out = crash.stdout + crash.stderr
    assert crash.returncode == 132 and "Program crashed: Illegal instruction" in out and "crashProbeOutOfRange" in out, out[-3000:]
