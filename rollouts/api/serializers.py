"""Serializers of the rollouts API. Declarative: they never query (STYLE P5); the viewsets'
querysets select, prefetch and annotate (``rollouts.queries``) everything they read."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from rollouts.choices import ReleaseStage, RolloutOutcome
from rollouts.models import Approval, PodUpdate, Rollout, RolloutStep
from rollouts.previews import PodPreview, StepPreview

__all__ = [
    "ApprovalSerializer",
    "CommentSerializer",
    "FleetSerializer",
    "PodUpdateSerializer",
    "ProgressSerializer",
    "ReasonSerializer",
    "ReleasesQuerySerializer",
    "ReleasesSerializer",
    "RolloutDetailSerializer",
    "RolloutPreviewSerializer",
    "RolloutSerializer",
    "StepSerializer",
]


# --- inputs ------------------------------------------------------------------------------------


class ReasonSerializer(serializers.Serializer):
    """Input of pause, resume, abort and rollback."""

    reason = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=300,
        default="",
        help_text="Why (recorded in the history)",
    )


class CommentSerializer(serializers.Serializer):
    """Input of approve and deny."""

    comment = serializers.CharField(
        required=False, allow_blank=True, max_length=2000, default="", help_text="Recorded with the decision"
    )


class RestartSerializer(ReasonSerializer):
    """Input of ``POST /api/v1/rollouts/{id}/restart/``."""

    steps = serializers.ListField(
        child=serializers.CharField(max_length=16),
        required=False,
        allow_empty=False,
        help_text='Cumulative targets of workloads, e.g. ["1", "100%"] (default: one step, "100%")',
    )


class RestartPreviewQuerySerializer(serializers.Serializer):
    """Query of ``GET /api/v1/rollouts/{id}/restart-preview/``."""

    steps = serializers.CharField(
        required=False, default="", help_text='Comma-separated targets of workloads, e.g. "1,100%"'
    )


class ReleasesQuerySerializer(serializers.Serializer):
    """Query of ``GET /api/v1/sidecarsets/{name}/releases/``."""

    limit = serializers.IntegerField(
        required=False, default=10, min_value=1, max_value=50, help_text="Newest releases to show (1-50)"
    )


class PublishPreviewQuerySerializer(serializers.Serializer):
    """Query of ``GET /api/v1/sidecarsets/{name}/publish-preview/``."""

    pods = serializers.BooleanField(
        required=False,
        default=True,
        help_text="Read each rollout cluster's pods (one LIST each) to count in place vs needs "
        "recreate; false answers from the database only",
    )


# --- outputs -----------------------------------------------------------------------------------


class ProgressSerializer(serializers.Serializer):
    """The rollout's own record of its pods (``rollouts.queries``; the console says "rollout: 1 / 5
    pods done"): total is the pods of every step (counted when a step is prepared: pods updated
    so far plus the in-place candidates left; 0 before step 1 is prepared). Not the pods observed
    in the cluster (that is the fleet view's `pods`)."""

    total = serializers.IntegerField(source="progress_total", help_text="Pods to update over all steps")
    updated = serializers.IntegerField(
        source="progress_updated", help_text="Pods this rollout updated: outcome succeeded (or recreated)"
    )
    failed = serializers.IntegerField(source="progress_failed", help_text="Outcome failed or timed out")
    skipped = serializers.IntegerField(source="progress_skipped")
    pod_gone = serializers.IntegerField(source="progress_pod_gone")
    in_flight = serializers.IntegerField(
        source="progress_in_flight", help_text="Claimed, patching, observing"
    )


class StepProgressSerializer(ProgressSerializer):
    total = serializers.IntegerField(source="pod_count", help_text="Pods of this step")


class ApprovalSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_name")

    class Meta:
        model = Approval
        fields = ("id", "preparation", "decision", "actor", "comment", "automatic", "request_id", "at")
        read_only_fields = fields


class PodRefSerializer(serializers.Serializer):
    namespace = serializers.CharField()
    name = serializers.CharField()
    uid = serializers.CharField()


class RecreatePodSerializer(PodRefSerializer):
    reason = serializers.CharField(required=False, help_text="Why it cannot be updated in place")


class WorkloadSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text="Deployment, StatefulSet or DaemonSet")
    namespace = serializers.CharField()
    name = serializers.CharField()
    uid = serializers.CharField()
    pods = PodRefSerializer(many=True, help_text="Its pods that need recreate")


class StepSerializer(serializers.ModelSerializer):
    """A step: its state, its exact pod list once prepared (a restart step: its workloads and
    their pods), its approvals and pod counts."""

    pods = PodRefSerializer(many=True, read_only=True)
    workloads = WorkloadSerializer(many=True, read_only=True)
    needs_recreate = RecreatePodSerializer(many=True, read_only=True)
    approvals = ApprovalSerializer(many=True, read_only=True)
    progress = StepProgressSerializer(source="*", read_only=True)

    class Meta:
        model = RolloutStep
        fields = (
            "id",
            "rollout",
            "ordinal",
            "target",
            "canary",
            "state",
            "state_changed_at",
            "preparation",
            "pod_count",
            "target_updated",
            "shortfall",
            "pods",
            "workloads",
            "needs_recreate",
            "needs_recreate_count",
            "prepared_at",
            "expires_at",
            "approved_at",
            "started_at",
            "finished_at",
            "heartbeat_at",
            "explanation",
            "approvals",
            "progress",
        )
        read_only_fields = fields


class RolloutSerializer(serializers.ModelSerializer):
    """A rollout as listed: where it stands, why, and its pod counts."""

    sidecarset = serializers.CharField(source="sidecarset_name")
    cluster = serializers.CharField(source="cluster_name", help_text="Kept when the cluster is deleted")
    cluster_deleted = serializers.BooleanField(
        read_only=True, help_text="The cluster was deleted from the hub (cluster_id is null)"
    )
    sidecarset_deleted = serializers.BooleanField(
        read_only=True, help_text="The SidecarSet was deleted (sidecarset_id is null)"
    )
    from_revision = serializers.IntegerField(source="from_revision_number", allow_null=True)
    to_revision = serializers.IntegerField(source="to_revision_number")
    author = serializers.CharField(source="author_name")
    step_targets = serializers.JSONField(source="steps", help_text='e.g. ["canary", "50%", "100%"]')
    steps_total = serializers.IntegerField(read_only=True)
    current_step = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="Ordinal of the first unfinished step"
    )
    progress = ProgressSerializer(source="*", read_only=True)
    outcome = serializers.ChoiceField(
        RolloutOutcome.choices,
        read_only=True,
        allow_blank=True,
        help_text="once completed: succeeded, or needs_recreate (pods still run the replaced definition)",
    )

    class Meta:
        model = Rollout
        fields: tuple[str, ...] = (
            "id",
            "sidecarset",
            "sidecarset_id",
            "sidecarset_deleted",
            "cluster",
            "cluster_id",
            "cluster_deleted",
            "kind",
            "in_place",
            "rollback_of",
            "restart_of",
            "from_revision",
            "to_revision",
            "to_revision_hash",
            "wave",
            "state",
            "outcome",
            "needs_recreate",
            "state_changed_at",
            "reason",
            "explanation",
            "pause_requested",
            "abort_requested",
            "intent_by",
            "intent_reason",
            "author",
            "step_targets",
            "max_unavailable",
            "failure_threshold",
            "progress_deadline_seconds",
            "pod_timeout_seconds",
            "approval_ttl_seconds",
            "workloads_at_once",
            "workload_deadline_seconds",
            "created_at",
            "started_at",
            "finished_at",
            "steps_total",
            "current_step",
            "progress",
        )
        read_only_fields = fields


class RolloutDetailSerializer(RolloutSerializer):
    """A rollout with its steps (each with its pods, approvals and counts)."""

    steps = StepSerializer(source="rollout_steps", many=True, read_only=True)
    # The enum of ``state`` is documented once, on ``Rollout`` (list): a second component with
    # the same choice set makes drf-spectacular's enum naming collide with the step's and the
    # placement's ``state`` (a schema warning).
    state = serializers.CharField(read_only=True, help_text="One of RolloutStateEnum (see Rollout.state)")

    class Meta(RolloutSerializer.Meta):
        fields = (*RolloutSerializer.Meta.fields, "steps")
        read_only_fields = fields


class PodUpdateSerializer(serializers.ModelSerializer):
    """One pod's in-place update, or its replacement by a workload restart (outcome
    ``recreated``, with its workload); it outlives the pod."""

    cluster = serializers.CharField(source="cluster_name", help_text="Kept when the cluster is deleted")
    cluster_deleted = serializers.BooleanField(
        read_only=True, help_text="The cluster was deleted from the hub (cluster_id is null)"
    )
    sidecarset = serializers.CharField(source="rollout.sidecarset_name")
    step_ordinal = serializers.IntegerField(source="step.ordinal")

    class Meta:
        model = PodUpdate
        fields = (
            "id",
            "cluster",
            "cluster_id",
            "cluster_deleted",
            "namespace",
            "pod_name",
            "pod_uid",
            "workload_kind",
            "workload_name",
            "restart_marker",
            "sidecarset",
            "rollout",
            "step",
            "step_ordinal",
            "container",
            "from_image",
            "to_image",
            "from_revision_number",
            "to_revision_number",
            "state",
            "outcome",
            "error",
            "patch_attempts",
            "conflicts",
            "claimed_at",
            "patching_at",
            "patched_at",
            "done_at",
        )
        read_only_fields = fields


class PodPreviewSerializer(serializers.Serializer):
    namespace = serializers.CharField()
    name = serializers.CharField()
    uid = serializers.CharField()
    in_place = serializers.BooleanField(help_text="False: the pod needs to be recreated")
    # Declared fields leave the class body, so BaseSerializer.update is intact.
    update = serializers.SerializerMethodField(  # type: ignore[assignment]
        help_text="`in_place` or `needs_recreate`"
    )
    reason = serializers.CharField()

    def get_update(self, pod: PodPreview) -> str:
        return "in_place" if pod.in_place else "needs_recreate"


class StepPreviewSerializer(serializers.Serializer):
    """The next step's exact pods: stored once prepared (``prepared``), computed live before."""

    step_id = serializers.IntegerField()
    ordinal = serializers.IntegerField()
    target = serializers.CharField()
    state = serializers.CharField()
    prepared = serializers.BooleanField(help_text="True: the approved/approvable list; False: computed now")
    expires_at = serializers.DateTimeField(allow_null=True)
    shortfall = serializers.IntegerField(help_text="Pods missing to reach the step's goal")
    first_round = serializers.IntegerField(help_text="Pods the first round patches (live preview only)")
    in_place_count = serializers.SerializerMethodField()
    needs_recreate_count = serializers.SerializerMethodField()
    pods = serializers.SerializerMethodField()

    def get_in_place_count(self, preview: StepPreview) -> int:
        return len(preview.pods)

    def get_needs_recreate_count(self, preview: StepPreview) -> int:
        return len(preview.needs_recreate)

    @extend_schema_field(PodPreviewSerializer(many=True))
    def get_pods(self, preview: StepPreview) -> list[dict[str, Any]]:
        """In-place pods first, then those that need recreating."""
        return list(PodPreviewSerializer([*preview.pods, *preview.needs_recreate], many=True).data)


class RolloutPreviewSerializer(serializers.Serializer):
    """``GET /api/v1/rollouts/{id}/preview/``: ``next_step`` is null when no step is left."""

    rollout_id = serializers.IntegerField()
    rollout_state = serializers.CharField()
    next_step = StepPreviewSerializer(allow_null=True)


class RestartWorkloadPreviewSerializer(serializers.Serializer):
    kind = serializers.CharField()
    namespace = serializers.CharField()
    name = serializers.CharField()
    pod_count = serializers.IntegerField(help_text="Its pods that need recreate")


class RestartStepPreviewSerializer(serializers.Serializer):
    ordinal = serializers.IntegerField()
    target = serializers.CharField()
    pod_count = serializers.IntegerField()
    workloads = RestartWorkloadPreviewSerializer(many=True)


class RestartPreviewSerializer(serializers.Serializer):
    """``GET /api/v1/rollouts/{id}/restart-preview/``: what a restart would do now."""

    rollout_id = serializers.IntegerField()
    cluster = serializers.CharField()
    sidecarset = serializers.CharField()
    revision_number = serializers.IntegerField()
    pods_needing_recreate = serializers.IntegerField(help_text="All of them, restartable or not")
    workloads_at_once = serializers.IntegerField()
    workload_deadline_seconds = serializers.IntegerField()
    steps = RestartStepPreviewSerializer(many=True)
    not_restartable = RecreatePodSerializer(many=True, help_text="Listed, never touched")


# --- fleet view (rollouts.fleet) -----------------------------------------------------------------
# Rollout and placement states are plain strings here: their enums are documented once, on
# Rollout and SidecarSetPlacement (a second component with the same choices makes
# drf-spectacular's enum names collide, a schema warning).


class FleetRolloutSerializer(serializers.Serializer):
    """A rollout as the fleet view shows it (``rollouts.fleet.RolloutSummary``)."""

    id = serializers.IntegerField()
    kind = serializers.CharField(help_text="`update` or `rollback`")
    from_revision = serializers.IntegerField(allow_null=True)
    to_revision = serializers.IntegerField()
    wave = serializers.IntegerField()
    state = serializers.CharField(help_text="One of RolloutStateEnum")
    reason = serializers.CharField(help_text="Why it is in its state (e.g. why it waits)")
    in_place = serializers.BooleanField(help_text="False: a gate only; its pods need recreate")
    step_ordinal = serializers.IntegerField(
        allow_null=True, help_text="The first step not finished, else the last step"
    )
    step_state = serializers.CharField(allow_null=True, help_text="The state of that step")
    steps_total = serializers.IntegerField()
    awaiting_approval = serializers.BooleanField(help_text="That step awaits approval")
    needs_recreate = serializers.IntegerField(help_text="Pods that cannot be updated in place (latest count)")
    state_changed_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()


class FleetPodsSerializer(serializers.Serializer):
    """Pods observed live in the cluster by its last status refresh (Kruise's matchedPods /
    updatedPods / readyPods / updatedReadyPods): every pod the SidecarSet matches there now,
    pods created since a rollout began included. Not a rollout's own count of the pods it
    updated (that is a rollout's `progress`). Null until first observed."""

    matched = serializers.IntegerField(
        source="matched_pods", allow_null=True, help_text="Pods in the cluster the SidecarSet matches now"
    )
    updated = serializers.IntegerField(
        source="updated_pods",
        allow_null=True,
        help_text="Of those, pods on the revision the cluster's resource carries (not a rollout's count)",
    )
    ready = serializers.IntegerField(source="ready_pods", allow_null=True)
    updated_ready = serializers.IntegerField(source="updated_ready_pods", allow_null=True)
    observed_at = serializers.DateTimeField(
        source="status_observed_at", allow_null=True, help_text="When the status refresh counted them"
    )


class SkippedClusterSerializer(serializers.Serializer):
    """A cluster whose labels match a selector target but that the SidecarSet does not target:
    another team owns it (a label selector stays inside its SidecarSet's team)."""

    cluster = serializers.CharField()
    cluster_id = serializers.IntegerField()
    team = serializers.CharField(help_text="The team that owns the cluster")
    reason = serializers.CharField(help_text="Why it is not targeted, and how to target it")


class FleetClusterSerializer(serializers.Serializer):
    """One target cluster of a SidecarSet (``rollouts.fleet.FleetCluster``)."""

    cluster = serializers.CharField()
    cluster_id = serializers.IntegerField()
    wave = serializers.IntegerField()
    targeted = serializers.BooleanField(help_text="A target selects it now")
    placed = serializers.BooleanField(help_text="The hub has a placement there")
    placement_state = serializers.CharField(allow_null=True, help_text="Push state of the placement")
    placement_error = serializers.CharField(help_text="The last push error, if any")
    held = serializers.BooleanField(help_text="Releases skip it until the hold is lifted")
    held_reason = serializers.CharField()
    held_by = serializers.CharField()
    held_at = serializers.DateTimeField(allow_null=True)
    serving_revision = serializers.IntegerField(
        allow_null=True, help_text="What its custom resource carries and its webhook injects"
    )
    serving_since = serializers.DateTimeField(allow_null=True)
    current_revision = serializers.IntegerField(allow_null=True, help_text="The current revision")
    behind = serializers.BooleanField(help_text="It serves an older revision than the current one")
    latest_rollout = FleetRolloutSerializer(allow_null=True)
    pods = FleetPodsSerializer(
        source="*", help_text="Observed live in the cluster (pods on revision), not a rollout's count"
    )
    needs_recreate = serializers.IntegerField(help_text="From the latest rollout's steps")
    drift = serializers.IntegerField(help_text="Pods in the cluster that lack this SidecarSet's injection")


class FleetSerializer(serializers.Serializer):
    """``GET /api/v1/sidecarsets/{name}/fleet/``: every target cluster, by wave then name."""

    sidecarset = serializers.CharField()
    sidecarset_id = serializers.IntegerField()
    current_revision = serializers.IntegerField(allow_null=True)
    clusters = FleetClusterSerializer(many=True)
    skipped_clusters = SkippedClusterSerializer(
        many=True, help_text="Clusters its label selectors match but do not target (another team's)"
    )


class ReleaseClusterSerializer(serializers.Serializer):
    """One cluster of a release: its rollout and, if it was rolled back, the rollback."""

    cluster = serializers.CharField()
    cluster_id = serializers.IntegerField(
        allow_null=True, help_text="null: the cluster was deleted from the hub"
    )
    held = serializers.BooleanField()
    held_reason = serializers.CharField()
    rolled_back = serializers.BooleanField()
    rollout = FleetRolloutSerializer()
    rollback = FleetRolloutSerializer(allow_null=True, help_text="The newest rollback of this rollout")


class ReleaseWaveSerializer(serializers.Serializer):
    wave = serializers.IntegerField()
    clusters = ReleaseClusterSerializer(many=True)


class ReleaseSerializer(serializers.Serializer):
    """One published revision across its target clusters, and where it stands."""

    revision = serializers.IntegerField()
    current = serializers.BooleanField(help_text="It is the SidecarSet's current revision")
    stage = serializers.ChoiceField(choices=ReleaseStage.choices)
    stage_text = serializers.CharField(help_text='e.g. "wave 1 awaiting approval in cluster prod-eu"')
    needs_recreate = serializers.IntegerField(help_text="Pods that cannot be updated in place, all clusters")
    started_at = serializers.DateTimeField(help_text="When its rollouts were created")
    waves = ReleaseWaveSerializer(many=True)


class ReleasesSerializer(serializers.Serializer):
    """``GET /api/v1/sidecarsets/{name}/releases/``: the newest releases, newest first."""

    sidecarset = serializers.CharField()
    sidecarset_id = serializers.IntegerField()
    current_revision = serializers.IntegerField(allow_null=True)
    releases = ReleaseSerializer(many=True)


class PublishPreviewClusterSerializer(serializers.Serializer):
    """What publishing would do in one target cluster (``rollouts.previews.PublishPreviewCluster``)."""

    cluster = serializers.CharField()
    cluster_id = serializers.IntegerField()
    wave = serializers.IntegerField()
    held = serializers.BooleanField(help_text="Its rollout waits until the hold is released")
    held_reason = serializers.CharField()
    serving_revision = serializers.IntegerField(allow_null=True, help_text="What it serves now")
    creates_rollout = serializers.BooleanField(help_text="False: it serves the new revision at once")
    in_place = serializers.BooleanField(help_text="False: a gate only; its pods need recreate")
    why = serializers.CharField(help_text="Why it gets this rollout, or none")
    steps = serializers.ListField(child=serializers.CharField())
    pods_in_place = serializers.IntegerField(allow_null=True, help_text="null: pods not read")
    pods_need_recreate = serializers.IntegerField(allow_null=True, help_text="null: pods not read")
    pods_error = serializers.CharField(help_text="Why the pods could not be read")
    needs_recreate = PodPreviewSerializer(many=True, help_text="The first pods that need recreate")


class SupersededRolloutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    cluster = serializers.CharField()
    to_revision = serializers.IntegerField()
    state = serializers.CharField(help_text="One of RolloutStateEnum")


class PublishPreviewSerializer(serializers.Serializer):
    """``GET /api/v1/sidecarsets/{name}/publish-preview/``: what publishing would do now."""

    sidecarset = serializers.CharField()
    from_revision = serializers.IntegerField(allow_null=True)
    to_revision = serializers.IntegerField(help_text="The number the new revision would get")
    change_kind = serializers.CharField(help_text="none, images_only or other")
    nothing_to_publish = serializers.BooleanField()
    steps = serializers.ListField(child=serializers.CharField(), help_text="Steps of in-place rollouts")
    settings_error = serializers.CharField(help_text="Invalid rollout settings (publish would refuse)")
    rollouts = serializers.IntegerField(help_text="Rollouts it would create")
    clusters = PublishPreviewClusterSerializer(many=True)
    supersedes = SupersededRolloutSerializer(
        many=True, help_text="Active rollouts that publishing aborts (a newer revision wins)"
    )
    skipped_clusters = SkippedClusterSerializer(
        many=True, help_text="Clusters its label selectors match but do not target (another team's)"
    )
