"""Who may call the admission endpoint: the cluster's own apiserver, presenting its webhook token.

A cluster's apiserver sends ``Authorization: Bearer <token>`` when its admission configuration
names a kubeconfig holding the cluster's webhook token (``clusters.admission_config``). The rule:

- a known cluster and the right token: accepted; the token a rotation replaced too, until its
  deadline (``Cluster.webhook_previous_token_expires_at``: the overlap in which the apiserver's
  admission configuration is updated), compared with the clock at each call, so it stops at the
  deadline without waiting for the admission snapshot to be rebuilt;
- any token that is not the cluster's (a wrong one, or one sent for an unknown cluster): refused;
- no token: refused when the cluster requires one (``Cluster.webhook_auth_required``) and for an
  unknown cluster; accepted for a cluster that does not require one (managed control planes whose
  admission configuration cannot be set).

Every refusal is the same :data:`UNAUTHENTICATED` answer (HTTP 401, one body), so a caller cannot
tell a registered cluster from an unknown name. Tokens are compared as SHA-256 digests with
``hmac.compare_digest`` (constant time, whatever the lengths), with the current and the previous
token both compared on every call (an absent one, and an unknown cluster's, against a random
digest), so timing does not tell either.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass

from clusters.crypto import CredentialsUnreadable, decrypt_secret
from clusters.models import Cluster

__all__ = ["UNAUTHENTICATED_MESSAGE", "WebhookCredential", "is_authenticated", "webhook_credential"]

log = logging.getLogger(__name__)

UNAUTHENTICATED_MESSAGE = (
    "authentication required: this endpoint answers a registered cluster's apiserver presenting "
    "the cluster's webhook token (see the hub's README, 'Authenticating the apiserver')"
)
# What an unknown cluster's presented token is compared with: matches nothing.
_NO_DIGEST = hashlib.sha256(secrets.token_bytes(32)).digest()


@dataclass(frozen=True)
class WebhookCredential:
    """What one cluster's admission calls are checked against (kept in the admission snapshot)."""

    required: bool
    token_digest: bytes | None  # SHA-256 of the token; None when no token is set (or unreadable)
    # The token a rotation replaced, and until when (Unix time) it is still accepted.
    previous_digest: bytes | None = None
    previous_valid_until: float = 0.0


# What a call naming an unknown cluster is checked against: no token, none accepted.
_UNKNOWN_CLUSTER = WebhookCredential(required=True, token_digest=None)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _stored_digest(cluster: Cluster, ciphertext: str, which: str) -> bytes | None:
    if not ciphertext:
        return None
    try:
        return _digest(decrypt_secret(ciphertext))
    except CredentialsUnreadable:  # a removed encryption key: no token can match
        log.error("admission: the %s webhook token of cluster %s cannot be decrypted", which, cluster.name)
        return None


def webhook_credential(cluster: Cluster) -> WebhookCredential:
    """The cluster's credential, decrypted once per admission snapshot rebuild."""
    expires = cluster.webhook_previous_token_expires_at
    previous = None
    if expires is not None and expires.timestamp() > time.time():  # an expired one is not decrypted
        previous = _stored_digest(cluster, cluster.webhook_previous_token_ciphertext, "previous")
    return WebhookCredential(
        required=cluster.webhook_auth_required,
        token_digest=_stored_digest(cluster, cluster.webhook_token_ciphertext, "current"),
        previous_digest=previous,
        previous_valid_until=expires.timestamp() if previous is not None and expires is not None else 0.0,
    )


def _bearer(authorization: str) -> str | None:
    """The token of ``Bearer <token>`` (scheme case-insensitive); "" for any other header value;
    None when no header was sent."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def is_authenticated(credential: WebhookCredential | None, authorization: str) -> bool:
    """Whether a call with this ``Authorization`` header may be answered for the cluster
    (``credential`` None: no cluster has that name). See the module docstring."""
    presented = _bearer(authorization)
    if presented is None:
        return credential is not None and not credential.required
    if credential is None:
        credential = _UNKNOWN_CLUSTER
    digest = _digest(presented)
    stored, previous = credential.token_digest, credential.previous_digest
    # Both compared on every call, whatever is stored, so timing does not tell what is.
    current_matches = hmac.compare_digest(digest, stored or _NO_DIGEST)
    previous_matches = hmac.compare_digest(digest, previous or _NO_DIGEST)
    in_overlap = time.time() < credential.previous_valid_until  # checked now, not at rebuild
    return (current_matches and stored is not None) or (
        previous_matches and previous is not None and in_overlap
    )
