"""Query sets of the rollouts app, including the permission-scoped ``visible_to`` (STYLE P4)."""

from __future__ import annotations

from typing import Any

from django.db import models

__all__ = ["PodUpdateQuerySet", "RolloutQuerySet", "StepQuerySet"]


def _can_view(user: Any, codename: str) -> bool:
    return bool(user is not None and user.is_authenticated and user.has_perm(f"rollouts.{codename}"))


class RolloutQuerySet(models.QuerySet):
    """Queries over rollouts."""

    def visible_to(self, user: Any) -> RolloutQuerySet:
        """Everything for users with ``rollouts.view_rollout``; nothing for anyone else."""
        return self if _can_view(user, "view_rollout") else self.none()

    def active(self) -> RolloutQuerySet:
        from rollouts.choices import ACTIVE_ROLLOUT_STATES

        return self.filter(state__in=ACTIVE_ROLLOUT_STATES)


class StepQuerySet(models.QuerySet):
    """Queries over rollout steps."""

    def visible_to(self, user: Any) -> StepQuerySet:
        return self if _can_view(user, "view_rollout") else self.none()


class PodUpdateQuerySet(models.QuerySet):
    """Queries over per-pod updates."""

    def visible_to(self, user: Any) -> PodUpdateQuerySet:
        return self if _can_view(user, "view_rollout") else self.none()

    def counts_by_outcome(self) -> dict[str, int]:
        """{outcome or progress state: count}; open rows are counted by their progress state."""
        counts: dict[str, int] = {}
        for state, outcome, count in (
            self.order_by().values_list("state", "outcome").annotate(count=models.Count("id"))
        ):
            key = outcome or state
            counts[key] = counts.get(key, 0) + count
        return counts
