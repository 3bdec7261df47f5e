"""Writing the config change log (STYLE P11).

Services call :func:`record_change` explicitly, in the same transaction as the change itself,
so a change and its log row commit (or roll back) together. There is no signal-driven logging:
workers and the CLI write history exactly like web requests do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.contenttypes.models import ContentType
from django.db import models

from sidecarhub.choices import ChangeAction
from sidecarhub.models import ChangeRecord

if TYPE_CHECKING:
    from django.contrib.auth.models import User

__all__ = ["REDACTED", "SENSITIVE_KEYS", "ChangeRecord", "actor_name", "record_change", "redact"]

REDACTED = "********"
# Snapshot keys whose values are replaced by REDACTED wherever they appear (any depth).
SENSITIVE_KEYS = frozenset(
    {
        "password",
        "token",
        "bearer_token",
        "credentials",
        "credentials_ciphertext",
        "client_key",
        "client_key_data",
        "private_key",
        "secret",
    }
)
SYSTEM_ACTOR_NAME = "system"

Actor = AbstractBaseUser | AnonymousUser | None


def actor_name(actor: Actor) -> str:
    """The name recorded for ``actor``: its username, or ``"system"`` for no (or an anonymous) user."""
    if actor is None or not getattr(actor, "is_authenticated", False):
        return SYSTEM_ACTOR_NAME
    return str(actor.get_username())


def redact(snapshot: Any) -> Any:
    """A deep copy of ``snapshot`` with the values of :data:`SENSITIVE_KEYS` replaced."""
    if isinstance(snapshot, Mapping):
        return {
            key: (REDACTED if str(key).lower() in SENSITIVE_KEYS else redact(value))
            for key, value in snapshot.items()
        }
    if isinstance(snapshot, list | tuple):
        return [redact(item) for item in snapshot]
    return snapshot


def record_change(
    changed_object: models.Model,
    action: ChangeAction,
    *,
    actor: Actor,
    request_id: str = "",
    message: str = "",
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    parent: models.Model | None = None,
) -> ChangeRecord:
    """Write one change-log row for ``changed_object`` and return it.

    Call it inside the transaction that makes the change. ``before``/``after`` are JSON
    snapshots (``None`` for "did not exist"); they are redacted here, so callers cannot leak a
    credential by forgetting to. ``parent`` links a child (a revision, a target) to the object
    whose history it belongs to.
    """
    # Anonymous and system actors get no user row; actor_name still names them.
    user = cast(
        "User | None", actor if isinstance(actor, AbstractBaseUser) and actor.is_authenticated else None
    )
    return ChangeRecord.objects.create(
        action=action,
        content_type=ContentType.objects.get_for_model(changed_object, for_concrete_model=True),
        object_id=str(changed_object.pk),
        object_repr=str(changed_object)[:200],
        parent_content_type=ContentType.objects.get_for_model(parent) if parent is not None else None,
        parent_object_id=str(parent.pk) if parent is not None else "",
        actor=user,
        actor_name=actor_name(actor),
        request_id=request_id[:64],
        before=redact(before) if before is not None else None,
        after=redact(after) if after is not None else None,
        message=message,
    )
