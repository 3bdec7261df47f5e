"""Two approvers racing on the same step through the API, each on its own database connection
(real commits): exactly one gets 202, the other 409 with the step's current state."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from rollouts.choices import StepState
from rollouts.models import Approval, RolloutStep
from tests.clusters.conftest import make_user
from tests.rollouts_api.conftest import APPROVE, make_cluster, make_rollout, start_and_prepare


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_approvals_exactly_one_wins() -> None:
    author = make_user("author", *APPROVE)
    approvers = [make_user("alice", *APPROVE), make_user("bob", *APPROVE)]
    step = start_and_prepare(make_rollout(author, make_cluster()))
    barrier = threading.Barrier(len(approvers))
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

    threads = [threading.Thread(target=approve, args=(user,)) for user in approvers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    statuses = sorted(status for status, _ in results.values())
    assert statuses == [202, 409], results
    winner = next(name for name, (status, _) in results.items() if status == 202)
    loser_body = next(body for status, body in results.values() if status == 409)
    assert (loser_body["state"], loser_body["object"]) == (StepState.APPROVED, "step")
    approvals = list(Approval.objects.filter(step_id=step.pk))
    assert [(a.actor_name, a.comment) for a in approvals] == [(winner, winner)]
    assert RolloutStep.objects.get(pk=step.pk).state == StepState.APPROVED
