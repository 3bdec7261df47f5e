"""Approvers racing on the same step through the API, each on its own database connection (real
commits): exactly one gets 202, every other one 409 with the step's current state, never a 500.
Runs on PostgreSQL and, through ``tests/locks/test_on_sqlite.py``, on SQLite, where a write that
still finds the database locked after the busy timeout answers 503, never 500."""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

import pytest
from django.db import OperationalError, connection
from rest_framework.test import APIClient

from rollouts.choices import StepState
from rollouts.models import Approval, RolloutStep
from tests.clusters.conftest import make_user
from tests.rollouts_api.conftest import APPROVE, make_cluster, make_rollout, start_and_prepare

pytestmark = pytest.mark.sqlite


def _race_approvals(approvers: int) -> None:
    author = make_user("author", *APPROVE)
    users = [make_user(f"approver{i}", *APPROVE) for i in range(approvers)]
    step = start_and_prepare(make_rollout(author, make_cluster()))
    barrier = threading.Barrier(len(users))
    results: dict[str, tuple[int, Any]] = {}

    def approve(user: Any) -> None:
        client = APIClient()
        client.force_authenticate(user)
        try:
            barrier.wait(timeout=10)
            response = client.post(f"/api/v1/rollout-steps/{step.pk}/approve/", {"comment": user.username})
            results[user.username] = (response.status_code, response.json())
        finally:
            connection.close()

    threads = [threading.Thread(target=approve, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    statuses = sorted(status for status, _ in results.values())
    assert statuses == [202] + [409] * (approvers - 1), results
    winner = next(name for name, (status, _) in results.items() if status == 202)
    for status, body in results.values():
        if status == 409:
            assert (body["state"], body["object"]) == (StepState.APPROVED, "step")
    approvals = list(Approval.objects.filter(step_id=step.pk))
    assert [(a.actor_name, a.comment) for a in approvals] == [(winner, winner)]
    assert RolloutStep.objects.get(pk=step.pk).state == StepState.APPROVED


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_approvals_exactly_one_wins() -> None:
    _race_approvals(2)


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_approvals_one_202_and_the_rest_409() -> None:
    _race_approvals(20)


@pytest.mark.django_db
def test_a_database_still_locked_after_the_busy_timeout_answers_503(monkeypatch: pytest.MonkeyPatch) -> None:
    author, approver = make_user("author", *APPROVE), make_user("approver", *APPROVE)
    step = start_and_prepare(make_rollout(author, make_cluster()))

    def locked(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("database is locked") from sqlite3.OperationalError("database is locked")

    monkeypatch.setattr("rollouts.services.approve_step", locked)
    client = APIClient()
    client.force_authenticate(approver)
    response = client.post(f"/api/v1/rollout-steps/{step.pk}/approve/", {})
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    [error] = response.json()["errors"]
    assert error["path"] is None and "send it again" in error["message"]
