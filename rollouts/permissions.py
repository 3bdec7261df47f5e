"""Who may approve a rollout step (STYLE P4: a policy module that denies by default).

A user may approve (or deny) a prepared step when ALL of these hold:

1. the user is authenticated and active;
2. the user has the permission ``rollouts.approve_rolloutstep`` (superusers have every
   permission, but rule 3 applies to them too);
3. four eyes: the user is not the rollout's author — unless the step's cluster has
   ``rollout_requires_second_person`` switched off (a per-cluster setting, on by default).
   A rollout without an author (created by the system, not by a person) has no
   author to exclude.

Whether the step can be approved *now* (it is awaiting approval and not expired) is not a
permission question: ``services.approve_step`` checks it through the guarded transition and
raises ``InvalidTransition`` (HTTP 409). A cluster with ``rollout_auto_approve`` (e.g. staging)
gets its steps approved by the system as soon as they are prepared; people may still deny
them before that happens only through pause/abort.
"""

from __future__ import annotations

from typing import Any

from rollouts.models import RolloutStep

__all__ = ["APPROVE_PERMISSION", "OPERATE_PERMISSION", "approval_refusal", "can_approve", "can_operate"]

APPROVE_PERMISSION = "rollouts.approve_rolloutstep"
OPERATE_PERMISSION = "rollouts.operate_rollout"


def approval_refusal(user: Any, step: RolloutStep) -> str | None:
    """Why ``user`` may not approve or deny ``step`` (a sentence for people), or ``None``."""
    if user is None or not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return "approving a rollout step needs a signed-in, active user"
    if not user.has_perm(APPROVE_PERMISSION):
        return f"{user.get_username()} lacks the permission to approve rollout steps ({APPROVE_PERMISSION})"
    rollout = step.rollout
    if rollout.cluster is None:
        return f"cluster {rollout.cluster_name} was deleted from the hub"
    if rollout.cluster.rollout_requires_second_person and rollout.author_id == user.pk:
        return (
            f"{user.get_username()} created this rollout; cluster {rollout.cluster.name} requires "
            "someone else to approve its steps"
        )
    return None


def can_approve(user: Any, step: RolloutStep) -> bool:
    """True when ``user`` may approve or deny ``step`` (see the module docstring for the rules)."""
    return approval_refusal(user, step) is None


def can_operate(user: Any) -> bool:
    """Pause, resume, abort and roll back need ``rollouts.operate_rollout`` (no four-eyes rule:
    stopping a rollout must never wait for a second person)."""
    return bool(
        user is not None
        and getattr(user, "is_authenticated", False)
        and getattr(user, "is_active", False)
        and user.has_perm(OPERATE_PERMISSION)
    )
