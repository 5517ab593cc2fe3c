"""Validates values given to deploy/helm/userapi the way `helm install` does:
the chart's defaults merged with the given values, checked against the
chart's values.schema.json (unknown keys, types, enums, patterns), and
rendered by the Helm library the chart's own tests use (chartlib)."""

from __future__ import annotations

import copy
import json

import jsonschema
import yaml

import chartlib

CHART = chartlib.CHART_DIR


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
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
            for e in sorted(validator.iter_errors(merge(defaults, values)), key=lambda e: list(map(str, e.absolute_path)))]


def render(values: dict, namespace: str = "userapi") -> list[dict]:
    """Objects of `helm template userapi deploy/helm/userapi` with these values.
    Raises chartlib.RenderError when Helm refuses (schema or a template `fail`)."""
    return chartlib.objects(chartlib.render(values, name="userapi", namespace=namespace), include_tests=False)


def find(objs: list[dict], kind: str) -> list[dict]:
    return [o for o in objs if o.get("kind") == kind]


def key_paths(value, prefix=()) -> list[tuple]:
    """Key paths of a values tree; list items are checked through their first element."""
    paths = []
    if isinstance(value, dict):
        for k, v in value.items():
            paths.append(prefix + (k,))
            paths.extend(key_paths(v, prefix + (k,)))
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        paths.extend(key_paths(value[0], prefix + ("[]",)))
    return paths


def has_path(tree, path: tuple) -> bool:
    """Whether the chart's values.yaml has this key path; an empty default list
    (e.g. ingress.tls) has no keys to compare with and accepts any item."""
    node = tree
    for part in path:
        if part == "[]":
            if not isinstance(node, list):
                return False
            if not node:
                return True
            node = node[0]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return False
    return True


def unknown_keys(values: dict, free_form: tuple[tuple, ...] = ()) -> list[str]:
    """Keys the values set that the chart's values.yaml does not have (below a
    free-form map such as podAnnotations any key goes)."""
    chart = yaml.safe_load((CHART / "values.yaml").read_text())
    return [".".join(p) for p in key_paths(values)
            if not any(p[:len(f)] == f and len(p) > len(f) for f in free_form) and not has_path(chart, p)]
