"""The chart renders the Grafana dashboard and the alert rules from copies of
deploy/monitoring/ (Helm can only read files inside the chart): `make
chart-sync` copies them, test_chart.py fails when a copy differs.
"""

from __future__ import annotations

import json
import shutil

import yaml

from chartlib import CHART_DIR, ROOT

SOURCE = ROOT / "deploy" / "monitoring"
COPY = CHART_DIR / "files" / "monitoring"
FILES = ["dashboards/userapi.json", "rules/userapi-alerts.yaml"]


def drift() -> list[str]:
    problems = []
    for rel in FILES:
        src, dst = SOURCE / rel, COPY / rel
        if not src.exists():
            problems.append(f"deploy/monitoring/{rel} is missing (the chart's copy has no source)")
        elif not dst.exists() or dst.read_bytes() != src.read_bytes():
            problems.append(f"{dst.relative_to(ROOT)} differs from deploy/monitoring/{rel}: run `make chart-sync`")
    if not problems:
        json.loads((COPY / FILES[0]).read_text())
        groups = yaml.safe_load((COPY / FILES[1]).read_text()).get("groups")
        if not groups:
            problems.append(f"{FILES[1]} has no rule groups")
    return problems


def sync() -> None:
    for rel in FILES:
        dst = COPY / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SOURCE / rel, dst)
        print(f"chart-sync: {dst.relative_to(ROOT)}")


if __name__ == "__main__":
    sync()
