"""Chart <-> app contract (make test-chart): start the REAL userapi binary
exactly as the rendered chart would start it in a pod, and check it behaves
as the chart assumes.

For the defaults (SQLite) and postgres-external scenarios it takes the
rendered Deployment's API container (args, env, probe paths and port, volume
mounts) and the objects its volumes come from (the ConfigMap's config.yaml,
the tokens Secret), lays the mounts out under a temp dir, and runs the binary
(fixture userapi_bin) with that environment. Only what cannot be the same
outside a cluster is translated, and each translation is noted:
  - mount paths (/etc/userapi, /var/run/secrets/userapi, /data, /tmp) -> the
    temp dir, in env values too;
  - HTTP_HOST 0.0.0.0 -> 127.0.0.1, HTTP_PORT (and HTTP_MANAGEMENT_PORT, where
    the probes are served when it is set) -> free ports (tests stay on
    loopback); each must equal its named container port (http, management)
    before the translation, and the probes must target the management port
    when there is one, else http;
  - postgres-external: the database host/port/user in DATABASE_URL -> the
    throwaway server (fixture postgres), its password into the userapi-db
    Secret's file, and postgres.tls.mode rendered as disable (that server's
    certificate is not the one the scenario names).
Then it checks:
  - `userapi config` with that environment accepts it and takes each
    setting from where the chart put it (config file / env), no unknown keys;
  - startup and liveness probe paths answer 200, the readiness path becomes
    200 within the startup probe's budget;
  - the `helm test` pod's own script (readyz + create/read/delete with the
    token from the rendered Secret) passes against it, run with /bin/sh;
  - SIGTERM: readiness turns 503 while draining, and the process exits 0
    within the pod's terminationGracePeriodSeconds.
Mutations of the rendered objects must each be caught, so a pass means something.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml

import chartlib
import checks
from harness import assert_none, free_port, http, wait_for

pytestmark = pytest.mark.chart


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else k))
        return out
    return {prefix: node}


class Scenario:
    def __init__(self, name: str, values: dict[str, Any], external_secrets: dict[str, dict[str, str]], binary: Path,
                 work: Path):
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
        self.work = work
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


def status(url: str) -> int:
    return http("GET", url, timeout=2)[0]


def run_scenario(sc: Scenario, pg_url: str | None) -> list[str]:
    problems: list[str] = []
    c = sc.container
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    rendered_env = {e["name"]: e.get("value") for e in c["env"]}
    # The app listens on HTTP_PORT and, when set, serves its probes on HTTP_MANAGEMENT_PORT.
    listeners = {"http": "HTTP_PORT"} | ({"management": "HTTP_MANAGEMENT_PORT"} if "HTTP_MANAGEMENT_PORT" in rendered_env else {})
    for name, var in listeners.items():
        if rendered_env.get(var) != str(ports.get(name)):
            problems.append(f"{var} {rendered_env.get(var)} is not the container port named {name} ({ports.get(name)})")
    probe_port = "management" if "management" in listeners else "http"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        if c[probe]["httpGet"]["port"] not in (probe_port, ports.get(probe_port)):
            problems.append(f"{probe} does not target the {probe_port} port")

    mapping = sc.lay_out(sc.pod, c, sc.work / "pod")
    env = sc.container_env(c, mapping)
    local = {name: free_port() for name in listeners}
    env["HTTP_HOST"] = "127.0.0.1"
    env.update({var: str(local[name]) for name, var in listeners.items()})
    sc.notes.append(f"mounts under {sc.work / 'pod'}; HTTP_HOST 0.0.0.0 -> 127.0.0.1, "
                    + ", ".join(f"{var} {rendered_env.get(var)} -> {local[name]}" for name, var in listeners.items()))
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
    cfg = subprocess.run([str(sc.binary), "config", "--format", "json"], env=env, cwd=cwd, text=True, capture_output=True, timeout=120)
    if cfg.returncode != 0:
        return problems + [f"`userapi config` rejected the chart's configuration (exit {cfg.returncode}): {cfg.stderr.strip()}"]
    effective = json.loads(cfg.stdout)
    if "unknown key" in cfg.stderr:
        problems.append(f"the app ignores keys of the rendered config file: {cfg.stderr.strip()}")
    for key, value in flatten(yaml.safe_load(Path(env.get("CONFIG_FILE", "")).read_text()) or {}).items():
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
    base, probes = (f"http://127.0.0.1:{local[name]}" for name in ("http", probe_port))
    readiness = probes + c["readinessProbe"]["httpGet"]["path"]
    try:
        # The kubelet restarts the container when the startup probe has not passed within its budget.
        startup = c["startupProbe"]
        budget = startup["periodSeconds"] * startup["failureThreshold"]

        def settled() -> int:  # 404: the probe path is not served at all; waiting will not help
            answer = status(readiness)
            return answer if answer in (200, 404) else 0

        try:
            ready = wait_for("readiness", settled, budget, 0.2, proc)
        except (TimeoutError, RuntimeError) as exc:
            ready = exc
        if ready != 200:
            return problems + [f"readiness path {c['readinessProbe']['httpGet']['path']} answered {ready} (not 200) within "
                               f"{budget}s, exit {proc.poll()}: {log_path.read_text()[-1500:]}"]
        for probe in ("startupProbe", "livenessProbe"):
            answer = status(probes + c[probe]["httpGet"]["path"])
            if answer != 200:
                problems.append(f"{probe} path {c[probe]['httpGet']['path']} answered {answer}")
        if "unknown key" in log_path.read_text():
            problems.append("the server logged unknown config keys")

        # 3. The helm test pod's script, unchanged, against this server.
        tc = sc.test_pod["spec"]["containers"][0]
        tenv = sc.container_env(tc, sc.lay_out(sc.test_pod["spec"], tc, sc.work / "test-pod"))
        sc.notes.append(f"helm test: USERAPI_URL {tenv['USERAPI_URL']} -> {base}")
        tenv["USERAPI_URL"] = base
        if "USERAPI_MANAGEMENT_URL" in tenv:
            tenv["USERAPI_MANAGEMENT_URL"] = probes
        tenv["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
        if tc["command"][:1] != ["/bin/sh"]:
            problems.append(f"helm test command is {tc['command']}, expected /bin/sh")
        test = subprocess.run([*tc["command"], *tc["args"]], env=tenv, text=True, capture_output=True, timeout=120)
        if test.returncode != 0:
            problems.append(f"helm test script failed (exit {test.returncode}): {(test.stdout + test.stderr).strip()}")
        else:
            sc.notes.append(test.stdout.strip())

        # 4. Graceful shutdown within the pod's grace period. Readiness must turn 503
        # while draining: polled until it does, or the listener closes (the drain is over).
        grace = sc.pod.get("terminationGracePeriodSeconds", 30)
        drain = checks.seconds(env["SHUTDOWN_DRAIN_DELAY"])
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        if drain >= 1:
            seen = wait_for("readiness after SIGTERM", lambda: {status(readiness)} & {503, 0}, interval=0.05)
            if seen != {503}:
                problems.append(f"readiness did not turn 503 during the {drain:.0f}s drain (the listener closed first)")
        try:
            code = proc.wait(timeout=max(0.0, grace - (time.monotonic() - started)))
            if code != 0:
                problems.append(f"exited {code} after SIGTERM")
            sc.notes.append(f"SIGTERM -> exit {code} after {time.monotonic() - started:.1f}s (drain {drain:.0f}s, grace {grace}s)")
        except subprocess.TimeoutExpired:
            problems.append(f"still running {grace}s (terminationGracePeriodSeconds) after SIGTERM: the kubelet would SIGKILL it")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return problems


def test_contract_defaults(userapi_bin, tmp_path):
    sc = Scenario("defaults", chartlib.load_values([chartlib.CI_DIR / "defaults-values.yaml"]), {}, userapi_bin, tmp_path)
    assert_none(run_scenario(sc, None), "\n".join(sc.notes))


def test_contract_postgres_external(userapi_bin, postgres, tmp_path):
    # The throwaway server's certificate is not the scenario's CA: TLS off, noted.
    override = {"postgres": {"tls": {"mode": "disable", "caSecret": ""}}}
    values = chartlib.deep_merge(chartlib.load_values([chartlib.CI_DIR / "postgres-external-values.yaml"]), override)
    ext = values["postgres"]["external"]
    secrets = {ext["existingSecret"]: {ext.get("passwordKey", "password"): urlsplit(postgres.url).password or ""}}
    sc = Scenario("postgres-external", values, secrets, userapi_bin, tmp_path)
    sc.notes.append(f"rendered with {override}")
    assert_none(run_scenario(sc, postgres.url), "\n".join(sc.notes))


# Mutations of the rendered objects that the test must catch: (change, text expected in a problem).
def _env(sc: Scenario, name: str, value: str) -> None:
    next(e for e in sc.container["env"] if e["name"] == name)["value"] = value


MUTATIONS: dict[str, tuple[Callable[[Scenario], None], str]] = {
    "readiness probe on a path the app does not serve": (
        lambda sc: sc.container["readinessProbe"]["httpGet"].update(path="/ready"), "answered 404"),
    "config file with a key the app does not know": (
        lambda sc: sc.by_name[("ConfigMap", chartlib.RELEASE)]["data"].update(
            {"config.yaml": sc.by_name[("ConfigMap", chartlib.RELEASE)]["data"]["config.yaml"] + "cache:\n  size: 1\n"}),
        "is not an app setting"),
    "HTTP_PORT differs from the container port": (lambda sc: _env(sc, "HTTP_PORT", "9090"), "is not the container port named http"),
    "grace period shorter than the drain": (
        lambda sc: sc.pod.update(terminationGracePeriodSeconds=2), "the kubelet would SIGKILL it"),
    "tokens file outside the mounted Secret": (
        lambda sc: _env(sc, "AUTH_TOKENS_FILE", "/var/run/secrets/other/tokens"), "exit 78"),
}


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_contract_catches(mutation, userapi_bin, tmp_path):
    change, expected = MUTATIONS[mutation]
    sc = Scenario("mutation", chartlib.load_values([chartlib.CI_DIR / "defaults-values.yaml"]), {}, userapi_bin, tmp_path)
    change(sc)
    try:
        problems = run_scenario(sc, None)
    except (AssertionError, OSError, subprocess.SubprocessError) as exc:
        problems = [f"{type(exc).__name__}: {exc}"]
    assert any(expected in p for p in problems), f"not caught (expected {expected!r}); problems: {problems}"
