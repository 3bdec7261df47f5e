"""Use cases of the cluster registry: register (by fields or from a kubeconfig), update, replace
credentials, set the admission webhook token, delete, check health, and rotate the encryption key.

Every service takes ``actor`` (a user or None for the system) and ``request_id`` explicitly,
writes the security audit row for credential changes (STYLE P11) and the config change log
through ``sidecarhub.changes.record_change`` with credential-free snapshots. Errors are
``ClusterInvalid`` (field -> message, for a 400) and ``ClusterExists``.

A cluster owned by a team is changed only by that team's members or an organisation admin
(``sidecarhub.teams``: ``NotTeamMember``, a ``PermissionDenied``); the model permissions are the
callers' (API views, admin, the CLI's dispatcher), except the rollout policy's, which
``set_rollout_policy`` checks itself (``clusters.change_rollout_policy``) because it decides who
approves what.

Push of SidecarSets and status write-back are in ``clusters.push``; which SidecarSets target a
cluster is ``clusters.targeting``; tasks are queued through ``clusters.enqueue``.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from clusters import enqueue
from clusters.choices import AuditAction, FailurePolicy
from clusters.crypto import (
    ClusterCredentials,
    CredentialsUnreadable,
    decrypt_secret,
    encrypt_credentials,
    encrypt_secret,
    reencrypt,
)
from clusters.kube import KubeError, forget_kube_client, open_kube_client
from clusters.kubeconfig import ImportedCluster, KubeconfigError, parse_kubeconfig, read_kubeconfig
from clusters.models import Cluster, ClusterAuditEvent
from clusters.push import delete_hub_resources, resync_selector_targets
from clusters.resources import CRD_NAME, MANAGED_BY_SELECTOR
from clusters.webhooks import WEBHOOK_CONFIGURATION_NAME, delete_webhook_configuration
from sidecarhub.changes import actor_name, record_change
from sidecarhub.choices import ChangeAction
from sidecarhub.models import Team
from sidecarhub.teams import (
    TeamNotFound,
    find_team,
    require_team_access,
    require_team_assignment,
)

__all__ = [
    "DEFAULT_WEBHOOK_TOKEN_GRACE_SECONDS",
    "MAX_WEBHOOK_TOKEN_GRACE_SECONDS",
    "ClusterCleanupFailed",
    "ClusterExists",
    "ClusterInvalid",
    "ClusterRemoval",
    "HealthResult",
    "check_cluster_health",
    "cluster_snapshot",
    "delete_cluster",
    "hold_cluster",
    "import_kubeconfig",
    "register_cluster",
    "replace_credentials",
    "revoke_previous_webhook_token",
    "rollout_policy_snapshot",
    "rotate_encryption_key",
    "set_rollout_policy",
    "set_webhook_token",
    "update_cluster",
    "validate_credentials",
    "validate_webhook_token",
    "validate_webhook_token_grace",
    "webhook_token_of",
]

log = logging.getLogger(__name__)

# Fields people may edit on an existing cluster (credentials have their own service).
EDITABLE_FIELDS = (
    "api_server_url",
    "ca_bundle",
    "insecure_skip_tls_verify",
    "tls_server_name",
    "labels",
    "webhook_url",
    "webhook_failure_policy",
    "webhook_timeout_seconds",
    "webhook_auth_required",
)
_SNAPSHOT_FIELDS = ("name", "credential_kind", *EDITABLE_FIELDS)
# The rollout policy (rollouts.permissions, rollouts.services): its own service and permission.
ROLLOUT_POLICY_FIELDS = (
    "rollout_requires_second_person",
    "rollout_auto_approve",
    "rollout_approval_ttl_seconds",
)
ROLLOUT_POLICY_PERMISSION = "clusters.change_rollout_policy"
# A change to any of these re-applies the admission webhook: where it points and how it fails,
# or how the hub reaches the cluster to apply it (a registration that failed may succeed now).
_WEBHOOK_INPUTS = tuple(
    field for field in EDITABLE_FIELDS if field not in ("labels", "webhook_auth_required")
)
# A webhook token: what a kubeconfig and an HTTP header carry without quoting (RFC 6750 b64token).
_WEBHOOK_TOKEN = re.compile(r"^[A-Za-z0-9._~+/=-]{16,512}$")
# How long the token a rotation replaces stays accepted: time to give the apiserver the new one
# and restart it without refusing a pod CREATE meanwhile. 0 revokes it at once.
DEFAULT_WEBHOOK_TOKEN_GRACE_SECONDS = 24 * 3600
MAX_WEBHOOK_TOKEN_GRACE_SECONDS = 30 * 24 * 3600


class ClusterInvalid(ValueError):
    """Input rejected; ``errors`` maps field names to messages (never to submitted values)."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{key}: {value}" for key, value in errors.items()))
        self.errors = dict(errors)


class ClusterExists(ClusterInvalid):
    """A cluster with that name is already registered (use ``replace``)."""


@dataclass(frozen=True)
class HealthResult:
    """The outcome of one health check."""

    cluster_id: int
    reachable: bool
    kubernetes_version: str
    error: str
    duration_ms: int


def _actor_name(actor: Any) -> str:
    return str(getattr(actor, "username", "") or "system") if actor is not None else "system"


def cluster_snapshot(cluster: Cluster) -> dict[str, Any]:
    """A credential-free JSON snapshot for the change log (no ciphertext either)."""
    snapshot = {field: getattr(cluster, field) for field in _SNAPSHOT_FIELDS}
    snapshot["owner_team"] = cluster.owner_team.name if cluster.owner_team is not None else ""
    return snapshot


def rollout_policy_snapshot(cluster: Cluster) -> dict[str, Any]:
    """The cluster's rollout policy, for the change log and the API."""
    return {"name": cluster.name, **{field: getattr(cluster, field) for field in ROLLOUT_POLICY_FIELDS}}


def _owner_team(name: str | None) -> Team | None:
    try:
        return find_team(name)
    except TeamNotFound as exc:
        raise ClusterInvalid({"owner_team": str(exc)}) from None


def _require_access(actor: Any, cluster: Cluster) -> None:
    require_team_access(actor, [cluster.owner_team], f"cluster {cluster.name!r}")


def _audit(cluster: Cluster, action: str, *, actor: Any, request_id: str, detail: dict[str, Any]) -> None:
    ClusterAuditEvent.objects.create(
        cluster=cluster,
        cluster_name=cluster.name,
        action=action,
        actor=actor if getattr(actor, "pk", None) else None,
        actor_name=_actor_name(actor),
        request_id=request_id or "",
        detail=detail,
    )


def validate_credentials(credentials: ClusterCredentials) -> None:
    """Exactly one kind of credentials, in a usable shape (messages name fields only)."""
    if credentials.token and (credentials.client_certificate_pem or credentials.client_key_pem):
        raise ClusterInvalid({"token": "give either a token or a client certificate and key, not both"})
    if credentials.token:
        if any(ch.isspace() for ch in credentials.token.strip()) or "\n" in credentials.token:
            raise ClusterInvalid({"token": "must be a single line without spaces"})
        return
    errors: dict[str, str] = {}
    try:
        x509.load_pem_x509_certificate(credentials.client_certificate_pem.encode())
    except ValueError:
        errors["client_certificate"] = "a PEM certificate is required (or give a token)"
    try:
        serialization.load_pem_private_key(credentials.client_key_pem.encode(), password=None)
    except (ValueError, TypeError):  # the parser's message is not echoed: it could quote the key
        errors["client_key"] = "an unencrypted PEM private key is required (or give a token)"
    if errors:
        raise ClusterInvalid(errors)


def _clean(cluster: Cluster, *, exclude: tuple[str, ...] = ()) -> None:
    try:
        cluster.full_clean(exclude=["credentials_ciphertext", *exclude])
    except ValidationError as exc:
        raise ClusterInvalid(
            {key: " ".join(str(m) for m in msgs) for key, msgs in exc.message_dict.items()}
        ) from None
    if not cluster.api_server_url.startswith("https://"):
        raise ClusterInvalid({"api_server_url": "must be an https:// URL"})
    if not isinstance(cluster.labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in cluster.labels.items()
    ):
        raise ClusterInvalid({"labels": "must be an object of string keys to string values"})
    if cluster.webhook_failure_policy not in FailurePolicy.values:
        raise ClusterInvalid({"webhook_failure_policy": "must be Ignore or Fail"})


@transaction.atomic
def register_cluster(
    *,
    name: str,
    api_server_url: str,
    credentials: ClusterCredentials,
    ca_bundle: str = "",
    insecure_skip_tls_verify: bool = False,
    tls_server_name: str = "",
    labels: Mapping[str, str] | None = None,
    webhook_url: str = "",
    webhook_failure_policy: str = FailurePolicy.IGNORE,
    webhook_timeout_seconds: int = 10,
    owner_team: str = "",
    webhook_auth_required: bool = True,
    actor: Any = None,
    request_id: str = "",
) -> Cluster:
    """Register a new cluster with encrypted credentials; audit ``credentials_created``.
    ``owner_team``: a team's name ("" = none; giving it to a team needs membership of it).

    Admission calls must carry the cluster's webhook token by default (``webhook_auth_required``);
    until ``set_webhook_token`` gives it one they are refused (401). Does not contact the cluster
    (a health check is queued after commit)."""
    validate_credentials(credentials)
    team = _owner_team(owner_team)
    require_team_assignment(actor, team)
    cluster = Cluster(
        name=name,
        api_server_url=api_server_url.rstrip("/"),
        ca_bundle=ca_bundle,
        insecure_skip_tls_verify=insecure_skip_tls_verify,
        tls_server_name=tls_server_name,
        labels=dict(labels or {}),
        webhook_url=webhook_url,
        webhook_failure_policy=webhook_failure_policy,
        webhook_timeout_seconds=webhook_timeout_seconds,
        webhook_auth_required=webhook_auth_required,
        credential_kind=credentials.kind,
        credentials_ciphertext=encrypt_credentials(credentials),
        credentials_updated_at=timezone.now(),
        owner_team=team,
    )
    if Cluster.objects.filter(name=name).exists():
        raise ClusterExists({"name": f"a cluster named {name!r} is already registered"})
    _clean(cluster)
    try:
        with transaction.atomic():
            cluster.save()
    except IntegrityError:
        raise ClusterExists({"name": f"a cluster named {name!r} is already registered"}) from None
    _audit(
        cluster,
        AuditAction.CREDENTIALS_CREATED,
        actor=actor,
        request_id=request_id,
        detail={"credential_kind": cluster.credential_kind},
    )
    record_change(
        cluster,
        ChangeAction.CREATE,
        actor=actor,
        request_id=request_id,
        before=None,
        after=cluster_snapshot(cluster),
    )
    enqueue.health_check(cluster.pk)
    _queue_webhook_registration(cluster.pk)
    return cluster


def import_kubeconfig(
    *,
    name: str,
    kubeconfig_text: str | None = None,
    kubeconfig_path: str | Path | None = None,
    context: str | None = None,
    replace: bool = False,
    labels: Mapping[str, str] | None = None,
    actor: Any = None,
    request_id: str = "",
) -> tuple[Cluster, bool]:
    """Register (or with ``replace``, update) a cluster from one kubeconfig context.

    Returns ``(cluster, created)``. On replace, connection data and credentials are replaced
    (audit ``credentials_replaced``); labels and webhook settings are kept unless given."""
    try:
        if kubeconfig_path is not None:
            imported = read_kubeconfig(kubeconfig_path, context=context)
        else:
            imported = parse_kubeconfig(kubeconfig_text or "", context=context)
    except KubeconfigError as exc:
        field = "context" if exc.field == "context" else "kubeconfig"
        raise ClusterInvalid({field: str(exc)}) from None
    with transaction.atomic():
        existing = Cluster.objects.select_for_update().filter(name=name).first()
        if existing is None:
            return _register_imported(name, imported, labels, actor, request_id), True
        if not replace:
            raise ClusterExists({"name": f"a cluster named {name!r} is already registered (use replace)"})
        changes: dict[str, Any] = {
            "api_server_url": imported.api_server_url,
            "ca_bundle": imported.ca_bundle,
            "insecure_skip_tls_verify": imported.insecure_skip_tls_verify,
            "tls_server_name": imported.tls_server_name,
        }
        if labels is not None:
            changes["labels"] = dict(labels)
        update_cluster(existing.pk, changes=changes, actor=actor, request_id=request_id)
        cluster = replace_credentials(
            existing.pk, credentials=imported.credentials, actor=actor, request_id=request_id
        )
        return cluster, False


def _register_imported(
    name: str, imported: ImportedCluster, labels: Mapping[str, str] | None, actor: Any, request_id: str
) -> Cluster:
    return register_cluster(
        name=name,
        api_server_url=imported.api_server_url,
        credentials=imported.credentials,
        ca_bundle=imported.ca_bundle,
        insecure_skip_tls_verify=imported.insecure_skip_tls_verify,
        tls_server_name=imported.tls_server_name,
        labels=labels,
        actor=actor,
        request_id=request_id,
    )


@transaction.atomic
def update_cluster(
    cluster_id: int, *, changes: Mapping[str, Any], actor: Any = None, request_id: str = ""
) -> Cluster:
    """Change non-credential fields, and ``owner_team`` (a team's name, "" = none). A label or
    team change re-resolves label-selector targets (selectors stay inside their team:
    ``clusters.targeting``)."""
    unknown = set(changes) - {*EDITABLE_FIELDS, "owner_team"}
    if unknown:
        raise ClusterInvalid({sorted(unknown)[0]: "cannot be changed here"})
    cluster = Cluster.objects.select_for_update().get(pk=cluster_id)
    _require_access(actor, cluster)
    before = cluster_snapshot(cluster)
    for field, value in changes.items():
        if field == "owner_team":
            team = _owner_team(value)
            require_team_assignment(actor, team, cluster.owner_team)
            cluster.owner_team = team
            continue
        setattr(cluster, field, value.rstrip("/") if field == "api_server_url" else value)
    _clean(cluster, exclude=("name",))
    cluster.save()
    after = cluster_snapshot(cluster)
    if before != after:
        record_change(
            cluster, ChangeAction.UPDATE, actor=actor, request_id=request_id, before=before, after=after
        )
    if before["labels"] != after["labels"] or before["owner_team"] != after["owner_team"]:
        resync_selector_targets(actor=actor, request_id=request_id)
    if any(before[field] != after[field] for field in _WEBHOOK_INPUTS):
        _queue_webhook_registration(cluster.pk)
    return cluster


@transaction.atomic
def hold_cluster(
    cluster_id: int, *, actor: Any = None, request_id: str = "", held: bool, reason: str = ""
) -> Cluster:
    """Hold the cluster at what it serves (``held``), or lift the hold (decision 17). Releases
    skip a held cluster visibly (its rollouts stay pending, saying so; later waves go on); once
    lifted, its rollouts continue at the next reconcile. Recorded in the change log."""
    cluster = Cluster.objects.select_for_update().get(pk=cluster_id)
    _require_access(actor, cluster)
    before = _hold_snapshot(cluster)
    cluster.held = held
    cluster.held_reason = reason.strip()[:300] if held else ""
    cluster.held_by = _actor_name(actor) if held else ""
    cluster.held_at = timezone.now() if held else None
    cluster.save(update_fields=["held", "held_reason", "held_by", "held_at", "updated_at"])
    if before != _hold_snapshot(cluster):
        record_change(
            cluster,
            ChangeAction.UPDATE,
            actor=actor,
            request_id=request_id,
            before=before,
            after=_hold_snapshot(cluster),
        )
    return cluster


def _hold_snapshot(cluster: Cluster) -> dict[str, Any]:
    return {"name": cluster.name, "held": cluster.held, "held_reason": cluster.held_reason}


@transaction.atomic
def set_rollout_policy(
    cluster_id: int, *, changes: Mapping[str, Any], actor: Any = None, request_id: str = ""
) -> Cluster:
    """Change the cluster's rollout policy (``ROLLOUT_POLICY_FIELDS``): four eyes
    (``rollout_requires_second_person``), ``rollout_auto_approve``, and
    ``rollout_approval_ttl_seconds`` (``None``: the SidecarSet's or hub's setting; it applies to
    rollouts created afterwards). One change-log row with the policy before and after; nothing
    when nothing changed.

    Guarantees: ``PermissionDenied`` unless the actor is the system or holds
    ``clusters.change_rollout_policy``, and ``NotTeamMember`` unless they act for the cluster's
    team; ``ClusterInvalid`` naming the field for a bad value.
    """
    unknown = set(changes) - set(ROLLOUT_POLICY_FIELDS)
    if unknown:
        raise ClusterInvalid({sorted(unknown)[0]: "is not a rollout policy field"})
    if actor is not None and not (
        getattr(actor, "is_active", False) and actor.has_perm(ROLLOUT_POLICY_PERMISSION)
    ):
        raise PermissionDenied(
            f"{actor_name(actor)} lacks the permission to change rollout policies "
            f"({ROLLOUT_POLICY_PERMISSION})"
        )
    cluster = Cluster.objects.select_for_update().get(pk=cluster_id)
    _require_access(actor, cluster)
    before = rollout_policy_snapshot(cluster)
    for field, value in changes.items():
        setattr(cluster, field, value)
    _clean(cluster, exclude=("name",))
    if before == rollout_policy_snapshot(cluster):
        return cluster
    cluster.save(update_fields=[*ROLLOUT_POLICY_FIELDS, "updated_at"])
    record_change(
        cluster,
        ChangeAction.UPDATE,
        actor=actor,
        request_id=request_id,
        before=before,
        after=rollout_policy_snapshot(cluster),
        message="rollout policy changed",
    )
    return cluster


@transaction.atomic
def replace_credentials(
    cluster_id: int, *, actor: Any = None, request_id: str = "", credentials: ClusterCredentials
) -> Cluster:
    """Replace a cluster's credentials (encrypted with the newest key); audit the replacement."""
    validate_credentials(credentials)
    cluster = Cluster.objects.select_for_update().get(pk=cluster_id)
    _require_access(actor, cluster)
    previous_kind = cluster.credential_kind
    cluster.credential_kind = credentials.kind
    cluster.credentials_ciphertext = encrypt_credentials(credentials)
    cluster.credentials_updated_at = timezone.now()
    cluster.save(
        update_fields=["credential_kind", "credentials_ciphertext", "credentials_updated_at", "updated_at"]
    )
    _audit(
        cluster,
        AuditAction.CREDENTIALS_REPLACED,
        actor=actor,
        request_id=request_id,
        detail={"credential_kind": cluster.credential_kind, "previous_credential_kind": previous_kind},
    )
    record_change(
        cluster,
        ChangeAction.UPDATE,
        actor=actor,
        request_id=request_id,
        before={"credential_kind": previous_kind},
        after={"credential_kind": cluster.credential_kind},
        message="credentials replaced",
    )
    transaction.on_commit(lambda: forget_kube_client(cluster_id))
    enqueue.health_check(cluster.pk)
    _queue_webhook_registration(cluster.pk)  # a registration that failed on the old ones succeeds now
    return cluster


def validate_webhook_token(token: str) -> None:
    """16 to 512 characters of ``A-Z a-z 0-9 . _ ~ + / = -`` (messages never quote the value)."""
    if not _WEBHOOK_TOKEN.match(token):
        raise ClusterInvalid(
            {"token": "must be 16 to 512 characters of letters, digits and . _ ~ + / = - (no spaces)"}
        )


def validate_webhook_token_grace(grace_seconds: int) -> None:
    """0 (revoke the replaced token at once) to ``MAX_WEBHOOK_TOKEN_GRACE_SECONDS``."""
    if not 0 <= grace_seconds <= MAX_WEBHOOK_TOKEN_GRACE_SECONDS:
        raise ClusterInvalid(
            {"grace_seconds": f"must be 0 (revoke at once) to {MAX_WEBHOOK_TOKEN_GRACE_SECONDS} seconds"}
        )


@transaction.atomic
def set_webhook_token(
    cluster_id: int,
    *,
    token: str | None = None,
    grace_seconds: int | None = None,
    actor: Any = None,
    request_id: str = "",
) -> str:
    """Give the cluster a new admission webhook token, ``token`` or a generated one (256 random
    bits), and return it: the caller shows it once (it is stored only encrypted).

    The token it replaces stays accepted for ``grace_seconds`` (default
    ``DEFAULT_WEBHOOK_TOKEN_GRACE_SECONDS``) so the apiserver keeps injecting until its admission
    configuration has the new one; only the one replaced now (an older previous token is
    dropped). ``grace_seconds=0`` revokes it (and any previous one) at once. Either takes
    effect within the admission cache's check interval in every process. Audited
    (``webhook_token_set``) and in the change log, neither with a value."""
    generated = token is None
    value = secrets.token_urlsafe(32) if token is None else token.strip()
    validate_webhook_token(value)
    grace = DEFAULT_WEBHOOK_TOKEN_GRACE_SECONDS if grace_seconds is None else grace_seconds
    validate_webhook_token_grace(grace)
    cluster = Cluster.objects.select_for_update().get(pk=cluster_id)
    _require_access(actor, cluster)  # a credential of the cluster: its team's, as replace_credentials
    before = _token_snapshot(cluster)
    now = timezone.now()
    if grace == 0:
        cluster.webhook_previous_token_ciphertext = ""
        cluster.webhook_previous_token_expires_at = None
    elif _replaces_a_working_token(cluster, value):
        cluster.webhook_previous_token_ciphertext = cluster.webhook_token_ciphertext
        cluster.webhook_previous_token_expires_at = now + timedelta(seconds=grace)
    cluster.webhook_token_ciphertext = encrypt_secret(value)
    cluster.webhook_token_updated_at = now
    # updated_at is in the admission cache's generation: every web process re-reads the tokens.
    cluster.save(update_fields=[*_WEBHOOK_TOKEN_FIELDS, "updated_at"])
    accepted_until = cluster.previous_webhook_token_accepted_until(now)
    _audit(
        cluster,
        AuditAction.WEBHOOK_TOKEN_SET,
        actor=actor,
        request_id=request_id,
        detail={
            "generated": generated,
            "previous_token_accepted_until": accepted_until.isoformat() if accepted_until else None,
        },
    )
    record_change(
        cluster,
        ChangeAction.UPDATE,
        actor=actor,
        request_id=request_id,
        before=before,
        after=_token_snapshot(cluster),
        message="webhook token generated" if generated else "webhook token set",
    )
    return value


_WEBHOOK_TOKEN_FIELDS = (
    "webhook_token_ciphertext",
    "webhook_token_updated_at",
    "webhook_previous_token_ciphertext",
    "webhook_previous_token_expires_at",
)


def _replaces_a_working_token(cluster: Cluster, value: str) -> bool:
    """Whether setting ``value`` replaces a token the apiserver may be presenting now (not none,
    not the same one, not one no key can read)."""
    try:
        current = webhook_token_of(cluster)
    except CredentialsUnreadable:
        return False
    return bool(current) and current != value


@transaction.atomic
def revoke_previous_webhook_token(cluster_id: int, *, actor: Any = None, request_id: str = "") -> bool:
    """Stop accepting the token the last rotation replaced, before its deadline (the apiserver
    has the new one). False, and nothing recorded, when no such token is accepted any more.
    Audited (``webhook_previous_token_revoked``) and in the change log."""
    cluster = Cluster.objects.select_for_update().get(pk=cluster_id)
    _require_access(actor, cluster)
    if cluster.previous_webhook_token_accepted_until(timezone.now()) is None:
        return False  # none, or past its deadline: already refused (cleared by the next rotation)
    before = _token_snapshot(cluster)
    cluster.webhook_previous_token_ciphertext = ""
    cluster.webhook_previous_token_expires_at = None
    # updated_at is in the admission cache's generation: every web process re-reads the tokens.
    cluster.save(update_fields=[*_WEBHOOK_TOKEN_FIELDS, "updated_at"])
    _audit(cluster, AuditAction.WEBHOOK_PREVIOUS_TOKEN_REVOKED, actor=actor, request_id=request_id, detail={})
    record_change(
        cluster,
        ChangeAction.UPDATE,
        actor=actor,
        request_id=request_id,
        before=before,
        after=_token_snapshot(cluster),
        message="previous webhook token revoked",
    )
    return True


def _token_snapshot(cluster: Cluster) -> dict[str, Any]:
    """When the token last changed and until when the replaced one is accepted (never a value)."""
    changed = cluster.webhook_token_updated_at
    expires = cluster.webhook_previous_token_expires_at if cluster.webhook_previous_token_ciphertext else None
    return {
        "name": cluster.name,
        "webhook_token_updated_at": changed.isoformat() if changed else None,
        "webhook_previous_token_expires_at": expires.isoformat() if expires else None,
    }


def webhook_token_of(cluster: Cluster) -> str:
    """The cluster's webhook token in clear ("" when none is set), for the admission configuration
    a cluster admin installs; ``CredentialsUnreadable`` when no encryption key fits."""
    return decrypt_secret(cluster.webhook_token_ciphertext) if cluster.webhook_token_ciphertext else ""


class ClusterCleanupFailed(Exception):
    """``delete_cluster`` could not remove the hub's objects from the cluster; nothing was deleted."""

    def __init__(self, cluster_name: str, error: KubeError) -> None:
        self.cluster_name = cluster_name
        super().__init__(
            f"cluster {cluster_name} was not deleted: the hub could not remove its webhook and "
            f"SidecarSets from the cluster ({error}). Fix the hub's access to the cluster and retry, "
            "or delete it with keep_in_cluster, then remove them yourself: kubectl delete "
            f"mutatingwebhookconfiguration {WEBHOOK_CONFIGURATION_NAME}; kubectl delete {CRD_NAME} "
            f"-l {MANAGED_BY_SELECTOR}"
        )


@dataclass(frozen=True)
class ClusterRemoval:
    """What ``delete_cluster`` removed from the cluster itself (nothing when kept)."""

    cluster_name: str
    kept_in_cluster: bool
    webhook_removed: bool = False  # False also when it was not there
    sidecarsets_removed: tuple[str, ...] = ()

    def summary(self) -> str:
        if self.kept_in_cluster:
            return "the hub's webhook and SidecarSets were left in the cluster (keep_in_cluster)"
        webhook = "webhook removed" if self.webhook_removed else "no webhook to remove"
        sidecarsets = ", ".join(self.sidecarsets_removed) or "none"
        return f"from the cluster: {webhook}; SidecarSets removed: {sidecarsets}"


# A person waits for a deletion: an unreachable cluster fails it after two tries, not four.
_CLEANUP_ATTEMPTS = 2


def _remove_hub_objects(cluster: Cluster) -> ClusterRemoval:
    """Delete the hub's webhook configuration first (pod creation stops calling the hub), then its
    SidecarSet resources. Raises ``ClusterCleanupFailed``."""
    try:
        with open_kube_client(cluster, max_attempts=_CLEANUP_ATTEMPTS) as kube:
            webhook_removed = delete_webhook_configuration(kube)
            removed = delete_hub_resources(kube)
    except KubeError as exc:
        raise ClusterCleanupFailed(cluster.name, exc) from None
    return ClusterRemoval(cluster.name, False, webhook_removed, tuple(removed))


def _sweep_after_delete(cluster: Cluster) -> None:
    """A push that read its placement before the deletion committed may still apply its resource
    after the cleanup: delete what such a push left (best effort, logged)."""
    try:
        with open_kube_client(cluster, max_attempts=_CLEANUP_ATTEMPTS) as kube:
            late = delete_hub_resources(kube)
    except KubeError as exc:
        log.warning("cluster %s: sweep after deletion failed: %s", cluster.name, exc)
        return
    if late:
        log.info("cluster %s: removed SidecarSets a late push applied: %s", cluster.name, ", ".join(late))


def delete_cluster(
    cluster_id: int, *, keep_in_cluster: bool = False, actor: Any = None, request_id: str = ""
) -> ClusterRemoval:
    """Unregister a cluster; its targets and placements go with it; its rollouts stay as history
    (the rollouts app fails the active ones on ``pre_delete``).

    First the hub's objects are removed from the cluster itself: its admission webhook
    configuration (left behind, it would keep calling a hub that no longer knows the cluster,
    and with failurePolicy Fail no pod could be created there) and its SidecarSet resources.
    If that fails (cluster unreachable, access denied), nothing is deleted and
    ``ClusterCleanupFailed`` says how to go on. ``keep_in_cluster`` skips the removal, for a
    cluster that is gone or that another hub now manages.
    """
    with transaction.atomic():
        cluster = Cluster.objects.select_for_update().get(pk=cluster_id)
        _require_access(actor, cluster)
        removal = ClusterRemoval(cluster.name, True) if keep_in_cluster else _remove_hub_objects(cluster)
        record_change(
            cluster,
            ChangeAction.DELETE,
            actor=actor,
            request_id=request_id,
            before=cluster_snapshot(cluster),
            after=None,
            message=f"deleted; {removal.summary()}",
        )
        cluster.delete()
        transaction.on_commit(lambda: forget_kube_client(cluster_id))
        if not keep_in_cluster:
            transaction.on_commit(lambda: _sweep_after_delete(cluster))
    return removal


def _queue_webhook_registration(cluster_id: int) -> None:
    """Apply the admission webhook to the cluster after commit (``clusters.webhooks``; retried
    while the cluster is unreachable; a no-op, logged, while the hub has no webhook URL), unless
    ``SIDECARHUB_WEBHOOK_AUTO_REGISTER`` is off."""
    if getattr(settings, "SIDECARHUB_WEBHOOK_AUTO_REGISTER", True):
        enqueue.webhook_registration(cluster_id)


def check_cluster_health(cluster_id: int) -> HealthResult | None:
    """Call ``/version`` with a fresh client and record reachability, version, error and time.

    Safe to run concurrently (last writer wins on health columns only). None when the cluster
    no longer exists."""
    cluster = Cluster.objects.filter(pk=cluster_id).first()
    if cluster is None:
        return None
    started = time.monotonic()
    version, error = "", ""
    try:
        with open_kube_client(cluster) as kube:
            info = kube.version()
        version = str(info.get("gitVersion") or f"v{info.get('major')}.{info.get('minor')}")
    except KubeError as exc:
        error = str(exc)
    duration_ms = int((time.monotonic() - started) * 1000)
    fields: dict[str, Any] = {
        "reachable": not error,
        "last_error": error,
        "last_checked_at": timezone.now(),
        "last_check_duration_ms": duration_ms,
    }
    if version:
        fields["kubernetes_version"] = version
    Cluster.objects.filter(pk=cluster_id).update(**fields)
    if error:
        log.warning("health check: %s", error)
    return HealthResult(cluster_id, not error, version, error, duration_ms)


def rotate_encryption_key(*, actor: Any = None, request_id: str = "") -> int:
    """Re-encrypt every cluster's credentials and webhook tokens with the newest key (the first of
    ``SIDECARHUB_ENCRYPTION_KEYS``); one audit row per cluster. Idempotent. Returns the count.

    Raises ``CredentialsUnreadable`` (and changes nothing for that row) if a row cannot be
    decrypted with any configured key."""
    count = 0
    for cluster_id in Cluster.objects.order_by("pk").values_list("pk", flat=True):
        with transaction.atomic():
            cluster = Cluster.objects.select_for_update().get(pk=cluster_id)
            cluster.credentials_ciphertext = reencrypt(cluster.credentials_ciphertext)
            if cluster.webhook_token_ciphertext:
                cluster.webhook_token_ciphertext = reencrypt(cluster.webhook_token_ciphertext)
            if cluster.webhook_previous_token_ciphertext:  # still accepted until its deadline
                cluster.webhook_previous_token_ciphertext = reencrypt(
                    cluster.webhook_previous_token_ciphertext
                )
            cluster.save(
                update_fields=[
                    "credentials_ciphertext",
                    "webhook_token_ciphertext",
                    "webhook_previous_token_ciphertext",
                ]
            )
            _audit(cluster, AuditAction.ENCRYPTION_KEY_ROTATED, actor=actor, request_id=request_id, detail={})
        count += 1
    return count
