"""URL routes.

/healthz                 database and broker reachable (unauthenticated)
/admin/                  the web console (Django admin; its first page is the home dashboard,
                         every model at /admin/models/; sidecarhub.console)
/api/v1/                 the REST API (token or session authentication)
/api/v1/schema/          OpenAPI 3 schema; /api/v1/docs/ (Swagger UI) and /api/v1/redoc/ (ReDoc)
                         render it with assets the hub serves itself (no CDN)

The admission webhook is not here: it is served only on the TLS listener, by its own WSGI app
(``sidecarhub.admission_wsgi``, ``python -m sidecarhub.admission_server``); under /admission/ this
one answers 404.
Errors Django answers itself (an unknown URL, a body over its limits, a crash) use the API's error
body under /api/ and /admission/ (sidecarhub.api.errors); a body over the limit is 413 everywhere.
"""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from sidecarhub.api.urls import router
from sidecarhub.views import ApiDocsView, ApiRedocView, healthz

handler400 = "sidecarhub.api.errors.error_page_400"
handler404 = "sidecarhub.api.errors.error_page_404"
handler500 = "sidecarhub.api.errors.error_page_500"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(router.urls)),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/v1/docs/", ApiDocsView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/redoc/", ApiRedocView.as_view(url_name="schema"), name="api-redoc"),
]
