"""Deleting a cluster from the hub: its webhook and SidecarSet resources leave the cluster first.

On the sandbox: a cluster whose webhook (failurePolicy Fail) injects pods, and which holds the
hub's SidecarSets, one of them no longer named by any placement, next to a SidecarSet resource
the hub did not place. After ``delete_cluster``: the webhook and the hub's resources are gone,
the other resource stays, and pods are created there again without the hub. When the cluster
cannot be reached, nothing is deleted and the error says how to go on (service, API, CLI,
admin); ``keep_in_cluster`` deletes it anyway.
"""

from __future__ import annotations

import argparse
import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from kubernetes import client
from kubernetes.client.rest import ApiException
from rest_framework.test import APIClient

from clusters.choices import FailurePolicy, PlacementState
from clusters.cli import handle_delete, register
from clusters.crypto import ClusterCredentials
from clusters.models import Cluster, SidecarSetPlacement
from clusters.resources import (
    CRD_NAME,
    GROUP,
    MANAGED_BY_LABEL,
    MANAGED_BY_SELECTOR,
    MANAGED_BY_VALUE,
    PLURAL,
    VERSION,
)
from clusters.services import ClusterCleanupFailed, delete_cluster, register_cluster, update_cluster
from clusters.webhooks import WEBHOOK_CONFIGURATION_NAME, register_webhook
from sandbox.testing import RunningCluster, wait_for
from sidecarhub.models import ChangeRecord
from sidecarhub.services import create_sidecarset
from tests.clusters.conftest import make_user, read_resource, sidecarset_document
from tests.injection.conftest import Hub, _webhook_cleanup, container_names, hub, hub_server, make_pod

__all__ = ["_webhook_cleanup", "hub", "hub_server"]

pytestmark = pytest.mark.django_db

UNREACHABLE = "https://127.0.0.1:1"  # nothing listens: connection refused at once
TOKEN = "t0ken-never-printed"


def _extra_resource(running: RunningCluster, name: str, *, hub_label: bool) -> None:
    labels = {MANAGED_BY_LABEL: MANAGED_BY_VALUE} if hub_label else {"team": "platform"}
    client.CustomObjectsApi(running.api_client).create_cluster_custom_object(
        GROUP,
        VERSION,
        PLURAL,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "SidecarSet",
            "metadata": {"name": name, "labels": labels},
            "spec": {"selector": {"matchLabels": {"app": "none"}}, "containers": []},
        },
        _preload_content=False,
    )


def _delete_resource(running: RunningCluster, name: str) -> None:
    try:
        client.CustomObjectsApi(running.api_client).delete_cluster_custom_object(
            GROUP, VERSION, PLURAL, name, _preload_content=False
        )
    except ApiException as exc:
        if exc.status != 404:
            raise


def _webhook_exists(running: RunningCluster) -> bool:
    try:
        client.AdmissionregistrationV1Api(running.api_client).read_mutating_webhook_configuration(
            WEBHOOK_CONFIGURATION_NAME, _preload_content=False
        )
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


@pytest.fixture
def foreign_resource(hub: Hub) -> Iterator[str]:
    name = f"foreign-{uuid.uuid4().hex[:6]}"
    yield name
    _delete_resource(hub.k8s, name)


@pytest.mark.k8s
@pytest.mark.django_db(transaction=True)  # the hub's TLS server answers admission from its own connection
def test_deletion_removes_the_webhook_and_the_hubs_sidecarsets_and_pods_create_again(
    eager_tasks: None, hub: Hub, k8s_namespace: str, foreign_resource: str
) -> None:
    running = hub.k8s
    update_cluster(hub.cluster.pk, changes={"webhook_failure_policy": FailurePolicy.FAIL})
    register_webhook(hub.cluster.pk)
    name = f"agent-{uuid.uuid4().hex[:6]}"
    orphan = f"orphan-{uuid.uuid4().hex[:6]}"
    hub.publish(sidecarset_document(name, app_label="web"))  # the target's push runs (eager)
    assert read_resource(running, name) is not None
    _extra_resource(running, orphan, hub_label=True)  # the hub's, though no placement names it
    _extra_resource(running, foreign_resource, hub_label=False)
    hub.wait_active(k8s_namespace)
    injected = hub.create_pod(k8s_namespace, make_pod("before"))
    assert "log-agent" in container_names(injected)

    removal = delete_cluster(hub.cluster.pk, actor=None, request_id="req-del-1")

    assert removal.kept_in_cluster is False
    assert removal.webhook_removed is True
    # Other tests share the sandbox and may have left resources of their own hubs: all go too.
    assert {name, orphan} <= set(removal.sidecarsets_removed)
    assert list(removal.sidecarsets_removed) == sorted(removal.sidecarsets_removed)
    left = client.CustomObjectsApi(running.api_client).list_cluster_custom_object(
        GROUP, VERSION, PLURAL, label_selector=MANAGED_BY_SELECTOR, _preload_content=False
    )
    assert json.loads(left.data)["items"] == []  # type: ignore[attr-defined]  # _preload_content=False: a raw urllib3 response
    assert not Cluster.objects.filter(pk=hub.cluster.pk).exists()
    assert not SidecarSetPlacement.objects.filter(sidecarset_name=name).exists()
    assert not _webhook_exists(running)
    assert read_resource(running, name) is None
    assert read_resource(running, orphan) is None
    assert read_resource(running, foreign_resource) is not None  # not the hub's: left alone
    record = ChangeRecord.objects.get(request_id="req-del-1")
    assert record.action == "delete"
    assert name in record.message and "webhook removed" in record.message

    # With failurePolicy Fail, a webhook left behind would now deny every pod (the hub answers
    # 404 for a cluster it no longer knows); gone, pods are created without the hub.
    def created_without_the_hub() -> bool:
        try:
            pod = hub.create_pod(k8s_namespace, make_pod(f"after-{uuid.uuid4().hex[:6]}"), dry_run=True)
        except ApiException:
            return False
        return container_names(pod) == ["app"]

    wait_for(created_without_the_hub, timeout_seconds=30, interval_seconds=0.25, what="pods created again")


@pytest.fixture
def unreachable() -> Cluster:
    cluster = register_cluster(
        name="faraway", api_server_url=UNREACHABLE, credentials=ClusterCredentials(token=TOKEN)
    )
    row = create_sidecarset(sidecarset_document("ss-far"), actor=None)
    SidecarSetPlacement.objects.create(
        sidecarset=row, sidecarset_name="ss-far", cluster=cluster, state=PlacementState.APPLIED
    )
    return cluster


def test_an_unreachable_cluster_is_not_deleted_unless_kept(
    unreachable: Cluster, django_capture_on_commit_callbacks: Any
) -> None:
    with pytest.raises(ClusterCleanupFailed) as caught:
        delete_cluster(unreachable.pk)
    message = str(caught.value)
    assert "cluster faraway was not deleted" in message
    assert "cannot reach https://127.0.0.1:1" in message
    assert "keep_in_cluster" in message
    assert f"kubectl delete mutatingwebhookconfiguration {WEBHOOK_CONFIGURATION_NAME}" in message
    assert f"kubectl delete {CRD_NAME} -l {MANAGED_BY_LABEL}={MANAGED_BY_VALUE}" in message
    assert TOKEN not in message
    assert Cluster.objects.filter(pk=unreachable.pk).exists()
    assert SidecarSetPlacement.objects.filter(cluster=unreachable).count() == 1
    assert not ChangeRecord.objects.filter(action="delete").exists()

    with django_capture_on_commit_callbacks(execute=True):
        removal = delete_cluster(unreachable.pk, keep_in_cluster=True, request_id="req-keep")

    assert (removal.kept_in_cluster, removal.webhook_removed, removal.sidecarsets_removed) == (
        True,
        False,
        (),
    )
    assert not Cluster.objects.filter(pk=unreachable.pk).exists()
    assert not SidecarSetPlacement.objects.filter(sidecarset_name="ss-far").exists()
    assert "left in the cluster" in ChangeRecord.objects.get(request_id="req-keep").message


def test_api_delete_answers_409_400_and_200_with_what_was_removed(unreachable: Cluster) -> None:
    api = APIClient()
    api.force_authenticate(make_user("ops", "clusters.delete_cluster"))

    refused = api.delete("/api/v1/clusters/faraway/")
    assert refused.status_code == 409
    errors = refused.json()["errors"]
    assert len(errors) == 1 and "keep_in_cluster" in errors[0]["message"]
    assert TOKEN not in refused.content.decode()

    bad = api.delete("/api/v1/clusters/faraway/?keep_in_cluster=perhaps")
    assert bad.status_code == 400
    assert [error["path"] for error in bad.json()["errors"]] == ["keep_in_cluster"]
    assert Cluster.objects.filter(name="faraway").exists()

    kept = api.delete("/api/v1/clusters/faraway/?keep_in_cluster=true")
    assert kept.status_code == 200
    assert kept.json() == {
        "cluster_name": "faraway",
        "kept_in_cluster": True,
        "webhook_removed": False,
        "sidecarsets_removed": [],
    }
    assert not Cluster.objects.filter(name="faraway").exists()


def test_cli_delete(unreachable: Cluster, cli_admin: Any) -> None:
    parser = argparse.ArgumentParser(prog="sidecarhub")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["cluster", "delete", "faraway"])
    assert (args.handler, args.keep_in_cluster) == (handle_delete, False)

    with pytest.raises(CommandError, match="keep_in_cluster"):
        call_command("sidecarhub", "cluster", "delete", "faraway", stdout=io.StringIO())
    assert Cluster.objects.filter(name="faraway").exists()

    out = io.StringIO()
    call_command("sidecarhub", "cluster", "delete", "faraway", "--keep-in-cluster", stdout=out)
    assert out.getvalue() == (
        "cluster faraway deleted; the hub's webhook and SidecarSets were left in the cluster "
        "(keep_in_cluster)\n"
    )
    with pytest.raises(CommandError, match="no cluster named 'faraway'"):
        call_command("sidecarhub", "cluster", "delete", "faraway", stdout=io.StringIO())


def test_admin_deletes_through_the_service(unreachable: Cluster, client: Any) -> None:
    # Not a superuser: deleting a cluster needs only its own permission, not one for each
    # read-only kind of row that goes with it (placements here).
    admin_user = make_user("ops", "clusters.view_cluster", "clusters.delete_cluster")
    admin_user.is_staff = True
    admin_user.save()
    client.force_login(admin_user)
    changelist = "/admin/clusters/cluster/"

    actions = client.get(changelist).context["action_form"].fields["action"].choices
    names = [choice[0] for choice in actions]
    assert "delete_selected" not in names  # Django's bulk delete would skip the cleanup
    assert {"delete_clusters", "delete_clusters_keeping_their_objects"} <= set(names)

    page = client.post(f"/admin/clusters/cluster/{unreachable.pk}/delete/", {"post": "yes"}, follow=True)
    assert page.redirect_chain[-1][0] == f"/admin/clusters/cluster/{unreachable.pk}/change/"
    shown = [str(message) for message in page.context["messages"]]
    assert any("cluster faraway was not deleted" in text for text in shown), shown
    assert Cluster.objects.filter(pk=unreachable.pk).exists()

    page = client.post(
        changelist,
        {"action": "delete_clusters_keeping_their_objects", "_selected_action": [unreachable.pk]},
        follow=True,
    )
    shown = [str(message) for message in page.context["messages"]]
    assert any("cluster faraway deleted; the hub's webhook" in text for text in shown), shown
    assert not Cluster.objects.filter(pk=unreachable.pk).exists()
    record = ChangeRecord.objects.get(action="delete")
    assert record.actor_id == admin_user.pk
