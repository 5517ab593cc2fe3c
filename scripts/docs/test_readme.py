"""make test-docs: README.md stays true where it can be checked mechanically.
The configuration table equals `userapi config --format markdown` (`make
readme` rewrites it), the first code block gives the run command and the test
command CI runs (.ci/run calls `make test`), every make target it mentions exists.
"""

import difflib
import functools
import re
import subprocess

import pytest

import readme
from harness import ROOT

pytestmark = pytest.mark.docs

TEXT = readme.README.read_text(encoding="utf-8")


def test_config_table_matches_the_code(userapi_bin):
    match = readme.TABLE.search(TEXT)
    assert match, "README.md has no config-table markers"
    generated = readme.config_table(userapi_bin).splitlines(True)
    diff = list(difflib.unified_diff(match.group(2).splitlines(True), generated, "README.md", "userapi config"))
    assert not diff, "run `make readme`:\n" + "".join(diff)


def test_first_code_block_gives_the_run_and_test_commands():
    block = re.search(r"```sh\n(.*?)```", TEXT, re.S)
    assert block and "swift run userapi" in block.group(1) and "make test" in block.group(1)


def test_ci_runs_make_test():
    assert re.search(r"^\s*make\b[^\n]*\btest\b", (ROOT / ".ci/run").read_text(), re.M), ".ci/run does not call `make test`"


@functools.cache
def make_targets() -> set[str]:
    database = subprocess.run(["make", "-qp"], cwd=ROOT, capture_output=True, text=True).stdout
    return set(re.findall(r"^([A-Za-z0-9_.-]+):", database, re.M))


@pytest.mark.parametrize("target", sorted(set(re.findall(r"`make ([a-z0-9-]+)", TEXT))))
def test_mentioned_make_target_exists(target):
    assert target in make_targets()
