"""The URLconf of the admission listener (TLS; ``sidecarhub.admission_wsgi``), and only of it.

/healthz                                  database and broker reachable (probes of the listener)
/admission/v1/clusters/<cluster>/pods     POST AdmissionReview v1 (called by the cluster's apiserver)

The plain listener's URLconf (``sidecarhub.urls``) has no admission route: an AdmissionReview
(pod specs and all) never travels in clear text, and the API and console are not on this one.
"""

from django.urls import path, re_path

from clusters.admission_views import pod_admission_view
from sidecarhub.views import healthz

# The same JSON error pages as the main URLconf (sidecarhub.api.errors; /admission/ is JSON).
handler400 = "sidecarhub.api.errors.error_page_400"
handler404 = "sidecarhub.api.errors.error_page_404"
handler500 = "sidecarhub.api.errors.error_page_500"

# Only names a cluster can have (clusters.models.cluster_name_validator); any other path is the
# project's JSON 404 and never reaches the database (PostgreSQL cannot even compare a NUL).
urlpatterns = [
    path("healthz", healthz, name="healthz"),
    re_path(
        r"^admission/v1/clusters/(?P<cluster>[a-z0-9-]{1,63})/pods$", pod_admission_view, name="pod-admission"
    ),
]
