"""The sandbox is a real Kubernetes control plane: these tests prove it.

They talk to a real kube-apiserver (built from Go modules) through the official client; the
pod simulator plays the kubelet.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from kubernetes.client.rest import ApiException

from sandbox.pki import make_serving_certificate
from sandbox.testing import RunningCluster, wait_for

pytestmark = pytest.mark.k8s


def _pod(name: str, *containers: tuple[str, str], labels: dict[str, str] | None = None) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": {"containers": [{"name": c, "image": image} for c, image in containers]},
    }


def _read(k8s: RunningCluster, namespace: str, name: str) -> dict:
    return json.loads(k8s.core.read_namespaced_pod(name, namespace, _preload_content=False).data)  # type: ignore[attr-defined]  # _preload_content=False: a raw urllib3 response


def _ready(pod: dict) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _statuses(pod: dict) -> dict[str, dict]:
    return {s["name"]: s for s in pod.get("status", {}).get("containerStatuses") or []}


def _wait_ready(k8s: RunningCluster, namespace: str, name: str) -> dict:
    def ready_pod() -> dict | None:
        pod = _read(k8s, namespace, name)
        return pod if _ready(pod) else None

    return wait_for(ready_pod, what=f"pod {namespace}/{name} Ready")


def test_pod_becomes_running_and_ready_with_spec_images(k8s: RunningCluster, k8s_namespace: str) -> None:
    k8s.core.create_namespaced_pod(
        k8s_namespace,
        _pod("web", ("app", "nginx:1.25"), ("log", "fluentbit:2.0")),  # type: ignore[arg-type]  # stubs want a model object; a dict is sent as is
        _preload_content=False,
    )
    pod = _wait_ready(k8s, k8s_namespace, "web")
    assert pod["spec"]["nodeName"] == k8s.simulator.node_name  # bound by the simulator
    assert pod["status"]["phase"] == "Running"
    statuses = _statuses(pod)
    assert {n: s["image"] for n, s in statuses.items()} == {"app": "nginx:1.25", "log": "fluentbit:2.0"}
    for status in statuses.values():
        assert status["ready"] is True
        assert status["started"] is True
        assert status["restartCount"] == 0
        assert status["containerID"].startswith("containerd://")
        assert "sha256:" in status["imageID"]
        assert "running" in status["state"]


def test_in_place_image_patch_restarts_only_that_container(k8s: RunningCluster, k8s_namespace: str) -> None:
    k8s.core.create_namespaced_pod(
        k8s_namespace,
        _pod("web", ("app", "nginx:1.25"), ("log", "fluentbit:2.0")),  # type: ignore[arg-type]  # stubs want a model object; a dict is sent as is
        _preload_content=False,
    )
    before = _statuses(_wait_ready(k8s, k8s_namespace, "web"))

    k8s.core.patch_namespaced_pod(
        "web",
        k8s_namespace,
        {"spec": {"containers": [{"name": "log", "image": "fluentbit:2.1"}]}},
        _preload_content=False,
    )

    after = wait_for(
        lambda: (s := _statuses(_read(k8s, k8s_namespace, "web")))["log"]["image"] == "fluentbit:2.1" and s,
        what="the new image in containerStatuses",
    )
    log = after["log"]
    assert log["restartCount"] == 1
    assert log["containerID"] != before["log"]["containerID"]
    assert log["imageID"] != before["log"]["imageID"]
    assert log["lastState"]["terminated"]["containerID"] == before["log"]["containerID"]
    assert after["app"] == before["app"]  # the other container was not touched


def test_patching_a_container_env_is_rejected_by_the_apiserver(
    k8s: RunningCluster, k8s_namespace: str
) -> None:
    k8s.core.create_namespaced_pod(k8s_namespace, _pod("web", ("app", "nginx:1.25")), _preload_content=False)  # type: ignore[arg-type]  # stubs want a model object; a dict is sent as is
    _wait_ready(k8s, k8s_namespace, "web")
    with pytest.raises(ApiException) as caught:
        k8s.core.patch_namespaced_pod(
            "web",
            k8s_namespace,
            {"spec": {"containers": [{"name": "app", "env": [{"name": "A", "value": "1"}]}]}},
            _preload_content=False,
        )
    assert caught.value.status == 422
    assert caught.value.body is not None
    assert "pod updates may not change fields other than" in json.loads(caught.value.body)["message"]


def test_a_deployment_produces_pods_that_the_simulator_runs(k8s: RunningCluster, k8s_namespace: str) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
            },
        },
    }
    k8s.apps.create_namespaced_deployment(k8s_namespace, deployment, _preload_content=False)  # type: ignore[arg-type]  # stubs want a model object; a dict is sent as is

    def ready_replicas() -> int | None:
        body = json.loads(
            k8s.apps.read_namespaced_deployment("web", k8s_namespace, _preload_content=False).data  # type: ignore[attr-defined]  # _preload_content=False: a raw urllib3 response
        )
        return body.get("status", {}).get("readyReplicas") == 3 or None

    wait_for(ready_replicas, timeout_seconds=60, what="3 ready replicas from the controller-manager")
    pods = json.loads(k8s.core.list_namespaced_pod(k8s_namespace, _preload_content=False).data)["items"]  # type: ignore[attr-defined]  # _preload_content=False: a raw urllib3 response
    assert len(pods) == 3
    assert all(p["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet" for p in pods)
    assert all(_ready(p) for p in pods)


def test_image_that_fails_to_pull_is_never_ready(k8s: RunningCluster, k8s_namespace: str) -> None:
    k8s.knobs.pull_failures.add("registry.local/broken:*")
    k8s.core.create_namespaced_pod(
        k8s_namespace,
        _pod("web", ("app", "registry.local/broken:1")),  # type: ignore[arg-type]  # stubs want a model object; a dict is sent as is
        _preload_content=False,
    )
    status = wait_for(
        lambda: _statuses(_read(k8s, k8s_namespace, "web")).get("app"), what="a container status"
    )
    assert status["state"]["waiting"]["reason"] == "ImagePullBackOff"
    assert status["ready"] is False
    assert not _ready(_read(k8s, k8s_namespace, "web"))


def test_crash_looping_image_and_readiness_delay(k8s: RunningCluster, k8s_namespace: str) -> None:
    k8s.knobs.crash_loops.add("crasher:*")
    k8s.knobs.ready_delay_seconds["slow:*"] = 2.0
    k8s.core.create_namespaced_pod(k8s_namespace, _pod("crash", ("app", "crasher:1")), _preload_content=False)  # type: ignore[arg-type]  # stubs want a model object; a dict is sent as is
    k8s.core.create_namespaced_pod(k8s_namespace, _pod("slow", ("app", "slow:1")), _preload_content=False)  # type: ignore[arg-type]  # stubs want a model object; a dict is sent as is

    crash = wait_for(lambda: _statuses(_read(k8s, k8s_namespace, "crash")).get("app"), what="crash status")
    assert crash["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert crash["restartCount"] >= 1
    slow = wait_for(lambda: _statuses(_read(k8s, k8s_namespace, "slow")).get("app"), what="slow status")
    assert slow["started"] is True and slow["ready"] is False  # started, not yet ready
    _wait_ready(k8s, k8s_namespace, "slow")


def test_terminating_pods_are_force_deleted(k8s: RunningCluster, k8s_namespace: str) -> None:
    k8s.core.create_namespaced_pod(k8s_namespace, _pod("web", ("app", "nginx:1.25")), _preload_content=False)  # type: ignore[arg-type]  # stubs want a model object; a dict is sent as is
    _wait_ready(k8s, k8s_namespace, "web")
    k8s.core.delete_namespaced_pod("web", k8s_namespace, _preload_content=False)  # default 30s grace

    def gone() -> bool:
        try:
            _read(k8s, k8s_namespace, "web")
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, timeout_seconds=15, what="the pod to be deleted")


def test_native_sidecar_init_container_status(k8s: RunningCluster, k8s_namespace: str) -> None:
    pod = _pod("web", ("app", "nginx:1.25"))
    pod["spec"]["initContainers"] = [
        {"name": "setup", "image": "busybox:1"},
        {"name": "proxy", "image": "envoy:1", "restartPolicy": "Always"},
    ]
    k8s.core.create_namespaced_pod(k8s_namespace, pod, _preload_content=False)  # type: ignore[arg-type]  # stubs want a model object; a dict is sent as is
    ready = _wait_ready(k8s, k8s_namespace, "web")
    init = {s["name"]: s for s in ready["status"]["initContainerStatuses"]}
    assert init["setup"]["state"]["terminated"]["reason"] == "Completed"
    assert "running" in init["proxy"]["state"] and init["proxy"]["started"] is True


@pytest.fixture
def label_webhook(tmp_path: Path) -> Iterator[tuple[int, bytes, list[dict]]]:
    """An HTTPS AdmissionReview server on 127.0.0.1 (self-signed CA) that adds a label to pods."""
    certs = make_serving_certificate(tmp_path / "webhook")
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(review["request"])
            patch = [{"op": "add", "path": "/metadata/labels/mutated-by", "value": "test-webhook"}]
            body = json.dumps(
                {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "response": {
                        "uid": review["request"]["uid"],
                        "allowed": True,
                        "patchType": "JSONPatch",
                        "patch": base64.b64encode(json.dumps(patch).encode()).decode(),
                    },
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(certs.cert), str(certs.key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], certs.ca_cert.read_bytes(), seen
    finally:
        server.shutdown()
        server.server_close()


def test_mutating_webhook_on_127_0_0_1_is_called_on_pod_create(
    k8s: RunningCluster, label_webhook: tuple[int, bytes, list[dict]]
) -> None:
    port, ca_pem, seen = label_webhook
    namespace = f"wh-{port}"
    k8s.core.create_namespace(
        {"metadata": {"name": namespace, "labels": {"webhook-test": namespace}}},  # type: ignore[arg-type]  # stubs want a model object; a dict is sent as is
        _preload_content=False,
    )
    config_name = f"test-label-{port}"
    admission = __import__("kubernetes").client.AdmissionregistrationV1Api(k8s.api_client)
    admission.create_mutating_webhook_configuration(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": config_name},
            "webhooks": [
                {
                    "name": "label.test.sidecarhub.io",
                    "admissionReviewVersions": ["v1"],
                    "sideEffects": "None",
                    "failurePolicy": "Fail",
                    "timeoutSeconds": 5,
                    "clientConfig": {
                        "url": f"https://127.0.0.1:{port}/mutate",
                        "caBundle": base64.b64encode(ca_pem).decode(),
                    },
                    "rules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["pods"],
                            "scope": "Namespaced",
                        }
                    ],
                    "namespaceSelector": {"matchLabels": {"webhook-test": namespace}},
                }
            ],
        },
        _preload_content=False,
    )
    try:
        # The apiserver picks up new configurations through an informer: probe with dry-run.
        def mutated_dry_run() -> bool:
            body = json.loads(
                k8s.core.create_namespaced_pod(  # type: ignore[attr-defined]  # _preload_content=False: a raw urllib3 response
                    namespace,
                    _pod("probe", ("app", "nginx:1")),  # type: ignore[arg-type]  # stubs want a model object; a dict is sent as is
                    dry_run="All",
                    _preload_content=False,
                ).data
            )
            return body["metadata"]["labels"].get("mutated-by") == "test-webhook"

        wait_for(mutated_dry_run, timeout_seconds=30, interval_seconds=0.25, what="the webhook to be active")
        created = json.loads(
            k8s.core.create_namespaced_pod(  # type: ignore[attr-defined]  # _preload_content=False: a raw urllib3 response
                namespace,
                _pod("web", ("app", "nginx:1")),  # type: ignore[arg-type]  # stubs want a model object; a dict is sent as is
                _preload_content=False,
            ).data
        )
        assert created["metadata"]["labels"]["mutated-by"] == "test-webhook"
        assert seen[-1]["operation"] == "CREATE"
        assert seen[-1]["kind"] == {"group": "", "version": "v1", "kind": "Pod"}
    finally:
        admission.delete_mutating_webhook_configuration(config_name, _preload_content=False)
        k8s.core.delete_namespace(namespace, _preload_content=False)


def test_two_clusters_run_side_by_side(k8s_pair: tuple[RunningCluster, RunningCluster]) -> None:
    alpha, beta = k8s_pair
    assert alpha.cluster.server != beta.cluster.server
    marker = "only-in-alpha"
    alpha.core.create_namespace({"metadata": {"name": marker}}, _preload_content=False)  # type: ignore[arg-type]  # stubs want a model object; a dict is sent as is
    try:
        alpha_names = {
            n["metadata"]["name"]
            for n in json.loads(alpha.core.list_namespace(_preload_content=False).data)["items"]  # type: ignore[attr-defined]  # _preload_content=False: a raw urllib3 response
        }
        beta_names = {
            n["metadata"]["name"]
            for n in json.loads(beta.core.list_namespace(_preload_content=False).data)["items"]  # type: ignore[attr-defined]  # _preload_content=False: a raw urllib3 response
        }
        assert marker in alpha_names
        assert marker not in beta_names
        for running in (alpha, beta):
            running.core.create_namespaced_pod(
                "default",
                _pod(f"p-{running.name}", ("app", "nginx:1")),  # type: ignore[arg-type]  # stubs want a model object; a dict is sent as is
                _preload_content=False,
            )
            _wait_ready(running, "default", f"p-{running.name}")
            running.core.delete_namespaced_pod(f"p-{running.name}", "default", _preload_content=False)
    finally:
        alpha.core.delete_namespace(marker, _preload_content=False)


def test_simulator_recovers_after_an_apiserver_restart(k8s: RunningCluster, k8s_namespace: str) -> None:
    k8s.cluster.stop_apiserver()
    k8s.cluster.start_apiserver()
    k8s.core.create_namespaced_pod(k8s_namespace, _pod("after", ("app", "nginx:1")), _preload_content=False)  # type: ignore[arg-type]  # stubs want a model object; a dict is sent as is
    pod = _wait_ready(k8s, k8s_namespace, "after")
    assert _statuses(pod)["app"]["image"] == "nginx:1"
