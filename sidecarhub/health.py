"""Liveness of the hub's own dependencies, for ``/healthz`` and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from django.conf import settings
from django.db import connection
from django.db.utils import Error as DatabaseError

__all__ = ["HealthReport", "check_health"]

_BROKER_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class HealthReport:
    """Per-dependency state: ``"ok"`` or a one-line error a person can act on."""

    database: str
    broker: str

    @property
    def healthy(self) -> bool:
        return self.database == "ok" and self.broker == "ok"


def _check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        return f"database unreachable: {type(exc).__name__}: {exc}".splitlines()[0]
    return "ok"


def _check_broker() -> str:
    client = redis.Redis.from_url(
        settings.CELERY_BROKER_URL,
        socket_connect_timeout=_BROKER_TIMEOUT_SECONDS,
        socket_timeout=_BROKER_TIMEOUT_SECONDS,
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"broker unreachable: {type(exc).__name__}: {exc}".splitlines()[0]
    finally:
        client.close()
    return "ok"


def check_health() -> HealthReport:
    """Check the database and the Celery broker, each with a short timeout; never raises."""
    return HealthReport(database=_check_database(), broker=_check_broker())
