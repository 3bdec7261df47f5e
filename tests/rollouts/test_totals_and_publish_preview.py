"""Against the sandbox apiserver (real pods, the simulator as kubelet): the publish preview counts
the running pods in place vs needing recreate with the rollout's own rules, and a rollout's
progress total covers every step from its first preparation (issue 16: "1/3 updated" for a
6-pod rollout was wrong)."""

from __future__ import annotations

from typing import Any

import pytest

from rollouts.choices import StepState
from rollouts.models import Rollout, RolloutStep
from rollouts.previews import preview_publish
from rollouts.queries import progress_of, rollouts_with_progress
from rollouts.reconciler import reconcile_cluster
from rollouts.services import approve_step, create_rollouts_for_revision
from sandbox.testing import RunningCluster
from sidecarhub.models import SidecarSet as SidecarSetRow
from sidecarhub.services import update_sidecarset
from tests.rollouts.helpers import NEW_IMAGE, document, make_fleet, reconcile_until

pytestmark = [pytest.mark.k8s, pytest.mark.django_db]

STEPS = {"rollouts.sidecarhub.io/steps": "1,50%,100%"}


def _total(rollout: Rollout) -> tuple[int, int]:
    progress = progress_of(rollouts_with_progress(Rollout.objects.filter(pk=rollout.pk)).get())
    return progress.updated, progress.total


def test_publish_preview_and_totals_over_every_step(
    k8s: RunningCluster, k8s_namespace: str, author: Any, approver: Any
) -> None:
    fleet = make_fleet(k8s, k8s_namespace, author=author, annotations=STEPS)
    fleet.create_pods(6)
    fleet.wait_ready(6)
    sidecarset_id = SidecarSetRow.objects.values_list("pk", flat=True).get(name=fleet.name)

    # An unpublished images-only change: every pod can take it in place, in three steps.
    update_sidecarset(
        fleet.name,
        source=document(fleet.name, NEW_IMAGE, annotations=STEPS),
        actor=author,
        expected_version=None,
    )
    [cluster] = preview_publish(sidecarset_id, actor=author).clusters
    assert (cluster.cluster, cluster.creates_rollout, cluster.in_place) == (fleet.cluster.name, True, True)
    assert cluster.steps == ("1", "50%", "100%") and cluster.serving_revision == 1
    assert (cluster.pods_in_place, cluster.pods_need_recreate, cluster.pods_error) == (6, 0, "")

    # A change beyond images: only a gate, and every running pod needs recreate.
    env = [{"name": "LEVEL", "value": "debug"}]
    update_sidecarset(
        fleet.name,
        source=document(fleet.name, NEW_IMAGE, env=env, annotations=STEPS),
        actor=author,
        expected_version=None,
    )
    [gate] = preview_publish(sidecarset_id, actor=author).clusters
    assert (gate.in_place, gate.steps, gate.pods_in_place, gate.pods_need_recreate) == (
        False,
        ("serve",),
        0,
        6,
    )
    assert sorted(pod.name for pod in gate.needs_recreate) == sorted(fleet.pods)
    assert not Rollout.objects.filter(sidecarset_id=sidecarset_id).exists()  # previews write nothing

    # Published (images only): step 1 holds 1 pod, yet the total is the rollout's 6 pods.
    revision = fleet.publish()
    [rollout] = create_rollouts_for_revision(
        revision.pk, actor=author, previous_revision_id=fleet.revision.pk
    )
    assert [str(step) for step in rollout.steps] == list(cluster.steps)  # what the preview said
    reconcile_cluster(fleet.cluster.pk, time_budget_seconds=2)
    step1 = RolloutStep.objects.get(rollout=rollout, ordinal=1)
    assert step1.state == StepState.AWAITING_APPROVAL and step1.pod_count == 1
    assert _total(rollout) == (0, 6)

    approve_step(step1.pk, actor=approver)
    step2 = RolloutStep.objects.filter(rollout=rollout, ordinal=2)
    reconcile_until(
        fleet.cluster.pk, lambda: step2.get().state == StepState.AWAITING_APPROVAL, what="step 2 prepared"
    )
    assert step2.get().pod_count == 2  # 50% of 6 = 3 updated, one already is
    assert _total(rollout) == (1, 6)
