"""Explicit filters of the clusters API: every FK has an ``<fk>_id`` / ``<fk>`` (by name) pair."""

from __future__ import annotations

import django_filters

from clusters.choices import AuditAction, PlacementState
from clusters.models import Cluster, ClusterAuditEvent, SidecarSetPlacement, SidecarSetTarget

__all__ = ["AuditEventFilterSet", "ClusterFilterSet", "PlacementFilterSet", "TargetFilterSet"]


class ClusterFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter()
    reachable = django_filters.BooleanFilter()

    class Meta:
        model = Cluster
        fields = ("name", "reachable")


class TargetFilterSet(django_filters.FilterSet):
    sidecarset_id = django_filters.NumberFilter()
    sidecarset = django_filters.CharFilter(field_name="sidecarset__name")
    cluster_id = django_filters.NumberFilter()
    cluster = django_filters.CharFilter(field_name="cluster__name")
    wave = django_filters.NumberFilter()

    class Meta:
        model = SidecarSetTarget
        fields = ("sidecarset_id", "sidecarset", "cluster_id", "cluster", "wave")


class PlacementFilterSet(django_filters.FilterSet):
    sidecarset_id = django_filters.NumberFilter()
    sidecarset = django_filters.CharFilter(field_name="sidecarset_name")
    cluster_id = django_filters.NumberFilter()
    cluster = django_filters.CharFilter(field_name="cluster__name")
    state = django_filters.ChoiceFilter(choices=PlacementState.choices)

    class Meta:
        model = SidecarSetPlacement
        fields = ("sidecarset_id", "sidecarset", "cluster_id", "cluster", "state")


class AuditEventFilterSet(django_filters.FilterSet):
    cluster_id = django_filters.NumberFilter()
    cluster = django_filters.CharFilter(field_name="cluster_name")
    action = django_filters.ChoiceFilter(choices=AuditAction.choices)

    class Meta:
        model = ClusterAuditEvent
        fields = ("cluster_id", "cluster", "action")
