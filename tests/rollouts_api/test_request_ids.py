"""Every rollout action can be traced to the call that caused it: the history rows it writes
(``StepTransition``, ``Approval``) carry the request ID of the API call (the one its response's
``X-Request-ID`` header names), of the admin action, or of the CLI run (``cli-`` + 12 hex)."""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from clusters.push import create_target
from rollouts.choices import RolloutState, StepState
from rollouts.models import Approval, Rollout, StepTransition
from sidecarhub.services import create_sidecarset, publish_sidecarset, update_sidecarset
from tests.clusters.conftest import make_user
from tests.rollouts_api.conftest import APPROVE, World, document, make_cluster, make_rollout

pytestmark = pytest.mark.django_db


def client_for(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_an_api_approval_records_the_request_id_its_response_carries(
    world: World, users: dict[str, User]
) -> None:
    response = client_for(users["approver"]).post(
        f"/api/v1/rollout-steps/{world.step.pk}/approve/", {"comment": "lgtm"}, format="json"
    )
    assert response.status_code == 202
    request_id = response["X-Request-ID"]
    assert len(request_id) == 32  # a fresh one: the caller sent none
    approval = Approval.objects.get(step=world.step)
    transition = StepTransition.objects.get(step=world.step, to_state=StepState.APPROVED)
    assert (approval.request_id, transition.request_id) == (request_id, request_id)
    # The serializer exposes it with the approval.
    assert response.json()["approvals"][0]["request_id"] == request_id
    detail = client_for(users["viewer"]).get(f"/api/v1/rollout-steps/{world.step.pk}/")
    assert detail.json()["approvals"][0]["request_id"] == request_id


def test_an_api_pause_records_the_callers_request_id(users: dict[str, User], author: User) -> None:
    rollout = make_rollout(author, make_cluster())  # pending: it pauses at once
    response = client_for(users["operator"]).post(
        f"/api/v1/rollouts/{rollout.pk}/pause/",
        {"reason": "freeze"},
        format="json",
        HTTP_X_REQUEST_ID="change-4711",
    )
    assert (response.status_code, response.json()["state"]) == (202, RolloutState.PAUSED)
    assert response["X-Request-ID"] == "change-4711"
    transition = StepTransition.objects.get(rollout=rollout, step=None, to_state=RolloutState.PAUSED)
    assert (transition.actor_name, transition.request_id) == ("operator", "change-4711")


def test_every_history_row_of_an_api_abort_carries_its_request_id(
    world: World, users: dict[str, User]
) -> None:
    before = set(StepTransition.objects.values_list("pk", flat=True))
    response = client_for(users["operator"]).post(f"/api/v1/rollouts/{world.rollout.pk}/abort/")
    assert (response.status_code, response.json()["state"]) == (202, RolloutState.ABORTED)
    written = StepTransition.objects.exclude(pk__in=before)
    # The rollout's row and one per cancelled step (both steps had not run).
    assert sorted(written.values_list("to_state", flat=True)) == ["aborted", "cancelled", "cancelled"]
    assert set(written.values_list("request_id", flat=True)) == {response["X-Request-ID"]}


def test_an_admin_approval_records_the_request_id_and_the_page_shows_it(world: World) -> None:
    approver = make_user("admin-approver", *APPROVE)
    User.objects.filter(pk=approver.pk).update(is_staff=True)
    client = Client()
    client.force_login(User.objects.get(pk=approver.pk))
    url = reverse("admin:rollouts_rollout_decide", args=[world.rollout.pk, world.step.pk, "approve"])
    response = client.post(url, {"comment": "ok"})
    request_id = response["X-Request-ID"]
    approval = Approval.objects.get(step=world.step)
    assert approval.request_id == request_id
    assert StepTransition.objects.get(step=world.step, to_state=StepState.APPROVED).request_id == request_id
    page = client.get(reverse("admin:rollouts_rollout_change", args=[world.rollout.pk]))
    assert page.content.decode().count(request_id) == 2  # the approval line and the history row


def test_a_cli_run_records_one_generated_request_id(world: World, cli_as: Any) -> None:
    cli_as(make_user("cli-approver", *APPROVE))
    call_command("sidecarhub", "rollout", "approve", str(world.step.pk), stdout=io.StringIO())
    approval = Approval.objects.get(step=world.step)
    assert re.fullmatch(r"cli-[0-9a-f]{12}", approval.request_id)
    transition = StepTransition.objects.get(step=world.step, to_state=StepState.APPROVED)
    assert transition.request_id == approval.request_id


def test_rollouts_created_by_a_publish_carry_its_request_id(
    author: User, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    cluster = make_cluster()
    name = f"rid-{uuid.uuid4().hex[:6]}"
    sidecarset = create_sidecarset(document(name, "log-agent:1"), actor=author)
    create_target(sidecarset.pk, cluster_id=cluster.pk)
    with django_capture_on_commit_callbacks(execute=True):  # the cluster serves revision 1
        publish_sidecarset(name, actor=author)
    update_sidecarset(name, actor=author, source=document(name, "log-agent:2"), expected_version=None)
    with django_capture_on_commit_callbacks(execute=True):
        revision = publish_sidecarset(name, actor=author, request_id="publish-7")
    rollout = Rollout.objects.get(to_revision=revision, cluster=cluster)
    created = rollout.transitions.get()
    assert (created.to_state, created.request_id) == (RolloutState.PENDING, "publish-7")
