"""Routes of the admission webhook, included at the site root by ``sidecarhub.urls``.

/admission/v1/clusters/<cluster>/pods     POST AdmissionReview v1 (called by the cluster's apiserver)
"""

from django.urls import re_path

from clusters.admission_views import pod_admission_view

# Only names a cluster can have (clusters.models.cluster_name_validator); any other path is the
# project's JSON 404 and never reaches the database (PostgreSQL cannot even compare a NUL).
urlpatterns = [
    re_path(
        r"^admission/v1/clusters/(?P<cluster>[a-z0-9-]{1,63})/pods$", pod_admission_view, name="pod-admission"
    ),
]
