"""API contract (401 anonymous / 403 without permission / 2xx with it) for every clusters
endpoint, and bad input answered with 400 naming the field, never a 500."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from clusters.choices import AuditAction, PlacementState
from clusters.crypto import ClusterCredentials
from clusters.models import Cluster, ClusterAuditEvent, SidecarSetPlacement, SidecarSetTarget
from clusters.services import register_cluster
from sidecarhub.services import create_sidecarset
from tests.clusters.conftest import make_user, sidecarset_document

pytestmark = pytest.mark.django_db

FAKE_CA = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"


def kubeconfig_text(token: str = "kc-token-value", server: str = "https://127.0.0.1:6443") -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "c",
                    "cluster": {
                        "server": server,
                        "certificate-authority-data": base64.b64encode(FAKE_CA.encode()).decode(),
                    },
                }
            ],
            "users": [{"name": "u", "user": {"token": token}}],
            "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "ctx",
        }
    )


@pytest.fixture
def world() -> dict[str, Any]:
    cluster = register_cluster(
        name="c1",
        api_server_url="https://127.0.0.1:6443",
        credentials=ClusterCredentials(token="t0ken-c1"),
        labels={"env": "dev"},
    )
    create_sidecarset(sidecarset_document("ss1"), actor=None)
    from sidecarhub.models import SidecarSet

    sidecarset = SidecarSet.objects.get(name="ss1")
    target = SidecarSetTarget.objects.create(sidecarset=sidecarset, cluster=cluster, wave=0)
    placement = SidecarSetPlacement.objects.create(
        sidecarset=sidecarset,
        sidecarset_name="ss1",
        cluster=cluster,
        state=PlacementState.FAILED,
        last_error="boom",
    )
    audit = ClusterAuditEvent.objects.get(cluster=cluster)
    return {
        "cluster": cluster,
        "sidecarset": sidecarset,
        "target": target,
        "placement": placement,
        "audit": audit,
    }


def _endpoints(world: dict[str, Any]) -> list[tuple[str, str, list[str], Any, int]]:
    target, placement, audit = world["target"].pk, world["placement"].pk, world["audit"].pk
    return [
        ("get", "/api/v1/clusters/", ["clusters.view_cluster"], None, 200),
        ("get", "/api/v1/clusters/c1/", ["clusters.view_cluster"], None, 200),
        (
            "post",
            "/api/v1/clusters/",
            ["clusters.add_cluster"],
            {"name": "c2", "api_server_url": "https://10.0.0.2:6443", "token": "new-token"},
            201,
        ),
        ("patch", "/api/v1/clusters/c1/", ["clusters.change_cluster"], {"labels": {"env": "prod"}}, 200),
        ("post", "/api/v1/clusters/c1/credentials/", ["clusters.change_cluster"], {"token": "rotated"}, 200),
        ("post", "/api/v1/clusters/c1/check/", ["clusters.view_cluster"], None, 202),
        ("post", "/api/v1/clusters/c1/webhook-token/", ["clusters.change_cluster"], None, 200),
        (
            "post",
            "/api/v1/clusters/c1/webhook-token/revoke-previous/",
            ["clusters.change_cluster"],
            None,
            200,
        ),
        ("post", "/api/v1/clusters/c1/hold/", ["clusters.hold_cluster"], {"reason": "freeze"}, 200),
        ("post", "/api/v1/clusters/c1/release-hold/", ["clusters.hold_cluster"], None, 200),
        (
            "post",
            "/api/v1/clusters/import-kubeconfig/",
            ["clusters.add_cluster", "clusters.change_cluster"],
            {"name": "c3", "kubeconfig": kubeconfig_text()},
            201,
        ),
        ("delete", "/api/v1/clusters/c1/?keep_in_cluster=true", ["clusters.delete_cluster"], None, 200),
        ("get", "/api/v1/sidecarset-targets/", ["clusters.view_sidecarsettarget"], None, 200),
        ("get", f"/api/v1/sidecarset-targets/{target}/", ["clusters.view_sidecarsettarget"], None, 200),
        (
            "post",
            "/api/v1/sidecarset-targets/",
            ["clusters.add_sidecarsettarget"],
            {"sidecarset": "ss1", "cluster_selector": {"matchLabels": {"env": "dev"}}, "wave": 2},
            201,
        ),
        (
            "patch",
            f"/api/v1/sidecarset-targets/{target}/",
            ["clusters.change_sidecarsettarget"],
            {"wave": 3},
            200,
        ),
        ("delete", f"/api/v1/sidecarset-targets/{target}/", ["clusters.delete_sidecarsettarget"], None, 204),
        ("get", "/api/v1/sidecarset-placements/", ["clusters.view_sidecarsetplacement"], None, 200),
        (
            "get",
            f"/api/v1/sidecarset-placements/{placement}/",
            ["clusters.view_sidecarsetplacement"],
            None,
            200,
        ),
        (
            "post",
            f"/api/v1/sidecarset-placements/{placement}/retry/",
            ["clusters.change_sidecarsetplacement"],
            None,
            202,
        ),
        ("get", "/api/v1/cluster-audit-events/", ["clusters.view_clusterauditevent"], None, 200),
        ("get", f"/api/v1/cluster-audit-events/{audit}/", ["clusters.view_clusterauditevent"], None, 200),
    ]


ENDPOINT_COUNT = 22


@pytest.mark.parametrize("index", range(ENDPOINT_COUNT))
def test_contract_401_403_2xx(world: dict[str, Any], index: int) -> None:
    method, url, perms, body, expected = _endpoints(world)[index]
    anonymous = APIClient()
    assert getattr(anonymous, method)(url, body, format="json").status_code == 401
    denied = APIClient()
    denied.force_authenticate(make_user("nobody"))
    response = getattr(denied, method)(url, body, format="json")
    assert response.status_code == 403, response.content
    allowed = APIClient()
    allowed.force_authenticate(make_user("allowed", *perms))
    response = getattr(allowed, method)(url, body, format="json")
    assert response.status_code == expected, response.content


def test_endpoint_list_is_complete(world: dict[str, Any]) -> None:
    assert len(_endpoints(world)) == ENDPOINT_COUNT


def test_create_and_rotate_write_audit_and_change_log(world: dict[str, Any]) -> None:
    from sidecarhub.models import ChangeRecord

    client = APIClient()
    client.force_authenticate(make_user("ops", "clusters.add_cluster", "clusters.change_cluster"))
    response = client.post(
        "/api/v1/clusters/",
        {"name": "c9", "api_server_url": "https://10.0.0.9:6443", "token": "t9"},
        format="json",
        HTTP_X_REQUEST_ID="req-1",
    )
    assert response.status_code == 201
    assert response.data["credential_kind"] == "token"
    assert "token" not in response.data and "credentials_ciphertext" not in response.data
    created = ClusterAuditEvent.objects.get(cluster__name="c9")
    assert (created.action, created.actor_name, created.request_id) == (
        AuditAction.CREDENTIALS_CREATED,
        "ops",
        "req-1",
    )
    assert client.post("/api/v1/clusters/c9/credentials/", {"token": "t10"}, format="json").status_code == 200
    assert (
        ClusterAuditEvent.objects.filter(cluster__name="c9", action=AuditAction.CREDENTIALS_REPLACED).count()
        == 1
    )
    cluster = Cluster.objects.get(name="c9")
    records = ChangeRecord.objects.filter(object_id=str(cluster.pk), content_type__model="cluster")
    assert {r.action for r in records} == {"create", "update"}


BAD_INPUT = [
    ("/api/v1/clusters/", {"api_server_url": "https://kube.example.com:6443", "token": "t"}, "name"),
    (
        "/api/v1/clusters/",
        {"name": "Bad_Name!", "api_server_url": "https://kube.example.com:6443", "token": "t"},
        "name",
    ),
    ("/api/v1/clusters/", {"name": "ok", "api_server_url": "not a url", "token": "t"}, "api_server_url"),
    ("/api/v1/clusters/", {"name": "ok", "api_server_url": "http://x:1", "token": "t"}, "api_server_url"),
    ("/api/v1/clusters/", {"name": "ok", "api_server_url": "https://kube.example.com:6443"}, "token"),
    (
        "/api/v1/clusters/",
        {"name": "ok", "api_server_url": "https://kube.example.com:6443", "token": "a b"},
        "token",
    ),
    (
        "/api/v1/clusters/",
        {
            "name": "ok",
            "api_server_url": "https://kube.example.com:6443",
            "client_certificate": "x",
            "client_key": "y",
        },
        "client_certificate",
    ),
    (
        "/api/v1/clusters/",
        {"name": "ok", "api_server_url": "https://kube.example.com:6443", "token": "t", "labels": {"a": 1}},
        "labels",
    ),
    (
        "/api/v1/clusters/",
        {
            "name": "ok",
            "api_server_url": "https://kube.example.com:6443",
            "token": "t",
            "webhook_failure_policy": "Never",
        },
        "webhook_failure_policy",
    ),
    (
        "/api/v1/clusters/",
        {
            "name": "ok",
            "api_server_url": "https://kube.example.com:6443",
            "token": "t",
            "webhook_timeout_seconds": 99,
        },
        "webhook_timeout_seconds",
    ),
    ("/api/v1/clusters/import-kubeconfig/", {"name": "ok", "kubeconfig": ": not yaml ["}, "kubeconfig"),
    (
        "/api/v1/clusters/import-kubeconfig/",
        {"name": "ok", "kubeconfig": kubeconfig_text(), "context": "nope"},
        "context",
    ),
    ("/api/v1/clusters/import-kubeconfig/", {"name": "ok"}, "kubeconfig"),
    ("/api/v1/sidecarset-targets/", {"sidecarset": "ss1"}, "cluster"),
    ("/api/v1/sidecarset-targets/", {"sidecarset": "nope", "cluster": "c1"}, "sidecarset"),
    ("/api/v1/sidecarset-targets/", {"sidecarset": "ss1", "cluster": "nope"}, "cluster"),
    (
        "/api/v1/sidecarset-targets/",
        {"sidecarset": "ss1", "cluster_selector": {"matchLabels": {}}},
        "cluster_selector",
    ),
    (
        "/api/v1/sidecarset-targets/",
        {"sidecarset": "ss1", "cluster_selector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}},
        "cluster_selector",
    ),
    (
        "/api/v1/sidecarset-targets/",
        {"sidecarset": "ss1", "cluster_selector": {"matchLabels": {"a": "b"}}, "wave": -1},
        "wave",
    ),
    ("/api/v1/sidecarset-targets/", {"sidecarset": "ss1", "cluster": "c1"}, "cluster"),  # already a target
]


@pytest.mark.parametrize(("url", "body", "field"), BAD_INPUT)
def test_bad_input_is_400_naming_the_field(
    world: dict[str, Any], url: str, body: dict[str, Any], field: str
) -> None:
    client = APIClient()
    client.force_authenticate(_superuser())
    response = client.post(url, body, format="json")
    assert response.status_code == 400, response.content
    assert field in {error["path"] for error in response.data["errors"]}, response.data


def test_duplicate_cluster_is_409_and_patch_bad_labels_400(world: dict[str, Any]) -> None:
    client = APIClient()
    client.force_authenticate(_superuser())
    response = client.post(
        "/api/v1/clusters/",
        {"name": "c1", "api_server_url": "https://kube.example.com:6443", "token": "t"},
        format="json",
    )
    assert response.status_code == 409
    assert response.data["errors"][0]["path"] == "name"
    response = client.patch("/api/v1/clusters/c1/", {"labels": ["x"]}, format="json")
    assert response.status_code == 400 and response.data["errors"][0]["path"] == "labels"
    assert client.get("/api/v1/clusters/missing/").status_code == 404
    placement = world["placement"]
    SidecarSetPlacement.objects.filter(pk=placement.pk).update(state=PlacementState.APPLIED)
    response = client.post(f"/api/v1/sidecarset-placements/{placement.pk}/retry/")
    assert response.status_code == 409 and response.data["state"] == "applied"


def _superuser() -> Any:
    from django.contrib.auth.models import User

    return User.objects.create_superuser("root", password="pw-root-123")
