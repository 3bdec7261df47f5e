"""Settings come from the environment and fail fast on bad values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from sidecarhub.envconfig import env_bool, env_float, env_int, parse_database_url

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("1", True), ("FALSE", False), ("0", False)])
def test_env_bool_accepts_only_true_false_1_0(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool
) -> None:
    monkeypatch.setenv("X_FLAG", raw)
    assert env_bool("X_FLAG", not expected) is expected


@pytest.mark.parametrize("raw", ["yes", "on", "2", "tru"])
def test_env_bool_rejects_anything_else(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("X_FLAG", raw)
    with pytest.raises(ImproperlyConfigured, match="X_FLAG"):
        env_bool("X_FLAG", False)


def test_env_int_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_COUNT", "ten")
    with pytest.raises(ImproperlyConfigured, match="X_COUNT must be an integer"):
        env_int("X_COUNT", 1)
    monkeypatch.setenv("X_COUNT", "0")
    with pytest.raises(ImproperlyConfigured, match=">= 1"):
        env_int("X_COUNT", 1, minimum=1)


def test_env_float_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_SECONDS", "2.5")
    assert env_float("X_SECONDS", 5.0, minimum=0.1) == 2.5
    for raw, message in (("soon", "X_SECONDS must be a number"), ("0.01", ">= 0.1"), ("nan", ">= 0.1")):
        monkeypatch.setenv("X_SECONDS", raw)
        with pytest.raises(ImproperlyConfigured, match=message):
            env_float("X_SECONDS", 5.0, minimum=0.1)


def test_parse_database_url() -> None:
    pg = parse_database_url("postgres://u:p%40ss@db.example:5433/hub?sslmode=require")
    assert (pg["ENGINE"], pg["NAME"], pg["USER"], pg["PASSWORD"], pg["HOST"], pg["PORT"]) == (
        "django.db.backends.postgresql",
        "hub",
        "u",
        "p@ss",
        "db.example",
        "5433",
    )
    assert pg["OPTIONS"] == {"sslmode": "require"}
    sqlite = parse_database_url("sqlite:////var/lib/hub.db")
    assert sqlite["NAME"] == "/var/lib/hub.db"
    # Concurrent writers wait for each other and transitions take the write lock first, so a
    # lost race is a clean InvalidTransition (409), never "database is locked".
    assert sqlite["OPTIONS"] == {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL",
    }
    assert sqlite["TEST"] == {"NAME": "/var/lib/hub.db.test"}
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL must start with"):
        parse_database_url("mysql://x/y")


def _import_settings(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "SIDECARHUB_ENCRYPTION_KEY", "DATABASE_URL"}
    }
    return subprocess.run(
        [sys.executable, "-c", "import sidecarhub.settings as s; print(s.DEBUG)"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_refuses_to_start_without_secrets() -> None:
    result = _import_settings({"SIDECARHUB_ENV": "production"})
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_refuses_a_bad_debug_value() -> None:
    result = _import_settings(
        {
            "SIDECARHUB_ENV": "production",
            "SECRET_KEY": "x" * 50,
            "SIDECARHUB_ENCRYPTION_KEY": "k",
            "DATABASE_URL": "postgres://a:b@127.0.0.1/x",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "DJANGO_DEBUG": "yes",
        }
    )
    assert result.returncode != 0
    assert "DJANGO_DEBUG must be one of" in result.stderr


def test_debug_is_off_unless_asked(tmp_path: Path) -> None:
    result = _import_settings({"SIDECARHUB_ENV": "dev", "SIDECARHUB_VAR_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
