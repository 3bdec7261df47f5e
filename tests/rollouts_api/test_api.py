"""API contract of the rollouts endpoints: 401 anonymous, 403 without the permission, 2xx
with it, for every endpoint; 409 with the current state; the four-eyes rule; filters; progress
counts; preview; CSV export of the per-pod history."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from rollouts.choices import PodUpdateOutcome, RolloutKind, RolloutState, StepState
from rollouts.models import Approval, Rollout, RolloutStep, StepTransition
from rollouts.queries import POD_UPDATE_CSV_COLUMNS
from rollouts.transitions import pause_rollout_row
from tests.rollouts_api.conftest import (
    APPROVE,
    OPERATE,
    PODS,
    VIEW,
    VIEW_PODS,
    World,
    make_cluster,
    make_pod_update,
    make_rollout,
    start_and_prepare,
)

pytestmark = pytest.mark.django_db


def client_for(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def _pause(world: World) -> None:
    pause_rollout_row(world.rollout.pk, actor=None, reason="paused for the test")


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    url: str  # {rollout} {step} {pod} are filled from the world
    permissions: tuple[str, ...]
    ok: int
    prepare: Callable[[World], None] | None = None

    def path(self, world: World) -> str:
        return self.url.format(rollout=world.rollout.pk, step=world.step.pk, pod=world.pod_updates[0].pk)


ENDPOINTS = [
    Endpoint("rollout-list", "get", "/api/v1/rollouts/", VIEW, 200),
    Endpoint("rollout-detail", "get", "/api/v1/rollouts/{rollout}/", VIEW, 200),
    Endpoint("rollout-steps", "get", "/api/v1/rollouts/{rollout}/steps/", VIEW, 200),
    Endpoint("rollout-preview", "get", "/api/v1/rollouts/{rollout}/preview/", VIEW, 200),
    Endpoint("pause", "post", "/api/v1/rollouts/{rollout}/pause/", OPERATE, 202),
    Endpoint("resume", "post", "/api/v1/rollouts/{rollout}/resume/", OPERATE, 202, _pause),
    Endpoint("abort", "post", "/api/v1/rollouts/{rollout}/abort/", OPERATE, 202),
    Endpoint("rollback", "post", "/api/v1/rollouts/{rollout}/rollback/", OPERATE, 202, _pause),
    Endpoint("step-list", "get", "/api/v1/rollout-steps/", VIEW, 200),
    Endpoint("step-detail", "get", "/api/v1/rollout-steps/{step}/", VIEW, 200),
    Endpoint("approve", "post", "/api/v1/rollout-steps/{step}/approve/", APPROVE, 202),
    Endpoint("deny", "post", "/api/v1/rollout-steps/{step}/deny/", APPROVE, 202),
    Endpoint("pod-list", "get", "/api/v1/pod-updates/", VIEW_PODS, 200),
    Endpoint("pod-detail", "get", "/api/v1/pod-updates/{pod}/", VIEW_PODS, 200),
    Endpoint("pod-list-csv", "get", "/api/v1/pod-updates/?format=csv", VIEW_PODS, 200),
    Endpoint("pod-export", "get", "/api/v1/pod-updates/export.csv/", VIEW_PODS, 200),
]
_IDS = [endpoint.name for endpoint in ENDPOINTS]


def _call(client: APIClient, endpoint: Endpoint, world: World) -> Any:
    path = endpoint.path(world)
    if endpoint.method == "post":
        return client.post(path, {}, format="json")
    return client.get(path)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_IDS)
def test_anonymous_gets_401(endpoint: Endpoint, world: World) -> None:
    response = _call(client_for(None), endpoint, world)
    assert response.status_code == 401


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_IDS)
def test_without_the_permission_403(endpoint: Endpoint, world: World, users: dict[str, User]) -> None:
    response = _call(client_for(users["nobody"]), endpoint, world)
    assert response.status_code == 403
    # Holding every permission but one of the needed ones is not enough either.
    from tests.clusters.conftest import make_user

    all_perms = {*VIEW_PODS, *APPROVE, *OPERATE}
    for missing in endpoint.permissions:
        almost = make_user(f"almost-{missing.split('.')[1]}", *(all_perms - {missing}))
        assert _call(client_for(almost), endpoint, world).status_code == 403, missing


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_IDS)
def test_with_the_permission_2xx(endpoint: Endpoint, world: World) -> None:
    from tests.clusters.conftest import make_user

    if endpoint.prepare is not None:
        endpoint.prepare(world)
    user = make_user("allowed", *endpoint.permissions)
    response = _call(client_for(user), endpoint, world)
    assert response.status_code == endpoint.ok, getattr(response, "data", response)


# --- rollouts: list, detail, progress, filters ------------------------------------------------


def test_detail_has_steps_pods_approvals_and_progress(world: World, users: dict[str, User]) -> None:
    client = client_for(users["approver"])
    client.post(f"/api/v1/rollout-steps/{world.step.pk}/approve/", {"comment": "canary looks fine"})
    body = client.get(f"/api/v1/rollouts/{world.rollout.pk}/").json()
    assert body["sidecarset"] == world.rollout.sidecarset_name
    assert (body["cluster"], body["from_revision"], body["to_revision"]) == ("prod-eu", 1, 2)
    assert (body["state"], body["current_step"], body["steps_total"]) == ("running", 1, 2)
    assert body["step_targets"] == [1, "100%"]
    assert body["progress"] == {
        "total": 3, "updated": 1, "failed": 1, "skipped": 0, "pod_gone": 0, "in_flight": 1,
    }  # fmt: skip
    first, second = body["steps"]
    assert (first["ordinal"], first["state"], first["pod_count"]) == (1, "approved", 3)
    assert [pod["name"] for pod in first["pods"]] == ["web-0", "web-1", "web-2"]
    assert first["needs_recreate"][0]["reason"] == "env changed"
    assert [(a["decision"], a["actor"], a["comment"]) for a in first["approvals"]] == [
        ("approve", "approver", "canary looks fine")
    ]
    assert first["progress"]["updated"] == 1 and first["progress"]["failed"] == 1
    assert (second["ordinal"], second["state"], second["pods"]) == (2, "pending", [])


def test_list_filters(world: World, users: dict[str, User], author: User) -> None:
    other_cluster = make_cluster("staging-us")
    second = make_rollout(author, other_cluster, wave=1, name="mesh-proxy")
    client = client_for(users["viewer"])

    def ids(query: str) -> set[int]:
        response = client.get(f"/api/v1/rollouts/?{query}")
        assert response.status_code == 200, response.data
        return {row["id"] for row in response.json()["results"]}

    first = world.rollout.pk
    assert ids("") == {first, second.pk}
    assert ids("sidecarset=mesh-proxy") == {second.pk}
    assert ids(f"sidecarset_id={world.rollout.sidecarset_id}") == {first}
    assert ids("cluster=staging-us") == {second.pk}
    assert ids(f"cluster_id={world.cluster.pk}") == {first}
    assert ids("state=running") == {first}
    assert ids("state=pending&state=running") == {first, second.pk}
    assert ids("wave=1") == {second.pk}
    assert ids("active=true") == {first, second.pk}
    assert ids("active=false") == set()
    assert ids("kind=rollback") == set()
    assert client.get("/api/v1/rollouts/?state=sideways").status_code == 400


def test_list_costs_a_constant_number_of_queries(
    world: World, users: dict[str, User], author: User, django_assert_max_num_queries: Any
) -> None:
    for index in range(4):
        make_rollout(author, world.cluster, name=f"extra-{index}")
    client = client_for(users["viewer"])
    with django_assert_max_num_queries(6):
        response = client.get("/api/v1/rollouts/")
    assert response.json()["count"] == 5


def test_steps_list_filters(world: World, users: dict[str, User]) -> None:
    client = client_for(users["viewer"])
    rows = client.get(f"/api/v1/rollout-steps/?rollout={world.rollout.pk}&state=awaiting_approval").json()
    assert [row["id"] for row in rows["results"]] == [world.step.pk]
    assert client.get("/api/v1/rollout-steps/?cluster=nowhere").json()["count"] == 0
    steps = client.get(f"/api/v1/rollouts/{world.rollout.pk}/steps/").json()
    assert [step["ordinal"] for step in steps] == [1, 2]


# --- preview ----------------------------------------------------------------------------------


def test_preview_lists_the_prepared_pods_in_place_or_needs_recreate(
    world: World, users: dict[str, User]
) -> None:
    body = client_for(users["viewer"]).get(f"/api/v1/rollouts/{world.rollout.pk}/preview/").json()
    assert (body["rollout_id"], body["rollout_state"]) == (world.rollout.pk, "running")
    step = body["next_step"]
    assert (step["step_id"], step["ordinal"], step["prepared"]) == (world.step.pk, 1, True)
    assert (step["in_place_count"], step["needs_recreate_count"]) == (3, 1)
    assert [(p["name"], p["update"], p["in_place"]) for p in step["pods"]] == [
        ("web-0", "in_place", True),
        ("web-1", "in_place", True),
        ("web-2", "in_place", True),
        ("legacy-0", "needs_recreate", False),
    ]
    assert step["pods"][-1]["reason"] == "env changed"


def test_preview_of_a_finished_rollout_has_no_next_step(world: World, users: dict[str, User]) -> None:
    client_for(users["operator"]).post(f"/api/v1/rollouts/{world.rollout.pk}/abort/")
    body = client_for(users["viewer"]).get(f"/api/v1/rollouts/{world.rollout.pk}/preview/").json()
    assert body == {"rollout_id": world.rollout.pk, "rollout_state": "aborted", "next_step": None}


def test_live_preview_of_an_unreachable_cluster_is_503(users: dict[str, User], author: User) -> None:
    rollout = make_rollout(author, make_cluster("gone"))  # step 1 pending: computed live
    response = client_for(users["viewer"]).get(f"/api/v1/rollouts/{rollout.pk}/preview/")
    assert response.status_code == 503, response.data
    assert "cluster gone" in response.json()["errors"][0]["message"]


# --- verbs: 202 with the updated resource, 409 with the current state --------------------------


def test_pause_requests_then_409_on_a_finished_rollout(world: World, users: dict[str, User]) -> None:
    client = client_for(users["operator"])
    response = client.post(f"/api/v1/rollouts/{world.rollout.pk}/pause/", {"reason": "dashboards red"})
    assert response.status_code == 202
    body = response.json()
    assert (body["state"], body["pause_requested"], body["intent_by"], body["intent_reason"]) == (
        "running", True, "operator", "dashboards red",
    )  # fmt: skip
    assert [step["ordinal"] for step in body["steps"]] == [1, 2]

    assert client.post(f"/api/v1/rollouts/{world.rollout.pk}/abort/").status_code == 202
    conflict = client.post(f"/api/v1/rollouts/{world.rollout.pk}/pause/")
    assert conflict.status_code == 409
    body = conflict.json()
    assert (body["state"], body["object"], body["object_id"]) == ("aborted", "rollout", world.rollout.pk)
    assert body["errors"][0]["path"] == "state" and "aborted" in body["errors"][0]["message"]


def test_resume_of_a_running_rollout_is_409(world: World, users: dict[str, User]) -> None:
    response = client_for(users["operator"]).post(f"/api/v1/rollouts/{world.rollout.pk}/resume/")
    assert response.status_code == 409
    assert response.json()["state"] == "running"


def test_pending_rollout_pauses_at_once_and_resumes(users: dict[str, User], author: User) -> None:
    rollout = make_rollout(author, make_cluster())
    client = client_for(users["operator"])
    paused = client.post(f"/api/v1/rollouts/{rollout.pk}/pause/", {"reason": "freeze"}, format="json")
    assert (paused.status_code, paused.json()["state"]) == (202, "paused")
    assert paused.json()["reason"] == "paused by operator: freeze"
    resumed = client.post(f"/api/v1/rollouts/{rollout.pk}/resume/", {}, format="json")
    assert (resumed.status_code, resumed.json()["state"]) == (202, "pending")


def test_abort_twice_is_409_and_writes_history(world: World, users: dict[str, User]) -> None:
    client = client_for(users["operator"])
    aborted = client.post(f"/api/v1/rollouts/{world.rollout.pk}/abort/", {"reason": "wrong image"})
    assert (aborted.status_code, aborted.json()["state"]) == (202, "aborted")
    assert {step["state"] for step in aborted.json()["steps"]} == {"cancelled"}
    last = StepTransition.objects.filter(rollout=world.rollout, step=None).last()
    assert last is not None
    assert (last.to_state, last.actor_name, last.reason) == (
        "aborted",
        "operator",
        "aborted by operator: wrong image",
    )
    again = client.post(f"/api/v1/rollouts/{world.rollout.pk}/abort/")
    assert (again.status_code, again.json()["state"]) == (409, "aborted")


def test_rollback_creates_a_new_rollout_through_the_same_steps(world: World, users: dict[str, User]) -> None:
    """A running rollout is rolled back at once (decision 16): it is aborted (between pods) and
    a rollback rollout returns its pods through the same steps; a rollout that never started
    cannot be rolled back (abort it)."""
    client = client_for(users["operator"])
    response = client.post(f"/api/v1/rollouts/{world.rollout.pk}/rollback/", {"reason": "errors up"})
    assert response.status_code == 202, response.data
    body = response.json()
    assert body["id"] != world.rollout.pk and response["Location"] == f"/api/v1/rollouts/{body['id']}/"
    assert (body["kind"], body["rollback_of"], body["from_revision"], body["to_revision"]) == (
        RolloutKind.ROLLBACK, world.rollout.pk, 2, 1,
    )  # fmt: skip
    assert (body["state"], body["step_targets"], body["author"]) == ("pending", [1, "100%"], "operator")
    assert Rollout.objects.get(pk=world.rollout.pk).state == RolloutState.ABORTED
    pending = client.post(f"/api/v1/rollouts/{body['id']}/rollback/")
    assert (pending.status_code, pending.json()["state"]) == (409, "pending")


def test_validation_error_names_the_field(world: World, users: dict[str, User]) -> None:
    response = client_for(users["operator"]).post(
        f"/api/v1/rollouts/{world.rollout.pk}/pause/", {"reason": "x" * 301}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == "reason"


def test_unknown_rollout_is_404(users: dict[str, User]) -> None:
    assert client_for(users["operator"]).post("/api/v1/rollouts/999999/pause/").status_code == 404
    assert client_for(users["viewer"]).get("/api/v1/rollouts/999999/").status_code == 404


# --- approvals: four eyes, twice, deny ---------------------------------------------------------


def test_four_eyes_author_cannot_approve_their_own_rollout(world: World, users: dict[str, User]) -> None:
    mine = client_for(world.author).post(
        f"/api/v1/rollout-steps/{world.step.pk}/approve/", {"comment": "lgtm"}
    )
    assert mine.status_code == 403
    assert "requires someone else" in mine.json()["errors"][0]["message"]
    assert RolloutStep.objects.get(pk=world.step.pk).state == StepState.AWAITING_APPROVAL
    assert not Approval.objects.exists()

    theirs = client_for(users["approver"]).post(
        f"/api/v1/rollout-steps/{world.step.pk}/approve/", {"comment": "lgtm"}
    )
    assert theirs.status_code == 202
    assert (theirs.json()["state"], theirs.json()["approvals"][0]["actor"]) == ("approved", "approver")


def test_cluster_may_let_the_author_approve(users: dict[str, User], author: User) -> None:
    rollout = make_rollout(author, make_cluster(rollout_requires_second_person=False))
    step = start_and_prepare(rollout)
    response = client_for(author).post(f"/api/v1/rollout-steps/{step.pk}/approve/")
    assert response.status_code == 202


def test_approving_twice_is_409_with_the_current_state(world: World, users: dict[str, User]) -> None:
    client = client_for(users["approver"])
    assert client.post(f"/api/v1/rollout-steps/{world.step.pk}/approve/").status_code == 202
    again = client.post(f"/api/v1/rollout-steps/{world.step.pk}/approve/")
    assert again.status_code == 409
    assert (again.json()["state"], again.json()["object"]) == ("approved", "step")
    assert Approval.objects.filter(step=world.step).count() == 1


def test_deny_pauses_the_rollout_and_approving_a_step_of_a_paused_rollout_is_409(
    world: World, users: dict[str, User]
) -> None:
    client = client_for(users["approver"])
    denied = client.post(f"/api/v1/rollout-steps/{world.step.pk}/deny/", {"comment": "not during the sale"})
    assert (denied.status_code, denied.json()["state"]) == (202, "denied")
    assert denied.json()["approvals"][0]["decision"] == "deny"
    rollout = Rollout.objects.get(pk=world.rollout.pk)
    assert rollout.state == RolloutState.PAUSED and "not during the sale" in rollout.reason
    again = client.post(f"/api/v1/rollout-steps/{world.step.pk}/approve/")
    assert again.status_code == 409
    assert (again.json()["state"], again.json()["object"]) == ("paused", "rollout")


def test_an_expired_step_is_refused(world: World, users: dict[str, User]) -> None:
    RolloutStep.objects.filter(pk=world.step.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client_for(users["approver"]).post(f"/api/v1/rollout-steps/{world.step.pk}/approve/")
    assert (response.status_code, response.json()["state"]) == (409, "expired")


# --- per-pod history ---------------------------------------------------------------------------


def test_pod_update_filters(world: World, users: dict[str, User], author: User) -> None:
    other = make_rollout(author, make_cluster("staging-us"))
    other_step = start_and_prepare(other, [{"namespace": "payments", "name": "api-0", "uid": "uid-x"}])
    extra = make_pod_update(other_step, {"namespace": "payments", "name": "api-0", "uid": "uid-x"})
    client = client_for(users["viewer"])
    web0, web1, web2 = world.pod_updates

    def ids(query: str) -> set[int]:
        response = client.get(f"/api/v1/pod-updates/?{query}")
        assert response.status_code == 200, response.data
        return {row["id"] for row in response.json()["results"]}

    assert ids("") == {web0.pk, web1.pk, web2.pk, extra.pk}
    assert ids("cluster=staging-us") == {extra.pk}
    assert ids(f"cluster_id={world.cluster.pk}") == {web0.pk, web1.pk, web2.pk}
    assert ids("namespace=payments") == {extra.pk}
    assert ids("pod=web-1") == {web1.pk}
    assert ids("pod_contains=WEB") == {web0.pk, web1.pk, web2.pk}
    assert ids(f"rollout={other.pk}") == {extra.pk}
    assert ids(f"step={world.step.pk}") == {web0.pk, web1.pk, web2.pk}
    assert ids("outcome=failed") == {web1.pk}
    assert ids("outcome=failed&outcome=succeeded") == {web0.pk, web1.pk, extra.pk}
    assert ids("state=claimed") == {web2.pk}
    since = (timezone.now() - timedelta(minutes=10)).isoformat()
    assert ids(f"since={since.replace('+', '%2B')}") == {web1.pk, web2.pk, extra.pk}
    assert ids(f"until={since.replace('+', '%2B')}") == {web0.pk}
    row = client.get(f"/api/v1/pod-updates/{web1.pk}/").json()
    assert (row["cluster"], row["pod_name"], row["outcome"], row["error"], row["step_ordinal"]) == (
        "prod-eu", "web-1", "failed", "ErrImagePull: log-agent:2", 1,
    )  # fmt: skip


def _csv_rows(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response.streaming
    text = b"".join(response.streaming_content).decode()
    reader = csv.DictReader(io.StringIO(text))
    assert tuple(reader.fieldnames or ()) == POD_UPDATE_CSV_COLUMNS
    return list(reader)


@pytest.mark.parametrize("url", ["/api/v1/pod-updates/export.csv/", "/api/v1/pod-updates/?format=csv"])
def test_csv_export_content_and_filters(url: str, world: World, users: dict[str, User]) -> None:
    client = client_for(users["viewer"])
    joiner = "&" if "?" in url else "?"
    rows = _csv_rows(client.get(f"{url}{joiner}outcome=failed"))
    assert len(rows) == 1
    row = rows[0]
    assert (row["cluster"], row["namespace"], row["pod_name"], row["pod_uid"]) == (
        "prod-eu",
        "shop",
        "web-1",
        "uid-1",
    )
    assert (row["rollout_id"], row["step_id"], row["step_ordinal"]) == (
        str(world.rollout.pk), str(world.step.pk), "1",
    )  # fmt: skip
    assert (row["from_image"], row["to_image"], row["from_revision"], row["to_revision"]) == (
        "log-agent:1", "log-agent:2", "1", "2",
    )  # fmt: skip
    assert (row["outcome"], row["error"], row["state"]) == (
        PodUpdateOutcome.FAILED,
        "ErrImagePull: log-agent:2",
        "done",
    )
    assert row["sidecarset"] == world.rollout.sidecarset_name and row["done_at"]
    everything = _csv_rows(client.get(url))
    assert sorted(r["pod_name"] for r in everything) == ["web-0", "web-1", "web-2"]
    assert "attachment" in client.get(url)["Content-Disposition"]


def test_csv_with_commas_and_quotes_is_quoted(world: World, users: dict[str, User]) -> None:
    make_pod_update(
        world.step, {"namespace": "shop", "name": "web-9", "uid": "uid-9"},
        outcome=PodUpdateOutcome.FAILED, error='pull failed: "manifest unknown", retrying',
    )  # fmt: skip
    rows = _csv_rows(client_for(users["viewer"]).get("/api/v1/pod-updates/export.csv/?pod=web-9"))
    assert rows[0]["error"] == 'pull failed: "manifest unknown", retrying'


def test_json_pod_list_is_paginated_and_newest_first(world: World, users: dict[str, User]) -> None:
    body = client_for(users["viewer"]).get("/api/v1/pod-updates/?limit=2").json()
    assert body["count"] == 3 and len(body["results"]) == 2
    assert body["results"][-1]["pod_name"] != "web-0"  # claimed 30 minutes ago: last
    assert PODS[0]["name"] == "web-0"
