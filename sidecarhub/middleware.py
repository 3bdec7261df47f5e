"""Request IDs: every web request carries one, from the caller's ``X-Request-ID`` or fresh.

Services record it in the change log (STYLE P11) so one API call, one admin action or one CLI
run can be followed through history rows; the response echoes it back.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

__all__ = ["RequestIdMiddleware", "cli_request_id", "request_id_of"]

# What a caller may send: short and printable, so it cannot smuggle anything into logs.
_ACCEPTED = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def request_id_of(request: HttpRequest) -> str:
    """The request's ID (set by the middleware; a fresh one for requests that bypassed it)."""
    value = getattr(request, "id", "")
    if not value:
        value = uuid.uuid4().hex
        request.id = value  # type: ignore[attr-defined]
    return str(value)


def cli_request_id() -> str:
    """A fresh request ID for one CLI run (``cli-`` and 12 hex digits): what it records shares it."""
    return f"cli-{uuid.uuid4().hex[:12]}"


class RequestIdMiddleware:
    """Sets ``request.id`` and the ``X-Request-ID`` response header."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.headers.get("X-Request-ID", "").strip()
        request.id = given if _ACCEPTED.match(given) else uuid.uuid4().hex  # type: ignore[attr-defined]
        response = self.get_response(request)
        response["X-Request-ID"] = request.id  # type: ignore[attr-defined]
        return response
