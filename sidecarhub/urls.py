"""URL routes.

/healthz                 database and broker reachable (unauthenticated)
/admin/                  the web console (Django admin)
/api/v1/                 the REST API (token or session authentication)
/api/v1/schema/          OpenAPI 3 schema; /api/v1/docs/ renders it
/admission/v1/           the pod admission webhook (clusters.admission_urls; called by apiservers)
"""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from sidecarhub.api.urls import router
from sidecarhub.views import healthz

admin.site.site_header = "sidecarhub"
admin.site.site_title = "sidecarhub"
admin.site.index_title = "SidecarSets, clusters and rollouts"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(router.urls)),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/v1/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("", include("clusters.admission_urls")),
]
