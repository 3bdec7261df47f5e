"""Read-only views of rollouts: the next step's exact pods as an approver sees them, what a
revision means for a cluster's running pods (decision 15), and progress counts.

Nothing here writes: a preview of a step that is not prepared yet plans it live from the
cluster's pods and stores nothing. Errors are the services' (``RolloutNotFound``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from django.db.models import Max

from clusters.kube import KubeError, cached_kube_client, open_kube_client
from clusters.models import Cluster
from clusters.targeting import SkippedCluster, resolve_targets_and_skips_of
from rollouts.choices import ACTIVE_ROLLOUT_STATES, TERMINAL_STEP_STATES, PodUpdateOutcome, StepState
from rollouts.lifecycle import SERVE_STEP, stale_pods
from rollouts.models import PodUpdate, Rollout
from rollouts.pass_inputs import PassInputs, fetch_pods
from rollouts.services import (
    ReleaseMember,
    RolloutError,
    RolloutNotFound,
    get_rollout,
    plan_release,
    resolve_settings,
    serving_revisions,
)
from sidecarhub.changes import Actor
from sidecarhub.models import SidecarSet, SidecarSetRevision
from sidecarhub.sidecarset import ChangeKind, PodClass, classify_change, plan_round, plan_step
from sidecarhub.sidecarset import SidecarSet as CoreSidecarSet
from sidecarhub.sidecarset.rollout_settings import parse_step_target

__all__ = [
    "PodPreview",
    "PublishPreview",
    "PublishPreviewCluster",
    "RevisionPreview",
    "RolloutProgress",
    "StepPreview",
    "SupersededRollout",
    "preview_next_step",
    "preview_publish",
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


@dataclass(frozen=True)
class PublishPreviewCluster:
    """What publishing would do in one target cluster: a rollout (steps, in place or only a
    gate) or none (``why``), and its running pods towards the new definition, read live:
    ``pods_in_place`` can be updated in place, ``pods_need_recreate`` cannot (``None`` when the
    pods were not read; ``pods_error`` says why)."""

    cluster_id: int
    cluster: str
    wave: int
    held: bool
    held_reason: str
    serving_revision: int | None
    creates_rollout: bool
    in_place: bool
    why: str
    steps: tuple[str, ...]
    pods_in_place: int | None
    pods_need_recreate: int | None
    pods_error: str
    needs_recreate: tuple[PodPreview, ...]  # the first few, with their reasons


@dataclass(frozen=True)
class SupersededRollout:
    """An active rollout that publishing aborts ("superseded"): the newer revision wins."""

    id: int
    cluster: str
    to_revision: int
    state: str


@dataclass(frozen=True)
class PublishPreview:
    """What publishing the SidecarSet's unpublished definition would do (nothing is written):
    the revision it would become, the change kind, the rollout steps and, per target cluster by
    wave, the rollout it would get and its pods in place vs needing recreate; and the clusters
    its label selectors match but may not select (``skipped_clusters``: another team's)."""

    sidecarset: str
    from_revision: int | None
    to_revision: int
    change_kind: str
    nothing_to_publish: bool
    steps: tuple[str, ...]
    settings_error: str
    clusters: tuple[PublishPreviewCluster, ...]
    supersedes: tuple[SupersededRollout, ...]
    skipped_clusters: tuple[SkippedCluster, ...] = ()

    @property
    def waves(self) -> tuple[tuple[int, tuple[PublishPreviewCluster, ...]], ...]:
        """``(wave, clusters)`` in rollout order (clusters that get a rollout only)."""
        numbers = sorted({cluster.wave for cluster in self.clusters if cluster.creates_rollout})
        return tuple(
            (wave, tuple(c for c in self.clusters if c.creates_rollout and c.wave == wave))
            for wave in numbers
        )

    @property
    def rollouts(self) -> int:
        return sum(1 for cluster in self.clusters if cluster.creates_rollout)


# Pods that need recreate listed per cluster in a publish preview (the counts are complete).
PUBLISH_PREVIEW_PODS = 20
# Clusters whose pods a publish preview reads at the same time.
PUBLISH_PREVIEW_READERS = 8


def _pods_towards(core: CoreSidecarSet, kube: Any, *, in_place: bool) -> tuple[int, tuple[PodPreview, ...]]:
    """How many running pods can take ``core`` in place, and those that need recreate: the same
    classes the rollout uses (``plan_round``; with no in-place steps every stale pod, as
    ``lifecycle.stale_pods``)."""
    listing = PassInputs(kube).pods(core)
    if not in_place:
        return 0, tuple(_preview(d, False) for d in stale_pods(core, listing))
    plan = plan_round(
        core, listing.pods, namespace_labels=listing.namespace_labels, apply_canary_selector=False
    )
    in_place_count = len(plan.of_class(PodClass.CANDIDATE)) + len(plan.of_class(PodClass.WAITING))
    return in_place_count, tuple(_preview(d, False) for d in plan.of_class(PodClass.NEEDS_RECREATE))


def preview_publish(
    sidecarset_id: int,
    *,
    actor: Actor,
    read_pods: bool = True,
    kube_for: Callable[[Cluster], AbstractContextManager[Any]] | None = None,
) -> PublishPreview:
    """What publishing the SidecarSet now would do, computed by the same rule as the publish
    (``services.plan_release``, ``services.resolve_settings``) on its unpublished definition.
    ``read_pods``: read each rollout cluster's pods (one LIST each, one attempt: a person is
    waiting); a cluster that cannot be read gets ``pods_error`` instead of counts."""
    sidecarset = SidecarSet.objects.select_related("current_revision").filter(pk=sidecarset_id).first()
    if sidecarset is None:
        raise RolloutNotFound("SidecarSet", sidecarset_id)
    current = sidecarset.current_revision
    draft_core = sidecarset.to_core()
    number = (sidecarset.revisions.aggregate(highest=Max("number"))["highest"] or 0) + 1
    nothing = not sidecarset.has_unpublished_changes
    change_kind = classify_change(current.to_core(), draft_core) if current is not None else ChangeKind.OTHER
    # The revision it would become, never saved: the settings are resolved exactly as for the
    # published one.
    draft = SidecarSetRevision(
        sidecarset=sidecarset,
        number=number,
        name=f"{sidecarset.name}-{number}",
        document=sidecarset.to_document(),
        rollout_policy=dict(sidecarset.rollout_policy),  # publish freezes the draft's policy
    )
    steps: tuple[str, ...] = ()
    settings_error = ""
    try:
        steps = tuple(str(step) for step in resolve_settings(draft).steps or ())
    except RolloutError as exc:
        settings_error = str(exc)
    resolution = resolve_targets_and_skips_of([sidecarset.pk])
    targets = resolution.waves[sidecarset.pk]
    members = (
        []
        if nothing or change_kind == ChangeKind.NONE
        else plan_release(draft_core, number, targets, serving_revisions(sidecarset.pk, targets))
    )
    clusters = Cluster.objects.in_bulk([member.cluster_id for member in members])
    opener = kube_for or (lambda cluster: open_kube_client(cluster, max_attempts=1))

    def read(member: ReleaseMember) -> tuple[int | None, tuple[PodPreview, ...], str]:
        """(pods in place, pods that need recreate, error) of one cluster; no database access,
        so the clusters are read in parallel (an unreachable one costs its timeout once)."""
        cluster = clusters[member.cluster_id]
        try:
            with opener(cluster) as kube:
                in_place, recreate = _pods_towards(draft_core, kube, in_place=member.in_place)
            return in_place, recreate, ""
        except KubeError as exc:
            return None, (), f"cannot read the pods of cluster {cluster.name} now: {exc}"

    to_read = [m for m in members if read_pods and m.creates_rollout and m.cluster_id in clusters]
    pods: dict[int, tuple[int | None, tuple[PodPreview, ...], str]] = {}
    if to_read:
        with ThreadPoolExecutor(max_workers=min(PUBLISH_PREVIEW_READERS, len(to_read))) as pool:
            pods = dict(zip((m.cluster_id for m in to_read), pool.map(read, to_read), strict=True))
    rows = []
    for member in members:
        cluster = clusters.get(member.cluster_id)
        if cluster is None:
            continue
        in_place, recreate, error = pods.get(member.cluster_id, (None, (), ""))
        rows.append(
            PublishPreviewCluster(
                cluster_id=cluster.pk,
                cluster=cluster.name,
                wave=member.wave,
                held=cluster.held,
                held_reason=cluster.held_reason,
                serving_revision=member.source.number if member.source is not None else None,
                creates_rollout=member.creates_rollout,
                in_place=member.in_place,
                why=member.why,
                steps=(steps if member.in_place else (SERVE_STEP,)) if member.creates_rollout else (),
                pods_in_place=in_place,
                pods_need_recreate=len(recreate) if in_place is not None else None,
                pods_error=error,
                needs_recreate=recreate[:PUBLISH_PREVIEW_PODS],
            )
        )
    # What ``services.create_rollouts_for_revision`` aborts when it creates the release: every
    # active rollout of the SidecarSet (they go to another revision) — unless pods see no change.
    superseded = (
        Rollout.objects.filter(sidecarset_id=sidecarset.pk, state__in=ACTIVE_ROLLOUT_STATES)
        .order_by("wave", "cluster_name")
        .values_list("pk", "cluster_name", "to_revision_number", "state")
        if not nothing and change_kind != ChangeKind.NONE
        else []
    )
    return PublishPreview(
        sidecarset=sidecarset.name,
        from_revision=current.number if current is not None else None,
        to_revision=number,
        change_kind=str(change_kind),
        nothing_to_publish=nothing,
        steps=steps,
        settings_error=settings_error,
        clusters=tuple(rows),
        supersedes=tuple(SupersededRollout(*row) for row in superseded),
        skipped_clusters=resolution.skipped[sidecarset.pk],
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
