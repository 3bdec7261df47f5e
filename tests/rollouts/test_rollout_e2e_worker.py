"""End to end on the sandbox with a real Celery worker: publish → rollout → approved steps
patched in place by the worker, checked from an independent watch of the pods; a bad image
pauses the rollout and a rollback restores the old image; an env change patches nothing."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest

from clusters.models import SidecarSetPlacement
from clusters.push import write_back_status
from rollouts.choices import (
    PodUpdateOutcome,
    PodUpdateState,
    RolloutKind,
    RolloutOutcome,
    RolloutState,
    StepState,
)
from rollouts.models import PodUpdate, Rollout, RolloutStep
from rollouts.previews import preview_revision
from rollouts.services import approve_step, rollback_rollout
from sandbox.testing import RunningCluster, wait_for
from tests.clusters.conftest import read_resource
from tests.rollouts.helpers import (
    NEW_IMAGE,
    OLD_IMAGE,
    PodWatcher,
    make_fleet,
    make_user,
    pods_by_name,
    sidecar_image,
)

pytestmark = [pytest.mark.k8s, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _rollout(name: str) -> Rollout:
    return wait_for(
        lambda: Rollout.objects.filter(sidecarset_name=name, kind=RolloutKind.UPDATE).first(),
        timeout_seconds=30,
        what="the rollout created on publish",
    )


def _step_in(rollout: Rollout, ordinal: int, *states: str, timeout: float = 60) -> RolloutStep:
    return wait_for(
        lambda: RolloutStep.objects.filter(rollout=rollout, ordinal=ordinal, state__in=states).first(),
        timeout_seconds=timeout,
        interval_seconds=0.1,
        what=f"step {ordinal} in {states}",
    )


def _state(rollout: Rollout, *states: str, timeout: float = 90) -> Rollout:
    try:
        return wait_for(
            lambda: Rollout.objects.filter(pk=rollout.pk, state__in=states).first(),
            timeout_seconds=timeout,
            interval_seconds=0.2,
            what=f"rollout {rollout.pk} {states}",
        )
    except AssertionError as error:
        raise AssertionError(f"{error}\n{_describe(rollout.pk)}") from None


def _describe(rollout_id: int) -> str:
    """Where a rollout stands, for a failure message."""
    rollout = Rollout.objects.get(pk=rollout_id)
    lines = [f"rollout {rollout.pk}: {rollout.state} ({rollout.reason}) {rollout.explanation}"]
    for step in rollout.rollout_steps.order_by("ordinal"):
        lines.append(f"  step {step.ordinal}: {step.state} heartbeat {step.heartbeat_at} {step.explanation}")
    for row in PodUpdate.objects.filter(rollout=rollout).order_by("pk"):
        lines.append(f"  {row.pod_name}: {row.state} {row.outcome} {row.error}")
    return "\n".join(lines)


def test_forty_pods_in_three_approved_steps_within_max_unavailable(
    k8s: RunningCluster, k8s_namespace: str, celery_worker_process: subprocess.Popen[bytes]
) -> None:
    author = make_user("author", "rollouts.approve_rolloutstep")
    approver = make_user("approver", "rollouts.approve_rolloutstep")
    fleet = make_fleet(
        k8s,
        k8s_namespace,
        author=author,
        strategy={"selector": {"matchLabels": {"canary": "true"}}, "maxUnavailable": "20%"},
        annotations={"rollouts.sidecarhub.io/steps": "canary,50%,100%"},
    )
    canaries = set(fleet.create_pods(6, labels={"canary": "true"}, prefix="canary"))
    fleet.create_pods(34)
    fleet.wait_ready(40)
    k8s.knobs.ready_delay_seconds[NEW_IMAGE] = 1.0  # each updated pod is unavailable for a moment
    budget = 8  # ceil(20% of 40)
    with PodWatcher(k8s, k8s_namespace, NEW_IMAGE) as watcher:
        fleet.publish()
        rollout = _rollout(fleet.name)
        assert rollout.steps == ["canary", "50%", "100%"] and rollout.max_unavailable == "20%"
        timings = []
        expected_updated = {1: 6, 2: 20, 3: 40}
        for ordinal in (1, 2, 3):
            step = _step_in(rollout, ordinal, StepState.AWAITING_APPROVAL)
            time.sleep(1.0)  # the worker keeps reconciling; nothing may move before approval
            updated_before = sum(1 for spec, _, _ in watcher.pods.values() if spec == NEW_IMAGE)
            assert updated_before == expected_updated[ordinal] - step.pod_count
            assert RolloutStep.objects.get(pk=step.pk).state == StepState.AWAITING_APPROVAL
            if ordinal == 1:
                assert {p["name"] for p in step.pods} == canaries and watcher.first_new_at is None
            approve_step(step.pk, actor=approver, comment=f"step {ordinal}")
            started = time.monotonic()
            _step_in(rollout, ordinal, StepState.SUCCEEDED, timeout=90)
            timings.append((step.pod_count, time.monotonic() - started))
            assert (
                sum(1 for spec, _, _ in watcher.pods.values() if spec == NEW_IMAGE)
                == expected_updated[ordinal]
            )
        _state(rollout, RolloutState.COMPLETED)
    pods = pods_by_name(fleet.live_pods())
    assert {sidecar_image(pod) for pod in pods.values()} == {NEW_IMAGE}
    assert watcher.max_unavailable <= budget, watcher.max_unavailable
    assert watcher.max_unavailable > 0  # the watch did see updates in flight
    assert set(watcher.spec_changes.values()) == {1} and len(watcher.spec_changes) == 40
    assert set(watcher.hash_changes.values()) == {1}
    for pod in pods.values():
        [status] = [s for s in pod["status"]["containerStatuses"] if s["name"] == "log-agent"]
        assert status["restartCount"] == 1
    rows = PodUpdate.objects.filter(rollout=rollout)
    assert rows.count() == 40
    assert set(rows.values_list("state", "outcome", "patch_attempts")) == {
        (PodUpdateState.DONE, PodUpdateOutcome.SUCCEEDED, 1)
    }
    patching_at = [at for at in rows.values_list("patching_at", flat=True) if at is not None]
    assert len(patching_at) == 40
    first = min(patching_at)
    print(
        f"\n40 pods, 3 steps: max unavailable seen by the watch {watcher.max_unavailable}/{budget}; "
        + ", ".join(f"step of {n} pods {seconds:.1f}s ({n / seconds:.1f} pods/s)" for n, seconds in timings)
        + f"; first patch {first:%H:%M:%S}"
    )


def test_bad_image_pauses_then_rollback_restores(
    k8s: RunningCluster, k8s_namespace: str, celery_worker_process: subprocess.Popen[bytes]
) -> None:
    approver = make_user("approver", "rollouts.approve_rolloutstep", "rollouts.operate_rollout")
    fleet = make_fleet(k8s, k8s_namespace, strategy={"maxUnavailable": 2})
    fleet.create_pods(6)
    fleet.wait_ready(6)
    k8s.knobs.pull_failures.add("log-agent:bad*")
    fleet.publish("log-agent:bad-1")
    rollout = _rollout(fleet.name)
    approve_step(_step_in(rollout, 1, StepState.AWAITING_APPROVAL).pk, actor=approver)
    paused = _state(rollout, RolloutState.PAUSED)
    assert "pod updates failed (threshold 0)" in paused.reason
    assert "ImagePullBackOff" in paused.explanation and "resume" in paused.explanation
    failed = PodUpdate.objects.filter(rollout=rollout, outcome=PodUpdateOutcome.FAILED)
    # The first failure pauses the rollout; the other patched pod is still observed while
    # paused and is recorded failed a moment later.
    wait_for(lambda: failed.count() == 2, timeout_seconds=30, what="both patched pods recorded failed")
    assert all("ImagePullBackOff" in row.error for row in failed)
    # maxUnavailable 2: the other four were never patched.
    assert PodUpdate.objects.filter(rollout=rollout, state=PodUpdateState.CLAIMED).count() == 4
    broken = set(failed.values_list("pod_name", flat=True))
    images = {name: sidecar_image(pod) for name, pod in pods_by_name(fleet.live_pods()).items()}
    assert {images[name] for name in broken} == {"log-agent:bad-1"}

    operator = make_user("operator", "rollouts.operate_rollout")
    back = rollback_rollout(
        rollout.pk, actor=operator, reason="bad image"
    )  # its author may not approve its steps
    assert Rollout.objects.get(pk=rollout.pk).state == RolloutState.ABORTED
    assert (back.kind, back.from_revision_number, back.to_revision_number) == (RolloutKind.ROLLBACK, 2, 1)
    step = _step_in(back, 1, StepState.AWAITING_APPROVAL)
    assert {p["name"] for p in step.pods} == broken  # only the pods that were updated
    approve_step(step.pk, actor=approver)
    _state(back, RolloutState.COMPLETED)
    pods = pods_by_name(fleet.live_pods())
    assert {sidecar_image(pod) for pod in pods.values()} == {OLD_IMAGE}
    for name, pod in pods.items():
        [status] = [s for s in pod["status"]["containerStatuses"] if s["name"] == "log-agent"]
        assert status["image"] == OLD_IMAGE and status["ready"] is True
        assert status["restartCount"] == (1 if name in broken else 0)  # untouched pods never restarted
    skipped = PodUpdate.objects.filter(rollout=rollout, outcome=PodUpdateOutcome.SKIPPED).count()
    assert skipped == 4


def test_env_change_patches_nothing_and_reports_needs_recreate(
    k8s: RunningCluster, k8s_namespace: str, celery_worker_process: subprocess.Popen[bytes], approver: Any
) -> None:
    """A non-image change is a release too (decision 17): one gate step, approved like any
    other, no pod patched; the rollout completes saying how many pods need recreate, never
    "every step succeeded"; the cluster serves the new revision only after the approval."""
    fleet = make_fleet(k8s, k8s_namespace)
    fleet.create_pods(5)
    fleet.wait_ready(5)
    before = {name: pod["metadata"]["generation"] for name, pod in pods_by_name(fleet.live_pods()).items()}
    revision = fleet.publish(NEW_IMAGE, env=[{"name": "LOG_LEVEL", "value": "debug"}])
    rollout: Any = wait_for(
        lambda: Rollout.objects.filter(sidecarset_name=fleet.name, to_revision=revision).first(),
        timeout_seconds=30,
        what="the release's rollout",
    )
    assert not rollout.in_place and rollout.steps == ["serve"]
    step: Any = wait_for(
        lambda: RolloutStep.objects.filter(rollout=rollout, state=StepState.AWAITING_APPROVAL).first(),
        timeout_seconds=30,
        what="the gate awaiting approval",
    )
    assert (step.pod_count, step.needs_recreate_count, len(step.needs_recreate)) == (0, 5, 5)
    placement = SidecarSetPlacement.objects.get(sidecarset_name=fleet.name, cluster=fleet.cluster)
    assert placement.serving_revision_id == fleet.revision.pk  # not served before the approval
    preview: Any = preview_revision(revision.pk, actor=None, cluster_id=fleet.cluster.pk)
    assert len(preview.needs_recreate) == 5 and not preview.in_place
    assert all("other than the image" in pod.reason for pod in preview.needs_recreate)
    assert preview.counts["needs_recreate"] == 5

    approve_step(step.pk, actor=approver, comment="new pods get debug logging")
    placement.refresh_from_db()
    assert placement.serving_revision_id == revision.pk  # the gate opened with the approval
    wait_for(
        lambda: Rollout.objects.get(pk=rollout.pk).state == RolloutState.COMPLETED,
        timeout_seconds=30,
        what="the rollout completed",
    )
    rollout.refresh_from_db()
    assert rollout.reason.startswith("completed; 5 pods need recreate") and "every step" not in rollout.reason
    assert (rollout.outcome, rollout.needs_recreate) == (RolloutOutcome.NEEDS_RECREATE, 5)
    assert not PodUpdate.objects.filter(rollout=rollout).exists()
    # Kruise's pod condition, written by the status round once the cluster runs revision 2.
    wait_for(
        lambda: SidecarSetPlacement.objects.get(pk=placement.pk).applied_revision_id == revision.pk,
        timeout_seconds=30,
        what="revision 2 pushed",
    )
    assert write_back_status(fleet.cluster.pk).conditions_written == 5
    for pod in fleet.live_pods():
        [condition] = [c for c in pod["status"]["conditions"] if c["type"] == "SidecarSetUpgradable"]
        assert (condition["status"], condition["reason"]) == ("False", "UpdateImmutableField")
        assert json.loads(condition["message"]) == {fleet.name: False}
    assert write_back_status(fleet.cluster.pk).conditions_written == 0  # written once, not every round
    resource = read_resource(k8s, fleet.name)
    assert resource is not None
    status = resource["status"]
    assert status["servingRevision"] == revision.name  # the custom resource says what is served
    assert (status["hub"]["rollout"]["outcome"], status["hub"]["rollout"]["needsRecreate"]) == (
        "needs_recreate",
        5,
    )
    after = {name: pod["metadata"]["generation"] for name, pod in pods_by_name(fleet.live_pods()).items()}
    assert after == before  # no pod's spec was touched (the condition is status)
