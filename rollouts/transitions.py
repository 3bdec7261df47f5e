"""State changes of rollouts and steps: one function per verb (STYLE P3).

Each verb locks the row (``SELECT ... FOR UPDATE``), checks that its current state is one the
verb accepts AND that the transition table allows the move, updates it together with the given
fields, and writes a ``StepTransition`` history row (with the ``actor``, the ``reason`` and the
``request_id`` of the API call, admin action or CLI run that caused it; "" for the system) — all
in one transaction. When the row is not in an accepted state, nothing changes and
``InvalidTransition`` is raised (the API maps it to 409 with ``current_state``). Two concurrent
callers of the same verb: the second waits for the first's lock, then sees the new state and gets
``InvalidTransition``. SQLite ignores ``FOR UPDATE``; there the same holds because every
transaction begins by taking the database's write lock (``BEGIN IMMEDIATE``, see
``sidecarhub.envconfig.parse_database_url``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from rollouts.choices import ROLLOUT_TRANSITIONS, STEP_TRANSITIONS, RolloutState, StepState
from rollouts.models import Rollout, RolloutStep, StepTransition
from sidecarhub.changes import Actor, actor_name
from sidecarhub.transitions import InvalidTransition

__all__ = [
    "InvalidTransition",
    "NotPermitted",
    "RolloutError",
    "RolloutNotFound",
    "abort_rollout_row",
    "approve_step_row",
    "cancel_step_row",
    "complete_rollout_row",
    "deny_step_row",
    "expire_step_row",
    "fail_rollout_row",
    "fail_step_row",
    "hold_rollout_row",
    "mark_step_awaiting_approval",
    "pause_rollout_row",
    "pause_step_row",
    "reprepare_step_row",
    "resume_rollout_row",
    "resume_step_row",
    "skip_step_row",
    "start_rollout_row",
    "start_step_row",
    "succeed_step_row",
    "transition_rollout",
    "transition_step",
]


class RolloutError(Exception):
    """Base of the rollouts app's expected failures; the message is meant for people."""


class RolloutNotFound(RolloutError):
    def __init__(self, what: str, object_id: int) -> None:
        super().__init__(f"{what} {object_id} not found")


class NotPermitted(RolloutError):
    """The actor may not do this (missing permission, or the four-eyes rule): HTTP 403."""


def _user(actor: Actor) -> Any:
    return actor if actor is not None and getattr(actor, "is_authenticated", False) else None


def transition_rollout(
    rollout_id: int,
    *,
    from_states: Iterable[str],
    to_state: str,
    actor: Actor,
    reason: str = "",
    request_id: str = "",
    **fields: Any,
) -> Rollout:
    """Move a rollout to ``to_state`` if it is in one of ``from_states``; return the updated row.

    ``fields`` are written with the state (e.g. ``started_at``); ``reason`` goes to the row's
    ``reason`` (first 300 characters) and to the history row. Raises ``InvalidTransition``.
    """
    with transaction.atomic():
        rollout = Rollout.objects.select_for_update().filter(pk=rollout_id).first()
        if rollout is None:
            raise InvalidTransition("rollout", rollout_id, "deleted", to_state)
        current = rollout.state
        if current not in set(from_states) or to_state not in ROLLOUT_TRANSITIONS[current]:
            raise InvalidTransition("rollout", rollout_id, current, to_state)
        now = timezone.now()
        rollout.state = to_state
        rollout.state_changed_at = now
        rollout.reason = reason[:300]
        for name, value in fields.items():
            setattr(rollout, name, value)
        rollout.save(update_fields=["state", "state_changed_at", "reason", *fields])
        StepTransition.objects.create(
            rollout=rollout,
            step=None,
            from_state=current,
            to_state=to_state,
            actor=_user(actor),
            actor_name=actor_name(actor),
            reason=reason,
            request_id=request_id[:64],
        )
        return rollout


def transition_step(
    step_id: int,
    *,
    from_states: Iterable[str],
    to_state: str,
    actor: Actor,
    reason: str = "",
    request_id: str = "",
    **fields: Any,
) -> RolloutStep:
    """Move a step to ``to_state`` if it is in one of ``from_states``; see ``transition_rollout``."""
    with transaction.atomic():
        step = RolloutStep.objects.select_for_update().filter(pk=step_id).first()
        if step is None:
            raise InvalidTransition("step", step_id, "deleted", to_state)
        current = step.state
        if current not in set(from_states) or to_state not in STEP_TRANSITIONS[current]:
            raise InvalidTransition("step", step_id, current, to_state)
        step.state = to_state
        step.state_changed_at = timezone.now()
        for name, value in fields.items():
            setattr(step, name, value)
        step.save(update_fields=["state", "state_changed_at", *fields])
        StepTransition.objects.create(
            rollout_id=step.rollout_id,
            step=step,
            from_state=current,
            to_state=to_state,
            actor=_user(actor),
            actor_name=actor_name(actor),
            reason=reason,
            request_id=request_id[:64],
        )
        return step


# --- rollout verbs -----------------------------------------------------------------------------


def start_rollout_row(rollout_id: int, *, actor: Actor, reason: str, request_id: str = "") -> Rollout:
    """pending → running (its wave's turn came)."""
    return transition_rollout(
        rollout_id,
        from_states=[RolloutState.PENDING],
        to_state=RolloutState.RUNNING,
        actor=actor,
        reason=reason,
        request_id=request_id,
        started_at=timezone.now(),
    )


def hold_rollout_row(rollout_id: int, *, actor: Actor, reason: str, request_id: str = "") -> Rollout:
    """pending → paused (e.g. its revision says ``updateStrategy.paused``)."""
    return transition_rollout(
        rollout_id,
        from_states=[RolloutState.PENDING],
        to_state=RolloutState.PAUSED,
        actor=actor,
        reason=reason,
        request_id=request_id,
    )


def pause_rollout_row(rollout_id: int, *, actor: Actor, reason: str, request_id: str = "") -> Rollout:
    """running → paused; clears the pause intent it honours."""
    return transition_rollout(
        rollout_id,
        from_states=[RolloutState.RUNNING, RolloutState.PENDING],
        to_state=RolloutState.PAUSED,
        actor=actor,
        reason=reason,
        request_id=request_id,
        pause_requested=False,
    )


def resume_rollout_row(
    rollout_id: int, *, actor: Actor, reason: str, request_id: str = "", before_start: bool = False
) -> Rollout:
    """paused → running (or → pending when it was paused before its wave started)."""
    return transition_rollout(
        rollout_id,
        from_states=[RolloutState.PAUSED],
        to_state=RolloutState.PENDING if before_start else RolloutState.RUNNING,
        actor=actor,
        reason=reason,
        request_id=request_id,
        pause_requested=False,
    )


def complete_rollout_row(
    rollout_id: int, *, actor: Actor, reason: str, request_id: str = "", needs_recreate: int = 0
) -> Rollout:
    """running → completed; ``needs_recreate``: pods still running the definition it replaced."""
    return transition_rollout(
        rollout_id,
        from_states=[RolloutState.RUNNING],
        to_state=RolloutState.COMPLETED,
        actor=actor,
        reason=reason,
        request_id=request_id,
        finished_at=timezone.now(),
        needs_recreate=needs_recreate,
    )


def abort_rollout_row(rollout_id: int, *, actor: Actor, reason: str, request_id: str = "") -> Rollout:
    """pending/running/paused → aborted."""
    return transition_rollout(
        rollout_id,
        from_states=[RolloutState.PENDING, RolloutState.RUNNING, RolloutState.PAUSED],
        to_state=RolloutState.ABORTED,
        actor=actor,
        reason=reason,
        request_id=request_id,
        finished_at=timezone.now(),
    )


def fail_rollout_row(rollout_id: int, *, actor: Actor, reason: str, request_id: str = "") -> Rollout:
    """pending/running/paused → failed (it cannot go on at all)."""
    return transition_rollout(
        rollout_id,
        from_states=[RolloutState.PENDING, RolloutState.RUNNING, RolloutState.PAUSED],
        to_state=RolloutState.FAILED,
        actor=actor,
        reason=reason,
        request_id=request_id,
        finished_at=timezone.now(),
    )


# --- step verbs --------------------------------------------------------------------------------


def mark_step_awaiting_approval(
    step_id: int, *, actor: Actor, reason: str, request_id: str = "", **prepared: Any
) -> RolloutStep:
    """pending → awaiting_approval, storing the prepared pod list (``prepared`` fields)."""
    return transition_step(
        step_id,
        from_states=[StepState.PENDING],
        to_state=StepState.AWAITING_APPROVAL,
        actor=actor,
        reason=reason,
        request_id=request_id,
        **prepared,
    )


def approve_step_row(step_id: int, *, actor: Actor, reason: str, request_id: str = "") -> RolloutStep:
    """awaiting_approval → approved. Exactly one of concurrent approvals wins."""
    return transition_step(
        step_id,
        from_states=[StepState.AWAITING_APPROVAL],
        to_state=StepState.APPROVED,
        actor=actor,
        reason=reason,
        request_id=request_id,
        approved_at=timezone.now(),
    )


def deny_step_row(step_id: int, *, actor: Actor, reason: str, request_id: str = "") -> RolloutStep:
    """awaiting_approval → denied."""
    return transition_step(
        step_id,
        from_states=[StepState.AWAITING_APPROVAL],
        to_state=StepState.DENIED,
        actor=actor,
        reason=reason,
        request_id=request_id,
        finished_at=timezone.now(),
    )


def expire_step_row(step_id: int, *, actor: Actor, reason: str, request_id: str = "") -> RolloutStep:
    """awaiting_approval → expired (nobody approved before ``expires_at``)."""
    return transition_step(
        step_id,
        from_states=[StepState.AWAITING_APPROVAL],
        to_state=StepState.EXPIRED,
        actor=actor,
        reason=reason,
        request_id=request_id,
        finished_at=timezone.now(),
    )


def reprepare_step_row(step_id: int, *, actor: Actor, reason: str, request_id: str = "") -> RolloutStep:
    """denied/expired → pending: it will be prepared again with a fresh pod list."""
    return transition_step(
        step_id,
        from_states=[StepState.DENIED, StepState.EXPIRED],
        to_state=StepState.PENDING,
        actor=actor,
        reason=reason,
        request_id=request_id,
        finished_at=None,
        expires_at=None,
    )


def start_step_row(step_id: int, *, actor: Actor, reason: str, request_id: str = "") -> RolloutStep:
    """approved → running."""
    now = timezone.now()
    return transition_step(
        step_id,
        from_states=[StepState.APPROVED],
        to_state=StepState.RUNNING,
        actor=actor,
        reason=reason,
        request_id=request_id,
        started_at=now,
        heartbeat_at=now,
        last_progress_at=now,
    )


def pause_step_row(
    step_id: int, *, actor: Actor, reason: str, request_id: str = "", explanation: str = ""
) -> RolloutStep:
    """approved/running → paused."""
    fields: dict[str, Any] = {"explanation": explanation} if explanation else {}
    return transition_step(
        step_id,
        from_states=[StepState.APPROVED, StepState.RUNNING],
        to_state=StepState.PAUSED,
        actor=actor,
        reason=reason,
        request_id=request_id,
        **fields,
    )


def resume_step_row(
    step_id: int, *, actor: Actor, reason: str, request_id: str = "", failures_acknowledged: int
) -> RolloutStep:
    """paused → running; failures seen so far no longer count against the threshold."""
    now = timezone.now()
    return transition_step(
        step_id,
        from_states=[StepState.PAUSED],
        to_state=StepState.RUNNING,
        actor=actor,
        reason=reason,
        request_id=request_id,
        heartbeat_at=now,
        last_progress_at=now,
        failures_acknowledged=failures_acknowledged,
    )


def succeed_step_row(step_id: int, *, actor: Actor, reason: str, request_id: str = "") -> RolloutStep:
    """running → succeeded."""
    return transition_step(
        step_id,
        from_states=[StepState.RUNNING],
        to_state=StepState.SUCCEEDED,
        actor=actor,
        reason=reason,
        request_id=request_id,
        finished_at=timezone.now(),
        explanation=reason,
    )


def skip_step_row(step_id: int, *, actor: Actor, reason: str, request_id: str = "") -> RolloutStep:
    """pending → succeeded without approval: prepared with no pod to update."""
    return transition_step(
        step_id,
        from_states=[StepState.PENDING],
        to_state=StepState.SUCCEEDED,
        actor=actor,
        reason=reason,
        request_id=request_id,
        finished_at=timezone.now(),
        explanation=reason,
    )


def fail_step_row(step_id: int, *, actor: Actor, reason: str, request_id: str = "") -> RolloutStep:
    """running/paused → failed (its rollout ended while it ran)."""
    return transition_step(
        step_id,
        from_states=[StepState.RUNNING, StepState.PAUSED],
        to_state=StepState.FAILED,
        actor=actor,
        reason=reason,
        request_id=request_id,
        finished_at=timezone.now(),
    )


def cancel_step_row(step_id: int, *, actor: Actor, reason: str, request_id: str = "") -> RolloutStep:
    """pending/awaiting_approval/approved → cancelled (its rollout ended before it ran)."""
    return transition_step(
        step_id,
        from_states=[StepState.PENDING, StepState.AWAITING_APPROVAL, StepState.APPROVED],
        to_state=StepState.CANCELLED,
        actor=actor,
        reason=reason,
        request_id=request_id,
        finished_at=timezone.now(),
    )
