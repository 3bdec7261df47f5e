"""The admission view: HTTP in, ``clusters.admission.review_pod_admission`` out.

Outside DRF (the caller is a cluster's apiserver, not a user: ``clusters.admission_auth`` checks
its webhook token), CSRF-exempt, POST only. The body is read with a size cap before anything is
parsed; every answer is JSON. Served only on the TLS listener (``sidecarhub.admission_wsgi``).
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from clusters.admission import max_body_bytes, review_pod_admission, too_large_answer

__all__ = ["pod_admission_view"]


@csrf_exempt
def pod_admission_view(request: HttpRequest, cluster: str) -> JsonResponse:
    """``POST /admission/v1/clusters/<cluster>/pods``: one AdmissionReview v1."""
    if request.method != "POST":
        response = JsonResponse(
            {"errors": [{"path": None, "message": "only POST (an AdmissionReview) is accepted"}]},
            status=405,
        )
        response["Allow"] = "POST"
        return response
    limit = max_body_bytes()
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        answer = too_large_answer(declared)
        return JsonResponse(answer.body, status=answer.status)
    # request.read, not request.body: the cap is ours (DATA_UPLOAD_MAX_MEMORY_SIZE is smaller).
    body = request.read(limit + 1)
    answer = review_pod_admission(cluster, body, request.headers.get("Authorization", ""))
    response = JsonResponse(answer.body, status=answer.status)
    for header, value in answer.headers:
        response[header] = value
    return response
