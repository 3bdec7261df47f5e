"""The admission listener's WSGI app: the TLS port the clusters' apiservers call, served by
``python -m sidecarhub.admission_server`` (granian; see that module for the server model).

Two routes, nothing else (the API and console are on ``sidecarhub.wsgi``; the plain listener has
no admission route, so an AdmissionReview never travels in clear text):

    POST /admission/v1/clusters/<cluster>/pods   one AdmissionReview v1 -> review_pod_admission
    GET  /healthz                                database and broker reachable (probes)

Every pod CREATE in a cluster waits for this app, so it is a plain WSGI callable over the
service function (``clusters.admission.review_pod_admission``), not a Django view: Django's
request and response objects, URL resolver, middleware chain and signals cost more CPU per
admission than the handler itself once the server is lean (issue 17, benchmarks/README.md). What
the Django chain gave this listener is kept here, explicitly: the Host header checked against
``ALLOWED_HOSTS``, ``X-Request-ID`` echoed (or a fresh one), ``X-Content-Type-Options: nosniff``,
the JSON error shape of the API (``{"errors": [...]}``) for every refusal, and database
connections closed after each request as Django's ``request_finished`` does (``CONN_MAX_AGE``).
It never raises: an unexpected error is a JSON 503 (the apiserver then applies the webhook's
failurePolicy) and is logged.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import replace
from http import HTTPStatus
from typing import Any

import django
import orjson

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sidecarhub.settings")
django.setup(set_prefix=False)  # before the imports below, which load models (as Django's wsgi.py)

from django.conf import settings  # noqa: E402
from django.db import close_old_connections  # noqa: E402
from django.http.request import split_domain_port, validate_host  # noqa: E402

from clusters.admission import (  # noqa: E402
    AdmissionAnswer,
    error_answer,
    max_body_bytes,
    review_pod_admission,
    too_large_answer,
)
from sidecarhub.health import check_health  # noqa: E402

log = logging.getLogger("sidecarhub.admission")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]

# Only names a cluster can have (clusters.models.cluster_name_validator); any other path is a
# JSON 404 and never reaches the database (PostgreSQL cannot even compare a NUL).
ADMISSION_PATH = re.compile(r"^/admission/v1/clusters/([a-z0-9-]{1,63})/pods$")
HEALTH_PATH = "/healthz"
# What a caller may send as X-Request-ID (as sidecarhub.middleware accepts it).
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def _status_line(status: int) -> str:
    return f"{status} {HTTPStatus(status).phrase}"


class AdmissionApp:
    """The WSGI callable (see the module docstring). ``close_connections=False`` leaves database
    connections alone, as Django's test client does for its requests (a test's transaction must
    survive the call); a server always closes them."""

    def __init__(self, *, close_connections: bool = True) -> None:
        self._close_connections = close_connections
        allowed = list(settings.ALLOWED_HOSTS)
        if settings.DEBUG and not allowed:  # Django's own default in that case
            allowed = [".localhost", "127.0.0.1", "[::1]"]
        self._allowed_hosts = allowed
        self._host_checked: dict[str, bool] = {}

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            if self._close_connections:
                close_old_connections()  # as Django's request_started: drop a stale or broken one
            answer = self._answer(environ)
        except Exception:
            log.exception("admission listener: unexpected error for %s", environ.get("PATH_INFO"))
            answer = error_answer(503, "sidecarhub could not answer this request (internal error)")
        finally:
            if self._close_connections:
                close_old_connections()  # as Django's request_finished (CONN_MAX_AGE)
        data = orjson.dumps(answer.body)
        given = environ.get("HTTP_X_REQUEST_ID", "").strip()
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        start_response(
            _status_line(answer.status),
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(data))),
                ("X-Content-Type-Options", "nosniff"),
                ("X-Request-ID", request_id),
                *answer.headers,
            ],
        )
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [data]

    def _answer(self, environ: dict[str, Any]) -> AdmissionAnswer:
        if not self._host_allowed(environ):
            return error_answer(400, "bad request: the Host header is not one of ALLOWED_HOSTS")
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "")
        if path == HEALTH_PATH:
            if method not in ("GET", "HEAD"):
                return replace(error_answer(405, "only GET is accepted"), headers=(("Allow", "GET, HEAD"),))
            report = check_health()
            health = {
                "status": "ok" if report.healthy else "unhealthy",
                "database": report.database,
                "broker": report.broker,
            }
            return AdmissionAnswer(200 if report.healthy else 503, health)
        match = ADMISSION_PATH.match(path)
        if match is None:
            return error_answer(404, f"no such endpoint: {path}")
        if method != "POST":
            answer = error_answer(405, "only POST (an AdmissionReview) is accepted")
            return replace(answer, headers=(("Allow", "POST"),))
        limit = max_body_bytes()
        length = environ.get("CONTENT_LENGTH") or ""
        if length:
            if not length.isdigit():
                return error_answer(400, "bad request: Content-Length is not a number")
            if int(length) > limit:
                return too_large_answer(int(length))
            body: bytes = environ["wsgi.input"].read(int(length))
        elif environ.get("wsgi.input_terminated"):
            # Chunked (the server ends the stream): one byte past the cap, which the handler refuses.
            body = environ["wsgi.input"].read(limit + 1)
        else:
            body = b""  # no length, no terminated stream: nothing may be read (PEP 3333)
        return review_pod_admission(match.group(1), body, environ.get("HTTP_AUTHORIZATION", ""))

    def _host_allowed(self, environ: dict[str, Any]) -> bool:
        host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
        known = self._host_checked.get(host)
        if known is None:
            domain, _ = split_domain_port(host)
            known = bool(domain) and validate_host(domain, self._allowed_hosts)
            if len(self._host_checked) < 256:  # a stranger's made-up hosts cannot grow it
                self._host_checked[host] = known
        return known


def warmed_application() -> AdmissionApp:
    """The app after the worker's warm-up (granian's ``--factory`` target: each worker process
    calls it before it accepts a connection; see ``sidecarhub.admission_server``)."""
    from sidecarhub.admission_server import warm_up_and_freeze

    app = AdmissionApp()
    warm_up_and_freeze()
    return app
