"""Query sets of the SidecarSet definitions.

``RevisionQuerySet`` refuses bulk ``update()``: a revision is immutable once written (the only
way to change history is to prune whole revisions, which services do with ``delete()``).
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

__all__ = ["ImmutableRevisionError", "RevisionQuerySet", "SidecarSetQuerySet", "parse_label_selector"]


class ImmutableRevisionError(Exception):
    """Raised on any attempt to modify a stored ``SidecarSetRevision``."""


def parse_label_selector(selector: str) -> list[tuple[str, str | None]]:
    """``"app=web,tier"`` → ``[("app", "web"), ("tier", None)]``: key=value pairs or bare keys."""
    requirements: list[tuple[str, str | None]] = []
    for part in selector.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        requirements.append((key.strip(), value.strip() if sep else None))
    return requirements


class SidecarSetQuerySet(models.QuerySet):
    """Queries over SidecarSets."""

    def with_labels(self, selector: str) -> SidecarSetQuerySet:
        """SidecarSets whose ``labels`` satisfy every ``key`` / ``key=value`` of ``selector``.

        Uses key lookups and text transforms only, so it works on PostgreSQL and on SQLite
        (the quick start), whose JSON support lacks ``contains``.
        """
        queryset = self
        for position, (key, value) in enumerate(parse_label_selector(selector)):
            queryset = queryset.filter(labels__has_key=key)
            if value is not None:
                alias = f"_label_{position}"
                # Cast: compared as text. A bare KeyTextTransform inherits the JSON key lookups,
                # whose SQLite form parses the value as JSON ("malformed JSON" for ``mesh``).
                text = Cast(KeyTextTransform(key, "labels"), models.TextField())
                queryset = queryset.alias(**{alias: text}).filter(**{alias: value})
        return queryset

    def for_display(self) -> SidecarSetQuerySet:
        """Everything the API and admin show, in a constant number of queries."""
        return self.select_related("current_revision", "created_by", "updated_by", "owner_team")


class RevisionQuerySet(models.QuerySet):
    """Queries over revisions; bulk updates are refused because revisions are immutable."""

    def update(self, **kwargs: Any) -> int:
        raise ImmutableRevisionError("SidecarSet revisions are immutable; publish a new one instead")

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> int:
        raise ImmutableRevisionError("SidecarSet revisions are immutable; publish a new one instead")
