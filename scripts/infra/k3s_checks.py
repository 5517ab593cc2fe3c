#!/usr/bin/env python3
"""Checks of deploy/k3s/install.sh without root, network or a cluster.

Runs the script's --dry-run and reads what it would do: the pinned k3s
release and checksums, the checksum-verified install (no `curl | sh`), the
chart in SQLite mode with a volume behind Traefik with TLS, and the printed
URL and token. The values it gives the chart must be keys of the chart's
values.yaml. With --artifacts the checksum verification runs for real, so a
tampered binary must be refused and a matching one accepted.

Last line: "N passed, N failed".
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tally import Tally  # noqa: E402
from chart_values import check_and_render, find  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "k3s" / "install.sh"
CHART_VALUES = ROOT / "deploy" / "helm" / "userapi" / "values.yaml"
ARGS = ["--dry-run", "--image", "ghcr.io/example/userapi", "--host", "userapi.example.test"]

tally = Tally()
check = tally.check


def run(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("K3S_")}
    full_env.update(env or {})
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60, env=full_env)


def manifests(out: str) -> list[dict]:
    docs = re.findall(r"<<'MANIFEST'\n(.*?)\nMANIFEST", out, re.S)
    return [yaml.safe_load(d) for d in docs]


def has_path(tree, path) -> bool:
    node = tree
    for part in path:
        if isinstance(node, list):
            if not node:
                return True  # an empty default list (e.g. ingress.tls) has no keys to compare with
            node = node[0]
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def leaf_paths(value, prefix=()):
    if isinstance(value, dict):
        for k, v in value.items():
            yield prefix + (k,)
            yield from leaf_paths(v, prefix + (k,))
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        yield from leaf_paths(value[0], prefix)


def main() -> int:
    text = SCRIPT.read_text()
    version = re.search(r'^K3S_VERSION="\$\{K3S_VERSION:-(v[0-9.]+\+k3s[0-9]+)\}"', text, re.M)
    check(bool(version), "install.sh pins a k3s release", "K3S_VERSION default not found")
    amd64 = re.search(r'^K3S_SHA256_AMD64="\$\{K3S_SHA256_AMD64:-([0-9a-f]{64})\}"', text, re.M)
    inst = re.search(r'^K3S_INSTALL_SH_SHA256="\$\{K3S_INSTALL_SH_SHA256:-([0-9a-f]{64})\}"', text, re.M)
    check(bool(amd64) and bool(inst), "install.sh pins the SHA-256 of the k3s binary and of install.sh")
    check(not re.search(r"curl[^\n|]*\|\s*(sudo\s+)?(ba)?sh", text), "install.sh never pipes a download into a shell")

    p = run(ARGS)
    out = p.stdout + p.stderr
    check(p.returncode == 0, "--dry-run succeeds without root or network", out)
    v = version.group(1) if version else "?"
    check(f"releases/download/{v.replace('+', '%2B')}/k3s" in out, "dry run downloads the pinned k3s release binary")
    check(f"k3s/{v.replace('+', '%2B')}/install.sh" in out, "dry run downloads install.sh of the same tag")
    check(bool(amd64) and f"verify sha256 of k3s = {amd64.group(1)}" in out, "dry run verifies the binary against the pinned sum")
    check(bool(inst) and f"verify sha256 of install.sh = {inst.group(1)}" in out, "dry run verifies install.sh against the pinned sum")
    check("INSTALL_K3S_SKIP_DOWNLOAD=true" in out, "k3s's install.sh runs on the verified binary (skip download)")
    steps = [out.find(s) for s in ("verify sha256 of k3s", "+ install -m 0755", "INSTALL_K3S_SKIP_DOWNLOAD")]
    check(all(i >= 0 for i in steps) and steps == sorted(steps), "verification comes before installing and running", str(steps))

    docs = manifests(out)
    helm = [d for d in docs if d and d.get("kind") == "HelmChart"]
    if check(len(helm) == 1, "dry run applies one HelmChart", str([d.get("kind") for d in docs if d])):
        spec = helm[0]["spec"]
        values = yaml.safe_load(spec["valuesContent"])
        check(values["database"]["type"] == "sqlite", "chart runs in SQLite mode")
        check(values["replicaCount"] == 1, "one replica (SQLite allows exactly one)")
        check(values["persistence"]["enabled"] is True and bool(values["persistence"]["size"]), "SQLite data on a PersistentVolume")
        ing = values["ingress"]
        check(ing["enabled"] is True and ing["preset"] == "traefik", "ingress through k3s's Traefik")
        check(bool(ing.get("tls")) and "userapi.example.test" in ing["tls"][0]["hosts"], "ingress has TLS for the host")
        check(ing["hosts"][0]["host"] == "userapi.example.test", "ingress host is the --host value")
        check(values["image"]["repository"] == "ghcr.io/example/userapi", "image is the --image value")
        check(values["tokens"]["existingSecret"] == "userapi-api-tokens", "API token comes from the secret the script creates")
        if check(CHART_VALUES.is_file(), "chart values.yaml exists"):
            chart = yaml.safe_load(CHART_VALUES.read_text())
            unknown = [".".join(pth) for pth in leaf_paths(values) if not has_path(chart, pth)]
            check(not unknown, "every value the script sets is a key of the chart's values.yaml", ", ".join(unknown))
            objs = check_and_render(values, "the script's", check)
            if objs:
                dep = find(objs, "Deployment")
                check(bool(dep) and dep[0]["spec"].get("replicas") == 1 and dep[0]["spec"]["strategy"]["type"] == "Recreate",
                      "rendered Deployment: one pod, Recreate (never two SQLite writers)")
                check(bool(find(objs, "PersistentVolumeClaim")), "rendered chart claims a volume for the SQLite file")
                ing = find(objs, "Ingress")
                check(bool(ing) and ing[0]["spec"].get("ingressClassName") == "traefik"
                      and ing[0]["spec"].get("tls", [{}])[0].get("secretName") == "userapi-tls",
                      "rendered Ingress: Traefik with the TLS secret the script creates")
    check(re.search(r"URL:\s+https://userapi\.example\.test/", out) is not None, "prints the https URL")
    check(re.search(r"Token:\s+\S+", out) is not None, "prints the API token")

    p = run(["--dry-run", "--host", "userapi.example.test"])
    check(p.returncode != 0 and "--image" in p.stderr, "refuses the chart's placeholder image without --image", p.stderr)
    p = run([*ARGS, "--bogus"])
    check(p.returncode != 0 and "unknown option" in p.stderr, "rejects unknown options")
    p = run([*ARGS, "--k3s-version", "latest"])
    check(p.returncode != 0, "rejects an unpinned k3s version such as 'latest'")

    # Real checksum verification on local artifacts (what an air-gapped install uses).
    with tempfile.TemporaryDirectory(prefix="k3s-artifacts-") as tmp:
        d = Path(tmp)
        (d / "k3s").write_bytes(b"not really k3s\n" + os.urandom(64))
        (d / "install.sh").write_text("#!/bin/sh\necho fake installer\n")
        sums = {n: hashlib.sha256((d / n).read_bytes()).hexdigest() for n in ("k3s", "install.sh")}
        p = run([*ARGS, "--artifacts", tmp])
        check(p.returncode != 0 and "checksum mismatch for k3s" in p.stderr,
              "a binary that does not match the pinned sum is refused", p.stdout + p.stderr)
        p = run([*ARGS, "--artifacts", tmp], {"K3S_SHA256_AMD64": sums["k3s"], "K3S_SHA256_ARM64": sums["k3s"]})
        check(p.returncode != 0 and "checksum mismatch for install.sh" in p.stderr,
              "an install.sh that does not match the pinned sum is refused", p.stdout + p.stderr)
        p = run([*ARGS, "--artifacts", tmp], {"K3S_SHA256_AMD64": sums["k3s"], "K3S_SHA256_ARM64": sums["k3s"],
                                              "K3S_INSTALL_SH_SHA256": sums["install.sh"]})
        check(p.returncode == 0 and f"verified k3s sha256 {sums['k3s']}" in p.stdout,
              "artifacts matching the expected sums are accepted", p.stdout + p.stderr)

    return tally.finish()


if __name__ == "__main__":
    sys.exit(main())
