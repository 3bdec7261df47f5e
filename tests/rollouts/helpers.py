"""Helpers of the rollouts tests: a SidecarSet published to the sandbox cluster ``alpha`` with
pods created as the admission webhook would inject them (the core's ``inject``), users with
and without the approve permission, and helpers to run the reconciler step by step."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth.models import User
from kubernetes import watch

from clusters.models import Cluster
from clusters.push import create_target, sync_placements
from rollouts.models import Rollout, StepTransition
from rollouts.reconciler import ReconcileReport, reconcile_cluster
from sandbox.testing import RunningCluster, wait_for
from sidecarhub.models import SidecarSet as SidecarSetRow
from sidecarhub.models import SidecarSetRevision
from sidecarhub.services import create_sidecarset, publish_sidecarset, update_sidecarset
from sidecarhub.sidecarset import InjectionCandidate, inject
from sidecarhub.sidecarset.annotations import ANNOTATION_HASH
from tests.clusters.conftest import make_user, register

__all__ = ["Fleet", "make_fleet", "make_user", "reconcile_until", "sidecar_image", "transitions_of"]

OLD_IMAGE = "log-agent:1"
NEW_IMAGE = "log-agent:2"


def document(
    name: str,
    image: str = OLD_IMAGE,
    *,
    env: list[dict[str, str]] | None = None,
    strategy: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "log-agent", "image": image}
    if env:
        container["env"] = env
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": name}}, "containers": [container]}
    if strategy:
        spec["updateStrategy"] = strategy
    metadata: dict[str, Any] = {"name": name}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "apps.kruise.io/v1beta1", "kind": "SidecarSet", "metadata": metadata, "spec": spec}


@dataclass
class Fleet:
    """One SidecarSet (revision 1 published) targeting ``cluster``, and pods injected with it."""

    running: RunningCluster
    cluster: Cluster
    namespace: str
    name: str
    revision: SidecarSetRevision
    author: User | None
    base: dict[str, Any] = field(default_factory=dict)  # strategy / annotations kept across publishes
    pods: list[str] = field(default_factory=list)

    def publish(self, image: str = NEW_IMAGE, **changes: Any) -> SidecarSetRevision:
        """Publish a new revision (the caller decides whether on-commit hooks run)."""
        row = SidecarSetRow.objects.get(name=self.name)
        update_sidecarset(
            self.name,
            source=document(self.name, image, **{**self.base, **changes}),
            actor=self.author,
            expected_version=row.version,
        )
        return publish_sidecarset(self.name, actor=self.author)

    def create_pods(
        self, count: int, *, labels: dict[str, str] | None = None, prefix: str = "pod"
    ) -> list[str]:
        core = self.revision.to_core()
        candidate = InjectionCandidate.of(
            core, revision_name=self.revision.name, revision_number=self.revision.number
        )
        names = []
        for index in range(count):
            pod_name = f"{prefix}-{index:03d}"
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": pod_name,
                    "namespace": self.namespace,
                    "labels": {"app": self.name, **(labels or {})},
                },
                "spec": {"containers": [{"name": "app", "image": "app:1"}]},
            }
            injected = inject(
                pod, {"kubernetes.io/metadata.name": self.namespace}, [candidate], now=datetime.now(UTC)
            ).pod
            self.running.core.create_namespaced_pod(self.namespace, injected, _preload_content=False)  # type: ignore[arg-type]  # stubs want a model object; a dict is sent as is
            names.append(pod_name)
        self.pods.extend(names)
        return names

    def live_pods(self) -> list[dict[str, Any]]:
        response = self.running.core.list_namespaced_pod(self.namespace, _preload_content=False)
        return list(json.loads(response.data)["items"])  # type: ignore[attr-defined]  # _preload_content=False: a raw urllib3 response

    def wait_ready(self, count: int | None = None, *, image: str | None = None, timeout: float = 60) -> None:
        wanted = count if count is not None else len(self.pods)

        def ready() -> bool:
            done = 0
            for pod in self.live_pods():
                conditions = {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions") or []}
                if conditions.get("Ready") == "True" and (
                    image is None or sidecar_image(pod, status=True) == image
                ):
                    done += 1
            return done >= wanted

        wait_for(ready, timeout_seconds=timeout, interval_seconds=0.2, what=f"{wanted} ready pods")


def sidecar_image(pod: dict[str, Any], *, status: bool = False) -> str | None:
    if status:
        for item in pod.get("status", {}).get("containerStatuses") or []:
            if item["name"] == "log-agent":
                return str(item.get("image"))
        return None
    for container in pod["spec"]["containers"]:
        if container["name"] == "log-agent":
            return str(container["image"])
    return None


def make_fleet(
    running: RunningCluster,
    namespace: str,
    *,
    author: User | None = None,
    strategy: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
    cluster_name: str = "alpha",
    cluster_settings: dict[str, Any] | None = None,
) -> Fleet:
    """Register the sandbox cluster (once), create and publish revision 1 of a fresh SidecarSet
    targeting it. On-commit hooks do not run here (no push, no rollout)."""
    cluster = Cluster.objects.filter(name=cluster_name).first() or register(
        running, cluster_name, running.name
    )
    if cluster_settings:
        Cluster.objects.filter(pk=cluster.pk).update(**cluster_settings)
        cluster.refresh_from_db()
    name = f"ro-{uuid.uuid4().hex[:8]}"
    sidecarset = create_sidecarset(document(name, strategy=strategy, annotations=annotations), actor=author)
    create_target(sidecarset_id=sidecarset.pk, cluster_id=cluster.pk, wave=0)
    revision = publish_sidecarset(name, actor=author)
    # What the publish's on-commit receiver does (a placement serving revision 1), when the test's
    # transaction never commits; idempotent when it did.
    sync_placements(sidecarset.pk)
    base = {"strategy": strategy, "annotations": annotations}
    return Fleet(running, cluster, namespace, name, revision, author, base)


def reconcile_until(
    cluster_id: int,
    predicate: Any,
    *,
    passes: int = 200,
    what: str = "condition",
    budget: float = 0.5,
    interval: float = 0.0,
) -> list[ReconcileReport]:
    """Call the reconciler synchronously (passes of ``budget`` seconds, ``interval`` apart) until
    ``predicate()`` is true. A budget of 0 ends every pass after its first turn."""
    reports: list[ReconcileReport] = []
    for _ in range(passes):
        if predicate():
            return reports
        if reports and interval:
            time.sleep(interval)
        reports.append(reconcile_cluster(cluster_id, time_budget_seconds=budget))
    assert predicate(), f"reconciler never reached {what}; last reports: {reports[-3:]}"
    return reports


def transitions_of(rollout: Rollout) -> list[tuple[Any, str, str]]:
    return [t.as_tuple() for t in StepTransition.objects.filter(rollout=rollout).select_related("step")]


def pods_by_name(items: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {pod["metadata"]["name"]: pod for pod in items}


class PodWatcher:
    """Watches the pods of one namespace through the sandbox's own client (not the hub's) and
    records, independently of the hub's rows: the most sidecar-updated pods unavailable at once
    (new spec image whose container does not yet run it ready, or pod not Ready), how often each
    pod's sidecar spec image and the hub's hash annotation changed, and when the first new image
    appeared."""

    def __init__(self, running: RunningCluster, namespace: str, target_image: str) -> None:
        self.running, self.namespace, self.target_image = running, namespace, target_image
        self.lock = threading.Lock()
        self.pods: dict[str, tuple[str | None, bool, str | None]] = {}  # name -> (spec, available, hash)
        self.max_unavailable = 0
        self.spec_changes: Counter[str] = Counter()
        self.hash_changes: Counter[str] = Counter()
        self.first_new_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pod-watcher", daemon=True)

    def __enter__(self) -> PodWatcher:
        self._thread.start()
        wait_for(lambda: self._started, timeout_seconds=10, what="the pod watch")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=40)

    _started = False

    def unavailable(self) -> int:
        with self.lock:
            return sum(
                1 for spec, available, _ in self.pods.values() if spec == self.target_image and not available
            )

    def _observe(self, pod: Any) -> None:
        name = pod.metadata.name
        spec = next((c.image for c in pod.spec.containers if c.name == "log-agent"), None)
        status = next((s for s in pod.status.container_statuses or [] if s.name == "log-agent"), None)
        ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        available = bool(ready and status is not None and status.image == spec and status.ready)
        hash_value = (pod.metadata.annotations or {}).get(ANNOTATION_HASH)
        with self.lock:
            previous = self.pods.get(name)
            if previous is not None and previous[0] != spec:
                self.spec_changes[name] += 1
                if spec == self.target_image and self.first_new_at is None:
                    self.first_new_at = time.monotonic()
            if previous is not None and previous[2] != hash_value:
                self.hash_changes[name] += 1
            self.pods[name] = (spec, available, hash_value)
            count = sum(1 for s, a, _ in self.pods.values() if s == self.target_image and not a)
            self.max_unavailable = max(self.max_unavailable, count)

    def _run(self) -> None:
        core = self.running.core
        listed = core.list_namespaced_pod(self.namespace)
        for pod in listed.items:
            self._observe(pod)
        assert listed.metadata is not None
        resource_version = listed.metadata.resource_version
        self._started = True
        while not self._stop.is_set():
            stream = watch.Watch().stream(
                core.list_namespaced_pod,
                self.namespace,
                resource_version=resource_version,
                timeout_seconds=2,
                _request_timeout=10,
            )
            for event in stream:
                if event["type"] in ("ADDED", "MODIFIED"):
                    self._observe(event["object"])
                    resource_version = event["object"].metadata.resource_version
                if self._stop.is_set():
                    break
