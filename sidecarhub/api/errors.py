"""One error body for the whole API: ``{"errors": [{"path": ..., "message": ...}, ...]}``.

``path`` names the field (core notation, ``spec.containers[0].image``; a request field such as
``version``; ``If-Match`` for the header) or is ``null`` for errors about the request as a whole.
Import errors add ``document`` (0-based index in the stream) and ``line``.

:func:`api_exception_handler` is DRF's ``EXCEPTION_HANDLER`` (settings): every DRF error
(validation, parse, authentication, CSRF, permission, 404, 405, 413...) leaves the API in this
shape, and domain exceptions of ``sidecarhub.services`` map to statuses here, so views stay thin.
SQLite's "database is locked" (a write waited longer than the busy timeout,
``sidecarhub.locks.is_database_busy``) is a 503 with ``Retry-After``: the caller may retry; it is
never a 500 -- in the API here, on every other page (the admin console) in ``error_page_500``.
The clusters and rollouts views map their own domain exceptions first and hand everything else
to this handler. Errors raised before a view runs (an unknown URL, a body Django refuses) get
the same body from :func:`error_page_400` / :func:`error_page_404` / :func:`error_page_500`,
the project's ``handler400`` / ``handler404`` / ``handler500``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.views import defaults
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler

from sidecarhub.locks import is_database_busy
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

__all__ = [
    "API_PATH_PREFIXES",
    "PreconditionFailed",
    "PreconditionRequired",
    "api_exception_handler",
    "error_body",
    "error_page_400",
    "error_page_404",
    "error_page_500",
]

# Paths whose errors are JSON even when Django (not DRF) answers: the API and the webhook.
API_PATH_PREFIXES = ("/api/", "/admission/")
DATABASE_BUSY_MESSAGE = (
    "the database was busy with another write for too long (SQLite allows one writer at a time) "
    "and the request could not finish; send it again"
)


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


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler of the whole API (see the module docstring).

    Returns ``None`` (Django's 500) only for exceptions that are not a client's fault.
    """
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
    if is_database_busy(exc):
        return _single(status.HTTP_503_SERVICE_UNAVAILABLE, DATABASE_BUSY_MESSAGE, **{"Retry-After": "1"})
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, ValidationError):
        response.data = {"errors": _flatten(exc.detail, None)}
    elif isinstance(exc, APIException):
        path = "If-Match" if isinstance(exc, PreconditionRequired | PreconditionFailed) else None
        response.data = {"errors": _flatten(exc.detail, path)}
    else:  # Http404 and Django's PermissionDenied, which DRF turns into its own exceptions
        response.data = {"errors": _flatten(response.data, None)}
    return response


# --- errors Django answers before (or instead of) a DRF view ----------------------------------


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PATH_PREFIXES)


def _json_error(status_code: int, message: str) -> JsonResponse:
    return JsonResponse({"errors": [{"path": None, "message": message}]}, status=status_code)


def error_page_400(request: HttpRequest, exception: Exception) -> HttpResponse:
    """``handler400``: a body over Django's limits is 413 in the API's shape on every path (the
    admin's forms included); other bad requests are JSON under the API, Django's page elsewhere."""
    if isinstance(exception, RequestDataTooBig):
        return _json_error(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, f"request body too large: {exception}")
    if _is_api(request):
        return _json_error(status.HTTP_400_BAD_REQUEST, "bad request")
    return defaults.bad_request(request, exception)


def error_page_404(request: HttpRequest, exception: Exception) -> HttpResponse:
    """``handler404``: an unknown URL under the API (``.../validate.json/`` too: format-suffix
    routes are off) is a JSON 404."""
    if _is_api(request):
        return _json_error(status.HTTP_404_NOT_FOUND, f"no such endpoint: {request.path}")
    return defaults.page_not_found(request, exception)


def error_page_500(request: HttpRequest) -> HttpResponse:
    """``handler500``: the API's shape under the API (details only in the server's log).

    Django calls it while handling the exception, so ``sys.exc_info()`` is that exception: SQLite's
    "database is locked" anywhere outside a DRF view (an admin page, a session save) is a 503 with
    ``Retry-After`` -- JSON under the API, a page saying to try again elsewhere -- never a 500."""
    if is_database_busy(sys.exc_info()[1] or Exception()):
        if _is_api(request):
            response: HttpResponse = _json_error(status.HTTP_503_SERVICE_UNAVAILABLE, DATABASE_BUSY_MESSAGE)
        else:
            page = render_to_string("database_busy.html", {"message": DATABASE_BUSY_MESSAGE})
            response = HttpResponse(page, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        response["Retry-After"] = "1"
        return response
    if _is_api(request):
        return _json_error(status.HTTP_500_INTERNAL_SERVER_ERROR, "internal error; see the server log")
    return defaults.server_error(request)
