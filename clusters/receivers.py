"""Receivers of the definitions' signals (``sidecarhub.signals``). Adapters only: each calls
one service of ``clusters.push`` (which queues tasks after its own commit)."""

from __future__ import annotations

from typing import Any

from clusters.push import sidecarset_removed, sync_placements

__all__ = ["on_revision_published", "on_sidecarset_deleted"]


def on_revision_published(sender: Any, *, sidecarset_id: int, **kwargs: Any) -> None:
    """Push the new revision to every target cluster."""
    sync_placements(sidecarset_id)


def on_sidecarset_deleted(sender: Any, *, name: str, **kwargs: Any) -> None:
    """Remove the deleted SidecarSet's resource from every cluster it was pushed to."""
    sidecarset_removed(name)
