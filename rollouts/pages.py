"""What the console's rollout and release pages say, computed on the server (read-only).

- ``rollout_status``: one sentence saying what a rollout waits for or does now ("Waiting for
  approval of step 2", "Paused: <reason>", "Waiting for wave 1: ...", "Running step 2 of 3"),
  from the rollout row and its steps as they are stored (no Kubernetes call, so pages that poll
  stay cheap);
- ``image_changes``: the sidecar images a revision change swaps (from → to), per container;
- ``release_page``: one release (a published revision across clusters and waves, from
  ``rollouts.fleet``) with each rollout's progress over all its steps and its status sentence.

Admin views render these; they add no logic of their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.utils.text import capfirst

from rollouts import fleet
from rollouts.choices import TERMINAL_STEP_STATES, RolloutState, StepState
from rollouts.models import Rollout, RolloutStep
from rollouts.queries import Progress, progress_of, rollouts_with_progress
from rollouts.transitions import RolloutNotFound
from sidecarhub.models import SidecarSetRevision

__all__ = [
    "ImageChange",
    "ReleasePage",
    "ReleaseRollout",
    "annotated_rollout_status",
    "describe_rollout",
    "image_changes",
    "release_page",
    "rollout_status",
]

# Reasons the reconciler writes on a pending rollout that cannot start yet (``start_blocker``).
_WAIT_PREFIXES = ("waiting for", "held:")


@dataclass(frozen=True)
class ImageChange:
    """One sidecar container of a revision change: its image before and after (``None``: the
    container is not in that revision, or the revision was pruned)."""

    container: str
    from_image: str | None
    to_image: str | None

    @property
    def changed(self) -> bool:
        return self.from_image != self.to_image


def _images(revision: SidecarSetRevision | None) -> dict[str, str]:
    if revision is None:
        return {}
    return {container.name: container.image for _, _, container in revision.to_core().all_containers}


def image_changes(
    from_revision: SidecarSetRevision | None, to_revision: SidecarSetRevision | None
) -> tuple[ImageChange, ...]:
    """Per container (the target revision's order, then containers only the source has): the
    image before and after. Empty when both revisions are gone (pruned)."""
    before, after = _images(from_revision), _images(to_revision)
    names = [*after, *(name for name in before if name not in after)]
    return tuple(ImageChange(name, before.get(name), after.get(name)) for name in names)


def _current_step(steps: Sequence[RolloutStep]) -> RolloutStep | None:
    return next((step for step in steps if step.state not in TERMINAL_STEP_STATES), None)


def rollout_status(rollout: Rollout, steps: Iterable[RolloutStep]) -> str:
    """What the rollout waits for or does now, in one sentence (its current reason only: the
    stored ``reason`` of the state it is in, never a pause reason after a resume)."""
    ordered = sorted(steps, key=lambda step: step.ordinal)
    step = _current_step(ordered)
    return describe_rollout(
        rollout, step.ordinal if step else None, step.state if step else None, len(ordered)
    )


def annotated_rollout_status(rollout: Rollout) -> str:
    """``rollout_status`` of a row annotated by ``queries.rollouts_with_progress`` (no query)."""
    current: int | None = getattr(rollout, "current_step", None)
    state: str | None = getattr(rollout, "current_step_state", None)
    return describe_rollout(rollout, current, state, int(getattr(rollout, "steps_total", 0) or 0))


def describe_rollout(rollout: Rollout, current: int | None, current_state: str | None, total: int) -> str:
    """The sentence of ``rollout_status`` from the rollout row and its first unfinished step
    (``current``, ``current_state``; ``None`` when every step finished) of ``total`` steps."""
    state = rollout.state
    if state == RolloutState.PENDING:
        reason = rollout.reason.strip()
        if reason.lower().startswith(_WAIT_PREFIXES):
            return capfirst(reason)
        return f"Waiting to start (wave {rollout.wave}): the reconciler starts it on its next pass"
    if state == RolloutState.PAUSED:
        return _labelled("Paused", rollout.reason)
    if state == RolloutState.COMPLETED:
        if rollout.needs_recreate:
            return f"Completed: {rollout.needs_recreate} pods need recreate"
        return "Completed"
    if state in (RolloutState.ABORTED, RolloutState.FAILED):
        return _labelled("Aborted" if state == RolloutState.ABORTED else "Failed", rollout.reason)
    # running
    if rollout.abort_requested:
        return _intent("Aborting", rollout)
    if rollout.pause_requested:
        return _intent("Pausing", rollout)
    if current is None:
        return "Running: every step finished, completing"
    where = f"step {current} of {total}"
    if current_state == StepState.AWAITING_APPROVAL:
        return f"Waiting for approval of step {current}"
    if current_state == StepState.PENDING:
        return f"Preparing {where}: its pod list is computed from the cluster"
    if current_state == StepState.APPROVED:
        return f"Starting {where} (approved)"
    return f"Running {where}"


def _labelled(label: str, reason: str) -> str:
    """``Paused: <reason>``, or the reason alone when it says so already ("paused by ...")."""
    if not reason:
        return label
    if reason.lower().startswith(label.lower()):
        return capfirst(reason)
    return f"{label}: {reason}"


def _intent(label: str, rollout: Rollout) -> str:
    who = ""
    if rollout.intent_by:
        why = f": {rollout.intent_reason}" if rollout.intent_reason else ""
        who = f" (asked by {rollout.intent_by}{why})"
    return f"{label}{who}: the pod being patched finishes first"


# --- one release ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReleaseRollout:
    """One cluster of a release page: the fleet's summary plus progress and status sentence."""

    member: fleet.ReleaseCluster
    wave: int
    progress: Progress
    status: str
    rollback_status: str


@dataclass(frozen=True)
class ReleasePage:
    """One published revision across its clusters and waves, with totals over all of them."""

    sidecarset_id: int
    sidecarset: str
    release: fleet.Release
    images: tuple[ImageChange, ...]
    previous_revision: int | None
    rollouts: tuple[ReleaseRollout, ...]
    progress: Progress


def release_page(sidecarset_id: int, revision: int) -> ReleasePage:
    """The release of revision ``revision`` of the SidecarSet; ``RolloutNotFound`` when that
    revision has no release (no rollout was created for it). A fixed number of queries."""
    found = fleet.releases_of(sidecarset_id, revision=revision)
    if not found.releases:
        raise RolloutNotFound("release", revision)
    release = found.releases[0]
    members = [(wave.wave, member) for wave in release.waves for member in wave.clusters]
    ids = [member.rollout.id for _, member in members] + [
        member.rollback.id for _, member in members if member.rollback is not None
    ]
    rows = {
        row.pk: row
        for row in rollouts_with_progress(Rollout.objects.filter(pk__in=ids)).prefetch_related(
            "rollout_steps"
        )
    }
    lines = []
    for wave, member in members:
        row = rows[member.rollout.id]
        rollback = rows.get(member.rollback.id) if member.rollback is not None else None
        lines.append(
            ReleaseRollout(
                member=member,
                wave=wave,
                progress=progress_of(row),
                status=rollout_status(row, row.rollout_steps.all()),
                rollback_status=rollout_status(rollback, rollback.rollout_steps.all()) if rollback else "",
            )
        )
    revisions = {
        rev.number: rev
        for rev in SidecarSetRevision.objects.filter(sidecarset_id=sidecarset_id, number__lte=revision)
        .order_by("-number")
        .only("number", "document", "sidecarset_id")[:2]
    }
    previous = max((number for number in revisions if number < revision), default=None)
    total = Progress(*(sum(getattr(line.progress, name) for line in lines) for name in _PROGRESS_FIELDS))
    return ReleasePage(
        sidecarset_id=sidecarset_id,
        sidecarset=found.sidecarset,
        release=release,
        images=image_changes(revisions.get(previous) if previous else None, revisions.get(revision)),
        previous_revision=previous,
        rollouts=tuple(lines),
        progress=total,
    )


_PROGRESS_FIELDS = ("total", "updated", "failed", "skipped", "pod_gone", "in_flight")
