"""Rollout settings are part of the definition (issue 15, durable releases): a bad
``rollouts.sidecarhub.io/*`` annotation (the rollout policy's import format, issue 16 item 8) is a
400 naming it on create, update, import, validate and publish, and nothing is stored; before
this, publish answered 201 and the release was lost. The field itself: test_rollout_policy.py."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from sidecarhub.models import ChangeRecord, SidecarSet, SidecarSetRevision

from .conftest import as_yaml, make_document

pytestmark = pytest.mark.django_db

BASE = "/api/v1/sidecarsets/"
THRESHOLD = "rollouts.sidecarhub.io/failure-threshold"
STEPS = "rollouts.sidecarhub.io/steps"
THRESHOLD_PATH = f"metadata.annotations[{THRESHOLD}]"
STEPS_PATH = f"metadata.annotations[{STEPS}]"


def annotated(annotations: dict[str, str], **changes: Any) -> dict[str, Any]:
    document = make_document(**changes)
    document["metadata"]["annotations"] = annotations
    return document


def state() -> tuple[list[tuple[str, int, Any]], int, int]:
    """What is stored: every SidecarSet (name, version, annotations), revisions, change rows."""
    rows = [(row.name, row.version, row.annotations) for row in SidecarSet.objects.order_by("name")]
    return rows, SidecarSetRevision.objects.count(), ChangeRecord.objects.count()


def paths(response: Any) -> list[str]:
    return [error["path"] for error in response.json()["errors"]]


def test_create_refuses_a_bad_annotation(author: User, client_for: Any) -> None:
    client = client_for(author)
    response = client.post(BASE, {"document": annotated({THRESHOLD: "x"})}, format="json")
    assert response.status_code == 400, response.content
    assert paths(response) == [THRESHOLD_PATH]
    assert "'x' is not a whole number" in response.json()["errors"][0]["message"]
    canary = annotated({STEPS: "canary,100%"})
    response = client.post(BASE, {"document": canary}, format="json")
    assert response.status_code == 400 and paths(response) == [STEPS_PATH]
    assert "updateStrategy.selector" in response.json()["errors"][0]["message"]
    assert state() == ([], 0, 0)
    with_selector = annotated(
        {STEPS: "canary,100%", THRESHOLD: "2"}, updateStrategy={"selector": {"matchLabels": {"c": "1"}}}
    )
    assert client.post(BASE, {"document": with_selector}, format="json").status_code == 201


def test_update_refuses_a_bad_annotation(author: User, client_for: Any) -> None:
    client = client_for(author)
    assert client.post(BASE, {"document": make_document()}, format="json").status_code == 201
    before = state()
    response = client.put(
        BASE + "mesh/",
        {"document": annotated({THRESHOLD: "x", STEPS: "50%,half"})},
        format="json",
        HTTP_IF_MATCH='"1"',
    )
    assert response.status_code == 400, response.content
    assert sorted(paths(response)) == sorted([THRESHOLD_PATH, STEPS_PATH])
    assert state() == before


def test_import_refuses_a_bad_annotation_and_writes_nothing(author: User, client_for: Any) -> None:
    client = client_for(author)
    stream = as_yaml(make_document(name="good"), annotated({THRESHOLD: "x"}, app="other"))
    response = client.post(BASE + "import/", data=stream, content_type="application/yaml")
    assert response.status_code == 400, response.content
    [error] = response.json()["errors"]
    assert (error["document"], error["path"]) == (1, THRESHOLD_PATH)
    assert state() == ([], 0, 0)


def test_validate_reports_a_bad_annotation(author: User, client_for: Any) -> None:
    response = client_for(author).post(
        BASE + "validate/", {"document": annotated({THRESHOLD: "x"})}, format="json"
    )
    assert response.status_code == 200 and paths(response) == [THRESHOLD_PATH]


def test_publish_refuses_a_definition_stored_before_the_rule(author: User, client_for: Any) -> None:
    """A definition saved before annotations were validated cannot be published any more: the
    400 names the annotation, and no revision (hence no release to lose) is made."""
    client = client_for(author)
    assert client.post(BASE, {"document": make_document()}, format="json").status_code == 201
    assert client.post(BASE + "mesh/publish/", {}, format="json").status_code == 201
    SidecarSet.objects.filter(name="mesh").update(annotations={THRESHOLD: "x"})
    before = state()
    response = client.post(BASE + "mesh/publish/", {}, format="json")
    assert response.status_code == 400, response.content
    assert paths(response) == [THRESHOLD_PATH]
    assert state() == before
