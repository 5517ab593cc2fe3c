"""Every image reference the delivery renders parses by the distribution
reference grammar (docker/distribution `reference`): every chart scenario in
deploy/helm/userapi/ci/*-values.yaml, the Argo CD prod values, and every
Kustomize overlay (`kubectl kustomize`). An upper-case repository path
(ghcr.io/OWNER/userapi) is InvalidImageName for the kubelet.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

import chartlib

# github.com/distribution/reference regexp.go, composed the same way.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_HOST = rf"(?:{_DOMAIN_NAME}|{_IPV6})"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
REFERENCE = re.compile(rf"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?$")
NAME_TOTAL_LENGTH_MAX = 255


def reference_problem(ref: str) -> str | None:
    m = REFERENCE.match(ref)
    if not m:
        return f"{ref!r} does not match the distribution reference grammar"
    if len(m.group(1)) > NAME_TOTAL_LENGTH_MAX:
        return f"{ref!r}: repository name longer than {NAME_TOTAL_LENGTH_MAX}"
    return None


def images_of(objs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(where, image) for every container of every pod-bearing object."""
    found = []
    for o in objs:
        spec = o.get("spec", {})
        pods = []
        if o.get("kind") == "Pod":
            pods.append(spec)
        elif o.get("kind") == "CronJob":
            pods.append(spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec", {}))
        elif "template" in spec:
            pods.append(spec["template"].get("spec", {}))
        for pod in pods:
            for c in pod.get("initContainers", []) + pod.get("containers", []):
                found.append((f"{o['kind']}/{o['metadata']['name']} container {c['name']}", c["image"]))
    return found


@pytest.mark.parametrize("ref", [
    "ghcr.io/example/userapi:0.1.0", "localhost:5000/userapi", "userapi", "docker.io/library/busybox:1.37.0",
    "registry.example.com/platform/userapi@sha256:" + "a" * 64, "[::1]:5000/u/api:v1", "a/b__c/d-e:tag_1.x",
])
def test_grammar_accepts_valid_references(ref: str) -> None:
    assert reference_problem(ref) is None


@pytest.mark.parametrize("ref", [
    "ghcr.io/OWNER/userapi", "ghcr.io/example/userapi:", "ghcr.io/example/Userapi:1", "ghcr.io/example/userapi:.bad",
    "ghcr.io/example/userapi:" + "x" * 129, "ghcr.io/example/userapi@sha256:short", "ghcr.io//userapi", "-x/userapi",
])
def test_grammar_rejects_invalid_references(ref: str) -> None:
    assert reference_problem(ref) is not None


SCENARIOS = sorted(chartlib.CI_DIR.glob("*-values.yaml"))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[p.name.removesuffix("-values.yaml") for p in SCENARIOS])
def test_chart_scenario_images_are_valid_references(scenario: Path) -> None:
    objs = chartlib.objects(chartlib.render(chartlib.load_values([scenario])))
    images = images_of(objs)
    assert images, "the scenario renders no container"
    problems = [f"{where}: {p}" for where, ref in images if (p := reference_problem(ref))]
    assert not problems, "\n".join(problems)


def test_argocd_prod_values_image_is_a_valid_reference(repo_root: Path) -> None:
    values = yaml.safe_load((repo_root / "deploy/argocd/values/userapi-prod.yaml").read_text())
    objs = chartlib.objects(chartlib.render(values))
    problems = [f"{where}: {p}" for where, ref in images_of(objs) if (p := reference_problem(ref))]
    assert images_of(objs) and not problems, "\n".join(problems)


OVERLAYS = ["dev", "staging", "prod"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_images_are_valid_references(overlay: str, repo_root: Path, tools) -> None:
    directory = repo_root / "deploy/kustomize/overlays" / overlay
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert kustomization.get("images"), f"{overlay}: no `images:` (the overlay must name the image it runs)"
    proc = subprocess.run([tools.kubectl, "kustomize", str(directory)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    objs = [o for o in yaml.safe_load_all(proc.stdout) if o]
    images = images_of(objs)
    assert images, f"{overlay}: renders no container"
    problems = [f"{where}: {p}" for where, ref in images if (p := reference_problem(ref))]
    assert not problems, "\n".join(problems)
    userapi = [ref for _, ref in images if ref.split("@")[0].rsplit("/", 1)[-1].split(":")[0] == "userapi"]
    assert userapi and all(":" in r.rsplit("/", 1)[-1] or "@" in r for r in userapi), f"{overlay}: userapi image without a tag: {userapi}"
