"""Serializers of the clusters API. Declarative: no queries, no credentials in any output.

Credential fields (``token``, ``client_certificate``, ``client_key``, ``kubeconfig``) are
write-only inputs; no serializer has a field that reads ``credentials_ciphertext``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from clusters.choices import FailurePolicy
from clusters.crypto import ClusterCredentials
from clusters.models import Cluster, ClusterAuditEvent, DriftedPod, SidecarSetPlacement, SidecarSetTarget
from clusters.services import MAX_WEBHOOK_TOKEN_GRACE_SECONDS

__all__ = [
    "ClusterAuditEventSerializer",
    "ClusterCreateSerializer",
    "ClusterDeleteSerializer",
    "ClusterRemovalSerializer",
    "ClusterRolloutPolicySerializer",
    "ClusterSerializer",
    "ClusterUpdateSerializer",
    "CredentialsSerializer",
    "DriftedPodSerializer",
    "KubeconfigImportSerializer",
    "PlacementSerializer",
    "TargetSerializer",
    "WebhookTokenIssuedSerializer",
    "WebhookTokenRevokedSerializer",
    "WebhookTokenSerializer",
]

_SECRET_STYLE = {"input_type": "password"}


def _when(moment: datetime | None) -> str | None:
    """A time as every DateTimeField of the API shows it."""
    return serializers.DateTimeField().to_representation(moment) if moment is not None else None


def _team_name(cluster: Cluster) -> str:
    return cluster.owner_team.name if cluster.owner_team is not None else ""


class ClusterSerializer(serializers.ModelSerializer):
    """A cluster as shown: owner team, connection data, labels, health, webhook settings and
    rollout policy."""

    owner_team = serializers.SerializerMethodField(help_text="Name of the owning team; empty: none")
    webhook_previous_token_accepted_until = serializers.SerializerMethodField(
        help_text="Until when the token the last rotation replaced is still accepted; null: none is"
    )

    class Meta:
        model = Cluster
        fields = (
            "id",
            "name",
            "owner_team",
            "api_server_url",
            "ca_bundle",
            "insecure_skip_tls_verify",
            "tls_server_name",
            "credential_kind",
            "credentials_updated_at",
            "labels",
            "reachable",
            "kubernetes_version",
            "last_error",
            "last_checked_at",
            "last_check_duration_ms",
            "webhook_url",
            "webhook_failure_policy",
            "webhook_timeout_seconds",
            "webhook_auth_required",
            "webhook_token_updated_at",
            "webhook_previous_token_accepted_until",
            "rollout_requires_second_person",
            "rollout_auto_approve",
            "rollout_approval_ttl_seconds",
            "held",
            "held_reason",
            "held_by",
            "held_at",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields

    def get_owner_team(self, obj: Cluster) -> str:
        return _team_name(obj)

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_webhook_previous_token_accepted_until(self, obj: Cluster) -> str | None:
        return _when(obj.previous_webhook_token_accepted_until(timezone.now()))


class ClusterRolloutPolicySerializer(serializers.Serializer):
    """``GET`` / ``PATCH /api/v1/clusters/{name}/rollout-policy/``: who approves rollout steps in
    the cluster and how long a prepared step waits (``rollouts.permissions``). On ``PATCH`` every
    field is optional; ``rollout_approval_ttl_seconds`` ``null`` uses the SidecarSet's or hub's."""

    name = serializers.CharField(read_only=True)
    rollout_requires_second_person = serializers.BooleanField(
        required=False, help_text="Four eyes: steps are approved by someone other than the rollout's author"
    )
    rollout_auto_approve = serializers.BooleanField(
        required=False, help_text="Steps are approved by the system as soon as they are prepared"
    )
    rollout_approval_ttl_seconds = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=60,
        max_value=2**31 - 1,
        help_text="Seconds a prepared step waits for approval (rollouts created afterwards)",
    )


class _CredentialFields(serializers.Serializer):
    token = serializers.CharField(
        write_only=True, required=False, allow_blank=True, trim_whitespace=True, style=_SECRET_STYLE
    )
    client_certificate = serializers.CharField(
        write_only=True, required=False, allow_blank=True, trim_whitespace=False
    )
    client_key = serializers.CharField(
        write_only=True, required=False, allow_blank=True, trim_whitespace=False, style=_SECRET_STYLE
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("token") and not (attrs.get("client_certificate") or attrs.get("client_key")):
            raise serializers.ValidationError(
                {"token": "give a token, or a client_certificate and client_key"}
            )
        return attrs

    def credentials(self) -> ClusterCredentials:
        data = self.validated_data
        return ClusterCredentials(
            token=data.get("token", ""),
            client_certificate_pem=data.get("client_certificate", ""),
            client_key_pem=data.get("client_key", ""),
        )


def _labels(value: Any) -> None:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise serializers.ValidationError("must be an object of string keys to string values")


class ClusterCreateSerializer(_CredentialFields):
    """Input of ``POST /api/v1/clusters/``."""

    name = serializers.CharField(max_length=63)
    api_server_url = serializers.URLField(max_length=500)
    ca_bundle = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)
    insecure_skip_tls_verify = serializers.BooleanField(required=False, default=False)
    tls_server_name = serializers.CharField(required=False, allow_blank=True, default="", max_length=253)
    labels = serializers.JSONField(required=False, default=dict, validators=[_labels])
    webhook_url = serializers.URLField(required=False, allow_blank=True, default="", max_length=500)
    webhook_failure_policy = serializers.ChoiceField(
        FailurePolicy.choices, required=False, default=FailurePolicy.IGNORE
    )
    webhook_timeout_seconds = serializers.IntegerField(required=False, default=10, min_value=1, max_value=30)
    owner_team = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=100, help_text="Name of the owning team"
    )
    webhook_auth_required = serializers.BooleanField(required=False, default=True)


class ClusterUpdateSerializer(serializers.Serializer):
    """Input of ``PATCH /api/v1/clusters/{name}/`` (credentials have their own endpoint)."""

    api_server_url = serializers.URLField(required=False, max_length=500)
    ca_bundle = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    insecure_skip_tls_verify = serializers.BooleanField(required=False)
    tls_server_name = serializers.CharField(required=False, allow_blank=True, max_length=253)
    labels = serializers.JSONField(required=False, validators=[_labels])
    webhook_url = serializers.URLField(required=False, allow_blank=True, max_length=500)
    webhook_failure_policy = serializers.ChoiceField(FailurePolicy.choices, required=False)
    webhook_timeout_seconds = serializers.IntegerField(required=False, min_value=1, max_value=30)
    owner_team = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text="Name of the owning team; empty: none"
    )
    webhook_auth_required = serializers.BooleanField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        policy = sorted(key for key in self.initial_data if str(key).startswith("rollout_"))
        if policy:
            raise serializers.ValidationError(
                {policy[0]: "the rollout policy is changed at /api/v1/clusters/{name}/rollout-policy/"}
            )
        return attrs


class WebhookTokenSerializer(serializers.Serializer):
    """Input of ``POST /api/v1/clusters/{name}/webhook-token/``: a token to set, or none to have
    one generated."""

    token = serializers.CharField(
        write_only=True, required=False, allow_blank=False, max_length=512, style=_SECRET_STYLE
    )
    grace_seconds = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=MAX_WEBHOOK_TOKEN_GRACE_SECONDS,
        help_text="How long the token being replaced stays accepted (default 86400: 24 h; 0: "
        "refused at once), time to give the apiserver the new one",
    )


class WebhookTokenIssuedSerializer(serializers.Serializer):
    """Answer of ``POST /api/v1/clusters/{name}/webhook-token/``, shown once: the token and the
    files for the cluster's apiserver (null when the cluster has no webhook URL yet)."""

    cluster = serializers.CharField()
    token = serializers.CharField()
    generated = serializers.BooleanField()
    webhook_auth_required = serializers.BooleanField()
    previous_token_accepted_until = serializers.DateTimeField(
        allow_null=True, help_text="Until when the replaced token is still accepted; null: not at all"
    )
    admission_configuration = serializers.CharField(allow_null=True)
    kubeconfig = serializers.CharField(allow_null=True)
    kubeconfig_path = serializers.CharField(allow_null=True)


class WebhookTokenRevokedSerializer(serializers.Serializer):
    """Answer of ``POST /api/v1/clusters/{name}/webhook-token/revoke-previous/``."""

    cluster = serializers.CharField()
    revoked = serializers.BooleanField(
        help_text="False when no replaced token was accepted any more (nothing changed)"
    )


class HoldSerializer(serializers.Serializer):
    """Input of ``POST /api/v1/clusters/{name}/hold/``: why the cluster is held (a freeze window)."""

    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=300)


class CredentialsSerializer(_CredentialFields):
    """Input of ``POST /api/v1/clusters/{name}/credentials/`` (replace credentials)."""


class ClusterDeleteSerializer(serializers.Serializer):
    """Query of ``DELETE /api/v1/clusters/{name}/``."""

    keep_in_cluster = serializers.BooleanField(
        required=False,
        default=False,
        help_text="leave the hub's webhook and SidecarSets in the cluster (it is gone, or another hub "
        "manages it); by default they are removed first, and the deletion fails if they cannot be",
    )


class ClusterRemovalSerializer(serializers.Serializer):
    """Answer of ``DELETE /api/v1/clusters/{name}/``: what was removed from the cluster itself."""

    cluster_name = serializers.CharField()
    kept_in_cluster = serializers.BooleanField()
    webhook_removed = serializers.BooleanField()
    sidecarsets_removed = serializers.ListField(child=serializers.CharField())


class KubeconfigImportSerializer(serializers.Serializer):
    """Input of ``POST /api/v1/clusters/import-kubeconfig/``: a kubeconfig's text (inline
    ``*-data`` only: the server cannot read the client's files) and the context to import."""

    name = serializers.CharField(max_length=63)
    kubeconfig = serializers.CharField(
        write_only=True, trim_whitespace=False, style={"base_template": "textarea.html"}
    )
    # The kubeconfig context. Declared fields leave the class body, so Serializer.context is intact.
    context = serializers.CharField(required=False, allow_blank=True, default="")  # type: ignore[assignment]
    replace = serializers.BooleanField(required=False, default=False)
    labels = serializers.JSONField(required=False, default=None, allow_null=True, validators=[])

    def validate_labels(self, value: Any) -> Any:
        if value is not None:
            _labels(value)
        return value


class TargetSerializer(serializers.ModelSerializer):
    """A SidecarSet target: ``cluster`` (by name) or ``cluster_selector``, and a ``wave``."""

    sidecarset: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    sidecarset_id = serializers.IntegerField(read_only=True)
    cluster: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    cluster_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = SidecarSetTarget
        fields = (
            "id",
            "sidecarset",
            "sidecarset_id",
            "cluster",
            "cluster_id",
            "cluster_selector",
            "wave",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


class TargetInputSerializer(serializers.Serializer):
    """Input of target create/update: names for the SidecarSet and cluster."""

    sidecarset = serializers.CharField(required=False, max_length=63)
    cluster = serializers.CharField(required=False, allow_null=True, max_length=63)
    cluster_selector = serializers.JSONField(required=False, allow_null=True)
    wave = serializers.IntegerField(required=False, min_value=0, max_value=1000)


class PlacementSerializer(serializers.ModelSerializer):
    """Push state and observed status of one SidecarSet in one cluster."""

    cluster: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    serving_revision_number = serializers.IntegerField(
        source="serving_revision.number", read_only=True, allow_null=True, default=None
    )

    class Meta:
        model = SidecarSetPlacement
        fields = (
            "id",
            "sidecarset_id",
            "sidecarset_name",
            "cluster",
            "cluster_id",
            "wave",
            "should_exist",
            "state",
            "state_changed_at",
            "serving_revision_id",
            "serving_revision_number",
            "serving_since",
            "applied_revision_number",
            "applied_revision_hash",
            "applied_at",
            "last_error",
            "failed_attempts",
            "matched_pods",
            "updated_pods",
            "ready_pods",
            "updated_ready_pods",
            "status_observed_at",
        )
        read_only_fields = fields


class ClusterAuditEventSerializer(serializers.ModelSerializer):
    """A security audit row (credential create / replace / re-encrypt)."""

    class Meta:
        model = ClusterAuditEvent
        fields = ("id", "cluster_id", "cluster_name", "action", "actor_name", "request_id", "detail", "at")
        read_only_fields = fields


class DriftedPodSerializer(serializers.ModelSerializer):
    """A pod lacking the injection of SidecarSets active in its cluster (``clusters.drift``)."""

    class Meta:
        model = DriftedPod
        fields = (
            "namespace",
            "pod_name",
            "pod_uid",
            "missing_sidecarsets",
            "pod_created_at",
            "first_seen_at",
            "last_seen_at",
        )
        read_only_fields = fields
