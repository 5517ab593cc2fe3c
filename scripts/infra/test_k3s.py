"""make test-infra: deploy/k3s/install.sh without root, network or a cluster.

Runs the script's --dry-run and reads what it would do: the pinned k3s
release and checksums, the checksum-verified install (no `curl | sh`), the
chart in SQLite mode with a volume behind Traefik with TLS, and the printed
URL and token. The values it gives the chart must be keys of the chart's
values.yaml, pass its schema and render. With --artifacts the checksum
verification runs for real: a tampered binary is refused, a matching one
accepted. shellcheck on the script, and on code it must flag.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import subprocess

import pytest
import yaml

from chart_values import find, render, schema_errors, unknown_keys
from harness import ROOT, assert_none

pytestmark = pytest.mark.infra

SCRIPT = ROOT / "deploy" / "k3s" / "install.sh"
ARGS = ["--dry-run", "--image", "ghcr.io/example/userapi", "--host", "userapi.example.test"]


def run(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("K3S_")} | (env or {})
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=120, env=full_env)


def pinned(name: str, pattern: str) -> str:
    m = re.search(rf'^{name}="\$\{{{name}:-({pattern})\}}"', SCRIPT.read_text(), re.M)
    assert m, f"install.sh pins no default for {name}"
    return m.group(1)


@functools.cache
def dry_run() -> str:
    p = run(ARGS)
    assert p.returncode == 0, f"--dry-run failed without root or network: {p.stdout + p.stderr}"
    return p.stdout + p.stderr


@functools.cache
def chart_values() -> dict:
    docs = [yaml.safe_load(d) for d in re.findall(r"<<'MANIFEST'\n(.*?)\nMANIFEST", dry_run(), re.S)]
    helm = [d for d in docs if d and d.get("kind") == "HelmChart"]
    assert len(helm) == 1, f"dry run applies {len(helm)} HelmCharts"
    return yaml.safe_load(helm[0]["spec"]["valuesContent"])


def test_pins_the_k3s_release_and_the_checksums():
    assert pinned("K3S_VERSION", r"v[0-9.]+\+k3s[0-9]+")
    assert pinned("K3S_SHA256_AMD64", "[0-9a-f]{64}") and pinned("K3S_INSTALL_SH_SHA256", "[0-9a-f]{64}")


def test_never_pipes_a_download_into_a_shell():
    assert not re.search(r"curl[^\n|]*\|\s*(sudo\s+)?(ba)?sh", SCRIPT.read_text())


def test_dry_run_downloads_and_verifies_the_pinned_release():
    version = pinned("K3S_VERSION", r"v[0-9.]+\+k3s[0-9]+").replace("+", "%2B")
    out = dry_run()
    assert f"releases/download/{version}/k3s" in out, "does not download the pinned k3s binary"
    assert f"k3s/{version}/install.sh" in out, "does not download install.sh of the same tag"
    assert f"verify sha256 of k3s = {pinned('K3S_SHA256_AMD64', '[0-9a-f]{64}')}" in out
    assert f"verify sha256 of install.sh = {pinned('K3S_INSTALL_SH_SHA256', '[0-9a-f]{64}')}" in out
    assert "INSTALL_K3S_SKIP_DOWNLOAD=true" in out, "k3s's install.sh does not run on the verified binary"
    steps = [out.find(s) for s in ("verify sha256 of k3s", "+ install -m 0755", "INSTALL_K3S_SKIP_DOWNLOAD")]
    assert all(i >= 0 for i in steps) and steps == sorted(steps), f"verification must come first: {steps}"


def test_dry_run_prints_the_url_and_the_token():
    assert re.search(r"URL:\s+https://userapi\.example\.test/", dry_run())
    assert re.search(r"Token:\s+\S+", dry_run())


def test_chart_values_sqlite_on_a_volume_behind_traefik_with_tls():
    v = chart_values()
    assert v["database"]["type"] == "sqlite" and v["replicaCount"] == 1, "SQLite allows exactly one replica"
    assert v["persistence"]["enabled"] is True and v["persistence"]["size"]
    ing = v["ingress"]
    assert ing["enabled"] is True and ing["preset"] == "traefik"
    assert ing.get("tls") and "userapi.example.test" in ing["tls"][0]["hosts"], "no TLS for the host"
    assert ing["hosts"][0]["host"] == "userapi.example.test", "ingress host is not the --host value"
    assert v["image"]["repository"] == "ghcr.io/example/userapi", "image is not the --image value"
    assert v["tokens"]["existingSecret"] == "userapi-api-tokens", "the token is not the Secret the script creates"


def test_chart_values_are_keys_of_the_chart_and_pass_its_schema():
    assert_none(unknown_keys(chart_values()) + schema_errors(chart_values()))


def test_rendered_release():
    objs = render(chart_values())
    dep = find(objs, "Deployment")
    assert dep and dep[0]["spec"].get("replicas") == 1 and dep[0]["spec"]["strategy"]["type"] == "Recreate", \
        "never two SQLite writers: one pod, Recreate"
    assert find(objs, "PersistentVolumeClaim"), "no volume for the SQLite file"
    ing = find(objs, "Ingress")
    assert ing and ing[0]["spec"].get("ingressClassName") == "traefik"
    assert ing[0]["spec"].get("tls", [{}])[0].get("secretName") == "userapi-tls", "not the TLS Secret the script creates"


@pytest.mark.parametrize("args, expected", [
    (["--dry-run", "--host", "userapi.example.test"], "--image"),  # the chart's placeholder image
    ([*ARGS, "--bogus"], "unknown option"),
    ([*ARGS, "--k3s-version", "latest"], ""),  # an unpinned version
], ids=["without --image", "unknown option", "k3s version latest"])
def test_refuses(args, expected):
    p = run(args)
    assert p.returncode != 0 and expected in p.stderr, p.stdout + p.stderr


@pytest.mark.parametrize("pinned_sums, expected", [
    ([], "checksum mismatch for k3s"),
    (["k3s"], "checksum mismatch for install.sh"),
    (["k3s", "install.sh"], None),
], ids=["tampered binary refused", "tampered install.sh refused", "matching artifacts accepted"])
def test_artifacts_checksum_verification(pinned_sums, expected, tmp_path):
    (tmp_path / "k3s").write_bytes(b"not really k3s\n" + os.urandom(64))
    (tmp_path / "install.sh").write_text("#!/bin/sh\necho fake installer\n")
    sums = {n: hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in ("k3s", "install.sh")}
    env = {}
    if "k3s" in pinned_sums:
        env |= {"K3S_SHA256_AMD64": sums["k3s"], "K3S_SHA256_ARM64": sums["k3s"]}
    if "install.sh" in pinned_sums:
        env["K3S_INSTALL_SH_SHA256"] = sums["install.sh"]
    p = run([*ARGS, "--artifacts", str(tmp_path)], env)
    if expected:
        assert p.returncode != 0 and expected in p.stderr, p.stdout + p.stderr
    else:
        assert p.returncode == 0 and f"verified k3s sha256 {sums['k3s']}" in p.stdout, p.stdout + p.stderr


def test_shellcheck(tools):
    p = subprocess.run([tools.shellcheck, "-x", *map(str, sorted(SCRIPT.parent.glob("*.sh")))], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_shellcheck_flags_unquoted_ls_parsing_code(tools, tmp_path):
    (tmp_path / "bad.sh").write_text("#!/usr/bin/env bash\nfor f in $(ls *.txt); do cat $f; done\n")
    p = subprocess.run([tools.shellcheck, str(tmp_path / "bad.sh")], capture_output=True, text=True)
    assert p.returncode != 0 and "SC2045" in p.stdout, p.stdout
