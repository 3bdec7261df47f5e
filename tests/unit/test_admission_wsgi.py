"""The admission listener's WSGI app (sidecarhub/admission_wsgi.py) runs its own, lean middleware
chain (``settings.ADMISSION_MIDDLEWARE``), and the rest of the process keeps the project's."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.utils.module_loading import import_string

from sidecarhub.admission_wsgi import AdmissionWSGIHandler

# What the webhook never uses; each costs CPU and garbage on every admission (issue 17).
HEAVY = {
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
}


def middleware_chain(handler: WSGIHandler) -> list[type]:
    """The middleware classes a request passes through, outermost first (each link of Django's
    chain is the middleware instance wrapped by ``convert_exception_to_response``)."""
    classes = []
    link: Any = vars(handler)["_middleware_chain"]  # set by load_middleware
    while hasattr(link, "__wrapped__"):
        instance = link.__wrapped__
        if not hasattr(instance, "get_response"):
            break  # the handler's own _get_response: the end of the chain
        classes.append(type(instance))
        link = instance.get_response
    return classes


def test_the_admission_app_runs_the_admission_middleware_only() -> None:
    from sidecarhub.admission_wsgi import application  # what gunicorn loads in the admission workers

    expected = [import_string(path) for path in settings.ADMISSION_MIDDLEWARE]
    assert middleware_chain(application) == expected
    assert not {import_string(path) for path in HEAVY} & set(expected)


def test_the_project_middleware_is_untouched() -> None:
    AdmissionWSGIHandler()
    assert set(settings.MIDDLEWARE) >= HEAVY  # restored after the admission chain was built
    full = [import_string(path) for path in settings.MIDDLEWARE]
    assert middleware_chain(WSGIHandler()) == full  # the API and console listener (sidecarhub.wsgi)


def call(environ_extra: dict[str, str]) -> tuple[str, dict[str, str], bytes]:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/admission/v1/clusters/alpha/pods",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8443",
        "HTTP_HOST": "127.0.0.1:8443",
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(b""),
        **environ_extra,
    }
    answer: dict[str, Any] = {}

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        answer["status"], answer["headers"] = status, dict(headers)
        return lambda data: None  # the legacy write() callable: Django never uses it

    body = b"".join(AdmissionWSGIHandler()(environ, start_response))
    return answer["status"], answer["headers"], body


def test_what_the_lean_chain_still_does() -> None:
    # No database needed: a GET is refused by the view itself.
    status, headers, body = call({"HTTP_X_REQUEST_ID": "probe-17"})
    assert status.startswith("405") and b"only POST" in body
    assert headers["X-Request-ID"] == "probe-17"  # RequestIdMiddleware
    assert headers["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware
    assert headers["Content-Length"] == str(len(body))  # CommonMiddleware (keep-alive framing)
    assert "Set-Cookie" not in headers and "Cookie" not in headers.get("Vary", "")
    # CommonMiddleware still checks the Host header against ALLOWED_HOSTS.
    status, _, _ = call({"HTTP_HOST": "attacker.example"})
    assert status.startswith("400")
