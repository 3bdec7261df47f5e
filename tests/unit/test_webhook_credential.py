"""``clusters.admission_auth.is_authenticated`` with a rotated token: the current token, and the
replaced one until its deadline (compared with the clock at each call). Pure: no database."""

from __future__ import annotations

import hashlib
import time

import pytest

from clusters.admission_auth import WebhookCredential, is_authenticated

CURRENT, PREVIOUS = "the-current-token-0123456789", "the-replaced-token-0123456789"


def _credential(*, valid_for: float, current: str | None = CURRENT) -> WebhookCredential:
    return WebhookCredential(
        required=True,
        token_digest=hashlib.sha256(current.encode()).digest() if current else None,
        previous_digest=hashlib.sha256(PREVIOUS.encode()).digest(),
        previous_valid_until=time.time() + valid_for,
    )


def test_the_replaced_token_is_accepted_only_before_its_deadline() -> None:
    overlap = _credential(valid_for=3600)
    assert is_authenticated(overlap, f"Bearer {CURRENT}")
    assert is_authenticated(overlap, f"Bearer {PREVIOUS}")
    over = _credential(valid_for=-0.001)
    assert is_authenticated(over, f"Bearer {CURRENT}")
    assert not is_authenticated(over, f"Bearer {PREVIOUS}")


def test_a_deadline_passing_after_the_credential_was_built_refuses_it() -> None:
    credential = _credential(valid_for=0.2)
    assert is_authenticated(credential, f"Bearer {PREVIOUS}")
    time.sleep(0.25)
    assert not is_authenticated(credential, f"Bearer {PREVIOUS}")


@pytest.mark.parametrize(
    "authorization",
    ["", "Bearer ", "Bearer wrong-token-0123456789", f"Basic {PREVIOUS}", f"Bearer {PREVIOUS}x"],
)
def test_nothing_else_is_accepted_during_the_overlap(authorization: str) -> None:
    assert not is_authenticated(_credential(valid_for=3600), authorization)
    assert not is_authenticated(None, authorization)  # an unknown cluster


def test_a_replaced_token_works_even_when_the_current_one_is_unreadable() -> None:
    # The current token's key removed (its digest None): the replaced one still ends at its deadline.
    credential = _credential(valid_for=3600, current=None)
    assert is_authenticated(credential, f"Bearer {PREVIOUS}")
    assert not is_authenticated(credential, "Bearer ")
