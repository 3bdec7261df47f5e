"""Routes of the admission webhook, included at the site root by ``sidecarhub.urls``.

/admission/v1/clusters/<cluster>/pods     POST AdmissionReview v1 (called by the cluster's apiserver)
"""

from django.urls import path

from clusters.admission_views import pod_admission_view

urlpatterns = [
    path("admission/v1/clusters/<str:cluster>/pods", pod_admission_view, name="pod-admission"),
]
