"""The hub's rollout state as it appears in each cluster's custom resource (``status.hub``).

``clusters.push.reconcile_cluster`` calls the registered provider while it writes a
SidecarSet's status; the rollouts app registers :func:`hub_status` in its ``ready()`` (so the
clusters app never imports rollouts).
"""

from __future__ import annotations

from typing import Any

from rollouts.choices import TERMINAL_STEP_STATES
from rollouts.models import PodUpdate, Rollout

__all__ = ["hub_status"]


def hub_status(cluster_id: int, sidecarset_name: str) -> dict[str, Any]:
    """The latest rollout of the SidecarSet in the cluster, in camelCase (empty when none)."""
    rollout = (
        Rollout.objects.filter(cluster_id=cluster_id, sidecarset_name=sidecarset_name)
        .order_by("-created_at", "-pk")
        .first()
    )
    if rollout is None:
        return {}
    steps = list(rollout.rollout_steps.order_by("ordinal").values_list("ordinal", "state"))
    current = next(((ordinal, state) for ordinal, state in steps if state not in TERMINAL_STEP_STATES), None)
    pods = PodUpdate.objects.filter(rollout=rollout).counts_by_outcome()
    return {
        "rollout": {
            "id": rollout.pk,
            "kind": rollout.kind,
            "state": rollout.state,
            "outcome": rollout.outcome,
            "needsRecreate": rollout.needs_recreate,
            "reason": rollout.reason,
            "fromRevision": rollout.from_revision_number or 0,
            "toRevision": rollout.to_revision_number,
            "steps": len(steps),
            "currentStep": current[0] if current else 0,
            "currentStepState": current[1] if current else "",
            "pods": {key: int(value) for key, value in sorted(pods.items())},
        }
    }
