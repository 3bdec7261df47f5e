"""The launcher fails loudly, with something a person can act on, when it cannot start."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.cluster import REQUIRED_BINARIES, SandboxCluster, SandboxError, find_binaries


def test_missing_binaries_name_the_build_command(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match=r"sandbox binaries missing .*etcd.*sandbox/build\.sh"):
        find_binaries(tmp_path)


def test_unset_bin_dir_says_how_to_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIDECARHUB_K8S_BIN", raising=False)
    with pytest.raises(SandboxError, match="SIDECARHUB_K8S_BIN is not set"):
        find_binaries()


def test_a_binary_that_exits_is_reported_with_its_log(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in REQUIRED_BINARIES:
        script = bin_dir / name
        script.write_text("#!/bin/sh\necho 'cannot open data dir: permission denied' >&2\nexit 3\n")
        script.chmod(0o755)
    cluster = SandboxCluster(name="broken", workdir=tmp_path / "work", bin_dir=find_binaries(bin_dir))
    with pytest.raises(SandboxError) as caught:
        cluster.start(timeout_seconds=10)
    message = str(caught.value)
    assert "etcd exited with code 3" in message
    assert "permission denied" in message
    assert not cluster.is_running()
