"""Filters of the SidecarSet list (``?name=``, ``?name_contains=``, ``?owner_team=``, ``?label=``),
of the change log (``?object_type=``, ``?object=``, ...), and the API's filter backend, which keeps
every number filter within what a database column holds.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.request import Request

from sidecarhub.choices import ChangeAction
from sidecarhub.models import ChangeRecord, SidecarSet
from sidecarhub.querysets import SidecarSetQuerySet

__all__ = ["ApiFilterBackend", "ChangeRecordFilterSet", "SidecarSetFilterSet"]

# A 64-bit signed integer: the widest integer column (BigAutoField ids) on every database.
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


class ApiFilterBackend(DjangoFilterBackend):
    """``DjangoFilterBackend`` whose number filters refuse values no integer column can hold.

    ``?cluster_id=99999999999999999999`` would otherwise reach the database (SQLite raises
    ``OverflowError``; PostgreSQL compares a numeric with a bigint): here it is a 400 naming the
    filter, on every database and for every number filter of every app, declared or not.
    """

    def get_filterset(self, request: Request, queryset: QuerySet[Any], view: Any) -> Any:
        filterset = super().get_filterset(request, queryset, view)
        if filterset is None:
            return None
        for name, declared in filterset.filters.items():
            if isinstance(declared, django_filters.NumberFilter):
                # The form is built per request from this filterset's own copies of the filters.
                field = filterset.form.fields[name]
                field.validators = [
                    *field.validators,
                    MinValueValidator(_INT64_MIN),
                    MaxValueValidator(_INT64_MAX),
                ]
        return filterset


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


class ChangeRecordFilterSet(django_filters.FilterSet):
    """The change log of one kind of object, one object (by id or by name: the name stays after
    the object is deleted), one action, or one request."""

    object_type = django_filters.CharFilter(
        method="filter_object_type",
        help_text="app_label.model, e.g. clusters.cluster or sidecarhub.sidecarset",
    )
    object_id = django_filters.CharFilter(field_name="object_id")
    object = django_filters.CharFilter(field_name="object_repr", help_text="The object's name (exact)")
    action = django_filters.ChoiceFilter(choices=ChangeAction.choices)
    request_id = django_filters.CharFilter(field_name="request_id")

    class Meta:
        model = ChangeRecord
        fields = ("object_type", "object_id", "object", "action", "request_id")

    def filter_object_type(self, queryset: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
        app_label, _, model = value.lower().partition(".")
        return queryset.filter(content_type__app_label=app_label, content_type__model=model)
