"""The pod admission webhook as a service: AdmissionReview ``admission.k8s.io/v1`` in, answer out.

:func:`review_pod_admission` is the whole decision for one call of
``POST /admission/v1/clusters/<cluster>/pods`` (the listener's WSGI app,
``sidecarhub.admission_wsgi``, only routes, reads the body and writes the JSON). Guarantees:

- It answers every well-formed AdmissionReview with HTTP 200 and a ``response`` carrying the
  request's ``uid``. Only CREATE of ``pods`` (no subresource) is injected (decision 10);
  anything else is allowed unchanged. A core ``InjectionError`` is a denial (``allowed: false``,
  ``status.code`` 400, the core's message). The patch is the core's ``InjectionResult.json_patch()``
  (built from what injection changed), base64-encoded, with ``patchType: JSONPatch``; the
  core's warnings go into ``warnings``.
- Only the cluster's apiserver is answered (``clusters.admission_auth``): a call without the
  cluster's webhook token (when it requires one), with a wrong token, or naming a cluster the hub
  does not know is a 401, one answer for all (no hint whether the cluster exists). Checked before
  the body is parsed.
- Malformed input is a 400 whose message names the field (``request.uid``...); a body over
  ``SIDECARHUB_ADMISSION_MAX_BODY_BYTES`` is a 413.
  It never raises: an unexpected error is logged and answered as the cluster's
  ``failurePolicy`` says (Ignore: allowed without a patch, with a warning; Fail: denied, 500 in
  ``status.code`` but HTTP 200).
- No side effects, so a ``dryRun`` request gets exactly the answer a real one would (the
  webhook is registered with ``sideEffects: None``). It never waits on Celery or Redis.

Active revisions cache (per process, per cluster)
--------------------------------------------------
The candidates handed to the core are the SidecarSets targeting the cluster
(``clusters.targeting.sidecarset_ids_targeting``) with a placement there: the revision the
cluster SERVES (decision 17, ``SidecarSetPlacement.serving_revision``; not necessarily the
current one) as ``latest``, every retained revision as ``history`` (revision pinning), each an
``InjectionRevision`` with the stored ``revision_hash`` / ``hash_without_images`` so the core
never re-hashes per request. Revisions are immutable, so a parsed revision is reused across
rebuilds by its id. Each snapshot also carries the core's ``CandidateIndex`` of its candidates,
built once, so a review matches only the SidecarSets that may select its pod.

Several web processes (gunicorn workers) serve the endpoint, so an in-process signal alone
cannot invalidate every copy. Each process therefore keeps a **definitions generation** per
cluster: one SQL statement reading ``(count, max id)`` of revisions (insert/delete-only rows, so
any publish, prune or deletion changes the pair), ``(count, max id, max updated_at)`` of targets,
the cluster row's ``(id, updated_at)`` (labels decide selector targets), and the ``(count, max
serving_since)`` of the cluster's placements (a gate that opens, or a rollback). The generation is
read at most once every ``SIDECARHUB_ADMISSION_GENERATION_CHECK_SECONDS`` (default 1 s) per
cluster per process, and candidates are rebuilt only when it changed. In the publishing process
the ``revision_published`` / ``sidecarset_deleted`` signals also force the next request to
re-check at once. A publish thus reaches every process within the check interval plus one
rebuild (tested: within 2 seconds). If the database cannot be read, the last snapshot is used
(logged); without any snapshot the endpoint answers 503 and the cluster's failurePolicy applies.

Warm-up
-------
:func:`warm_up` does, before a web process serves, what the first admission of each cluster
would otherwise do (snapshot, kube client, every namespace's labels in one list); each worker of
the admission listener runs it before it accepts a connection
(``sidecarhub.admission_wsgi.warmed_application``).

Namespace labels
----------------
The apiserver does not send the Namespace object. Labels are read with one GET of that
Namespace through the cluster's cached kube client (single attempt, short timeout
``SIDECARHUB_ADMISSION_NAMESPACE_TIMEOUT_SECONDS``) and kept per process for
``SIDECARHUB_ADMISSION_NAMESPACE_TTL_SECONDS`` (default 30 s): a namespace's label change reaches
SidecarSet ``namespaceSelector`` matching within that TTL. When the GET fails, the core gets
``None`` (SidecarSets with a namespaceSelector do not match, as in Kruise). Namespaces excluded
by decision 6 never reach the hub: the webhook's namespaceSelector filters them in the apiserver.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone
from kubernetes import client

from clusters.admission_auth import (
    UNAUTHENTICATED_MESSAGE,
    WebhookCredential,
    is_authenticated,
    webhook_credential,
)
from clusters.choices import FailurePolicy
from clusters.kube import cached_kube_client
from clusters.models import Cluster, SidecarSetPlacement, SidecarSetTarget
from clusters.services import webhook_token_of
from clusters.targeting import sidecarset_ids_targeting
from sidecarhub.models import SidecarSetRevision
from sidecarhub.sidecarset import (
    CandidateIndex,
    InjectionCandidate,
    InjectionError,
    InjectionRevision,
    inject,
    json_text,
)
from sidecarhub.sidecarset import SidecarSet as CoreSidecarSet
from sidecarhub.signals import revision_published, sidecarset_deleted

__all__ = [
    "ADMISSION_API_VERSION",
    "UNAUTHENTICATED",
    "AdmissionAnswer",
    "active_candidates",
    "invalidate_active_revisions",
    "load_active_candidates",
    "namespace_labels",
    "review_pod_admission",
    "warm_up",
]

log = logging.getLogger(__name__)

ADMISSION_API_VERSION = "admission.k8s.io/v1"
ADMISSION_KIND = "AdmissionReview"
_POD_RESOURCE = {"group": "", "version": "v1", "resource": "pods"}


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def max_body_bytes() -> int:
    """The largest AdmissionReview accepted (the apiserver's own request limit is 3 MiB)."""
    return int(_setting("SIDECARHUB_ADMISSION_MAX_BODY_BYTES", 3 * 1024 * 1024))


@dataclass(frozen=True)
class AdmissionAnswer:
    """What the view sends: an HTTP status, a JSON body and extra response headers."""

    status: int
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()


# One answer for every refused caller (clusters.admission_auth): the same status, body and headers.
UNAUTHENTICATED = AdmissionAnswer(
    401,
    {"errors": [{"path": None, "message": UNAUTHENTICATED_MESSAGE}]},
    (("WWW-Authenticate", 'Bearer realm="sidecarhub-admission"'),),
)


def error_answer(status: int, message: str, path: str | None = None) -> AdmissionAnswer:
    return AdmissionAnswer(status, {"errors": [{"path": path, "message": message}]})


def too_large_answer(size: int | None = None) -> AdmissionAnswer:
    limit = max_body_bytes()
    shown = f" ({size} bytes)" if size is not None else ""
    return error_answer(413, f"the AdmissionReview{shown} is larger than the {limit}-byte limit")


# --- the active revisions cache ----------------------------------------------------------------


@dataclass(frozen=True)
class _Snapshot:
    """One cluster's candidates at one definitions generation (immutable; swapped whole)."""

    cluster: Cluster | None
    generation: tuple[Any, ...]
    candidates: tuple[InjectionCandidate, ...]
    revisions: Mapping[int, InjectionRevision]
    # Built once per snapshot: each admission matches only the candidates that may concern its pod.
    index: CandidateIndex
    credential: WebhookCredential | None = None  # None for an unknown cluster


@dataclass
class _Entry:
    snapshot: _Snapshot
    checked_at: float
    epoch: int


_entries: dict[str, _Entry] = {}
_rebuild_locks: dict[str, threading.Lock] = {}
# Anyone may name any cluster (and gets a 401 for an unknown one): snapshots of unknown names are
# kept only while the cache holds fewer entries than this, so such calls cannot grow it forever.
MAX_CACHED_CLUSTER_NAMES = 4096
# Bumped by the definitions' signals in this process: the next request re-checks at once.
_invalidation_epoch = 0


def invalidate_active_revisions(*_args: Any, **_kwargs: Any) -> None:
    """Make every cluster's next admission in this process re-read the definitions generation.

    Connected to ``revision_published`` and ``sidecarset_deleted`` (signal receivers accept and
    ignore their arguments). Other processes notice through the generation check.
    """
    global _invalidation_epoch
    _invalidation_epoch += 1


def _definitions_generation(cluster_name: str) -> tuple[Any, ...]:
    """One statement: the change fingerprint of revisions, targets and this cluster's row."""
    quote = connection.ops.quote_name
    revisions = quote(SidecarSetRevision._meta.db_table)
    targets = quote(SidecarSetTarget._meta.db_table)
    clusters = quote(Cluster._meta.db_table)
    placements = quote(SidecarSetPlacement._meta.db_table)
    this_cluster = f"cluster_id = (SELECT id FROM {clusters} WHERE name = %s) AND should_exist"
    sql = (
        f"SELECT (SELECT COUNT(*) FROM {revisions}), (SELECT MAX(id) FROM {revisions}),"
        f" (SELECT COUNT(*) FROM {targets}), (SELECT MAX(id) FROM {targets}),"
        f" (SELECT MAX(updated_at) FROM {targets}),"
        f" (SELECT id FROM {clusters} WHERE name = %s), (SELECT updated_at FROM {clusters} WHERE name = %s),"
        f" (SELECT COUNT(*) FROM {placements} WHERE {this_cluster}),"
        f" (SELECT MAX(serving_since) FROM {placements} WHERE {this_cluster})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [cluster_name] * 4)
        row = cursor.fetchone()
    return tuple(str(value) for value in row)


def _injection_revision(revision: SidecarSetRevision) -> InjectionRevision:
    return InjectionRevision(
        sidecarset=CoreSidecarSet.from_document(revision.document),
        name=revision.name,
        number=revision.number,
        hash=revision.revision_hash,
        hash_without_image=revision.hash_without_images,
    )


def load_active_candidates(
    cluster: Cluster, known: Mapping[int, InjectionRevision] | None = None
) -> tuple[tuple[InjectionCandidate, ...], dict[int, InjectionRevision]]:
    """The cluster's active SidecarSets as core candidates (four queries), and the revisions by id.

    Active: targeting the cluster and served there. ``known`` revisions (by id) are reused instead
    of re-parsed: revisions never change.
    """
    known = known or {}
    ids = sidecarset_ids_targeting(cluster)
    current = dict(
        SidecarSetPlacement.objects.filter(
            cluster=cluster, sidecarset_id__in=ids, should_exist=True, serving_revision__isnull=False
        ).values_list("sidecarset_id", "serving_revision_id")
    )
    by_sidecarset: dict[int, list[int]] = {}
    rows = SidecarSetRevision.objects.filter(sidecarset_id__in=current).order_by("sidecarset_id", "number")
    for pk, sidecarset_id in rows.values_list("pk", "sidecarset_id"):
        by_sidecarset.setdefault(sidecarset_id, []).append(pk)
    missing = [pk for pks in by_sidecarset.values() for pk in pks if pk not in known]
    parsed = {row.pk: _injection_revision(row) for row in rows.filter(pk__in=missing)} if missing else {}
    revisions: dict[int, InjectionRevision] = {}
    candidates: list[InjectionCandidate] = []
    for sidecarset_id, current_id in current.items():
        pks = [pk for pk in by_sidecarset.get(sidecarset_id, []) if pk in known or pk in parsed]
        for pk in pks:
            revisions[pk] = known[pk] if pk in known else parsed[pk]
        if current_id not in revisions:
            continue  # pruned or deleted between the queries; the next generation fixes it
        history = tuple(revisions[pk] for pk in pks if pk != current_id)
        candidates.append(InjectionCandidate(latest=revisions[current_id], history=history))
    candidates.sort(key=lambda candidate: candidate.name)
    return tuple(candidates), revisions


def _rebuild(cluster_name: str, generation: tuple[Any, ...], previous: _Snapshot | None) -> _Snapshot:
    cluster = Cluster.objects.filter(name=cluster_name).first()
    if cluster is None:
        return _Snapshot(None, generation, (), {}, CandidateIndex(()))
    candidates, revisions = load_active_candidates(cluster, previous.revisions if previous else None)
    # The cluster row's updated_at is in the generation: a new token or setting rebuilds this.
    return _Snapshot(
        cluster, generation, candidates, revisions, CandidateIndex(candidates), webhook_credential(cluster)
    )


class DefinitionsUnavailable(Exception):
    """The database could not be read and there is no earlier snapshot of this cluster."""


def _is_fresh(entry: _Entry | None, epoch: int, interval: float) -> bool:
    return entry is not None and entry.epoch == epoch and time.monotonic() - entry.checked_at < interval


def active_candidates(cluster_name: str) -> _Snapshot:
    """The cluster's current snapshot (see the module docstring for when it is re-read).

    ``snapshot.cluster`` is None when no cluster has that name. Raises ``DefinitionsUnavailable``
    only when the database fails before any snapshot of this cluster exists. Thread-safe: one
    thread per cluster re-checks, the others wait for it or use the snapshot they find.
    """
    interval = _setting("SIDECARHUB_ADMISSION_GENERATION_CHECK_SECONDS", 1.0)
    epoch = _invalidation_epoch
    entry = _entries.get(cluster_name)
    if entry is not None and _is_fresh(entry, epoch, interval):
        return entry.snapshot
    lock = _rebuild_locks.setdefault(cluster_name, threading.Lock())  # atomic under the GIL
    with lock:
        entry = _entries.get(cluster_name)
        if entry is not None and _is_fresh(entry, epoch, interval):
            return entry.snapshot  # another thread re-checked while this one waited
        previous = entry.snapshot if entry is not None else None
        try:
            generation = _definitions_generation(cluster_name)
            snapshot = (
                previous
                if previous is not None and previous.generation == generation
                else _rebuild(cluster_name, generation, previous)
            )
        except Exception as exc:  # DatabaseError above all; the endpoint must still answer
            if isinstance(exc, DatabaseError):
                _close_broken_connection()
            if previous is None:
                raise DefinitionsUnavailable(str(exc)) from exc
            log.warning("admission: definitions unreadable, using the last snapshot of %s", cluster_name)
            snapshot = previous
        if snapshot.cluster is None and entry is None and len(_entries) >= MAX_CACHED_CLUSTER_NAMES:
            _rebuild_locks.pop(cluster_name, None)
            return snapshot
        _entries[cluster_name] = _Entry(snapshot, time.monotonic(), epoch)
        return snapshot


def _close_broken_connection() -> None:
    # After a database error the connection may be unusable; let Django reopen it next time.
    if connection.connection is not None and not connection.is_usable():
        connection.close()


# --- namespace labels ---------------------------------------------------------------------------

_namespace_cache: dict[tuple[int, str], tuple[dict[str, str], float]] = {}
# When a read last failed: a cluster whose namespaces cannot be read (permissions, an apiserver
# down) must not cost every admission a full read timeout; it is tried again after a while.
_namespace_failures: dict[tuple[int, str], float] = {}
_namespace_lock = threading.Lock()


def namespace_labels(cluster: Cluster, namespace: str) -> dict[str, str] | None:
    """The Namespace's labels from the per-process cache, or one bounded GET; None if unreadable."""
    if not namespace:
        return None
    key = (cluster.pk, namespace)
    ttl = _setting("SIDECARHUB_ADMISSION_NAMESPACE_TTL_SECONDS", 30.0)
    with _namespace_lock:
        cached = _namespace_cache.get(key)
    if cached is not None and time.monotonic() - cached[1] < ttl:
        return cached[0]
    retry = _setting("SIDECARHUB_ADMISSION_NAMESPACE_RETRY_SECONDS", 5.0)
    with _namespace_lock:
        failed_at = _namespace_failures.get(key)
    if failed_at is not None and time.monotonic() - failed_at < retry:
        return cached[0] if cached is not None else None
    timeout = _setting("SIDECARHUB_ADMISSION_NAMESPACE_TIMEOUT_SECONDS", 1.0)
    try:
        kube = cached_kube_client(cluster)
        # One attempt, short timeout: the apiserver is waiting for this answer.
        body = kube.call(
            client.CoreV1Api(kube.api_client).read_namespace,
            namespace,
            what=f"read namespace {namespace}",
            timeout_seconds=timeout,
            attempts=1,
        )
    except Exception as exc:  # ApiException, KubeError, timeouts, bad JSON: never fail admission
        log.info("admission: cannot read namespace %s of cluster %s: %s", namespace, cluster.name, exc)
        with _namespace_lock:
            _namespace_failures[key] = time.monotonic()
        return cached[0] if cached is not None else None
    metadata = body.get("metadata") if isinstance(body, dict) else None
    labels = {str(k): str(v) for k, v in ((metadata or {}).get("labels") or {}).items()}
    with _namespace_lock:
        _namespace_cache[key] = (labels, time.monotonic())
        _namespace_failures.pop(key, None)
    return labels


# --- warm-up (before a web process serves its first admission) ----------------------------------


# A worker warms up before gunicorn's heartbeat starts (its ``timeout``, 30 s, would kill it):
# clusters not reached within this budget are warmed by their first admission instead.
WARM_UP_BUDGET_SECONDS = 15.0


def warm_up() -> int:
    """Make a fresh process's first admission cost what every later one does; returns how many
    clusters were warmed.

    For every registered cluster: its definitions snapshot (revisions parsed, candidate index
    built), its kube client, and every namespace's labels in one list call (cached as the
    per-namespace GETs would, same TTL); then one review of a synthetic pod through the whole
    handler, so lazy imports and first-call paths run here. Without it, a fresh worker's first
    admission took ≈ 420 ms (issue 17). Errors are logged, never raised: a cluster that cannot be
    warmed (or is not reached within ``WARM_UP_BUDGET_SECONDS``; each namespace list is one
    attempt) is warmed by its first admission instead.
    """
    deadline = time.monotonic() + WARM_UP_BUDGET_SECONDS
    warmed = 0
    try:
        names = list(Cluster.objects.order_by("name").values_list("name", flat=True))
    except DatabaseError:  # the database is down: serve anyway, each first admission warms up
        log.warning("admission: no warm-up, the clusters cannot be read", exc_info=True)
        _close_broken_connection()
        return 0
    for name in names:
        if time.monotonic() > deadline:
            log.warning("admission: warm-up budget spent after %d of %d cluster(s)", warmed, len(names))
            break
        try:
            snapshot = active_candidates(name)
            cluster = snapshot.cluster
            if cluster is None:
                continue
            if snapshot.candidates:
                kube = cached_kube_client(cluster)
                listed = kube.call(
                    client.CoreV1Api(kube.api_client).list_namespace,
                    what="list namespaces",
                    timeout_seconds=max(1.0, min(5.0, deadline - time.monotonic())),
                    attempts=1,
                )
                now = time.monotonic()
                with _namespace_lock:
                    for item in listed.get("items") or []:
                        metadata = item.get("metadata") or {}
                        labels = {str(k): str(v) for k, v in (metadata.get("labels") or {}).items()}
                        _namespace_cache[(cluster.pk, str(metadata.get("name")))] = (labels, now)
            # With the token the cluster's apiserver presents: a refused review would stop at the
            # token check and leave the parse, the core and the answer cold.
            token = webhook_token_of(cluster)
            review_pod_admission(name, _WARM_UP_REVIEW, f"Bearer {token}" if token else "")
            warmed += 1
        except Exception:  # never keep a worker from starting
            log.warning("admission: warming up cluster %s failed", name, exc_info=True)
    return warmed


# A dry-run CREATE of a pod no SidecarSet selects (no labels), in a namespace decision 6 excludes:
# it runs the parse, the snapshot, the core and the answer without any apiserver call.
_WARM_UP_REVIEW = json.dumps(
    {
        "apiVersion": ADMISSION_API_VERSION,
        "kind": ADMISSION_KIND,
        "request": {
            "uid": "sidecarhub-warm-up",
            "operation": "CREATE",
            "resource": _POD_RESOURCE,
            "namespace": "kube-system",
            "dryRun": True,
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "warm-up", "namespace": "kube-system"},
                "spec": {"containers": [{"name": "app", "image": "app"}]},
            },
        },
    }
).encode()


# --- the review --------------------------------------------------------------------------------


class _BadReview(Exception):
    def __init__(self, path: str | None, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def _parse(body: bytes) -> dict[str, Any]:
    """The ``request`` of a well-formed AdmissionReview v1, or ``_BadReview`` naming the field."""
    try:
        review = json_text.loads(body)  # json.loads's value and errors, mostly at orjson's speed
    except (ValueError, UnicodeDecodeError) as exc:
        raise _BadReview(None, f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise _BadReview(None, "the body is not valid JSON: nested too deeply") from None
    if not isinstance(review, dict):
        raise _BadReview(None, "the body must be a JSON object (an AdmissionReview)")
    if review.get("apiVersion") != ADMISSION_API_VERSION:
        got = review.get("apiVersion")
        raise _BadReview("apiVersion", f"must be {ADMISSION_API_VERSION!r} (got {got!r})")
    if review.get("kind") != ADMISSION_KIND:
        raise _BadReview("kind", f"must be {ADMISSION_KIND!r} (got {review.get('kind')!r})")
    request = review.get("request")
    if not isinstance(request, dict):
        raise _BadReview("request", "required: an object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise _BadReview("request.uid", "required: a non-empty string")
    return request


def _review(uid: str, *, allowed: bool = True, **fields: Any) -> AdmissionAnswer:
    response: dict[str, Any] = {"uid": uid, "allowed": allowed, **fields}
    return AdmissionAnswer(
        200, {"apiVersion": ADMISSION_API_VERSION, "kind": ADMISSION_KIND, "response": response}
    )


def _is_pod_create(request: Mapping[str, Any]) -> bool:
    resource = request.get("resource")
    return (
        request.get("operation") == "CREATE"
        and isinstance(resource, Mapping)
        and {key: resource.get(key) for key in _POD_RESOURCE} == _POD_RESOURCE
        and not request.get("subResource")
    )


def review_pod_admission(cluster_name: str, body: bytes, authorization: str = "") -> AdmissionAnswer:
    """Answer one AdmissionReview sent by ``cluster_name``'s apiserver (see the module docstring);
    ``authorization`` is the request's ``Authorization`` header ("" when absent).

    Never raises: an error before the cluster is known (its failurePolicy unknown) is a 503,
    so the apiserver applies the webhook's failurePolicy.
    """
    try:
        return _answer(cluster_name, body, authorization)
    except Exception:
        log.exception("admission: unexpected error for cluster %s", cluster_name)
        return error_answer(503, "sidecarhub could not evaluate this request (internal error)")


def _answer(cluster_name: str, body: bytes, authorization: str) -> AdmissionAnswer:
    if len(body) > max_body_bytes():
        return too_large_answer(len(body))
    try:
        snapshot = active_candidates(cluster_name)
    except DefinitionsUnavailable:
        log.exception("admission: definitions unavailable for cluster %s", cluster_name)
        return error_answer(503, "the hub cannot read its definitions right now")
    cluster = snapshot.cluster
    if not is_authenticated(snapshot.credential, authorization) or cluster is None:
        # Its own outcome, apart from bad input: a misconfigured apiserver or a stranger.
        log.info("admission: unauthenticated call refused (cluster name %s)", cluster_name)
        return UNAUTHENTICATED
    try:
        request = _parse(body)
    except _BadReview as exc:
        return error_answer(400, exc.message, exc.path)
    uid = request["uid"]
    if not _is_pod_create(request):
        return _review(uid)  # decision 10: CREATE of pods only
    pod = request.get("object")
    if not isinstance(pod, dict):
        return error_answer(400, "required for a pod CREATE: the pod object", "request.object")
    for part in ("metadata", "spec"):
        if not isinstance(pod.get(part, {}), dict):
            return error_answer(400, "must be an object", f"request.object.{part}")
    # Decoded here and held by nobody else: the core may take the pod over instead of copying it
    # when it is shallow enough that the copy could not have refused it (inject's ``copy_pod``).
    private = json_text.nesting_bound(body) <= json_text.shallow_limit()
    try:
        return _inject(cluster, snapshot.index, request, pod, uid, private=private)
    except Exception:  # the endpoint never answers 500; the failurePolicy decides
        log.exception("admission: unexpected error for cluster %s (uid %s)", cluster_name, uid)
        message = "sidecarhub could not evaluate this pod (internal error)"
        if cluster.webhook_failure_policy == FailurePolicy.FAIL:
            return _review(uid, allowed=False, status={"code": 500, "message": message})
        return _review(uid, warnings=[f"{message}; created without sidecars"])


def _inject(
    cluster: Cluster,
    candidates: CandidateIndex,
    request: Mapping[str, Any],
    pod: dict[str, Any],
    uid: str,
    *,
    private: bool = False,
) -> AdmissionAnswer:
    namespace = str(request.get("namespace") or (pod.get("metadata") or {}).get("namespace") or "")
    if namespace and isinstance(pod.get("metadata"), dict) and not pod["metadata"].get("namespace"):
        # The core reads the namespace from the pod; the patch is computed from this copy, and
        # no operation touches metadata.namespace, so the apiserver's object is unaffected.
        pod = {**pod, "metadata": {**pod["metadata"], "namespace": namespace}}
    labels = namespace_labels(cluster, namespace) if candidates else {}
    try:
        result = inject(pod, labels, candidates, now=timezone.now(), seed=uid, copy_pod=not private)
    except InjectionError as exc:
        return _review(uid, allowed=False, status={"code": 400, "message": str(exc)})
    fields: dict[str, Any] = {}
    if result.changed:
        patch = json_text.dumps(result.json_patch()).encode()  # what json.dumps writes, faster
        fields["patchType"] = "JSONPatch"
        fields["patch"] = base64.b64encode(patch).decode()
    if result.warnings:
        fields["warnings"] = list(result.warnings)
    return _review(uid, **fields)


def _connect_signals() -> None:
    """In-process invalidation on publish and deletion (the generation check covers the rest).

    Connected when this module is imported, which the URLconf does before any request of a web
    process is served, so a publish through the API of this process is seen at once.
    """
    revision_published.connect(invalidate_active_revisions, dispatch_uid="clusters.admission.published")
    sidecarset_deleted.connect(invalidate_active_revisions, dispatch_uid="clusters.admission.deleted")


_connect_signals()
