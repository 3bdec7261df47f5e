"""The admission listener's WSGI app (sidecarhub/admission_wsgi.py): a plain WSGI callable over
``review_pod_admission``, not a Django view. What Django's middleware gave the listener before is
kept explicitly: Host against ALLOWED_HOSTS, X-Request-ID, nosniff, the API's error shape, and
database connections closed after each request. No database is needed for these."""

from __future__ import annotations

import io
import time
from typing import Any

import pytest
from django.db import connection

from sidecarhub.admission_wsgi import AdmissionApp
from tests.admission_client import AdmissionClient

PATH = "/admission/v1/clusters/alpha/pods"


def call(app: AdmissionApp, **environ_extra: Any) -> tuple[str, dict[str, str], bytes]:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": PATH,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8443",
        "HTTP_HOST": "127.0.0.1:8443",
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(b""),
        **environ_extra,
    }
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"], answer["headers"] = status, dict(headers)

    body = b"".join(app(environ, start_response))
    return answer["status"], answer["headers"], body


def test_what_the_listener_adds_to_every_answer() -> None:
    app = AdmissionApp()
    status, headers, body = call(app, HTTP_X_REQUEST_ID="probe-17")
    assert status == "405 Method Not Allowed" and b"only POST" in body
    assert headers["Allow"] == "POST"
    assert headers["X-Request-ID"] == "probe-17"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Type"] == "application/json"
    assert headers["Content-Length"] == str(len(body))  # keep-alive framing
    assert "Set-Cookie" not in headers
    # A request ID a caller may not send (too long, or smuggling a newline) is replaced.
    for bad in ("x" * 65, "a\nb"):
        _, headers, _ = call(app, HTTP_X_REQUEST_ID=bad)
        assert headers["X-Request-ID"] != bad and len(headers["X-Request-ID"]) == 32


def test_the_host_header_is_checked_against_allowed_hosts(settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["hub.example.com"]
    app = AdmissionApp()
    status, _, body = call(app, HTTP_HOST="attacker.example")
    assert status.startswith("400") and b"ALLOWED_HOSTS" in body
    status, _, _ = call(app, HTTP_HOST="hub.example.com:8443")
    assert status.startswith("405")  # past the Host check


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/", 404),
        ("GET", "/api/v1/clusters/", 404),
        ("GET", "/admin/", 404),
        ("POST", "/admission/v1/clusters/UPPER/pods", 404),
        ("POST", "/admission/v1/clusters/alpha/pods/", 404),
        ("PUT", PATH, 405),
        ("DELETE", "/healthz", 405),
    ],
)
def test_only_the_webhook_and_healthz_are_served(method: str, path: str, status: int) -> None:
    response = AdmissionClient().generic(method, path)
    assert response.status_code == status
    [error] = response.json()["errors"]
    assert error["path"] is None and error["message"]


def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(settings: Any) -> None:
    settings.SIDECARHUB_ADMISSION_MAX_BODY_BYTES = 1000

    class Unreadable(io.BytesIO):
        def read(self, *args: Any) -> bytes:
            raise AssertionError("the body was read")

    status, _, body = call(
        AdmissionApp(), REQUEST_METHOD="POST", CONTENT_LENGTH="5000", **{"wsgi.input": Unreadable()}
    )
    assert status.startswith("413") and b"1000-byte limit" in body
    status, _, body = call(AdmissionApp(), REQUEST_METHOD="POST", CONTENT_LENGTH="12x")
    assert status.startswith("400") and b"Content-Length" in body


def test_a_chunked_body_over_the_limit_is_refused(settings: Any) -> None:
    settings.SIDECARHUB_ADMISSION_MAX_BODY_BYTES = 1000
    chunked = {"wsgi.input": io.BytesIO(b"x" * 5000), "wsgi.input_terminated": True}
    status, _, body = call(AdmissionApp(), REQUEST_METHOD="POST", **chunked)
    assert status.startswith("413") and b"1000-byte limit" in body


def test_an_unexpected_error_is_a_json_503_and_the_connection_is_released(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sidecarhub.admission_wsgi as module

    closed: list[bool] = []
    monkeypatch.setattr(module, "check_health", lambda: 1 / 0)
    monkeypatch.setattr(module, "close_old_connections", lambda: closed.append(True))
    status, headers, body = call(AdmissionApp(), PATH_INFO="/healthz")
    assert status.startswith("503") and b"internal error" in body
    assert headers["Content-Type"] == "application/json"
    assert closed == [True, True]  # before and after, as Django's request signals do


def test_head_answers_headers_only() -> None:
    status, headers, body = call(AdmissionApp(), REQUEST_METHOD="HEAD", PATH_INFO="/nothing")
    assert status.startswith("404") and body == b"" and int(headers["Content-Length"]) > 0


@pytest.mark.django_db(transaction=True)
def test_healthz_reports_the_database_and_the_broker() -> None:
    response = AdmissionClient(AdmissionApp()).get("/healthz")
    assert response.status_code in (200, 503)  # 503 only when the test broker is down
    assert set(response.json()) == {"status", "database", "broker"}
    assert response.json()["database"] == "ok"


@pytest.mark.django_db(transaction=True)
def test_a_connection_past_conn_max_age_is_closed_by_the_next_request() -> None:
    connection.ensure_connection()
    connection.close_at = time.monotonic() - 1  # older than CONN_MAX_AGE
    assert AdmissionClient(AdmissionApp()).get("/nothing").status_code == 404  # no query of its own
    assert connection.connection is None
