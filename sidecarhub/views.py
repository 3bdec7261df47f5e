"""Project-level views: the health endpoint."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from sidecarhub.health import check_health


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database and the broker answer, 503 (with which one failed) otherwise.

    Unauthenticated on purpose: load balancers and probes call it; it reveals no data.
    """
    report = check_health()
    return JsonResponse(
        {
            "status": "ok" if report.healthy else "unhealthy",
            "database": report.database,
            "broker": report.broker,
        },
        status=200 if report.healthy else 503,
    )
