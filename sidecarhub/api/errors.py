"""One error body for the SidecarSet API: ``{"errors": [{"path": ..., "message": ...}, ...]}``.

``path`` names the field (core notation, ``spec.containers[0].image``; a request field such as
``version``; ``If-Match`` for the header) or is ``null`` for errors about the request as a whole.
Import errors add ``document`` (0-based index in the stream) and ``line``. Domain exceptions
from ``sidecarhub.services`` map to statuses here, so views stay thin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.exceptions import RequestDataTooBig
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler

from sidecarhub.services import (
    ImportInvalid,
    NothingToPublish,
    RevisionNotFound,
    SidecarSetAlreadyExists,
    SidecarSetInvalid,
    SidecarSetNotFound,
    StaleVersion,
)
from sidecarhub.sidecarset import FieldError

__all__ = ["PreconditionFailed", "PreconditionRequired", "error_body", "sidecarset_exception_handler"]


class PreconditionRequired(APIException):
    status_code = status.HTTP_428_PRECONDITION_REQUIRED
    default_detail = 'send If-Match: "<version>" (the ETag you read) or a version field'
    default_code = "precondition_required"


class PreconditionFailed(APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "the SidecarSet changed since you read it"
    default_code = "precondition_failed"


def error_body(errors: Sequence[FieldError]) -> dict[str, Any]:
    return {"errors": [{"path": error.path, "message": error.message} for error in errors]}


def _flatten(detail: Any, path: str | None) -> list[dict[str, Any]]:
    if isinstance(detail, dict):
        items: list[dict[str, Any]] = []
        for key, value in detail.items():
            child = None if key in ("non_field_errors", "detail") else (f"{path}.{key}" if path else str(key))
            items.extend(_flatten(value, child))
        return items
    if isinstance(detail, list):
        items = []
        for value in detail:
            items.extend(_flatten(value, path))
        return items
    return [{"path": path, "message": str(detail)}]


def _single(status_code: int, message: str, path: str | None = None, **headers: str) -> Response:
    return Response({"errors": [{"path": path, "message": message}]}, status=status_code, headers=headers)


def sidecarset_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler of the SidecarSet views (see the module docstring)."""
    if isinstance(exc, SidecarSetInvalid):
        return Response(error_body(exc.errors), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, ImportInvalid):
        body = [
            {"document": error.index, "line": error.line, "path": error.path, "message": error.message}
            for error in exc.errors
        ]
        return Response({"errors": body}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, SidecarSetNotFound | RevisionNotFound):
        return _single(status.HTTP_404_NOT_FOUND, str(exc))
    if isinstance(exc, SidecarSetAlreadyExists):
        return _single(status.HTTP_409_CONFLICT, str(exc), "metadata.name")
    if isinstance(exc, NothingToPublish):
        return _single(status.HTTP_409_CONFLICT, str(exc))
    if isinstance(exc, StaleVersion):
        return _single(
            status.HTTP_412_PRECONDITION_FAILED, str(exc), "If-Match", ETag=f'"{exc.current_version}"'
        )
    if isinstance(exc, RequestDataTooBig):
        return _single(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, f"request body too large: {exc}")
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, ValidationError):
        response.data = {"errors": _flatten(exc.detail, None)}
    elif isinstance(exc, APIException):
        path = "If-Match" if isinstance(exc, PreconditionRequired | PreconditionFailed) else None
        response.data = {"errors": [{"path": path, "message": str(exc.detail)}]}
    return response
