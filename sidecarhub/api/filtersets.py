"""Filters of the SidecarSet list: ``?name=``, ``?name_contains=``, ``?owner_team=``, ``?label=``."""

from __future__ import annotations

import django_filters

from sidecarhub.models import SidecarSet
from sidecarhub.querysets import SidecarSetQuerySet

__all__ = ["SidecarSetFilterSet"]


class SidecarSetFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter(field_name="name", lookup_expr="exact", help_text="Exact name")
    name_contains = django_filters.CharFilter(
        field_name="name", lookup_expr="icontains", help_text="Part of the name (case-insensitive)"
    )
    owner_team = django_filters.CharFilter(field_name="owner_team", lookup_expr="exact")
    label = django_filters.CharFilter(
        method="filter_label",
        help_text="Label selector: comma-separated 'key' or 'key=value' terms, all must match "
        "(e.g. app=mesh,tier)",
    )

    class Meta:
        model = SidecarSet
        fields = ("name", "name_contains", "owner_team", "label")

    def filter_label(self, queryset: SidecarSetQuerySet, name: str, value: str) -> SidecarSetQuerySet:
        return queryset.with_labels(value)
