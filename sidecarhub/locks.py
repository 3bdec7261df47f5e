"""Single-flight locks (STYLE P9): the registry of lock keys, and the one way to take them; and
:func:`is_database_busy`, how every caller recognises SQLite's own write lock timing out.

Keys are 64-bit integers: a 32-bit namespace per kind of lock in the high half, the object's
id in the low half, so two kinds of locks never collide. Every key the hub uses is made here.

:func:`try_advisory_lock` takes a key without waiting and yields whether it was taken. It holds
on every supported database:

- **PostgreSQL**: a session-level advisory lock (``pg_try_advisory_lock``) on the caller's
  connection. PostgreSQL releases it when the connection ends, so a killed worker frees the key
  at once.
- **Other databases (SQLite, the quick start)**: a lease in Redis, the Celery broker, which is
  always configured (``REDIS_URL``). The lease is one key, ``SET NX`` with a random token and a
  time to live of ``SIDECARHUB_LOCK_LEASE_SECONDS``. A daemon thread of the holder renews it
  every third of that time, and release deletes it only while it still holds the holder's token
  (redis-py's ``Lock``, whose compare-and-set steps are Lua scripts, so they are atomic). The key
  names the database (a hash of its path), so two hubs sharing one Redis do not lock each other.

  Why Redis and not a lease row in the database: a lease row needs a migration, and on SQLite
  its acquire and renew writes would queue behind the database's single writer lock, so a long
  write transaction could make a live holder miss its renewal. Redis has neither problem, and
  only the Redis server's clock decides expiry, so hosts with skewed clocks never disagree.

What it guarantees, on both paths:

- **Mutual exclusion among live holders**: of all processes and threads (each with its own
  connection) trying one key, at most one is told ``True`` until it leaves the ``with`` block.
  The lock is not reentrant: a second ``try_advisory_lock`` on a held key is ``False``, even in
  the holder's own process.
- **Liveness after a crash**: a holder that dies (SIGKILL, a lost machine) blocks the key for at
  most its lease on Redis (``SIDECARHUB_LOCK_LEASE_SECONDS``, 30 s by default) and not at all on
  PostgreSQL.

Limits of the Redis lease: a holder frozen longer than the lease (a stopped process, a network
partition from Redis) loses it, and a new holder may then run beside it; its renewer logs a
warning when it finds the lease gone. A Redis restart drops every lease. There is no fencing
token: the state changes the lock protects are themselves conditional (``InvalidTransition``),
so such an overlap can waste work or surface as a refused transition, but cannot apply one twice.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import redis
from django.conf import settings
from django.db import OperationalError, connection
from redis.exceptions import LockError, RedisError
from redis.lock import Lock

__all__ = ["LOCKS", "is_database_busy", "try_advisory_lock"]

log = logging.getLogger(__name__)

_ROLLOUT_RECONCILE = 0x524F4C4C  # "ROLL"
_DEFAULT_LEASE_SECONDS = 30.0


class _Locks:
    """Lock key constructors (one method per kind of lock)."""

    def rollout_reconcile(self, cluster_id: int) -> int:
        """The single-flight rollout reconciler of one cluster (``rollouts.reconciler``)."""
        return (_ROLLOUT_RECONCILE << 32) | (int(cluster_id) & 0xFFFFFFFF)


LOCKS = _Locks()


def is_database_busy(exc: BaseException) -> bool:
    """SQLite's "database is locked" (or "busy"): another writer held the database for longer than
    the busy timeout. Nothing is wrong with the request or task; it can be sent (run) again. The
    API answers it 503 (``sidecarhub.api.errors``), every other page 503 (``error_page_500``), and
    a Celery task retries (``sidecarhub.tasks.HubTask``)."""
    message = str(exc).lower()
    return isinstance(exc, OperationalError) and (
        "database is locked" in message or "database is busy" in message
    )


@contextmanager
def try_advisory_lock(key: int) -> Iterator[bool]:
    """Try to take ``key`` without waiting; yield whether it was taken; release it on exit.

    See the module docstring for what it guarantees on PostgreSQL and on other databases.
    Raises ``redis.RedisError`` when the lease cannot be asked for (Redis unreachable): no
    answer is safer than a wrong one.
    """
    if connection.vendor == "postgresql":
        with _postgres_advisory_lock(key) as acquired:
            yield acquired
    else:
        with _redis_lease(key) as acquired:
            yield acquired


@contextmanager
def _postgres_advisory_lock(key: int) -> Iterator[bool]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


@cache
def _redis_client(url: str) -> redis.Redis:
    """One client (and connection pool) per process and URL; redis-py resets the pool after a
    fork, so Celery's prefork children do not share sockets."""
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def _lease_name(key: int) -> str:
    database = os.path.abspath(str(connection.settings_dict["NAME"]))
    scope = hashlib.sha256(database.encode()).hexdigest()[:16]
    return f"sidecarhub:lock:{scope}:{key:x}"


def _lease_seconds() -> float:
    return float(getattr(settings, "SIDECARHUB_LOCK_LEASE_SECONDS", _DEFAULT_LEASE_SECONDS))


@contextmanager
def _redis_lease(key: int) -> Iterator[bool]:
    lease_seconds = _lease_seconds()
    # thread_local=False: the renewer thread must see the token the acquiring thread stored.
    lease = Lock(
        _redis_client(settings.REDIS_URL),
        _lease_name(key),
        timeout=lease_seconds,
        blocking=False,
        thread_local=False,
    )
    if not lease.acquire(blocking=False):
        yield False
        return
    stop = threading.Event()
    renewer = threading.Thread(
        target=_renew,
        args=(lease, stop, lease_seconds / 3),
        name=f"lease-renewer-{key:x}",
        daemon=True,
    )
    renewer.start()
    try:
        yield True
    finally:
        stop.set()
        renewer.join()
        try:
            lease.release()
        except LockError:
            log.warning("lease %s had expired before its holder released it", lease.name)
        except RedisError as exc:  # it expires on its own within the lease time
            log.warning("could not release lease %s: %s", lease.name, exc)


def _renew(lease: Lock, stop: threading.Event, interval_seconds: float) -> None:
    """Reset the lease's time to live every ``interval_seconds`` until ``stop`` is set."""
    while not stop.wait(interval_seconds):
        try:
            lease.reacquire()
        except LockError:
            log.warning("lease %s was lost (expired and maybe taken by another holder)", lease.name)
            return
        except RedisError as exc:  # try again at the next interval; the lease may still be ours
            log.warning("could not renew lease %s: %s", lease.name, exc)
