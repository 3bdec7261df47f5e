"""Which clusters a SidecarSet's targets select, and which SidecarSets select a cluster.

The two directions of one rule (a target names a cluster, or selects clusters by label; the
lowest wave wins): ``resolve_targets`` from a SidecarSet's side, for placements and rollouts;
``sidecarset_ids_targeting`` from a cluster's side, for admission and drift. Queries only: no
kube client, no tasks, so every module that needs the rule can import it.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q

from clusters.models import Cluster, SidecarSetTarget
from sidecarhub.sidecarset import LabelSelector

__all__ = ["resolve_targets", "resolve_targets_of", "sidecarset_ids_targeting"]


def resolve_targets(sidecarset_id: int) -> dict[int, int]:
    """Cluster id -> wave for every cluster the SidecarSet's targets select (lowest wave wins)."""
    return resolve_targets_of([sidecarset_id])[sidecarset_id]


def resolve_targets_of(sidecarset_ids: Iterable[int]) -> dict[int, dict[int, int]]:
    """``resolve_targets`` of each SidecarSet, at once: SidecarSet id -> (cluster id -> wave).

    Two queries at most, however many SidecarSets (the clusters' labels are read only when a
    target is a label selector)."""
    resolved: dict[int, dict[int, int]] = {sidecarset_id: {} for sidecarset_id in sidecarset_ids}
    targets = list(SidecarSetTarget.objects.filter(sidecarset_id__in=list(resolved)))
    selectors = [t for t in targets if t.cluster_id is None]
    clusters = list(Cluster.objects.values_list("pk", "labels")) if selectors else []
    for target in targets:
        if target.cluster_id is not None:
            chosen: Iterable[int] = [target.cluster_id]
        else:
            selector = LabelSelector.from_dict(target.cluster_selector)
            chosen = [
                pk for pk, labels in clusters if selector is not None and selector.matches(labels or {})
            ]
        waves = resolved[target.sidecarset_id]
        for cluster_id in chosen:
            waves[cluster_id] = min(target.wave, waves.get(cluster_id, target.wave))
    return resolved


def sidecarset_ids_targeting(cluster: Cluster) -> set[int]:
    """IDs of the SidecarSets whose targets select ``cluster``: named explicitly, or by a label
    selector over the cluster's labels (the rule of ``resolve_targets``, seen from the cluster's
    side). These are the SidecarSets "active in the cluster" for admission and drift (those with
    a published revision). One query."""
    labels = cluster.labels or {}
    chosen: set[int] = set()
    rows = SidecarSetTarget.objects.filter(Q(cluster_id=cluster.pk) | Q(cluster__isnull=True)).values_list(
        "sidecarset_id", "cluster_id", "cluster_selector"
    )
    for sidecarset_id, cluster_id, cluster_selector in rows:
        if cluster_id is not None:
            chosen.add(sidecarset_id)
            continue
        selector = LabelSelector.from_dict(cluster_selector)
        if selector is not None and selector.matches(labels):
            chosen.add(sidecarset_id)
    return chosen
