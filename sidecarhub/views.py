"""Project-level views: the health endpoint and the API's documentation page."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView

from sidecarhub.health import check_health

__all__ = ["ApiDocsView", "ApiRedocView", "healthz"]


class ApiDocsView(SpectacularSwaggerView):
    """``/api/v1/docs/``: Swagger UI over the schema; GET and HEAD only.

    Its scripts and styles are served by the hub (``drf_spectacular_sidecar``, settings
    ``SPECTACULAR_SETTINGS["SWAGGER_UI_DIST"] = "SIDECAR"``): the page renders without internet.

    DRF would answer ``OPTIONS`` with the view's metadata rendered through the page's HTML
    template, which cannot render it (a 500); a page needs no OPTIONS, so it is a 405.
    """

    http_method_names = ["get", "head"]


class ApiRedocView(SpectacularRedocView):
    """``/api/v1/redoc/``: ReDoc over the schema, served by the hub like ``ApiDocsView`` (its page
    without drf-spectacular's web fonts, which come from the internet)."""

    http_method_names = ["get", "head"]
    template_name = "api/redoc.html"


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
