"""Fixtures of the injection end-to-end tests: the hub's Django app served over TLS on 127.0.0.1
(a background thread), the sandbox cluster ``alpha`` registered with its webhook pointing there,
and helpers to publish SidecarSets and to compute what the core says a pod should become.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.db import connections
from kubernetes import client
from kubernetes.client.rest import ApiException

from clusters.models import Cluster
from clusters.push import create_target, serve_revision
from clusters.services import import_kubeconfig, set_webhook_token, update_cluster
from clusters.webhooks import WEBHOOK_CONFIGURATION_NAME, register_webhook
from sandbox.pki import ServingCertificate, make_serving_certificate
from sandbox.testing import RunningCluster, SandboxPool, wait_for
from sidecarhub.models import SidecarSet as SidecarSetRow
from sidecarhub.services import create_sidecarset, publish_sidecarset, update_sidecarset
from sidecarhub.sidecarset import (
    InjectionCandidate,
    InjectionResult,
    InjectionRevision,
    inject,
)
from sidecarhub.sidecarset.annotations import ANNOTATION_HASH

# --- the hub over TLS -------------------------------------------------------------------------


class _TlsWsgiServer(ThreadedWSGIServer):
    """Django's threaded dev server; TLS is negotiated in each connection's own thread."""

    ssl_context: ssl.SSLContext

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.open_sockets: set[socket.socket] = set()
        self.open_sockets_lock = threading.Lock()

    def finish_request(self, request: Any, client_address: Any) -> None:
        with contextlib.suppress(OSError):  # as gunicorn does: no Nagle delay on small answers
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            # wrap_socket takes over the descriptor: track the TLS socket, not ``request``.
            wrapped = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        with self.open_sockets_lock:
            self.open_sockets.add(wrapped)
        try:
            super().finish_request(wrapped, client_address)
        finally:
            with self.open_sockets_lock:
                self.open_sockets.discard(wrapped)
            with contextlib.suppress(OSError):
                wrapped.close()

    def drop_connections(self) -> None:
        """Cut every open (keep-alive) connection, as a stopped process would."""
        with self.open_sockets_lock:
            sockets = list(self.open_sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class HubServer:
    """The hub's admission listener (``sidecarhub.admission_wsgi``) on https://127.0.0.1:<port>;
    records every AdmissionReview request."""

    certs: ServingCertificate
    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    handler_seconds: list[float] = field(default_factory=list)
    _server: _TlsWsgiServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _app(self) -> Callable[..., Any]:
        # Imported here, once Django is set up by pytest-django (the module sets it up itself
        # when a server imports it).
        from sidecarhub.admission_wsgi import AdmissionApp

        admission_app = AdmissionApp()

        def recording_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            admission = environ.get("PATH_INFO", "").startswith("/admission/")
            if admission:
                length = int(environ.get("CONTENT_LENGTH") or 0)
                body = environ["wsgi.input"].read(length) if length else b""
                environ["wsgi.input"] = io.BytesIO(body)
                with contextlib.suppress(ValueError, AttributeError, KeyError, TypeError):
                    self.requests.append(json.loads(body)["request"])
            started = time.perf_counter()
            response = admission_app(environ, start_response)
            try:
                result = list(response)
            finally:
                # Keep-alive connections hold this thread open: never keep a database session
                # past the request, or the test database cannot be dropped at the end.
                connections.close_all()
            if admission:
                self.handler_seconds.append(time.perf_counter() - started)
            return result

        return recording_app

    def start(self) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.certs.cert), str(self.certs.key))
        server = _TlsWsgiServer(("127.0.0.1", self.port), _QuietHandler)
        server.ssl_context = context
        server.set_app(self._app())
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="hub-tls", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.drop_connections()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def ssl_client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.certs.ca_cert))

    def seen(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        return [item for item in list(self.requests) if predicate(item)]


@pytest.fixture(scope="module")
def hub_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    certs = make_serving_certificate(tmp_path_factory.mktemp("webhook-tls"), hosts=("127.0.0.1", "localhost"))
    server = HubServer(certs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def trust_sandbox_apiserver(cluster: Cluster, running: RunningCluster) -> Cluster:
    """Give the hub the webhook token the sandbox's apiserver presents (what ``cluster webhook-auth
    NAME --token-file`` does in ``make run``): its admission calls are then authenticated."""
    set_webhook_token(cluster.pk, token=running.webhook_token)
    return Cluster.objects.get(pk=cluster.pk)


@pytest.fixture(scope="module")
def _webhook_cleanup(sandbox_pool: SandboxPool) -> Iterator[None]:
    """Remove the webhook configuration from ``alpha`` after the module (other tests share it)."""
    yield
    running = sandbox_pool.get("alpha")
    with contextlib.suppress(ApiException):
        client.AdmissionregistrationV1Api(running.api_client).delete_mutating_webhook_configuration(
            WEBHOOK_CONFIGURATION_NAME, _preload_content=False
        )


@dataclass
class Hub:
    """One test's view: the cluster row, the sandbox, the TLS server."""

    cluster: Cluster
    k8s: RunningCluster
    server: HubServer

    @property
    def core(self) -> client.CoreV1Api:
        return self.k8s.core

    def publish(self, document: Mapping[str, Any], *, serve: bool = True) -> None:
        """Create or update, target ``alpha`` explicitly (once) and publish. A first revision is
        served at once; a later one only once its release's gate opens (decision 17), which
        ``serve`` does here directly (these tests are about injection, not about releases)."""
        name = document["metadata"]["name"]
        existing = SidecarSetRow.objects.filter(name=name).first()
        if existing is None:
            row = create_sidecarset(dict(document), actor=None)
            create_target(sidecarset_id=row.pk, cluster_id=self.cluster.pk)
        else:
            update_sidecarset(name, source=dict(document), actor=None, expected_version=existing.version)
        revision = publish_sidecarset(name, actor=None)
        if serve:
            serve_revision(revision.sidecarset_id, self.cluster.pk, revision.pk)

    def create_pod(self, namespace: str, pod: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"dry_run": "All"} if dry_run else {}
        return json.loads(
            self.core.create_namespaced_pod(namespace, dict(pod), _preload_content=False, **kwargs).data  # type: ignore[arg-type, attr-defined]  # a dict is sent as is; _preload_content=False: a raw urllib3 response
        )

    def wait_active(self, namespace: str) -> None:
        """The apiserver picks up webhook configurations through an informer: probe with dry runs
        until one reaches the hub."""

        def reached() -> bool:
            name = f"probe-{uuid.uuid4().hex[:8]}"
            self.create_pod(namespace, make_pod(name, {"probe": "yes"}), dry_run=True)
            return bool(self.server.seen(lambda r: r.get("name") == name))

        wait_for(reached, timeout_seconds=30, interval_seconds=0.25, what="the webhook to be active")

    def request_for(self, namespace: str, name: str) -> dict[str, Any]:
        """The last AdmissionReview request the hub got for pod ``namespace/name``."""
        found = self.server.seen(
            lambda r: r.get("namespace") == namespace and r.get("name") == name and not r.get("dryRun")
        )
        assert found, f"the hub never saw pod {namespace}/{name}"
        return found[-1]

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        body = json.loads(self.core.read_namespace(namespace, _preload_content=False).data)  # type: ignore[attr-defined]  # _preload_content=False: a raw urllib3 response
        return dict(body["metadata"].get("labels") or {})


@pytest.fixture
def hub(
    k8s: RunningCluster,
    hub_server: HubServer,
    _webhook_cleanup: None,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> Hub:
    """``alpha`` registered (webhook URL = the TLS server, caBundle = its CA, webhook token = the one
    its apiserver presents) and its webhook applied."""
    settings.SIDECARHUB_WEBHOOK_CA_FILE = str(hub_server.certs.ca_cert)
    # No queued health check or webhook registration: the webhook is applied here, at once.
    with django_capture_on_commit_callbacks(execute=False):
        cluster, _ = import_kubeconfig(name="alpha", kubeconfig_path=k8s.kubeconfig, context="alpha")
        cluster = update_cluster(cluster.pk, changes={"webhook_url": hub_server.url})
        cluster = trust_sandbox_apiserver(cluster, k8s)
    register_webhook(cluster.pk)
    return Hub(cluster=cluster, k8s=k8s, server=hub_server)


# --- documents and pods ----------------------------------------------------------------------


def sidecarset(name: str, *, selector: Mapping[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    """A v1beta1 SidecarSet document; default: one ``<name>-agent`` container, selector app=web."""
    body: dict[str, Any] = {
        "selector": {"matchLabels": dict(selector or {"app": "web"})},
        "containers": [{"name": f"{name}-agent", "image": f"{name}-agent:1.0"}],
    }
    body.update(spec)
    return {
        "apiVersion": "apps.kruise.io/v1beta1",
        "kind": "SidecarSet",
        "metadata": {"name": name},
        "spec": body,
    }


def make_pod(
    name: str, labels: Mapping[str, str] | None = None, annotations: Mapping[str, str] | None = None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": dict(labels or {"app": "web"})}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
    }


def container_names(pod: Mapping[str, Any], key: str = "containers") -> list[str]:
    return [item["name"] for item in (pod.get("spec") or {}).get(key) or []]


# --- what the core says ------------------------------------------------------------------------


def core_candidates(*names: str) -> list[InjectionCandidate]:
    """Candidates built independently of the hub's cache: the core re-hashes every revision."""
    candidates = []
    for name in names:
        row = SidecarSetRow.objects.get(name=name)
        revisions = list(row.revisions.order_by("number"))
        built = {
            item.pk: InjectionRevision(sidecarset=item.to_core(), name=item.name, number=item.number)
            for item in revisions
        }
        assert row.current_revision_id is not None  # published
        latest = built[row.current_revision_id]
        history = tuple(value for pk, value in built.items() if pk != row.current_revision_id)
        candidates.append(InjectionCandidate(latest=latest, history=history))
    return candidates


def injection_time(pod: Mapping[str, Any]) -> datetime:
    records = json.loads(pod["metadata"]["annotations"][ANNOTATION_HASH])
    stamp = next(iter(records.values()))["updateTimestamp"]
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def expected_injection(
    request: Mapping[str, Any],
    namespace_labels: Mapping[str, str] | None,
    names: tuple[str, ...],
    now: datetime,
) -> InjectionResult:
    pod = json.loads(json.dumps(request["object"]))
    pod.setdefault("metadata", {}).setdefault("namespace", request["namespace"])
    return inject(pod, namespace_labels, core_candidates(*names), now=now, seed=request["uid"])


def assert_subset(expected: Any, actual: Any, path: str = "") -> None:
    """``expected`` is contained in ``actual`` (the apiserver adds defaults to new containers)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{path}.{key}: missing (expected {value!r})"
            assert_subset(value, actual[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{path}: expected a list, got {actual!r}"
        assert len(actual) == len(expected), f"{path}: {expected!r} != {actual!r}"
        for index, (left, right) in enumerate(zip(expected, actual, strict=True)):
            assert_subset(left, right, f"{path}[{index}]")
    else:
        assert expected == actual, f"{path}: expected {expected!r}, got {actual!r}"


def assert_as_core_says(created: Mapping[str, Any], expected: InjectionResult) -> None:
    """The created pod is the core's output: same annotations and labels, same container lists
    (names and order, every field the core set), same volumes and imagePullSecrets."""
    want = expected.pod
    assert (created["metadata"].get("annotations") or {}) == (want["metadata"].get("annotations") or {})
    assert (created["metadata"].get("labels") or {}) == (want["metadata"].get("labels") or {})
    for key in ("initContainers", "containers", "volumes", "imagePullSecrets"):
        wanted = (want.get("spec") or {}).get(key)
        if wanted is None:
            assert not (created.get("spec") or {}).get(key), f"spec.{key} should be absent"
        else:
            assert_subset(wanted, created["spec"].get(key), f"spec.{key}")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]
