"""The guarantees the SQLite quick start relies on, tested on SQLite (STYLE: "the suite runs on
PostgreSQL; single-flight locks and 409 on a lost race are tested on SQLite too").

Tests marked ``sqlite`` run in the normal (PostgreSQL) run like every other test; this test runs
them once more in a child pytest whose ``DATABASE_URL`` is a fresh SQLite file, with the same
Redis and the rest of the test environment. The child's database is SQLite from start to end
(settings, connections, holder processes), which no second database alias in this process could
give: the code under test reads the default connection.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The files holding tests marked ``sqlite``; only the marked tests of each run.
SQLITE_TEST_FILES = (
    "tests/locks/test_single_flight.py",
    "tests/rollouts_api/test_concurrency.py",
    "tests/rollouts/test_rollout_approvals.py",
)


def test_single_flight_and_lost_races_hold_on_sqlite(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'hub.sqlite3'}"}
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    command = [*pytest, "-m", "sqlite", *SQLITE_TEST_FILES]
    child = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=500)
    report = f"{' '.join(command)} (exit {child.returncode})\n{child.stdout[-8000:]}\n{child.stderr[-4000:]}"
    assert child.returncode == 0, report
    assert " passed" in child.stdout and "skipped" not in child.stdout, report
