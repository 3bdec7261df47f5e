"""The suite runs on real PostgreSQL and a real Celery worker over Redis."""

from __future__ import annotations

import subprocess

import pytest
from django.db import connection
from django.test import Client
from pytest_django import Settings

from sidecarhub.tasks import ping


@pytest.mark.django_db
def test_database_is_postgresql() -> None:
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SELECT version(), pg_try_advisory_lock(4242)")
        version, locked = cursor.fetchone()
        cursor.execute("SELECT pg_advisory_unlock(4242)")
    assert version.startswith("PostgreSQL")
    assert locked is True


@pytest.mark.e2e
def test_celery_task_round_trip_through_redis(celery_worker_process: subprocess.Popen[bytes]) -> None:
    result = ping.apply_async(args=["round-trip"], ignore_result=False)
    assert result.get(timeout=30) == "pong:round-trip"
    assert celery_worker_process.poll() is None


@pytest.mark.django_db
def test_healthz_reports_database_and_broker(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


@pytest.mark.django_db
def test_healthz_is_503_with_the_reason_when_the_broker_is_down(client: Client, settings: Settings) -> None:
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["database"] == "ok"
    assert body["broker"].startswith("broker unreachable")
