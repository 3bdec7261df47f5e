"""The SidecarSet REST API: contract (401/403/2xx) for every endpoint, bad input, lost updates,
publish, revisions, diff, import (the seed examples included) and export."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from sidecarhub.models import ChangeRecord, SidecarSet, SidecarSetRevision
from sidecarhub.sidecarset import MAX_DOCUMENT_BYTES, read_sidecarset, split_documents
from sidecarhub.sidecarset.documents import MAX_STREAM_BYTES

from .conftest import ALL_SIDECARSET_PERMISSIONS, as_yaml, make_document, make_user

pytestmark = pytest.mark.django_db

BASE = "/api/v1/sidecarsets/"
SEED_FILE = Path(__file__).resolve().parent.parent / "unit" / "sidecarset" / "data" / "seed_examples.yaml"
# The seed examples' validation errors, as established by the core's seed test.
SEED_EXPECTED_ERRORS: dict[int, list[str]] = {
    0: [],
    1: [
        "spec.volumes[0].name: must be a lowercase RFC 1123 label "
        "(a-z, 0-9 and '-', starting and ending with an alphanumeric)",
        "spec.containers[0].shareVolumePolicy.type: must be one of: enabled, disabled",
    ],
    2: ["spec.selector: required", "spec.containers: containers or initContainers must be non-empty"],
    3: ["spec.selector: required", "spec.containers: containers or initContainers must be non-empty"],
    4: [],
}


def counts() -> tuple[int, int]:
    return SidecarSet.objects.count(), SidecarSetRevision.objects.count()


def error_paths(response: Any) -> list[str | None]:
    return [error["path"] for error in response.json()["errors"]]


# --- contract: every endpoint, 401 / 403 / 2xx ----------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    url: str
    permissions: tuple[str, ...]
    ok_status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


ENDPOINTS = [
    Endpoint("list", "get", BASE, ("view_sidecarset",), 200),
    Endpoint(
        "create",
        "post",
        BASE,
        ("add_sidecarset",),
        201,
        {"document": as_yaml(make_document(name="other", app="other"))},
    ),
    Endpoint("retrieve", "get", BASE + "mesh/", ("view_sidecarset",), 200),
    Endpoint(
        "update",
        "put",
        BASE + "mesh/",
        ("change_sidecarset",),
        200,
        {"document": make_document(image="envoy:5")},
        {"HTTP_IF_MATCH": '"3"'},
    ),
    Endpoint(
        "partial_update",
        "patch",
        BASE + "mesh/",
        ("change_sidecarset",),
        200,
        {"owner_team": "x", "version": 3},
    ),
    Endpoint(
        "destroy", "delete", BASE + "mesh/", ("delete_sidecarset",), 204, None, {"HTTP_IF_MATCH": '"3"'}
    ),
    Endpoint("publish", "post", BASE + "mesh/publish/", ("publish_sidecarset",), 201, {"message": "m"}),
    Endpoint("revisions", "get", BASE + "mesh/revisions/", ("view_sidecarset",), 200),
    Endpoint("revision", "get", BASE + "mesh/revisions/1/", ("view_sidecarset",), 200),
    Endpoint("diff", "get", BASE + "mesh/revisions/diff/?from=1&to=2", ("view_sidecarset",), 200),
    Endpoint(
        "validate", "post", BASE + "validate/", ("view_sidecarset",), 200, {"document": make_document()}
    ),
    Endpoint(
        "import",
        "post",
        BASE + "import/",
        ("add_sidecarset", "change_sidecarset"),
        200,
        {"document": as_yaml(make_document(name="imported", app="imported"))},
    ),
    Endpoint("export", "get", BASE + "mesh/export/?version=v1alpha1", ("view_sidecarset",), 200),
]


def call(client: APIClient, endpoint: Endpoint) -> Any:
    kwargs: dict[str, Any] = dict(endpoint.headers)
    if endpoint.body is not None:
        kwargs.update(data=endpoint.body, format="json")
    return getattr(client, endpoint.method)(endpoint.url, **kwargs)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_anonymous_gets_401(endpoint: Endpoint, published_mesh: SidecarSet) -> None:
    before = counts()
    response = call(APIClient(), endpoint)
    assert response.status_code == 401, response.content
    assert counts() == before


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_user_without_the_permission_gets_403(
    endpoint: Endpoint, published_mesh: SidecarSet, client_for: Any
) -> None:
    others = [codename for codename in ALL_SIDECARSET_PERMISSIONS if codename not in endpoint.permissions]
    user = make_user("mallory", *others)
    before = counts()
    response = call(client_for(user), endpoint)
    assert response.status_code == 403, response.content
    assert counts() == before


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_user_with_the_permission_succeeds(
    endpoint: Endpoint, published_mesh: SidecarSet, client_for: Any
) -> None:
    user = make_user("carol", *endpoint.permissions)
    response = call(client_for(user), endpoint)
    assert response.status_code == endpoint.ok_status, response.content


def test_token_and_session_authentication(published_mesh: SidecarSet) -> None:
    user = make_user("dave", "view_sidecarset")
    token = Token.objects.create(user=user)
    client = APIClient()
    assert client.get(BASE, HTTP_AUTHORIZATION="Token wrong").status_code == 401
    assert client.get(BASE, HTTP_AUTHORIZATION=f"Token {token.key}").status_code == 200
    session = APIClient()
    session.force_login(user)
    assert session.get(BASE + "mesh/").status_code == 200


# --- reading ------------------------------------------------------------------------------------


def test_retrieve_shape_and_etag(published_mesh: SidecarSet, client_for: Any, author: User) -> None:
    client = client_for(author)
    response = client.get(BASE + "mesh/")
    body = response.json()
    assert response["ETag"] == '"3"'
    assert (body["name"], body["owner_team"], body["version"], body["current_revision"]) == (
        "mesh",
        "platform",
        3,
        2,
    )
    assert body["has_unpublished_changes"] is True and body["created_by"] == "alice"
    assert body["spec"]["containers"][0]["image"] == "envoy:1.2"
    assert client.get(BASE + "mesh/", HTTP_IF_NONE_MATCH='"3"').status_code == 304
    assert client.get(BASE + "nope/").status_code == 404


def test_list_filters_and_pagination(author: User, client_for: Any) -> None:
    client = client_for(author)
    for index, (team, labels) in enumerate([("a", {"tier": "mesh"}), ("b", {"tier": "log"}), ("a", {})]):
        document = make_document(name=f"s{index}", container=f"c{index}")
        if labels:
            document["metadata"]["labels"] = labels
        assert client.post(BASE, {"document": document, "owner_team": team}, format="json").status_code == 201

    def names(query: str) -> list[str]:
        return [item["name"] for item in client.get(BASE + query).json()["results"]]

    assert names("") == ["s0", "s1", "s2"]
    assert names("?owner_team=a") == ["s0", "s2"]
    assert names("?label=tier=mesh") == ["s0"]
    assert names("?label=tier") == ["s0", "s1"]
    assert names("?name=s1") == ["s1"]
    assert names("?name_contains=S") == ["s0", "s1", "s2"]
    page = client.get(BASE + "?limit=2&offset=2").json()
    assert page["count"] == 3 and [item["name"] for item in page["results"]] == ["s2"]


# --- writing ------------------------------------------------------------------------------------


def test_create_accepts_yaml_json_text_object_and_spec(author: User, client_for: Any) -> None:
    client = client_for(author)
    as_text = client.post(BASE, {"document": as_yaml(make_document(name="a1", app="a1"))}, format="json")
    as_json_text = client.post(
        BASE, {"document": json.dumps(make_document(name="a2", app="a2"))}, format="json"
    )
    as_object = client.post(BASE, {"document": make_document(name="a3", app="a3")}, format="json")
    spec = make_document(app="a4")["spec"]
    as_spec = client.post(BASE, {"name": "a4", "labels": {"k": "v"}, "spec": spec}, format="json")
    raw_yaml = client.post(
        BASE, data=as_yaml(make_document(name="a5", app="a5")), content_type="application/yaml"
    )
    v1alpha1 = make_document(name="a6", app="a6") | {"apiVersion": "apps.kruise.io/v1alpha1"}
    v1alpha1["spec"]["namespace"] = "ns-1"
    as_v1alpha1 = client.post(BASE, {"document": v1alpha1}, format="json")
    for response in (as_text, as_json_text, as_object, as_spec, raw_yaml, as_v1alpha1):
        assert response.status_code == 201, response.content
    assert SidecarSet.objects.get(name="a4").labels == {"k": "v"}
    a6 = as_v1alpha1.json()["spec"]
    assert a6["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "ns-1"}}
    assert ChangeRecord.objects.filter(actor=author).count() == 6


@pytest.mark.parametrize(
    ("body", "paths"),
    [
        ({"document": "kind: [unclosed"}, ["<document>"]),
        ({"document": make_document() | {"kind": "Deployment"}}, ["kind"]),
        ({"document": make_document() | {"apiVersion": "apps.kruise.io/v2"}}, ["apiVersion"]),
        (
            {"document": make_document() | {"spec": {**make_document()["spec"], "colour": "red"}}},
            ["spec.colour"],
        ),
        ({"document": make_document() | {"spec": {"containers": [{"name": "x", "image": ""}]}}}, None),
        ({"document": 42}, ["<document>"]),
        ({"document": ["a"]}, ["<document>"]),
        ({"spec": "not an object", "name": "x"}, ["spec"]),
        ({"spec": make_document()["spec"], "name": "x", "labels": ["not", "a", "map"]}, ["metadata.labels"]),
        ({}, ["document"]),
        ({"document": make_document(), "spec": {}}, ["document"]),
        ({"document": make_document(), "owner_team": "t" * 101}, ["owner_team"]),
        ({"document": make_document() | {"metadata": {"name": "Bad_Name"}}}, ["metadata.name"]),
    ],
    ids=[
        "malformed-yaml",
        "wrong-kind",
        "wrong-apiVersion",
        "unknown-field",
        "invalid-rules",
        "number",
        "list",
        "spec-not-object",
        "labels-not-map",
        "empty",
        "document-and-spec",
        "owner-team-too-long",
        "bad-name",
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_saves_nothing(
    body: dict[str, Any], paths: list[str] | None, author: User, client_for: Any
) -> None:
    response = client_for(author).post(BASE, body, format="json")
    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert errors and all(error["message"] for error in errors)
    if paths is not None:
        assert [error["path"] for error in errors][: len(paths)] == paths
    else:
        assert {"spec.selector", "spec.containers[0].image"} <= {error["path"] for error in errors}
    assert counts() == (0, 0) and ChangeRecord.objects.count() == 0


def test_malformed_json_body_is_a_400(author: User, client_for: Any) -> None:
    response = client_for(author).post(BASE, data="{not json", content_type="application/json")
    assert response.status_code == 400 and error_paths(response) == [None]


def test_oversized_document_is_refused(author: User, client_for: Any) -> None:
    document = make_document()
    document["metadata"]["annotations"] = {"example.com/padding": "x" * MAX_DOCUMENT_BYTES}
    response = client_for(author).post(BASE, {"document": document}, format="json")
    assert response.status_code == 400
    assert error_paths(response) == ["<document>"] and "limit" in response.json()["errors"][0]["message"]
    assert counts() == (0, 0)


def test_oversized_body_is_a_413(author: User, client_for: Any) -> None:
    body = json.dumps({"document": "x" * (3 * MAX_DOCUMENT_BYTES)})
    response = client_for(author).post(BASE, data=body, content_type="application/json")
    assert response.status_code == 413 and "limit" in response.json()["errors"][0]["message"]
    stream = "# padding\n" * (MAX_STREAM_BYTES // 10 + MAX_DOCUMENT_BYTES // 10 + 10)
    response = client_for(author).post(BASE + "import/", data=stream, content_type="application/yaml")
    assert response.status_code == 413
    assert counts() == (0, 0)


def test_unsupported_media_type_is_a_415(author: User, client_for: Any) -> None:
    response = client_for(author).post(BASE, data="a=b", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415 and response.json()["errors"][0]["message"]


def test_duplicate_create_is_a_409(published_mesh: SidecarSet, author: User, client_for: Any) -> None:
    response = client_for(author).post(BASE, {"document": make_document()}, format="json")
    assert response.status_code == 409 and error_paths(response) == ["metadata.name"]


def test_conflict_with_another_sidecarset_names_the_field(
    published_mesh: SidecarSet, author: User, client_for: Any
) -> None:
    response = client_for(author).post(BASE, {"document": make_document(name="mesh2")}, format="json")
    assert response.status_code == 400 and error_paths(response) == ["spec.containers[0].name"]
    assert "'mesh'" in response.json()["errors"][0]["message"]


def test_update_requires_if_match_and_refuses_lost_updates(
    published_mesh: SidecarSet, author: User, reviewer: User, client_for: Any
) -> None:
    alice, bob = client_for(author), client_for(reviewer)
    etag = alice.get(BASE + "mesh/")["ETag"]
    body = {"document": make_document(image="envoy:alice")}
    missing = alice.put(BASE + "mesh/", body, format="json")
    assert missing.status_code == 428 and error_paths(missing) == ["If-Match"]
    first = bob.put(
        BASE + "mesh/", {"document": make_document(image="envoy:bob")}, format="json", HTTP_IF_MATCH=etag
    )
    assert first.status_code == 200 and first["ETag"] == '"4"'
    lost = alice.put(BASE + "mesh/", body, format="json", HTTP_IF_MATCH=etag)
    assert lost.status_code == 412 and lost["ETag"] == '"4"' and error_paths(lost) == ["If-Match"]
    stale_body = alice.patch(BASE + "mesh/", {"owner_team": "x", "version": 3}, format="json")
    assert stale_body.status_code == 412
    disagree = alice.patch(
        BASE + "mesh/", {"owner_team": "x", "version": 4}, format="json", HTTP_IF_MATCH='"3"'
    )
    assert disagree.status_code == 412
    garbage = alice.patch(BASE + "mesh/", {"owner_team": "x"}, format="json", HTTP_IF_MATCH="v4")
    assert garbage.status_code == 412
    assert SidecarSet.objects.get().spec["containers"][0]["image"] == "envoy:bob"
    forced = alice.put(BASE + "mesh/", body, format="json", HTTP_IF_MATCH="*")
    assert forced.status_code == 200 and forced.json()["version"] == 5
    renamed = alice.put(
        BASE + "mesh/", {"document": make_document(name="other")}, format="json", HTTP_IF_MATCH='"5"'
    )
    assert renamed.status_code == 400 and error_paths(renamed) == ["metadata.name"]


def test_patch_changes_owner_team_only(published_mesh: SidecarSet, author: User, client_for: Any) -> None:
    response = client_for(author).patch(
        BASE + "mesh/", {"owner_team": "sre"}, format="json", HTTP_IF_MATCH='"3"'
    )
    assert response.status_code == 200
    assert (response.json()["owner_team"], response.json()["version"]) == ("sre", 4)
    assert response.json()["spec"] == published_mesh.spec


def test_delete_requires_if_match(published_mesh: SidecarSet, author: User, client_for: Any) -> None:
    client = client_for(author)
    assert client.delete(BASE + "mesh/").status_code == 428
    assert client.delete(BASE + "mesh/", HTTP_IF_MATCH='"1"').status_code == 412
    assert client.delete(BASE + "mesh/", HTTP_IF_MATCH='"3"').status_code == 204
    assert counts() == (0, 0)
    assert ChangeRecord.objects.filter(action="delete").count() == 1


# --- publish, revisions, diff --------------------------------------------------------------------


def test_publish_and_revisions(published_mesh: SidecarSet, author: User, client_for: Any) -> None:
    client = client_for(author)
    published = client.post(BASE + "mesh/publish/", {"message": "third"}, format="json")
    assert published.status_code == 201
    body = published.json()
    assert (body["number"], body["name"], body["message"], body["author"]) == (3, "mesh-3", "third", "alice")
    assert body["document"]["spec"]["containers"][0]["image"] == "envoy:1.2"
    assert len(body["revision_hash"]) == 64
    again = client.post(BASE + "mesh/publish/", {}, format="json")
    assert again.status_code == 409 and "nothing to publish" in again.json()["errors"][0]["message"]
    assert client.post(BASE + "mesh/publish/", {}, format="json", HTTP_IF_MATCH='"1"').status_code == 412
    listing = client.get(BASE + "mesh/revisions/").json()
    assert listing["count"] == 3 and [r["number"] for r in listing["results"]] == [3, 2, 1]
    assert "document" not in listing["results"][0]
    one = client.get(BASE + "mesh/revisions/1/").json()
    assert one["document"]["spec"]["containers"][0]["image"] == "envoy:1.0"
    assert client.get(BASE + "mesh/revisions/9/").status_code == 404
    assert client.get(BASE + "nope/revisions/").status_code == 404


def test_publish_of_a_now_conflicting_definition_is_a_400(author: User, client_for: Any) -> None:
    client = client_for(author)
    canary = make_document(name="canary", updateStrategy={"type": "NotUpdate"})
    canary["metadata"]["annotations"] = {
        "apps.kruise.io/sidecarset-canary": "true",
        "apps.kruise.io/sidecarset-base": "base",
    }
    client.post(BASE, {"document": make_document(name="base", container="b")}, format="json")
    assert client.post(BASE, {"document": canary}, format="json").status_code == 201
    base = SidecarSet.objects.get(name="base")
    assert client.delete(BASE + "base/", HTTP_IF_MATCH=f'"{base.version}"').status_code == 204
    response = client.post(BASE + "canary/publish/", {}, format="json")
    assert response.status_code == 400
    assert error_paths(response) == ["metadata.annotations[apps.kruise.io/sidecarset-base]"]
    assert SidecarSetRevision.objects.count() == 0


def test_diff(published_mesh: SidecarSet, author: User, client_for: Any) -> None:
    client = client_for(author)
    body = client.get(BASE + "mesh/revisions/diff/?from=1&to=2").json()
    assert (body["from_number"], body["to_number"], body["change_kind"]) == (1, 2, "images_only")
    assert body["changed_paths"] == ["spec.containers[0].image"]
    assert "+    image: envoy:1.1" in body["unified_diff"]
    missing = client.get(BASE + "mesh/revisions/diff/?from=1")
    assert missing.status_code == 400 and error_paths(missing) == ["to"]
    assert client.get(BASE + "mesh/revisions/diff/?from=a&to=2").status_code == 400
    assert client.get(BASE + "mesh/revisions/diff/?from=1&to=7").status_code == 404


# --- validate, import, export --------------------------------------------------------------------


def test_validate_is_a_dry_run_returning_every_error(
    published_mesh: SidecarSet, author: User, client_for: Any
) -> None:
    client = client_for(author)
    document = make_document(name="fresh", app="fresh")
    document["spec"]["containers"][0]["image"] = ""
    del document["spec"]["selector"]
    before = (counts(), ChangeRecord.objects.count())
    response = client.post(BASE + "validate/", {"document": document}, format="json")
    assert response.status_code == 200
    assert response.json() == {
        "valid": False,
        "errors": [
            {"path": "spec.selector", "message": "required"},
            {"path": "spec.containers[0].image", "message": "required"},
        ],
    }
    assert client.post(
        BASE + "validate/", {"document": make_document(name="fresh", app="fresh")}, format="json"
    ).json() == {
        "valid": True,
        "errors": [],
    }
    # The stored name is validated as an update (Kruise's UPDATE rules).
    grown = make_document()
    grown["spec"]["containers"].append({"name": "new", "image": "new:1"})
    update_check = client.post(
        BASE + "validate/", data=as_yaml(grown), content_type="application/yaml"
    ).json()
    assert [error["path"] for error in update_check["errors"]] == ["spec.containers[1].name"]
    assert (counts(), ChangeRecord.objects.count()) == before


def test_import_endpoint_is_all_or_nothing(author: User, client_for: Any) -> None:
    client = client_for(author)
    bad = make_document(name="bad", app="bad")
    bad["kind"] = "Pod"
    stream = as_yaml(make_document(name="good"), bad)
    response = client.post(BASE + "import/", data=stream, content_type="application/yaml")
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {
            "document": 1,
            "line": split_documents(stream)[1].line,
            "path": "kind",
            "message": response.json()["errors"][0]["message"],
        }
    ]
    assert counts() == (0, 0) and ChangeRecord.objects.count() == 0
    ok = client.post(
        BASE + "import/", {"document": as_yaml(make_document(name="good")), "owner_team": "t"}, format="json"
    )
    assert ok.status_code == 200
    assert ok.json() == {
        "results": [{"document": 0, "name": "good", "outcome": "created", "changed_paths": [], "version": 1}]
    }
    changed = client.post(
        BASE + "import/",
        data=as_yaml(make_document(name="good", image="envoy:2")),
        content_type="application/yaml",
    )
    assert changed.json()["results"][0] | {"version": None} == {
        "document": 0,
        "name": "good",
        "outcome": "configured",
        "changed_paths": ["spec.containers[0].image"],
        "version": None,
    }


@pytest.mark.parametrize("index", sorted(SEED_EXPECTED_ERRORS))
def test_every_seed_example_goes_through_the_import_endpoint(
    index: int, author: User, client_for: Any
) -> None:
    seed_text = SEED_FILE.read_text(encoding="utf-8")
    document = split_documents(seed_text)[index].data
    response = client_for(author).post(
        BASE + "import/", data=yaml.safe_dump(document, sort_keys=False), content_type="application/yaml"
    )
    expected = SEED_EXPECTED_ERRORS[index]
    if expected:
        assert response.status_code == 400
        errors = response.json()["errors"]
        assert [f"{error['path']}: {error['message']}" for error in errors] == expected
        assert {error["document"] for error in errors} == {0}
        assert counts() == (0, 0)
    else:
        assert response.status_code == 200, response.content
        assert response.json()["results"][0]["outcome"] == "created"
        assert SidecarSet.objects.get().to_core() == read_sidecarset(document)[0]


def test_the_whole_seed_file_is_refused_as_one_import(author: User, client_for: Any) -> None:
    response = client_for(author).post(
        BASE + "import/", data=SEED_FILE.read_text(encoding="utf-8"), content_type="application/yaml"
    )
    assert response.status_code == 400
    # Examples 1-3 reuse example 0's name and are invalid on their own too; 0 and 4 are valid.
    errors = response.json()["errors"]
    assert {error["document"] for error in errors} == {1, 2, 3}
    paths = [error["path"] for error in errors if error["document"] == 2]
    assert paths == ["metadata.name", "spec.selector", "spec.containers"]
    assert counts() == (0, 0)


@pytest.mark.parametrize("version", ["v1alpha1", "v1beta1"])
def test_export_round_trips_through_import(
    version: str, published_mesh: SidecarSet, author: User, client_for: Any
) -> None:
    client = client_for(author)
    response = client.get(BASE + f"mesh/export/?version={version}")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/yaml")
    text = response.content.decode()
    assert f"apiVersion: apps.kruise.io/{version}" in text
    again = client.post(BASE + "import/", data=text, content_type="application/yaml")
    assert again.json()["results"][0]["outcome"] == "unchanged"
    old = client.get(BASE + "mesh/export/?revision=1").content.decode()
    assert "image: envoy:1.0" in old
    bad = client.get(BASE + "mesh/export/?version=v2")
    assert bad.status_code == 400 and "version" in bad.content.decode()
    assert client.get(BASE + "nope/export/").status_code == 404
    assert client.get(BASE + "mesh/export/?revision=9").status_code == 404


def test_request_id_is_recorded(author: User, client_for: Any) -> None:
    client_for(author).post(BASE, {"document": make_document()}, format="json", HTTP_X_REQUEST_ID="trace-42")
    assert ChangeRecord.objects.get().request_id == "trace-42"


def test_list_query_count_is_constant(
    author: User, client_for: Any, django_assert_max_num_queries: Callable[..., Any]
) -> None:
    for index in range(5):
        document = make_document(name=f"s{index}", container=f"c{index}")
        client_for(author).post(BASE, {"document": document}, format="json")
        client_for(author).post(BASE + f"s{index}/publish/", {}, format="json")
    with django_assert_max_num_queries(6):
        assert len(client_for(author).get(BASE).json()["results"]) == 5
