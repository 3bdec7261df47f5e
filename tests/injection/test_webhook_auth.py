"""The admission webhook's callers (issue 15): served only on the TLS listener, and answered only
for a registered cluster's apiserver presenting the cluster's webhook token.

A real kube-apiserver (the sandbox, started with an admission configuration whose webhook
kubeconfig holds its token) calls the hub's admission listener over HTTPS: the pod is created
with its sidecar; every other caller gets one and the same 401; a rotated token keeps the
apiserver working until the replaced one's deadline (or its early revocation), then locks it
out until it is given the new one.
"""

from __future__ import annotations

import http.client
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.test import Client
from kubernetes import client, config

from clusters import admission
from clusters.admission import invalidate_active_revisions
from clusters.choices import CredentialKind
from clusters.crypto import ClusterCredentials, encrypt_secret
from clusters.models import Cluster
from clusters.push import create_target, serve_revision
from clusters.services import (
    import_kubeconfig,
    register_cluster,
    revoke_previous_webhook_token,
    set_webhook_token,
)
from clusters.webhooks import apiserver_admission_config, register_webhook
from sandbox.cluster import SandboxCluster, find_binaries
from sandbox.testing import wait_for
from sidecarhub.services import create_sidecarset, publish_sidecarset
from tests.admission_client import AdmissionClient
from tests.injection.conftest import Hub, HubServer, container_names, make_pod, sidecarset

PATH = "/admission/v1/clusters/{}/pods"


def _review() -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "default",
            "operation": "CREATE",
            "object": make_pod("web"),
        },
    }


def _post(hub: Hub, cluster: str, authorization: str | None) -> tuple[int, bytes, str | None]:
    """One POST over HTTPS to the hub's admission listener: status, raw body, WWW-Authenticate."""
    connection = http.client.HTTPSConnection(
        "127.0.0.1", hub.server.port, context=hub.server.ssl_client_context(), timeout=10
    )
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    try:
        connection.request("POST", PATH.format(cluster), body=json.dumps(_review()).encode(), headers=headers)
        response = connection.getresponse()
        return response.status, response.read(), response.getheader("WWW-Authenticate")
    finally:
        connection.close()


@pytest.mark.k8s
@pytest.mark.django_db(transaction=True)  # the hub's TLS server answers from its own connection
def test_the_apiserver_is_authenticated_and_every_other_caller_gets_the_same_401(
    hub: Hub, k8s_namespace: str
) -> None:
    assert hub.cluster.webhook_auth_required  # the default for a newly registered cluster
    hub.publish(sidecarset("authn"))
    hub.wait_active(k8s_namespace)
    # The apiserver presents its token (its admission configuration): the pod gets its sidecar.
    created = hub.create_pod(k8s_namespace, make_pod("authenticated"))
    assert container_names(created) == ["authn-agent", "app"]

    token = hub.k8s.webhook_token
    refusals = {
        "no token": _post(hub, "alpha", None),
        "wrong token": _post(hub, "alpha", "Bearer not-the-token-0123456789"),
        "the token, not as a bearer": _post(hub, "alpha", f"Basic {token}"),
        "unknown cluster": _post(hub, "nowhere", None),
        "unknown cluster, a real token": _post(hub, "nowhere", f"Bearer {token}"),
    }
    first = refusals["no token"]
    assert first[0] == 401 and first[2] == 'Bearer realm="sidecarhub-admission"'
    assert json.loads(first[1])["errors"][0]["path"] is None
    # One answer for all: nothing tells a registered cluster from an unknown name.
    assert {key: value for key, value in refusals.items() if value != first} == {}
    status, body, _ = _post(hub, "alpha", f"Bearer {token}")
    assert status == 200 and json.loads(body)["response"]["patchType"] == "JSONPatch"

    # A rotation: the apiserver still presents the token it replaced, accepted until the deadline
    # (24 h by default), so pods keep their sidecars while its files are updated: no outage.
    set_webhook_token(hub.cluster.pk)
    invalidate_active_revisions()  # the hub's listener runs in this process: re-read the row now
    for index in range(3):
        pod = hub.create_pod(k8s_namespace, make_pod(f"overlap-{index}"))
        assert container_names(pod) == ["authn-agent", "app"]
        time.sleep(0.5)  # across the admission cache's 1 s check too

    def created_without_sidecar() -> bool:
        pod = hub.create_pod(k8s_namespace, make_pod(f"locked-out-{uuid.uuid4().hex[:6]}"))
        return container_names(pod) == ["app"]

    # Revoked early (as once the apiserver has the new token): its calls are refused (within the
    # admission cache's 1 s check) and, failurePolicy Ignore, pods are created without sidecars.
    assert revoke_previous_webhook_token(hub.cluster.pk)
    wait_for(created_without_sidecar, timeout_seconds=15, interval_seconds=0.5, what="the old token refused")
    # Given the apiserver's token again, injection is back.
    set_webhook_token(hub.cluster.pk, token=token)

    def injected_again() -> bool:
        pod = hub.create_pod(k8s_namespace, make_pod(f"back-{uuid.uuid4().hex[:6]}"))
        return container_names(pod) == ["authn-agent", "app"]

    wait_for(injected_again, timeout_seconds=15, interval_seconds=0.5, what="the token accepted again")
    # A short overlap: the apiserver's token works until the deadline passes, then is refused
    # with nothing else changing.
    set_webhook_token(hub.cluster.pk, grace_seconds=3)
    wait_for(created_without_sidecar, timeout_seconds=20, interval_seconds=0.5, what="the old token expired")
    expired_at = Cluster.objects.get(pk=hub.cluster.pk).webhook_previous_token_expires_at
    assert expired_at is not None and time.time() >= expired_at.timestamp()


@pytest.mark.k8s
@pytest.mark.django_db(transaction=True)
def test_the_files_the_hub_prints_configure_a_real_apiserver(
    hub_server: HubServer, tmp_path: Path, settings: Any
) -> None:
    """The documented procedure on a fresh apiserver: the hub generates the token and prints the
    files (user entry = the webhook's host:port, not the sandbox's ``*``); the apiserver started
    with them is authenticated."""
    settings.SIDECARHUB_WEBHOOK_CA_FILE = str(hub_server.certs.ca_cert)
    placeholder = ClusterCredentials(token="replaced-once-the-apiserver-runs")
    cluster = register_cluster(
        name="gamma",
        api_server_url="https://127.0.0.1:1",
        credentials=placeholder,
        webhook_url=hub_server.url,
    )
    token = set_webhook_token(cluster.pk)
    printed = apiserver_admission_config(cluster, token, kubeconfig_path=str(tmp_path / "unused"))
    assert yaml.safe_load(printed.kubeconfig)["users"] == [
        {"name": f"127.0.0.1:{hub_server.port}", "user": {"token": token}}
    ]
    gamma = SandboxCluster(
        name="gamma",
        workdir=tmp_path / "gamma",
        bin_dir=find_binaries(),
        with_controller_manager=False,  # pods need no ServiceAccount here; one process less
        webhook_token=token,
        webhook_url=hub_server.url,
    )
    gamma.start()
    api = None
    try:
        # The sandbox wrote exactly the kubeconfig the hub printed.
        written = gamma.admission_config.parent / "webhook-kubeconfig.yaml"
        assert written.read_text() == printed.kubeconfig
        cluster, _ = import_kubeconfig(
            name="gamma", kubeconfig_path=gamma.kubeconfig, context="gamma", replace=True
        )
        row = create_sidecarset(sidecarset("exact"), actor=None)
        create_target(sidecarset_id=row.pk, cluster_id=cluster.pk)
        revision = publish_sidecarset("exact", actor=None)
        serve_revision(row.pk, cluster.pk, revision.pk)
        register_webhook(cluster.pk)
        api = config.new_client_from_config(config_file=str(gamma.kubeconfig), context="gamma")
        core = client.CoreV1Api(api)

        def injected() -> bool:
            pod = make_pod(f"exact-{uuid.uuid4().hex[:6]}")
            created = json.loads(core.create_namespaced_pod("default", pod, _preload_content=False).data)  # type: ignore[arg-type, attr-defined]  # a dict is sent as is; a raw urllib3 response
            return container_names(created) == ["exact-agent", "app"]

        wait_for(
            injected, timeout_seconds=30, interval_seconds=0.5, what="an authenticated injection on gamma"
        )
    finally:
        if api is not None:
            api.close()
        gamma.stop()


# --- which listener serves what (Django's test client, each listener's URLconf) ---------------


def _cluster(name: str = "alpha", *, required: bool, token: str = "") -> Cluster:
    invalidate_active_revisions()  # this process's admission cache may hold an earlier test's row
    return Cluster.objects.create(
        name=name,
        api_server_url="https://127.0.0.1:1",  # never contacted: namespace reads fail, as allowed
        credential_kind=CredentialKind.TOKEN,
        credentials_ciphertext="not-used",
        webhook_auth_required=required,
        webhook_token_ciphertext=encrypt_secret(token) if token else "",
    )


def _admission(client: Client | AdmissionClient, cluster: str, authorization: str | None = None) -> Any:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return client.post(PATH.format(cluster), _review(), content_type="application/json", headers=headers)


@pytest.mark.django_db
def test_the_plain_listener_has_no_admission_route() -> None:
    _cluster(required=False)
    response = _admission(Client(), "alpha")
    assert response.status_code == 404
    assert response.json()["errors"][0]["message"] == "no such endpoint: /admission/v1/clusters/alpha/pods"


@pytest.mark.django_db
def test_the_admission_listener_serves_the_webhook_and_healthz_only(settings: Any) -> None:
    _cluster(required=False)
    client = AdmissionClient()
    assert _admission(client, "alpha").status_code == 200
    assert client.get("/healthz").status_code in (200, 503)  # 503 only names a service that is down
    for path in ("/api/v1/clusters/", "/admin/", "/api/v1/schema/"):
        assert client.get(path).status_code == 404, path


@pytest.mark.django_db
def test_a_cluster_that_does_not_require_the_token_still_refuses_a_wrong_one() -> None:
    _cluster("open", required=False, token="open-cluster-token-0123456789")
    _cluster("closed", required=True, token="closed-cluster-token-0123456789")
    _cluster("unset", required=True)
    client = AdmissionClient()
    assert _admission(client, "open").status_code == 200  # no token: answered (not required)
    assert _admission(client, "open", "Bearer open-cluster-token-0123456789").status_code == 200
    assert _admission(client, "open", "Bearer closed-cluster-token-0123456789").status_code == 401
    assert _admission(client, "closed", "Bearer closed-cluster-token-0123456789").status_code == 200
    assert _admission(client, "closed", "bearer  closed-cluster-token-0123456789 ").status_code == 200
    assert _admission(client, "closed", "Bearer open-cluster-token-0123456789").status_code == 401
    assert _admission(client, "closed").status_code == 401
    # Required but no token set yet (a new cluster): nothing is accepted until one is set.
    assert _admission(client, "unset").status_code == 401
    assert _admission(client, "unset", "Bearer ").status_code == 401


@pytest.mark.django_db
def test_calls_naming_unknown_clusters_cannot_grow_the_admission_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    _cluster(required=True, token="known-cluster-token-0123456789")
    client = AdmissionClient()
    assert _admission(client, "alpha", "Bearer known-cluster-token-0123456789").status_code == 200
    monkeypatch.setattr(admission, "MAX_CACHED_CLUSTER_NAMES", len(admission._entries) + 5)
    for index in range(50):
        assert _admission(client, f"stranger-{index}").status_code == 401
    assert len(admission._entries) <= admission.MAX_CACHED_CLUSTER_NAMES
    assert len(admission._rebuild_locks) <= admission.MAX_CACHED_CLUSTER_NAMES + 1
    # A registered cluster is still answered (its snapshot is kept whatever the count).
    assert _admission(client, "alpha", "Bearer known-cluster-token-0123456789").status_code == 200


@pytest.mark.django_db
def test_the_replaced_token_stops_at_its_deadline_without_a_new_snapshot() -> None:
    """The deadline is compared at each call: the snapshot built while the replaced token was
    accepted refuses it once the deadline passes (no definitions change needed)."""
    cluster = _cluster(required=True, token="the-old-token-0123456789")
    set_webhook_token(cluster.pk, token="the-new-token-0123456789", grace_seconds=1)
    invalidate_active_revisions()
    body = json.dumps(_review()).encode()
    snapshot = admission.active_candidates("alpha")
    deadline = Cluster.objects.get(pk=cluster.pk).webhook_previous_token_expires_at
    assert deadline is not None
    assert admission.review_pod_admission("alpha", body, "Bearer the-old-token-0123456789").status == 200
    wait_for(
        lambda: (
            admission.review_pod_admission("alpha", body, "Bearer the-old-token-0123456789").status == 401
        ),
        timeout_seconds=5,
        interval_seconds=0.1,
        what="the replaced token refused at its deadline",
    )
    assert time.time() >= deadline.timestamp()  # not refused before its deadline
    assert admission.active_candidates("alpha") is snapshot  # the same snapshot decided both
    assert admission.review_pod_admission("alpha", body, "Bearer the-new-token-0123456789").status == 200
