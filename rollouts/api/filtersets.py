"""Explicit filters of the rollouts API: every FK has an ``<fk>_id`` / ``<fk>`` (by name) pair."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet

from rollouts.choices import (
    ACTIVE_ROLLOUT_STATES,
    PodUpdateOutcome,
    PodUpdateState,
    RolloutKind,
    RolloutState,
    StepState,
)
from rollouts.models import PodUpdate, Rollout, RolloutStep
from rollouts.permissions import steps_awaiting_approval_by

__all__ = ["PodUpdateFilterSet", "RolloutFilterSet", "StepFilterSet"]


class RolloutFilterSet(django_filters.FilterSet):
    sidecarset_id = django_filters.NumberFilter()
    sidecarset = django_filters.CharFilter(field_name="sidecarset_name", help_text="SidecarSet name")
    cluster_id = django_filters.NumberFilter()
    cluster = django_filters.CharFilter(
        field_name="cluster_name", help_text="Cluster name (also of a cluster since deleted)"
    )
    cluster_deleted = django_filters.BooleanFilter(
        field_name="cluster", lookup_expr="isnull", help_text="The cluster was deleted from the hub"
    )
    sidecarset_deleted = django_filters.BooleanFilter(
        field_name="sidecarset", lookup_expr="isnull", help_text="The SidecarSet was deleted"
    )
    state = django_filters.MultipleChoiceFilter(
        choices=RolloutState.choices, help_text="Repeat for several: ?state=running&state=paused"
    )
    active = django_filters.BooleanFilter(method="filter_active", help_text="Pending, running or paused")
    wave = django_filters.NumberFilter()
    kind = django_filters.ChoiceFilter(choices=RolloutKind.choices)

    class Meta:
        model = Rollout
        fields = (
            "sidecarset_id",
            "sidecarset",
            "cluster_id",
            "cluster",
            "cluster_deleted",
            "sidecarset_deleted",
            "state",
            "active",
            "wave",
            "kind",
        )

    def filter_active(self, queryset: QuerySet[Rollout], name: str, value: bool) -> QuerySet[Rollout]:
        if value:
            return queryset.filter(state__in=ACTIVE_ROLLOUT_STATES)
        return queryset.exclude(state__in=ACTIVE_ROLLOUT_STATES)


class StepFilterSet(django_filters.FilterSet):
    rollout = django_filters.NumberFilter(field_name="rollout_id", help_text="Rollout id")
    state = django_filters.MultipleChoiceFilter(choices=StepState.choices)
    cluster_id = django_filters.NumberFilter(field_name="rollout__cluster_id")
    cluster = django_filters.CharFilter(
        field_name="rollout__cluster_name", help_text="Cluster name (also of a cluster since deleted)"
    )
    awaiting_my_approval = django_filters.BooleanFilter(
        method="filter_awaiting_my_approval",
        help_text="true: only the steps you may approve now (your teams, four eyes, not expired)",
    )

    class Meta:
        model = RolloutStep
        fields = ("rollout", "state", "cluster_id", "cluster", "awaiting_my_approval")

    def filter_awaiting_my_approval(
        self, queryset: QuerySet[RolloutStep], name: str, value: bool | None
    ) -> QuerySet[RolloutStep]:
        if not value:
            return queryset
        return queryset.filter(pk__in=steps_awaiting_approval_by(self.request.user).values("pk"))


class PodUpdateFilterSet(django_filters.FilterSet):
    cluster_id = django_filters.NumberFilter()
    cluster = django_filters.CharFilter(
        field_name="cluster_name", help_text="Cluster name (also of a cluster since deleted)"
    )
    cluster_deleted = django_filters.BooleanFilter(
        field_name="cluster", lookup_expr="isnull", help_text="The cluster was deleted from the hub"
    )
    namespace = django_filters.CharFilter()
    pod = django_filters.CharFilter(field_name="pod_name", help_text="Exact pod name")
    pod_contains = django_filters.CharFilter(
        field_name="pod_name", lookup_expr="icontains", help_text="Part of the pod name"
    )
    pod_uid = django_filters.CharFilter()
    rollout = django_filters.NumberFilter(field_name="rollout_id", help_text="Rollout id")
    step = django_filters.NumberFilter(field_name="step_id", help_text="Step id")
    sidecarset = django_filters.CharFilter(field_name="rollout__sidecarset_name", help_text="SidecarSet name")
    outcome = django_filters.MultipleChoiceFilter(
        choices=PodUpdateOutcome.choices, help_text="Repeat for several: ?outcome=failed&outcome=timed_out"
    )
    state = django_filters.MultipleChoiceFilter(choices=PodUpdateState.choices)
    workload_kind = django_filters.CharFilter(help_text="Restart rows: Deployment, StatefulSet or DaemonSet")
    workload = django_filters.CharFilter(field_name="workload_name", help_text="Restart rows: workload name")
    since = django_filters.IsoDateTimeFilter(
        field_name="claimed_at", lookup_expr="gte", help_text="Claimed at or after (ISO 8601)"
    )
    until = django_filters.IsoDateTimeFilter(
        field_name="claimed_at", lookup_expr="lt", help_text="Claimed before (ISO 8601)"
    )

    class Meta:
        model = PodUpdate
        fields = (
            "cluster_id",
            "cluster",
            "cluster_deleted",
            "namespace",
            "pod",
            "pod_contains",
            "pod_uid",
            "rollout",
            "step",
            "sidecarset",
            "outcome",
            "state",
            "workload_kind",
            "workload",
            "since",
            "until",
        )
