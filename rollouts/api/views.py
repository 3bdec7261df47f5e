"""Viewsets of the rollouts API (STYLE P5): each declares its queryset, serializer, filters and
the permissions of every action; each verb validates a small input, calls ONE service of
``rollouts.services`` with the requesting user as actor, and answers 202 with the updated
resource (the engine does the rest after commit). Errors: ``rollouts.api.errors``.

Permissions (``ActionPermissions``: anything unlisted is denied; anonymous → 401):

- reading rollouts and steps: ``rollouts.view_rollout``; per-pod history also
  ``rollouts.view_podupdate``;
- approve / deny: ``rollouts.approve_rolloutstep`` — the service also applies the four-eyes
  rule (``rollouts.permissions``), refused with 403 and the reason;
- pause / resume / abort / rollback: ``rollouts.operate_rollout``;
- the fleet view of a SidecarSet (``/api/v1/sidecarsets/{name}/fleet/`` and ``.../releases/``):
  ``sidecarhub.view_sidecarset``, ``clusters.view_cluster`` and ``rollouts.view_rollout``. It is
  served from here, not by the SidecarSet viewset, because ``sidecarhub`` never imports
  ``rollouts`` (the router in ``sidecarhub.api.urls`` composes both).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.db.models import Prefetch, QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from rollouts import fleet, previews, restarts, services
from rollouts.api.errors import ConflictSerializer, rollouts_exception_handler
from rollouts.api.filtersets import PodUpdateFilterSet, RolloutFilterSet, StepFilterSet
from rollouts.api.serializers import (
    CommentSerializer,
    FleetSerializer,
    PodUpdateSerializer,
    PublishPreviewQuerySerializer,
    PublishPreviewSerializer,
    ReasonSerializer,
    ReleasesQuerySerializer,
    ReleasesSerializer,
    RestartPreviewQuerySerializer,
    RestartPreviewSerializer,
    RestartSerializer,
    RolloutDetailSerializer,
    RolloutPreviewSerializer,
    RolloutSerializer,
    StepSerializer,
)
from rollouts.models import Approval, PodUpdate, Rollout, RolloutStep
from rollouts.permissions import APPROVE_PERMISSION, OPERATE_PERMISSION
from rollouts.queries import pod_update_csv, rollouts_with_progress, steps_with_progress
from sidecarhub.api.permissions import ActionPermissions
from sidecarhub.middleware import request_id_of
from sidecarhub.models import SidecarSet
from sidecarhub.services import SidecarSetNotFound

if TYPE_CHECKING:
    from rest_framework.permissions import _PermissionClass
from sidecarhub.api.serializers import ErrorListSerializer

__all__ = [
    "PodUpdateCSVRenderer",
    "PodUpdateViewSet",
    "RolloutStepViewSet",
    "RolloutViewSet",
    "SidecarSetFleetViewSet",
]

_VIEW = ["rollouts.view_rollout"]
_VIEW_PODS = ["rollouts.view_rollout", "rollouts.view_podupdate"]
_APPROVE = ["rollouts.view_rollout", APPROVE_PERMISSION]
_OPERATE = ["rollouts.view_rollout", OPERATE_PERMISSION]
_FLEET = ["sidecarhub.view_sidecarset", "clusters.view_cluster", "rollouts.view_rollout"]

_ERRORS = OpenApiResponse(ErrorListSerializer, description="Errors, each naming its field (or null)")
_CONFLICT = OpenApiResponse(ConflictSerializer, description="Not in a state the verb accepts")
_VERB_RESPONSES = {400: _ERRORS, 401: _ERRORS, 403: _ERRORS, 404: _ERRORS, 409: _CONFLICT}
_READ_RESPONSES = {401: _ERRORS, 403: _ERRORS, 404: _ERRORS}


def _steps_prefetch() -> Prefetch:
    steps = steps_with_progress(RolloutStep.objects.order_by("ordinal")).prefetch_related(
        Prefetch("approvals", queryset=Approval.objects.order_by("at", "id"))
    )
    return Prefetch("rollout_steps", queryset=steps)


class _RolloutsViewMixin:
    permission_classes: Sequence[_PermissionClass] = (ActionPermissions,)
    lookup_value_regex = "[0-9]+"

    def get_exception_handler(self) -> Any:
        return rollouts_exception_handler


@extend_schema_view(
    list=extend_schema(
        summary="List rollouts with their progress counts", responses={200: RolloutSerializer}
    ),
    retrieve=extend_schema(
        summary="A rollout with its steps, pods, approvals and progress counts",
        responses={200: RolloutDetailSerializer, **_READ_RESPONSES},
    ),
)
class RolloutViewSet(
    _RolloutsViewMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Rollouts of new sidecar images, one per (SidecarSet revision, cluster).

    GET /api/v1/rollouts/ · GET /api/v1/rollouts/{id}/ · GET /api/v1/rollouts/{id}/steps/ ·
    GET /api/v1/rollouts/{id}/preview/ · POST /api/v1/rollouts/{id}/pause|resume|abort|rollback/ ·
    GET /api/v1/rollouts/{id}/restart-preview/ · POST /api/v1/rollouts/{id}/restart/
    """

    serializer_class = RolloutSerializer
    filterset_class = RolloutFilterSet
    required_permissions = {
        "list": _VIEW,
        "retrieve": _VIEW,
        "steps": _VIEW,
        "preview": _VIEW,
        "pause": _OPERATE,
        "resume": _OPERATE,
        "abort": _OPERATE,
        "rollback": _OPERATE,
        "restart": _OPERATE,
        "restart_preview": _VIEW,
    }

    def get_queryset(self) -> QuerySet[Rollout]:
        rows = rollouts_with_progress(Rollout.objects.visible_to(self.request.user).select_related("cluster"))
        if self.action != "list":
            rows = rows.prefetch_related(_steps_prefetch())
        return rows

    def get_serializer_class(self) -> Any:
        return RolloutSerializer if self.action == "list" else RolloutDetailSerializer

    def _accepted(self, rollout_id: int) -> Response:
        rollout = self.get_queryset().get(pk=rollout_id)
        return Response(RolloutDetailSerializer(rollout).data, status=status.HTTP_202_ACCEPTED)

    def _reason(self, request: Request) -> str:
        data = ReasonSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return str(data.validated_data["reason"])

    @extend_schema(
        summary="The steps of a rollout", responses={200: StepSerializer(many=True), **_READ_RESPONSES}
    )
    @action(detail=True, methods=["get"])
    def steps(self, request: Request, pk: str | None = None) -> Response:
        rollout = self.get_object()
        return Response(StepSerializer(rollout.rollout_steps.all(), many=True).data)

    @extend_schema(
        summary="The next step's exact pods, each in place or needs recreate",
        description="Once the step is prepared: its stored pod list (what approvers approve). "
        "Before: computed now from the cluster's live pods (nothing is stored); 503 when the "
        "cluster cannot be read.",
        responses={200: RolloutPreviewSerializer, 409: _ERRORS, 503: _ERRORS, **_READ_RESPONSES},
    )
    @action(detail=True, methods=["get"])
    def preview(self, request: Request, pk: str | None = None) -> Response:
        rollout = self.get_object()
        preview = previews.preview_next_step(rollout.pk, actor=request.user)
        body = {"rollout_id": rollout.pk, "rollout_state": rollout.state, "next_step": preview}
        return Response(RolloutPreviewSerializer(body).data)

    @extend_schema(
        summary="Pause (between pods; a pending rollout at once)",
        request=ReasonSerializer,
        responses={202: RolloutDetailSerializer, **_VERB_RESPONSES},
    )
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        rollout = self.get_object()
        services.pause_rollout(
            rollout.pk, actor=request.user, request_id=request_id_of(request), reason=self._reason(request)
        )
        return self._accepted(rollout.pk)

    @extend_schema(
        summary="Resume a paused rollout",
        request=ReasonSerializer,
        responses={202: RolloutDetailSerializer, **_VERB_RESPONSES},
    )
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        rollout = self.get_object()
        services.resume_rollout(
            rollout.pk, actor=request.user, request_id=request_id_of(request), reason=self._reason(request)
        )
        return self._accepted(rollout.pk)

    @extend_schema(
        summary="Abort for good (updated pods keep their new image; use rollback to undo)",
        request=ReasonSerializer,
        responses={202: RolloutDetailSerializer, **_VERB_RESPONSES},
    )
    @action(detail=True, methods=["post"])
    def abort(self, request: Request, pk: str | None = None) -> Response:
        rollout = self.get_object()
        services.abort_rollout(
            rollout.pk, actor=request.user, request_id=request_id_of(request), reason=self._reason(request)
        )
        return self._accepted(rollout.pk)

    @extend_schema(
        summary="Roll back: a NEW rollout to the previous revision, through the same steps and approvals",
        description="The rollout must be paused (it is aborted first) or finished. Answers with the "
        "new rollback rollout (its URL in Location).",
        request=ReasonSerializer,
        responses={202: RolloutDetailSerializer, **_VERB_RESPONSES},
    )
    @action(detail=True, methods=["post"])
    def rollback(self, request: Request, pk: str | None = None) -> Response:
        rollout = self.get_object()
        created = services.rollback_rollout(
            rollout.pk, actor=request.user, request_id=request_id_of(request), reason=self._reason(request)
        )
        response = self._accepted(created.pk)
        response["Location"] = f"/api/v1/rollouts/{created.pk}/"
        return response

    @extend_schema(
        summary="Preview a restart of the workloads owning the pods that need recreate",
        description="Computed now from the cluster (nothing is stored): the workloads and their pod "
        "counts per step, and the pods no workload restart replaces (bare or ReplicaSet-only "
        "pods: listed, never touched). 503 when the cluster cannot be read.",
        parameters=[RestartPreviewQuerySerializer],
        responses={200: RestartPreviewSerializer, 400: _ERRORS, 503: _ERRORS, **_READ_RESPONSES},
    )
    @action(detail=True, methods=["get"], url_path="restart-preview")
    def restart_preview(self, request: Request, pk: str | None = None) -> Response:
        rollout = self.get_object()
        query = RestartPreviewQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        steps = [part.strip() for part in str(query.validated_data["steps"]).split(",") if part.strip()]
        preview = restarts.preview_restart(rollout.pk, actor=request.user, steps=steps or None)
        return Response(RestartPreviewSerializer(preview).data)

    @extend_schema(
        summary="Restart the workloads owning the pods that need recreate: a NEW restart rollout",
        description="Decision 18: the workloads previewed by restart-preview, in steps that each need "
        "an approval (four eyes), restarted as `kubectl rollout restart` does. Answers with the "
        "new restart rollout (its URL in Location).",
        request=RestartSerializer,
        responses={202: RolloutDetailSerializer, 503: _ERRORS, **_VERB_RESPONSES},
    )
    @action(detail=True, methods=["post"])
    def restart(self, request: Request, pk: str | None = None) -> Response:
        rollout = self.get_object()
        data = RestartSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        created = restarts.start_restart(
            rollout.pk,
            actor=request.user,
            request_id=request_id_of(request),
            steps=data.validated_data.get("steps"),
            reason=str(data.validated_data["reason"]),
        )
        response = self._accepted(created.pk)
        response["Location"] = f"/api/v1/rollouts/{created.pk}/"
        return response


@extend_schema_view(
    list=extend_schema(summary="List rollout steps", responses={200: StepSerializer}),
    retrieve=extend_schema(summary="A rollout step", responses={200: StepSerializer, **_READ_RESPONSES}),
)
class RolloutStepViewSet(
    _RolloutsViewMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Steps (batches) of rollouts, and the approvers' decisions on them.

    GET /api/v1/rollout-steps/ · GET /api/v1/rollout-steps/{id}/ ·
    POST /api/v1/rollout-steps/{id}/approve/ · POST /api/v1/rollout-steps/{id}/deny/
    """

    serializer_class = StepSerializer
    filterset_class = StepFilterSet
    required_permissions = {
        "list": _VIEW,
        "retrieve": _VIEW,
        "approve": _APPROVE,
        "deny": _APPROVE,
    }

    def get_queryset(self) -> QuerySet[RolloutStep]:
        rows = RolloutStep.objects.visible_to(self.request.user).order_by("rollout_id", "ordinal")
        return steps_with_progress(rows).prefetch_related(
            Prefetch("approvals", queryset=Approval.objects.order_by("at", "id"))
        )

    def _comment(self, request: Request) -> str:
        data = CommentSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return str(data.validated_data["comment"])

    def _accepted(self, step_id: int) -> Response:
        return Response(
            StepSerializer(self.get_queryset().get(pk=step_id)).data, status=status.HTTP_202_ACCEPTED
        )

    @extend_schema(
        summary="Approve a prepared step (someone other than the rollout's author, by default)",
        description="Of two concurrent approvals exactly one wins; the other gets 409 with the "
        "step's current state. An expired step is marked expired (409).",
        request=CommentSerializer,
        responses={202: StepSerializer, **_VERB_RESPONSES},
    )
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        step = self.get_object()
        services.approve_step(
            step.pk, actor=request.user, request_id=request_id_of(request), comment=self._comment(request)
        )
        return self._accepted(step.pk)

    @extend_schema(
        summary="Deny a prepared step (the rollout pauses; resuming prepares the step again)",
        request=CommentSerializer,
        responses={202: StepSerializer, **_VERB_RESPONSES},
    )
    @action(detail=True, methods=["post"])
    def deny(self, request: Request, pk: str | None = None) -> Response:
        step = self.get_object()
        services.deny_step(
            step.pk, actor=request.user, request_id=request_id_of(request), comment=self._comment(request)
        )
        return self._accepted(step.pk)


class PodUpdateCSVRenderer(BaseRenderer):
    """``text/csv`` for the per-pod history (``?format=csv`` or ``Accept: text/csv``).

    Successful lists are streamed by the view; this renders what is left: error bodies.
    """

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        errors = data.get("errors") if isinstance(data, dict) else None
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(("path", "message"))
        for error in errors or []:
            writer.writerow((error.get("path") or "", error.get("message", "")))
        return buffer.getvalue().encode()


_CSV_FORMAT = OpenApiParameter(
    "format", OpenApiTypes.STR, OpenApiParameter.QUERY, enum=["json", "csv"], description="csv: stream CSV"
)


@extend_schema_view(
    list=extend_schema(
        summary="Per-pod update history (?format=csv streams every matching row as CSV)",
        parameters=[_CSV_FORMAT],
        responses={200: PodUpdateSerializer(many=True), **_READ_RESPONSES},
    ),
    retrieve=extend_schema(
        summary="One pod's update", responses={200: PodUpdateSerializer, **_READ_RESPONSES}
    ),
)
class PodUpdateViewSet(
    _RolloutsViewMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Per-pod history of in-place updates (read-only; rows outlive their pods).

    GET /api/v1/pod-updates/ (filters: cluster, namespace, pod, rollout, step, outcome, since,
    until, ...; ?format=csv) · GET /api/v1/pod-updates/{id}/ · GET /api/v1/pod-updates/export.csv/
    """

    serializer_class = PodUpdateSerializer
    filterset_class = PodUpdateFilterSet
    # api_settings has imported the dotted paths (the stubs type them as strings)
    renderer_classes = (*api_settings.DEFAULT_RENDERER_CLASSES, PodUpdateCSVRenderer)  # type: ignore[arg-type]
    required_permissions = {"list": _VIEW_PODS, "retrieve": _VIEW_PODS, "export": _VIEW_PODS}

    def get_queryset(self) -> QuerySet[PodUpdate]:
        return (
            PodUpdate.objects.visible_to(self.request.user)
            .select_related("cluster", "rollout", "step")
            .order_by("-claimed_at", "-id")
        )

    def _csv(self) -> StreamingHttpResponse:
        rows = self.filter_queryset(self.get_queryset())
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        return StreamingHttpResponse(
            pod_update_csv(rows),
            content_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="pod-updates-{stamp}.csv"'},
        )

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        if getattr(request.accepted_renderer, "format", None) == "csv":
            return self._csv()
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="Per-pod update history as CSV (same filters as the list; streamed, not paginated)",
        responses={(200, "text/csv"): OpenApiTypes.STR, **_READ_RESPONSES},
    )
    @action(detail=False, methods=["get"], url_path="export.csv")
    def export(self, request: Request) -> StreamingHttpResponse:
        return self._csv()


_SIDECARSET_NAME = OpenApiParameter(
    "name", OpenApiTypes.STR, OpenApiParameter.PATH, description="The SidecarSet's name"
)


class SidecarSetFleetViewSet(_RolloutsViewMixin, viewsets.ViewSet):
    """The fleet view of one SidecarSet (``rollouts.fleet``), read-only.

    GET /api/v1/sidecarsets/{name}/fleet/ · GET /api/v1/sidecarsets/{name}/releases/?limit=
    """

    required_permissions = {"fleet": _FLEET, "releases": _FLEET, "publish_preview": _FLEET}

    def _sidecarset_id(self, name: str) -> int:
        found = SidecarSet.objects.filter(name=name).values_list("pk", flat=True).first()
        if found is None:
            raise SidecarSetNotFound(name)
        return int(found)

    @extend_schema(
        operation_id="sidecarsets_fleet",
        summary="Every target cluster of a SidecarSet: serving revision, hold, rollout, pods, drift",
        description="One row per target cluster, by wave then name: the revision it serves (its "
        "custom resource and webhook) against the SidecarSet's current one, its hold, its latest "
        "rollout (state, reason, current step), its pods as the cluster reported them at its last "
        "status refresh (observed live: not the rollout's own count, which is a rollout's "
        "`progress`), the pods that need recreate and its drift. `skipped_clusters`: the clusters "
        "its label selectors match but do not target, because another team owns them (name one in "
        "an explicit target to serve it there).",
        parameters=[_SIDECARSET_NAME],
        responses={200: FleetSerializer, **_READ_RESPONSES},
    )
    @action(detail=False, methods=["get"])
    def fleet(self, request: Request, name: str) -> Response:
        return Response(FleetSerializer(fleet.fleet_of(self._sidecarset_id(name))).data)

    @extend_schema(
        operation_id="sidecarsets_releases",
        summary="The newest releases of a SidecarSet, by wave, each with where it stands",
        description="A release is a published revision with one rollout per target cluster that "
        "served an earlier one. Newest first; `stage` says where it stands (waiting for a wave, "
        "awaiting approval, completed with pods that need recreate, rolled back, superseded...).",
        parameters=[_SIDECARSET_NAME, ReleasesQuerySerializer],
        responses={200: ReleasesSerializer, 400: _ERRORS, **_READ_RESPONSES},
    )
    @action(detail=False, methods=["get"])
    def releases(self, request: Request, name: str) -> Response:
        query = ReleasesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        sidecarset_id = self._sidecarset_id(name)
        releases = fleet.releases_of(sidecarset_id, limit=int(query.validated_data["limit"]))
        return Response(ReleasesSerializer(releases).data)

    @extend_schema(
        operation_id="sidecarsets_publish_preview",
        summary="What publishing the SidecarSet's unpublished definition would do",
        description="Nothing is written. The revision number it would become, its change kind, "
        "the rollout steps and, per target cluster by wave, the rollout it would get (in place, a "
        "gate only, or none and why) and its running pods in place vs needing recreate (read live "
        "unless `pods=false`; a cluster that cannot be read has `pods_error`). `skipped_clusters`: "
        "the clusters its label selectors match but do not target (another team's).",
        parameters=[_SIDECARSET_NAME, PublishPreviewQuerySerializer],
        responses={200: PublishPreviewSerializer, 400: _ERRORS, **_READ_RESPONSES},
    )
    @action(detail=False, methods=["get"], url_path="publish-preview")
    def publish_preview(self, request: Request, name: str) -> Response:
        query = PublishPreviewQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        preview = previews.preview_publish(
            self._sidecarset_id(name), actor=request.user, read_pods=bool(query.validated_data["pods"])
        )
        return Response(PublishPreviewSerializer(preview).data)
