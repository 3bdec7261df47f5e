"""Signals other apps subscribe to. No domain logic here (STYLE §7): senders are services,
receivers live in the subscribing app (clusters push, rollouts, the admission cache).

The signals are sent with ``send_robust`` from ``transaction.on_commit``: receivers see
committed rows, and a failing receiver is logged, never undoing or failing the publish.
Receivers get IDs only (as Celery tasks do); reload rows before use.
"""

from __future__ import annotations

from django.dispatch import Signal

__all__ = ["revision_published", "sidecarset_deleted", "sidecarset_team_changed"]

revision_published = Signal()
"""Sent after a new revision committed.

Keyword arguments (``sender`` is the ``SidecarSetRevision`` class):
    sidecarset_id (int): the SidecarSet's primary key.
    revision_id (int): the new ``SidecarSetRevision``'s primary key.
    revision_number (int): its ``number`` (1, 2, ...).
    previous_revision_id (int | None): the revision that was current before, if any (it may be
        pruned by revisionHistoryLimit by the time receivers run).
    change_kind (str): ``sidecarhub.sidecarset.ChangeKind`` value from the previous revision to
        the new one: ``"none"``, ``"images_only"`` or ``"other"`` (``"other"`` for the first).
    actor_id (int | None): the publishing user's primary key (``None``: system / CLI).
    request_id (str): the request ID of the publish ("" when none); what receivers record
        because of the publish (e.g. the rollouts it creates) carries it.
"""

sidecarset_deleted = Signal()
"""Sent after a SidecarSet's deletion committed.

Keyword arguments (``sender`` is the ``SidecarSet`` class): ``sidecarset_id`` (int, no longer
in the database), ``name`` (str), ``actor_id`` (int | None).
"""

sidecarset_team_changed = Signal()
"""Sent after a change of a SidecarSet's ``owner_team`` committed (its label-selector targets
may select other clusters: ``clusters.targeting``).

Keyword arguments (``sender`` is the ``SidecarSet`` class): ``sidecarset_id`` (int).
"""
