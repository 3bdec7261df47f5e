"""Property test (issue 15): no generated request makes the API or the admission endpoint answer 5xx.

Every operation of the OpenAPI schema is called with generated path values (the seeded objects'
names and ids, or anything), format suffixes, query strings (the operation's own parameters and
unknown ones, with huge, negative, NUL-bearing and non-numeric values) and bodies (JSON built
from the operation's request schema, Kruise documents with one field replaced by anything, raw
bytes under JSON, YAML or form content types). The admission endpoint gets AdmissionReviews whose
pod has one field replaced, and garbage. Each answer must be below 500, and every 4xx of the API
must carry the API's error body.

Examples per test: 300 by default, ``SIDECARHUB_FUZZ_EXAMPLES`` to change it (e.g. 10000 for a
long run; see README.md "Fuzzing the API").
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from django.contrib.auth.models import User
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from clusters.admission import invalidate_active_revisions
from clusters.choices import CredentialKind
from clusters.crypto import encrypt_secret
from clusters.models import Cluster, SidecarSetTarget
from sidecarhub import services
from tests.admission_client import AdmissionClient

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("SIDECARHUB_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
METHODS = ("get", "post", "put", "patch", "delete", "options", "head")
HEADERS: list[dict[str, str]] = [
    {},
    {"HTTP_IF_MATCH": '"1"'},
    {"HTTP_IF_MATCH": "*"},
    {"HTTP_IF_MATCH": "garbage"},
    {"HTTP_ACCEPT": "application/yaml"},
    {"HTTP_ACCEPT": "text/csv"},
    {"HTTP_ACCEPT": "text/html"},
]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # template, e.g. /api/v1/sidecarsets/{name}/publish/
    path_names: tuple[str, ...]
    query_names: tuple[str, ...]
    body_properties: tuple[str, ...]


def _operations() -> list[Operation]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema.get("components", {}).get("schemas", {})
    operations: list[Operation] = []
    for path, items in sorted(schema["paths"].items()):
        for method, operation in items.items():
            parameters = operation.get("parameters", [])
            properties: set[str] = set()
            for content in operation.get("requestBody", {}).get("content", {}).values():
                ref = content.get("schema", {}).get("$ref", "")
                properties.update(components.get(ref.rsplit("/", 1)[-1], {}).get("properties", {}))
            operations.append(
                Operation(
                    method=method,
                    path=path,
                    path_names=tuple(p["name"] for p in parameters if p["in"] == "path"),
                    query_names=tuple(p["name"] for p in parameters if p["in"] == "query"),
                    body_properties=tuple(sorted(properties)),
                )
            )
    return operations


OPERATIONS = _operations()

# --- values ---------------------------------------------------------------------------------------

NASTY = [
    "",
    "0",
    "-1",
    "1.5",
    "1e400",
    "NaN",
    "true",
    "null",
    "\x00",
    "a\x00b",
    "9" * 25,
    "-" + "9" * 25,
    "%",
    "../..",
    "a,b=c",
    "=",
    "ü" * 3,
    "x" * 300,
    "2024-01-01T00:00:00Z",
    "v1alpha1",
    "canary,50%,100%",
]
texts = st.one_of(st.sampled_from(NASTY), st.text(max_size=12))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
    max_leaves=8,
)


def _valid_document(name: str = "fuzzed") -> dict[str, Any]:
    return {
        "apiVersion": "apps.kruise.io/v1beta1",
        "kind": "SidecarSet",
        "metadata": {"name": name, "labels": {"team": "mesh"}},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "containers": [{"name": "envoy", "image": "envoy:1.0"}],
            "updateStrategy": {"maxUnavailable": 1},
        },
    }


def _valid_pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"}, "annotations": {}},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}], "imagePullSecrets": []},
    }


DOCUMENT_PATHS = [
    ("apiVersion",),
    ("kind",),
    ("metadata",),
    ("metadata", "name"),
    ("metadata", "labels"),
    ("metadata", "annotations"),
    ("spec",),
    ("spec", "selector"),
    ("spec", "namespace"),
    ("spec", "namespaceSelector"),
    ("spec", "containers"),
    ("spec", "containers", 0),
    ("spec", "containers", 0, "image"),
    ("spec", "containers", 0, "name"),
    ("spec", "containers", 0, "upgradeStrategy"),
    ("spec", "initContainers"),
    ("spec", "volumes"),
    ("spec", "updateStrategy"),
    ("spec", "updateStrategy", "partition"),
    ("spec", "updateStrategy", "maxUnavailable"),
    ("spec", "injectionStrategy"),
    ("spec", "patchPodMetadata"),
    ("spec", "imagePullSecrets"),
]
POD_PATHS = [
    ("metadata",),
    ("metadata", "labels"),
    ("metadata", "annotations"),
    ("metadata", "namespace"),
    ("metadata", "ownerReferences"),
    ("spec",),
    ("spec", "containers"),
    ("spec", "containers", 0),
    ("spec", "containers", 0, "env"),
    ("spec", "containers", 0, "volumeMounts"),
    ("spec", "containers", 0, "resources"),
    ("spec", "initContainers"),
    ("spec", "volumes"),
    ("spec", "imagePullSecrets"),
]


def _replace(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A copy of ``data`` with ``value`` at ``path`` (containers on the way created as needed)."""
    data = json.loads(json.dumps(data))
    node: Any = data
    for key in path[:-1]:
        child = node[key] if isinstance(node, list) else node.setdefault(key, {})
        node = child
    if isinstance(node, list):
        node[path[-1]] = value
    else:
        node[path[-1]] = value
    return data


mutated_documents = st.builds(
    _replace, st.just(_valid_document()), st.sampled_from(DOCUMENT_PATHS), json_values
)


@st.composite
def documents(draw: st.DrawFn) -> Any:
    """A Kruise document as data or text: valid, or with one field replaced by anything."""
    data = draw(st.one_of(st.just(_valid_document()), mutated_documents))
    form = draw(st.sampled_from(["data", "yaml", "json"]))
    if form == "yaml":
        return yaml.safe_dump(data)
    if form == "json":
        return json.dumps(data)
    return data


# --- requests -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    """The objects every example can name (so requests reach past the 404)."""

    path_values: dict[str, list[str]]


@pytest.fixture
def seeded(admin_user: User) -> Seeded:
    cluster = Cluster.objects.create(
        name="alpha",
        api_server_url="https://127.0.0.1:1",
        credential_kind=CredentialKind.TOKEN,
        credentials_ciphertext="not-used",
        webhook_token_ciphertext=encrypt_secret(WEBHOOK_TOKEN),
    )
    services.create_sidecarset(_valid_document("mesh"), actor=admin_user)
    services.publish_sidecarset("mesh", actor=admin_user)
    sidecarset = services.update_sidecarset(
        "mesh",
        source=_replace(_valid_document("mesh"), ("spec", "containers", 0, "image"), "envoy:2"),
        actor=admin_user,
        expected_version=None,
    )
    target = SidecarSetTarget.objects.create(sidecarset=sidecarset, cluster=cluster, wave=0)
    return Seeded(
        path_values={
            "name": ["mesh", "alpha"],
            "id": ["1", str(target.pk)],
            "number": ["1", "2"],
        }
    )


@pytest.fixture
def api(admin_user: User) -> APIClient:
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(admin_user)
    return client


@st.composite
def api_requests(draw: st.DrawFn, seeded: Seeded) -> tuple[str, str, dict[str, Any]]:
    operation = draw(st.sampled_from(OPERATIONS))
    method = draw(st.sampled_from([operation.method] * 4 + list(METHODS)))
    path = operation.path
    for name in operation.path_names:
        known = st.sampled_from(seeded.path_values.get(name, ["1"]))
        value = draw(st.one_of(known, known, known, texts))  # mostly objects that exist
        path = path.replace("{" + name + "}", quote(value, safe=""))
    suffix = draw(st.sampled_from(["", "", "", "", ".json", ".yaml", ".csv", ".api", ".xml"]))
    if suffix:
        path = path.rstrip("/") + suffix + draw(st.sampled_from(["/", ""]))
    query_names = st.one_of(
        st.sampled_from([*operation.query_names, "limit", "offset", "format", "page"]), texts
    )
    query = draw(st.dictionaries(query_names, texts, max_size=4))
    kind = draw(st.sampled_from(["none", "schema", "schema", "document", "raw"]))
    extra: dict[str, Any] = {"QUERY_STRING": "&".join(f"{quote(k)}={quote(v)}" for k, v in query.items())}
    body: Any = None
    content_type = "application/json"
    if kind == "schema":
        names = operation.body_properties or ("document",)
        fields = draw(st.dictionaries(st.one_of(st.sampled_from(names), texts), json_values, max_size=5))
        if "document" in names and draw(st.booleans()):
            fields["document"] = draw(documents())
        body = json.dumps(fields)
    elif kind == "document":
        document = draw(documents())
        body = document if isinstance(document, str) else json.dumps(document)
        content_type = draw(st.sampled_from(["application/yaml", "application/json"]))
    elif kind == "raw":
        body = draw(st.one_of(st.binary(max_size=64), texts.map(str.encode)))
        content_type = draw(
            st.sampled_from(
                [
                    "application/json",
                    "application/yaml",
                    "application/x-www-form-urlencoded",
                    "multipart/form-data; boundary=x",
                    "text/plain",
                ]
            )
        )
    if body is not None:
        extra["content_type"] = content_type
        extra["data"] = body
    headers = draw(
        st.sampled_from([{}, {"HTTP_IF_MATCH": '"1"'}, {"HTTP_IF_MATCH": "*"}, {"HTTP_ACCEPT": "*/*"}])
    )
    extra.update(headers)
    return method, path, extra


def _send(client: APIClient | AdmissionClient, method: str, path: str, extra: dict[str, Any]) -> Any:
    """One request; ``data`` may be bytes (Django's test client sends them as they are)."""
    extra = dict(extra)
    data = extra.pop("data", "")
    content_type = extra.pop("content_type", "application/octet-stream")
    return client.generic(method.upper(), path, data, content_type=content_type, **extra)


@FUZZ
@given(data=st.data())
def test_no_generated_api_request_answers_5xx(api: APIClient, seeded: Seeded, data: st.DataObject) -> None:
    method, path, extra = data.draw(api_requests(seeded))
    response = _send(api, method, path, extra)
    assert response.status_code < 500, (method, path, extra, response.content[:500])
    is_json = response.get("Content-Type", "").startswith("application/json")
    if 400 <= response.status_code < 500 and is_json and response.content:
        body = json.loads(response.content)
        assert isinstance(body, dict) and isinstance(body.get("errors"), list), (method, path, body)


# --- the admission endpoint -----------------------------------------------------------------------

WEBHOOK_TOKEN = "fuzz-webhook-token-0123456789"
# Mostly the cluster's token (so bodies reach the parser), sometimes none, another or garbage.
authorizations = st.one_of(
    *[st.just({"HTTP_AUTHORIZATION": f"Bearer {WEBHOOK_TOKEN}"})] * 6,
    st.just({}),
    st.just({"HTTP_AUTHORIZATION": "Bearer wrong-token-0123456789"}),
    texts.map(lambda value: {"HTTP_AUTHORIZATION": value}),
)


def _review(pod: Any, **request: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "uid": str(uuid.UUID(int=1)),
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "default",
        "operation": "CREATE",
        "object": pod,
    }
    fields.update(request)
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": fields}


mutated_pods = st.builds(_replace, st.just(_valid_pod()), st.sampled_from(POD_PATHS), json_values)
review_fields = st.sampled_from(
    ["uid", "kind", "resource", "namespace", "operation", "object", "subResource"]
)
reviews = st.one_of(
    st.builds(_review, st.one_of(st.just(_valid_pod()), mutated_pods)),
    st.builds(lambda pod, key, value: _review(pod, **{key: value}), mutated_pods, review_fields, json_values),
    st.builds(
        lambda review, key, value: {**review, key: value},
        st.builds(_review, mutated_pods),
        st.sampled_from(["apiVersion", "kind", "request"]),
        json_values,
    ),
)


@pytest.fixture
def fresh_admission_cache() -> None:
    """The admission endpoint's per-process snapshot must be re-read for this test's rows. (The
    cluster's URL answers nothing: namespace labels are unreadable, as when a GET fails.)"""
    invalidate_active_revisions()


@FUZZ
@given(data=st.data())
def test_no_generated_admission_review_answers_5xx(
    seeded: Seeded, fresh_admission_cache: None, data: st.DataObject
) -> None:
    client = AdmissionClient()  # the admission listener's own WSGI app
    cluster = data.draw(st.one_of(st.just("alpha"), st.just("alpha"), texts.map(lambda v: quote(v, safe=""))))
    body = data.draw(
        st.one_of(
            reviews.map(lambda review: json.dumps(review).encode()),
            st.binary(max_size=64),
            json_values.map(lambda value: json.dumps(value).encode()),
        )
    )
    method = data.draw(st.sampled_from(["POST"] * 6 + ["GET", "PUT", "OPTIONS"]))
    path = f"/admission/v1/clusters/{cluster}/pods"
    headers = data.draw(authorizations)
    response = _send(client, method, path, {"data": body, "content_type": "application/json", **headers})
    assert response.status_code < 500, (cluster, body[:300], response.content[:500])
    answer = json.loads(response.content)
    if response.status_code == 200:
        # An unexpected error is answered 200 by the failurePolicy: it must not happen either.
        assert "internal error" not in json.dumps(answer), (body[:300], answer)
    else:
        assert isinstance(answer.get("errors"), list), answer
