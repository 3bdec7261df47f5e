"""WSGI entry point of the admission listener: ``gunicorn sidecarhub.admission_wsgi:application``
with ``--certfile``/``--keyfile`` (TLS). It serves ``clusters.admission_urls`` only (the webhook and
``/healthz``), whatever ``ROOT_URLCONF`` says; the API and console are on ``sidecarhub.wsgi``."""

import os

import django
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
from django.http import HttpResponseBase

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sidecarhub.settings")

ADMISSION_URLCONF = "clusters.admission_urls"


class AdmissionWSGIHandler(WSGIHandler):
    """Django's handler with every request resolved against the admission URLconf."""

    def get_response(self, request: WSGIRequest) -> HttpResponseBase:  # type: ignore[override]  # the stubs type the base on HttpRequest
        request.urlconf = ADMISSION_URLCONF  # Django's documented per-request URLconf
        return super().get_response(request)


def get_admission_wsgi_application() -> AdmissionWSGIHandler:
    """As ``django.core.wsgi.get_wsgi_application``, for the admission listener."""
    django.setup(set_prefix=False)
    return AdmissionWSGIHandler()


application = get_admission_wsgi_application()
