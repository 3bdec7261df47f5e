"""The one API router; each app registers its viewsets here (URLs in comments beside them)."""

from rest_framework.routers import DefaultRouter

router = DefaultRouter()

# --- SidecarSet definitions (sidecarhub.api.views) ----------------------------------------------
# /api/v1/sidecarsets/                                   GET list, POST create
#     list filters: ?name= ?name_contains= ?owner_team= ?label=key=value,key
# /api/v1/sidecarsets/validate/                          POST dry run: every error with its field path
# /api/v1/sidecarsets/import/                            POST multi-document Kruise YAML, all or nothing
# /api/v1/sidecarsets/{name}/                            GET (ETag), PUT / PATCH / DELETE (If-Match)
# /api/v1/sidecarsets/{name}/publish/                    POST: a new immutable revision
# /api/v1/sidecarsets/{name}/revisions/                  GET revisions, newest first
# /api/v1/sidecarsets/{name}/revisions/{number}/         GET one revision with its document
# /api/v1/sidecarsets/{name}/revisions/diff/?from=&to=   GET unified YAML diff + change kind
# /api/v1/sidecarsets/{name}/export/?version=v1alpha1|v1beta1[&revision=N]   GET Kruise YAML
from sidecarhub.api.views import SidecarSetViewSet  # noqa: E402

router.register("sidecarsets", SidecarSetViewSet, basename="sidecarset")
