"""Teams: who owns SidecarSets and clusters (issue 16 item 5).

A team is a name and its members. What a member may do comes from the roles (Django groups,
``sidecarhub.roles``) the user holds; the teams say *where* those roles apply: on the objects
the user's teams own. The rules are in ``sidecarhub.teams``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

__all__ = ["Team"]


class Team(models.Model):
    """A group of people that owns SidecarSets and clusters (``owner_team`` of each).

    Guarantees: unique by name. Deleting a team leaves its objects without a team (who may act
    on those: ``sidecarhub.teams``).
    """

    name = models.CharField(max_length=100, unique=True, help_text="Shown as the owner team everywhere")
    description = models.CharField(max_length=300, blank=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="teams",
        help_text="Their roles (groups) apply to this team's SidecarSets and clusters",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("name",)
        permissions = [
            ("act_for_all_teams", "Can act on every team's SidecarSets and clusters (organisation admin)")
        ]

    def __str__(self) -> str:
        return self.name
