"""Choices of the SidecarSet definitions: change-log actions, export versions, apply outcomes."""

from __future__ import annotations

from django.db import models

__all__ = ["ApplyOutcome", "ChangeAction", "KruiseVersion"]


class ChangeAction(models.TextChoices):
    """What a config change-log row (``ChangeRecord``) records."""

    CREATE = "create", "Created"  # the object came into existence; ``before`` is empty
    UPDATE = "update", "Updated"  # an edit; ``before`` and ``after`` hold both sides
    DELETE = "delete", "Deleted"  # the object is gone; ``after`` is empty
    PUBLISH = "publish", "Published"  # a SidecarSet's definition became a new immutable revision
    PRUNE = "prune", "Pruned"  # a revision was removed by revisionHistoryLimit


class KruiseVersion(models.TextChoices):
    """The Kruise API versions a SidecarSet can be exported as (decision 1)."""

    V1ALPHA1 = "v1alpha1", "apps.kruise.io/v1alpha1"
    V1BETA1 = "v1beta1", "apps.kruise.io/v1beta1"  # the canonical, stored shape


class ApplyOutcome(models.TextChoices):
    """What applying (importing) one document did, in kubectl's words."""

    CREATED = "created", "created"  # no SidecarSet had this name
    CONFIGURED = "configured", "configured"  # the stored definition changed
    UNCHANGED = "unchanged", "unchanged"  # the document equals the stored definition
