"""``python -m sandbox.cli up`` takes the pod simulator's failure knobs (issue 16 item 9), so a
``make run`` user can try the failure and auto-pause path: run as a real process against a real
sandbox apiserver, a pod whose image matches ``--pull-failure`` waits in ``ImagePullBackOff``,
one matching ``--crash-loop`` in ``CrashLoopBackOff``, one matching ``--ready-delay`` becomes
ready only after the delay, and any other pod is ready at once."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from sandbox.cli import main
from sandbox.testing import wait_for

ROOT = Path(__file__).resolve().parents[2]


def test_bad_knob_values_are_refused_by_argparse(capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("slow:*", "slow:*=soon", "=3", "slow:*=-1"):
        with pytest.raises(SystemExit) as exited:
            main(["up", "--ready-delay", bad])
        assert exited.value.code == 2
        assert "expected IMAGE_PATTERN=SECONDS" in capsys.readouterr().err


@pytest.fixture
def sandbox_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path]]:
    """The sandbox CLI in its own process group, stopped as Ctrl-C would (SIGTERM), then killed."""
    ready, log = tmp_path / "ready.json", tmp_path / "sandbox.log"
    command = [
        sys.executable,
        "-m",
        "sandbox.cli",
        "up",
        "--name",
        "knobs",
        "--dir",
        str(tmp_path / "cluster"),
        "--ready-file",
        str(ready),
        "--pull-failure",
        "registry.example/*:broken",
        "--crash-loop",
        "crashy:*",
        "--ready-delay",
        "slow:*=4",
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, start_new_session=True, env=os.environ
        )
    try:
        yield process, ready, log
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _pod(name: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", "image": image}]},
    }


def _status(core: client.CoreV1Api, name: str) -> dict[str, Any] | None:
    pod = json.loads(core.read_namespaced_pod(name, "default", _preload_content=False).data)  # type: ignore[attr-defined]  # _preload_content=False: a raw urllib3 response
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return statuses[0] if statuses else None


@pytest.mark.k8s
def test_up_options_set_the_simulator_failure_knobs(
    sandbox_process: tuple[subprocess.Popen[bytes], Path, Path],
) -> None:
    process, ready, log = sandbox_process

    def started_or_exited() -> dict[str, Any] | None:
        if process.poll() is not None:
            raise AssertionError(f"the sandbox exited:\n{log.read_text()}")
        with contextlib.suppress(FileNotFoundError, ValueError):  # not yet, or half written
            return dict(json.loads(ready.read_text()))
        return None

    started = wait_for(started_or_exited, timeout_seconds=180, interval_seconds=0.5, what="the sandbox")
    core = client.CoreV1Api(config.new_client_from_config(config_file=started["kubeconfig"], context="knobs"))
    created = time.monotonic()
    for name, image in (
        ("broken", "registry.example/app:broken"),
        ("crashy", "crashy:1"),
        ("slow", "slow:1"),
        ("fine", "registry.example/app:1"),
    ):
        core.create_namespaced_pod("default", _pod(name, image), _preload_content=False)  # type: ignore[arg-type]  # stubs want a model object; a dict is sent as is

    def waiting_reason(name: str) -> str | None:
        status = _status(core, name)
        return ((status or {}).get("state") or {}).get("waiting", {}).get("reason")

    assert wait_for(lambda: waiting_reason("broken"), what="broken's status") == "ImagePullBackOff"
    assert wait_for(lambda: waiting_reason("crashy"), what="crashy's status") == "CrashLoopBackOff"
    fine = wait_for(lambda: _status(core, "fine"), what="fine's status")
    assert fine["ready"] is True and "running" in fine["state"]
    slow = wait_for(lambda: _status(core, "slow"), what="slow's status")
    assert "running" in slow["state"] and slow["ready"] is False
    wait_for(lambda: (_status(core, "slow") or {}).get("ready"), what="slow to become ready")
    assert time.monotonic() - created >= 3.0  # the 4 s delay (startedAt has second precision)
    for name in ("broken", "crashy"):
        status = _status(core, name)
        assert status is not None and status["ready"] is False, name
    text = log.read_text()
    assert "images matching 'registry.example/*:broken' fail to pull" in text
    assert "images matching 'slow:*' become ready after 4 s" in text
