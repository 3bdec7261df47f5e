"""The OpenAPI schema (whole, no warnings) documents every rollouts endpoint with its verbs'
202 / 409 responses (``tests/definitions/test_schema.py`` covers the SidecarSet paths)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_schema_documents_rollouts_without_warnings(tmp_path: Path) -> None:
    target = tmp_path / "schema.yaml"
    err = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target), stderr=err)
    assert "Warning" not in err.getvalue() and "Error" not in err.getvalue(), err.getvalue()
    paths = yaml.safe_load(target.read_text())["paths"]
    expected = {
        "/api/v1/rollouts/": "get",
        "/api/v1/rollouts/{id}/": "get",
        "/api/v1/rollouts/{id}/steps/": "get",
        "/api/v1/rollouts/{id}/preview/": "get",
        "/api/v1/rollouts/{id}/pause/": "post",
        "/api/v1/rollouts/{id}/resume/": "post",
        "/api/v1/rollouts/{id}/abort/": "post",
        "/api/v1/rollouts/{id}/rollback/": "post",
        "/api/v1/rollouts/{id}/restart/": "post",
        "/api/v1/rollouts/{id}/restart-preview/": "get",
        "/api/v1/rollout-steps/": "get",
        "/api/v1/rollout-steps/{id}/": "get",
        "/api/v1/rollout-steps/{id}/approve/": "post",
        "/api/v1/rollout-steps/{id}/deny/": "post",
        "/api/v1/pod-updates/": "get",
        "/api/v1/pod-updates/{id}/": "get",
        "/api/v1/pod-updates/export.csv/": "get",
    }
    for path, method in expected.items():
        assert method in paths.get(path, {}), path
        if method == "post":
            responses = paths[path]["post"]["responses"]
            assert {"202", "403", "409"} <= set(responses), (path, sorted(responses))
    pod_list = paths["/api/v1/pod-updates/"]["get"]
    assert {"cluster", "namespace", "pod", "rollout", "step", "outcome", "since", "until", "format"} <= {
        parameter["name"] for parameter in pod_list["parameters"]
    }
    assert "text/csv" in paths["/api/v1/pod-updates/export.csv/"]["get"]["responses"]["200"]["content"]
    rollout_list = paths["/api/v1/rollouts/"]["get"]
    assert {"sidecarset", "sidecarset_id", "cluster", "cluster_id", "state", "wave"} <= {
        parameter["name"] for parameter in rollout_list["parameters"]
    }
