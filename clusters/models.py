"""Models of the clusters app: the registry of Kubernetes clusters and its security audit.

Credentials live only in ``Cluster.credentials_ciphertext`` and the admission webhook tokens only
in ``Cluster.webhook_token_ciphertext`` and ``webhook_previous_token_ciphertext`` (MultiFernet,
see ``crypto``);
every other column is safe to show. Targets (which clusters a SidecarSet goes to, in which
wave) and placements (push state and observed status of one SidecarSet in one cluster) are
further down.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from clusters.choices import AuditAction, CredentialKind, FailurePolicy, PlacementState
from clusters.querysets import ClusterQuerySet, PlacementQuerySet

__all__ = ["Cluster", "ClusterAuditEvent", "DriftedPod", "SidecarSetPlacement", "SidecarSetTarget"]

# DNS-label-like names: they appear in URLs, CLI arguments and Kubernetes labels.
cluster_name_validator = RegexValidator(
    r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
    "lowercase letters, digits and '-', starting and ending with a letter or digit (max 63)",
)


class Cluster(models.Model):
    """One registered Kubernetes cluster: where its apiserver is, how to trust and reach it,
    its labels (for target selectors), its last observed health, and how its apiserver reaches
    the hub's admission webhook.

    Guarantees: credentials and the webhook tokens are stored only encrypted
    (``credentials_ciphertext``, ``webhook_token_ciphertext``,
    ``webhook_previous_token_ciphertext``), never in another column;
    ``str()`` and ``repr()`` show the name only.
    """

    name = models.CharField(max_length=63, unique=True, validators=[cluster_name_validator])
    api_server_url = models.URLField(max_length=500, help_text="https://host:port of the kube-apiserver")
    ca_bundle = models.TextField(
        blank=True, help_text="PEM CA certificates that sign the apiserver's serving certificate"
    )
    insecure_skip_tls_verify = models.BooleanField(
        default=False, help_text="Do not verify the apiserver's certificate (development only)"
    )
    tls_server_name = models.CharField(
        max_length=253, blank=True, help_text="Server name to verify instead of the URL's host"
    )
    credential_kind = models.CharField(max_length=32, choices=CredentialKind.choices)
    # MultiFernet ciphertext of a JSON object (token or client certificate + key). Not editable:
    # forms, admin and serializers never see it.
    credentials_ciphertext = models.TextField(editable=False)
    credentials_updated_at = models.DateTimeField(null=True, editable=False)
    labels = models.JSONField(default=dict, blank=True, help_text="Labels matched by target selectors")

    # Health, written by the periodic check.
    reachable = models.BooleanField(null=True, editable=False, help_text="None until the first check")
    kubernetes_version = models.CharField(max_length=64, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    last_checked_at = models.DateTimeField(null=True, editable=False)
    last_check_duration_ms = models.PositiveIntegerField(null=True, editable=False)

    # Admission webhook settings (used by webhook registration).
    webhook_url = models.URLField(
        max_length=500, blank=True, help_text="URL at which this cluster's apiserver reaches the hub"
    )
    webhook_failure_policy = models.CharField(
        max_length=8, choices=FailurePolicy.choices, default=FailurePolicy.IGNORE
    )
    webhook_timeout_seconds = models.PositiveSmallIntegerField(
        default=10, validators=[MinValueValidator(1), MaxValueValidator(30)]
    )
    # How the hub knows an admission call comes from this cluster's apiserver: a bearer token the
    # apiserver presents through its admission configuration (clusters.admission_config). Stored
    # only encrypted. Required by default; existing clusters were migrated as not required.
    webhook_auth_required = models.BooleanField(
        default=True,
        help_text="Admission calls must carry this cluster's webhook token (answer 401 otherwise)",
    )
    webhook_token_ciphertext = models.TextField(blank=True, editable=False)
    webhook_token_updated_at = models.DateTimeField(null=True, editable=False)
    # The token a rotation replaced, still accepted until the deadline so the apiserver keeps
    # working while its admission configuration is updated (encrypted like the current one).
    webhook_previous_token_ciphertext = models.TextField(blank=True, editable=False)
    webhook_previous_token_expires_at = models.DateTimeField(null=True, editable=False)

    # Hash of the CRD manifest last applied, so pushes skip re-installing it.
    crd_manifest_hash = models.CharField(max_length=64, blank=True, editable=False)

    # Rollout approval policy (rollouts.permissions): four eyes by default; staging may auto-approve.
    rollout_requires_second_person = models.BooleanField(
        default=True, help_text="Rollout steps must be approved by someone other than the rollout's author"
    )
    rollout_auto_approve = models.BooleanField(
        default=False, help_text="Approve rollout steps automatically as soon as they are prepared"
    )
    rollout_approval_ttl_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(60)],
        help_text="Seconds a prepared step waits for approval here; empty: the SidecarSet's or hub's setting",
    )
    owner_team = models.ForeignKey(
        "sidecarhub.Team",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="clusters",
        help_text="The team whose people act on this cluster (empty: see sidecarhub.teams)",
    )

    # A hold (decision 17): the cluster keeps serving what it serves; releases skip it visibly.
    held = models.BooleanField(default=False, help_text="Releases skip this cluster until the hold is lifted")
    held_reason = models.CharField(max_length=300, blank=True, help_text="Why (e.g. a freeze window)")
    held_by = models.CharField(max_length=150, blank=True)
    held_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ClusterQuerySet.as_manager()

    class Meta:
        ordering = ("name",)
        permissions = [
            ("hold_cluster", "Can hold a cluster at the revisions it serves (releases skip it)"),
            (
                "change_rollout_policy",
                "Can change a cluster's rollout policy (four eyes, auto-approve, approval lifetime)",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<Cluster {self.pk}: {self.name}>"

    def previous_webhook_token_accepted_until(self, now: datetime) -> datetime | None:
        """Until when the token replaced by the last rotation is still accepted (None: no such
        token, revoked, or its deadline passed)."""
        expires = self.webhook_previous_token_expires_at
        if not self.webhook_previous_token_ciphertext or expires is None or expires <= now:
            return None
        return expires


class ClusterAuditEvent(models.Model):
    """Security audit: who created, replaced or re-encrypted a cluster's credentials, and when.

    Append-only. Names are copied so rows survive the deletion of the cluster or the user.
    ``detail`` never holds secret values.
    """

    cluster = models.ForeignKey(Cluster, null=True, on_delete=models.SET_NULL, related_name="audit_events")
    cluster_name = models.CharField(max_length=63)
    action = models.CharField(max_length=32, choices=AuditAction.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor_name = models.CharField(max_length=150, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ("-at", "-id")

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.action} {self.cluster_name} by {self.actor_name or '-'}"


class SidecarSetTarget(models.Model):
    """One targeting rule of a SidecarSet: an explicit cluster, or a label selector over
    cluster labels (``matchLabels`` / ``matchExpressions``), and the wave in which rollouts
    reach the clusters it selects (lower waves first; a cluster selected by several rules of
    one SidecarSet takes the lowest wave).

    Guarantees: exactly one of ``cluster`` / ``cluster_selector`` is set; a cluster is named
    explicitly at most once per SidecarSet. Written by ``clusters.push`` services, which
    re-resolve placements on every change.
    """

    sidecarset = models.ForeignKey(
        "sidecarhub.SidecarSet", on_delete=models.CASCADE, related_name="cluster_targets"
    )
    cluster = models.ForeignKey(
        Cluster, null=True, blank=True, on_delete=models.CASCADE, related_name="targets"
    )
    cluster_selector = models.JSONField(
        null=True, blank=True, help_text="Kubernetes label selector over cluster labels"
    )
    wave = models.PositiveSmallIntegerField(default=0, help_text="Rollout order: lower waves go first")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "SidecarSet target"
        ordering = ("sidecarset", "wave", "id")
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(cluster__isnull=False, cluster_selector__isnull=True)
                    | models.Q(cluster__isnull=True, cluster_selector__isnull=False)
                ),
                name="target_cluster_xor_selector",
            ),
            models.UniqueConstraint(
                fields=("sidecarset", "cluster"),
                condition=models.Q(cluster__isnull=False),
                name="target_explicit_cluster_unique",
            ),
        ]

    def __str__(self) -> str:
        what = self.cluster.name if self.cluster_id and self.cluster else f"selector {self.cluster_selector}"
        return f"{self.sidecarset} -> {what} (wave {self.wave})"


class SidecarSetPlacement(models.Model):
    """One SidecarSet in one cluster: whether the hub wants it there (``should_exist``), which
    revision it wants and which it last applied, the push state with a readable error, and the
    status counters the periodic status refresh read from the cluster's pods.

    Guarantees: one row per (SidecarSet name, cluster); ``sidecarset_name`` is kept after the
    SidecarSet is deleted so the removal can still find the custom resource. State changes are
    conditional updates in ``clusters.push`` (transition table ``PLACEMENT_TRANSITIONS``).
    """

    sidecarset = models.ForeignKey(
        "sidecarhub.SidecarSet", null=True, blank=True, on_delete=models.SET_NULL, related_name="placements"
    )
    sidecarset_name = models.CharField(max_length=63, help_text="Name of the custom resource in the cluster")
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="placements")
    wave = models.PositiveSmallIntegerField(default=0)
    should_exist = models.BooleanField(default=True, help_text="False once the cluster is no longer a target")
    state = models.CharField(max_length=16, choices=PlacementState.choices, default=PlacementState.PENDING)
    state_changed_at = models.DateTimeField(auto_now_add=True)
    # The revision this cluster serves (decision 17): pushed as its custom resource and injected by
    # its webhook. Publishing does not move it; a release's gate (or a rollback) does.
    serving_revision = models.ForeignKey(
        "sidecarhub.SidecarSetRevision", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    serving_since = models.DateTimeField(null=True, blank=True, help_text="When it started serving it")
    applied_revision = models.ForeignKey(
        "sidecarhub.SidecarSetRevision", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Copies: revisions can be pruned while the cluster still runs them.
    applied_revision_number = models.PositiveIntegerField(null=True, blank=True)
    applied_revision_hash = models.CharField(max_length=64, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    failed_attempts = models.PositiveIntegerField(default=0, help_text="Failures since the last success")

    # Status written back by the status refresh (update.md §3), None until first observed.
    matched_pods = models.PositiveIntegerField(null=True, blank=True)
    updated_pods = models.PositiveIntegerField(null=True, blank=True)
    ready_pods = models.PositiveIntegerField(null=True, blank=True)
    updated_ready_pods = models.PositiveIntegerField(null=True, blank=True)
    status_observed_at = models.DateTimeField(null=True, blank=True)

    objects = PlacementQuerySet.as_manager()

    class Meta:
        verbose_name = "SidecarSet placement"
        ordering = ("sidecarset_name", "cluster__name")
        constraints = [
            models.UniqueConstraint(fields=("sidecarset_name", "cluster"), name="placement_unique"),
        ]
        indexes = [models.Index(fields=("cluster", "state"), name="placement_cluster_state_idx")]

    def __str__(self) -> str:
        return f"{self.sidecarset_name} in {self.cluster_id}: {self.state}"


# --- drift (clusters.drift) ---------------------------------------------------------------------


class DriftedPod(models.Model):
    """A pod that matches SidecarSets active in its cluster but lacks their injection (drift):
    created while the hub was unreachable (failurePolicy Ignore), or before the SidecarSet was
    published there. ``missing_sidecarsets`` are their names, sorted.

    Guarantees: written only by ``clusters.drift.record_drift``, which replaces a cluster's rows
    with what its latest pod list showed (one row per pod uid); ``first_seen_at`` survives
    across rounds while the pod stays drifted; a pod that is gone or fixed loses its row.
    """

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="drifted_pods")
    namespace = models.CharField(max_length=253)
    pod_name = models.CharField(max_length=253)
    pod_uid = models.CharField(max_length=64)
    missing_sidecarsets = models.JSONField(default=list, help_text="Names of the SidecarSets not injected")
    pod_created_at = models.DateTimeField(null=True, blank=True, help_text="The pod's creationTimestamp")
    first_seen_at = models.DateTimeField(help_text="First status refresh that saw this pod drifted")
    last_seen_at = models.DateTimeField(help_text="Latest status refresh that saw this pod drifted")

    class Meta:
        ordering = ("cluster", "namespace", "pod_name")
        constraints = [
            models.UniqueConstraint(fields=("cluster", "pod_uid"), name="drifted_pod_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.namespace}/{self.pod_name} lacks {', '.join(self.missing_sidecarsets)}"
