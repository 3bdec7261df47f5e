"""Issue 15, "Nothing lost": the ledger (rollouts, steps, approvals, pod updates, transitions)
outlives the clusters and SidecarSets it is about, and shows them as deleted."""

from __future__ import annotations

import csv
import importlib
import io

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from clusters.services import delete_cluster
from rollouts.choices import OPEN_POD_UPDATE_STATES, RolloutState, StepState
from rollouts.models import Approval, PodUpdate, Rollout, RolloutStep, StepTransition
from rollouts.services import approve_step
from sidecarhub.services import delete_sidecarset
from tests.clusters.conftest import make_user
from tests.rollouts_api.conftest import VIEW_PODS, World
from tests.rollouts_api.test_api import client_for

pytestmark = pytest.mark.django_db


def _counts(world: World) -> tuple[int, int, int, int]:
    rollout = world.rollout.pk
    return (
        RolloutStep.objects.filter(rollout_id=rollout).count(),
        Approval.objects.filter(step__rollout_id=rollout).count(),
        PodUpdate.objects.filter(rollout_id=rollout).count(),
        StepTransition.objects.filter(rollout_id=rollout).count(),
    )


def _approve(world: World) -> None:
    approver = make_user("ledger-approver", "rollouts.view_rollout", "rollouts.approve_rolloutstep")
    approve_step(world.step.pk, actor=approver, comment="ok")


def test_deleting_the_cluster_keeps_the_ledger_and_ends_the_active_rollout(world: World) -> None:
    _approve(world)
    steps, approvals, updates, transitions = _counts(world)
    assert approvals == 1 and updates == 3
    delete_cluster(world.cluster.pk, keep_in_cluster=True)

    rollout = Rollout.objects.get(pk=world.rollout.pk)
    assert rollout.cluster_id is None and rollout.cluster_name == "prod-eu" and rollout.cluster_deleted
    assert rollout.state == RolloutState.FAILED and "prod-eu was deleted" in rollout.reason
    assert not rollout.rollout_steps.exclude(
        state__in=[StepState.FAILED, StepState.CANCELLED, StepState.SUCCEEDED]
    ).exists()
    after = _counts(world)
    assert after[:3] == (steps, approvals, updates) and after[3] > transitions  # + the failure's rows
    rows = PodUpdate.objects.filter(rollout=rollout)
    assert {row.cluster_name for row in rows} == {"prod-eu"} and all(row.cluster_id is None for row in rows)
    assert not rows.filter(state__in=OPEN_POD_UPDATE_STATES).exists()


def test_deleting_the_sidecarset_keeps_the_ledger(world: World) -> None:
    _approve(world)
    before = _counts(world)
    delete_sidecarset(world.rollout.sidecarset_name, actor=None, expected_version=None)
    rollout = Rollout.objects.get(pk=world.rollout.pk)
    assert rollout.sidecarset_id is None and rollout.sidecarset_deleted and not rollout.cluster_deleted
    assert rollout.state == RolloutState.FAILED
    assert _counts(world)[:3] == before[:3]


def test_api_filters_and_csv_show_the_deleted_cluster(world: World, users: dict[str, User]) -> None:
    delete_cluster(world.cluster.pk, keep_in_cluster=True)
    client = client_for(users["viewer"])
    listed = client.get("/api/v1/rollouts/?cluster=prod-eu").json()
    [item] = listed["results"] if isinstance(listed, dict) else listed
    assert item["cluster"] == "prod-eu" and item["cluster_id"] is None
    assert item["cluster_deleted"] is True and item["sidecarset_deleted"] is False
    deleted = client.get("/api/v1/rollouts/?cluster_deleted=true").json()
    assert [r["id"] for r in (deleted["results"] if isinstance(deleted, dict) else deleted)] == [item["id"]]
    detail = client.get(f"/api/v1/rollouts/{world.rollout.pk}/").json()
    assert detail["cluster_deleted"] is True and len(detail["steps"]) == 2

    pods = client.get("/api/v1/pod-updates/?cluster=prod-eu").json()
    pod_rows = pods["results"] if isinstance(pods, dict) else pods
    assert len(pod_rows) == 3 and all(r["cluster"] == "prod-eu" and r["cluster_deleted"] for r in pod_rows)
    steps = client.get("/api/v1/rollout-steps/?cluster=prod-eu").json()
    assert len(steps["results"] if isinstance(steps, dict) else steps) == 2

    response = client.get("/api/v1/pod-updates/export.csv/?cluster=prod-eu")
    text = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    csv_rows = list(csv.DictReader(io.StringIO(text)))
    assert len(csv_rows) == 3 and {(r["cluster"], r["cluster_deleted"]) for r in csv_rows} == {
        ("prod-eu", "true")
    }


def test_api_shows_the_deleted_sidecarset(world: World, users: dict[str, User]) -> None:
    name = world.rollout.sidecarset_name
    delete_sidecarset(name, actor=None, expected_version=None)
    listed = client_for(users["viewer"]).get(f"/api/v1/rollouts/?sidecarset={name}").json()
    [item] = listed["results"] if isinstance(listed, dict) else listed
    assert item["sidecarset"] == name and item["sidecarset_id"] is None and item["sidecarset_deleted"] is True


def test_admin_pages_render_the_deleted_cluster(world: World) -> None:
    delete_cluster(world.cluster.pk, keep_in_cluster=True)
    user = make_user("ledger-admin", *VIEW_PODS)
    User.objects.filter(pk=user.pk).update(is_staff=True)
    client = Client()
    client.force_login(User.objects.get(pk=user.pk))
    for url in (
        reverse("admin:rollouts_rollout_changelist"),
        reverse("admin:rollouts_rollout_changelist") + "?cluster_name=prod-eu",
        reverse("admin:rollouts_rollout_change", args=[world.rollout.pk]),
        reverse("admin:rollouts_podupdate_changelist"),
        reverse("admin:rollouts_podupdate_changelist") + "?cluster_name=prod-eu",
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        assert "prod-eu" in response.content.decode() and "deleted" in response.content.decode(), url


def test_the_data_migration_copies_the_names_of_existing_rows(world: World) -> None:
    from django.apps import apps

    migration = importlib.import_module("rollouts.migrations.0008_ledger_outlives_clusters")
    Rollout.objects.update(cluster_name="")
    PodUpdate.objects.update(cluster_name="")
    migration.copy_cluster_names(apps, None)
    assert set(Rollout.objects.values_list("cluster_name", flat=True)) == {"prod-eu"}
    assert set(PodUpdate.objects.values_list("cluster_name", flat=True)) == {"prod-eu"}
