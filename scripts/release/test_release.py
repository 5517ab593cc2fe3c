"""make test-pipelines: release versioning (release.py through its make
targets), in a temporary copy of the repository. `make release` bumps
Chart.yaml version + appVersion together (and the prod overlay's image tag);
`make release-check` passes for the matching tag and fails for a wrong tag or
a version/appVersion split; bad input is refused; `make promote` edits only
the userapi image tag.
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.release

CHART = Path("deploy/helm/userapi/Chart.yaml")
OVERLAY = Path("deploy/kustomize/overlays/prod/kustomization.yaml")


@dataclass
class Released:
    root: Path
    old: str
    new: str
    chart_before: str
    result: subprocess.CompletedProcess


def make(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("VERSION", "GIT_TAG", "TAG", "MAKEFLAGS", "MAKELEVEL")}
    return subprocess.run(["make", "--no-print-directory", "-C", str(root), *args], env=env, capture_output=True, text=True)


def chart(root: Path) -> dict:
    return yaml.safe_load((root / CHART).read_text())


@pytest.fixture(scope="module")
def released(repo_copy) -> Released:
    root = repo_copy("release")
    before = (root / CHART).read_text()
    old = chart(root)["version"]
    new = "9.9.10" if old == "9.9.9" else "9.9.9"
    return Released(root, old, new, before, make(root, "release", f"VERSION={new}"))


def test_make_release_succeeds(released):
    assert released.result.returncode == 0, released.result.stdout + released.result.stderr


def test_release_sets_version_and_app_version(released):
    assert (chart(released.root)["version"], chart(released.root)["appVersion"]) == (released.new, released.new)


def test_release_changes_only_the_two_version_lines(released):
    diff = [line for line in difflib.unified_diff(released.chart_before.splitlines(), (released.root / CHART).read_text().splitlines(),
                                                  lineterm="", n=0) if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert sorted(line[1:].split(":")[0] for line in diff) == ["appVersion", "appVersion", "version", "version"], diff


def test_prod_overlay_image_tag_follows_the_release(released):
    overlay = yaml.safe_load((released.root / OVERLAY).read_text()) if (released.root / OVERLAY).exists() else {}
    tags = [i["newTag"] for i in overlay.get("images", []) if "newTag" in i]
    if not tags:
        pytest.skip(f"{OVERLAY} pins no image tag")
    assert str(released.new) in map(str, tags), tags


def test_release_check_passes_for_the_tag(released):
    proc = make(released.root, "release-check", f"GIT_TAG=v{released.new}")
    assert proc.returncode == 0 and f"version {released.new}" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("args, expected", [
    (["release-check", "GIT_TAG=v1.0.0"], "git tag 'v1.0.0'"),
    (["release"], "usage: make release VERSION"),
    (["release", "VERSION=v1.2.3"], "bare SemVer"),
    (["release", "VERSION=1.2"], "not SemVer"),
], ids=["release-check with a mismatching tag", "release without VERSION", "VERSION with a v", "VERSION not SemVer"])
def test_refused(args, expected, released):
    proc = make(released.root, *args)
    assert proc.returncode != 0 and expected in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert chart(released.root)["version"] == released.new, "a refused release changed Chart.yaml"


def test_release_check_fails_when_app_version_differs(released):
    path = released.root / CHART
    text = path.read_text()
    try:
        path.write_text(re.sub(r"(?m)^appVersion:.*$", f'appVersion: "{released.new}-split"', text))
        assert chart(released.root)["appVersion"] == f"{released.new}-split"
        proc = make(released.root, "release-check")
        assert proc.returncode != 0 and f"!= version '{released.new}'" in proc.stderr, proc.stdout + proc.stderr
    finally:
        path.write_text(text)


PROMOTE_VALUES = """# prod values synced by Argo CD
image:
  repository: ghcr.io/example/userapi  # published by release.yml
  tag: "1.0.0"
sidecar:
  image:
    repository: docker.io/library/busybox
    tag: "1.36"
"""


def test_promote_sets_only_the_userapi_image_tag(released):
    (released.root / "promote-values.yaml").write_text(PROMOTE_VALUES)
    proc = make(released.root, "promote", "TAG=sha-0123abcd", "PROMOTE_FILES=promote-values.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = (released.root / "promote-values.yaml").read_text()
    assert after == PROMOTE_VALUES.replace('tag: "1.0.0"', 'tag: "sha-0123abcd"'), after


def test_promote_refuses_a_digest_pinned_kustomize_image(released):
    (released.root / "pinned.yaml").write_text(f"images:\n  - name: ghcr.io/example/userapi\n    digest: sha256:{'0' * 64}\n")
    proc = make(released.root, "promote", "TAG=1.0.0", "PROMOTE_FILES=pinned.yaml")
    assert proc.returncode != 0 and "pinned by digest" in proc.stderr, proc.stdout + proc.stderr
