"""The config change log (STYLE P11): one row per change to a SidecarSet, a revision, and later
clusters and targets. Written explicitly by services through ``sidecarhub.changes.record_change``.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models

from sidecarhub.choices import ChangeAction

__all__ = ["ChangeRecord"]


class ChangeRecord(models.Model):
    """One change to one configuration object: who, when, what, and the object before and after.

    Guarantees: rows outlive their objects (``object_id`` and ``object_repr`` stay after the
    object is deleted); ``actor_name`` is a copy, so it survives the user's deletion; the
    snapshots never hold credentials (``record_change`` redacts them). ``parent_*`` points at the
    owning object (a revision's SidecarSet) so one query lists a SidecarSet's whole history.
    """

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    action = models.CharField(max_length=16, choices=ChangeAction.choices)
    content_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, related_name="+")
    object_id = models.CharField(max_length=64)
    changed_object = GenericForeignKey("content_type", "object_id")
    object_repr = models.CharField(max_length=200)
    parent_content_type = models.ForeignKey(
        ContentType, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    parent_object_id = models.CharField(max_length=64, blank=True)
    parent_object = GenericForeignKey("parent_content_type", "parent_object_id")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, help_text="Copy of the actor's username ('system' if none)")
    request_id = models.CharField(max_length=64, blank=True, db_index=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [
            models.Index(fields=("content_type", "object_id"), name="change_object_idx"),
            models.Index(fields=("parent_content_type", "parent_object_id"), name="change_parent_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.object_repr} by {self.actor_name}"
