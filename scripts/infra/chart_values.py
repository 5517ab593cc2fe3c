"""Validates values given to deploy/helm/userapi the way `helm install` does:
the chart's defaults merged with the given values, checked against the
chart's values.schema.json (unknown keys, types, enums, patterns)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import yaml

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "userapi"


def merge(base, override):
    """Helm's merge: maps merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = copy.deepcopy(base)
        for k, v in override.items():
            out[k] = merge(base.get(k), v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(override)


def schema_errors(values: dict) -> list[str]:
    """Problems the chart's schema finds with defaults + values (empty list: valid)."""
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    merged = merge(defaults, values)
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
            for e in sorted(validator.iter_errors(merged), key=lambda e: list(map(str, e.absolute_path)))]


def render(values: dict, namespace: str = "userapi") -> list[dict]:
    """Objects of `helm template userapi deploy/helm/userapi` with these values,
    rendered by the Helm library the chart's own tests use (scripts/chart/chartlib.py).
    Raises chartlib.RenderError when Helm refuses (schema or a template `fail`)."""
    import sys

    sys.path.insert(0, str(CHART.parents[2] / "scripts" / "chart"))
    import chartlib  # noqa: PLC0415 - the chart's test helper, owned by the chart

    return chartlib.objects(chartlib.render(values, name="userapi", namespace=namespace), include_tests=False)


def check_and_render(values: dict, who: str, check) -> list[dict]:
    """The shared part of every "does the chart accept these values" check:
    the schema, then a real render. `check(ok, name, detail)` records each
    result; returns the rendered objects (empty when Helm refused)."""
    errors = schema_errors(values)
    check(not errors, f"{who} chart values pass the chart's values.schema.json", "; ".join(errors))
    try:
        objs = render(values)
        check(True, f"helm renders the chart with {who} values")
        return objs
    except Exception as exc:  # noqa: BLE001 - Helm's refusal is the finding
        check(False, f"helm renders the chart with {who} values", str(exc)[:800])
        return []


def find(objs: list[dict], kind: str) -> list[dict]:
    return [o for o in objs if o.get("kind") == kind]
