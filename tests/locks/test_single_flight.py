"""Single-flight locks hold on every database (``sidecarhub.locks``): PostgreSQL advisory locks
in the normal run, Redis leases when ``tests/locks/test_on_sqlite.py`` runs these on SQLite.

Other holders are real processes (``tests.locks.holder``) or threads with their own database
connections. On both databases: exactly one of many contenders gets a key; a holder keeps it
past its lease time (renewal) and releases it on exit; a SIGKILLed holder blocks the key for at
most its lease; the per-cluster reconciler returns at once while another holder has its key.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from rollouts.reconciler import reconcile_cluster
from sidecarhub.locks import LOCKS, try_advisory_lock

pytestmark = [pytest.mark.sqlite, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 3.0  # the holders' lease (SIDECARHUB_LOCK_LEASE_SECONDS); Redis only; renewed every 1 s


def _database_url() -> str:
    """The test database as a DATABASE_URL, so holder processes lock in the same database."""
    database = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{os.path.abspath(database['NAME'])}"
    credentials = f"{quote(database['USER'])}:{quote(database['PASSWORD'])}"
    return f"postgres://{credentials}@{database['HOST']}:{database['PORT']}/{database['NAME']}"


class Holder:
    """One ``tests.locks.holder`` process trying ``key``."""

    def __init__(self, key: int) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": _database_url(),
            "SIDECARHUB_LOCK_LEASE_SECONDS": str(LEASE_SECONDS),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.locks.holder", str(key)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.stdin, self.stdout = self.process.stdin, self.process.stdout
        self.answer = self.stdout.readline().strip()

    def release(self) -> None:
        self.stdin.write("\n")
        self.stdin.flush()
        assert self.stdout.readline().strip() == "released"
        assert self.process.wait(timeout=10) == 0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        self.stdin.close()
        self.stdout.close()


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    """Holder processes the test starts; every one is stopped when the test ends, even on failure."""
    started: list[Holder] = []
    yield started
    for holder in started:
        holder.stop()


def _hold(holders: list[Holder], key: int) -> Holder:
    holder = Holder(key)
    holders.append(holder)
    return holder


def _try(key: int) -> bool:
    with try_advisory_lock(key) as acquired:
        return acquired


def test_exactly_one_of_many_threads_takes_a_key() -> None:
    key = LOCKS.rollout_reconcile(9001)
    contenders = 8
    tried = threading.Barrier(contenders)
    results: list[bool] = []

    def contend() -> None:
        try:
            tried.wait(timeout=10)
            with try_advisory_lock(key) as acquired:
                results.append(acquired)
                tried.wait(timeout=10)  # hold until every contender has tried
        finally:
            connection.close()

    threads = [threading.Thread(target=contend) for _ in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == [False] * (contenders - 1) + [True]
    assert _try(key), "released when its holder left the block"


def test_a_held_key_is_refused_to_other_processes_until_released(holders: list[Holder]) -> None:
    key = LOCKS.rollout_reconcile(9002)
    first = _hold(holders, key)
    assert first.answer == "acquired"
    assert _hold(holders, key).answer == "refused"
    assert not _try(key)
    time.sleep(LEASE_SECONDS * 1.5)  # past the lease time: the holder renews it
    assert not _try(key)
    assert _hold(holders, key).answer == "refused"
    first.release()
    assert _try(key)
    assert _hold(holders, key).answer == "acquired"


def test_a_killed_holder_blocks_the_key_at_most_its_lease(holders: list[Holder]) -> None:
    key = LOCKS.rollout_reconcile(9003)
    holder = _hold(holders, key)
    assert holder.answer == "acquired"
    holder.process.kill()  # SIGKILL: no release, no more renewals
    holder.process.wait(timeout=10)
    killed_at = time.monotonic()
    while not _try(key):
        assert time.monotonic() - killed_at < LEASE_SECONDS + 2, "the dead holder's key never came free"
        time.sleep(0.05)


def test_the_reconciler_returns_at_once_while_another_process_reconciles(holders: list[Holder]) -> None:
    cluster_id = 9004  # no such cluster: once it has the lock, the reconciler finds nothing to do
    holder = _hold(holders, LOCKS.rollout_reconcile(cluster_id))
    assert holder.answer == "acquired"
    assert reconcile_cluster(cluster_id).locked_out
    holder.release()
    assert not reconcile_cluster(cluster_id).locked_out
