"""The fleet view (issue 13 §5), read-only: where each target cluster of a SidecarSet stands, and
where each of its releases stands.

- ``fleet_of(sidecarset_id)`` (``fleets_of(ids)``: many at once): one row per target cluster
  (placements the hub wants, plus clusters the targets select that have no placement yet): its
  wave and hold, the revision it serves against the SidecarSet's current one, its latest
  rollout, its pod counters (observed in the cluster by the placement's status refresh: not a
  rollout's own count), its needs-recreate count and its drift; and the clusters its label
  selectors match but skip (another team's: ``clusters.targeting``), so a view can say why.
- ``releases_of(sidecarset_id)`` (``releases_of_many(ids)``: many at once): the newest releases
  (a published revision with rollouts), each with its rollouts grouped by wave and one overall
  stage (``ReleaseStage``) in words.

Nothing here writes. Each function costs a fixed number of queries, however many clusters,
rollouts or steps there are (STYLE P5): rows are fetched per kind in one query each and joined
in Python. Rollouts of a release are its ``update`` rollouts (``to_revision`` is the release's
revision); a ``rollback`` rollout belongs to the release of the rollout it rolls back.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db.models import F, Max, OuterRef, Q, Subquery, Window
from django.db.models.functions import DenseRank

from clusters.models import Cluster, DriftedPod, SidecarSetPlacement
from clusters.targeting import SkippedCluster, resolve_targets_and_skips_of
from rollouts.choices import (
    ACTIVE_ROLLOUT_STATES,
    TERMINAL_STEP_STATES,
    ReleaseStage,
    RolloutKind,
    RolloutState,
    StepState,
)
from rollouts.models import Rollout, RolloutStep
from rollouts.transitions import RolloutNotFound
from sidecarhub.models import SidecarSet

__all__ = [
    "DEFAULT_RELEASES",
    "MAX_RELEASES",
    "Fleet",
    "FleetCluster",
    "Release",
    "ReleaseCluster",
    "ReleaseWave",
    "Releases",
    "RolloutSummary",
    "fleet_of",
    "fleets_of",
    "release_stage",
    "releases_of",
    "releases_of_many",
]

DEFAULT_RELEASES = 10
MAX_RELEASES = 50


@dataclass(frozen=True)
class RolloutSummary:
    """One rollout as the fleet view shows it.

    ``step_ordinal`` / ``step_state``: the first step not finished, else the last step (``None``
    when the rollout has no step). ``needs_recreate``: a completed rollout's own count (lowered
    when a restart of its workloads completes); else the most pods any of its steps saw that
    cannot be updated in place (each preparation counts them all, so the largest is the latest
    full count).
    """

    id: int
    kind: str
    from_revision: int | None
    to_revision: int
    wave: int
    state: str
    reason: str
    in_place: bool
    step_ordinal: int | None
    step_state: str | None
    steps_total: int
    needs_recreate: int
    state_changed_at: datetime
    created_at: datetime

    @property
    def awaiting_approval(self) -> bool:
        return self.step_state == StepState.AWAITING_APPROVAL

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_ROLLOUT_STATES


@dataclass(frozen=True)
class FleetCluster:
    """One target cluster of a SidecarSet.

    ``targeted``: a target selects it now; ``placed``: the hub has a placement there (a target
    without one has nothing pushed yet; a placement without a target is being removed).
    ``behind``: it serves an older revision than the SidecarSet's current one (or none yet).
    Pod counters are what the cluster's status refresh observed there (Kruise's matchedPods /
    updatedPods / readyPods / updatedReadyPods: every matching pod now, pods created since a
    rollout began included; ``updated``: on the revision the cluster's resource carries), not a
    rollout's own count of the pods it updated; ``None`` until first observed.
    ``drift``: pods in the cluster that lack this SidecarSet's injection.
    """

    cluster_id: int
    cluster: str
    wave: int
    targeted: bool
    placed: bool
    placement_state: str | None
    placement_error: str
    held: bool
    held_reason: str
    held_by: str
    held_at: datetime | None
    serving_revision: int | None
    serving_since: datetime | None
    current_revision: int | None
    behind: bool
    latest_rollout: RolloutSummary | None
    matched_pods: int | None
    updated_pods: int | None
    ready_pods: int | None
    updated_ready_pods: int | None
    status_observed_at: datetime | None
    needs_recreate: int
    drift: int


@dataclass(frozen=True)
class Fleet:
    """Every target cluster of one SidecarSet, by wave then name, and the clusters its label
    selectors match but may not select (``skipped_clusters``: another team's, by name)."""

    sidecarset_id: int
    sidecarset: str
    current_revision: int | None
    clusters: tuple[FleetCluster, ...]
    skipped_clusters: tuple[SkippedCluster, ...] = ()


@dataclass(frozen=True)
class ReleaseCluster:
    """One cluster of a release: its rollout and, when it was rolled back, the rollback."""

    cluster_id: int | None  # None: the cluster was deleted from the hub (``cluster`` keeps its name)
    cluster: str
    held: bool
    held_reason: str
    rollout: RolloutSummary
    rollback: RolloutSummary | None

    @property
    def rolled_back(self) -> bool:
        return self.rollback is not None


@dataclass(frozen=True)
class ReleaseWave:
    """The clusters of one wave of a release, by name."""

    wave: int
    clusters: tuple[ReleaseCluster, ...]


@dataclass(frozen=True)
class Release:
    """One published revision across its target clusters (decision 17).

    ``stage`` is the ``ReleaseStage`` value and ``stage_text`` says it for people ("wave 1
    awaiting approval", "completed, 4 pods need recreate", "rolled back in cluster prod-eu").
    ``needs_recreate`` sums its rollouts' counts; ``current`` is True for the SidecarSet's
    current revision.
    """

    revision: int
    current: bool
    stage: str
    stage_text: str
    needs_recreate: int
    started_at: datetime
    waves: tuple[ReleaseWave, ...]

    @property
    def clusters(self) -> tuple[ReleaseCluster, ...]:
        return tuple(cluster for wave in self.waves for cluster in wave.clusters)


@dataclass(frozen=True)
class Releases:
    """The newest releases of one SidecarSet, newest first (at most ``limit``)."""

    sidecarset_id: int
    sidecarset: str
    current_revision: int | None
    releases: tuple[Release, ...]


# --- shared ------------------------------------------------------------------------------------


def _load_sidecarset(sidecarset_id: int) -> SidecarSet:
    sidecarset = SidecarSet.objects.select_related("current_revision").filter(pk=sidecarset_id).first()
    if sidecarset is None:
        raise RolloutNotFound("SidecarSet", sidecarset_id)
    return sidecarset


def _current_number(sidecarset: SidecarSet) -> int | None:
    return sidecarset.current_revision.number if sidecarset.current_revision is not None else None


def _summaries(rollouts: Sequence[Rollout]) -> dict[int, RolloutSummary]:
    """Rollout id -> summary, with their steps read in ONE query."""
    steps: dict[int, list[tuple[int, str, int]]] = defaultdict(list)
    rows = (
        RolloutStep.objects.filter(rollout_id__in=[rollout.pk for rollout in rollouts])
        .order_by("rollout_id", "ordinal")
        .values_list("rollout_id", "ordinal", "state", "needs_recreate_count")
    )
    for rollout_id, ordinal, state, needs_recreate in rows:
        steps[rollout_id].append((ordinal, state, needs_recreate))
    summaries: dict[int, RolloutSummary] = {}
    for rollout in rollouts:
        own = steps.get(rollout.pk, [])
        shown = next((step for step in own if step[1] not in TERMINAL_STEP_STATES), own[-1] if own else None)
        summaries[rollout.pk] = RolloutSummary(
            id=rollout.pk,
            kind=rollout.kind,
            from_revision=rollout.from_revision_number,
            to_revision=rollout.to_revision_number,
            wave=rollout.wave,
            state=rollout.state,
            reason=rollout.reason,
            in_place=rollout.in_place,
            step_ordinal=shown[0] if shown else None,
            step_state=shown[1] if shown else None,
            steps_total=len(own),
            needs_recreate=(
                rollout.needs_recreate
                if rollout.state == RolloutState.COMPLETED
                else max((step[2] for step in own), default=0)
            ),
            state_changed_at=rollout.state_changed_at,
            created_at=rollout.created_at,
        )
    return summaries


def _drift_counts(sidecarset_names: Iterable[str], cluster_ids: Iterable[int]) -> dict[tuple[str, int], int]:
    """(SidecarSet name, cluster id) -> drifted pods of that cluster that lack that SidecarSet
    (one query; none without names).

    SQLite (the quick start) has no JSON ``contains``: the database narrows the rows with a
    substring match on each quoted name (names are letters, digits and '-', so ``"web"`` never
    matches inside ``"web-2"``), and the exact, case-sensitive membership is checked here.
    """
    names = sorted(set(sidecarset_names))
    counts: dict[tuple[str, int], int] = defaultdict(int)
    if not names:
        return counts
    any_name = Q()
    for name in names:
        any_name |= Q(missing_sidecarsets__icontains=f'"{name}"')
    rows = DriftedPod.objects.filter(any_name, cluster_id__in=list(cluster_ids)).values_list(
        "cluster_id", "missing_sidecarsets"
    )
    for cluster_id, missing in rows:
        for name in names:
            if name in (missing or []):
                counts[(name, cluster_id)] += 1
    return counts


# --- fleet -------------------------------------------------------------------------------------


def fleet_of(sidecarset_id: int) -> Fleet:
    """Every target cluster of the SidecarSet with where it stands (see ``FleetCluster``).

    Target clusters: the placements the hub wants (``should_exist``) plus the clusters its
    targets select that have no placement yet; ``skipped_clusters``: those its label selectors
    match but may not select (another team's), read with the targets. Eight queries at most
    (seven when no target is a label selector), whatever the number of clusters, skipped or
    not (``fleets_of``). ``RolloutNotFound`` when the SidecarSet does not exist.
    """
    found = fleets_of([sidecarset_id])
    if not found:
        raise RolloutNotFound("SidecarSet", sidecarset_id)
    return found[0]


def fleets_of(sidecarset_ids: Sequence[int]) -> list[Fleet]:
    """``fleet_of`` of each SidecarSet, in the order given (ids of SidecarSets that do not exist
    are left out), in the same eight queries at most, whatever the number of SidecarSets and
    clusters (the home dashboard's fleet matrix)."""
    sidecarsets = SidecarSet.objects.select_related("current_revision").in_bulk(list(sidecarset_ids))
    ids = [sidecarset_id for sidecarset_id in sidecarset_ids if sidecarset_id in sidecarsets]
    if not ids:
        return []
    resolution = resolve_targets_and_skips_of(ids)
    targets = resolution.waves
    placements = {
        (placement.sidecarset_id, placement.cluster_id): placement
        for placement in SidecarSetPlacement.objects.filter(
            sidecarset_id__in=ids, should_exist=True
        ).select_related("serving_revision")
    }
    cluster_ids_of: dict[int, set[int]] = {
        sidecarset_id: set(targets[sidecarset_id]) for sidecarset_id in ids
    }
    for placed_sidecarset_id, cluster_id in placements:
        if placed_sidecarset_id is not None:  # filtered by id: never None here
            cluster_ids_of[placed_sidecarset_id].add(cluster_id)
    all_cluster_ids = set().union(*cluster_ids_of.values())
    if not all_cluster_ids:
        return [
            Fleet(
                sidecarset_id,
                sidecarsets[sidecarset_id].name,
                _current_number(sidecarsets[sidecarset_id]),
                (),
                resolution.skipped[sidecarset_id],
            )
            for sidecarset_id in ids
        ]
    clusters = Cluster.objects.in_bulk(all_cluster_ids)
    newest = Rollout.objects.filter(
        sidecarset_id=OuterRef("sidecarset_id"), cluster_id=OuterRef("cluster_id")
    ).order_by("-created_at", "-id")
    latest = list(
        Rollout.objects.filter(sidecarset_id__in=ids, cluster_id__in=all_cluster_ids).filter(
            pk=Subquery(newest.values("pk")[:1])
        )
    )
    summaries = _summaries(latest)
    latest_of = {(rollout.sidecarset_id, rollout.cluster_id): summaries[rollout.pk] for rollout in latest}
    drift = _drift_counts((sidecarsets[sidecarset_id].name for sidecarset_id in ids), all_cluster_ids)
    return [
        _fleet(
            sidecarsets[sidecarset_id],
            cluster_ids_of[sidecarset_id],
            targets[sidecarset_id],
            resolution.skipped[sidecarset_id],
            placements,
            clusters,
            latest_of,
            drift,
        )
        for sidecarset_id in ids
    ]


def _fleet(
    sidecarset: SidecarSet,
    cluster_ids: Iterable[int],
    targets: dict[int, int],
    skipped: tuple[SkippedCluster, ...],
    placements: dict[tuple[int | None, int], SidecarSetPlacement],
    clusters: dict[int, Cluster],
    latest_of: dict[tuple[int | None, int | None], RolloutSummary],
    drift: dict[tuple[str, int], int],
) -> Fleet:
    """One SidecarSet's fleet from the rows ``fleets_of`` read for all of them."""
    current = _current_number(sidecarset)
    rows: list[FleetCluster] = []
    for cluster_id in cluster_ids:
        cluster = clusters.get(cluster_id)
        if cluster is None:  # deleted between the two reads
            continue
        placement = placements.get((sidecarset.pk, cluster_id))
        serving = placement.serving_revision if placement is not None else None
        serving_number = serving.number if serving is not None else None
        rollout = latest_of.get((sidecarset.pk, cluster_id))
        rows.append(
            FleetCluster(
                cluster_id=cluster_id,
                cluster=cluster.name,
                wave=targets.get(cluster_id, placement.wave if placement is not None else 0),
                targeted=cluster_id in targets,
                placed=placement is not None,
                placement_state=placement.state if placement is not None else None,
                placement_error=placement.last_error if placement is not None else "",
                held=cluster.held,
                held_reason=cluster.held_reason,
                held_by=cluster.held_by,
                held_at=cluster.held_at,
                serving_revision=serving_number,
                serving_since=placement.serving_since if placement is not None else None,
                current_revision=current,
                behind=current is not None and (serving_number is None or serving_number < current),
                latest_rollout=rollout,
                matched_pods=placement.matched_pods if placement is not None else None,
                updated_pods=placement.updated_pods if placement is not None else None,
                ready_pods=placement.ready_pods if placement is not None else None,
                updated_ready_pods=placement.updated_ready_pods if placement is not None else None,
                status_observed_at=placement.status_observed_at if placement is not None else None,
                needs_recreate=rollout.needs_recreate if rollout is not None else 0,
                drift=drift.get((sidecarset.name, cluster_id), 0),
            )
        )
    rows.sort(key=lambda row: (row.wave, row.cluster))
    return Fleet(sidecarset.pk, sidecarset.name, current, tuple(rows), skipped)


# --- releases ----------------------------------------------------------------------------------


def _names(clusters: Iterable[ReleaseCluster]) -> str:
    names = sorted({cluster.cluster for cluster in clusters})
    return ("cluster " if len(names) == 1 else "clusters ") + ", ".join(names)


def release_stage(
    clusters: Sequence[ReleaseCluster], *, superseded_by: int | None
) -> tuple[ReleaseStage, str]:
    """The overall stage of a release from its clusters, and the words for it.

    In this order: rolled back anywhere; superseded (a newer revision was published before it
    finished everywhere; ``superseded_by`` is that revision, ``None`` when there is none); the
    first wave with an unfinished rollout in a cluster that is not held (awaiting approval,
    paused, running, else waiting); only held clusters left; failed or aborted somewhere;
    completed (with the pods that still need recreate)."""
    rolled_back = [cluster for cluster in clusters if cluster.rolled_back]
    if rolled_back:
        return ReleaseStage.ROLLED_BACK, f"rolled back in {_names(rolled_back)}"
    finished = all(cluster.rollout.state == RolloutState.COMPLETED for cluster in clusters)
    if superseded_by is not None and not finished:
        return ReleaseStage.SUPERSEDED, f"superseded by revision {superseded_by}"
    moving = [cluster for cluster in clusters if cluster.rollout.active and not cluster.held]
    if moving:
        wave = min(cluster.rollout.wave for cluster in moving)
        in_wave = [cluster for cluster in moving if cluster.rollout.wave == wave]
        awaiting = [cluster for cluster in in_wave if cluster.rollout.awaiting_approval]
        if awaiting:
            return ReleaseStage.AWAITING_APPROVAL, f"wave {wave} awaiting approval in {_names(awaiting)}"
        paused = [cluster for cluster in in_wave if cluster.rollout.state == RolloutState.PAUSED]
        if paused:
            return ReleaseStage.PAUSED, f"wave {wave} paused in {_names(paused)}"
        if any(cluster.rollout.state == RolloutState.RUNNING for cluster in in_wave):
            return ReleaseStage.RUNNING, f"wave {wave} running"
        return ReleaseStage.WAITING, f"waiting for wave {wave}"
    held = [cluster for cluster in clusters if cluster.rollout.active]
    if held:
        return ReleaseStage.HELD, f"held in {_names(held)}"
    failed = [cluster for cluster in clusters if cluster.rollout.state == RolloutState.FAILED]
    if failed:
        return ReleaseStage.FAILED, f"failed in {_names(failed)}"
    aborted = [cluster for cluster in clusters if cluster.rollout.state == RolloutState.ABORTED]
    if aborted:
        return ReleaseStage.ABORTED, f"aborted in {_names(aborted)}"
    needs_recreate = sum(cluster.rollout.needs_recreate for cluster in clusters)
    if needs_recreate:
        pods = "1 pod needs" if needs_recreate == 1 else f"{needs_recreate} pods need"
        return ReleaseStage.NEEDS_RECREATE, f"completed, {pods} recreate"
    return ReleaseStage.COMPLETED, "completed"


def _waves(clusters: Iterable[ReleaseCluster]) -> tuple[ReleaseWave, ...]:
    by_wave: dict[int, list[ReleaseCluster]] = defaultdict(list)
    for cluster in clusters:
        by_wave[cluster.rollout.wave].append(cluster)
    return tuple(
        ReleaseWave(wave, tuple(sorted(members, key=lambda member: member.cluster)))
        for wave, members in sorted(by_wave.items())
    )


def releases_of(
    sidecarset_id: int, *, limit: int = DEFAULT_RELEASES, revision: int | None = None
) -> Releases:
    """The newest ``limit`` releases of the SidecarSet (at most ``MAX_RELEASES``), newest first,
    each with its rollouts by wave and its stage (see ``release_stage``); only the release of
    revision number ``revision`` when given (none when it has no rollout).

    A release is a published revision that has ``update`` rollouts (a first publish, or a change
    pods do not see, has none: every cluster served it at once). Four queries, whatever the
    number of releases, clusters and steps (``releases_of_many``). ``RolloutNotFound`` when the
    SidecarSet does not exist.
    """
    found = releases_of_many([sidecarset_id], limit=limit, revision=revision)
    if not found:
        raise RolloutNotFound("SidecarSet", sidecarset_id)
    return found[0]


def releases_of_many(
    sidecarset_ids: Sequence[int], *, limit: int = DEFAULT_RELEASES, revision: int | None = None
) -> list[Releases]:
    """``releases_of`` of each SidecarSet, in the order given (ids of SidecarSets that do not
    exist are left out), in the same four queries whatever the number of SidecarSets, releases,
    clusters and steps (the home dashboard's releases in flight)."""
    limit = max(1, min(limit, MAX_RELEASES))
    sidecarsets = SidecarSet.objects.select_related("current_revision").in_bulk(list(sidecarset_ids))
    ids = [sidecarset_id for sidecarset_id in sidecarset_ids if sidecarset_id in sidecarsets]
    if not ids:
        return []
    update_rollouts = Rollout.objects.filter(sidecarset_id__in=ids, kind=RolloutKind.UPDATE)
    if revision is not None:
        update_rollouts = update_rollouts.filter(to_revision_number=revision)
    # The rollouts of each SidecarSet's newest ``limit`` revisions that have any: ranked per
    # SidecarSet in the database, so one query however many SidecarSets are asked for.
    newest_first = Window(
        DenseRank(), partition_by=F("sidecarset_id"), order_by=F("to_revision_number").desc()
    )
    updates = list(
        update_rollouts.annotate(release_rank=newest_first)
        .filter(release_rank__lte=limit)
        .select_related("cluster")
        .order_by("created_at", "id")
    )
    # The newest rollback of each rolled-back rollout (a rollback can itself be rolled back
    # only through a new publish, so one level is all there is).
    newest_rollbacks = (
        Rollout.objects.filter(
            kind=RolloutKind.ROLLBACK, rollback_of_id__in=[rollout.pk for rollout in updates]
        )
        .order_by()
        .values("rollback_of_id")
        .annotate(newest=Max("id"))
        .values("newest")
    )
    rollbacks = list(Rollout.objects.filter(pk__in=Subquery(newest_rollbacks))) if updates else []
    summaries = _summaries([*updates, *rollbacks])
    rollback_of = {rollout.rollback_of_id: summaries[rollout.pk] for rollout in rollbacks}
    updates_of: dict[int, list[Rollout]] = defaultdict(list)
    for rollout in updates:
        if rollout.sidecarset_id is not None:  # filtered by id: never None here
            updates_of[rollout.sidecarset_id].append(rollout)
    return [
        _releases(sidecarsets[sidecarset_id], updates_of[sidecarset_id], summaries, rollback_of)
        for sidecarset_id in ids
    ]


def _releases(
    sidecarset: SidecarSet,
    updates: Sequence[Rollout],
    summaries: dict[int, RolloutSummary],
    rollback_of: dict[int | None, RolloutSummary],
) -> Releases:
    """One SidecarSet's releases from its update rollouts (oldest first) and their summaries."""
    current = _current_number(sidecarset)
    by_revision: dict[int, list[ReleaseCluster]] = defaultdict(list)
    started: dict[int, datetime] = {}
    for rollout in updates:
        cluster = rollout.cluster
        by_revision[rollout.to_revision_number].append(
            ReleaseCluster(
                cluster_id=rollout.cluster_id,
                cluster=rollout.cluster_name,
                held=cluster.held if cluster is not None else False,
                held_reason=cluster.held_reason if cluster is not None else "",
                rollout=summaries[rollout.pk],
                rollback=rollback_of.get(rollout.pk),
            )
        )
        started.setdefault(rollout.to_revision_number, rollout.created_at)

    releases: list[Release] = []
    newer: int | None = None  # the next newer release: what superseded this one
    for number in sorted(by_revision, reverse=True):
        clusters = by_revision[number]
        superseded_by = None
        if current is not None and number < current:
            superseded_by = newer if newer is not None else current
        stage, text = release_stage(clusters, superseded_by=superseded_by)
        releases.append(
            Release(
                revision=number,
                current=number == current,
                stage=stage,
                stage_text=text,
                needs_recreate=sum(cluster.rollout.needs_recreate for cluster in clusters),
                started_at=started[number],
                waves=_waves(clusters),
            )
        )
        newer = number
    return Releases(sidecarset.pk, sidecarset.name, current, tuple(releases))
