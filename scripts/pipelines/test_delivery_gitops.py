"""The GitOps promotion deploys what it claims: every file `make promote` edits
is read by an Argo CD Application that Argo CD itself syncs (the app of apps in
deploy/argocd/bootstrap/ syncs deploy/argocd/apps/, whose Applications read
their values from the repository as `$values`), the edit changes the image the
chart renders, the chart follows a release tag (not main), and prod's
verify-full TLS gets the RDS CA bundle.
"""

from __future__ import annotations

import copy
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "chart"))
import chartlib  # noqa: E402

ARGOCD = ROOT / "deploy" / "argocd"
CHART_PATH = "deploy/helm/userapi"
RELEASE_TAG = re.compile(r"^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$")


def applications() -> dict[Path, dict[str, Any]]:
    apps = {}
    for path in sorted(ARGOCD.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "Application":
                apps[path.relative_to(ROOT)] = doc
    return apps


def sources(app: dict[str, Any]) -> list[dict[str, Any]]:
    spec = app["spec"]
    return spec.get("sources") or ([spec["source"]] if "source" in spec else [])


def promote_files() -> list[Path]:
    """The files `make promote` edits, from make's own dry run."""
    proc = subprocess.run(["make", "--no-print-directory", "-n", "promote", "TAG=1.2.3", "CHART_REVISION=v1.2.3"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    files: list[Path] = []
    for line in proc.stdout.splitlines():
        if "release.py set-image-tag" in line or "release.py set-chart-revision" in line:
            words = shlex.split(line.split("release.py", 1)[1])
            files += [Path(w) for w in words[2:]]
    assert files, f"make -n promote names no file:\n{proc.stdout}"
    return sorted(set(files))


def synced_sources(apps: dict[Path, dict[str, Any]]) -> tuple[list[str], set[Path]]:
    """(problems, files that a synced Application reads): Applications applied by
    Argo CD are those in the directory a root Application syncs."""
    problems: list[str] = []
    read: set[Path] = set()
    roots = {p: a for p, a in apps.items() if any(s.get("path", "").startswith("deploy/argocd") for s in sources(a))}
    if not roots:
        return ["no app of apps: no Application syncs a deploy/argocd directory"], read
    managed_dirs = {s["path"].strip("/") for a in roots.values() for s in sources(a) if "path" in s}
    for path, app in apps.items():
        automated = app["spec"].get("syncPolicy", {}).get("automated")
        if automated is None:
            problems.append(f"{path}: no automated sync; a merged change would not be applied")
        managed = str(path.parent) in managed_dirs
        if path in roots:
            if managed:
                problems.append(f"{path}: the root syncs itself")
            continue
        if not managed:
            problems.append(f"{path}: no root Application syncs {path.parent}, so nothing applies changes to it")
            continue
        read.add(path)
        refs = {s["ref"]: s for s in sources(app) if "ref" in s}
        for src in sources(app):
            for vf in src.get("helm", {}).get("valueFiles", []):
                m = re.match(r"^\$([A-Za-z0-9_-]+)/(.+)$", vf)
                if not m:
                    continue
                ref = refs.get(m.group(1))
                if ref is None:
                    problems.append(f"{path}: valueFile {vf} names no `ref` source")
                elif ref.get("targetRevision") != "main":
                    problems.append(f"{path}: values ref tracks {ref.get('targetRevision')!r}, not main where promotion PRs merge")
                else:
                    read.add(Path(m.group(2)))
    return problems, read


def test_promoted_files_are_sources_of_synced_applications() -> None:
    apps = applications()
    problems, read = synced_sources(apps)
    assert not problems, "\n".join(problems)
    files = promote_files()
    unsynced = [str(f) for f in files if f not in read]
    assert not unsynced, f"make promote edits files no synced Application reads: {unsynced} (read: {sorted(map(str, read))})"


def test_the_check_catches_an_unsynced_values_file() -> None:
    apps = applications()
    broken = copy.deepcopy(apps)
    for app in broken.values():
        for src in sources(app):
            src.get("helm", {}).pop("valueFiles", None)
    _, read = synced_sources(broken)
    assert not any(str(f).startswith("deploy/argocd/values/") for f in read)
    no_root = {p: a for p, a in apps.items() if "bootstrap" not in str(p)}
    problems, _ = synced_sources(no_root)
    assert problems and "no app of apps" in problems[0]


def test_chart_source_tracks_a_release_tag_and_values_render() -> None:
    apps = applications()
    chart_sources = [(p, s) for p, a in apps.items() for s in sources(a) if s.get("path", "").strip("/") == CHART_PATH]
    assert chart_sources, "no Application renders the chart"
    for path, src in chart_sources:
        assert RELEASE_TAG.match(src.get("targetRevision", "")), \
            f"{path}: the chart source tracks {src.get('targetRevision')!r}; a branch would take every merged chart change to prod"


def test_promote_changes_the_rendered_image(tmp_path: Path) -> None:
    values_files = [f for f in promote_files() if "values" in f.parts]
    assert values_files
    for f in values_files:
        copy_ = tmp_path / f.name
        copy_.write_text((ROOT / f).read_text())
        proc = subprocess.run([sys.executable, str(ROOT / "scripts/release/release.py"), "set-image-tag", "sha-0123abc", str(copy_)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        objs = chartlib.objects(chartlib.render(yaml.safe_load(copy_.read_text())), include_tests=False)
        images = [c["image"] for o in objs if o["kind"] in ("Deployment", "Rollout") for c in o["spec"]["template"]["spec"]["containers"]]
        assert images and all(i.endswith(":sha-0123abc") for i in images), images


def test_promote_moves_the_chart_release_tag(tmp_path: Path) -> None:
    app_files = [f for f in promote_files() if "apps" in f.parts]
    assert app_files
    release = ROOT / "scripts/release/release.py"
    for f in app_files:
        copy_ = tmp_path / f.name
        copy_.write_text((ROOT / f).read_text())
        ok = subprocess.run([sys.executable, str(release), "set-chart-revision", "v9.9.9", str(copy_)], capture_output=True, text=True)
        assert ok.returncode == 0, ok.stderr
        doc = yaml.safe_load(copy_.read_text())
        assert [s["targetRevision"] for s in sources(doc) if s.get("path") == CHART_PATH] == ["v9.9.9"]
        assert [s["targetRevision"] for s in sources(doc) if "ref" in s] == ["main"], "the values ref must stay on main"
        bad = subprocess.run([sys.executable, str(release), "set-chart-revision", "main", str(copy_)], capture_output=True, text=True)
        assert bad.returncode != 0 and "not a release tag" in bad.stderr


def test_verify_full_gets_the_rds_ca_bundle() -> None:
    """The prod values, the Terraform stack and the prod overlay all mount a CA for verify-full."""
    values = yaml.safe_load((ROOT / "deploy/argocd/values/userapi-prod.yaml").read_text())
    objs = chartlib.objects(chartlib.render(values), include_tests=False)
    pod = next(o for o in objs if o["kind"] in ("Deployment", "Rollout"))["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env.get("DATABASE_TLS_MODE") == "verify-full"
    assert env.get("DATABASE_TLS_CA_FILE"), "verify-full without DATABASE_TLS_CA_FILE: the RDS certificate cannot be verified"
    secrets = [s["secret"]["name"] for v in pod["volumes"] for s in v.get("projected", {}).get("sources", []) if "secret" in s]
    assert values["postgres"]["tls"]["caSecret"] in secrets
    tf = (ROOT / "deploy/terraform/aws/app.tf").read_text()
    assert f'name      = "{values["postgres"]["tls"]["caSecret"]}"' in tf, "the CA Secret name differs from the Terraform stack's"


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
