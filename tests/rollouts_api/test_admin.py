"""The rollouts console: pages render (changelist with progress bars, detail with steps and
pods, preview, per-pod history), and every button and action goes through the services, with
the same permission and four-eyes checks as the API."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from rollouts.choices import RolloutKind, RolloutState, StepState
from rollouts.models import Approval, Rollout, RolloutStep, StepTransition
from rollouts.transitions import pause_rollout_row
from tests.clusters.conftest import make_user
from tests.rollouts_api.conftest import APPROVE, OPERATE, VIEW_PODS, World

pytestmark = pytest.mark.django_db


def staff(username: str, *perms: str) -> User:
    user = make_user(username, *perms)
    User.objects.filter(pk=user.pk).update(is_staff=True)
    return User.objects.get(pk=user.pk)


def login(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def messages_of(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]] if response.context else []


@pytest.fixture
def viewer(db: None) -> User:
    return staff("viewer", *VIEW_PODS)


@pytest.fixture
def approver(db: None) -> User:
    return staff("approver", *APPROVE, "rollouts.view_podupdate")


@pytest.fixture
def operator(db: None) -> User:
    return staff("operator", *OPERATE, "rollouts.view_podupdate")


def detail_url(rollout_id: int) -> str:
    return reverse("admin:rollouts_rollout_change", args=[rollout_id])


# --- pages -------------------------------------------------------------------------------------


def test_changelist_shows_state_cluster_wave_and_a_progress_bar(world: World, viewer: User) -> None:
    response = login(viewer).get(reverse("admin:rollouts_rollout_changelist"))
    assert response.status_code == 200
    html = response.content.decode()
    assert world.rollout.sidecarset_name in html and "prod-eu" in html
    assert "sh-progress" in html and "rollout: 1 / 3 pods done" in html and "1 failed" in html
    assert "#1 → #2" in html and "1 of 2" in html
    assert 'class="sh-badge"' in html and "Running" in html
    # A viewer gets no operate / approve actions.
    assert "pause_selected" not in html and "approve_next_step" not in html


def test_changelist_filters_by_state(world: World, viewer: User) -> None:
    url = reverse("admin:rollouts_rollout_changelist")
    assert world.rollout.sidecarset_name in login(viewer).get(url + "?state__exact=running").content.decode()
    assert (
        world.rollout.sidecarset_name not in login(viewer).get(url + "?state__exact=paused").content.decode()
    )


def test_detail_shows_steps_pods_approval_and_history(world: World, approver: User) -> None:
    response = login(approver).get(detail_url(world.rollout.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Step 1: 1" in html and "Step 2: 100%" in html
    assert "shop/web-0" in html and "shop/legacy-0: env changed" in html
    assert "Approve step 1" in html and "Approval expires" in html
    assert "Not prepared yet" in html
    assert "wave 0 started" in html  # history
    assert "preview the next step" in html
    # Not an operator: no operate buttons, and a sentence saying why.
    assert "rollouts.operate_rollout" in html and 'value="Pause"' not in html


def test_detail_tells_the_author_why_they_cannot_approve(world: World) -> None:
    User.objects.filter(pk=world.author.pk).update(is_staff=True)
    html = login(User.objects.get(pk=world.author.pk)).get(detail_url(world.rollout.pk)).content.decode()
    assert "You cannot decide on this step" in html and "requires someone else" in html
    assert "Approve step 1" not in html


def test_operator_sees_the_verbs_the_state_allows(world: World, operator: User) -> None:
    html = login(operator).get(detail_url(world.rollout.pk)).content.decode()
    assert 'value="Pause"' in html and 'value="Abort"' in html
    assert 'value="Resume"' not in html and 'value="Rollback"' not in html


def test_preview_page_lists_pods_in_place_or_needs_recreate(world: World, viewer: User) -> None:
    response = login(viewer).get(reverse("admin:rollouts_rollout_preview", args=[world.rollout.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "prepared pod list" in html and "web-2" in html and "legacy-0" in html
    assert "needs recreate" in html and "in place" in html


def test_pod_update_changelist_filters_and_is_read_only(world: World, viewer: User) -> None:
    url = reverse("admin:rollouts_podupdate_changelist")
    client = login(viewer)
    html = client.get(url).content.decode()
    assert "web-0" in html and "web-1" in html and "ErrImagePull" in html
    assert "Export CSV (current filters)" in html
    failed = client.get(url + "?outcome__exact=failed").content.decode()
    assert "web-1" in failed and "web-0" not in failed
    by_rollout = client.get(url + f"?rollout__id__exact={world.rollout.pk}")
    assert by_rollout.status_code == 200 and "web-2" in by_rollout.content.decode()
    change = client.get(reverse("admin:rollouts_podupdate_change", args=[world.pod_updates[0].pk]))
    assert change.status_code == 200 and 'type="submit" value="Save"' not in change.content.decode()
    assert client.get(reverse("admin:rollouts_podupdate_add")).status_code == 403


def test_pod_update_csv_export_follows_the_filters(world: World, viewer: User) -> None:
    url = reverse("admin:rollouts_podupdate_export") + "?outcome__exact=failed"
    response = login(viewer).get(url)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    streamed = response.streaming_content  # type: ignore[attr-defined]  # stubs: test responses never stream
    rows = list(csv.DictReader(io.StringIO(b"".join(streamed).decode())))
    assert [(r["pod_name"], r["outcome"], r["error"]) for r in rows] == [
        ("web-1", "failed", "ErrImagePull: log-agent:2")
    ]


def test_pod_update_export_action(world: World, viewer: User) -> None:
    chosen = [world.pod_updates[0].pk, world.pod_updates[2].pk]
    response = login(viewer).post(
        reverse("admin:rollouts_podupdate_changelist"),
        {"action": "export_selected", "_selected_action": chosen},
    )
    streamed = response.streaming_content  # type: ignore[attr-defined]  # stubs: test responses never stream
    rows = list(csv.DictReader(io.StringIO(b"".join(streamed).decode())))
    assert sorted(r["pod_name"] for r in rows) == ["web-0", "web-2"]


def test_pages_need_the_view_permission(world: World) -> None:
    client = login(staff("nobody"))
    assert client.get(reverse("admin:rollouts_rollout_changelist")).status_code == 403
    assert client.get(detail_url(world.rollout.pk)).status_code == 403
    assert client.get(reverse("admin:rollouts_podupdate_changelist")).status_code == 403
    assert client.get(reverse("admin:rollouts_podupdate_export")).status_code == 403


# --- buttons: approve / deny with four eyes ----------------------------------------------------


def decide(client: Client, world: World, decision: str, comment: str = "") -> Any:
    url = reverse("admin:rollouts_rollout_decide", args=[world.rollout.pk, world.step.pk, decision])
    return client.post(url, {"comment": comment}, follow=True)


def test_four_eyes_in_the_admin(world: World, approver: User) -> None:
    User.objects.filter(pk=world.author.pk).update(is_staff=True)
    author = User.objects.get(pk=world.author.pk)
    refused = decide(login(author), world, "approve", "mine")
    assert any("not permitted" in m and "requires someone else" in m for m in messages_of(refused))
    assert RolloutStep.objects.get(pk=world.step.pk).state == StepState.AWAITING_APPROVAL

    approved = decide(login(approver), world, "approve", "checked the canary")
    assert any("step 1 approved" in m for m in messages_of(approved))
    approval = Approval.objects.get(step=world.step)
    assert (approval.actor_name, approval.decision, approval.comment) == (
        "approver",
        "approve",
        "checked the canary",
    )

    again = decide(login(approver), world, "approve")
    assert any("nothing done" in m and "approved" in m for m in messages_of(again))


def test_deny_in_the_admin_pauses_the_rollout(world: World, approver: User) -> None:
    response = decide(login(approver), world, "deny", "freeze week")
    assert any("denied" in m for m in messages_of(response))
    assert Rollout.objects.get(pk=world.rollout.pk).state == RolloutState.PAUSED


def test_decisions_are_post_only(world: World, approver: User) -> None:
    url = reverse("admin:rollouts_rollout_decide", args=[world.rollout.pk, world.step.pk, "approve"])
    assert login(approver).get(url).status_code == 405
    assert RolloutStep.objects.get(pk=world.step.pk).state == StepState.AWAITING_APPROVAL


# --- buttons and actions: pause / resume / abort / rollback ------------------------------------


def operate(client: Client, rollout_id: int, verb: str, reason: str = "") -> Any:
    url = reverse("admin:rollouts_rollout_operate", args=[rollout_id, verb])
    return client.post(url, {"reason": reason}, follow=True)


def test_operate_buttons_call_the_services(world: World, operator: User) -> None:
    client = login(operator)
    paused = operate(client, world.rollout.pk, "pause", "latency")
    assert any("pause requested" in m for m in messages_of(paused))
    rollout = Rollout.objects.get(pk=world.rollout.pk)
    assert (rollout.pause_requested, rollout.intent_by, rollout.intent_reason) == (
        True,
        "operator",
        "latency",
    )

    pause_rollout_row(world.rollout.pk, actor=None, reason="the engine honoured the pause")
    resumed = operate(client, world.rollout.pk, "resume")
    assert any("is now running" in m for m in messages_of(resumed))

    pause_rollout_row(world.rollout.pk, actor=None, reason="paused again")
    rolled = operate(client, world.rollout.pk, "rollback", "bad latency")
    new = Rollout.objects.get(rollback_of=world.rollout)
    assert (new.kind, new.author_name, new.to_revision_number) == (RolloutKind.ROLLBACK, "operator", 1)
    assert rolled.redirect_chain[-1][0] == detail_url(new.pk)
    assert any(f"rollback rollout {new.pk} created" in m for m in messages_of(rolled))


def test_operate_without_permission_is_refused_by_the_service(world: World, viewer: User) -> None:
    response = operate(login(viewer), world.rollout.pk, "abort")
    assert any("not permitted" in m and "operate" in m for m in messages_of(response))
    assert Rollout.objects.get(pk=world.rollout.pk).state == RolloutState.RUNNING


def test_changelist_actions_call_the_services(world: World, operator: User, approver: User) -> None:
    url = reverse("admin:rollouts_rollout_changelist")
    approved = login(approver).post(
        url, {"action": "approve_next_step", "_selected_action": [world.rollout.pk]}, follow=True
    )
    assert any("step 1 approved" in m for m in messages_of(approved))
    assert Approval.objects.get(step=world.step).actor_name == "approver"

    # Step 1 is approved (the engine may start it any moment): abort becomes an intent.
    aborted = login(operator).post(
        url, {"action": "abort_selected", "_selected_action": [world.rollout.pk]}, follow=True
    )
    assert any("abort requested" in m for m in messages_of(aborted))
    rollout = Rollout.objects.get(pk=world.rollout.pk)
    assert (rollout.abort_requested, rollout.intent_by) == (True, "operator")

    again = login(operator).post(
        url, {"action": "resume_selected", "_selected_action": [world.rollout.pk]}, follow=True
    )
    assert any("nothing done" in m and "running" in m for m in messages_of(again))


def test_abort_action_on_a_rollout_with_nothing_running(world: World, operator: User) -> None:
    response = login(operator).post(
        reverse("admin:rollouts_rollout_changelist"),
        {"action": "abort_selected", "_selected_action": [world.rollout.pk]},
        follow=True,
    )
    assert any("is now aborted" in m for m in messages_of(response))
    last = StepTransition.objects.filter(rollout=world.rollout, step=None).last()
    assert last is not None
    assert (last.to_state, last.actor_name) == ("aborted", "operator")


def test_approve_action_keeps_four_eyes(world: World) -> None:
    User.objects.filter(pk=world.author.pk).update(is_staff=True)
    author = User.objects.get(pk=world.author.pk)
    response = login(author).post(
        reverse("admin:rollouts_rollout_changelist"),
        {"action": "approve_next_step", "_selected_action": [world.rollout.pk]},
        follow=True,
    )
    assert any("requires someone else" in m for m in messages_of(response))
    assert not Approval.objects.exists()
