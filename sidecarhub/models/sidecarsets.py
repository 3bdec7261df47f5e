"""SidecarSet definitions and their immutable published revisions.

A ``SidecarSet`` row is the editable definition (the "draft"): the canonical v1beta1 spec as
produced by the pure core, plus the hub's own fields (owner team, version counter, authors).
Publishing freezes the definition into a ``SidecarSetRevision``, which is what clusters receive
and what rollouts move pods between.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from sidecarhub.querysets import ImmutableRevisionError, RevisionQuerySet, SidecarSetQuerySet
from sidecarhub.sidecarset import SidecarSet as CoreSidecarSet
from sidecarhub.sidecarset.schema import KIND, V1BETA1

__all__ = ["SidecarSet", "SidecarSetRevision", "build_document"]


def build_document(
    name: str, labels: dict[str, Any], annotations: dict[str, Any], spec: dict[str, Any]
) -> dict[str, Any]:
    """The v1beta1 document for stored parts, shaped exactly as ``CoreSidecarSet.to_document()``."""
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = dict(labels)
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"apiVersion": V1BETA1, "kind": KIND, "metadata": metadata, "spec": spec}


class SidecarSet(models.Model):
    """One SidecarSet definition, unique by name, in canonical (v1beta1) form.

    Guarantees: ``spec``, ``labels`` and ``annotations`` are always the output of the core's
    parser for a document that passed validation, so ``to_core()`` never fails.
    ``rollout_policy`` is the canonical output of ``check_rollout_policy`` (only set keys); the
    ``rollouts.sidecarhub.io/*`` annotations of an imported document fill it and are never kept
    in ``annotations`` (``sidecarhub.services``: precedence). ``version``
    grows by one on every change to the definition (services update it with a conditional
    write), which is what the API's ETag / If-Match and the admin form compare to refuse lost
    updates. Publishing does not change ``version``: it does not change the definition.
    Rows are written by ``sidecarhub.services`` only.
    """

    name = models.CharField(
        max_length=63, unique=True, help_text="metadata.name: letters, digits and '-'; immutable"
    )
    owner_team = models.ForeignKey(
        "sidecarhub.Team",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="sidecarsets",
        help_text="The team whose authors and approvers act on it (empty: see sidecarhub.teams)",
    )
    labels = models.JSONField(default=dict, blank=True, help_text="metadata.labels of the SidecarSet")
    annotations = models.JSONField(default=dict, blank=True, help_text="metadata.annotations")
    spec = models.JSONField(help_text="Canonical v1beta1 spec with Kruise's defaults applied")
    rollout_policy = models.JSONField(
        default=dict,
        blank=True,
        help_text="How releases proceed: steps, max_unavailable, failure_threshold, "
        "progress_deadline_seconds, pod_timeout_seconds, approval_ttl_seconds (only the keys set; "
        "the rest are the hub's defaults). Frozen into each revision at publish",
    )
    current_revision = models.ForeignKey(
        "sidecarhub.SidecarSetRevision",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The latest published revision; empty until the first publish",
    )
    version = models.PositiveIntegerField(default=1, help_text="Bumped on every edit; lost-update guard")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = SidecarSetQuerySet.as_manager()

    class Meta:
        # Kruise's spelling, everywhere in the console (Django would say "sidecar set").
        verbose_name = "SidecarSet"
        verbose_name_plural = "SidecarSets"
        ordering = ("name",)
        permissions = [("publish_sidecarset", "Can publish a SidecarSet (create a revision)")]

    def __str__(self) -> str:
        return self.name

    def to_document(self) -> dict[str, Any]:
        """The definition as a Kruise v1beta1 document (plain data)."""
        return build_document(self.name, self.labels, self.annotations, self.spec)

    def to_core(self) -> CoreSidecarSet:
        """The definition as the core's immutable ``SidecarSet``."""
        return CoreSidecarSet.from_document(self.to_document())

    @property
    def has_unpublished_changes(self) -> bool:
        """Whether the definition or its rollout policy differs from the current revision (True
        before the first publish).

        Reads ``current_revision``; select it with the row (``for_display()``) in lists.
        """
        revision = self.current_revision
        return (
            revision is None
            or revision.document != self.to_document()
            or revision.rollout_policy != self.rollout_policy
        )


class SidecarSetRevision(models.Model):
    """One published, immutable snapshot of a SidecarSet definition.

    Guarantees: never modified after it is written; ``save()`` on a stored row and queryset
    ``update()`` raise ``ImmutableRevisionError``. ``number`` grows by one per publish of the
    SidecarSet (1, 2, ...) and is never reused, even after old revisions are pruned by
    ``revisionHistoryLimit``. ``name`` (``<sidecarset>-<number>``) is what
    ``injectionStrategy.revision.revisionName`` refers to. ``revision_hash`` and
    ``hash_without_images`` are the core's hashes of ``document``.
    """

    sidecarset = models.ForeignKey(SidecarSet, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    name = models.CharField(max_length=80, unique=True, help_text="<sidecarset>-<number>")
    revision_hash = models.CharField(max_length=64, db_index=True)
    hash_without_images = models.CharField(max_length=64)
    custom_version = models.CharField(
        max_length=255, blank=True, db_index=True, help_text="spec.customVersion"
    )
    document = models.JSONField(help_text="The whole v1beta1 document as published")
    rollout_policy = models.JSONField(
        default=dict,
        blank=True,
        help_text="The SidecarSet's rollout policy as published: every release of this revision follows it",
    )
    message = models.TextField(blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    author_name = models.CharField(max_length=150, help_text="Copy of the author's username")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = RevisionQuerySet.as_manager()

    class Meta:
        verbose_name = "SidecarSet revision"
        ordering = ("sidecarset", "-number")
        constraints = [
            models.UniqueConstraint(fields=("sidecarset", "number"), name="sidecarset_revision_number_unique")
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ImmutableRevisionError(f"revision {self.name} is immutable; publish a new one instead")
        super().save(*args, **kwargs)

    @property
    def spec(self) -> dict[str, Any]:
        """The published v1beta1 spec."""
        return dict(self.document.get("spec") or {})

    def to_core(self) -> CoreSidecarSet:
        """The published definition as the core's immutable ``SidecarSet``."""
        return CoreSidecarSet.from_document(self.document)
