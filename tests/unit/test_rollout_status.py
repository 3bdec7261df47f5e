"""``rollouts.pages``: the sentence a rollout page shows for what a rollout waits for or does, and
the image change of two revisions. Pure: unsaved model rows, no database."""

from __future__ import annotations

from typing import Any

import pytest

from rollouts.choices import RolloutState, StepState
from rollouts.models import Rollout, RolloutStep
from rollouts.pages import ImageChange, annotated_rollout_status, image_changes, rollout_status
from sidecarhub.models import SidecarSetRevision


def _rollout(state: str, reason: str = "", **fields: Any) -> Rollout:
    return Rollout(state=state, reason=reason, wave=fields.pop("wave", 0), **fields)


def _steps(*states: str) -> list[RolloutStep]:
    return [RolloutStep(ordinal=position + 1, state=state) for position, state in enumerate(states)]


@pytest.mark.parametrize(
    ("rollout", "steps", "expected"),
    [
        (
            _rollout(RolloutState.RUNNING),
            _steps(StepState.SUCCEEDED, StepState.AWAITING_APPROVAL, StepState.PENDING),
            "Waiting for approval of step 2",
        ),
        (
            _rollout(RolloutState.RUNNING),
            _steps(StepState.SUCCEEDED, StepState.PENDING, StepState.PENDING),
            "Preparing step 2 of 3: its pod list is computed from the cluster",
        ),
        (_rollout(RolloutState.RUNNING), _steps(StepState.RUNNING, StepState.PENDING), "Running step 1 of 2"),
        (
            _rollout(RolloutState.RUNNING, pause_requested=True, intent_by="bob", intent_reason="lunch"),
            _steps(StepState.RUNNING),
            "Pausing (asked by bob: lunch): the pod being patched finishes first",
        ),
        (
            _rollout(RolloutState.PAUSED, "step 1: 2 pod updates failed (threshold 0)"),
            _steps(StepState.PAUSED),
            "Paused: step 1: 2 pod updates failed (threshold 0)",
        ),
        (_rollout(RolloutState.PAUSED, "paused by alice: freeze"), _steps(), "Paused by alice: freeze"),
        (
            _rollout(
                RolloutState.PENDING, "waiting for wave 1: the rollout in cluster eu is running", wave=2
            ),
            _steps(StepState.PENDING),
            "Waiting for wave 1: the rollout in cluster eu is running",
        ),
        (
            _rollout(RolloutState.PENDING, "held: cluster eu is held by ops", wave=0),
            _steps(StepState.PENDING),
            "Held: cluster eu is held by ops",
        ),
        (
            _rollout(RolloutState.PENDING, "revision 2 changes only sidecar images", wave=1),
            _steps(StepState.PENDING),
            "Waiting to start (wave 1): the reconciler starts it on its next pass",
        ),
        (
            _rollout(RolloutState.COMPLETED, needs_recreate=3),
            _steps(StepState.SUCCEEDED),
            "Completed: 3 pods need recreate",
        ),
        (
            _rollout(RolloutState.ABORTED, "superseded by revision 4"),
            _steps(),
            "Aborted: superseded by revision 4",
        ),
    ],
)
def test_rollout_status_says_what_it_waits_for(
    rollout: Rollout, steps: list[RolloutStep], expected: str
) -> None:
    assert rollout_status(rollout, steps) == expected


def test_the_changelist_sentence_from_annotations_is_the_same() -> None:
    """A changelist row has no steps loaded: ``rollouts_with_progress``'s annotations say the same."""
    rollout = _rollout(RolloutState.RUNNING)
    steps = _steps(StepState.SUCCEEDED, StepState.AWAITING_APPROVAL, StepState.PENDING)
    rollout.current_step, rollout.current_step_state, rollout.steps_total = 2, StepState.AWAITING_APPROVAL, 3  # type: ignore[attr-defined]
    assert (
        annotated_rollout_status(rollout)
        == rollout_status(rollout, steps)
        == "Waiting for approval of step 2"
    )
    rollout.current_step, rollout.current_step_state = 3, StepState.PENDING  # type: ignore[attr-defined]
    assert (
        annotated_rollout_status(rollout)
        == "Preparing step 3 of 3: its pod list is computed from the cluster"
    )


def _revision(**images: str) -> SidecarSetRevision:
    containers = [{"name": name.replace("_", "-"), "image": image} for name, image in images.items()]
    spec = {"selector": {"matchLabels": {"app": "a"}}, "containers": containers}
    return SidecarSetRevision(
        document={
            "apiVersion": "apps.kruise.io/v1beta1",
            "kind": "SidecarSet",
            "metadata": {"name": "s"},
            "spec": spec,
        }
    )


def test_image_changes_per_container() -> None:
    before = _revision(log_agent="agent:1", proxy="envoy:1", old="gone:1")
    after = _revision(log_agent="agent:2", proxy="envoy:1")
    assert image_changes(before, after) == (
        ImageChange("log-agent", "agent:1", "agent:2"),
        ImageChange("proxy", "envoy:1", "envoy:1"),
        ImageChange("old", "gone:1", None),
    )
    assert [change.changed for change in image_changes(before, after)] == [True, False, True]
    assert image_changes(None, after)[0] == ImageChange("log-agent", None, "agent:2")
    assert image_changes(None, None) == ()
