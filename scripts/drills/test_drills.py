"""make test-drills: the short rollout and failure drills of CI (rolling update
under load, database restart and freeze, 20 feed watchers across a rollout;
drills.py SHORT), each a test whose expectations are its assertions. Between
the release binaries of `make drill-binaries` (USERAPI_BIN_OLD,
USERAPI_BIN_NEW), HAProxy standing in for the Service, and the session's
PostgreSQL. `make drills` runs all seven as a program.
"""

import os

import pytest

import drills
import feed
from harness import ROOT, assert_none, unavailable

pytestmark = pytest.mark.drills


@pytest.fixture(scope="module")
def drill_options(tools):
    tools.haproxy
    binaries = [os.environ.get(f"USERAPI_BIN_{v}", "") for v in ("OLD", "NEW")]
    if not all(b and os.access(ROOT / b, os.X_OK) for b in binaries):
        unavailable(f"release binaries USERAPI_BIN_OLD/USERAPI_BIN_NEW ({binaries}) not built (make drill-binaries)")
    return drills.options(["--short", "--old-bin", str(ROOT / binaries[0]), "--new-bin", str(ROOT / binaries[1])])


@pytest.mark.parametrize("name", drills.SHORT)
def test_short_drill(name, drill_options, postgres):
    try:
        drill = drills.DRILLS[name](drill_options, postgres)
    finally:
        drills.cleanup()
    print(drills.table([drill]))
    assert_none(drill.failures, f"{drill.name}: expectations failed")


# The feed drill's verdicts on made-up event lists: each defect is caught, a clean run passes.
def _events(*changes):
    return [feed.Event(seq, kind, uid, None) for seq, (kind, uid) in enumerate(changes, start=1)]


REFERENCE = _events(("user.created", "a"), ("user.updated", "a"), ("user.created", "b"), ("user.created", "end"))
WRITES = feed.Writes(acknowledged=[("user.created", "a", None), ("user.updated", "a", None), ("user.created", "b", None)])
END = ("user.created", "end")


def test_feed_checks_pass_a_clean_run():
    assert feed.check_watcher(list(REFERENCE), REFERENCE) is None
    assert feed.check_against_writes(REFERENCE, WRITES, END) == []


@pytest.mark.parametrize("events, defect", [
    (REFERENCE[:1] + REFERENCE[2:], "missing seqs [2]"),
    (REFERENCE[:2] + REFERENCE[1:], "repeated seqs [2]"),
    ([REFERENCE[1], REFERENCE[0], *REFERENCE[2:]], "out of order: 2 before 1"),
    ([*REFERENCE[:2], feed.Event(3, "user.deleted", "b", None), REFERENCE[3]], "different events"),
], ids=["lost", "twice", "reordered", "other event"])
def test_feed_watcher_check_catches(events, defect):
    assert defect in (feed.check_watcher(events, REFERENCE) or "")


def test_feed_write_check_catches_lost_extra_and_holes():
    lost = [e for e in REFERENCE if e.id != "b"]
    assert any("acknowledged user.created b: 0 events" in p for p in feed.check_against_writes(lost, WRITES, END))
    extra = [*REFERENCE, feed.Event(5, "user.deleted", "zz", None)]
    assert any("matches no write" in p for p in feed.check_against_writes(extra, WRITES, END))
    holes = [*REFERENCE[:3], feed.Event(9, *END, None)]
    assert any("holes" in p for p in feed.check_against_writes(holes, WRITES, END))
