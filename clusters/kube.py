"""One Kubernetes API client per cluster, built from the cluster's decrypted credentials.

Each ``KubeClient`` has its own ``kubernetes.client.Configuration`` and ``ApiClient`` (never the
process-global config, never ``load_kube_config()``). Every call carries a timeout; 429, 5xx and
connection errors are retried with exponential backoff and jitter; results are plain JSON
(``_preload_content=False`` + ``orjson.loads``), not generated model objects; pods are decoded
into compact records of the same shape (``sidecarhub.sidecarset.pod_records``).

Callers only ever see two exceptions, whose messages never contain credentials:

- ``ClusterUnreachable``: the apiserver could not be reached (connection refused, timeout, TLS).
- ``ClusterApiError``: the apiserver answered with an error (``status`` is the HTTP code; 0 when
  the hub cannot even build a client, e.g. undecryptable credentials).

Use::

    with open_kube_client(cluster) as kube:       # a fresh client, closed on exit
        kube.version()
    kube = cached_kube_client(cluster)            # per-process cache, rebuilt when the row changes
    kube.call(client.CoreV1Api(kube.api_client).list_namespaced_pod, "ns", what="list pods")
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import random
import shutil
import stat
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import orjson
import urllib3
from django.conf import settings
from kubernetes import client
from kubernetes.client.rest import ApiException

from clusters.crypto import ClusterCredentials, CredentialsUnreadable, decrypt_credentials
from sidecarhub.sidecarset.pod_records import decode_pod_list

if TYPE_CHECKING:
    from clusters.models import Cluster

__all__ = [
    "APPLY_PATCH_CONTENT_TYPE",
    "FIELD_MANAGER",
    "ClusterApiError",
    "ClusterUnreachable",
    "KubeClient",
    "KubeError",
    "PodListing",
    "cached_kube_client",
    "forget_kube_client",
    "open_kube_client",
]

log = logging.getLogger(__name__)

FIELD_MANAGER = "sidecarhub"
APPLY_PATCH_CONTENT_TYPE = "application/apply-patch+yaml"
MERGE_PATCH_CONTENT_TYPE = "application/merge-patch+json"
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_REDACTED = "[redacted]"


class KubeError(Exception):
    """Base of the domain exceptions raised by ``KubeClient`` (messages are credential-free)."""

    def __init__(self, message: str, *, cluster_name: str = "") -> None:
        super().__init__(message)
        self.cluster_name = cluster_name


class ClusterUnreachable(KubeError):
    """The cluster's apiserver could not be reached (after retries)."""


class ClusterApiError(KubeError):
    """The apiserver answered with an error; ``status`` is the HTTP status (0: no client)."""

    def __init__(self, message: str, *, status: int, reason: str = "", cluster_name: str = "") -> None:
        super().__init__(message, cluster_name=cluster_name)
        self.status = status
        self.reason = reason

    @property
    def not_found(self) -> bool:
        return self.status == 404


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, _REDACTED)
    return text


def _status_message(exc: ApiException) -> str:
    """The apiserver's ``Status.message`` (or the reason), trimmed; never the response headers."""
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    if body:
        try:
            data = json.loads(body)
            if isinstance(data, dict) and data.get("message"):
                return str(data["message"])[:1000]
        except ValueError:
            pass
    return str(exc.reason or "")


def _connection_reason(exc: BaseException) -> str:
    """A short description of a connection failure (no URL, no headers)."""
    inner: BaseException = exc
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        inner = exc.reason
    if isinstance(inner, urllib3.exceptions.NewConnectionError | ConnectionRefusedError):
        text = str(inner)
        return "connection refused" if "refused" in text.lower() else "cannot connect"
    if isinstance(inner, urllib3.exceptions.TimeoutError | TimeoutError):
        return "timed out"
    if isinstance(inner, urllib3.exceptions.SSLError):
        return "TLS handshake failed (check the CA bundle and server name)"
    if isinstance(inner, urllib3.exceptions.ProtocolError):
        return "connection dropped"
    return type(inner).__name__


class KubeClient:
    """A client bound to one cluster. Thread-safe for calls; ``close()`` releases connections
    and deletes the private temp files holding a client certificate and key (if any)."""

    def __init__(
        self,
        *,
        cluster_name: str,
        api_server_url: str,
        ca_bundle: str,
        credentials: ClusterCredentials,
        insecure_skip_tls_verify: bool = False,
        tls_server_name: str = "",
        timeout_seconds: float | None = None,
        max_attempts: int | None = None,
        backoff_base_seconds: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cluster_name = cluster_name
        self.api_server_url = api_server_url.rstrip("/")
        self.timeout_seconds = timeout_seconds or _setting("SIDECARHUB_KUBE_TIMEOUT_SECONDS", 10.0)
        self.max_attempts = max(1, int(max_attempts or _setting("SIDECARHUB_KUBE_MAX_ATTEMPTS", 4)))
        self.backoff_base_seconds = (
            backoff_base_seconds
            if backoff_base_seconds is not None
            else _setting("SIDECARHUB_KUBE_BACKOFF_SECONDS", 0.2)
        )
        self._sleep = sleep
        self._secrets = credentials.secrets()
        self._tempdir: str | None = None

        configuration = client.Configuration(host=self.api_server_url)
        configuration.verify_ssl = not insecure_skip_tls_verify
        if ca_bundle:
            configuration.ca_cert_data = ca_bundle
        if tls_server_name:
            configuration.tls_server_name = tls_server_name
        # Retries are ours (with backoff, for every verb); urllib3 must not retry on its own.
        configuration.retries = False
        # The generated client can read proxies from the environment; a cluster registry entry is
        # a direct endpoint, as in kubectl unless configured otherwise.
        if credentials.token:
            configuration.api_key = {"BearerToken": credentials.token}
            configuration.api_key_prefix = {"BearerToken": "Bearer"}
        else:
            self._tempdir = tempfile.mkdtemp(prefix="sidecarhub-kube-")
            os.chmod(self._tempdir, stat.S_IRWXU)
            configuration.cert_file = self._write_private("client.crt", credentials.client_certificate_pem)
            configuration.key_file = self._write_private("client.key", credentials.client_key_pem)
        self.api_client = client.ApiClient(configuration)
        self.api_client.user_agent = "sidecarhub"
        # If the client is garbage-collected without close(), the key file still goes away.
        self._finalizer = weakref.finalize(self, shutil.rmtree, self._tempdir or "", True)

    def _write_private(self, filename: str, content: str) -> str:
        assert self._tempdir is not None
        path = os.path.join(self._tempdir, filename)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
        return path

    # --- lifecycle -------------------------------------------------------------------
    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.api_client.close()
        self._finalizer()

    def __enter__(self) -> KubeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<KubeClient {self.cluster_name} {self.api_server_url}>"

    # --- the one call path -----------------------------------------------------------
    def call(
        self,
        operation: Callable[..., Any],
        *args: Any,
        what: str,
        timeout_seconds: float | None = None,
        attempts: int | None = None,
        decode: Callable[[bytes], Any] = orjson.loads,
        **kwargs: Any,
    ) -> Any:
        """Run a generated API method with a timeout and retries; return its JSON (or None).

        ``decode`` reads a non-empty body: plain JSON by default; pods are decoded into compact
        records (``pod_records.decode_pod`` / ``decode_pod_list``).

        ``what`` describes the call for error messages ("apply SidecarSet web"). 429/5xx and
        connection errors are retried ``max_attempts`` times (or ``attempts``) with backoff; other
        HTTP errors raise ``ClusterApiError`` at once.
        """
        attempts = attempts or self.max_attempts
        timeout = timeout_seconds or self.timeout_seconds
        kwargs["_request_timeout"] = (min(5.0, timeout), timeout)
        kwargs["_preload_content"] = False
        last: KubeError | None = None
        for attempt in range(1, attempts + 1):
            try:
                response = operation(*args, **kwargs)
                raw = response.data
                return decode(raw) if raw else None  # orjson: a quarter faster than json
            except ApiException as exc:
                status = int(exc.status or 0)
                message = _redact(
                    f"cluster {self.cluster_name}: {what} failed: HTTP {status} "
                    f"{exc.reason or ''}: {_status_message(exc)}".rstrip(": "),
                    self._secrets,
                )
                last = ClusterApiError(
                    message, status=status, reason=str(exc.reason or ""), cluster_name=self.cluster_name
                )
                if status not in _RETRY_STATUSES:
                    raise last from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                last = ClusterUnreachable(
                    _redact(
                        f"cluster {self.cluster_name}: {what} failed: cannot reach {self.api_server_url} "
                        f"({_connection_reason(exc)})",
                        self._secrets,
                    ),
                    cluster_name=self.cluster_name,
                )
            if attempt < attempts:
                delay = self.backoff_base_seconds * (2 ** (attempt - 1))
                self._sleep(delay * (0.5 + random.random()))
        assert last is not None
        log.info("%s (after %d attempts)", last, attempts)
        raise last from None

    # --- typed helpers (plain JSON) --------------------------------------------------
    def version(self) -> dict[str, Any]:
        """``GET /version``: ``gitVersion``, ``major``, ``minor``..."""
        return self.call(client.VersionApi(self.api_client).get_code, what="read /version")

    def list_pods(self, *, label_selector: str | None = None, page_size: int = 500) -> list[dict[str, Any]]:
        """Every pod in every namespace (paged), as compact records (``pod_records``): only the
        fields the hub reads, so a 10,000-pod list stays small in a worker."""
        api = client.CoreV1Api(self.api_client)
        pods: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": page_size}
            if token:
                kwargs["_continue"] = token
            if label_selector:
                kwargs["label_selector"] = label_selector
            page = self.call(
                api.list_pod_for_all_namespaces, what="list pods", decode=decode_pod_list, **kwargs
            )
            pods.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return pods

    def list_namespaces(self) -> list[dict[str, Any]]:
        page = self.call(client.CoreV1Api(self.api_client).list_namespace, what="list namespaces")
        return list(page.get("items") or [])

    def namespace_labels(self) -> dict[str, dict[str, str]]:
        """Every namespace's labels, by name (what namespaceSelector matching needs)."""
        return {
            str((ns.get("metadata") or {}).get("name")): dict((ns.get("metadata") or {}).get("labels") or {})
            for ns in self.list_namespaces()
        }

    def apply_crd(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply of a CustomResourceDefinition (field manager ``sidecarhub``)."""
        name = manifest["metadata"]["name"]
        return self.call(
            client.ApiextensionsV1Api(self.api_client).patch_custom_resource_definition,
            name,
            manifest,
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type=APPLY_PATCH_CONTENT_TYPE,
            what=f"apply CRD {name}",
        )

    def read_crd(self, name: str) -> dict[str, Any]:
        return self.call(
            client.ApiextensionsV1Api(self.api_client).read_custom_resource_definition,
            name,
            what=f"read CRD {name}",
        )

    def apply_cluster_object(
        self, group: str, version: str, plural: str, body: dict[str, Any], *, status: bool = False
    ) -> dict[str, Any]:
        """Server-side apply of a cluster-scoped custom object (or of its status subresource)."""
        api = client.CustomObjectsApi(self.api_client)
        name = body["metadata"]["name"]
        operation = api.patch_cluster_custom_object_status if status else api.patch_cluster_custom_object
        return self.call(
            operation,
            group,
            version,
            plural,
            name,
            body,
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type=APPLY_PATCH_CONTENT_TYPE,
            what=f"apply {plural}{'/status' if status else ''} {name}",
        )

    def get_cluster_object(self, group: str, version: str, plural: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return self.call(
                client.CustomObjectsApi(self.api_client).get_cluster_custom_object,
                group,
                version,
                plural,
                name,
                what=f"read {plural} {name}",
            )
        except ClusterApiError as exc:
            if exc.not_found:
                return None
            raise

    def list_cluster_objects(
        self, group: str, version: str, plural: str, *, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        extra: dict[str, Any] = {"label_selector": label_selector} if label_selector else {}
        page = self.call(
            client.CustomObjectsApi(self.api_client).list_cluster_custom_object,
            group,
            version,
            plural,
            what=f"list {plural}",
            **extra,
        )
        return list(page.get("items") or [])

    def delete_cluster_object(self, group: str, version: str, plural: str, name: str) -> bool:
        """Delete the object; False when it was already gone (idempotent)."""
        try:
            self.call(
                client.CustomObjectsApi(self.api_client).delete_cluster_custom_object,
                group,
                version,
                plural,
                name,
                what=f"delete {plural} {name}",
            )
        except ClusterApiError as exc:
            if exc.not_found:
                return False
            raise
        return True


# --- factory -----------------------------------------------------------------------------


def _build(cluster: Cluster, max_attempts: int | None = None) -> KubeClient:
    try:
        credentials = decrypt_credentials(cluster.credentials_ciphertext)
    except CredentialsUnreadable as exc:
        raise ClusterApiError(f"cluster {cluster.name}: {exc}", status=0, cluster_name=cluster.name) from None
    return KubeClient(
        cluster_name=cluster.name,
        api_server_url=cluster.api_server_url,
        ca_bundle=cluster.ca_bundle,
        credentials=credentials,
        insecure_skip_tls_verify=cluster.insecure_skip_tls_verify,
        tls_server_name=cluster.tls_server_name,
        max_attempts=max_attempts,
    )


@contextlib.contextmanager
def open_kube_client(cluster: Cluster, *, max_attempts: int | None = None) -> Iterator[KubeClient]:
    """A fresh client for ``cluster``, closed (temp files removed) on exit. ``max_attempts``
    bounds each call's retries (default ``SIDECARHUB_KUBE_MAX_ATTEMPTS``): fewer when a person
    is waiting for the answer."""
    kube = _build(cluster, max_attempts)
    try:
        yield kube
    finally:
        kube.close()


_cache: dict[int, tuple[tuple[Any, ...], KubeClient]] = {}
_cache_lock = threading.Lock()


def _fingerprint(cluster: Cluster) -> tuple[Any, ...]:
    return (
        cluster.api_server_url,
        cluster.ca_bundle,
        cluster.insecure_skip_tls_verify,
        cluster.tls_server_name,
        cluster.credentials_ciphertext,
    )


def cached_kube_client(cluster: Cluster) -> KubeClient:
    """The per-process client for ``cluster`` (one per cluster), rebuilt when its connection
    data or credentials change. Do not close it; ``forget_kube_client`` drops it."""
    key = _fingerprint(cluster)
    with _cache_lock:
        entry = _cache.get(cluster.pk)
        if entry is not None and entry[0] == key:
            return entry[1]
        kube = _build(cluster)
        if entry is not None:
            entry[1].close()
        _cache[cluster.pk] = (key, kube)
        return kube


class PodListing:
    """A cluster's pods and namespace labels, listed on first use and then shared: the status
    write-back and the drift check of one status refresh read the same list (a failed list is not
    kept: the next reader tries again)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    @functools.cached_property
    def kube(self) -> KubeClient:
        return cached_kube_client(self.cluster)

    @functools.cached_property
    def pods(self) -> list[dict[str, Any]]:
        return self.kube.list_pods()

    @functools.cached_property
    def namespace_labels(self) -> dict[str, dict[str, str]]:
        return self.kube.namespace_labels()


def forget_kube_client(cluster_id: int) -> None:
    """Close and drop the cached client of a cluster (after deletion or credential change)."""
    with _cache_lock:
        entry = _cache.pop(cluster_id, None)
    if entry is not None:
        entry[1].close()
