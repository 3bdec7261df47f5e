"""The OpenAPI schema generates without warnings and documents every SidecarSet endpoint."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_schema_generates_without_warnings(tmp_path: Path) -> None:
    target = tmp_path / "schema.yaml"
    err = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target), stderr=err)
    assert "Warning" not in err.getvalue() and "Error" not in err.getvalue(), err.getvalue()
    schema = yaml.safe_load(target.read_text())
    paths = schema["paths"]
    expected = {
        "/api/v1/sidecarsets/": {"get", "post"},
        "/api/v1/sidecarsets/{name}/": {"get", "put", "patch", "delete"},
        "/api/v1/sidecarsets/{name}/publish/": {"post"},
        "/api/v1/sidecarsets/{name}/revisions/": {"get"},
        "/api/v1/sidecarsets/{name}/revisions/{number}/": {"get"},
        "/api/v1/sidecarsets/{name}/revisions/diff/": {"get"},
        "/api/v1/sidecarsets/{name}/export/": {"get"},
        "/api/v1/sidecarsets/validate/": {"post"},
        "/api/v1/sidecarsets/import/": {"post"},
    }
    for path, methods in expected.items():
        assert methods <= set(paths[path]), path
    create = paths["/api/v1/sidecarsets/"]["post"]
    assert {"application/json", "application/yaml"} <= set(create["requestBody"]["content"])
    assert (
        "application/yaml"
        in paths["/api/v1/sidecarsets/{name}/export/"]["get"]["responses"]["200"]["content"]
    )
