"""Project-level views: the health endpoint and the API's documentation page."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET
from drf_spectacular.views import SpectacularSwaggerView

from sidecarhub.health import check_health

__all__ = ["ApiDocsView", "healthz"]


class ApiDocsView(SpectacularSwaggerView):
    """``/api/v1/docs/``: Swagger UI over the schema; GET and HEAD only.

    DRF would answer ``OPTIONS`` with the view's metadata rendered through the page's HTML
    template, which cannot render it (a 500); a page needs no OPTIONS, so it is a 405.
    """

    http_method_names = ["get", "head"]


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
