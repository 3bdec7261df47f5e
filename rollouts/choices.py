"""States of rollouts, their steps and their per-pod updates, with explicit transition tables.

Our words, not Kubernetes': a pod's phase and readiness (Kubernetes) are read by the engine and
kept apart from ``PodUpdateOutcome`` (what the hub concluded about one in-place update).
"""

from __future__ import annotations

from collections.abc import Mapping

from django.db import models

__all__ = [
    "ACTIVE_ROLLOUT_STATES",
    "ACTIVE_STEP_STATES",
    "APPROVABLE_STEP_STATES",
    "OPEN_POD_UPDATE_STATES",
    "PATCHED_POD_UPDATE_STATES",
    "ROLLOUT_TRANSITIONS",
    "STEP_TRANSITIONS",
    "TERMINAL_ROLLOUT_STATES",
    "TERMINAL_STEP_STATES",
    "UPDATED_OUTCOMES",
    "ApprovalDecision",
    "PodUpdateOutcome",
    "PodUpdateState",
    "ReleaseStage",
    "RolloutKind",
    "RolloutOutcome",
    "RolloutState",
    "StepState",
]


class RolloutState(models.TextChoices):
    """Where one rollout (one revision change in one cluster) stands."""

    PENDING = "pending", "Pending"  # created; waits for its wave (or for updateStrategy.paused to clear)
    RUNNING = "running", "Running"  # steps are prepared, approved and executed one after another
    PAUSED = "paused", "Paused"  # stopped between pods by a person or by a failure/deadline; resumable
    COMPLETED = "completed", "Completed"  # every step succeeded
    ABORTED = "aborted", "Aborted"  # stopped for good by a person, or superseded by a newer revision
    FAILED = "failed", "Failed"  # cannot go on (its revision or cluster is gone); nothing more happens


ACTIVE_ROLLOUT_STATES = frozenset({RolloutState.PENDING, RolloutState.RUNNING, RolloutState.PAUSED})
TERMINAL_ROLLOUT_STATES = frozenset({RolloutState.COMPLETED, RolloutState.ABORTED, RolloutState.FAILED})

ROLLOUT_TRANSITIONS: Mapping[str, frozenset[str]] = {
    RolloutState.PENDING: frozenset(
        {RolloutState.RUNNING, RolloutState.PAUSED, RolloutState.ABORTED, RolloutState.FAILED}
    ),
    RolloutState.RUNNING: frozenset(
        {RolloutState.PAUSED, RolloutState.COMPLETED, RolloutState.ABORTED, RolloutState.FAILED}
    ),
    # back to pending when it was paused before its wave started
    RolloutState.PAUSED: frozenset(
        {RolloutState.RUNNING, RolloutState.PENDING, RolloutState.ABORTED, RolloutState.FAILED}
    ),
    RolloutState.COMPLETED: frozenset(),
    RolloutState.ABORTED: frozenset(),
    RolloutState.FAILED: frozenset(),
}


class RolloutOutcome(models.TextChoices):
    """How a completed rollout ended (decision 18): never "succeeded" while pods still run the
    definition it replaced."""

    SUCCEEDED = "succeeded", "Succeeded"  # every pod runs the revision
    NEEDS_RECREATE = "needs_recreate", "Completed, pods need recreate"  # some cannot take it in place


class StepState(models.TextChoices):
    """Where one step (batch) of a rollout stands (decision 13)."""

    PENDING = "pending", "Pending"  # not prepared yet: its pod list is computed when its turn comes
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"  # pod list fixed, shown to approvers
    APPROVED = "approved", "Approved"  # approved; the engine starts it on its next pass
    RUNNING = "running", "Running"  # the engine patches and observes exactly the approved pods
    PAUSED = "paused", "Paused"  # its rollout is paused (intent, failure threshold or progress deadline)
    SUCCEEDED = "succeeded", "Succeeded"  # every approved pod has a final PodUpdate outcome
    FAILED = "failed", "Failed"  # stopped for good (rollout aborted or failed while it ran)
    DENIED = "denied", "Denied"  # an approver said no; resuming the rollout prepares it again
    EXPIRED = "expired", "Expired"  # nobody approved in time; resuming the rollout prepares it again
    CANCELLED = "cancelled", "Cancelled"  # never ran: its rollout ended before its turn


ACTIVE_STEP_STATES = frozenset({StepState.APPROVED, StepState.RUNNING})
APPROVABLE_STEP_STATES = frozenset({StepState.AWAITING_APPROVAL})
TERMINAL_STEP_STATES = frozenset(
    {StepState.SUCCEEDED, StepState.FAILED, StepState.DENIED, StepState.EXPIRED, StepState.CANCELLED}
)

STEP_TRANSITIONS: Mapping[str, frozenset[str]] = {
    StepState.PENDING: frozenset(
        {StepState.AWAITING_APPROVAL, StepState.APPROVED, StepState.SUCCEEDED, StepState.CANCELLED}
    ),
    StepState.AWAITING_APPROVAL: frozenset(
        {StepState.APPROVED, StepState.DENIED, StepState.EXPIRED, StepState.CANCELLED}
    ),
    StepState.APPROVED: frozenset({StepState.RUNNING, StepState.PAUSED, StepState.CANCELLED}),
    StepState.RUNNING: frozenset({StepState.PAUSED, StepState.SUCCEEDED, StepState.FAILED}),
    StepState.PAUSED: frozenset({StepState.RUNNING, StepState.FAILED}),
    StepState.SUCCEEDED: frozenset(),
    StepState.FAILED: frozenset(),
    # A denied or expired step is prepared again (a fresh pod list) when its rollout resumes.
    StepState.DENIED: frozenset({StepState.PENDING}),
    StepState.EXPIRED: frozenset({StepState.PENDING}),
    StepState.CANCELLED: frozenset(),
}


class PodUpdateState(models.TextChoices):
    """Progress of one pod's in-place update (internal; the result is ``PodUpdateOutcome``)."""

    CLAIMED = "claimed", "Claimed"  # in an approved, running step; not patched yet
    PATCHING = "patching", "Patching"  # written BEFORE the patch: after a crash, read the pod, never re-patch
    OBSERVING = "observing", "Observing"  # patch accepted; waiting for the new image to run and be ready
    # Hot upgrade only (sidecarhub.sidecarset.hot_upgrade), once ``observing`` saw the new twin ready.
    # switching: written BEFORE the patch that points the working annotation at the new twin;
    # resetting: written BEFORE the patch that puts the old twin on the empty image, then observed.
    SWITCHING = "switching", "Switching"
    RESETTING = "resetting", "Resetting"
    DONE = "done", "Done"  # final: ``outcome`` says how it ended


OPEN_POD_UPDATE_STATES = frozenset(
    {
        PodUpdateState.CLAIMED,
        PodUpdateState.PATCHING,
        PodUpdateState.OBSERVING,
        PodUpdateState.SWITCHING,
        PodUpdateState.RESETTING,
    }
)
# Open rows whose pod may already carry a patch: resolved and observed by READING the pod.
PATCHED_POD_UPDATE_STATES = frozenset(OPEN_POD_UPDATE_STATES - {PodUpdateState.CLAIMED})

POD_UPDATE_TRANSITIONS: Mapping[str, frozenset[str]] = {
    PodUpdateState.CLAIMED: frozenset({PodUpdateState.PATCHING, PodUpdateState.DONE}),
    # back to claimed after a resourceVersion conflict: the next pass re-plans it
    PodUpdateState.PATCHING: frozenset(
        {PodUpdateState.CLAIMED, PodUpdateState.OBSERVING, PodUpdateState.DONE}
    ),
    PodUpdateState.OBSERVING: frozenset(
        {PodUpdateState.SWITCHING, PodUpdateState.RESETTING, PodUpdateState.DONE}
    ),
    # a hot row goes observing → switching → resetting → done (reset only, when nothing was to
    # switch); switching → switching and resetting → resetting write the same intent again when,
    # after a crash or a 409, the pod as read shows that the write did not land
    PodUpdateState.SWITCHING: frozenset(
        {PodUpdateState.SWITCHING, PodUpdateState.RESETTING, PodUpdateState.DONE}
    ),
    PodUpdateState.RESETTING: frozenset({PodUpdateState.RESETTING, PodUpdateState.DONE}),
    PodUpdateState.DONE: frozenset(),
}


class PodUpdateOutcome(models.TextChoices):
    """How one pod's in-place update ended."""

    SUCCEEDED = "succeeded", "Succeeded"  # the new image runs (status image/imageID) and the pod is ready
    FAILED = "failed", "Failed"  # image pull error, crash loop, or the apiserver refused the patch
    TIMED_OUT = "timed_out", "Timed out"  # not running-and-ready within the per-pod timeout
    POD_GONE = "pod_gone", "Pod gone"  # deleted (or recreated under a new uid) before it finished
    SKIPPED = "skipped", "Skipped"  # not patched: no longer needs it, needs recreate, or the rollout ended
    # restart rollouts only: the pod was replaced by its workload's restart (it is gone, and the
    # workload's own rollout completed); the row keeps the old pod's name and uid
    RECREATED = "recreated", "Recreated"


FAILED_OUTCOMES = frozenset({PodUpdateOutcome.FAILED, PodUpdateOutcome.TIMED_OUT})
# A pod updated in place, or replaced by its workload's restart (decision 18).
UPDATED_OUTCOMES = frozenset({PodUpdateOutcome.SUCCEEDED, PodUpdateOutcome.RECREATED})


class ApprovalDecision(models.TextChoices):
    """What an approver decided about a prepared step."""

    APPROVE = "approve", "Approve"  # the step may run on exactly its prepared pod list
    DENY = "deny", "Deny"  # the step must not run; the rollout pauses


class RolloutKind(models.TextChoices):
    """Why a rollout exists."""

    UPDATE = "update", "Update"  # a published revision that changes only sidecar images
    ROLLBACK = "rollback", "Rollback"  # back to an earlier revision (decision 16), same steps and approvals
    # restart of the workloads owning pods that need recreate (decision 18): its steps list
    # workloads (``RolloutStep.workloads``), approved as any step; nothing is patched in place
    RESTART = "restart", "Restart"


class ReleaseStage(models.TextChoices):
    """Where a release (one published revision across its target clusters) stands, as the fleet
    view reports it (``rollouts.fleet.releases_of``); derived from its rollouts, never stored."""

    WAITING = "waiting", "Waiting"  # the first unfinished wave has not started (its turn, a hold, paused)
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"  # a step of that wave awaits approval
    RUNNING = "running", "Running"  # that wave's steps are running
    PAUSED = "paused", "Paused"  # a rollout of that wave is paused (a person, failures or a deadline)
    HELD = "held", "Held"  # only rollouts in held clusters are left
    COMPLETED = "completed", "Completed"  # every cluster serves it and every step succeeded
    NEEDS_RECREATE = (
        "needs_recreate",
        "Completed, pods need recreate",
    )  # completed; pods still run the old one
    ROLLED_BACK = "rolled_back", "Rolled back"  # at least one cluster was rolled back (decision 16)
    SUPERSEDED = "superseded", "Superseded"  # a newer revision was published before it finished
    ABORTED = "aborted", "Aborted"  # stopped for good by a person in at least one cluster
    FAILED = "failed", "Failed"  # could not go on in at least one cluster
