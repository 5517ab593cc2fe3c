"""Chart <-> app contract test: start the REAL userapi binary exactly as the
rendered chart would start it in a pod, and check it behaves as the chart
assumes.

For the default (SQLite) and the postgres-external scenarios it takes the
rendered Deployment's API container (args, env, probe paths and port, volume
mounts) and the objects its volumes come from (the ConfigMap's config.yaml,
the tokens Secret), lays the mounts out under a temp dir, and runs
$USERAPI_BIN (default .build/debug/userapi) with that environment. Only what
cannot be the same outside a cluster is translated, and each translation is
printed:
  - mount paths (/etc/userapi, /var/run/secrets/userapi, /data, /tmp) -> the
    temp dir, in env values too;
  - HTTP_HOST 0.0.0.0 -> 127.0.0.1 and HTTP_PORT -> a free port (tests stay
    on loopback); the probe port must be the container port named http, and
    HTTP_PORT must equal it before the translation;
  - postgres-external: the database host/port/user in DATABASE_URL -> the
    throwaway server of scripts/with-postgres.sh (USERAPI_TEST_POSTGRES_URL),
    its password into the userapi-db Secret's file, and postgres.tls.mode
    rendered as disable (that server has no TLS certificate).
Then it checks:
  - `userapi config` with that environment accepts it and takes each
    setting from where the chart put it (config file / env), no unknown keys;
  - startup and liveness probe paths answer 200, the readiness path becomes
    200 within the startup probe's budget;
  - the `helm test` pod's own script (readyz + create/read/delete with the
    token from the rendered Secret) passes against it, run with /bin/sh;
  - SIGTERM: readiness turns 503 while draining, and the process exits 0
    within the pod's terminationGracePeriodSeconds.

The last line is "N passed, M failed, K skipped".
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

import chartlib
import checks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else k))
        return out
    return {prefix: node}


class Scenario:
    def __init__(self, name: str, values: dict[str, Any], external_secrets: dict[str, dict[str, str]], binary: Path):
        self.name = name
        self.binary = binary
        self.external = external_secrets
        self.objs = chartlib.objects(chartlib.render(values))
        self.by_name = {(o["kind"], o["metadata"]["name"]): o for o in self.objs}
        wl = checks.workload(self.objs)
        assert wl is not None, "no single workload rendered"
        self.pod = wl["spec"]["template"]["spec"]
        self.container = checks.api_container(self.pod)
        self.test_pod = next(o for o in self.objs if o["kind"] == "Pod" and o["metadata"].get("annotations", {}).get("helm.sh/hook") == "test")
        self.work = Path(tempfile.mkdtemp(prefix=f"userapi-contract-{name}-"))
        self.notes: list[str] = []

    # --- volumes ------------------------------------------------------------
    def secret_data(self, name: str) -> dict[str, bytes]:
        obj = self.by_name.get(("Secret", name))
        if obj is not None:
            return {k: base64.b64decode(v) for k, v in obj.get("data", {}).items()}
        if name in self.external:
            return {k: v.encode() for k, v in self.external[name].items()}
        raise AssertionError(f"Secret {name} is neither rendered nor provided by the test")

    def configmap_data(self, name: str) -> dict[str, bytes]:
        obj = self.by_name.get(("ConfigMap", name))
        if obj is None:
            raise AssertionError(f"ConfigMap {name} is not rendered")
        return {k: v.encode() for k, v in obj.get("data", {}).items()}

    def fill(self, volume: dict[str, Any], target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        sources = volume.get("projected", {}).get("sources")
        if sources is None:
            sources = [volume]
        for src in sources:
            if "configMap" in src:
                data, ref = self.configmap_data(src["configMap"]["name"]), src["configMap"]
            elif "secret" in src:
                ref = src["secret"]
                data = self.secret_data(ref.get("name") or ref.get("secretName"))
            else:
                continue  # emptyDir / persistentVolumeClaim: an empty writable dir
            items = ref.get("items") or [{"key": k, "path": k} for k in data]
            for item in items:
                path = target / item["path"]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data[item["key"]])

    def lay_out(self, pod_spec: dict[str, Any], container: dict[str, Any], root: Path) -> dict[str, str]:
        """Creates the container's mounts under root; returns mountPath -> local dir."""
        volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
        mapping = {}
        for m in container.get("volumeMounts", []):
            local = root / m["mountPath"].lstrip("/")
            self.fill(volumes[m["name"]], local)
            mapping[m["mountPath"]] = str(local)
        return mapping

    @staticmethod
    def translate(value: str, mapping: dict[str, str]) -> str:
        for mount, local in sorted(mapping.items(), key=lambda kv: -len(kv[0])):
            if value == mount or value.startswith(mount.rstrip("/") + "/"):
                return local + value[len(mount):]
            if value.startswith(f"sqlite:{mount.rstrip('/')}/"):
                return "sqlite:" + local + value[len("sqlite:") + len(mount):]
        return value

    def container_env(self, container: dict[str, Any], mapping: dict[str, str]) -> dict[str, str]:
        env = {}
        for e in container.get("env", []):
            if "value" not in e:
                raise AssertionError(f"env {e['name']} uses valueFrom, which this test cannot reproduce")
            env[e["name"]] = self.translate(e["value"], mapping)
        return env


def run_scenario(sc: Scenario, pg_url: str | None) -> list[str]:
    problems: list[str] = []
    c = sc.container
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    rendered_env = {e["name"]: e.get("value") for e in c["env"]}
    if rendered_env.get("HTTP_PORT") != str(ports.get("http")):
        problems.append(f"HTTP_PORT {rendered_env.get('HTTP_PORT')} is not the container port named http ({ports.get('http')})")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        if c[probe]["httpGet"]["port"] not in ("http", ports.get("http")):
            problems.append(f"{probe} does not target the http port")

    mapping = sc.lay_out(sc.pod, c, sc.work / "pod")
    env = sc.container_env(c, mapping)
    port = free_port()
    env["HTTP_HOST"], env["HTTP_PORT"] = "127.0.0.1", str(port)
    sc.notes.append(f"mounts under {sc.work / 'pod'}; HTTP_HOST 0.0.0.0 -> 127.0.0.1, HTTP_PORT {rendered_env['HTTP_PORT']} -> {port}")
    if pg_url is not None:
        rendered = urlsplit(env["DATABASE_URL"])
        test = urlsplit(pg_url)
        if rendered.password:
            problems.append("DATABASE_URL carries a password")
        env["DATABASE_URL"] = urlunsplit((rendered.scheme, f"{test.username}@{test.hostname}:{test.port}", test.path, rendered.query, ""))
        sc.notes.append(f"DATABASE_URL host {rendered.hostname}:{rendered.port} -> {test.hostname}:{test.port} (throwaway server)")
    env["HOSTNAME"] = f"{sc.name}-contract"
    env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
    cwd = sc.work / "cwd"  # the image's working dir has no config/.env; neither does this one
    cwd.mkdir()
    args = c.get("args", [])
    if c.get("command"):
        problems.append(f"container overrides the image ENTRYPOINT with {c['command']}")

    # 1. The app accepts the configuration and reads each part from where the chart put it.
    cfg = subprocess.run([str(sc.binary), "config", "--format", "json"], env=env, cwd=cwd, text=True, capture_output=True, timeout=60)
    if cfg.returncode != 0:
        return problems + [f"`userapi config` rejected the chart's configuration (exit {cfg.returncode}): {cfg.stderr.strip()}"]
    effective = json.loads(cfg.stdout)
    if "unknown key" in cfg.stderr:
        problems.append(f"the app ignores keys of the rendered config file: {cfg.stderr.strip()}")
    config_file = env.get("CONFIG_FILE", "")
    for key, value in flatten(yaml.safe_load(Path(config_file).read_text()) or {}).items():
        got = effective.get(key)
        if got is None:
            problems.append(f"config.yaml key {key} is not an app setting")
        elif not got["source"].startswith("config file"):
            problems.append(f"{key} comes from {got['source']}, not the rendered config file")
    for var, key in (("SHUTDOWN_DRAIN_DELAY", "shutdown.drain_delay"), ("SHUTDOWN_TIMEOUT", "shutdown.timeout"),
                     ("AUTH_TOKENS_FILE", "auth.tokens_file"), ("DATABASE_MIGRATE_ON_START", "database.migrate_on_start")):
        got = effective.get(key, {})
        if got.get("source") != f"environment variable {var}":
            problems.append(f"{key} comes from {got.get('source')}, not {var}")
        elif checks.seconds(got["value"]) != checks.seconds(env[var]) if var.startswith("SHUTDOWN") else got["value"] != env[var]:
            problems.append(f"{key} = {got['value']} but {var} = {env[var]}")
    if problems:
        return problems

    # 2. Start it like the kubelet would (ENTRYPOINT is the binary, args from the pod).
    log_path = sc.work / "userapi.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(sc.binary), *args], env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        startup = c["startupProbe"]
        budget = min(startup["periodSeconds"] * startup["failureThreshold"], 90)
        deadline = time.monotonic() + budget
        ready = 0
        while time.monotonic() < deadline and proc.poll() is None:
            ready = http_status(base + c["readinessProbe"]["httpGet"]["path"])
            if ready in (200, 404):  # 404: the probe path is not served at all; waiting will not help
                break
            time.sleep(0.2)
        if ready != 200:
            return problems + [f"readiness path {c['readinessProbe']['httpGet']['path']} answered {ready} (not 200) within {budget}s, exit {proc.poll()}: {log_path.read_text()[-1500:]}"]
        for probe in ("startupProbe", "livenessProbe"):
            status = http_status(base + c[probe]["httpGet"]["path"])
            if status != 200:
                problems.append(f"{probe} path {c[probe]['httpGet']['path']} answered {status}")
        if "unknown key" in log_path.read_text():
            problems.append("the server logged unknown config keys")

        # 3. The helm test pod's script, unchanged, against this server.
        tp = sc.test_pod
        tc = tp["spec"]["containers"][0]
        tmapping = sc.lay_out(tp["spec"], tc, sc.work / "test-pod")
        tenv = sc.container_env(tc, tmapping)
        sc.notes.append(f"helm test: USERAPI_URL {tenv['USERAPI_URL']} -> {base}")
        tenv["USERAPI_URL"] = base
        tenv["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
        if tc["command"][:1] != ["/bin/sh"]:
            problems.append(f"helm test command is {tc['command']}, expected /bin/sh")
        test = subprocess.run([*tc["command"], *tc["args"]], env=tenv, text=True, capture_output=True, timeout=60)
        if test.returncode != 0:
            problems.append(f"helm test script failed (exit {test.returncode}): {(test.stdout + test.stderr).strip()}")
        else:
            sc.notes.append(test.stdout.strip())

        # 4. Graceful shutdown within the pod's grace period.
        grace = sc.pod.get("terminationGracePeriodSeconds", 30)
        drain = checks.seconds(env["SHUTDOWN_DRAIN_DELAY"])
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        draining = 0
        while time.monotonic() - started < max(drain - 0.5, 0.5):
            draining = http_status(base + c["readinessProbe"]["httpGet"]["path"])
            if draining == 503:
                break
            time.sleep(0.1)
        if drain >= 1 and draining != 503:
            problems.append(f"readiness did not turn 503 during the {drain:.0f}s drain (got {draining})")
        try:
            code = proc.wait(timeout=grace)
            elapsed = time.monotonic() - started
            if code != 0:
                problems.append(f"exited {code} after SIGTERM")
            sc.notes.append(f"SIGTERM -> exit {code} after {elapsed:.1f}s (drain {drain:.0f}s, grace {grace}s)")
        except subprocess.TimeoutExpired:
            problems.append(f"still running {grace}s (terminationGracePeriodSeconds) after SIGTERM: the kubelet would SIGKILL it")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return problems


# Mutations of the rendered objects that the test must catch, so a passing
# run means something: (name, change, text expected in the failure).
def _set_readiness_path(sc: Scenario) -> None:
    sc.container["readinessProbe"]["httpGet"]["path"] = "/ready"


def _unknown_config_key(sc: Scenario) -> None:
    cm = sc.by_name[("ConfigMap", chartlib.RELEASE)]
    cm["data"]["config.yaml"] += "cache:\n  size: 1\n"


def _port_mismatch(sc: Scenario) -> None:
    next(e for e in sc.container["env"] if e["name"] == "HTTP_PORT")["value"] = "9090"


def _short_grace(sc: Scenario) -> None:
    sc.pod["terminationGracePeriodSeconds"] = 2


def _tokens_elsewhere(sc: Scenario) -> None:
    next(e for e in sc.container["env"] if e["name"] == "AUTH_TOKENS_FILE")["value"] = "/var/run/secrets/other/tokens"


MUTATIONS = [
    ("readiness probe on a path the app does not serve", _set_readiness_path, "answered 404"),
    ("config file with a key the app does not know", _unknown_config_key, "is not an app setting"),
    ("HTTP_PORT differs from the container port", _port_mismatch, "is not the container port named http"),
    ("grace period shorter than the drain", _short_grace, "the kubelet would SIGKILL it"),
    ("tokens file outside the mounted Secret", _tokens_elsewhere, "exit 78"),
]


def run_mutations(binary: Path) -> tuple[int, int]:
    passed = failed = 0
    values = chartlib.load_values([chartlib.CI_DIR / "defaults-values.yaml"])
    for name, mutate, expected in MUTATIONS:
        sc = Scenario("mutation", values, {}, binary)
        mutate(sc)
        try:
            problems = run_scenario(sc, None)
        except (AssertionError, OSError, subprocess.SubprocessError) as exc:
            problems = [f"{type(exc).__name__}: {exc}"]
        caught = any(expected in p for p in problems)
        if caught:
            passed += 1
            print(f"ok   mutation[{name}] is caught: {next(p for p in problems if expected in p)[:160]}")
        else:
            failed += 1
            print(f"FAIL mutation[{name}] was not caught (expected {expected!r}); problems: {problems}")
        subprocess.run(["rm", "-rf", str(sc.work)], check=False)
    return passed, failed


def main() -> int:
    binary = Path(os.environ.get("USERAPI_BIN", chartlib.ROOT / ".build" / "debug" / "userapi")).resolve()
    if not binary.is_file():
        print(f"FAIL contract: the userapi binary {binary} does not exist (build it, or set USERAPI_BIN)")
        print("0 passed, 1 failed, 0 skipped")
        return 1
    pg_url = os.environ.get("USERAPI_TEST_POSTGRES_URL")
    passed, failed, skipped = 0, 0, 0
    cases = [("defaults", chartlib.CI_DIR / "defaults-values.yaml", {}, None)]
    if pg_url:
        pw = urlsplit(pg_url).password or ""
        cases.append(("postgres-external", chartlib.CI_DIR / "postgres-external-values.yaml",
                      {"postgres": {"tls": {"mode": "disable", "caSecret": ""}}}, pw))
    else:
        print("skip contract[postgres-external]: USERAPI_TEST_POSTGRES_URL is not set (run through scripts/with-postgres.sh)")
        skipped += 1
    for name, values_file, override, pw in cases:
        values = chartlib.deep_merge(chartlib.load_values([values_file]), override)
        external = {}
        if pw is not None:
            v = values["postgres"]["external"]
            external[v["existingSecret"]] = {v.get("passwordKey", "password"): pw}
        try:
            sc = Scenario(name, values, external, binary)
            if override:
                sc.notes.append(f"rendered with {override} (the throwaway server has no TLS)")
            problems = run_scenario(sc, pg_url if pw is not None else None)
        except (AssertionError, chartlib.RenderError, OSError, subprocess.SubprocessError) as exc:
            problems = [f"{type(exc).__name__}: {exc}"]
            sc = None
        for note in (sc.notes if sc else []):
            print(f"     {note}")
        if problems:
            failed += 1
            print(f"FAIL contract[{name}]")
            for p in problems:
                print(f"     {p}")
        else:
            passed += 1
            print(f"ok   contract[{name}]: the real binary runs as the chart configures it")
            subprocess.run(["rm", "-rf", str(sc.work)], check=False)
    mp, mf = run_mutations(binary)
    passed, failed = passed + mp, failed + mf
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
