"""QuerySets of the clusters app: the filters services and views share."""

from __future__ import annotations

from typing import Any

from django.db import models

from clusters.choices import PlacementState

__all__ = ["ClusterQuerySet", "PlacementQuerySet"]


class ClusterQuerySet(models.QuerySet):
    """Clusters; ``visible_to`` is where per-user scoping would go (all users with the view
    permission see all clusters today)."""

    def visible_to(self, user: Any) -> ClusterQuerySet:
        if user is None or not user.is_authenticated or not user.has_perm("clusters.view_cluster"):
            return self.none()
        return self

    def unreachable(self) -> ClusterQuerySet:
        return self.filter(reachable=False)


class PlacementQuerySet(models.QuerySet):
    """SidecarSet placements (push state and status per cluster)."""

    def for_cluster(self, cluster_id: int) -> PlacementQuerySet:
        return self.filter(cluster_id=cluster_id)

    def wanted(self) -> PlacementQuerySet:
        """Placements where the hub wants the resource present (not removing/removed)."""
        return self.exclude(state__in=[PlacementState.REMOVING, PlacementState.REMOVED])
