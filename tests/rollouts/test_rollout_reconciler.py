"""The reconciler called synchronously, step by step, against the sandbox apiserver (real pods,
the simulator as kubelet): steps wait for approval, only the approved pods are patched, the
history rows say what happened; failures pause the rollout; rollback; crash recovery."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from rollouts import engine, pass_inputs
from rollouts.choices import PodUpdateOutcome, PodUpdateState, RolloutState, StepState
from rollouts.models import PodUpdate, Rollout, RolloutStep
from rollouts.pass_inputs import PassInputs
from rollouts.previews import preview_next_step, preview_revision
from rollouts.reconciler import ReconcileReport, _Pass, reconcile_cluster
from rollouts.services import NotPermitted, approve_step, create_rollouts_for_revision
from sandbox.testing import RunningCluster
from sidecarhub.sidecarset.inplace import build_patch
from tests.rollouts.helpers import (
    NEW_IMAGE,
    OLD_IMAGE,
    make_fleet,
    pods_by_name,
    reconcile_until,
    sidecar_image,
    transitions_of,
)

pytestmark = [pytest.mark.k8s, pytest.mark.django_db]


def _step(rollout: Rollout, ordinal: int) -> RolloutStep:
    return RolloutStep.objects.get(rollout=rollout, ordinal=ordinal)


def _images(fleet: Any) -> dict[str, str | None]:
    return {name: sidecar_image(pod) for name, pod in pods_by_name(fleet.live_pods()).items()}


def test_canary_then_rest_waits_for_each_approval(
    k8s: RunningCluster, k8s_namespace: str, author: Any, approver: Any
) -> None:
    fleet = make_fleet(
        k8s,
        k8s_namespace,
        author=author,
        strategy={"selector": {"matchLabels": {"canary": "true"}}, "maxUnavailable": "50%"},
    )
    canaries = fleet.create_pods(2, labels={"canary": "true"}, prefix="canary")
    fleet.create_pods(4)
    fleet.wait_ready(6)
    revision = fleet.publish()
    [rollout] = create_rollouts_for_revision(
        revision.pk, actor=author, previous_revision_id=fleet.revision.pk
    )
    assert rollout.steps == ["canary", "100%"] and rollout.max_unavailable == "50%"

    reconcile_cluster(fleet.cluster.pk, time_budget_seconds=2)
    rollout.refresh_from_db()
    step1 = _step(rollout, 1)
    assert rollout.state == RolloutState.RUNNING and step1.state == StepState.AWAITING_APPROVAL
    assert sorted(p["name"] for p in step1.pods) == canaries and step1.expires_at is not None
    preview = preview_next_step(rollout.pk, actor=approver)
    assert preview is not None and preview.prepared and {p.name for p in preview.pods} == set(canaries)
    # Nothing moves before approval, however often the reconciler runs.
    for _ in range(3):
        reconcile_cluster(fleet.cluster.pk, time_budget_seconds=0.2)
    assert set(_images(fleet).values()) == {OLD_IMAGE} and not PodUpdate.objects.exists()
    with pytest.raises(NotPermitted, match="requires someone else"):
        approve_step(step1.pk, actor=author)

    approve_step(step1.pk, actor=approver, comment="canary looks fine")
    reconcile_until(fleet.cluster.pk, lambda: _step(rollout, 1).state == StepState.SUCCEEDED, what="step 1")
    images = _images(fleet)
    assert {images[name] for name in canaries} == {NEW_IMAGE}
    assert {image for name, image in images.items() if name not in canaries} == {OLD_IMAGE}
    # The step's passes planned with this process's cache for the rollout: it holds the pods listed.
    with engine.planning_caches.borrow(rollout.pk) as cache:
        assert cache is not None and len(cache) == 6

    reconcile_until(fleet.cluster.pk, lambda: _step(rollout, 2).state == StepState.AWAITING_APPROVAL)
    assert len(_step(rollout, 2).pods) == 4
    approve_step(_step(rollout, 2).pk, actor=approver)
    reconcile_until(
        fleet.cluster.pk, lambda: Rollout.objects.get(pk=rollout.pk).state == RolloutState.COMPLETED
    )
    assert set(_images(fleet).values()) == {NEW_IMAGE}
    for pod in fleet.live_pods():
        [status] = [s for s in pod["status"]["containerStatuses"] if s["name"] == "log-agent"]
        assert status["restartCount"] == 1 and status["ready"] is True
    rows = PodUpdate.objects.filter(rollout=rollout)
    assert rows.count() == 6
    assert set(rows.values_list("state", "outcome", "patch_attempts")) == {
        (PodUpdateState.DONE, PodUpdateOutcome.SUCCEEDED, 1)
    }
    assert set(rows.values_list("from_image", "to_image", "container")) == {
        (OLD_IMAGE, NEW_IMAGE, "log-agent")
    }
    assert transitions_of(rollout) == [
        (None, "", "pending"),
        (None, "pending", "running"),
        (1, "pending", "awaiting_approval"),
        (1, "awaiting_approval", "approved"),
        (1, "approved", "running"),
        (1, "running", "succeeded"),
        (2, "pending", "awaiting_approval"),
        (2, "awaiting_approval", "approved"),
        (2, "approved", "running"),
        (2, "running", "succeeded"),
        (None, "running", "completed"),
    ]
    approval_rows = list(_step(rollout, 1).approvals.values_list("actor_name", "decision", "comment"))
    assert approval_rows == [("approver", "approve", "canary looks fine")]


def _running_step(fleet: Any, author: Any, approver: Any, pods: int = 3) -> tuple[Rollout, RolloutStep]:
    fleet.create_pods(pods)
    fleet.wait_ready(pods)
    revision = fleet.publish()
    [rollout] = create_rollouts_for_revision(
        revision.pk, actor=author, previous_revision_id=fleet.revision.pk
    )
    reconcile_until(fleet.cluster.pk, lambda: _step(rollout, 1).state == StepState.AWAITING_APPROVAL)
    approve_step(_step(rollout, 1).pk, actor=approver)
    return rollout, _step(rollout, 1)


def test_crash_recovery_reads_the_pod_and_never_patches_twice(
    k8s: RunningCluster, k8s_namespace: str, author: Any, approver: Any
) -> None:
    """Rows left in ``patching`` by a killed worker: one whose patch landed goes to observing
    without a second patch; one whose patch did not land is patched once more (fresh
    precondition); then the rollout completes."""
    fleet = make_fleet(k8s, k8s_namespace, author=author, strategy={"maxUnavailable": 3})
    rollout, step = _running_step(fleet, author, approver)
    # Start the step (claims the rows) without patching anything yet.

    kube = __import__("clusters.kube", fromlist=["cached_kube_client"]).cached_kube_client(fleet.cluster)
    _Pass(fleet.cluster, kube, ReconcileReport(fleet.cluster.pk), 0, 0).start_step(
        Rollout.objects.get(pk=rollout.pk), _step(rollout, 1)
    )
    landed, lost, _ = sorted(PodUpdate.objects.filter(step=step), key=lambda row: row.pod_name)
    # "landed": the worker sent the patch and died before recording it.
    live = pods_by_name(fleet.live_pods())
    core = PassInputs(kube).planning_sidecarset(Rollout.objects.get(pk=rollout.pk))
    body = build_patch(
        core,
        live[landed.pod_name],
        revision_name="x",
        revision_hash=rollout.to_revision_hash,
        now=timezone.now(),
    )
    k8s.core.patch_namespaced_pod(landed.pod_name, k8s_namespace, body, _preload_content=False)
    PodUpdate.objects.filter(pk__in=[landed.pk, lost.pk]).update(
        state=PodUpdateState.PATCHING, patch_attempts=1, patching_at=timezone.now()
    )
    reconcile_until(
        fleet.cluster.pk, lambda: Rollout.objects.get(pk=rollout.pk).state == RolloutState.COMPLETED
    )
    landed.refresh_from_db()
    lost.refresh_from_db()
    assert (landed.outcome, landed.patch_attempts) == (PodUpdateOutcome.SUCCEEDED, 1)
    assert (lost.outcome, lost.patch_attempts) == (PodUpdateOutcome.SUCCEEDED, 2)
    for pod in fleet.live_pods():
        [status] = [s for s in pod["status"]["containerStatuses"] if s["name"] == "log-agent"]
        assert status["restartCount"] == 1


def test_conflict_rereads_and_replans(
    k8s: RunningCluster, k8s_namespace: str, author: Any, approver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pod changed after it was listed: the patch gets 409, the row goes back to claimed and
    the next pass patches it with a fresh resourceVersion."""
    fleet = make_fleet(k8s, k8s_namespace, author=author, strategy={"maxUnavailable": 1})
    rollout, step = _running_step(fleet, author, approver, pods=1)
    original = pass_inputs.fetch_pods
    calls = {"n": 0}

    def stale_list(kube: Any, core: Any) -> Any:
        pods, labels = original(kube, core)
        if calls["n"] == 0:  # someone labels the pod right after the list that starts the step
            k8s.core.patch_namespaced_pod(
                fleet.pods[0],
                k8s_namespace,
                {"metadata": {"labels": {"touched": "yes"}}},
                _preload_content=False,
            )
        calls["n"] += 1
        return pods, labels

    # the hub's own reading, not the Kubernetes API, is what is delayed
    monkeypatch.setattr(pass_inputs, "fetch_pods", stale_list)
    reconcile_until(fleet.cluster.pk, lambda: _step(rollout, 1).state == StepState.SUCCEEDED)
    [row] = PodUpdate.objects.filter(step=step)
    assert (row.outcome, row.conflicts, row.patch_attempts) == (PodUpdateOutcome.SUCCEEDED, 1, 1)


def test_updatestrategy_paused_holds_the_rollout(
    k8s: RunningCluster, k8s_namespace: str, author: Any, approver: Any
) -> None:
    fleet = make_fleet(k8s, k8s_namespace, author=author)
    fleet.create_pods(2)
    fleet.wait_ready(2)
    revision = fleet.publish()
    [rollout] = create_rollouts_for_revision(
        revision.pk, actor=author, previous_revision_id=fleet.revision.pk
    )
    fleet.publish(NEW_IMAGE, strategy={"paused": True})  # change kind "none": holds the rollout
    reconcile_cluster(fleet.cluster.pk, time_budget_seconds=0.5)
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.PENDING and rollout.reason.startswith("held")
    fleet.publish(NEW_IMAGE, strategy={"paused": False})
    reconcile_until(fleet.cluster.pk, lambda: _step(rollout, 1).state == StepState.AWAITING_APPROVAL)
    assert (
        preview_revision(revision.pk, actor=None, cluster_id=fleet.cluster.pk).counts["needs_recreate"] == 0
    )


def test_one_turn_starts_prepares_and_patches_an_auto_approved_step_from_one_list(
    k8s: RunningCluster, k8s_namespace: str, author: Any
) -> None:
    """A pass lists the cluster's pods once per turn and every stage works from that list: the
    first turn of a new rollout on an auto-approve cluster starts it, prepares its step, starts
    the step and patches every pod, with ONE pod LIST (observing needs later turns' lists)."""
    fleet = make_fleet(
        k8s,
        k8s_namespace,
        author=author,
        strategy={"maxUnavailable": "100%"},
        annotations={"rollouts.sidecarhub.io/steps": "100%"},
        cluster_settings={"rollout_auto_approve": True},
    )
    fleet.create_pods(4)
    fleet.wait_ready(4)
    revision = fleet.publish()
    [rollout] = create_rollouts_for_revision(
        revision.pk, actor=author, previous_revision_id=fleet.revision.pk
    )
    # budget 0: the pass ends after its first turn
    report = reconcile_cluster(fleet.cluster.pk, time_budget_seconds=0)
    assert (report.pod_lists, report.patched) == (1, 4), report
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.RUNNING and _step(rollout, 1).state == StepState.RUNNING
    assert set(PodUpdate.objects.filter(rollout=rollout).values_list("state", flat=True)) == {
        PodUpdateState.OBSERVING
    }
    reconcile_until(
        fleet.cluster.pk, lambda: Rollout.objects.get(pk=rollout.pk).state == RolloutState.COMPLETED
    )
    assert set(_images(fleet).values()) == {NEW_IMAGE}
