"""Status vocabularies of the clusters app (STYLE P2): TextChoices, named groups, transitions."""

from __future__ import annotations

from django.db import models

__all__ = [
    "PLACEMENT_TRANSITIONS",
    "SETTLED_PLACEMENT_STATES",
    "AuditAction",
    "CredentialKind",
    "FailurePolicy",
    "PlacementState",
]


class CredentialKind(models.TextChoices):
    """How the hub authenticates to a cluster's apiserver."""

    # A bearer token (service-account or static token).
    TOKEN = "token", "Bearer token"
    # A client certificate and its private key (PEM).
    CLIENT_CERTIFICATE = "client_certificate", "Client certificate and key"


class FailurePolicy(models.TextChoices):
    """The admission webhook's failurePolicy: what the apiserver does when the hub cannot answer."""

    # Pods are created without sidecars; drift detection finds them later.
    IGNORE = "Ignore", "Ignore"
    # Pod creation fails while the hub is unreachable.
    FAIL = "Fail", "Fail"


class PlacementState(models.TextChoices):
    """Where one SidecarSet stands in one cluster (the hub's view, not Kubernetes' words)."""

    # The hub wants a revision there and has not applied it yet (a push is queued or running).
    PENDING = "pending", "Pending"
    # The desired revision is applied (server-side apply succeeded).
    APPLIED = "applied", "Applied"
    # The last push or removal attempt failed; ``last_error`` says why. Retried with backoff.
    FAILED = "failed", "Failed"
    # The cluster is no longer a target (or the SidecarSet is deleted); removal is queued.
    REMOVING = "removing", "Removing"
    # The custom resource is gone from the cluster.
    REMOVED = "removed", "Removed"


# States in which no push or removal is in flight.
SETTLED_PLACEMENT_STATES = frozenset({PlacementState.APPLIED, PlacementState.REMOVED})

# From each state, the states allowed next. Publishing again (→ pending) and un-targeting
# (→ removing) are allowed from anywhere; a failure can happen while pending or removing.
PLACEMENT_TRANSITIONS: dict[str, frozenset[str]] = {
    PlacementState.PENDING: frozenset(
        {PlacementState.APPLIED, PlacementState.FAILED, PlacementState.PENDING, PlacementState.REMOVING}
    ),
    PlacementState.APPLIED: frozenset({PlacementState.PENDING, PlacementState.REMOVING}),
    PlacementState.FAILED: frozenset(
        {
            PlacementState.PENDING,
            PlacementState.APPLIED,
            PlacementState.FAILED,
            PlacementState.REMOVING,
            PlacementState.REMOVED,
        }
    ),
    PlacementState.REMOVING: frozenset(
        {PlacementState.REMOVED, PlacementState.FAILED, PlacementState.PENDING, PlacementState.REMOVING}
    ),
    PlacementState.REMOVED: frozenset({PlacementState.PENDING, PlacementState.REMOVING}),
}


class AuditAction(models.TextChoices):
    """Security audit events about cluster credentials and webhook tokens (STYLE P11, third kind)."""

    # Credentials stored for a new cluster.
    CREDENTIALS_CREATED = "credentials_created", "Credentials created"
    # A cluster's credentials replaced by new ones.
    CREDENTIALS_REPLACED = "credentials_replaced", "Credentials replaced"
    # The row re-encrypted with the newest encryption key (key rotation).
    ENCRYPTION_KEY_ROTATED = "encryption_key_rotated", "Re-encrypted with the newest key"
    # The token the cluster's apiserver presents to the admission webhook set (generated or given).
    WEBHOOK_TOKEN_SET = "webhook_token_set", "Webhook token set"
    # The token a rotation replaced stopped being accepted before its deadline.
    WEBHOOK_PREVIOUS_TOKEN_REVOKED = "webhook_previous_token_revoked", "Previous webhook token revoked"
