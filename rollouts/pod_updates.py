"""The one owner of ``PodUpdate`` state: every row is created and moved here, nowhere else.

Each move is a conditional UPDATE (``WHERE pk = ... AND state = <the state the caller read>``)
checked first against ``POD_UPDATE_TRANSITIONS``, as ``rollouts.transitions`` does for rollouts
and steps. A row another pass moved in the meantime is simply not matched: the caller learns it
from the number of rows moved, never overwrites it. A move the table forbids is a programming
error (``PodUpdateStateError``), raised before anything is written.

The promise these writes carry (DESIGN.md invariants): a row goes ``claimed → patching`` and
that is COMMITTED before its patch is sent, so a worker killed at any instant leaves a row that
the next pass resolves by reading the pod, never by patching twice; rows are only ever closed
(``done`` with an outcome), never deleted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Case, CharField, DateTimeField, F, Field, TextField, Value, When
from django.utils import timezone

from rollouts.choices import OPEN_POD_UPDATE_STATES, POD_UPDATE_TRANSITIONS, PodUpdateOutcome, PodUpdateState
from rollouts.models import PodUpdate, Rollout, RolloutStep
from sidecarhub.sidecarset import SidecarSet
from sidecarhub.sidecarset.inplace import UpdateTargets, resource_version, update_targets

__all__ = [
    "Closings",
    "PodUpdateStateError",
    "claim_restart_pods",
    "claim_step_pods",
    "close",
    "close_unobservable",
    "count_conflict",
    "count_restart_resend",
    "move",
    "record_patched",
    "record_restarted",
    "requeue_after_conflict",
    "skip_unpatched",
    "start_patching",
    "start_restarting",
    "targets_of",
]

ERROR_LENGTH = 2000


class PodUpdateStateError(ValueError):
    """A move ``POD_UPDATE_TRANSITIONS`` forbids (a bug in the caller, not a race)."""


def _allowed(from_state: str, to_state: str) -> None:
    if to_state not in POD_UPDATE_TRANSITIONS.get(from_state, frozenset()):
        raise PodUpdateStateError(f"a pod update cannot go from {from_state} to {to_state}")


def _per_row(values: Mapping[int, Any], output_field: Field[Any, Any]) -> Case:
    """A value per row (by pk) in one UPDATE."""
    return Case(*(When(pk=pk, then=Value(value)) for pk, value in values.items()), output_field=output_field)


def targets_of(row: PodUpdate) -> UpdateTargets:
    """The row's containers and images as the core's ``UpdateTargets``."""
    return UpdateTargets(row.container, row.from_image, row.to_image)


# --- create --------------------------------------------------------------------------------------


def claim_step_pods(
    rollout: Rollout,
    step: RolloutStep,
    sidecarset: SidecarSet,
    pods_by_uid: Mapping[str, Mapping[str, Any]],
) -> int:
    """Write one ``claimed`` row per approved pod of ``step`` (idempotent: a pod with a row in
    this rollout is left alone); pods already gone are recorded ``done``/``pod_gone`` at once.
    Returns the number of rows written."""
    existing = set(PodUpdate.objects.filter(rollout=rollout).values_list("pod_uid", flat=True))
    rows = []
    now = timezone.now()
    for ref in step.pods:
        if ref["uid"] in existing:
            continue
        pod = pods_by_uid.get(ref["uid"])
        gone = "the pod was deleted before its step started"
        rows.append(_claimed_row(rollout, step, ref, update_targets(sidecarset, pod), pod, gone, now))
    PodUpdate.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def _claimed_row(
    rollout: Rollout,
    step: RolloutStep,
    ref: Mapping[str, str],
    targets: UpdateTargets,
    pod: Mapping[str, Any] | None,
    gone_reason: str,
    now: datetime,
) -> PodUpdate:
    """A new ``claimed`` row for the pod ``ref`` (not saved); ``done``/``pod_gone`` at once with
    ``gone_reason`` when the pod is no longer listed."""
    row = PodUpdate(
        rollout=rollout,
        step=step,
        cluster_id=rollout.cluster_id,
        cluster_name=rollout.cluster_name,
        namespace=ref["namespace"],
        pod_name=ref["name"],
        pod_uid=ref["uid"],
        container=targets.container,
        from_image=targets.from_image,
        to_image=targets.to_image,
        from_revision_number=rollout.from_revision_number,
        to_revision_number=rollout.to_revision_number,
        state=PodUpdateState.CLAIMED,
    )
    if pod is None:
        row.state, row.outcome, row.done_at = PodUpdateState.DONE, PodUpdateOutcome.POD_GONE, now
        row.error = gone_reason
    return row


def _sidecar_images(sidecarset: SidecarSet, pod: Mapping[str, Any] | None) -> UpdateTargets:
    """Every sidecar of ``sidecarset`` (init containers first) with the old pod's image and the
    definition's: what a recreated pod leaves and (once injected again) gets."""
    sidecars = [*sidecarset.init_containers, *sidecarset.containers]
    spec = (pod or {}).get("spec") or {}
    present = {
        str(c.get("name")): str(c.get("image") or "")
        for key in ("initContainers", "containers")
        for c in spec.get(key) or []
    }
    return UpdateTargets(
        ",".join(c.name for c in sidecars),
        ",".join(present.get(c.name, "") for c in sidecars),
        ",".join(c.image for c in sidecars),
    )


def claim_restart_pods(
    rollout: Rollout,
    step: RolloutStep,
    sidecarset: SidecarSet,
    pods_by_uid: Mapping[str, Mapping[str, Any]],
) -> int:
    """Write one ``claimed`` row per pod of the restart step's workloads (idempotent, as
    ``claim_step_pods``); each row names its workload. Pods already gone are recorded
    ``done``/``pod_gone`` at once (replaced or deleted before the step started)."""
    existing = set(PodUpdate.objects.filter(rollout=rollout).values_list("pod_uid", flat=True))
    rows = []
    now = timezone.now()
    for workload in step.workloads:
        for ref in workload["pods"]:
            if ref["uid"] in existing:
                continue
            pod = pods_by_uid.get(ref["uid"])
            row = _claimed_row(
                rollout,
                step,
                ref,
                _sidecar_images(sidecarset, pod),
                pod,
                "the pod was gone before its workload was restarted",
                now,
            )
            row.workload_kind, row.workload_name = workload["kind"], workload["name"]
            rows.append(row)
    PodUpdate.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def start_restarting(rows: Sequence[PodUpdate], marker: str, now: datetime) -> list[PodUpdate]:
    """Move the claimed rows of ONE workload ``claimed → patching`` with the ``restartedAt``
    value its patch will write, in one committed UPDATE BEFORE the patch is sent; return the rows
    that moved (another pass may have moved some)."""
    _allowed(PodUpdateState.CLAIMED, PodUpdateState.PATCHING)
    with transaction.atomic():
        movable = set(
            PodUpdate.objects.select_for_update()
            .filter(pk__in=[row.pk for row in rows], state=PodUpdateState.CLAIMED)
            .values_list("pk", flat=True)
        )
        PodUpdate.objects.filter(pk__in=list(movable), state=PodUpdateState.CLAIMED).update(
            state=PodUpdateState.PATCHING,
            patching_at=now,
            restart_marker=marker,
            patch_attempts=F("patch_attempts") + 1,
        )
    moved = [row for row in rows if row.pk in movable]
    for row in moved:
        row.state, row.patching_at, row.restart_marker = PodUpdateState.PATCHING, now, marker
        row.patch_attempts += 1
    return moved


def count_restart_resend(rows: Sequence[PodUpdate]) -> None:
    """A ``patching`` workload's patch is sent again (its marker was not on the workload when
    read after a crash): count the attempt on its rows, which stay ``patching``."""
    PodUpdate.objects.filter(pk__in=[row.pk for row in rows], state=PodUpdateState.PATCHING).update(
        patch_attempts=F("patch_attempts") + 1
    )
    for row in rows:
        row.patch_attempts += 1


# --- move ----------------------------------------------------------------------------------------


def move(row: PodUpdate, to_state: str, **fields: Any) -> bool:
    """Move one row from the state it was read in to ``to_state`` (with ``fields``); True when
    it moved. The in-memory row follows a successful move (fields given as expressions, such as
    ``F()``, are left as loaded)."""
    _allowed(row.state, to_state)
    moved = bool(PodUpdate.objects.filter(pk=row.pk, state=row.state).update(state=to_state, **fields))
    if moved:
        row.state = to_state
        for name, value in fields.items():
            if not hasattr(value, "resolve_expression"):
                setattr(row, name, value)
    return moved


def start_patching(
    sidecarset: SidecarSet,
    items: Sequence[tuple[PodUpdate, Mapping[str, Any]]],
    now: datetime,
    *,
    hot: bool,
) -> list[tuple[PodUpdate, Mapping[str, Any]]]:
    """Move a chunk's rows ``claimed → patching`` in ONE committed transaction (lock, then one
    UPDATE) with the resourceVersion each patch will carry; return the rows that moved (a row
    another pass moved is left out). Hot rows also get their targets now: which twin is idle is
    known only from the pod as listed."""
    _allowed(PodUpdateState.CLAIMED, PodUpdateState.PATCHING)
    with transaction.atomic():
        claimable = set(
            PodUpdate.objects.select_for_update()
            .filter(pk__in=[row.pk for row, _pod in items], state=PodUpdateState.CLAIMED)
            .values_list("pk", flat=True)
        )
        moving = [(row, pod) for row, pod in items if row.pk in claimable]
        if not moving:
            return []
        versions = {row.pk: resource_version(pod) for row, pod in moving}
        fields: dict[str, Any] = {"resource_version": _per_row(versions, CharField())}
        targets: dict[int, UpdateTargets] = {}
        if hot:
            targets = {row.pk: update_targets(sidecarset, pod) for row, pod in moving}
            fields["container"] = _per_row({pk: t.container for pk, t in targets.items()}, CharField())
            fields["from_image"] = _per_row({pk: t.from_image for pk, t in targets.items()}, TextField())
            fields["to_image"] = _per_row({pk: t.to_image for pk, t in targets.items()}, TextField())
        PodUpdate.objects.filter(pk__in=list(versions), state=PodUpdateState.CLAIMED).update(
            state=PodUpdateState.PATCHING, patching_at=now, patch_attempts=F("patch_attempts") + 1, **fields
        )
    # What the UPDATE wrote, without reading the rows back (the cluster's lock is held).
    for row, _pod in moving:
        row.state, row.patching_at, row.patch_attempts = PodUpdateState.PATCHING, now, row.patch_attempts + 1
        row.resource_version = versions[row.pk]
        if row.pk in targets:
            row.container, row.from_image, row.to_image = (
                targets[row.pk].container,
                targets[row.pk].from_image,
                targets[row.pk].to_image,
            )
    return moving


def record_patched(landed: Mapping[int, datetime]) -> int:
    """``patching → observing`` for the rows whose patch landed (pk → when the reply came), in
    one UPDATE; returns how many moved."""
    if not landed:
        return 0
    _allowed(PodUpdateState.PATCHING, PodUpdateState.OBSERVING)
    return PodUpdate.objects.filter(pk__in=list(landed), state=PodUpdateState.PATCHING).update(
        state=PodUpdateState.OBSERVING, patched_at=_per_row(landed, DateTimeField())
    )


def record_restarted(rows: Sequence[PodUpdate], at: datetime) -> int:
    """``patching → observing`` for the rows of one workload whose restart landed (or was read
    back on the workload); the in-memory rows follow. Returns how many moved."""
    moved = record_patched({row.pk: at for row in rows})
    for row in rows:
        row.state, row.patched_at = PodUpdateState.OBSERVING, at
    return moved


def requeue_after_conflict(row: PodUpdate) -> bool:
    """``patching → claimed`` after a 409 whose re-read showed the patch did NOT land: the next
    pass plans the pod again from a fresh list. The attempt is not counted (nothing landed); the
    conflict is."""
    return move(
        row, PodUpdateState.CLAIMED, conflicts=F("conflicts") + 1, patch_attempts=F("patch_attempts") - 1
    )


def count_conflict(row: PodUpdate) -> None:
    """A 409 that leaves the row where it is (it is re-read and re-decided)."""
    PodUpdate.objects.filter(pk=row.pk, state=row.state).update(conflicts=F("conflicts") + 1)
    row.conflicts += 1


# --- close ---------------------------------------------------------------------------------------


class Closings:
    """Rows to close, written together: one guarded UPDATE per (state, outcome, error) instead of
    a commit per row (a pass may close hundreds of rows whose pods became ready together)."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, str, str], list[int]] = {}

    def add(self, row: PodUpdate, outcome: str, error: str = "") -> None:
        _allowed(row.state, PodUpdateState.DONE)
        self._groups.setdefault((row.state, outcome, error[:ERROR_LENGTH]), []).append(row.pk)

    def flush(self) -> int:
        """Write every group; return how many rows moved (a row another pass moved is left out)."""
        now = timezone.now()
        moved = 0
        for (state, outcome, error), ids in self._groups.items():
            moved += PodUpdate.objects.filter(pk__in=ids, state=state).update(
                state=PodUpdateState.DONE, outcome=outcome, error=error, done_at=now
            )
        self._groups.clear()
        return moved


def close(row: PodUpdate, outcome: str, error: str = "") -> bool:
    """Close one open row now (guarded by the state it was read in); True when it moved."""
    closings = Closings()
    closings.add(row, outcome, error)
    moved = bool(closings.flush())
    if moved:
        row.state, row.outcome, row.error = PodUpdateState.DONE, outcome, error[:ERROR_LENGTH]
    return moved


def skip_unpatched(rollout_ids: Iterable[int], reason: str) -> int:
    """Close every ``claimed`` row (never patched) of the rollouts as skipped with ``reason``.
    Rows already patched stay open: they are resolved by reading their pods."""
    _allowed(PodUpdateState.CLAIMED, PodUpdateState.DONE)
    return PodUpdate.objects.filter(rollout_id__in=list(rollout_ids), state=PodUpdateState.CLAIMED).update(
        state=PodUpdateState.DONE,
        outcome=PodUpdateOutcome.SKIPPED,
        error=f"not patched: {reason}"[:ERROR_LENGTH],
        done_at=timezone.now(),
    )


def close_unobservable(rollout_ids: Iterable[int], reason: str) -> int:
    """Close every open row of the rollouts whose cluster or SidecarSet was deleted (the hub can
    no longer read their pods): ``claimed`` ones as skipped (never patched), the others as failed
    with "outcome unknown" and ``reason``. The rows stay: they are the record of what was done."""
    ids = list(rollout_ids)
    closed = skip_unpatched(ids, reason)
    for state in OPEN_POD_UPDATE_STATES - {PodUpdateState.CLAIMED}:
        _allowed(state, PodUpdateState.DONE)
    return closed + PodUpdate.objects.filter(rollout_id__in=ids, state__in=OPEN_POD_UPDATE_STATES).update(
        state=PodUpdateState.DONE,
        outcome=PodUpdateOutcome.FAILED,
        error=f"outcome unknown: {reason}"[:ERROR_LENGTH],
        done_at=timezone.now(),
    )
