"""make test-drills: the short rollout and failure drills of CI (rolling update
under load, database restart and freeze; drills.py SHORT), each a test whose
expectations are its assertions. Between the release binaries of `make
drill-binaries` (USERAPI_BIN_OLD, USERAPI_BIN_NEW), HAProxy standing in for the
Service, and the session's PostgreSQL. `make drills` runs all six as a program.
"""

import os

import pytest

import drills
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
