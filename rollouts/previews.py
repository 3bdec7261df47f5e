"""Read-only views of rollouts: the next step's exact pods as an approver sees them, what a
revision means for a cluster's running pods (decision 15), and progress counts.

Nothing here writes: a preview of a step that is not prepared yet plans it live from the
cluster's pods and stores nothing. Errors are the services' (``RolloutNotFound``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clusters.kube import cached_kube_client
from clusters.models import Cluster
from rollouts.choices import TERMINAL_STEP_STATES, PodUpdateOutcome, StepState
from rollouts.lifecycle import stale_pods
from rollouts.models import PodUpdate
from rollouts.pass_inputs import PassInputs, fetch_pods
from rollouts.services import RolloutNotFound, get_rollout
from sidecarhub.changes import Actor
from sidecarhub.models import SidecarSetRevision
from sidecarhub.sidecarset import PodClass, plan_round, plan_step
from sidecarhub.sidecarset.rollout_settings import parse_step_target

__all__ = [
    "PodPreview",
    "RevisionPreview",
    "RolloutProgress",
    "StepPreview",
    "preview_next_step",
    "preview_revision",
    "rollout_progress",
]


@dataclass(frozen=True)
class PodPreview:
    """One pod as an approver sees it: in place (``in_place``) or needs recreate, and why."""

    namespace: str
    name: str
    uid: str
    in_place: bool
    reason: str


@dataclass(frozen=True)
class StepPreview:
    """The next step of a rollout: its exact pods (stored once prepared, computed live before)."""

    rollout_id: int
    step_id: int
    ordinal: int
    target: str
    state: str
    prepared: bool
    pods: tuple[PodPreview, ...]
    needs_recreate: tuple[PodPreview, ...]
    shortfall: int
    first_round: int  # pods the first round patches under maxUnavailable (live preview only)
    expires_at: Any = None


@dataclass(frozen=True)
class RevisionPreview:
    """What a revision means for one cluster's running pods (decision 15 reporting)."""

    revision_id: int
    cluster_id: int
    counts: Mapping[str, int]
    needs_recreate: tuple[PodPreview, ...]
    in_place: tuple[PodPreview, ...]


@dataclass(frozen=True)
class RolloutProgress:
    """Counts for progress bars: pods per outcome / progress state, steps per state."""

    rollout_id: int
    state: str
    total_pods: int
    pods: Mapping[str, int]
    steps: Mapping[str, int]
    current_step: int | None

    @property
    def finished_pods(self) -> int:
        return sum(count for key, count in self.pods.items() if key in PodUpdateOutcome.values)


def _preview(decision: Any, in_place: bool) -> PodPreview:
    ref = decision.ref
    return PodPreview(ref.namespace, ref.name, ref.uid, in_place, decision.reason)


def preview_next_step(rollout_id: int, *, actor: Actor, kube: Any = None) -> StepPreview | None:
    """The next step to run and its exact pods: the stored list once prepared, else computed
    live from the cluster's pods (nothing stored). ``None`` when no step is left."""
    rollout = get_rollout(rollout_id)
    step = rollout.rollout_steps.exclude(state__in=TERMINAL_STEP_STATES).order_by("ordinal").first()
    if step is None:
        return None
    if step.state != StepState.PENDING:
        pods = tuple(
            PodPreview(p["namespace"], p["name"], p["uid"], True, "approved pod list") for p in step.pods
        )
        recreate = tuple(
            PodPreview(p["namespace"], p["name"], p["uid"], False, p.get("reason", ""))
            for p in step.needs_recreate
        )
        return StepPreview(
            rollout.pk, step.pk, step.ordinal, step.target, step.state, True, pods, recreate,
            step.shortfall, 0, step.expires_at,
        )  # fmt: skip
    inputs = PassInputs(kube or cached_kube_client(rollout.live_cluster))
    core = inputs.planning_sidecarset(rollout)
    listing = inputs.pods(core)
    if not rollout.in_place:  # only the gate: nothing patched, every stale pod needs recreate
        stale = tuple(_preview(d, False) for d in stale_pods(core, listing))
        return StepPreview(
            rollout.pk, step.pk, step.ordinal, step.target, step.state, False, (), stale, 0, 0,
        )  # fmt: skip
    plan = plan_step(
        core, listing.pods, parse_step_target(step.target), namespace_labels=listing.namespace_labels
    )
    return StepPreview(
        rollout.pk, step.pk, step.ordinal, step.target, step.state, False,
        tuple(_preview(d, True) for d in plan.pods),
        tuple(_preview(d, False) for d in plan.round.of_class(PodClass.NEEDS_RECREATE)),
        plan.shortfall, len(plan.first_round),
    )  # fmt: skip


def preview_revision(revision_id: int, *, actor: Actor, cluster_id: int, kube: Any = None) -> RevisionPreview:
    """How one cluster's running pods stand towards a revision: counts per class, the pods that
    can be updated in place and those that need recreating (decision 15)."""
    revision = SidecarSetRevision.objects.filter(pk=revision_id).first()
    if revision is None:
        raise RolloutNotFound("revision", revision_id)
    cluster = Cluster.objects.filter(pk=cluster_id).first()
    if cluster is None:
        raise RolloutNotFound("cluster", cluster_id)
    core = revision.to_core()
    pods, namespace_labels = fetch_pods(kube or cached_kube_client(cluster), core)
    plan = plan_round(core, pods, namespace_labels=namespace_labels, apply_canary_selector=False)
    counts = {str(key): value for key, value in plan.class_counts().items()}
    in_place = plan.of_class(PodClass.CANDIDATE) + plan.of_class(PodClass.WAITING)
    return RevisionPreview(
        revision_id,
        cluster_id,
        counts,
        tuple(_preview(d, False) for d in plan.of_class(PodClass.NEEDS_RECREATE)),
        tuple(_preview(d, True) for d in in_place),
    )


def rollout_progress(rollout_id: int) -> RolloutProgress:
    """Counts for progress bars and the CLI (two small aggregate queries)."""
    rollout = get_rollout(rollout_id)
    pods = PodUpdate.objects.filter(rollout=rollout).counts_by_outcome()
    steps: dict[str, int] = {}
    current: int | None = None
    for ordinal, state in rollout.rollout_steps.order_by("ordinal").values_list("ordinal", "state"):
        steps[state] = steps.get(state, 0) + 1
        if current is None and state not in TERMINAL_STEP_STATES:
            current = ordinal
    # Over all steps, as ``rollouts.queries`` counts it: unprepared steps via ``planned_pods``.
    total = max(sum(rollout.rollout_steps.values_list("pod_count", flat=True)), rollout.planned_pods or 0)
    return RolloutProgress(rollout.pk, rollout.state, total, pods, steps, current)
