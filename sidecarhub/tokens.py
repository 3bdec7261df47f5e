"""API tokens: who a token belongs to, and issuing one for a user.

The tokens are DRF's (``rest_framework.authtoken``, one per user): the same token signs API
requests (``Authorization: Token <key>``) and identifies the person running the ``sidecarhub``
CLI (``SIDECARHUB_TOKEN``). ``user_for_token`` authenticates exactly as the API does.

A token is shown once, when it is issued (``issue_token`` returns it); nothing prints an
existing one. Issuing is recorded in the change log against the user, without the key.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed

from sidecarhub.changes import record_change
from sidecarhub.choices import ChangeAction

__all__ = [
    "ISSUE_PERMISSIONS",
    "TokenError",
    "TokenExists",
    "TokenNotPermitted",
    "issue_token",
    "user_for_token",
]

# Issuing a token for anyone, or replacing one (org admins; the admin console asks the same).
ISSUE_PERMISSIONS = ("authtoken.add_token", "authtoken.delete_token")


class TokenError(Exception):
    """A token cannot be used or issued; the message says why (never the key)."""


class TokenNotPermitted(TokenError):
    """The acting user may not issue tokens."""


class TokenExists(TokenError):
    """The user has a token already and ``rotate`` was not asked for."""


def user_for_token(key: str) -> Any:
    """The active user whose token ``key`` is; ``TokenError`` otherwise (as the API's 401)."""
    try:
        user, _ = TokenAuthentication().authenticate_credentials(key)
    except AuthenticationFailed as exc:
        raise TokenError(f"the API token is not valid ({exc.detail})") from None
    return user


def issue_token(username: str, *, actor: Any, rotate: bool = False, request_id: str = "") -> str:
    """Create the API token of ``username`` (``rotate``: replace the one it has, which stops
    working at once) and return its key.

    ``actor`` needs ``ISSUE_PERMISSIONS`` (``None``: the system, as ``make run`` issuing the
    admin's token). ``TokenError`` when the user does not exist or is inactive,
    ``TokenExists`` when it has a token and ``rotate`` is false.
    """
    if actor is not None and not actor.has_perms(ISSUE_PERMISSIONS):
        raise TokenNotPermitted(
            f"{actor.get_username()} may not issue API tokens ({', '.join(ISSUE_PERMISSIONS)})"
        )
    user_model = get_user_model()
    user = user_model.objects.filter(**{user_model.USERNAME_FIELD: username}).first()
    if user is None:
        raise TokenError(f"no user named {username!r}")
    if not user.is_active:
        raise TokenError(f"user {username!r} is inactive")
    with transaction.atomic():
        existing = Token.objects.select_for_update().filter(user=user)
        replaced = existing.exists()
        if replaced:
            if not rotate:
                raise TokenExists(
                    f"{username} has an API token already; --rotate replaces it (the old one stops working)"
                )
            existing.delete()
        token = Token.objects.create(user=user)
        record_change(
            user,
            ChangeAction.UPDATE,
            actor=actor,
            request_id=request_id,
            message="API token replaced" if replaced else "API token issued",
        )
    return str(token.key)
