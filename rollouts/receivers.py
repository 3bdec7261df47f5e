"""The ledger outlives clusters and SidecarSets (issue 15, "Nothing lost").

``Rollout.cluster``, ``Rollout.sidecarset`` and ``PodUpdate.cluster`` are ``SET_NULL`` and the
rows keep copies of the names, so deleting a cluster or a SidecarSet keeps its rollouts, steps,
approvals, pod updates and transitions as history. An active rollout must not linger with nothing
to act on: ``pre_delete`` receivers (connected in ``RolloutsConfig.ready``; the clusters app does
not import rollouts) fail it, in the deleting transaction, before the foreign keys are cleared:
the rollout → ``failed`` with the reason, its open steps failed or cancelled, and its open pod
updates closed (a claimed pod was never patched: ``skipped``; a pod already patched can no longer
be observed by the hub: ``failed`` with that reason). Each state change writes its
``StepTransition`` row as every other change does.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Q

from rollouts import pod_updates, transitions
from rollouts.choices import (
    ACTIVE_ROLLOUT_STATES,
    OPEN_POD_UPDATE_STATES,
    TERMINAL_STEP_STATES,
    StepState,
)
from rollouts.models import PodUpdate, Rollout, RolloutStep

__all__ = ["end_rollouts", "on_cluster_deleting", "on_sidecarset_deleting"]


def end_rollouts(rollouts: Any, reason: str) -> int:
    """Fail the active rollouts of ``rollouts`` (a queryset) and close their open rows with
    ``reason``; return how many were failed."""
    ended = 0
    with transaction.atomic():
        ids = list(rollouts.values_list("pk", flat=True))
        for rollout_id in ids:
            if Rollout.objects.filter(pk=rollout_id, state__in=ACTIVE_ROLLOUT_STATES).exists():
                transitions.fail_rollout_row(rollout_id, actor=None, reason=reason)
                ended += 1
            for step in RolloutStep.objects.filter(rollout_id=rollout_id).exclude(
                state__in=TERMINAL_STEP_STATES
            ):
                if step.state in (StepState.RUNNING, StepState.PAUSED):
                    transitions.fail_step_row(step.pk, actor=None, reason=reason)
                else:
                    transitions.cancel_step_row(step.pk, actor=None, reason=reason)
        pod_updates.close_unobservable(ids, reason)
    return ended


def _unfinished(**filters: Any) -> Any:
    open_rows = PodUpdate.objects.filter(state__in=OPEN_POD_UPDATE_STATES).values("rollout_id")
    return Rollout.objects.filter(**filters).filter(Q(state__in=ACTIVE_ROLLOUT_STATES) | Q(pk__in=open_rows))


def on_cluster_deleting(sender: Any, instance: Any, **kwargs: Any) -> None:
    """``pre_delete`` of ``clusters.Cluster``."""
    end_rollouts(
        _unfinished(cluster_id=instance.pk),
        f"cluster {instance.name} was deleted from the hub; nothing more happens in it",
    )


def on_sidecarset_deleting(sender: Any, instance: Any, **kwargs: Any) -> None:
    """``pre_delete`` of ``sidecarhub.SidecarSet``."""
    end_rollouts(
        _unfinished(sidecarset_id=instance.pk),
        f"SidecarSet {instance.name} was deleted; nothing more is rolled out",
    )
