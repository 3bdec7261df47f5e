"""Project-wide Celery tasks and the one decorator every task uses (STYLE P8)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from celery import Task
from django.db import OperationalError

from sidecarhub.celery import app
from sidecarhub.locks import is_database_busy

__all__ = ["DATABASE_BUSY_MAX_RETRIES", "HubTask", "hub_task", "ping"]

# SQLite's write lock: a task that found it taken for longer than the busy timeout (20 s) runs
# again this many times, 1 to 3 seconds later each time.
DATABASE_BUSY_MAX_RETRIES = 10


class HubTask(Task):
    """Every hub task's base: a task that found SQLite's database locked is retried later instead
    of failing (one mechanism for every task; the API answers the same condition 503)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except OperationalError as exc:
            if not is_database_busy(exc) or self.request.called_directly:
                raise
            # Tasks are safe to run twice (their step is conditional), so running it again is.
            raise self.retry(
                exc=exc, countdown=1 + 2 * random.random(), max_retries=DATABASE_BUSY_MAX_RETRIES
            ) from None


def hub_task(name: str, **options: Any) -> Callable[[Callable[..., Any]], Any]:
    """Register a task with an explicit stable name, late acknowledgement and time limits.

    Tasks take IDs, do one bounded step, and are safe to run twice (a redelivery after a
    worker dies repeats at most that step). Base class ``HubTask``: retried while SQLite's
    database is locked.
    """
    defaults: dict[str, Any] = {"name": name, "acks_late": True, "ignore_result": True, "base": HubTask}
    defaults.update(options)
    return app.task(**defaults)


@hub_task("sidecarhub.ping", ignore_result=False)
def ping(value: str) -> str:
    """Echo for health checks and the worker round-trip test."""
    return f"pong:{value}"
