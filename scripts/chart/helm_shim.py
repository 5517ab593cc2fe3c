"""A `helm` command for tools that shell out to one (checkov's helm
framework), implemented on the real Helm v4 library from helm-python-sdk, so
no helm binary has to be downloaded. It covers what those tools call:

  helm version
  helm dependency list CHART
  helm template [--dependency-update] CHART [--values FILE]... [--namespace NS] [NAME]

Output follows helm's own format ("---" then "# Source: chart/templates/x.yaml"
before every document). Anything else exits 2 and says so.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import chartlib  # noqa: E402


def cmd_version() -> int:
    import helm_python

    print(f'version.BuildInfo{{Version:"{helm_python.helm_sdk_version()}", GitCommit:"", GitTreeState:"clean", GoVersion:""}}')
    return 0


def cmd_dependency_list(chart: str) -> int:
    import helm_python

    deps = helm_python.dependency_list(chart)
    if not deps:
        # helm prints this on stdout too when Chart.yaml declares none.
        print(f"WARNING: no dependencies at {chart}/charts")
        return 0
    print("NAME\tVERSION\tREPOSITORY\tSTATUS")
    for dep in deps:
        print(f"{dep['name']}\t{dep['version']}\t{dep['repository']}\t{dep['status']}")
    return 0


def cmd_template(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="helm template")
    parser.add_argument("args", nargs="+", help="[NAME] CHART")
    parser.add_argument("-f", "--values", action="append", default=[])
    # Like helm: HELM_NAMESPACE, else "default".
    parser.add_argument("-n", "--namespace", default=os.environ.get("HELM_NAMESPACE", "default"))
    parser.add_argument("--dependency-update", action="store_true", help="accepted; the chart has no dependencies")
    parser.add_argument("--kube-version", default=chartlib.KUBE_VERSIONS[-1])
    opts = parser.parse_args(argv)
    name, chart = ("release-name", opts.args[0]) if len(opts.args) == 1 else (opts.args[0], opts.args[1])
    values = chartlib.load_values([Path(v) for v in opts.values])
    try:
        manifests = chartlib.render(
            values, name=name, namespace=opts.namespace, chart_dir=Path(chart),
            kube_version=opts.kube_version.lstrip("v"),
        )
    except chartlib.RenderError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    for path in sorted(manifests):
        if path.endswith("NOTES.txt"):
            continue
        for doc in re.split(r"(?m)^---\s*$", manifests[path]):
            if yaml.safe_load(doc) is None:
                continue
            print(f"---\n# Source: {path}\n{doc.strip()}")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["version"]:
        return cmd_version()
    if argv[:2] in (["dependency", "list"], ["dep", "list"]) and len(argv) == 3:
        return cmd_dependency_list(argv[2])
    if argv[:1] == ["template"]:
        return cmd_template(argv[1:])
    print(f"helm shim: unsupported command: helm {' '.join(argv)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
