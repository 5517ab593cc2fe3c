"""make test-docs: the documentation stays true where it can be checked mechanically.
The configuration table in docs/configuration.md equals `userapi config --format
markdown` (`make readme` rewrites it); README.md stays a short map (at most
MAX_README_LINES lines) whose first code block gives the run command and the
test command CI runs (.ci/run calls `make test`); every make target README.md or
a page under docs/ names exists. Links and anchors: test_links.py.
"""

import difflib
import functools
import re
import subprocess

import pytest

import readme
from harness import ROOT

pytestmark = pytest.mark.docs

MAX_README_LINES = 250
TEXT = readme.README.read_text(encoding="utf-8")
DOCS = [readme.README, *sorted((ROOT / "docs").glob("*.md"))]


def test_config_table_matches_the_code(userapi_bin):
    match = readme.TABLE.search(readme.CONFIGURATION.read_text(encoding="utf-8"))
    assert match, "docs/configuration.md has no config-table markers"
    generated = readme.config_table(userapi_bin).splitlines(True)
    diff = list(difflib.unified_diff(match.group(2).splitlines(True), generated, "docs/configuration.md", "userapi config"))
    assert not diff, "run `make readme`:\n" + "".join(diff)


def test_readme_is_a_short_map():
    lines = len(TEXT.splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines (at most {MAX_README_LINES}): move detail into docs/"


def test_first_code_block_gives_the_run_and_test_commands():
    block = re.search(r"```sh\n(.*?)```", TEXT, re.S)
    assert block, "README.md has no sh code block"
    commands = re.findall(r"\bmake ([a-z0-9-]+)", block.group(1))
    assert "run" in commands and "test" in commands, f"first code block runs {commands}, not `make run` and `make test`"


def test_ci_runs_make_test():
    assert re.search(r"^\s*make\b[^\n]*\btest\b", (ROOT / ".ci/run").read_text(), re.M), ".ci/run does not call `make test`"


@functools.cache
def make_targets() -> set[str]:
    database = subprocess.run(["make", "-qp"], cwd=ROOT, capture_output=True, text=True).stdout
    return set(re.findall(r"^([A-Za-z0-9_.-]+):", database, re.M))


MENTIONED = sorted({(page.relative_to(ROOT).as_posix(), target) for page in DOCS
                    for target in re.findall(r"`make ([a-z0-9-]+)", page.read_text(encoding="utf-8"))})


@pytest.mark.parametrize(("page", "target"), MENTIONED, ids=[f"{p}:{t}" for p, t in MENTIONED])
def test_mentioned_make_target_exists(page, target):
    assert target in make_targets(), f"{page} names `make {target}`, which the Makefile does not define"
