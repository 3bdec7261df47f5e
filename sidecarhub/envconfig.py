"""Typed readers for environment variables that fail fast on bad values.

Each reader raises ``ImproperlyConfigured`` naming the variable and what it expected, so a
typo in a deployment stops the process at start-up instead of surfacing as odd behaviour.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qs, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

__all__ = ["env_bool", "env_float", "env_int", "env_list", "env_str", "parse_database_url"]

_TRUE = {"1", "true"}
_FALSE = {"0", "false"}
_SQLITE_BUSY_TIMEOUT_SECONDS = 20


def env_str(name: str, default: str | None = None) -> str:
    """The variable's value; with no default, a missing or empty variable is an error."""
    value = os.environ.get(name, "")
    if value:
        return value
    if default is None:
        raise ImproperlyConfigured(f"{name} must be set")
    return default


def env_bool(name: str, default: bool) -> bool:
    """Only true/false/1/0 (any case): anything else is a configuration error."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be one of true, false, 1, 0 (got {raw!r})")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer (got {raw!r})") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be >= {minimum} (got {value})")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number (got {raw!r})") from None
    if value != value or (minimum is not None and value < minimum):  # NaN, or below the minimum
        raise ImproperlyConfigured(f"{name} must be >= {minimum} (got {raw!r})")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    """A comma-separated list; blanks are dropped."""
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def parse_database_url(url: str, *, variable: str = "DATABASE_URL") -> dict[str, object]:
    """Turn ``postgres://user:pass@host:port/name`` or ``sqlite:///path`` into a DATABASES entry."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        # sqlite:///relative.db and sqlite:////absolute/path.db, as in dj-database-url.
        path = unquote(parsed.path[1:] if parsed.path.startswith("/") else parsed.path)
        if not path:
            raise ImproperlyConfigured(f"{variable}: a sqlite URL needs a file path")
        if path == ":memory:":  # one connection's private database: nothing to share or wait for
            return {"ENGINE": "django.db.backends.sqlite3", "NAME": path}
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": path,
            "OPTIONS": {
                # SQLite has one writer at a time. A connection that finds the database locked
                # waits up to this long instead of failing at once with "database is locked".
                "timeout": _SQLITE_BUSY_TIMEOUT_SECONDS,
                # Every transaction takes the write lock when it begins (BEGIN IMMEDIATE), so a
                # transaction that reads and then writes (a state transition: SQLite ignores
                # SELECT ... FOR UPDATE) runs after any other writer, sees its commit, and can
                # never fail half-way because another writer came first.
                "transaction_mode": "IMMEDIATE",
                # Write-ahead log: readers never wait for the writer, nor the writer for readers.
                "init_command": "PRAGMA journal_mode=WAL",
            },
            # Tests use a file next to the database (Django's default is a shared in-memory
            # database, whose table locks the busy timeout does not wait on), so concurrent
            # connections in tests behave as in the quick start.
            "TEST": {"NAME": f"{path}.test"},
        }
    if parsed.scheme in {"postgres", "postgresql", "pgsql"}:
        name = unquote(parsed.path.lstrip("/"))
        if not name:
            raise ImproperlyConfigured(f"{variable}: a postgres URL needs a database name")
        options = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "OPTIONS": options,
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }
    raise ImproperlyConfigured(
        f"{variable} must start with postgres:// or sqlite:/// (got scheme {parsed.scheme!r})"
    )
