"""Receivers of the definitions' signals (``sidecarhub.signals``). Adapters only: each calls
one service of ``clusters.push`` (which queues tasks after its own commit)."""

from __future__ import annotations

from typing import Any

from clusters.push import sidecarset_removed, sync_placements
from sidecarhub.sidecarset import ChangeKind

__all__ = ["on_revision_published", "on_sidecarset_deleted", "on_sidecarset_team_changed"]


def on_revision_published(
    sender: Any,
    *,
    sidecarset_id: int,
    change_kind: str = "",
    previous_revision_id: int | None = None,
    **kwargs: Any,
) -> None:
    """Keep the placements in step with the targets; a new target cluster serves the new
    revision at once, the others when their release's gate opens (decision 17), except for a
    change nothing pods see (``none``), which the clusters serving the replaced revision serve
    at once (a cluster held back or rolled back keeps what it serves)."""
    unseen = change_kind == ChangeKind.NONE
    sync_placements(sidecarset_id, serve_from=previous_revision_id if unseen else None)


def on_sidecarset_deleted(sender: Any, *, name: str, **kwargs: Any) -> None:
    """Remove the deleted SidecarSet's resource from every cluster it was pushed to."""
    sidecarset_removed(name)


def on_sidecarset_team_changed(sender: Any, *, sidecarset_id: int, **kwargs: Any) -> None:
    """Its label selectors may now select other clusters (``clusters.targeting``)."""
    sync_placements(sidecarset_id)
