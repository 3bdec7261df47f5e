"""Which clusters a SidecarSet's targets select, and which SidecarSets select a cluster.

The two directions of one rule (a target names a cluster, or selects clusters by label; the
lowest wave wins): ``resolve_targets`` from a SidecarSet's side, for placements and rollouts;
``sidecarset_ids_targeting`` from a cluster's side, for admission and drift. Queries only: no
kube client, no tasks, so every module that needs the rule can import it.

Teams (``sidecarhub.teams``): a label selector stays inside its SidecarSet's team. A selector
target of a SidecarSet owned by a team selects only clusters without a team or owned by that
same team; another team's cluster is skipped even when its labels match (a new placement is
served at once, with no one of that team to agree). A SidecarSet without a team selects by
labels alone, as before teams existed. To serve a SidecarSet in another team's cluster, name the
cluster in an explicit target: that is checked when the target is written (its author must be
allowed in the cluster's team, e.g. an organisation admin). The rule depends on the owners
only, never on who wrote the target, so every reader (placements, releases, previews, fleet
views, the dashboard, admission) resolves the same clusters. ``resolve_targets_and_skips_of``
also names the clusters skipped this way (``SkippedCluster``), in the same queries, for the views
that explain why a cluster whose labels match is not targeted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Q

from clusters.models import Cluster, SidecarSetTarget
from sidecarhub.models import SidecarSet
from sidecarhub.sidecarset import LabelSelector

__all__ = [
    "SkippedCluster",
    "TargetResolution",
    "resolve_targets",
    "resolve_targets_and_skips_of",
    "resolve_targets_of",
    "selector_may_select",
    "sidecarset_ids_targeting",
]


@dataclass(frozen=True)
class SkippedCluster:
    """A cluster a label selector target of a SidecarSet matches but may not select: another
    team owns it (the module docstring's team rule). ``team``: the cluster's team;
    ``sidecarset_team``: the SidecarSet's."""

    cluster_id: int
    cluster: str
    team: str
    sidecarset_team: str

    @property
    def reason(self) -> str:
        """Why it is not targeted and what would target it, for people."""
        return (
            f"owned by team {self.team}, and this SidecarSet's label selectors select only clusters "
            f"of team {self.sidecarset_team} or without a team: add it as an explicit target"
        )


@dataclass(frozen=True)
class TargetResolution:
    """What the targets of some SidecarSets select: SidecarSet id -> (cluster id -> wave), and
    SidecarSet id -> the clusters its selectors match but skip, sorted by name."""

    waves: dict[int, dict[int, int]]
    skipped: dict[int, tuple[SkippedCluster, ...]]


def selector_may_select(sidecarset_team_id: int | None, cluster_team_id: int | None) -> bool:
    """Whether a selector target of a SidecarSet owned by ``sidecarset_team_id`` may select a
    cluster owned by ``cluster_team_id`` (the module docstring's team rule)."""
    return sidecarset_team_id is None or cluster_team_id is None or cluster_team_id == sidecarset_team_id


def resolve_targets(sidecarset_id: int) -> dict[int, int]:
    """Cluster id -> wave for every cluster the SidecarSet's targets select (lowest wave wins)."""
    return resolve_targets_of([sidecarset_id])[sidecarset_id]


def resolve_targets_of(sidecarset_ids: Iterable[int]) -> dict[int, dict[int, int]]:
    """``resolve_targets`` of each SidecarSet, at once: SidecarSet id -> (cluster id -> wave).

    Three queries at most, however many SidecarSets (the clusters' labels and the SidecarSets'
    teams are read only when a target is a label selector)."""
    return resolve_targets_and_skips_of(sidecarset_ids).waves


def resolve_targets_and_skips_of(sidecarset_ids: Iterable[int]) -> TargetResolution:
    """``resolve_targets_of`` plus, per SidecarSet, the clusters its label selectors match but
    may not select (another team's, ``SkippedCluster``; a cluster also named explicitly is
    selected after all), by cluster name. The same three queries at most, however many
    SidecarSets and clusters (the names come with the labels)."""
    resolved: dict[int, dict[int, int]] = {sidecarset_id: {} for sidecarset_id in sidecarset_ids}
    skipped: dict[int, dict[int, SkippedCluster]] = {sidecarset_id: {} for sidecarset_id in resolved}
    targets = list(SidecarSetTarget.objects.filter(sidecarset_id__in=list(resolved)))
    selectors = [t for t in targets if t.cluster_id is None]
    clusters = (
        list(Cluster.objects.values_list("pk", "labels", "owner_team_id", "name", "owner_team__name"))
        if selectors
        else []
    )
    teams_of: dict[int, tuple[int | None, str | None]] = (
        {
            pk: (team_id, team_name)
            for pk, team_id, team_name in SidecarSet.objects.filter(
                pk__in={t.sidecarset_id for t in selectors}
            ).values_list("pk", "owner_team_id", "owner_team__name")
        }
        if selectors
        else {}
    )
    for target in targets:
        if target.cluster_id is not None:
            chosen: list[int] = [target.cluster_id]
        else:
            selector = LabelSelector.from_dict(target.cluster_selector)
            team_id, team_name = teams_of.get(target.sidecarset_id, (None, None))
            chosen = []
            for pk, labels, cluster_team_id, cluster_name, cluster_team in clusters:
                if selector is None or not selector.matches(labels or {}):
                    continue
                if selector_may_select(team_id, cluster_team_id):
                    chosen.append(pk)
                else:
                    skipped[target.sidecarset_id][pk] = SkippedCluster(
                        pk, cluster_name, cluster_team or "", team_name or ""
                    )
        waves = resolved[target.sidecarset_id]
        for cluster_id in chosen:
            waves[cluster_id] = min(target.wave, waves.get(cluster_id, target.wave))
    return TargetResolution(
        waves=resolved,
        skipped={
            sidecarset_id: tuple(
                sorted(
                    # named explicitly as well: selected after all
                    (found for pk, found in skips.items() if pk not in resolved[sidecarset_id]),
                    key=lambda found: found.cluster,
                )
            )
            for sidecarset_id, skips in skipped.items()
        },
    )


def sidecarset_ids_targeting(cluster: Cluster) -> set[int]:
    """IDs of the SidecarSets whose targets select ``cluster``: named explicitly, or by a label
    selector over the cluster's labels (the rule of ``resolve_targets``, seen from the cluster's
    side, team rule included). These are the SidecarSets "active in the cluster" for admission
    and drift (those with a published revision). One query."""
    labels = cluster.labels or {}
    chosen: set[int] = set()
    rows = SidecarSetTarget.objects.filter(Q(cluster_id=cluster.pk) | Q(cluster__isnull=True)).values_list(
        "sidecarset_id", "cluster_id", "cluster_selector", "sidecarset__owner_team_id"
    )
    for sidecarset_id, cluster_id, cluster_selector, team_id in rows:
        if cluster_id is not None:
            chosen.add(sidecarset_id)
            continue
        selector = LabelSelector.from_dict(cluster_selector)
        if (
            selector is not None
            and selector.matches(labels)
            and selector_may_select(team_id, cluster.owner_team_id)
        ):
            chosen.add(sidecarset_id)
    return chosen
