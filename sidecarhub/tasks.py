"""Project-wide Celery tasks and the one decorator every task uses (STYLE P8)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sidecarhub.celery import app

__all__ = ["hub_task", "ping"]


def hub_task(name: str, **options: Any) -> Callable[[Callable[..., Any]], Any]:
    """Register a task with an explicit stable name, late acknowledgement and time limits.

    Tasks take IDs, do one bounded step, and are safe to run twice (a redelivery after a
    worker dies repeats at most that step).
    """
    defaults: dict[str, Any] = {"name": name, "acks_late": True, "ignore_result": True}
    defaults.update(options)
    return app.task(**defaults)


@hub_task("sidecarhub.ping", ignore_result=False)
def ping(value: str) -> str:
    """Echo for health checks and the worker round-trip test."""
    return f"pong:{value}"
