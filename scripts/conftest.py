"""Fixtures every delivery check shares (one pytest session, scripts/pytest.ini).

Groups are markers (chart, kustomize, infra, monitoring, pipelines, release,
docs, drills, container, api; `make test-<area>` selects one with -m). A test
module that declares none gets the one named like its directory.

A tool, binary or database that is not there skips its tests with the reason
locally and fails them in CI (CI=true): harness.unavailable.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import harness
from harness import unavailable

sys.dont_write_bytecode = True  # no __pycache__ in the work tree (make also sets PYTHONDONTWRITEBYTECODE)

SCRIPTS = Path(__file__).resolve().parent
TOOLS_DIR = SCRIPTS / "tools"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    groups = {line.split(":", 1)[0].strip() for line in config.getini("markers")}
    for item in items:
        if not any(item.get_closest_marker(g) for g in groups):
            group = Path(item.path).resolve().relative_to(SCRIPTS).parts[0]
            if group not in groups:
                raise pytest.UsageError(f"{item.nodeid}: no group marker ({', '.join(sorted(groups))})")
            item.add_marker(group)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return harness.ROOT


@pytest.fixture(scope="session")
def free_port():
    """A function returning a free port on 127.0.0.1 (call it once per server)."""
    return harness.free_port


# How each tool is found: the project's venv (scripts/tools/ensure-venv.sh), checkov's
# own venv (ensure-checkov.sh, CHECKOV overrides), a Debian package (ensure-apt.sh), PATH
# only (kubectl, terraform), or the helm shim (scripts/chart/bin/helm, Helm v4 library).
TOOLS = {
    **dict.fromkeys(["actionlint", "zizmor", "yamllint", "shellcheck", "hadolint", "kubernetes-validate",
                     "podman-compose", "schemathesis", "python"], "venv"),
    "checkov": "checkov",
    "promtool": "apt:prometheus", "prometheus": "apt:prometheus", "haproxy": "apt:haproxy", "wrk": "apt:wrk",
    "podman": "apt:podman runc", "kubectl": "path", "terraform": "path", "helm": "shim",
}


class Tools:
    """`tools.checkov`, `tools.kubernetes_validate`, ...: the path of each tool the checks run."""

    def __init__(self) -> None:
        self._found: dict[str, str] = {}

    @functools.cached_property
    def venv_bin(self) -> Path:
        return Path(self._installer("ensure-venv.sh"))

    @staticmethod
    def _installer(script: str, *args: str) -> str:
        proc = subprocess.run([str(TOOLS_DIR / script), *args], capture_output=True, text=True)
        if proc.returncode != 0:
            unavailable(f"scripts/tools/{script} {' '.join(args)} failed: {proc.stderr.strip()[-600:]}")
        return proc.stdout.strip()

    def __getattr__(self, attr: str) -> str:
        name = attr.replace("_", "-")
        if name not in TOOLS:
            raise AttributeError(attr)
        if name not in self._found:
            how = TOOLS[name]
            if how == "venv":
                path = str(self.venv_bin / name)
            elif how == "checkov":
                path = os.environ.get("CHECKOV") or self._installer("ensure-checkov.sh")
            elif how == "shim":
                path = str(SCRIPTS / "chart" / "bin" / "helm")
            else:
                if how.startswith("apt:"):
                    self._installer("ensure-apt.sh", *how.removeprefix("apt:").split())
                path = shutil.which(name) or ""
            if not path or not os.access(path, os.X_OK):
                unavailable(f"{name}: not on PATH" if how == "path" else f"{name}: not found ({how})")
            self._found[name] = path
        return self._found[name]


@pytest.fixture(scope="session")
def tools() -> Tools:
    return Tools()


@pytest.fixture(scope="session")
def userapi_bin(repo_root: Path) -> Path:
    """The userapi binary: USERAPI_BIN, default .build/debug/userapi (make build)."""
    path = (repo_root / os.environ.get("USERAPI_BIN", ".build/debug/userapi")).resolve()
    if not (path.is_file() and os.access(path, os.X_OK)):
        unavailable(f"userapi binary {path} not built (make build, or set USERAPI_BIN)")
    return path


@pytest.fixture(scope="session")
def postgres():
    """The throwaway PostgreSQL: scripts/with-postgres.sh's when the session runs
    under it, else one started for the session. Tests that stop or freeze it
    bring it back before they end."""
    pg = harness.Postgres.from_env()
    if pg is None:
        try:
            pg = harness.Postgres.start_throwaway()
        except (OSError, RuntimeError) as exc:
            if os.environ.get("USERAPI_REQUIRE_POSTGRES") == "1":
                pytest.fail(f"PostgreSQL required (USERAPI_REQUIRE_POSTGRES=1): {exc}", pytrace=False)
            unavailable(f"no throwaway PostgreSQL: {exc}")
    yield pg
    pg.close()


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path


@pytest.fixture(scope="module")
def start_userapi(userapi_bin: Path, tmp_path_factory: pytest.TempPathFactory):
    """start_userapi(name, *serve args, env=...) -> Server: `userapi serve` on a free
    loopback port, returned once /readyz answers 200; stopped when the module ends."""
    started: list[subprocess.Popen] = []
    work = tmp_path_factory.mktemp("userapi")

    def start(name: str, *args: str, env: dict[str, str] | None = None) -> Server:
        port = harness.free_port()
        log = work / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([str(userapi_bin), "serve", "--host", "127.0.0.1", "--port", str(port), *args],
                                    env=env, cwd=work, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        started.append(proc)
        url = f"http://127.0.0.1:{port}"
        harness.wait_for(f"{name} ready", lambda: harness.http("GET", url + "/readyz", timeout=2)[0] == 200,
                         process=proc, log=log)
        return Server(url, proc, log)

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in started:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def repo_copy(repo_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """repo_copy(name) -> Path: the repository as git sees it (tracked and new files, not
    ignored build output) in a temp dir, sharing this checkout's .tools."""

    def copy(name: str) -> Path:
        dest = tmp_path_factory.mktemp(name)
        files = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=repo_root,
                               capture_output=True, text=True, check=True).stdout.split("\0")
        for rel in files:
            src = repo_root / rel
            if rel and not rel.startswith(".tools") and (src.exists() or src.is_symlink()):
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / rel, follow_symlinks=False)
        (dest / ".tools").symlink_to(repo_root / ".tools")
        return dest

    return copy
