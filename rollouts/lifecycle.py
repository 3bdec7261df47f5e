"""What the system does to a rollout's steps on its own, shared by the reconciler and the services:
prepare a step (its exact pod list, put up for approval or auto-approved), expire an approval
window, finish an abort. Below both: the reconciler (``rollouts.reconciler``) and the services
for people (``rollouts.services``) import this module, never each other.

Nothing here queues work: the reconciler goes on within its pass, and the services wake the
cluster's reconciler after their own commit.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from clusters.kube import KubeError, cached_kube_client
from clusters.models import SidecarSetPlacement
from clusters.push import serve_revision
from rollouts import pod_updates, transitions
from rollouts.choices import (
    TERMINAL_STEP_STATES,
    UPDATED_OUTCOMES,
    ApprovalDecision,
    RolloutKind,
    RolloutState,
    StepState,
)
from rollouts.models import Approval, PodUpdate, Rollout, RolloutStep
from rollouts.pass_inputs import PassInputs, PodListing
from rollouts.transitions import InvalidTransition, RolloutError, RolloutNotFound
from sidecarhub.changes import Actor, actor_name
from sidecarhub.sidecarset import PodClass, PodDecision, RoundPlan, SidecarSet, plan_round, plan_step
from sidecarhub.sidecarset.rollout_settings import parse_step_target

# The step target of a rollout with no in-place steps: only the gate (decision 17).
SERVE_STEP = "serve"

__all__ = [
    "SERVE_STEP",
    "expire_step",
    "finish_aborted",
    "get_step",
    "is_gate",
    "open_gate",
    "pause_now",
    "prepare_restart_step",
    "prepare_step",
    "stale_pods",
]


def get_step(step_id: int) -> RolloutStep:
    """The step with its rollout and cluster, or ``RolloutNotFound``."""
    step = (
        RolloutStep.objects.select_related("rollout__cluster__owner_team", "rollout__sidecarset__owner_team")
        .filter(pk=step_id)
        .first()
    )
    if step is None:
        raise RolloutNotFound("step", step_id)
    return step


def _ref_dict(ref: Any) -> dict[str, str]:
    return {"namespace": ref.namespace, "name": ref.name, "uid": ref.uid}


def pause_now(rollout: Rollout, *, actor: Actor, request_id: str, reason: str) -> None:
    """Pause a rollout that has no step running (pending, awaiting approval...); a rollout
    already paused or ended is left as it is."""
    with contextlib.suppress(InvalidTransition):  # already paused or ended
        transitions.pause_rollout_row(rollout.pk, actor=actor, reason=reason, request_id=request_id)


def prepare_step(
    step_id: int, *, actor: Actor, request_id: str = "", inputs: PassInputs | None = None
) -> RolloutStep:
    """Compute the step's exact pod list (``plan_step`` over the cluster's live pods) and put it
    up for approval (or approve it at once on an auto-approve cluster).

    A step with no pod to update succeeds at once (no approval needed), with an explanation.
    Raises ``InvalidTransition`` unless the step is pending and its rollout running;
    ``RolloutError`` when the cluster cannot be read or the revision blocks updates
    (``updateStrategy.paused`` / ``NotUpdate``).
    """
    step = get_step(step_id)
    rollout = step.rollout
    if rollout.state != RolloutState.RUNNING:
        raise InvalidTransition("rollout", rollout.pk, rollout.state, "preparing a step")
    if step.state != StepState.PENDING:
        raise InvalidTransition("step", step.pk, step.state, StepState.AWAITING_APPROVAL)
    inputs = inputs or PassInputs(cached_kube_client(rollout.live_cluster))
    core = inputs.planning_sidecarset(rollout)
    try:
        listing = inputs.pods(core)
    except KubeError as exc:
        raise RolloutError(f"cannot prepare step {step.ordinal}: {exc}") from None
    if not rollout.in_place:
        return _prepare_gate(step, rollout, core, listing, actor=actor, request_id=request_id)
    target: int | str = parse_step_target(step.target)
    plan = plan_step(core, listing.pods, target, namespace_labels=listing.namespace_labels)
    if plan.blocked_reason is not None:
        raise RolloutError(f"step {step.ordinal} cannot be prepared: {plan.blocked_reason}")
    recreate = plan.round.of_class(PodClass.NEEDS_RECREATE)
    needs_recreate = [{**_ref_dict(decision.ref), "reason": decision.reason} for decision in recreate[:1000]]
    planned = _planned_pods(rollout, step, plan.round, core, listing)
    now = timezone.now()
    with transaction.atomic():
        Rollout.objects.filter(pk=rollout.pk).update(planned_pods=planned)
        # The first step is also the cluster's gate (decision 17): approved even with no pod to
        # patch, since approving it makes the cluster serve the new revision to new pods.
        if not plan.pods and not is_gate(step, rollout):
            why = f"no pod to update (goal {plan.target_updated} updated, {plan.updated_before} already are"
            why += f"; {len(recreate)} need recreating)" if recreate else ")"
            updated = transitions.transition_step(
                step.pk,
                from_states=[StepState.PENDING],
                to_state=StepState.SUCCEEDED,
                actor=actor,
                reason=f"step {step.ordinal}: {why}",
                request_id=request_id,
                finished_at=now,
                prepared_at=now,
                pods=[],
                pod_count=0,
                target_updated=plan.target_updated,
                shortfall=plan.shortfall,
                needs_recreate=needs_recreate,
                needs_recreate_count=len(recreate),
                explanation=why,
                preparation=step.preparation + 1,
            )
            return updated
        updated = transitions.mark_step_awaiting_approval(
            step.pk,
            actor=actor,
            reason=f"step {step.ordinal} prepared: {len(plan.pods)} pods",
            request_id=request_id,
            pods=[_ref_dict(decision.ref) for decision in plan.pods],
            pod_count=len(plan.pods),
            target_updated=plan.target_updated,
            shortfall=plan.shortfall,
            needs_recreate=needs_recreate,
            needs_recreate_count=len(recreate),
            prepared_at=now,
            expires_at=now + timedelta(seconds=rollout.approval_ttl_seconds),
            preparation=step.preparation + 1,
        )
        return _auto_approve(updated, rollout, request_id=request_id)


def _auto_approve(step: RolloutStep, rollout: Rollout, *, request_id: str) -> RolloutStep:
    """On an auto-approve cluster, approve a step as soon as it is prepared (and open the gate)."""
    if rollout.cluster is None or not rollout.cluster.rollout_auto_approve:
        return step
    approved = transitions.approve_step_row(
        step.pk,
        actor=None,
        reason=f"cluster {rollout.cluster.name} approves steps automatically",
        request_id=request_id,
    )
    Approval.objects.create(
        step=approved,
        preparation=approved.preparation,
        decision=ApprovalDecision.APPROVE,
        actor=None,
        actor_name=actor_name(None),
        comment=f"auto-approve is on for cluster {rollout.cluster.name}",
        automatic=True,
        request_id=request_id[:64],
    )
    open_gate(approved, rollout)
    return approved


def prepare_restart_step(step_id: int, *, actor: Actor, request_id: str = "") -> RolloutStep:
    """Put a restart step up for approval (or approve it at once on an auto-approve cluster).
    Its workloads and their pods were fixed when the restart was started (and previewed); a
    denied or expired step is put up again with the same list. Raises ``InvalidTransition``
    unless the step is pending and its rollout running."""
    step = get_step(step_id)
    rollout = step.rollout
    if rollout.state != RolloutState.RUNNING:
        raise InvalidTransition("rollout", rollout.pk, rollout.state, "preparing a step")
    now = timezone.now()
    with transaction.atomic():
        updated = transitions.mark_step_awaiting_approval(
            step.pk,
            actor=actor,
            reason=f"step {step.ordinal} prepared: restart {len(step.workloads)} workloads "
            f"({step.pod_count} pods need recreate)",
            request_id=request_id,
            prepared_at=now,
            expires_at=now + timedelta(seconds=rollout.approval_ttl_seconds),
            preparation=step.preparation + 1,
        )
        return _auto_approve(updated, rollout, request_id=request_id)


def is_gate(step: RolloutStep, rollout: Rollout) -> bool:
    """The step whose approval makes the cluster serve the rollout's revision: the first step of
    a rollout whose cluster does not serve that revision yet (a rollback serves it at once)."""
    if step.ordinal != 1 or rollout.kind == RolloutKind.ROLLBACK:
        return False
    if rollout.sidecarset_id is None or rollout.cluster_id is None:
        return False  # deleted: nothing to serve any more
    return not SidecarSetPlacement.objects.filter(
        sidecarset_id=rollout.sidecarset_id,
        cluster_id=rollout.cluster_id,
        serving_revision_id=rollout.to_revision_id,
    ).exists()


def open_gate(step: RolloutStep, rollout: Rollout) -> None:
    """An approved first step opens the cluster's gate (decision 17): from now on the cluster
    serves the rollout's revision (its custom resource is pushed, its webhook injects it) while
    its existing pods follow the approved steps. Part of the approval's transaction. A restart
    changes nothing its cluster serves (it starts only where the revision is served already)."""
    if step.ordinal == 1 and rollout.to_revision_id is not None and rollout.kind != RolloutKind.RESTART:
        serve_revision(rollout.live_sidecarset_id, rollout.live_cluster_id, rollout.to_revision_id)


def _planned_pods(
    rollout: Rollout, step: RolloutStep, round_plan: RoundPlan, core: SidecarSet, listing: PodListing
) -> int:
    """The pods the whole rollout updates in place, counted now: those it updated so far plus the
    in-place candidates left in the cluster (this step's and later steps'), so progress totals
    cover every step, not only the prepared ones. A canary step's round sees only the canary
    selector's pods: the cluster's count needs the round without it."""
    if step.canary:
        round_plan = plan_round(
            core, listing.pods, namespace_labels=listing.namespace_labels, apply_canary_selector=False
        )
    counts = round_plan.class_counts()
    updated = PodUpdate.objects.filter(rollout=rollout, outcome__in=UPDATED_OUTCOMES).count()
    return updated + counts[PodClass.CANDIDATE] + counts[PodClass.WAITING]


def stale_pods(core: SidecarSet, listing: PodListing) -> list[PodDecision]:
    """The matched pods that run another definition than ``core``: with no in-place steps, every
    one of them needs recreate."""
    plan = plan_round(
        core, listing.pods, namespace_labels=listing.namespace_labels, apply_canary_selector=False
    )
    stale = (PodClass.NEEDS_RECREATE, PodClass.CANDIDATE, PodClass.WAITING, PodClass.NOT_SELECTED)
    return [decision for pod_class in stale for decision in plan.of_class(pod_class)]


def _prepare_gate(
    step: RolloutStep,
    rollout: Rollout,
    core: SidecarSet,
    listing: PodListing,
    *,
    actor: Actor,
    request_id: str,
) -> RolloutStep:
    """The one step of a rollout that cannot update pods in place (not images only, or
    ``NotUpdate``): nothing to patch; approving it makes the cluster serve the new revision to new
    pods; the existing pods that run another definition are listed as needing recreate."""
    stale = stale_pods(core, listing)
    needs_recreate = [
        {**_ref_dict(decision.ref), "reason": decision.reason or "runs an earlier definition"}
        for decision in stale[:1000]
    ]
    now = timezone.now()
    what = f"{len(stale)} pods need recreate" if stale else "no pod runs an earlier definition"
    with transaction.atomic():
        updated = transitions.mark_step_awaiting_approval(
            step.pk,
            actor=actor,
            reason=f"step {step.ordinal} prepared: serve revision {rollout.to_revision_number}; {what}",
            request_id=request_id,
            pods=[],
            pod_count=0,
            target_updated=0,
            shortfall=0,
            needs_recreate=needs_recreate,
            needs_recreate_count=len(stale),
            prepared_at=now,
            expires_at=now + timedelta(seconds=rollout.approval_ttl_seconds),
            preparation=step.preparation + 1,
        )
        return _auto_approve(updated, rollout, request_id=request_id)


def expire_step(step_id: int, *, actor: Actor, request_id: str = "") -> RolloutStep:
    """Expire a step whose approval window passed and pause its rollout with the reason.

    Idempotent through the guarded transition (``InvalidTransition`` if it is no longer
    awaiting approval)."""
    step = get_step(step_id)
    reason = (
        f"step {step.ordinal} was not approved before {step.expires_at:%Y-%m-%d %H:%M:%S} UTC; "
        "resume the rollout to prepare it again with a fresh pod list"
    )
    with transaction.atomic():
        expired = transitions.expire_step_row(step.pk, actor=actor, reason=reason, request_id=request_id)
        pause_now(step.rollout, actor=actor, request_id=request_id, reason=reason)
    return expired


def finish_aborted(rollout_id: int, *, actor: Actor, request_id: str = "", reason: str) -> Rollout:
    """Abort the rollout row, end its steps and skip its unpatched pods (one transaction).

    Pods already patched (``patching`` / ``observing``) keep their rows open: the reconciler
    resolves them by reading the pods, so no PodUpdate is lost."""
    with transaction.atomic():
        aborted = transitions.abort_rollout_row(rollout_id, actor=actor, reason=reason, request_id=request_id)
        for step in RolloutStep.objects.filter(rollout_id=rollout_id).exclude(state__in=TERMINAL_STEP_STATES):
            if step.state in (StepState.RUNNING, StepState.PAUSED):
                transitions.fail_step_row(step.pk, actor=actor, reason=reason, request_id=request_id)
            else:
                transitions.cancel_step_row(step.pk, actor=actor, reason=reason, request_id=request_id)
        pod_updates.skip_unpatched([rollout_id], reason)
    return aborted
