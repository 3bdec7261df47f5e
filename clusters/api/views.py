"""Viewsets of the clusters API: declare queryset, serializer, filters and permissions; each
write validates an input serializer and calls one service.

Errors use the project's body, ``{"errors": [{"path": <field or null>, "message": ...}]}``:
input errors are 400 naming the field, an impossible state change is 409, unknown objects 404.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from clusters import enqueue
from clusters.api.filtersets import AuditEventFilterSet, ClusterFilterSet, PlacementFilterSet, TargetFilterSet
from clusters.api.serializers import (
    ClusterAuditEventSerializer,
    ClusterCreateSerializer,
    ClusterDeleteSerializer,
    ClusterRemovalSerializer,
    ClusterRolloutPolicySerializer,
    ClusterSerializer,
    ClusterUpdateSerializer,
    CredentialsSerializer,
    DriftedPodSerializer,
    HoldSerializer,
    KubeconfigImportSerializer,
    PlacementSerializer,
    TargetInputSerializer,
    TargetSerializer,
    WebhookTokenIssuedSerializer,
    WebhookTokenRevokedSerializer,
    WebhookTokenSerializer,
)
from clusters.models import Cluster, ClusterAuditEvent, DriftedPod, SidecarSetPlacement, SidecarSetTarget
from clusters.push import (
    TargetInvalid,
    create_target,
    delete_target,
    retry_placement,
    update_target,
)
from clusters.services import (
    ClusterCleanupFailed,
    ClusterExists,
    ClusterInvalid,
    delete_cluster,
    hold_cluster,
    import_kubeconfig,
    register_cluster,
    replace_credentials,
    revoke_previous_webhook_token,
    rollout_policy_snapshot,
    set_rollout_policy,
    set_webhook_token,
    update_cluster,
)
from clusters.webhooks import WebhookNotConfigured, apiserver_admission_config
from sidecarhub.api.errors import api_exception_handler
from sidecarhub.api.permissions import ActionPermissions
from sidecarhub.api.serializers import ErrorListSerializer

if TYPE_CHECKING:
    from rest_framework.permissions import _PermissionClass
from sidecarhub.middleware import request_id_of
from sidecarhub.models import SidecarSet
from sidecarhub.transitions import InvalidTransition

__all__ = ["ClusterAuditEventViewSet", "ClusterViewSet", "PlacementViewSet", "TargetViewSet"]


def _flatten(detail: Any, path: str | None) -> list[dict[str, Any]]:
    if isinstance(detail, dict):
        return [
            item
            for key, value in detail.items()
            for item in _flatten(value, None if key in ("non_field_errors", "detail") else str(key))
        ]
    if isinstance(detail, list):
        return [item for value in detail for item in _flatten(value, path)]
    return [{"path": path, "message": str(detail)}]


def clusters_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Map domain errors to statuses; every error body names the field when there is one."""
    if isinstance(exc, ClusterExists):
        return Response({"errors": _flatten(exc.errors, None)}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, ClusterInvalid | TargetInvalid):
        return Response({"errors": _flatten(exc.errors, None)}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, ClusterCleanupFailed):
        return Response({"errors": [{"path": None, "message": str(exc)}]}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, InvalidTransition):
        return Response(
            {"errors": [{"path": "state", "message": str(exc)}], "state": exc.current_state},
            status=status.HTTP_409_CONFLICT,
        )
    return api_exception_handler(exc, context)


class _ClustersViewMixin:
    permission_classes: Sequence[_PermissionClass] = (ActionPermissions,)

    def get_exception_handler(self) -> Any:
        return clusters_exception_handler


class ClusterViewSet(_ClustersViewMixin, viewsets.ModelViewSet):
    """Registered clusters, looked up by name.

    GET/POST /api/v1/clusters/ · GET/PATCH/DELETE /api/v1/clusters/{name}/ ·
    POST /api/v1/clusters/import-kubeconfig/ · POST /api/v1/clusters/{name}/credentials/ ·
    POST /api/v1/clusters/{name}/check/ (202: a health check is queued) ·
    GET/PATCH /api/v1/clusters/{name}/rollout-policy/ (four eyes, auto-approve, approval lifetime) ·
    POST /api/v1/clusters/{name}/webhook-token/ (set or generate the admission webhook token) ·
    GET /api/v1/clusters/{name}/drift/ (pods lacking an active SidecarSet's injection; ?namespace=)
    """

    queryset = Cluster.objects.select_related("owner_team")
    serializer_class = ClusterSerializer
    filterset_class = ClusterFilterSet
    lookup_field = "name"
    lookup_value_regex = "[a-z0-9-]+"
    http_method_names = ("get", "post", "patch", "delete", "head", "options")
    required_permissions = {
        "list": ["clusters.view_cluster"],
        "retrieve": ["clusters.view_cluster"],
        "create": ["clusters.add_cluster"],
        "import_kubeconfig": ["clusters.add_cluster", "clusters.change_cluster"],
        "partial_update": ["clusters.change_cluster"],
        "destroy": ["clusters.delete_cluster"],
        "credentials": ["clusters.change_cluster"],
        "webhook_token": ["clusters.change_cluster"],
        "revoke_previous_webhook_token": ["clusters.change_cluster"],
        "check": ["clusters.view_cluster"],
        "hold": ["clusters.hold_cluster"],
        "release_hold": ["clusters.hold_cluster"],
        "drift": ["clusters.view_cluster", "clusters.view_driftedpod"],
        "rollout_policy": ["clusters.view_cluster"],
        "change_rollout_policy": ["clusters.view_cluster", "clusters.change_rollout_policy"],
    }

    def _show(self, cluster: Cluster, code: int = status.HTTP_200_OK) -> Response:
        cluster.refresh_from_db()
        return Response(ClusterSerializer(cluster).data, status=code)

    @extend_schema(request=ClusterCreateSerializer, responses={201: ClusterSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = ClusterCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = {
            k: v
            for k, v in data.validated_data.items()
            if k not in ("token", "client_certificate", "client_key")
        }
        cluster = register_cluster(
            **fields, credentials=data.credentials(), actor=request.user, request_id=request_id_of(request)
        )
        return self._show(cluster, status.HTTP_201_CREATED)

    @extend_schema(request=ClusterUpdateSerializer, responses={200: ClusterSerializer})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        cluster = self.get_object()
        data = ClusterUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        update_cluster(
            cluster.pk, changes=data.validated_data, actor=request.user, request_id=request_id_of(request)
        )
        return self._show(cluster)

    @extend_schema(
        parameters=[ClusterDeleteSerializer],
        responses={200: ClusterRemovalSerializer, 400: ErrorListSerializer, 409: ErrorListSerializer},
        description="Remove the hub's webhook and SidecarSets from the cluster, then delete it from the "
        "hub (with its targets, placements and rollouts). 409 when they cannot be removed.",
    )
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        cluster = self.get_object()
        query = ClusterDeleteSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        removal = delete_cluster(
            cluster.pk,
            keep_in_cluster=query.validated_data["keep_in_cluster"],
            actor=request.user,
            request_id=request_id_of(request),
        )
        return Response(ClusterRemovalSerializer(removal).data)

    @extend_schema(
        request=KubeconfigImportSerializer, responses={201: ClusterSerializer, 200: ClusterSerializer}
    )
    @action(detail=False, methods=["post"], url_path="import-kubeconfig")
    def import_kubeconfig(self, request: Request) -> Response:
        data = KubeconfigImportSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        cluster, created = import_kubeconfig(
            name=values["name"],
            kubeconfig_text=values["kubeconfig"],
            context=values["context"] or None,
            replace=values["replace"],
            labels=values["labels"],
            actor=request.user,
            request_id=request_id_of(request),
        )
        return self._show(cluster, status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(request=CredentialsSerializer, responses={200: ClusterSerializer})
    @action(detail=True, methods=["post"])
    def credentials(self, request: Request, name: str | None = None) -> Response:
        cluster = self.get_object()
        data = CredentialsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        replace_credentials(
            cluster.pk, credentials=data.credentials(), actor=request.user, request_id=request_id_of(request)
        )
        return self._show(cluster)

    @extend_schema(
        request=WebhookTokenSerializer,
        responses={200: WebhookTokenIssuedSerializer},
        description="Set the token the cluster's apiserver presents to the admission webhook, or "
        "generate one (no token). The answer shows it once, with the AdmissionConfiguration and "
        "kubeconfig to install on the apiserver. The token it replaces stays accepted for "
        "grace_seconds (default 24 h; 0: refused at once) while the apiserver is given the new one.",
    )
    @action(detail=True, methods=["post"], url_path="webhook-token")
    def webhook_token(self, request: Request, name: str | None = None) -> Response:
        cluster = self.get_object()
        data = WebhookTokenSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        given = data.validated_data.get("token")
        token = set_webhook_token(
            cluster.pk,
            token=given,
            grace_seconds=data.validated_data.get("grace_seconds"),
            actor=request.user,
            request_id=request_id_of(request),
        )
        cluster.refresh_from_db()
        try:
            files = apiserver_admission_config(cluster, token)
        except WebhookNotConfigured:
            files = None
        answer = {
            "cluster": cluster.name,
            "token": token,
            "generated": given is None,
            "webhook_auth_required": cluster.webhook_auth_required,
            "previous_token_accepted_until": cluster.previous_webhook_token_accepted_until(timezone.now()),
            "admission_configuration": files.admission_configuration if files else None,
            "kubeconfig": files.kubeconfig if files else None,
            "kubeconfig_path": files.kubeconfig_path if files else None,
        }
        response = Response(WebhookTokenIssuedSerializer(answer).data)
        response["Cache-Control"] = "no-store"  # a secret: never kept by a cache
        return response

    @extend_schema(
        request=None,
        responses={200: WebhookTokenRevokedSerializer},
        description="Stop accepting the token the last rotation replaced before its deadline "
        "(once the apiserver presents the new one).",
    )
    @action(detail=True, methods=["post"], url_path="webhook-token/revoke-previous")
    def revoke_previous_webhook_token(self, request: Request, name: str | None = None) -> Response:
        cluster = self.get_object()
        revoked = revoke_previous_webhook_token(
            cluster.pk, actor=request.user, request_id=request_id_of(request)
        )
        return Response(WebhookTokenRevokedSerializer({"cluster": cluster.name, "revoked": revoked}).data)

    @extend_schema(request=HoldSerializer, responses={200: ClusterSerializer})
    @action(detail=True, methods=["post"])
    def hold(self, request: Request, name: str | None = None) -> Response:
        """Hold the cluster at the revisions it serves: releases skip it until the hold is lifted."""
        cluster = self.get_object()
        data = HoldSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        hold_cluster(
            cluster.pk,
            held=True,
            reason=data.validated_data["reason"],
            actor=request.user,
            request_id=request_id_of(request),
        )
        return self._show(cluster)

    @extend_schema(request=None, responses={200: ClusterSerializer})
    @action(detail=True, methods=["post"], url_path="release-hold")
    def release_hold(self, request: Request, name: str | None = None) -> Response:
        """Lift the cluster's hold: its releases go on."""
        cluster = self.get_object()
        hold_cluster(cluster.pk, held=False, actor=request.user, request_id=request_id_of(request))
        return self._show(cluster)

    @extend_schema(request=None, responses={202: ClusterSerializer})
    @action(detail=True, methods=["post"])
    def check(self, request: Request, name: str | None = None) -> Response:
        cluster = self.get_object()
        enqueue.health_check(cluster.pk)
        return self._show(cluster, status.HTTP_202_ACCEPTED)

    # --- rollout policy (clusters.services.set_rollout_policy) ---
    @extend_schema(request=None, responses={200: ClusterRolloutPolicySerializer})
    @action(detail=True, methods=["get"], url_path="rollout-policy")
    def rollout_policy(self, request: Request, name: str | None = None) -> Response:
        """Who approves rollout steps here, and how long a prepared step waits."""
        return Response(ClusterRolloutPolicySerializer(rollout_policy_snapshot(self.get_object())).data)

    @extend_schema(request=ClusterRolloutPolicySerializer, responses={200: ClusterRolloutPolicySerializer})
    @rollout_policy.mapping.patch
    def change_rollout_policy(self, request: Request, name: str | None = None) -> Response:
        """Change the policy (its team's people with ``clusters.change_rollout_policy``, or an
        organisation admin); recorded in the change log."""
        cluster = self.get_object()
        data = ClusterRolloutPolicySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if not data.validated_data:
            return Response(
                {"errors": [{"path": None, "message": "give at least one rollout policy field"}]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        changed = set_rollout_policy(
            cluster.pk, changes=data.validated_data, actor=request.user, request_id=request_id_of(request)
        )
        return Response(ClusterRolloutPolicySerializer(rollout_policy_snapshot(changed)).data)

    # --- drift (clusters.drift) ---
    @extend_schema(request=None, responses={200: DriftedPodSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def drift(self, request: Request, name: str | None = None) -> Response:
        cluster = self.get_object()
        rows = DriftedPod.objects.filter(cluster=cluster).order_by("namespace", "pod_name")
        namespace = request.query_params.get("namespace")
        if namespace:
            rows = rows.filter(namespace=namespace)
        page = self.paginate_queryset(rows)
        if page is not None:
            return self.get_paginated_response(DriftedPodSerializer(page, many=True).data)
        return Response(DriftedPodSerializer(rows, many=True).data)


class TargetViewSet(_ClustersViewMixin, viewsets.ModelViewSet):
    """Which clusters a SidecarSet goes to, and in which wave.

    GET/POST /api/v1/sidecarset-targets/ · GET/PATCH/DELETE /api/v1/sidecarset-targets/{id}/
    """

    queryset = SidecarSetTarget.objects.select_related("sidecarset", "cluster")
    serializer_class = TargetSerializer
    filterset_class = TargetFilterSet
    http_method_names = ("get", "post", "patch", "delete", "head", "options")
    required_permissions = {
        "list": ["clusters.view_sidecarsettarget"],
        "retrieve": ["clusters.view_sidecarsettarget"],
        "create": ["clusters.add_sidecarsettarget"],
        "partial_update": ["clusters.change_sidecarsettarget"],
        "destroy": ["clusters.delete_sidecarsettarget"],
    }

    @staticmethod
    def _cluster_id(name: str | None) -> int | None:
        if name is None:
            return None
        cluster_id = Cluster.objects.filter(name=name).values_list("pk", flat=True).first()
        if cluster_id is None:
            raise TargetInvalid({"cluster": f"no cluster named {name!r}"})
        return cluster_id

    def _show(self, target: SidecarSetTarget, code: int = status.HTTP_200_OK) -> Response:
        return Response(TargetSerializer(self.get_queryset().get(pk=target.pk)).data, status=code)

    @extend_schema(request=TargetInputSerializer, responses={201: TargetSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = TargetInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if not values.get("sidecarset"):
            raise TargetInvalid({"sidecarset": "this field is required"})
        sidecarset_id = (
            SidecarSet.objects.filter(name=values["sidecarset"]).values_list("pk", flat=True).first()
        )
        if sidecarset_id is None:
            raise TargetInvalid({"sidecarset": f"no SidecarSet named {values['sidecarset']!r}"})
        target = create_target(
            sidecarset_id=sidecarset_id,
            cluster_id=self._cluster_id(values.get("cluster")),
            cluster_selector=values.get("cluster_selector"),
            wave=values.get("wave", 0),
            actor=request.user,
            request_id=request_id_of(request),
        )
        return self._show(target, status.HTTP_201_CREATED)

    @extend_schema(request=TargetInputSerializer, responses={200: TargetSerializer})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        target = self.get_object()
        data = TargetInputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        if "sidecarset" in values:
            raise TargetInvalid({"sidecarset": "cannot be changed; delete the target and create another"})
        changes: dict[str, Any] = {}
        if "cluster" in values:
            changes["cluster_id"] = self._cluster_id(values["cluster"])
        for key in ("cluster_selector", "wave"):
            if key in values:
                changes[key] = values[key]
        target = update_target(
            target.pk, changes=changes, actor=request.user, request_id=request_id_of(request)
        )
        return self._show(target)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        target = self.get_object()
        delete_target(target.pk, actor=request.user, request_id=request_id_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class PlacementViewSet(
    _ClustersViewMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Push state and observed status per (SidecarSet, cluster).

    GET /api/v1/sidecarset-placements/ · GET /api/v1/sidecarset-placements/{id}/ ·
    POST /api/v1/sidecarset-placements/{id}/retry/ (202: the push or removal is queued again)
    """

    queryset = SidecarSetPlacement.objects.select_related("cluster", "serving_revision")
    serializer_class = PlacementSerializer
    filterset_class = PlacementFilterSet
    required_permissions = {
        "list": ["clusters.view_sidecarsetplacement"],
        "retrieve": ["clusters.view_sidecarsetplacement"],
        "retry": ["clusters.change_sidecarsetplacement"],
    }

    @extend_schema(request=None, responses={202: PlacementSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str | None = None) -> Response:
        placement = self.get_object()
        retry_placement(placement.pk, actor=request.user)
        return Response(
            PlacementSerializer(self.get_queryset().get(pk=placement.pk)).data,
            status=status.HTTP_202_ACCEPTED,
        )


class ClusterAuditEventViewSet(
    _ClustersViewMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Security audit of cluster credentials (read-only).

    GET /api/v1/cluster-audit-events/ · GET /api/v1/cluster-audit-events/{id}/
    """

    queryset = ClusterAuditEvent.objects.all()
    serializer_class = ClusterAuditEventSerializer
    filterset_class = AuditEventFilterSet
    required_permissions = {
        "list": ["clusters.view_clusterauditevent"],
        "retrieve": ["clusters.view_clusterauditevent"],
    }
