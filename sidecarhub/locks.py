"""The registry of PostgreSQL advisory lock keys (STYLE P9): every key the hub uses is made here.

Keys are 64-bit integers: a 32-bit namespace per kind of lock in the high half, the object's
id in the low half, so two kinds of locks never collide. On other databases (SQLite in the
quick start) the helpers below always succeed: SQLite serializes writers anyway.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

__all__ = ["LOCKS", "try_advisory_lock"]

_ROLLOUT_RECONCILE = 0x524F4C4C  # "ROLL"


class _Locks:
    """Lock key constructors (one method per kind of lock)."""

    def rollout_reconcile(self, cluster_id: int) -> int:
        """The single-flight rollout reconciler of one cluster (``rollouts.reconciler``)."""
        return (_ROLLOUT_RECONCILE << 32) | (int(cluster_id) & 0xFFFFFFFF)


LOCKS = _Locks()


@contextmanager
def try_advisory_lock(key: int) -> Iterator[bool]:
    """Try a session-level advisory lock without waiting; yield whether it was taken.

    Released on exit (and by PostgreSQL when the connection dies, e.g. a killed worker).
    """
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
