"""Serializers of the SidecarSet API. They declare shapes only: no queries, no domain rules
(those are the core's and the services'); the viewset's queryset selects what they read."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from sidecarhub.choices import ApplyOutcome, KruiseVersion
from sidecarhub.models import ChangeRecord, SidecarSet, SidecarSetRevision
from sidecarhub.sidecarset import ChangeKind
from sidecarhub.sidecarset.schema import KIND, V1BETA1

__all__ = [
    "AppliedDocumentSerializer",
    "ChangeRecordSerializer",
    "DiffQuerySerializer",
    "ErrorListSerializer",
    "ExportQuerySerializer",
    "ImportResultSerializer",
    "ImportSerializer",
    "PublishSerializer",
    "RevisionDetailSerializer",
    "RevisionDiffSerializer",
    "RevisionSerializer",
    "RolloutPolicyField",
    "RolloutPolicySerializer",
    "SidecarSetSerializer",
    "SidecarSetWriteSerializer",
    "ValidationResultSerializer",
]


class ErrorSerializer(serializers.Serializer):
    path = serializers.CharField(allow_null=True, help_text="The field, e.g. spec.containers[0].image")
    message = serializers.CharField()
    document = serializers.IntegerField(required=False, help_text="Import only: 0-based document index")
    line = serializers.IntegerField(required=False, help_text="Import only: line the document starts on")


class ChangeRecordSerializer(serializers.ModelSerializer):
    """One change-log row. ``object_repr`` is the object's name when it changed, kept after the
    object is deleted; ``object_type`` and ``parent_type`` are ``app_label.model``."""

    object_type = serializers.SerializerMethodField()
    parent_type = serializers.SerializerMethodField()

    class Meta:
        model = ChangeRecord
        fields = (
            "id",
            "created_at",
            "action",
            "object_type",
            "object_id",
            "object_repr",
            "parent_type",
            "parent_object_id",
            "actor_name",
            "request_id",
            "message",
            "before",
            "after",
        )
        read_only_fields = fields

    def get_object_type(self, row: ChangeRecord) -> str:
        return f"{row.content_type.app_label}.{row.content_type.model}"

    def get_parent_type(self, row: ChangeRecord) -> str | None:
        parent = row.parent_content_type
        return f"{parent.app_label}.{parent.model}" if parent is not None else None


class ErrorListSerializer(serializers.Serializer):
    errors = ErrorSerializer(many=True)  # type: ignore[assignment]  # a response schema: never validated, so .errors is unused


@extend_schema_field(
    {
        "oneOf": [
            {"type": "integer", "minimum": 0, "description": "A cumulative count of pods"},
            {"type": "string", "description": 'A percent of the matched pods ("50%") or "canary"'},
        ]
    }
)
class StepTargetField(serializers.JSONField):
    """One step target (schema only: the core's rollout_settings checks it)."""


class RolloutPolicySerializer(serializers.Serializer):
    """The shape of a rollout policy, for the schema and its help texts. Every key is optional
    (unset: the hub's default); the rules are the core's (``sidecarhub.sidecarset.rollout_settings``),
    whose errors name ``rollout_policy.<key>``."""

    steps = serializers.ListField(
        child=StepTargetField(),
        required=False,
        help_text='Step targets in order, e.g. ["canary", "50%", "100%"] or [1, "10%", "100%"]: "canary" '
        "(the pods of spec.updateStrategy.selector; first only), a cumulative pod count, or a percent of "
        "the matched pods. Default: canary (with a selector), then 100%",
    )
    max_unavailable = StepTargetField(
        required=False,
        help_text="Pods updating at once within a step: a count or a percent. Default: "
        "spec.updateStrategy.maxUnavailable",
    )
    failure_threshold = serializers.IntegerField(
        required=False, min_value=0, help_text="Failed pods a step tolerates before the rollout pauses"
    )
    progress_deadline_seconds = serializers.IntegerField(
        required=False, min_value=0, help_text="Pause the rollout when no pod finishes for this long"
    )
    pod_timeout_seconds = serializers.IntegerField(
        required=False, min_value=0, help_text="A pod not running its new image and ready by then timed out"
    )
    approval_ttl_seconds = serializers.IntegerField(
        required=False, min_value=0, help_text="How long a prepared step can be approved"
    )


@extend_schema_field(RolloutPolicySerializer)
class RolloutPolicyField(serializers.JSONField):
    """A rollout policy object, passed to the services as is: the core validates it (one rule
    set for the field and the annotations that are its import format)."""


class SidecarSetSerializer(serializers.ModelSerializer):
    """A stored SidecarSet: canonical v1beta1 parts plus the hub's fields."""

    current_revision = serializers.SerializerMethodField(help_text="Number of the current revision")
    has_unpublished_changes = serializers.BooleanField(read_only=True)
    rollout_policy = RolloutPolicyField(
        read_only=True, help_text="How releases proceed; frozen into each revision at publish"
    )
    created_by = serializers.SerializerMethodField()
    updated_by = serializers.SerializerMethodField()

    class Meta:
        model = SidecarSet
        fields = (
            "name",
            "owner_team",
            "labels",
            "annotations",
            "spec",
            "rollout_policy",
            "version",
            "current_revision",
            "has_unpublished_changes",
            "created_at",
            "updated_at",
            "created_by",
            "updated_by",
        )
        read_only_fields = fields

    def get_current_revision(self, obj: SidecarSet) -> int | None:
        return obj.current_revision.number if obj.current_revision is not None else None

    def get_created_by(self, obj: SidecarSet) -> str | None:
        return obj.created_by.get_username() if obj.created_by is not None else None

    def get_updated_by(self, obj: SidecarSet) -> str | None:
        return obj.updated_by.get_username() if obj.updated_by is not None else None


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "description": "Kruise YAML or JSON text"},
            {"type": "object", "additionalProperties": True, "description": "A Kruise document"},
        ]
    }
)
class KruiseDocumentField(serializers.JSONField):
    """A whole Kruise SidecarSet document: YAML/JSON text or an object (v1alpha1 or v1beta1)."""


class SidecarSetWriteSerializer(serializers.Serializer):
    """Create or replace a SidecarSet: either ``document`` (a Kruise document) or ``spec`` (with
    optional ``name``, ``labels``, ``annotations``), and/or ``rollout_policy``. The definition
    itself is checked by the core, whose errors name document paths (``spec.selector``)."""

    document = KruiseDocumentField(required=False)
    name = serializers.CharField(required=False, max_length=63)
    labels = serializers.JSONField(required=False)
    annotations = serializers.JSONField(required=False)
    spec = serializers.JSONField(required=False, help_text="A v1beta1 (or v1alpha1-compatible) spec object")
    rollout_policy = RolloutPolicyField(
        required=False,
        help_text="The whole rollout policy (keys left out: the hub's defaults; {} clears it). Omitted: "
        "the document's rollouts.sidecarhub.io/* annotations set it if it has any, otherwise an "
        "update keeps the stored policy. Both given and different: 400",
    )
    owner_team = serializers.CharField(required=False, allow_blank=True, max_length=100)
    version = serializers.IntegerField(
        required=False, min_value=1, help_text="The version you edited (alternative to If-Match)"
    )
    message = serializers.CharField(required=False, allow_blank=True, max_length=2000)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "document" in attrs and any(key in attrs for key in ("spec", "name", "labels", "annotations")):
            raise serializers.ValidationError(
                {"document": "give either a whole document, or spec (with name, labels, annotations)"}
            )
        return attrs

    def kruise_source(self, name: str | None = None) -> Any:
        """The Kruise document to hand to the services (text or data), or ``None`` if neither given."""
        data = self.validated_data
        if "document" in data:
            return data["document"]
        if "spec" not in data:
            return None
        # Raw parts, not the canonical shape yet: the core checks their types and applies defaults.
        metadata: dict[str, Any] = {"name": data.get("name", name or "")}
        for key in ("labels", "annotations"):
            if data.get(key) is not None:
                metadata[key] = data[key]
        return {"apiVersion": V1BETA1, "kind": KIND, "metadata": metadata, "spec": data["spec"]}


class PublishSerializer(serializers.Serializer):
    message = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    version = serializers.IntegerField(
        required=False, min_value=1, help_text="Publish only if the SidecarSet is still at this version"
    )


class ValidateSerializer(SidecarSetWriteSerializer):
    """Same body as create/update; nothing is stored."""


class ValidationResultSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    errors = ErrorSerializer(many=True)  # type: ignore[assignment]  # a response schema: never validated, so .errors is unused


class ImportSerializer(serializers.Serializer):
    document = serializers.CharField(
        trim_whitespace=False, help_text="Multi-document Kruise YAML (documents separated by ---)"
    )
    owner_team = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text="Owner team of created SidecarSets"
    )
    message = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class AppliedDocumentSerializer(serializers.Serializer):
    document = serializers.IntegerField(source="index")
    name = serializers.CharField()
    outcome = serializers.ChoiceField(choices=ApplyOutcome.choices)
    changed_paths = serializers.ListField(child=serializers.CharField())
    version = serializers.IntegerField(source="sidecarset.version")


class ImportResultSerializer(serializers.Serializer):
    results = AppliedDocumentSerializer(many=True)


class RevisionSerializer(serializers.ModelSerializer):
    """A published revision (without its document; see the detail endpoint)."""

    sidecarset = serializers.CharField(source="sidecarset.name", read_only=True)
    author = serializers.CharField(source="author_name", read_only=True)
    rollout_policy = RolloutPolicyField(read_only=True, help_text="The rollout policy its releases follow")

    class Meta:
        model = SidecarSetRevision
        fields: tuple[str, ...] = (
            "sidecarset",
            "number",
            "name",
            "revision_hash",
            "hash_without_images",
            "custom_version",
            "rollout_policy",
            "message",
            "author",
            "created_at",
        )
        read_only_fields = fields


class RevisionDetailSerializer(RevisionSerializer):
    class Meta(RevisionSerializer.Meta):
        fields = (*RevisionSerializer.Meta.fields, "document")
        read_only_fields = fields


class ExportQuerySerializer(serializers.Serializer):
    version = serializers.ChoiceField(choices=KruiseVersion.choices, default=KruiseVersion.V1BETA1)
    revision = serializers.IntegerField(required=False, min_value=1, help_text="Export this revision")


class DiffQuerySerializer(serializers.Serializer):
    """``?from=1&to=2`` (``from`` is a Python keyword, hence the fields built here)."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {
            "from": serializers.IntegerField(min_value=1),
            "to": serializers.IntegerField(min_value=1),
        }


class RevisionDiffSerializer(serializers.Serializer):
    sidecarset = serializers.CharField(source="name")
    from_number = serializers.IntegerField(allow_null=True)
    to_number = serializers.IntegerField(allow_null=True)
    change_kind = serializers.ChoiceField(
        choices=[(kind.value, kind.value) for kind in ChangeKind],
        help_text="none: no sidecar container changed; images_only: in-place update possible; "
        "other: pods need recreating",
    )
    changed_paths = serializers.ListField(child=serializers.CharField())
    unified_diff = serializers.CharField()
