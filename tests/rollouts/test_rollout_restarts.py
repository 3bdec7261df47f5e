"""Approved, stepped restarts of the workloads owning pods that need recreate (decision 18), on the
sandbox: its controller-manager runs the Deployment, ReplicaSet and StatefulSet controllers, the
simulator plays the kubelet, and the reconciler is called synchronously.

The workloads' pod templates carry revision 1's sidecar as the webhook would have injected it
(the core's ``inject``), so every pod their controllers create runs revision 1; revision 2 then
changes the sidecar's environment (not in place: the pods need recreate).
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from rollouts.choices import PodUpdateOutcome, PodUpdateState, RolloutKind, RolloutState, StepState
from rollouts.models import PodUpdate, Rollout, RolloutStep
from rollouts.reconciler import reconcile_cluster
from rollouts.restarts import preview_restart, start_restart
from rollouts.services import NotPermitted, approve_step, create_rollouts_for_revision, resume_rollout
from rollouts.transitions import RolloutError
from rollouts.workloads import RESTARTED_AT_ANNOTATION
from sandbox.testing import RunningCluster, wait_for
from sidecarhub.sidecarset import InjectionCandidate, inject
from tests.rollouts.helpers import OLD_IMAGE, Fleet, make_fleet, make_user, reconcile_until

pytestmark = [pytest.mark.k8s, pytest.mark.django_db]

ENV = [{"name": "LOG_LEVEL", "value": "debug"}]


def _template(fleet: Fleet, workload: str, app_image: str) -> dict[str, Any]:
    """A pod template carrying revision 1's sidecar and annotations, as injected by the hub."""
    core = fleet.revision.to_core()
    candidate = InjectionCandidate.of(
        core, revision_name=fleet.revision.name, revision_number=fleet.revision.number
    )
    labels = {"app": fleet.name, "workload": workload}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{workload}-template", "namespace": fleet.namespace, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": app_image}]},
    }
    injected = inject(
        pod, {"kubernetes.io/metadata.name": fleet.namespace}, [candidate], now=datetime.now(UTC)
    ).pod
    metadata = {"labels": labels, "annotations": dict(injected["metadata"].get("annotations") or {})}
    return {"metadata": metadata, "spec": injected["spec"]}


def _create_workload(fleet: Fleet, kind: str, name: str, replicas: int, app_image: str = "app:1") -> None:
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": fleet.name, "workload": name}},
        "template": _template(fleet, name, app_image),
    }
    body = {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}
    apps = fleet.running.apps
    if kind == "StatefulSet":
        spec["serviceName"] = name
        apps.create_namespaced_stateful_set(fleet.namespace, body, _preload_content=False)  # type: ignore[arg-type]  # a dict is sent as is
    else:
        apps.create_namespaced_deployment(fleet.namespace, body, _preload_content=False)  # type: ignore[arg-type]  # a dict is sent as is


def _workload(running: RunningCluster, namespace: str, kind: str, name: str) -> dict[str, Any]:
    read = (
        running.apps.read_namespaced_stateful_set
        if kind == "StatefulSet"
        else running.apps.read_namespaced_deployment
    )
    response: Any = read(name, namespace, _preload_content=False)  # a raw urllib3 response
    return dict(json.loads(response.data))


def _restarted_at(running: RunningCluster, namespace: str, kind: str, name: str) -> str | None:
    template = _workload(running, namespace, kind, name)["spec"]["template"]
    return (template["metadata"].get("annotations") or {}).get(RESTARTED_AT_ANNOTATION)


def _uids(fleet: Fleet) -> dict[str, str]:
    return {pod["metadata"]["uid"]: pod["metadata"]["name"] for pod in fleet.live_pods()}


def _needs_recreate_release(fleet: Fleet, author: Any, approver: Any) -> Rollout:
    """Publish revision 2 (an env change), approve its gate: completed, pods need recreate."""
    revision = fleet.publish(OLD_IMAGE, env=ENV)
    [rollout] = create_rollouts_for_revision(
        revision.pk, actor=author, previous_revision_id=fleet.revision.pk
    )
    assert not rollout.in_place
    gate = RolloutStep.objects.get(rollout=rollout, ordinal=1)
    reconcile_until(
        fleet.cluster.pk,
        lambda: RolloutStep.objects.get(pk=gate.pk).state != StepState.PENDING,
        what="the gate",
    )
    if RolloutStep.objects.get(pk=gate.pk).state == StepState.AWAITING_APPROVAL:
        approve_step(gate.pk, actor=approver)
    reconcile_until(
        fleet.cluster.pk,
        lambda: Rollout.objects.get(pk=rollout.pk).state == RolloutState.COMPLETED,
        what="the release",
    )
    return Rollout.objects.get(pk=rollout.pk)


def _step(rollout: Rollout, ordinal: int) -> RolloutStep:
    return RolloutStep.objects.get(rollout=rollout, ordinal=ordinal)


def test_approved_restart_in_two_steps_replaces_every_pod_that_needs_recreate(
    k8s: RunningCluster, k8s_namespace: str, author: Any, approver: Any
) -> None:
    fleet = make_fleet(k8s, k8s_namespace, author=author)
    _create_workload(fleet, "Deployment", "web", 6)
    _create_workload(fleet, "StatefulSet", "db", 3)
    [bare] = fleet.create_pods(1, prefix="bare")
    fleet.wait_ready(10)
    before = _uids(fleet)
    bare_uid = next(uid for uid, name in before.items() if name == bare)
    source = _needs_recreate_release(fleet, author, approver)
    assert "10 pods need recreate" in source.reason

    preview = preview_restart(source.pk, actor=approver, steps=[1, "100%"])
    assert preview.pods_needing_recreate == 10
    assert [(s.target, [(w.kind, w.name, w.pod_count) for w in s.workloads]) for s in preview.steps] == [
        ("1", [("StatefulSet", "db", 3)]),
        ("100%", [("Deployment", "web", 6)]),
    ]
    assert [item["name"] for item in preview.not_restartable] == [bare]
    assert "bare pod" in preview.not_restartable[0]["reason"]

    restart = start_restart(source.pk, actor=author, steps=[1, "100%"], reason="new env")
    assert restart.kind == RolloutKind.RESTART and restart.restart_of_id == source.pk
    with pytest.raises(RolloutError, match="still pending"):
        start_restart(source.pk, actor=author)
    reconcile_until(
        fleet.cluster.pk,
        lambda: _step(restart, 1).state == StepState.AWAITING_APPROVAL,
        what="step 1 prepared",
    )
    # Nothing restarts before approval, and the author may not approve (four eyes).
    for _ in range(2):
        reconcile_cluster(fleet.cluster.pk, time_budget_seconds=0.3)
    assert _restarted_at(k8s, k8s_namespace, "StatefulSet", "db") is None
    with pytest.raises(NotPermitted, match="requires someone else"):
        approve_step(_step(restart, 1).pk, actor=author)
    approve_step(_step(restart, 1).pk, actor=approver)
    # Passes of budget 0 end after their first turn, so the turn that finishes step 1 always ends
    # its pass (as a loaded worker's pass may): step 2 is still pending then, for the next pass.
    finishing = reconcile_until(
        fleet.cluster.pk,
        lambda: _step(restart, 1).state == StepState.SUCCEEDED,
        passes=600,
        budget=0,
        interval=0.3,
        what="step 1",
    )
    assert finishing[-1].more_work, finishing[-1]  # the worker runs the cluster again soon
    assert _step(restart, 2).state == StepState.PENDING
    assert Rollout.objects.get(pk=restart.pk).state == RolloutState.RUNNING
    reconcile_cluster(fleet.cluster.pk, time_budget_seconds=0)
    assert _step(restart, 2).state == StepState.AWAITING_APPROVAL
    # Step 2 needs its own approval: nothing restarts before it, however often the reconciler runs.
    for _ in range(2):
        reconcile_cluster(fleet.cluster.pk, time_budget_seconds=0.3)
    assert _restarted_at(k8s, k8s_namespace, "Deployment", "web") is None
    assert _step(restart, 2).state == StepState.AWAITING_APPROVAL
    approve_step(_step(restart, 2).pk, actor=approver)
    reconcile_until(
        fleet.cluster.pk,
        lambda: Rollout.objects.get(pk=restart.pk).state == RolloutState.COMPLETED,
        passes=600,
        what="the restart",
    )

    rows = list(PodUpdate.objects.filter(rollout=restart).order_by("pod_name"))
    assert len(rows) == 9 and {row.outcome for row in rows} == {PodUpdateOutcome.RECREATED}
    assert {row.state for row in rows} == {PodUpdateState.DONE}
    assert (
        sorted((row.workload_kind, row.workload_name) for row in rows)
        == [("Deployment", "web")] * 6 + [("StatefulSet", "db")] * 3
    )
    assert {row.pod_uid for row in rows} == set(before) - {bare_uid}
    for kind, name in (("Deployment", "web"), ("StatefulSet", "db")):
        markers = {row.restart_marker for row in rows if row.workload_name == name}
        assert markers == {_restarted_at(k8s, k8s_namespace, kind, name)}  # one restart per workload
        assert {row.patch_attempts for row in rows if row.workload_name == name} == {1}
    assert all(row.done_at and row.patched_at and row.done_at >= row.patched_at for row in rows)
    after = _uids(fleet)
    assert not (set(after) & {row.pod_uid for row in rows})  # every old pod is gone
    assert after.get(bare_uid) == bare  # the bare pod was never touched
    assert len(after) == 10
    completed = Rollout.objects.get(pk=restart.pk)
    assert "1 pods need recreate" in completed.reason  # the bare pod still runs revision 1


def test_a_workload_that_does_not_complete_pauses_the_restart_until_resumed(
    k8s: RunningCluster, k8s_namespace: str, author: Any, approver: Any, settings: Any
) -> None:
    settings.SIDECARHUB_RESTART_WORKLOAD_DEADLINE_SECONDS = 3
    fleet = make_fleet(k8s, k8s_namespace, author=author, cluster_settings={"rollout_auto_approve": True})
    _create_workload(fleet, "Deployment", "a-stuck", 2, app_image="stuck-app:1")
    _create_workload(fleet, "Deployment", "b-fine", 2)
    fleet.wait_ready(4)
    source = _needs_recreate_release(fleet, author, approver)
    # From now on, new pods of a-stuck never become ready (the running ones stay ready).
    k8s.knobs.ready_delay_seconds["stuck-app:*"] = 3600.0

    restart = start_restart(source.pk, actor=author)
    assert restart.workloads_at_once == 1 and restart.workload_deadline_seconds == 3
    reconcile_until(
        fleet.cluster.pk,
        lambda: Rollout.objects.get(pk=restart.pk).state == RolloutState.PAUSED,
        passes=100,
        what="the restart to pause",
    )
    paused = Rollout.objects.get(pk=restart.pk)
    assert f"Deployment {k8s_namespace}/a-stuck" in paused.reason and "ready" in paused.reason
    assert "resume" in paused.explanation
    assert _step(restart, 1).state == StepState.PAUSED
    for _ in range(3):  # paused: observed, nothing else restarted
        reconcile_cluster(fleet.cluster.pk, time_budget_seconds=0.5)
    assert _restarted_at(k8s, k8s_namespace, "Deployment", "b-fine") is None
    fine_rows = PodUpdate.objects.filter(rollout=restart, workload_name="b-fine")
    assert {row.state for row in fine_rows} == {PodUpdateState.CLAIMED}

    k8s.knobs.ready_delay_seconds.clear()
    k8s.simulator.resync()
    resume_rollout(restart.pk, actor=approver, reason="fixed the image")
    reconcile_until(
        fleet.cluster.pk,
        lambda: Rollout.objects.get(pk=restart.pk).state == RolloutState.COMPLETED,
        passes=600,
        what="the restart",
    )
    rows = PodUpdate.objects.filter(rollout=restart)
    assert rows.count() == 4 and {row.outcome for row in rows} == {PodUpdateOutcome.RECREATED}
    assert _restarted_at(k8s, k8s_namespace, "Deployment", "b-fine") is not None
    wait_for(lambda: len(fleet.live_pods()) == 4, timeout_seconds=30, what="4 pods")


def test_api_and_cli_preview_and_start_a_restart_and_refuse_bare_pods_only(
    k8s: RunningCluster, k8s_namespace: str, author: Any, approver: Any, cli_as: Any
) -> None:
    fleet = make_fleet(k8s, k8s_namespace, author=author)
    _create_workload(fleet, "Deployment", "web", 2)
    [bare] = fleet.create_pods(1, prefix="bare")
    fleet.wait_ready(3)
    source = _needs_recreate_release(fleet, author, approver)
    api = APIClient()
    api.force_authenticate(
        make_user(
            "operator", "rollouts.view_rollout", "rollouts.operate_rollout", "rollouts.approve_rolloutstep"
        )
    )

    preview = api.get(f"/api/v1/rollouts/{source.pk}/restart-preview/", {"steps": "1,100%"})
    assert preview.status_code == 200, preview.content
    body = preview.json()
    assert body["pods_needing_recreate"] == 3 and [s["pod_count"] for s in body["steps"]] == [2]
    assert body["steps"][0]["workloads"] == [
        {"kind": "Deployment", "namespace": k8s_namespace, "name": "web", "pod_count": 2}
    ]
    assert [item["name"] for item in body["not_restartable"]] == [bare]
    out = io.StringIO()
    cli_as(User.objects.create_superuser("cli-admin", password="x"))
    call_command("sidecarhub", "rollout", "restart-preview", str(source.pk), stdout=out)
    assert f"Deployment {k8s_namespace}/web" in out.getvalue() and "not restartable" in out.getvalue()

    admin = Client()
    admin.force_login(User.objects.create_superuser("restart-admin", password="x"))
    page = admin.get(f"/admin/rollouts/rollout/{source.pk}/change/")
    assert (
        page.status_code == 200
        and b"/operate/restart/" in page.content
        and b"restart-preview" in page.content
    )
    page = admin.get(f"/admin/rollouts/rollout/{source.pk}/restart-preview/?steps=1,100%25")
    assert page.status_code == 200 and f"Deployment {k8s_namespace}/web".encode() in page.content
    assert bare.encode() in page.content

    started = api.post(f"/api/v1/rollouts/{source.pk}/restart/", {"steps": ["100%"]}, format="json")
    assert started.status_code == 202, started.content
    restart = started.json()
    assert restart["kind"] == "restart" and restart["restart_of"] == source.pk
    assert restart["steps"][0]["workloads"][0]["name"] == "web" and restart["steps"][0]["pod_count"] == 2
    assert restart["steps"][0]["needs_recreate_count"] == 1
    again = api.post(f"/api/v1/rollouts/{source.pk}/restart/", {}, format="json")
    assert again.status_code == 409 and "still pending" in again.content.decode()

    # Once the restart is aborted, only the bare pod is left: nothing restartable, never deleted.
    api.post(f"/api/v1/rollouts/{restart['id']}/abort/", {}, format="json")
    k8s.apps.delete_namespaced_deployment("web", k8s_namespace, _preload_content=False)
    wait_for(lambda: len(fleet.live_pods()) == 1, timeout_seconds=30, what="only the bare pod")
    refused = api.post(f"/api/v1/rollouts/{source.pk}/restart/", {}, format="json")
    assert refused.status_code == 409 and "nothing to restart" in refused.content.decode()
    assert [pod["metadata"]["name"] for pod in fleet.live_pods()] == [bare]
