"""A test client for the admission listener's WSGI app (``sidecarhub.admission_wsgi.AdmissionApp``),
which is not a Django view, so Django's test ``Client`` cannot reach it. The request environ is
Django's own (``RequestFactory``), the call is a plain WSGI call, and the answer looks like the
test client's (``status_code``, ``content``, ``json()``, ``headers``), so tests read the same."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.test import RequestFactory


@dataclass
class AdmissionResponse:
    status_code: int
    content: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.content)

    def __getitem__(self, header: str) -> str:
        return self.headers[header.lower()]


class AdmissionClient:
    """Calls a fresh ``AdmissionApp`` (or the one given) as the admission server would."""

    def __init__(self, app: Any = None) -> None:
        from sidecarhub.admission_wsgi import AdmissionApp

        # As Django's test client: the app leaves the test's database connection (and its
        # transaction) alone.
        self.app = app if app is not None else AdmissionApp(close_connections=False)
        self.factory = RequestFactory()

    def generic(
        self,
        method: str,
        path: str,
        data: bytes | str = b"",
        content_type: str = "application/json",
        **extra: Any,
    ) -> AdmissionResponse:
        environ = self.factory.generic(method, path, data, content_type, **extra).environ
        captured: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]]) -> None:
            captured["status"] = int(status.split(" ", 1)[0])
            captured["headers"] = {name.lower(): value for name, value in headers}

        body = b"".join(self.app(environ, start_response))
        return AdmissionResponse(captured["status"], body, captured["headers"])

    def post(
        self, path: str, data: Any = None, content_type: str = "application/json", **extra: Any
    ) -> AdmissionResponse:
        payload = data if isinstance(data, bytes | str) else json.dumps(data if data is not None else {})
        return self.generic("POST", path, payload, content_type, **extra)

    def get(self, path: str, **extra: Any) -> AdmissionResponse:
        return self.generic("GET", path, b"", **extra)
