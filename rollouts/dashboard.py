"""The console's home dashboard (issue 16 item 1), read-only: what runs where, what is in flight,
what waits for the signed-in user, and what stopped.

- ``fleet_matrix()``: SidecarSets by clusters; each cell is the fleet view's own row for that
  cluster (``rollouts.fleet.fleet_of``: serving revision, latest rollout, pods updated, needs
  recreate, drift), so the dashboard and the SidecarSet's page can never disagree.
- ``releases_in_flight()``: the releases (``rollouts.fleet.releases_of``) of SidecarSets with an
  active rollout that are not finished, each with the summed progress of its rollouts
  (``rollouts.queries.rollouts_with_progress``).
- ``steps_awaiting_approval_by(user)``: the steps the user may approve now.
- ``stopped_rollouts()``: paused and failed rollouts, newest first, with their reasons.

Nothing here writes. Cost: the matrix is a fixed number of queries (``fleets_of``, whatever the
number of SidecarSets and clusters); the releases in flight are ``releases_of_many`` of the
SidecarSets with an active rollout (four queries for all of them); the rest is one query each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from clusters.models import Cluster
from rollouts import fleet, permissions
from rollouts.choices import ACTIVE_ROLLOUT_STATES, ReleaseStage, RolloutState
from rollouts.models import Rollout, RolloutStep
from rollouts.queries import Progress, progress_of, rollouts_with_progress
from sidecarhub.models import SidecarSet

__all__ = [
    "FINISHED_RELEASE_STAGES",
    "MAX_AWAITING",
    "MAX_MATRIX_SIDECARSETS",
    "MAX_STOPPED",
    "FleetMatrix",
    "MatrixRow",
    "ReleaseInFlight",
    "fleet_matrix",
    "releases_in_flight",
    "steps_awaiting_approval_by",
    "stopped_rollouts",
]

MAX_MATRIX_SIDECARSETS = 50
MAX_AWAITING = 100
MAX_STOPPED = 20
# A release in one of these stages is no longer in flight.
FINISHED_RELEASE_STAGES = frozenset(
    {
        ReleaseStage.COMPLETED,
        ReleaseStage.NEEDS_RECREATE,
        ReleaseStage.ROLLED_BACK,
        ReleaseStage.SUPERSEDED,
        ReleaseStage.ABORTED,
        ReleaseStage.FAILED,
    }
)


@dataclass(frozen=True)
class MatrixRow:
    """One SidecarSet of the matrix: its fleet row per matrix column (``None``: that cluster is
    not a target of this SidecarSet)."""

    sidecarset_id: int
    sidecarset: str
    current_revision: int | None
    cells: tuple[fleet.FleetCluster | None, ...]


@dataclass(frozen=True)
class FleetMatrix:
    """SidecarSets (rows, by name) by the clusters any of them targets (columns, by name).

    ``truncated``: more SidecarSets exist than the ``MAX_MATRIX_SIDECARSETS`` shown.
    """

    clusters: tuple[Cluster, ...]
    rows: tuple[MatrixRow, ...]
    truncated: bool


@dataclass(frozen=True)
class ReleaseInFlight:
    """A release not finished yet, with its rollouts' summed progress (pods of prepared steps)."""

    sidecarset_id: int
    sidecarset: str
    release: fleet.Release
    progress: Progress


def fleet_matrix(limit: int = MAX_MATRIX_SIDECARSETS) -> FleetMatrix:
    """The fleet of every SidecarSet (the first ``limit`` by name) as one matrix; ten queries at
    most, whatever the number of SidecarSets and clusters."""
    sidecarsets = list(SidecarSet.objects.order_by("name").values_list("pk", flat=True)[: limit + 1])
    truncated = len(sidecarsets) > limit
    fleets = fleet.fleets_of(sidecarsets[:limit])
    cluster_ids = {row.cluster_id for found in fleets for row in found.clusters}
    clusters = tuple(Cluster.objects.filter(pk__in=cluster_ids).order_by("name"))
    rows = []
    for found in fleets:
        by_cluster = {row.cluster_id: row for row in found.clusters}
        rows.append(
            MatrixRow(
                sidecarset_id=found.sidecarset_id,
                sidecarset=found.sidecarset,
                current_revision=found.current_revision,
                cells=tuple(by_cluster.get(cluster.pk) for cluster in clusters),
            )
        )
    return FleetMatrix(clusters, tuple(rows), truncated)


def releases_in_flight() -> list[ReleaseInFlight]:
    """Unfinished releases of the SidecarSets that have an active rollout, by SidecarSet name
    then newest revision first."""
    active = (
        Rollout.objects.filter(state__in=ACTIVE_ROLLOUT_STATES, sidecarset__isnull=False)
        .order_by("sidecarset_id")
        .values_list("sidecarset_id", flat=True)
        .distinct()
    )
    found = [
        (releases, release)
        for releases in fleet.releases_of_many(list(active))
        for release in releases.releases
        if release.stage not in FINISHED_RELEASE_STAGES
    ]
    rollout_ids = [member.rollout.id for _, release in found for member in release.clusters]
    progress = {
        rollout.pk: progress_of(rollout)
        for rollout in rollouts_with_progress(Rollout.objects.filter(pk__in=rollout_ids))
    }
    in_flight = [
        ReleaseInFlight(
            sidecarset_id=releases.sidecarset_id,
            sidecarset=releases.sidecarset,
            release=release,
            progress=_summed(progress[member.rollout.id] for member in release.clusters),
        )
        for releases, release in found
    ]
    in_flight.sort(key=lambda item: (item.sidecarset, -item.release.revision))
    return in_flight


def _summed(parts: Any) -> Progress:
    total = updated = failed = skipped = pod_gone = in_flight = 0
    for part in parts:
        total += part.total
        updated += part.updated
        failed += part.failed
        skipped += part.skipped
        pod_gone += part.pod_gone
        in_flight += part.in_flight
    return Progress(total, updated, failed, skipped, pod_gone, in_flight)


def steps_awaiting_approval_by(user: Any, limit: int = MAX_AWAITING) -> list[RolloutStep]:
    """The steps awaiting approval (in running rollouts) that ``user`` may approve now, the
    soonest to expire first; ``step.rollout`` and its cluster are loaded. The rules (permission,
    four eyes, teams) are ``rollouts.permissions.steps_awaiting_approval_by``'s, in one query."""
    return list(permissions.steps_awaiting_approval_by(user)[:limit])


def stopped_rollouts(limit: int = MAX_STOPPED) -> Sequence[Rollout]:
    """Paused and failed rollouts, the most recent state change first, annotated with their
    progress (``rollouts_with_progress``): what needs a person, and why (``reason``)."""
    return list(
        rollouts_with_progress(
            Rollout.objects.filter(state__in=(RolloutState.PAUSED, RolloutState.FAILED))
        ).order_by("-state_changed_at", "-id")[:limit]
    )
