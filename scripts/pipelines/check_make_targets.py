"""Checks that CI definitions run project logic only through `make` targets that exist.

Reads .github/workflows/*.y*ml and .gitlab-ci.yml and, for every shell script a step or job
runs (GitHub `run:`, GitLab `script`/`before_script`/`after_script`), finds each `make`
command and fails when:

  1. a target it names is not defined by the Makefile (taken from `make -pRrq` on the real
     Makefile, so targets from every mk/*.mk fragment count, and nothing else does);
  2. it uses -f/-C (the check and the developers' commands use the top-level Makefile);
  3. the script runs project logic inline instead of through make: building, testing or
     linting the code, chart or image (swift build/test/format, docker|podman build/run,
     helm lint/template/package, kubectl kustomize/apply, the linters), or a project script
     other than the tool installers in scripts/tools/ (everything else is a make target, so
     a developer runs exactly what CI runs);
  4. a target in TEST_TARGETS (what `make test` runs) is called by no job of ci.yml, so the
     GitHub pipeline runs the same checks as `make test` / .ci/run.

Deployment and publishing plumbing (helm upgrade/push, cosign, gh, docker login, git) is
allowed inline: it needs the CI system's credentials and has no local equivalent.

`check(root)` returns the findings; test_pipelines.py asserts there are none, and that
each kind is found in a deliberately broken copy.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# Shell words after which a new simple command starts.
COMMAND_SEPARATORS = {";", "&&", "||", "|", "&", "(", ")", "{", "}", "!", "then", "do", "else", "elif", "if", "while", "until", "time"}
# Words that run the command that follows them.
PREFIX_COMMANDS = {"env", "sudo", "exec", "command", "nice", "timeout"}
MAKE_OPTIONS_WITH_VALUE = {"-j", "-l", "-o", "-W", "--what-if", "--old-file", "--new-file", "--jobs", "--load-average", "-I", "--include-dir"}
MAKE_FORBIDDEN_OPTIONS = {"-f", "--file", "--makefile", "-C", "--directory"}

INLINE_PROJECT_LOGIC = [
    (re.compile(r"\bswift\s+(build|test|run|format|package)\b"), "Swift build/test/format"),
    (re.compile(r"\b(docker|podman|buildah)\s+(build|run|compose|buildx\s+build|buildx\s+bake)\b"), "container build/run"),
    (re.compile(r"\bhelm\s+(lint|template|package|unittest|test)\b"), "chart lint/render/package"),
    (re.compile(r"\bkubectl\s+(kustomize|apply|create)\b"), "manifest build/apply"),
    (re.compile(r"\b(checkov|actionlint|zizmor|yamllint|hadolint|shellcheck|kubernetes-validate|promtool|pytest)\b"), "linter/test runner"),
    (re.compile(r"(^|[\s;&|(\"'=/.])scripts/(?!tools/)[\w./-]+"), "project script (call its make target)"),
]


@dataclass
class Script:
    origin: str  # file: job / step, for messages
    text: str
    ci_job: str | None = None  # job id when the script is in ci.yml


@dataclass
class Findings:
    errors: list[str] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)  # (origin, target)


def make_database(root: Path) -> tuple[set[str], list[str]]:
    """Targets and TEST_TARGETS as GNU make itself sees them."""
    proc = subprocess.run(
        ["make", "-pRrq", "-C", str(root), ":"], capture_output=True, text=True, check=False
    )
    if "# Make data base" not in proc.stdout:
        raise RuntimeError(f"cannot read the make database (make -pRrq): {proc.stderr}")
    targets: set[str] = set()
    test_targets: list[str] = []
    previous = ""
    for line in proc.stdout.splitlines():
        # make -p prints "# Not a target:" right above files it merely knows about.
        m = re.match(r"^([A-Za-z0-9_][^\s:=#$]*)\s*:(?!=)", line)
        if m and previous != "# Not a target:":
            targets.add(m.group(1))
        m = re.match(r"^TEST_TARGETS\s*:?=\s*(.*)$", line)
        if m:
            test_targets = m.group(1).split()
        previous = line
    return targets, test_targets


def step_label(index: int, step: dict) -> str:
    return str(step.get("name") or step.get("id") or f"#{index + 1}")


def github_scripts(path: Path, rel: str) -> list[Script]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    scripts = []
    is_ci = path.name in ("ci.yml", "ci.yaml")
    for job_id, job in (doc.get("jobs") or {}).items():
        for i, step in enumerate((job or {}).get("steps") or []):
            if isinstance(step, dict) and "run" in step:
                scripts.append(Script(f"{rel}: job {job_id}, step {step_label(i, step)}", str(step["run"]), job_id if is_ci else None))
    return scripts


GITLAB_RESERVED = {"default", "include", "stages", "variables", "workflow", "image", "services", "cache", "before_script", "after_script", "spec"}


def flatten(lines) -> list[str]:
    if isinstance(lines, str):
        return [lines]
    out = []
    for item in lines or []:
        out.extend(flatten(item))
    return out


def gitlab_scripts(path: Path, rel: str) -> list[Script]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    scripts = []
    for name, job in doc.items():
        if not isinstance(job, dict):
            continue
        if name in GITLAB_RESERVED and name != "default":
            continue
        for key in ("before_script", "script", "after_script"):
            if key in job:
                scripts.append(Script(f"{rel}: job {name}, {key}", "\n".join(flatten(job[key]))))
    return scripts


def logical_lines(text: str) -> list[str]:
    # GitHub expressions are substituted before the shell sees the script.
    text = re.sub(r"\$\{\{.*?\}\}", "EXPR", text, flags=re.S)
    text = text.replace("\\\n", " ")
    return text.splitlines()


def make_commands(line: str) -> list[list[str]]:
    """Argument lists of every `make` command in one shell line."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    tokens = list(lexer)
    commands, i, at_start = [], 0, True
    while i < len(tokens):
        tok = tokens[i]
        if tok in COMMAND_SEPARATORS or set(tok) <= set(";&|()"):
            at_start = True
        elif at_start and (re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", tok) or tok in PREFIX_COMMANDS):
            pass  # VAR=value make ..., env make ...
        elif at_start and tok in ("make", "gmake", "$(MAKE)"):
            args = []
            i += 1
            while i < len(tokens) and not (tokens[i] in COMMAND_SEPARATORS or set(tokens[i]) <= set(";&|()")):
                args.append(tokens[i])
                i += 1
            commands.append(args)
            at_start = True
            continue
        else:
            at_start = False
        i += 1
    return commands


def make_targets_of(args: list[str]) -> tuple[list[str], list[str]]:
    targets, problems, i = [], [], 0
    while i < len(args):
        a = args[i]
        if a in MAKE_FORBIDDEN_OPTIONS or any(a.startswith(o + "=") for o in MAKE_FORBIDDEN_OPTIONS if o.startswith("--")) or re.match(r"^-[fC].", a):
            problems.append(f"`make {' '.join(args)}` uses {a}: call the top-level Makefile from the repository root")
        elif a in MAKE_OPTIONS_WITH_VALUE:
            if a not in ("-j", "--jobs") or (i + 1 < len(args) and args[i + 1].isdigit()):
                i += 1
        elif a.startswith("-") or re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", a):
            pass
        elif "$" in a or "EXPR" in a:
            problems.append(f"`make {' '.join(args)}`: target `{a}` is computed at run time; name targets literally")
        else:
            targets.append(a)
        i += 1
    return targets, problems


def check(root: Path) -> Findings:
    found = Findings()
    targets, test_targets = make_database(root)
    scripts: list[Script] = []
    workflows = sorted((root / ".github" / "workflows").glob("*.y*ml"))
    if not workflows:
        found.errors.append(".github/workflows: no workflow files")
    for wf in workflows:
        scripts.extend(github_scripts(wf, str(wf.relative_to(root))))
    gitlab = root / ".gitlab-ci.yml"
    if gitlab.is_file():
        scripts.extend(gitlab_scripts(gitlab, ".gitlab-ci.yml"))

    ci_called: set[str] = set()
    for script in scripts:
        for line in logical_lines(script.text):
            for pattern, what in INLINE_PROJECT_LOGIC:
                if pattern.search(line):
                    found.errors.append(f"{script.origin}: runs {what} inline (`{line.strip()}`): use its make target")
            if not re.search(r"\b(g?make|\$\(MAKE\))\b", line):
                continue
            try:
                commands = make_commands(line)
            except ValueError as err:
                found.errors.append(f"{script.origin}: cannot parse `{line.strip()}`: {err}")
                continue
            for args in commands:
                names, problems = make_targets_of(args)
                found.errors.extend(f"{script.origin}: {p}" for p in problems)
                if not names and not problems:
                    found.errors.append(f"{script.origin}: `make` without a target runs the default goal; name the target")
                for name in names:
                    found.calls.append((script.origin, name))
                    if script.ci_job:
                        ci_called.add(name)
                    if name not in targets:
                        found.errors.append(f"{script.origin}: make target `{name}` does not exist in the Makefile")

    if any(p.name in ("ci.yml", "ci.yaml") for p in workflows):
        covered = ci_called | (set(test_targets) if "test" in ci_called else set())
        for t in test_targets:
            if t not in covered:
                found.errors.append(
                    f".github/workflows/ci.yml: `make test` runs {t} (TEST_TARGETS) but no ci.yml job calls it"
                )
    else:
        found.errors.append(".github/workflows/ci.yml is missing")
    return found
