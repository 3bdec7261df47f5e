"""The change log outlives the objects it records (issue 15, "Nothing lost"): after a cluster and a
SidecarSet are deleted, every row about them is still there and listed under their names, in the
API (``/api/v1/change-records/``) and in the admin console."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from clusters.crypto import ClusterCredentials
from clusters.models import Cluster
from clusters.services import delete_cluster, register_cluster, update_cluster
from sidecarhub.models import ChangeRecord, SidecarSet
from sidecarhub.services import create_sidecarset, delete_sidecarset, publish_sidecarset
from tests.clusters.conftest import make_user, sidecarset_document

pytestmark = pytest.mark.django_db


@pytest.fixture
def deleted(admin_user: User) -> dict[str, Any]:
    """A cluster and a SidecarSet, each created, changed and deleted by ``admin``."""
    cluster = register_cluster(
        name="gone-cluster",
        api_server_url="https://127.0.0.1:6443",
        credentials=ClusterCredentials(token="t0ken-gone"),
        actor=admin_user,
    )
    update_cluster(cluster.pk, changes={"labels": {"env": "old"}}, actor=admin_user)
    delete_cluster(cluster.pk, keep_in_cluster=True, actor=admin_user)
    sidecarset = create_sidecarset(sidecarset_document("gone-sidecarset"), actor=admin_user)
    publish_sidecarset("gone-sidecarset", actor=admin_user)
    delete_sidecarset("gone-sidecarset", actor=admin_user, expected_version=None)
    assert not Cluster.objects.filter(pk=cluster.pk).exists()
    assert not SidecarSet.objects.filter(pk=sidecarset.pk).exists()
    return {"cluster_id": str(cluster.pk), "sidecarset_id": str(sidecarset.pk)}


def test_the_rows_of_deleted_objects_remain_under_their_names(deleted: dict[str, Any]) -> None:
    cluster_rows = ChangeRecord.objects.filter(object_id=deleted["cluster_id"], content_type__model="cluster")
    assert sorted(cluster_rows.values_list("action", flat=True)) == ["create", "delete", "update"]
    assert set(cluster_rows.values_list("object_repr", flat=True)) == {"gone-cluster"}
    deletion = cluster_rows.get(action="delete")
    assert deletion.before is not None and deletion.before["name"] == "gone-cluster"
    # The SidecarSet's own rows, and its revision's (a child row pointing at the SidecarSet).
    own = ChangeRecord.objects.filter(object_id=deleted["sidecarset_id"], content_type__model="sidecarset")
    assert {"create", "delete"} <= set(own.values_list("action", flat=True))
    assert set(own.values_list("object_repr", flat=True)) == {"gone-sidecarset"}
    children = ChangeRecord.objects.filter(parent_object_id=deleted["sidecarset_id"])
    assert children.filter(content_type__model="sidecarsetrevision").exists()


def test_the_api_lists_them_by_name_and_type(deleted: dict[str, Any], admin_user: User) -> None:
    api = APIClient()
    api.force_authenticate(admin_user)
    response = api.get(
        "/api/v1/change-records/", {"object": "gone-cluster", "object_type": "clusters.cluster"}
    )
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [row["action"] for row in rows] == ["delete", "update", "create"]  # newest first
    assert {(row["object_repr"], row["object_id"], row["actor_name"]) for row in rows} == {
        ("gone-cluster", deleted["cluster_id"], "admin")
    }
    assert "t0ken-gone" not in response.content.decode()
    rows = api.get("/api/v1/change-records/", {"object": "gone-sidecarset"}).json()["results"]
    assert {row["object_type"] for row in rows} == {"sidecarhub.sidecarset"}
    assert rows[0]["action"] == "delete" and rows[0]["before"] is not None
    children = api.get("/api/v1/change-records/", {"object_type": "sidecarhub.sidecarsetrevision"}).json()
    assert {row["parent_object_id"] for row in children["results"]} == {deleted["sidecarset_id"]}
    # Reading the change log is a permission of its own.
    denied = APIClient()
    denied.force_authenticate(make_user("nobody"))
    assert denied.get("/api/v1/change-records/").status_code == 403
    allowed = APIClient()
    allowed.force_authenticate(make_user("auditor", "sidecarhub.view_changerecord"))
    assert allowed.get("/api/v1/change-records/", {"object": "gone-cluster"}).json()["count"] == 3
    assert allowed.get("/api/v1/change-records/", {"action": "nonsense"}).status_code == 400


def test_the_admin_lists_them_by_name(deleted: dict[str, Any], admin_user: User) -> None:
    client = Client()
    client.force_login(admin_user)
    for name, at_least in (("gone-cluster", 3), ("gone-sidecarset", 2)):
        response = client.get("/admin/sidecarhub/changerecord/", {"q": name})
        assert response.status_code == 200
        page = response.content.decode()
        assert page.count(f">{name}<") + page.count(f"{name}</") >= at_least, name
        assert response.context["cl"].result_count >= at_least
    rows = ChangeRecord.objects.filter(object_id=deleted["cluster_id"], content_type__model="cluster")
    row = rows.get(action="delete")
    detail = client.get(f"/admin/sidecarhub/changerecord/{row.pk}/change/")
    assert detail.status_code == 200 and "gone-cluster" in detail.content.decode()
