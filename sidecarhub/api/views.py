"""The SidecarSet API (``/api/v1/sidecarsets/``). Views parse requests and call services; the
error bodies and statuses come from ``sidecarhub.api.errors`` (the API's exception handler).

Lost updates: ``GET .../{name}/`` returns ``ETag: "<version>"``. ``PUT``, ``PATCH`` and
``DELETE`` REQUIRE the version being changed, as ``If-Match: "<version>"`` (the ETag) or as a
``version`` field in the body: without either the answer is 428, with an outdated one 412 (and
the current ETag). ``If-Match: *`` deliberately overwrites whatever is stored. ``publish``
checks ``If-Match`` / ``version`` when given, since publishing does not change the definition.
"""

from __future__ import annotations

import re
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from sidecarhub import services
from sidecarhub.api.errors import PreconditionFailed, PreconditionRequired
from sidecarhub.api.filtersets import ChangeRecordFilterSet, SidecarSetFilterSet
from sidecarhub.api.parsers import (
    DocumentJSONParser,
    DocumentYAMLParser,
    ImportJSONParser,
    ImportYAMLParser,
    YAMLRenderer,
)
from sidecarhub.api.permissions import ActionPermissions
from sidecarhub.api.serializers import (
    ChangeRecordSerializer,
    DiffQuerySerializer,
    ErrorListSerializer,
    ExportQuerySerializer,
    ImportResultSerializer,
    ImportSerializer,
    PublishSerializer,
    RevisionDetailSerializer,
    RevisionDiffSerializer,
    RevisionSerializer,
    SidecarSetSerializer,
    SidecarSetWriteSerializer,
    ValidateSerializer,
    ValidationResultSerializer,
)
from sidecarhub.middleware import request_id_of
from sidecarhub.models import ChangeRecord, SidecarSet, SidecarSetRevision
from sidecarhub.services import SidecarSetNotFound

__all__ = ["ChangeRecordViewSet", "SidecarSetViewSet"]

_ETAG = re.compile(r'^\s*(?:W/)?"(\d+)"\s*$')
_VIEW = ["sidecarhub.view_sidecarset"]

_ERRORS = OpenApiResponse(ErrorListSerializer, description="Errors, each naming its field")
_IF_MATCH = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description='The ETag you read ("<version>"); required unless the body has version. * overwrites.',
)
_REQUEST_ID = OpenApiParameter(
    "X-Request-ID", OpenApiTypes.STR, OpenApiParameter.HEADER, description="Recorded in the change log"
)
_WRITE_RESPONSES = {400: _ERRORS, 404: _ERRORS, 409: _ERRORS, 412: _ERRORS, 413: _ERRORS, 428: _ERRORS}


def expected_version(request: Request, body_version: int | None, *, required: bool) -> int | None:
    """The version the caller edited, from ``If-Match`` or the body (see the module docstring)."""
    header = request.META.get("HTTP_IF_MATCH")
    if header is not None and header.strip() == "*":
        return None
    header_version: int | None = None
    if header is not None:
        match = _ETAG.match(header)
        if match is None:
            raise PreconditionFailed(f'If-Match must be "<version>" or *, got {header!r}')
        header_version = int(match.group(1))
    if header_version is not None and body_version is not None and header_version != body_version:
        raise PreconditionFailed(f"If-Match ({header_version}) and version ({body_version}) disagree")
    version = header_version if header_version is not None else body_version
    if version is None and required:
        raise PreconditionRequired()
    return version


def etag(sidecarset: SidecarSet) -> str:
    return f'"{sidecarset.version}"'


@extend_schema_view(
    list=extend_schema(summary="List SidecarSets", responses={200: SidecarSetSerializer(many=True)}),
    retrieve=extend_schema(
        summary="Get a SidecarSet (ETag: its version)", responses={200: SidecarSetSerializer, 404: _ERRORS}
    ),
)
class SidecarSetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """SidecarSet definitions, their revisions, and Kruise YAML in and out."""

    serializer_class = SidecarSetSerializer
    filterset_class = SidecarSetFilterSet
    permission_classes = [ActionPermissions]
    parser_classes = [DocumentJSONParser, DocumentYAMLParser]
    lookup_field = "name"
    lookup_value_regex = r"[A-Za-z0-9-]+"
    required_permissions: dict[str, list[str]] = {
        "list": _VIEW,
        "retrieve": _VIEW,
        "revisions": _VIEW,
        "revision": _VIEW,
        "diff": _VIEW,
        "export": _VIEW,
        # A dry run writes nothing: reading is enough.
        "validate": _VIEW,
        "create": ["sidecarhub.add_sidecarset"],
        "update": ["sidecarhub.change_sidecarset"],
        "partial_update": ["sidecarhub.change_sidecarset"],
        "destroy": ["sidecarhub.delete_sidecarset"],
        "publish": ["sidecarhub.publish_sidecarset"],
        # Import creates some and updates others.
        "import_documents": ["sidecarhub.add_sidecarset", "sidecarhub.change_sidecarset"],
    }

    def get_queryset(self) -> QuerySet[SidecarSet]:
        return SidecarSet.objects.for_display()

    def _reload(self, name: str) -> SidecarSet:
        found = self.get_queryset().filter(name=name).first()
        if found is None:
            raise SidecarSetNotFound(name)
        return found

    def _respond(self, sidecarset: SidecarSet, status_code: int = status.HTTP_200_OK) -> Response:
        reloaded = self._reload(sidecarset.name)
        return Response(
            SidecarSetSerializer(reloaded).data, status=status_code, headers={"ETag": etag(reloaded)}
        )

    # --- definitions -------------------------------------------------------------------------

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        sidecarset = self.get_object()
        if request.META.get("HTTP_IF_NONE_MATCH", "").strip() == etag(sidecarset):
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag(sidecarset)})
        return Response(self.get_serializer(sidecarset).data, headers={"ETag": etag(sidecarset)})

    @extend_schema(
        summary="Create a SidecarSet from a Kruise document (YAML/JSON) or a spec",
        request=SidecarSetWriteSerializer,
        parameters=[_REQUEST_ID],
        responses={201: SidecarSetSerializer, **_WRITE_RESPONSES},
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = SidecarSetWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        source = serializer.kruise_source()
        if source is None:
            return Response(
                {"errors": [{"path": "document", "message": "a document or a spec is required"}]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        created = services.create_sidecarset(
            source,
            actor=request.user,
            rollout_policy=serializer.validated_data.get("rollout_policy"),
            owner_team=serializer.validated_data.get("owner_team", ""),
            request_id=request_id_of(request),
            message=serializer.validated_data.get("message", ""),
        )
        return self._respond(created, status.HTTP_201_CREATED)

    def _update(self, request: Request, name: str, *, partial: bool) -> Response:
        serializer = SidecarSetWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        source = serializer.kruise_source(name)
        if source is None and not partial:
            return Response(
                {"errors": [{"path": "document", "message": "a document or a spec is required"}]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        updated = services.update_sidecarset(
            name,
            source=source,
            rollout_policy=serializer.validated_data.get("rollout_policy"),
            actor=request.user,
            expected_version=expected_version(
                request, serializer.validated_data.get("version"), required=True
            ),
            owner_team=serializer.validated_data.get("owner_team"),
            request_id=request_id_of(request),
            message=serializer.validated_data.get("message", ""),
        )
        return self._respond(updated)

    @extend_schema(
        summary="Replace a SidecarSet's definition (If-Match or version required)",
        request=SidecarSetWriteSerializer,
        parameters=[_IF_MATCH, _REQUEST_ID],
        responses={200: SidecarSetSerializer, **_WRITE_RESPONSES},
    )
    def update(self, request: Request, name: str) -> Response:
        return self._update(request, name, partial=False)

    @extend_schema(
        summary="Change the owner team, rollout policy and/or definition (If-Match or version required)",
        request=SidecarSetWriteSerializer,
        parameters=[_IF_MATCH, _REQUEST_ID],
        responses={200: SidecarSetSerializer, **_WRITE_RESPONSES},
    )
    def partial_update(self, request: Request, name: str) -> Response:
        return self._update(request, name, partial=True)

    @extend_schema(
        summary="Delete a SidecarSet and its revisions (If-Match required)",
        parameters=[_IF_MATCH, _REQUEST_ID],
        responses={204: None, 404: _ERRORS, 412: _ERRORS, 428: _ERRORS},
    )
    def destroy(self, request: Request, name: str) -> Response:
        services.delete_sidecarset(
            name,
            actor=request.user,
            expected_version=expected_version(request, None, required=True),
            request_id=request_id_of(request),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    # --- publish and revisions ---------------------------------------------------------------

    @extend_schema(
        summary="Publish the definition as a new immutable revision",
        request=PublishSerializer,
        parameters=[_IF_MATCH, _REQUEST_ID],
        responses={201: RevisionDetailSerializer, 400: _ERRORS, 404: _ERRORS, 409: _ERRORS, 412: _ERRORS},
    )
    @action(detail=True, methods=["post"])
    def publish(self, request: Request, name: str) -> Response:
        serializer = PublishSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        revision = services.publish_sidecarset(
            name,
            actor=request.user,
            message=serializer.validated_data.get("message", ""),
            request_id=request_id_of(request),
            expected_version=expected_version(
                request, serializer.validated_data.get("version"), required=False
            ),
        )
        return Response(RevisionDetailSerializer(revision).data, status=status.HTTP_201_CREATED)

    def _revisions(self, name: str) -> QuerySet[SidecarSetRevision]:
        return self._reload(name).revisions.select_related("sidecarset").order_by("-number")

    @extend_schema(
        summary="List a SidecarSet's revisions, newest first",
        operation_id="sidecarsets_revisions_list",
        filters=False,
        parameters=[
            OpenApiParameter("limit", OpenApiTypes.INT, description="Page size"),
            OpenApiParameter("offset", OpenApiTypes.INT, description="Start of the page"),
        ],
        responses={200: RevisionSerializer(many=True), 404: _ERRORS},
    )
    @action(detail=True, methods=["get"], url_path="revisions", filterset_class=None)
    def revisions(self, request: Request, name: str) -> Response:
        page = self.paginate_queryset(self._revisions(name))
        return self.get_paginated_response(RevisionSerializer(page, many=True).data)

    @extend_schema(
        summary="Get one revision with its document",
        operation_id="sidecarsets_revisions_retrieve",
        filters=False,
        parameters=[OpenApiParameter("number", OpenApiTypes.INT, OpenApiParameter.PATH)],
        responses={200: RevisionDetailSerializer, 404: _ERRORS},
    )
    @action(detail=True, methods=["get"], url_path=r"revisions/(?P<number>[0-9]+)", filterset_class=None)
    def revision(self, request: Request, name: str, number: str) -> Response:
        revision = self._revisions(name).filter(number=int(number)).first()
        if revision is None:
            raise services.RevisionNotFound(name, int(number))
        return Response(RevisionDetailSerializer(revision).data)

    @extend_schema(
        summary="Diff two revisions (unified YAML diff and Kruise's change classification)",
        operation_id="sidecarsets_revisions_diff",
        filters=False,
        parameters=[
            OpenApiParameter("from", OpenApiTypes.INT, required=True, description="Older revision number"),
            OpenApiParameter("to", OpenApiTypes.INT, required=True, description="Newer revision number"),
        ],
        responses={200: RevisionDiffSerializer, 400: _ERRORS, 404: _ERRORS},
    )
    @action(detail=True, methods=["get"], url_path="revisions/diff", filterset_class=None)
    def diff(self, request: Request, name: str) -> Response:
        query = DiffQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        result = services.diff_revisions(name, query.validated_data["from"], query.validated_data["to"])
        return Response(RevisionDiffSerializer(result).data)

    # --- dry run, import, export -------------------------------------------------------------

    @extend_schema(
        summary="Validate a document without storing it (every error with its field path)",
        request=ValidateSerializer,
        responses={200: ValidationResultSerializer, 400: _ERRORS, 413: _ERRORS},
    )
    @action(detail=False, methods=["post"], filterset_class=None)
    def validate(self, request: Request) -> Response:
        serializer = ValidateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        source = serializer.kruise_source()
        if source is None:
            return Response(
                {"errors": [{"path": "document", "message": "a document or a spec is required"}]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        errors = services.validate_definition(
            source, rollout_policy=serializer.validated_data.get("rollout_policy")
        )
        body = {"valid": not errors, "errors": [{"path": e.path, "message": e.message} for e in errors]}
        return Response(body)

    @extend_schema(
        summary="Import (create or update) every document of a multi-document Kruise YAML, all or nothing",
        operation_id="sidecarsets_import",
        request=ImportSerializer,
        parameters=[_REQUEST_ID],
        responses={200: ImportResultSerializer, 400: _ERRORS, 413: _ERRORS},
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="import",
        parser_classes=[ImportJSONParser, ImportYAMLParser],
        filterset_class=None,
    )
    def import_documents(self, request: Request) -> Response:
        serializer = ImportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        results = services.import_documents(
            serializer.validated_data["document"],
            actor=request.user,
            owner_team=serializer.validated_data.get("owner_team", ""),
            request_id=request_id_of(request),
            message=serializer.validated_data.get("message", ""),
        )
        return Response(ImportResultSerializer({"results": results}).data)

    @extend_schema(
        summary="Export as Kruise YAML (v1alpha1 or v1beta1), the definition or one revision",
        filters=False,
        parameters=[ExportQuerySerializer],
        responses={(200, "application/yaml"): OpenApiTypes.STR, (404, "application/yaml"): OpenApiTypes.STR},
    )
    @action(detail=True, methods=["get"], renderer_classes=[YAMLRenderer, JSONRenderer], filterset_class=None)
    def export(self, request: Request, name: str) -> Response:
        query = ExportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        text = services.export_sidecarset(
            name, query.validated_data["version"], revision_number=query.validated_data.get("revision")
        )
        return Response(text)


class ChangeRecordViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The config change log, newest first (read-only). Rows outlive their objects: a deleted
    cluster's or SidecarSet's history is listed under its name (``?object=``)."""

    queryset = ChangeRecord.objects.select_related("content_type", "parent_content_type")
    serializer_class = ChangeRecordSerializer
    filterset_class = ChangeRecordFilterSet
    permission_classes = [ActionPermissions]
    required_permissions: dict[str, list[str]] = {
        "list": ["sidecarhub.view_changerecord"],
        "retrieve": ["sidecarhub.view_changerecord"],
    }
