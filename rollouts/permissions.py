"""Who may approve a rollout step, and who may operate a rollout (STYLE P4: a policy module that
denies by default).

A user may approve (or deny) a prepared step when ALL of these hold:

1. the user is authenticated and active;
2. the user has the permission ``rollouts.approve_rolloutstep`` (the ``approver`` role;
   superusers have every permission, but rules 3 and 4 apply to them too);
3. teams (``sidecarhub.teams``): the user acts for the step's team. **A step's team is its
   cluster's team; for a cluster without a team, the SidecarSet's team.** Approving a step lets
   pods of that cluster change now, so the people who own the cluster decide, as the cluster's
   policy (four eyes, auto-approve, approval lifetime) already does; the SidecarSet's team
   decides what is published (publishing needs its authors). With neither team, anyone holding
   the permission approves (as before teams existed). Organisation admins
   (``sidecarhub.act_for_all_teams``) approve everywhere;
4. four eyes: the user is not the rollout's author — unless the step's cluster has
   ``rollout_requires_second_person`` switched off (a per-cluster setting, on by default).
   A rollout without an author (created by the system, not by a person) has no
   author to exclude.

Operating a rollout (pause, resume, abort, roll back, restart) needs ``rollouts.operate_rollout``
(the ``operator`` role) and acting for *either* team: the cluster's or the SidecarSet's (both
have a stake in stopping it; stopping a rollout must never wait for a second person, so no
four-eyes rule).

Whether the step can be approved *now* (it is awaiting approval and not expired) is not a
permission question: ``services.approve_step`` checks it through the guarded transition and
raises ``InvalidTransition`` (HTTP 409). A cluster with ``rollout_auto_approve`` (e.g. staging)
gets its steps approved by the system as soon as they are prepared; people may still deny
them before that happens only through pause/abort. :func:`steps_awaiting_approval_by` lists
what a user may approve now (the console's "waiting for my approval").
"""

from __future__ import annotations

from typing import Any

from django.db.models import F, Q, QuerySet
from django.utils import timezone

from rollouts.choices import RolloutState, StepState
from rollouts.models import Rollout, RolloutStep
from sidecarhub.models import Team
from sidecarhub.teams import is_org_admin, team_refusal

__all__ = [
    "APPROVE_PERMISSION",
    "OPERATE_PERMISSION",
    "approval_refusal",
    "approving_team",
    "can_approve",
    "can_operate",
    "operate_refusal",
    "steps_awaiting_approval_by",
]

APPROVE_PERMISSION = "rollouts.approve_rolloutstep"
OPERATE_PERMISSION = "rollouts.operate_rollout"


def _active_person(user: Any) -> bool:
    return bool(
        user is not None and getattr(user, "is_authenticated", False) and getattr(user, "is_active", False)
    )


def approving_team(rollout: Rollout) -> Team | None:
    """The team whose approvers decide on ``rollout``'s steps (rule 3): the cluster's, else the
    SidecarSet's; ``None`` when neither has one."""
    cluster_team = rollout.cluster.owner_team if rollout.cluster is not None else None
    if cluster_team is not None:
        return cluster_team
    return rollout.sidecarset.owner_team if rollout.sidecarset is not None else None


def approval_refusal(user: Any, step: RolloutStep) -> str | None:
    """Why ``user`` may not approve or deny ``step`` (a sentence for people), or ``None``."""
    if not _active_person(user):
        return "approving a rollout step needs a signed-in, active user"
    if not user.has_perm(APPROVE_PERMISSION):
        return f"{user.get_username()} lacks the permission to approve rollout steps ({APPROVE_PERMISSION})"
    rollout = step.rollout
    if rollout.cluster is None:
        return f"cluster {rollout.cluster_name} was deleted from the hub"
    refusal = team_refusal(
        user, [approving_team(rollout)], f"the approval of steps in cluster {rollout.cluster.name!r}"
    )
    if refusal is not None:
        return refusal
    if rollout.cluster.rollout_requires_second_person and rollout.author_id == user.pk:
        return (
            f"{user.get_username()} created this rollout; cluster {rollout.cluster.name} requires "
            "someone else to approve its steps"
        )
    return None


def can_approve(user: Any, step: RolloutStep) -> bool:
    """True when ``user`` may approve or deny ``step`` (see the module docstring for the rules)."""
    return approval_refusal(user, step) is None


def operate_refusal(user: Any, rollout: Rollout | None = None) -> str | None:
    """Why ``user`` may not pause, resume, abort, roll back or restart ``rollout`` (``None``:
    any rollout, the permission only), or ``None``."""
    if not _active_person(user) or not user.has_perm(OPERATE_PERMISSION):
        name = user.get_username() if _active_person(user) else "an anonymous or inactive user"
        return f"{name} lacks the permission to operate rollouts ({OPERATE_PERMISSION})"
    if rollout is None:
        return None
    teams = [
        rollout.cluster.owner_team if rollout.cluster is not None else None,
        rollout.sidecarset.owner_team if rollout.sidecarset is not None else None,
    ]
    return team_refusal(user, teams, f"rollout {rollout.pk}")


def can_operate(user: Any, rollout: Rollout | None = None) -> bool:
    """True when ``user`` may operate ``rollout`` (or, without one, holds the permission)."""
    return operate_refusal(user, rollout) is None


def steps_awaiting_approval_by(user: Any) -> QuerySet[RolloutStep]:
    """The steps ``user`` may approve now: awaiting approval, not expired, of a running rollout
    in a cluster that still exists, and allowed by rules 1-4 (the console's "waiting for my
    approval"). Soonest to expire first; rollout and cluster are selected with each step."""
    if not _active_person(user) or not user.has_perm(APPROVE_PERMISSION):
        return RolloutStep.objects.none()
    steps = (
        RolloutStep.objects.filter(
            state=StepState.AWAITING_APPROVAL,
            rollout__state=RolloutState.RUNNING,
            rollout__cluster__isnull=False,
        )
        .exclude(expires_at__lte=timezone.now())
        .exclude(rollout__author=user, rollout__cluster__rollout_requires_second_person=True)
    )
    if not is_org_admin(user):
        mine = Team.objects.filter(members=user).values("pk")
        steps = steps.filter(
            Q(rollout__cluster__owner_team__in=mine)
            | Q(rollout__cluster__owner_team__isnull=True)
            & (Q(rollout__sidecarset__owner_team__isnull=True) | Q(rollout__sidecarset__owner_team__in=mine))
        )
    return steps.select_related("rollout", "rollout__cluster").order_by(
        F("expires_at").asc(nulls_last=True), "pk"
    )
