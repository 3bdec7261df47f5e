"""The admission endpoint called directly over HTTPS: every kind of bad input gets a clear 4xx
(never a 500), non-CREATE and non-pod requests pass untouched, and the answer's latency."""

from __future__ import annotations

import base64
import http.client
import json
import logging
import time
import uuid
from typing import Any

import jsonpatch
import pytest

from clusters import admission
from tests.injection.conftest import Hub, make_pod, percentile, sidecarset

pytestmark = [pytest.mark.k8s, pytest.mark.django_db(transaction=True)]

PATH = "/admission/v1/clusters/alpha/pods"


def _review(operation: str = "CREATE", resource: str = "pods", **request: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": resource},
        "namespace": "default",
        "operation": operation,
        "object": make_pod("web"),
    }
    body.update(request)
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": body}


class _Client:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.connection = self._connect()

    def _connect(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            "127.0.0.1", self.hub.server.port, context=self.hub.server.ssl_client_context(), timeout=10
        )

    def close(self) -> None:
        self.connection.close()

    def post(self, body: bytes | dict[str, Any], path: str = PATH, method: str = "POST") -> tuple[int, Any]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        # As the apiserver does: the cluster's webhook token (tests/injection/test_webhook_auth.py).
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self.hub.k8s.webhook_token}",
        }
        self.connection.request(method, path, body=data, headers=headers)
        response = self.connection.getresponse()
        payload = response.read()
        if response.getheader("Connection", "").lower() == "close":
            self.connection.close()
            self.connection = self._connect()
        return response.status, json.loads(payload)


def _path_and_message(payload: dict[str, Any]) -> tuple[Any, str]:
    error = payload["errors"][0]
    return error["path"], error["message"]


def test_bad_input_matrix_never_answers_500(hub: Hub) -> None:
    hub.publish(sidecarset("matrix"))
    api = _Client(hub)

    status, payload = api.post(b"{not json")
    assert status == 400 and "not valid JSON" in _path_and_message(payload)[1]
    status, payload = api.post(b"[]")
    assert status == 400 and "JSON object" in _path_and_message(payload)[1]
    status, payload = api.post({**_review(), "apiVersion": "admission.k8s.io/v1beta1"})
    assert status == 400 and _path_and_message(payload)[0] == "apiVersion"
    status, payload = api.post({**_review(), "kind": "Pod"})
    assert status == 400 and _path_and_message(payload)[0] == "kind"
    status, payload = api.post({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"})
    assert status == 400 and _path_and_message(payload)[0] == "request"
    no_uid = _review()
    del no_uid["request"]["uid"]
    status, payload = api.post(no_uid)
    assert status == 400 and _path_and_message(payload)[0] == "request.uid"
    no_object = _review()
    del no_object["request"]["object"]
    status, payload = api.post(no_object)
    assert status == 400 and _path_and_message(payload)[0] == "request.object"

    # An unknown cluster is a 401 like a wrong token (no hint whether it exists).
    status, payload = api.post(_review(), path="/admission/v1/clusters/nowhere/pods")
    assert status == 401 and "nowhere" not in json.dumps(payload)
    status, payload = api.post(b"", method="GET")
    assert status == 405

    oversized = json.dumps(_review(padding="x" * (3 * 1024 * 1024))).encode()
    big = _Client(hub)
    try:
        status, payload = big.post(oversized)
    finally:
        big.close()
    assert status == 413 and "limit" in _path_and_message(payload)[1]

    passing = (_review(resource="deployments"), _review(operation="UPDATE"), _review(subResource="status"))
    for request in passing:
        status, payload = api.post(request)
        assert status == 200
        response = payload["response"]
        assert response == {"uid": request["request"]["uid"], "allowed": True}

    api.close()
    api = _Client(hub)
    refused = _review()
    refused["request"]["object"]["metadata"]["annotations"] = {"sidecarhub.io/sidecarset-hash": "[1]"}
    status, payload = api.post(refused)
    assert status == 200
    assert payload["response"]["allowed"] is False
    assert payload["response"]["status"]["code"] == 400
    assert "must be a JSON object" in payload["response"]["status"]["message"]
    api.close()


def test_answers_carry_the_core_patch_and_latency_is_measured(hub: Hub) -> None:
    hub.publish(sidecarset("lat-a"))
    hub.publish(sidecarset("lat-b", volumes=[{"name": "cache", "emptyDir": {}}]))
    api = _Client(hub)
    review = _review()
    status, payload = api.post(review)
    assert status == 200 and payload["response"]["patchType"] == "JSONPatch"
    patch = json.loads(base64.b64decode(payload["response"]["patch"]))
    patched = jsonpatch.apply_patch(review["request"]["object"], patch)
    assert [c["name"] for c in patched["spec"]["containers"]] == ["lat-a-agent", "lat-b-agent", "app"]

    durations = []
    for _ in range(300):
        started = time.perf_counter()
        status, payload = api.post(_review())
        durations.append(time.perf_counter() - started)
        assert status == 200 and payload["response"]["allowed"] is True
    api.close()
    p50, p99 = percentile(durations, 0.5) * 1000, percentile(durations, 0.99) * 1000
    handler = hub.server.handler_seconds[-300:]
    print(
        f"\nadmission over HTTPS, 2 active SidecarSets, keep-alive, one client: p50 {p50:.2f} ms, "
        f"p99 {p99:.2f} ms (handler only: p50 {percentile(handler, 0.5) * 1000:.2f} ms, "
        f"p99 {percentile(handler, 0.99) * 1000:.2f} ms)"
    )
    assert p99 < 250


def test_warm_up_reads_definitions_and_namespace_labels_before_the_first_review(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    # What an admission worker runs before it serves (sidecarhub.admission_wsgi.warmed_application).
    hub.publish(sidecarset("warm-a"))
    admission._entries.clear()
    with admission._namespace_lock:
        admission._namespace_cache.clear()
    with caplog.at_level(logging.INFO, logger="clusters.admission"):
        assert admission.warm_up() >= 1
    # Its synthetic review presents the cluster's webhook token: refused, it would warm nothing
    # past the token check.
    assert "unauthenticated" not in caplog.text
    snapshot = admission._entries["alpha"].snapshot
    assert "warm-a" in [candidate.name for candidate in snapshot.index.candidates]
    namespaces = {item.metadata.name for item in hub.core.list_namespace().items if item.metadata}
    with admission._namespace_lock:
        cached = {
            namespace for cluster_id, namespace in admission._namespace_cache if cluster_id == hub.cluster.pk
        }
    assert cached == namespaces
    # The warm-up's own synthetic review left no trace: a real one is answered as before.
    api = _Client(hub)
    status, payload = api.post(_review())
    api.close()
    assert status == 200 and payload["response"]["patchType"] == "JSONPatch"
