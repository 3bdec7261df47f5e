"""Issue 15, "errors that must become clean 4xx": one regression test per item (1-9).

Every error of the API and the admission endpoint is a 4xx in the API's body,
``{"errors": [{"path": ..., "message": ...}]}``, never a 500 and never Django's HTML page. The
property test over every route is ``test_fuzz_no_5xx.py``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import yaml
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from clusters.choices import CredentialKind
from clusters.models import Cluster
from sidecarhub.api.pagination import MAX_PAGE_SIZE
from tests.admission_client import AdmissionClient

pytestmark = pytest.mark.django_db

NESTED_BODY = "[" * 100_000 + "]" * 100_000  # ~200 KB, 100,000 levels (the input)


def _document(name: str = "mesh", **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps.kruise.io/v1beta1",
        "kind": "SidecarSet",
        "metadata": {"name": name, **metadata},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "containers": [{"name": "envoy", "image": "envoy:1.0"}],
        },
    }


def _errors(response: Any) -> list[dict[str, Any]]:
    """The API's error body; fails unless the response is JSON in that shape."""
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    body = json.loads(response.content)
    assert set(body) >= {"errors"} and body["errors"], body
    assert all(set(error) >= {"path", "message"} for error in body["errors"]), body
    return list(body["errors"])


def _paths(response: Any) -> list[Any]:
    return [error["path"] for error in _errors(response)]


@pytest.fixture
def api(admin_user: User) -> APIClient:
    """A superuser's client that turns server errors into responses (as a real server does)."""
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(admin_user)
    return client


@pytest.fixture
def cluster() -> Cluster:
    """A registered cluster row (no apiserver needed: nothing here reaches one) that answers
    admission calls without a webhook token (tests/injection/test_webhook_auth.py covers 401s)."""
    return Cluster.objects.create(
        name="alpha",
        api_server_url="https://127.0.0.1:1",
        credential_kind=CredentialKind.TOKEN,
        credentials_ciphertext="not-used",
        webhook_auth_required=False,
    )


def _admission_review(pod: Any) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "default",
            "operation": "CREATE",
            "object": pod,
        },
    }


# --- 1. format-suffix routes are off: a 404 in the API's body, for every kind of route ----------


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("post", "/api/v1/sidecarsets/validate.json/"),
        ("post", "/api/v1/sidecarsets/import.json/"),
        ("post", "/api/v1/sidecarsets/mesh/publish.json/"),
        ("get", "/api/v1/sidecarsets/mesh/export.json/"),
        ("get", "/api/v1/sidecarsets.json/"),
        ("get", "/api/v1/sidecarsets/mesh.json/"),
        ("post", "/api/v1/clusters/import-kubeconfig.json/"),
        ("post", "/api/v1/clusters/alpha/check.json/"),
        ("post", "/api/v1/rollouts/1/pause.json/"),
        ("post", "/api/v1/rollout-steps/1/approve.json/"),
        ("get", "/api/v1/pod-updates.json"),
        ("get", "/api/v1/.json"),
    ],
)
def test_1_format_suffix_urls_are_a_json_404(api: APIClient, method: str, url: str) -> None:
    response = getattr(api, method)(url, {}, format="json")
    assert response.status_code == 404
    assert _paths(response) == [None]


def test_1_the_format_query_parameter_still_selects_a_renderer(api: APIClient) -> None:
    response = api.get("/api/v1/pod-updates/?format=csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")


# --- 2. OPTIONS on the docs page ----------------------------------------------------------------


def test_2_options_on_the_docs_page_is_a_405(api: APIClient) -> None:
    assert api.options("/api/v1/docs/").status_code == 405
    assert api.get("/api/v1/docs/").status_code == 200


# --- 3. deeply nested JSON ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["/api/v1/sidecarsets/validate/", "/api/v1/clusters/", "/api/v1/sidecarset-targets/"]
)
def test_3_deeply_nested_json_is_a_400(api: APIClient, url: str) -> None:
    response = api.generic("POST", url, NESTED_BODY, content_type="application/json")
    assert response.status_code == 400
    assert "nested too deeply" in _errors(response)[0]["message"]


def test_3_deeply_nested_admission_review_is_a_400(cluster: Cluster) -> None:
    client = AdmissionClient()  # the admission listener's own WSGI app
    response = client.generic(
        "POST", "/admission/v1/clusters/alpha/pods", NESTED_BODY, content_type="application/json"
    )
    assert response.status_code == 400
    assert "nested too deeply" in _errors(response)[0]["message"]


# --- 4. a YAML integer of more than 4,300 digits ------------------------------------------------


@pytest.mark.parametrize("text", ["a: " + "1" * 5000, '{"a": ' + "1" * 5000 + "}"])
def test_4_an_integer_of_5000_digits_is_a_field_error(api: APIClient, text: str) -> None:
    response = api.post("/api/v1/sidecarsets/", {"document": text}, format="json")
    assert response.status_code == 400
    assert _errors(response) == [{"path": "<document>", "message": "an integer has more than 4300 digits"}]
    response = api.generic("POST", "/api/v1/sidecarsets/import/", text, content_type="application/yaml")
    assert response.status_code == 400 and _paths(response) == ["<document>"]


# --- 5. huge limits and integer filters ---------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/sidecarsets/",
        "/api/v1/clusters/",
        "/api/v1/sidecarset-targets/",
        "/api/v1/sidecarset-placements/",
        "/api/v1/cluster-audit-events/",
        "/api/v1/rollouts/",
        "/api/v1/rollout-steps/",
        "/api/v1/pod-updates/",
    ],
)
def test_5_a_huge_limit_is_cut_to_the_maximum_page(api: APIClient, url: str) -> None:
    response = api.get(url, {"limit": "99999999999999999999", "offset": "99999999999999999999"})
    assert response.status_code == 200 and response.json()["results"] == []
    assert "limit=1000" in (response.json()["previous"] or "")
    assert MAX_PAGE_SIZE == 1000


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("/api/v1/rollouts/", "cluster_id"),
        ("/api/v1/rollouts/", "wave"),
        ("/api/v1/rollout-steps/", "rollout"),
        ("/api/v1/pod-updates/", "step"),
        ("/api/v1/sidecarset-targets/", "sidecarset_id"),
        ("/api/v1/sidecarset-placements/", "cluster_id"),
        ("/api/v1/cluster-audit-events/", "cluster_id"),
    ],
)
@pytest.mark.parametrize("value", ["99999999999999999999", "-99999999999999999999", "1e400"])
def test_5_integer_filters_beyond_64_bits_are_a_field_error(
    api: APIClient, url: str, name: str, value: str
) -> None:
    response = api.get(url, {name: value})
    assert response.status_code == 400 and set(_paths(response)) == {name}
    assert api.get(url, {name: str(2**63 - 1)}).status_code == 200


# --- 6. NUL characters --------------------------------------------------------------------------


def test_6_nul_in_an_annotation_or_label_value_is_a_field_error(api: APIClient) -> None:
    document = _document(annotations={"example.com/note": "a\x00b"})
    response = api.post("/api/v1/sidecarsets/", {"document": document}, format="json")
    assert response.status_code == 400
    assert _paths(response) == ["document.metadata.annotations.example.com/note"]
    as_yaml = yaml.safe_dump(document)  # the YAML "\0" escape: the core refuses it
    response = api.post("/api/v1/sidecarsets/", {"document": as_yaml}, format="json")
    assert response.status_code == 400 and _paths(response) == ["metadata.annotations.example.com/note"]
    response = api.generic("POST", "/api/v1/sidecarsets/import/", as_yaml, content_type="application/yaml")
    assert response.status_code == 400 and _paths(response) == ["metadata.annotations.example.com/note"]
    cluster = {"name": "beta", "api_server_url": "https://127.0.0.1:1", "token": "t"}
    response = api.post("/api/v1/clusters/", {**cluster, "labels": {"env": "\x00"}}, format="json")
    assert response.status_code == 400 and _paths(response) == ["labels.env"]


# --- 7. a kubeconfig whose lists are not lists --------------------------------------------------


@pytest.mark.parametrize(
    ("kubeconfig", "problem"),
    [
        (
            "current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\nclusters: 5\n",
            "clusters must be a list",
        ),
        ("current-context: a\ncontexts: 7\n", "contexts must be a list"),
        (
            "current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n"
            "clusters: [{name: c, cluster: {server: 'https://x'}}]\nusers: {u: 1}\n",
            "users must be a list",
        ),
        ("a: " + "1" * 5000, "not valid YAML"),
        ("[" * 5000, "not valid YAML"),
        (
            "current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n"
            'clusters: [{name: c, cluster: {server: "https://x", certificate-authority: "/a\\0b"}}]\n'
            "users: [{name: u, user: {token: t}}]\n",
            "certificate-authority is not a usable path",
        ),
    ],
)
def test_7_malformed_kubeconfig_is_a_field_error(api: APIClient, kubeconfig: str, problem: str) -> None:
    response = api.post(
        "/api/v1/clusters/import-kubeconfig/", {"name": "beta", "kubeconfig": kubeconfig}, format="json"
    )
    assert response.status_code == 400
    [error] = _errors(response)
    assert error["path"] in ("kubeconfig", "context") and problem in error["message"]


# --- 8. an admission request whose pod spec is not an object ------------------------------------


@pytest.mark.parametrize("part", ["spec", "metadata"])
@pytest.mark.parametrize("value", ["x", 5, [], None])
def test_8_a_pod_part_that_is_not_an_object_is_a_400(cluster: Cluster, part: str, value: Any) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": []}}
    pod[part] = value
    client = AdmissionClient()
    response = client.post(
        "/admission/v1/clusters/alpha/pods", _admission_review(pod), content_type="application/json"
    )
    assert response.status_code == 400
    assert _paths(response) == [f"request.object.{part}"]


def test_8_admission_paths_that_no_cluster_can_have_are_a_json_404(cluster: Cluster) -> None:
    client = AdmissionClient()
    for name in ("a%00b", "UPPER", "a" * 64):
        response = client.post(f"/admission/v1/clusters/{name}/pods", {}, content_type="application/json")
        assert response.status_code == 404 and _paths(response) == [None]


# --- 9. one error body: oversized bodies, CSRF and parse errors ---------------------------------


@pytest.mark.parametrize(
    ("url", "content_type"),
    [
        ("/api/v1/clusters/", "application/json"),
        ("/api/v1/clusters/", "application/x-www-form-urlencoded"),
        ("/api/v1/sidecarset-targets/", "application/json"),
        ("/api/v1/clusters/import-kubeconfig/", "application/x-www-form-urlencoded"),
    ],
)
def test_9_oversized_api_bodies_are_a_json_413(api: APIClient, url: str, content_type: str) -> None:
    response = api.generic("POST", url, "x" * (3 * 1024 * 1024), content_type=content_type)
    assert response.status_code == 413 and _paths(response) == [None]


def test_9_oversized_multipart_bodies_are_a_json_4xx(api: APIClient) -> None:
    content_type = "multipart/form-data; boundary=x"
    field = '--x\r\nContent-Disposition: form-data; name="name"\r\n\r\n' + "y" * (3 * 1024 * 1024)
    for body in ("x" * (3 * 1024 * 1024), field + "\r\n--x--\r\n"):
        response = api.generic("POST", "/api/v1/clusters/", body, content_type=content_type)
        assert response.status_code in (400, 413) and _paths(response) == [None]


def test_9_oversized_admin_forms_are_a_json_413(admin_user: User) -> None:
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    body = "owner_team=" + "x" * (3 * 1024 * 1024)
    for url in ("/admin/login/", "/admin/clusters/cluster/add/", "/admin/sidecarhub/sidecarset/add/"):
        response = client.generic("POST", url, body, content_type="application/x-www-form-urlencoded")
        assert response.status_code == 413 and _paths(response) == [None]


def test_9_csrf_and_parse_errors_on_cluster_endpoints_use_the_api_body(admin_user: User) -> None:
    session = APIClient(enforce_csrf_checks=True, raise_request_exception=False)
    session.force_login(admin_user)
    for url in ("/api/v1/clusters/", "/api/v1/sidecarset-targets/", "/api/v1/sidecarsets/"):
        response = session.post(url, {}, format="json")
        assert response.status_code == 403 and "CSRF" in _errors(response)[0]["message"]
    api = APIClient(raise_request_exception=False)
    api.force_authenticate(admin_user)
    for url in ("/api/v1/clusters/", "/api/v1/sidecarset-targets/", "/api/v1/clusters/import-kubeconfig/"):
        response = api.generic("POST", url, "{bad", content_type="application/json")
        assert response.status_code == 400 and _paths(response) == [None]


def test_9_unauthenticated_and_unknown_objects_use_the_api_body() -> None:
    anonymous = APIClient(raise_request_exception=False)
    for url in ("/api/v1/clusters/", "/api/v1/rollouts/", "/api/v1/sidecarsets/"):
        response = anonymous.get(url)
        assert response.status_code in (401, 403) and _paths(response) == [None]
