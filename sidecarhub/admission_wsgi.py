"""WSGI entry point of the admission listener: ``gunicorn sidecarhub.admission_wsgi:application``
with ``--certfile``/``--keyfile`` (TLS). It serves ``clusters.admission_urls`` only (the webhook and
``/healthz``), whatever ``ROOT_URLCONF`` says; the API and console are on ``sidecarhub.wsgi``.

Its middleware chain is ``settings.ADMISSION_MIDDLEWARE`` (request id, security headers, host
check), not the project's ``MIDDLEWARE``: no sessions, authentication, CSRF, messages or static
files, which the webhook never uses and which cost CPU on every admission (issue 17)."""

import os
from collections.abc import Iterator
from contextlib import contextmanager

import django
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
from django.http import HttpResponseBase

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sidecarhub.settings")

ADMISSION_URLCONF = "clusters.admission_urls"


@contextmanager
def _middleware_setting(paths: list[str]) -> Iterator[None]:
    """``settings.MIDDLEWARE`` is ``paths`` inside the block, then what it was: Django's handler
    reads that one setting to build its chain, and the rest of the process keeps the project's."""
    project = settings.MIDDLEWARE
    settings.MIDDLEWARE = paths
    try:
        yield
    finally:
        settings.MIDDLEWARE = project


class AdmissionWSGIHandler(WSGIHandler):
    """Django's handler with every request resolved against the admission URLconf, through the
    middleware listed in the setting named by ``middleware_setting``."""

    middleware_setting = "ADMISSION_MIDDLEWARE"

    def load_middleware(self, is_async: bool = False) -> None:
        # Called once, when the handler is built (at import, before the worker serves).
        with _middleware_setting(getattr(settings, self.middleware_setting)):
            super().load_middleware(is_async)

    def get_response(self, request: WSGIRequest) -> HttpResponseBase:  # type: ignore[override]  # the stubs type the base on HttpRequest
        request.urlconf = ADMISSION_URLCONF  # Django's documented per-request URLconf
        return super().get_response(request)


def get_admission_wsgi_application() -> AdmissionWSGIHandler:
    """As ``django.core.wsgi.get_wsgi_application``, for the admission listener."""
    django.setup(set_prefix=False)
    return AdmissionWSGIHandler()


application = get_admission_wsgi_application()
