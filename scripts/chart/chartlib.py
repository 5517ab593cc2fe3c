"""Shared helpers for the chart checks: render with the real Helm v4 library
(helm-python-sdk), split manifests into objects, and run tools.

Rendering goes through the library's helm_render call with the full option
set (kube_version, api_versions), which the Python wrapper's Chart.render does
not expose; the call and its JSON options are the library's own C ABI.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "deploy" / "helm" / "userapi"
CI_DIR = CHART_DIR / "ci"
KUSTOMIZE_DIR = ROOT / "deploy" / "kustomize"
SCRIPTS_DIR = Path(__file__).resolve().parent

# Oldest and newest Kubernetes releases the chart supports (Chart.yaml
# kubeVersion is the floor); every rendered object is validated against both.
KUBE_VERSIONS = ("1.29.0", "1.37.0")
RELEASE = "userapi"
NAMESPACE = "userapi"
# CRD API groups the chart can render, so .Capabilities.APIVersions knows them
# (a real cluster with the operators installed reports the same).
CRD_API_VERSIONS = [
    "monitoring.coreos.com/v1",
    "postgresql.cnpg.io/v1",
    "argoproj.io/v1alpha1",
    "gateway.networking.k8s.io/v1",
]


class RenderError(Exception):
    """Helm refused to render (schema violation or a fail in a template)."""


_quiet = False


def _helm():
    import helm_python  # imported late so --help works without the venv

    global _quiet
    if not _quiet:
        import logging

        # The library logs every template `fail` at INFO on stderr; the error
        # itself is raised anyway, so only warnings are worth showing.
        helm_python.enable_logging(logging.WARNING)
        _quiet = True
    return helm_python


def load_values(files: list[Path]) -> dict[str, Any]:
    """Merge values files like `helm -f a -f b` (later files win, maps merge deeply)."""
    merged: dict[str, Any] = {}
    for path in files:
        data = yaml.safe_load(path.read_text()) or {}
        merged = deep_merge(merged, data)
    return merged


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def render(
    values: dict[str, Any] | None = None,
    *,
    kube_version: str = KUBE_VERSIONS[-1],
    name: str = RELEASE,
    namespace: str = NAMESPACE,
    chart_dir: Path = CHART_DIR,
) -> dict[str, str]:
    """Render the chart offline; returns {template path: manifest text}."""
    helm = _helm()
    from helm_python import _native

    opts = {
        "name": name,
        "namespace": namespace,
        "is_install": True,
        "kube_version": f"v{kube_version}",
        "api_versions": CRD_API_VERSIONS,
    }
    with helm.Chart.load(str(chart_dir)) as chart:
        try:
            out = _native.call_string(
                "helm_render", chart._raw(), json.dumps(values or {}), json.dumps(opts)
            )
        except helm.HelmError as exc:
            raise RenderError(str(exc)) from exc
    manifests: dict[str, str] = json.loads(out)
    return manifests


def objects(manifests: dict[str, str], *, include_tests: bool = True) -> list[dict[str, Any]]:
    """Every Kubernetes object in the rendered manifests, in template order."""
    found: list[dict[str, Any]] = []
    for path in sorted(manifests):
        if path.endswith("NOTES.txt"):
            continue
        if not include_tests and "/tests/" in path:
            continue
        for doc in yaml.safe_load_all(manifests[path]):
            if doc:
                found.append(doc)
    return found


def to_yaml_stream(objs: list[dict[str, Any]]) -> str:
    return "".join("---\n" + yaml.safe_dump(o, sort_keys=False) for o in objs)


def lint(values: dict[str, Any], kube_version: str = KUBE_VERSIONS[-1]) -> list[str]:
    """`helm lint --strict`; returns the findings that fail it (warnings count)."""
    helm = _helm()
    report = helm.lint(
        str(CHART_DIR), values, strict=True, namespace=NAMESPACE, kube_version=f"v{kube_version}"
    )
    problems = [f"{m.get('path', '')}: {m.get('error', '')}" for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    problems += [str(e) for e in report.get("errors", []) or []]
    return problems


def scenarios() -> dict[str, Path]:
    """{name: values file} of the chart's CI scenarios (ci/<name>-values.yaml)."""
    return {p.name.removesuffix("-values.yaml"): p for p in sorted(CI_DIR.glob("*-values.yaml"))}


def env_with_shim() -> dict[str, str]:
    """PATH with scripts/chart/bin first, so tools that call `helm` get the shim."""
    env = dict(os.environ)
    env["PATH"] = f"{SCRIPTS_DIR / 'bin'}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env
