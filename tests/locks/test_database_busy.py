"""SQLite's "database is locked" outside the API (issue 15): an admin page answers a clean 503
(never a 500) and a Celery task is retried until the database is free again.

Marked ``sqlite``: ``tests/locks/test_on_sqlite.py`` runs them on a SQLite file, where another
connection really holds the write lock (``BEGIN IMMEDIATE``) and the busy timeout is cut to
0.3 s. On PostgreSQL the tests that need a real SQLite lock are skipped; the one that raises
the error itself runs on both.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import OperationalError, connection
from django.test import Client

from clusters.choices import CredentialKind
from clusters.models import Cluster
from sidecarhub.tasks import hub_task

pytestmark = pytest.mark.sqlite


def _cluster() -> Cluster:
    return Cluster.objects.create(
        name="busy",
        api_server_url="https://127.0.0.1:1",
        credential_kind=CredentialKind.TOKEN,
        credentials_ciphertext="not-used",
    )


@contextlib.contextmanager
def _write_lock_held_elsewhere() -> Iterator[sqlite3.Connection]:
    """Another connection holds SQLite's write lock; this process's connections give up after
    0.3 s instead of 20. Skips on other databases."""
    if connection.vendor != "sqlite":
        pytest.skip("needs SQLite's write lock (run by tests/locks/test_on_sqlite.py)")
    options = connection.settings_dict["OPTIONS"]
    holder = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    connection.close()
    connection.settings_dict["OPTIONS"] = {**options, "timeout": 0.3}
    try:
        yield holder
    finally:
        with contextlib.suppress(sqlite3.ProgrammingError):
            holder.rollback()
        holder.close()
        connection.close()
        connection.settings_dict["OPTIONS"] = options


def _hold_from_admin(client: Client, cluster: Cluster) -> Any:
    return client.post(
        "/admin/clusters/cluster/", {"action": "hold_clusters", "_selected_action": [str(cluster.pk)]}
    )


def _assert_busy_page(response: Any) -> None:
    assert response.status_code == 503, response.content[:500]
    assert response["Retry-After"] == "1"
    page = response.content.decode()
    assert "The database is busy: try again" in page and "send it again" in page


@pytest.mark.django_db(transaction=True)
def test_an_admin_action_that_finds_the_database_locked_answers_503_and_works_once_free(
    admin_user: User,
) -> None:
    cluster = _cluster()
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    with _write_lock_held_elsewhere():
        _assert_busy_page(_hold_from_admin(client, cluster))
    assert not Cluster.objects.get(pk=cluster.pk).held
    response = _hold_from_admin(client, cluster)
    assert response.status_code == 302
    assert Cluster.objects.get(pk=cluster.pk).held


@pytest.mark.django_db
def test_database_locked_in_an_admin_view_is_a_503_page_on_every_database(
    admin_user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = _cluster()

    def locked(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("database is locked")

    monkeypatch.setattr("clusters.admin.hold_cluster", locked)
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    _assert_busy_page(_hold_from_admin(client, cluster))
    # Any other error is still the server error page (500), not hidden as "busy".
    monkeypatch.setattr("clusters.admin.hold_cluster", lambda *a, **k: 1 / 0)
    assert _hold_from_admin(client, cluster).status_code == 500


_attempts: list[int] = []


@hub_task("tests.locks.touch_cluster")
def touch_cluster(cluster_id: int) -> int:
    """A hub task that writes one row (as every task's step does)."""
    _attempts.append(cluster_id)
    Cluster.objects.filter(pk=cluster_id).update(held_reason=f"touched after {len(_attempts)} attempts")
    return len(_attempts)


@pytest.mark.django_db(transaction=True)
def test_a_task_that_finds_the_database_locked_is_retried_until_it_is_free() -> None:
    cluster = _cluster()
    _attempts.clear()
    with _write_lock_held_elsewhere() as holder:
        # The other writer finishes a second later; the task, run meanwhile, must not fail.
        releaser = threading.Timer(1.0, holder.rollback)
        releaser.start()
        try:
            # apply(): in this process, each retry at once (a worker waits its countdown).
            result = touch_cluster.apply((cluster.pk,), throw=False)
        finally:
            releaser.join()
        attempts = result.get()
    assert attempts == len(_attempts) >= 2  # locked at least once, then retried and done
    assert Cluster.objects.get(pk=cluster.pk).held_reason == f"touched after {attempts} attempts"


@pytest.mark.django_db
def test_a_task_failing_for_another_database_error_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = _cluster()
    _attempts.clear()

    def broken(*args: Any, **kwargs: Any) -> None:
        _attempts.append(0)
        raise OperationalError("no such table: clusters_cluster")

    monkeypatch.setattr(Cluster.objects, "filter", broken)
    with pytest.raises(OperationalError, match="no such table"):
        touch_cluster.apply((cluster.pk,), throw=True)
    assert len(_attempts) == 2  # the task's own append, then the failing write: once, no retry
