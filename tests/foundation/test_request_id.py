"""Every web response carries a request ID: the caller's when it is well-formed, else a fresh one."""

from __future__ import annotations

import pytest
from django.test import Client


@pytest.mark.django_db
def test_a_well_formed_request_id_is_echoed(client: Client) -> None:
    response = client.get("/healthz", HTTP_X_REQUEST_ID="deploy-42.step:1")
    assert response["X-Request-ID"] == "deploy-42.step:1"


@pytest.mark.django_db
@pytest.mark.parametrize("given", ["", "has space", "x" * 65, "new\nline"])
def test_anything_else_gets_a_fresh_id(client: Client, given: str) -> None:
    first = client.get("/healthz", HTTP_X_REQUEST_ID=given)["X-Request-ID"]
    second = client.get("/healthz", HTTP_X_REQUEST_ID=given)["X-Request-ID"]
    assert first != given and len(first) == 32
    assert first != second
