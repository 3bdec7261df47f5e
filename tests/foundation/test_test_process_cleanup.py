"""Every process a test starts dies with it: ``tests.conftest`` marks worker processes through
their environment and kills what still carries the marker when the worker is stopped and when
the session ends (an embedded beat outlived its worker once and kept consuming the test queue)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.conftest import _MARKER, _kill_marked


def test_a_marked_orphan_is_killed() -> None:
    marker = f"cleanup-test-{uuid.uuid4().hex[:8]}"
    # A grandchild that outlives its parent (reparented to init), as an orphaned beat would.
    script = (
        "import subprocess, sys; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], "
        "start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
        "print(p.pid)"
    )
    output = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, _MARKER: marker},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    orphan = int(output.stdout.strip())
    assert _alive(orphan)  # and no child of ours any more
    assert _kill_marked(marker) == 1
    deadline = time.monotonic() + 5
    while _alive(orphan) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(orphan), f"process {orphan} survived"


def _alive(pid: int) -> bool:
    """Running (a killed process waiting to be reaped by init counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
