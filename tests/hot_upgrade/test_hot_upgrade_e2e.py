"""Hot upgrade end to end on the sandbox: the seed's hot-upgrade SidecarSet injected by the
hub's own webhook, then rolled v1 → v2 → v3 by the rollout engine (the reconciler called
synchronously, the simulator as kubelet, postStart taking a while), with a watch of every pod
state; and a failing postStart that pauses the rollout and leaves the old twin working.

**Working sidecar** (what the watch checks on every state of every pod, from the moment the
pod was first Ready): the twin named by the ``sidecarset-working-hotupgrade-container``
annotation has a spec image other than ``hotUpgradeEmptyImage``, and its container status
reports that same image, in state ``running``, ``started`` and ``ready``. A pod must also never
have both twins' spec images on the empty image.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes import watch

from clusters.models import Cluster
from clusters.push import create_target
from rollouts.choices import PATCHED_POD_UPDATE_STATES, PodUpdateOutcome, PodUpdateState, RolloutState
from rollouts.models import PodUpdate, Rollout
from rollouts.reconciler import reconcile_cluster
from rollouts.services import RolloutSettings, create_rollouts_for_revision
from sandbox.testing import wait_for
from sidecarhub.models import SidecarSet as SidecarSetRow
from sidecarhub.models import SidecarSetRevision
from sidecarhub.services import create_sidecarset, publish_sidecarset, update_sidecarset
from sidecarhub.sidecarset import compute_status
from sidecarhub.sidecarset.annotations import (
    ANNOTATION_WORKING_HOT_UPGRADE_CONTAINER,
    version_alt_annotation,
    version_annotation,
)
from tests.injection.conftest import Hub, make_pod

pytestmark = [pytest.mark.k8s, pytest.mark.django_db(transaction=True)]

NAME = "hotupgrade-sidecarset"
EMPTY = "openkruise/hotupgrade-sample:empty"
V1 = "openkruise/hotupgrade-sample:sidecarv1"
V2 = "openkruise/hotupgrade-sample:sidecarv2"
V3 = "openkruise/hotupgrade-sample:sidecarv3"
BAD = "openkruise/hotupgrade-sample:sidecarv2-broken"
TWINS = ("sidecar-1", "sidecar-2")
POST_START_SECONDS = 1.0


def seed_document(image: str, app: str) -> dict[str, Any]:
    """The hot-upgrade example of the seed document (its last section), with ``image`` and the
    selector ``app=<app>`` (one per test: pods of earlier tests' namespaces may still exist)."""
    return {
        "apiVersion": "apps.kruise.io/v1alpha1",
        "kind": "SidecarSet",
        "metadata": {"name": NAME},
        "spec": {
            "selector": {"matchLabels": {"app": app}},
            "containers": [
                {
                    "name": "sidecar",
                    "image": image,
                    "imagePullPolicy": "Always",
                    "lifecycle": {"postStart": {"exec": {"command": ["/bin/sh", "/migrate.sh"]}}},
                    "upgradeStrategy": {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": EMPTY},
                }
            ],
        },
    }


def app_label(namespace: str) -> str:
    """The selector's ``app`` value: one per test (pods of earlier tests may still exist)."""
    return f"hotupgrade-{namespace}"


def publish(hub: Hub, image: str, namespace: str) -> SidecarSetRevision:
    existing = SidecarSetRow.objects.filter(name=NAME).first()
    document = seed_document(image, app_label(namespace))
    if existing is None:
        row = create_sidecarset(document, actor=None)
        create_target(sidecarset_id=row.pk, cluster_id=hub.cluster.pk)
    else:
        update_sidecarset(NAME, source=document, actor=None, expected_version=existing.version)
    return publish_sidecarset(NAME, actor=None)


def live_pods(hub: Hub, namespace: str) -> list[dict[str, Any]]:
    return list(json.loads(hub.core.list_namespaced_pod(namespace, _preload_content=False).data)["items"])  # type: ignore[attr-defined]  # _preload_content=False: a raw urllib3 response


def images(pod: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["image"] for c in pod["spec"]["containers"]}


def working_twin(pod: dict[str, Any]) -> str:
    return json.loads(pod["metadata"]["annotations"][ANNOTATION_WORKING_HOT_UPGRADE_CONTAINER])["sidecar"]


def pod_ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def working_sidecar_problem(pod: dict[str, Any]) -> str | None:
    """Why the pod has no working sidecar (module docstring), or ``None`` when it has one."""
    specs = images(pod)
    if specs.get(TWINS[0]) == EMPTY and specs.get(TWINS[1]) == EMPTY:
        return "both twins on the empty image"
    twin = working_twin(pod)
    if specs.get(twin) in (None, EMPTY):
        return f"working twin {twin} has spec image {specs.get(twin)}"
    status = next((s for s in pod["status"].get("containerStatuses") or [] if s["name"] == twin), None)
    if status is None:
        return f"working twin {twin} has no status"
    if status.get("image") != specs[twin]:
        return f"working twin {twin} runs {status.get('image')}, spec says {specs[twin]}"
    if "running" not in (status.get("state") or {}) or status.get("started") is False:
        return f"working twin {twin} is not running ({status.get('state')})"
    if status.get("ready") is not True:
        return f"working twin {twin} is not ready"
    return None


@dataclass
class HotWatch:
    """Watches the namespace through the sandbox's own client (never the hub's) and checks every
    pod state it sees: a working sidecar at all times once the pod was Ready; records the
    working twins each pod went through and every violation."""

    hub: Hub
    namespace: str
    violations: list[str] = field(default_factory=list)
    working_history: dict[str, list[str]] = field(default_factory=dict)
    seen_ready: set[str] = field(default_factory=set)
    events: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _started: threading.Event = field(default_factory=threading.Event)

    def observe(self, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        self.events += 1
        if pod_ready(pod):
            self.seen_ready.add(name)
        if name in self.seen_ready:
            problem = working_sidecar_problem(pod)
            if problem is not None:
                self.violations.append(f"{name} rv {pod['metadata']['resourceVersion']}: {problem}")
        history = self.working_history.setdefault(name, [])
        twin = working_twin(pod)
        if not history or history[-1] != twin:
            history.append(twin)

    def run(self) -> None:
        core = self.hub.core
        listed = json.loads(core.list_namespaced_pod(self.namespace, _preload_content=False).data)  # type: ignore[attr-defined]  # _preload_content=False: a raw urllib3 response
        for pod in listed["items"]:
            self.observe(pod)
        resource_version = listed["metadata"]["resourceVersion"]
        self._started.set()
        while not self._stop.is_set():
            stream = watch.Watch().stream(
                core.list_namespaced_pod,
                self.namespace,
                resource_version=resource_version,
                timeout_seconds=2,
                _request_timeout=10,
                deserialize=False,
            )
            for event in stream:
                pod = event.get("raw_object") or event["object"]
                if isinstance(pod, str):
                    pod = json.loads(pod)
                if event["type"] in ("ADDED", "MODIFIED"):
                    self.observe(pod)
                resource_version = pod["metadata"]["resourceVersion"]
                if self._stop.is_set():
                    break


@pytest.fixture
def hot_watch(hub: Hub, k8s_namespace: str) -> Iterator[HotWatch]:
    watcher = HotWatch(hub, k8s_namespace)
    thread = threading.Thread(target=watcher.run, name="hot-watch", daemon=True)
    thread.start()
    watcher._started.wait(10)
    yield watcher
    watcher._stop.set()
    thread.join(timeout=30)


def start_pods(hub: Hub, namespace: str, count: int) -> list[str]:
    hub.wait_active(namespace)
    names = [f"hot-{index}" for index in range(count)]
    for name in names:
        hub.create_pod(namespace, make_pod(name, {"app": app_label(namespace)}))
    wait_for(
        lambda: sum(pod_ready(p) for p in live_pods(hub, namespace)) == count,
        timeout_seconds=30,
        what=f"{count} injected pods Ready",
    )
    return names


def rollout_of(revision: SidecarSetRevision, previous: SidecarSetRevision) -> Rollout:
    """The rollout the publish created (its on-commit hook runs in these transactional tests),
    or one created now. Default settings: one step of 100%, maxUnavailable 1."""
    existing = Rollout.objects.filter(to_revision=revision).first()
    if existing is not None:
        return existing
    [rollout] = create_rollouts_for_revision(
        revision.pk, actor=None, previous_revision_id=previous.pk, settings=RolloutSettings()
    )
    return rollout


def roll(hub: Hub, namespace: str, previous: SidecarSetRevision, image: str) -> tuple[Rollout, float]:
    """Publish ``image`` and drive its rollout with the synchronous reconciler until it stops
    (completed or paused); returns the rollout and the seconds it took."""
    revision = publish(hub, image, namespace)
    rollout = rollout_of(revision, previous)
    assert rollout.steps == ["100%"] and rollout.max_unavailable == "1"
    started = time.monotonic()
    deadline = started + 120
    while time.monotonic() < deadline:
        reconcile_cluster(hub.cluster.pk, time_budget_seconds=0.5)
        rollout.refresh_from_db()
        open_rows = PodUpdate.objects.filter(rollout=rollout, state__in=PATCHED_POD_UPDATE_STATES)
        if rollout.state in (RolloutState.COMPLETED, RolloutState.PAUSED) and not open_rows.exists():
            return rollout, time.monotonic() - started
    raise AssertionError(f"rollout {rollout.pk} still {rollout.state} after 120s")


@pytest.fixture
def auto_approve(hub: Hub) -> Cluster:
    Cluster.objects.filter(pk=hub.cluster.pk).update(rollout_auto_approve=True)
    hub.cluster.refresh_from_db()
    return hub.cluster


def test_seed_example_is_injected_with_x1_working_and_x2_empty(hub: Hub, k8s_namespace: str) -> None:
    publish(hub, V1, k8s_namespace)
    [name] = start_pods(hub, k8s_namespace, 1)
    [pod] = [p for p in live_pods(hub, k8s_namespace) if p["metadata"]["name"] == name]
    assert images(pod) == {"app": "nginx:1.25", "sidecar-1": V1, "sidecar-2": EMPTY}
    assert working_twin(pod) == "sidecar-1"
    annotations = pod["metadata"]["annotations"]
    assert [annotations[version_annotation(t)] for t in TWINS] == ["1", "0"]
    assert [annotations[version_alt_annotation(t)] for t in TWINS] == ["0", "1"]
    env = {c["name"]: c.get("env") or [] for c in pod["spec"]["containers"]}
    for twin in TWINS:
        refs = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in env[twin] if "valueFrom" in e}
        assert refs["SIDECARSET_VERSION"] == f"metadata.annotations['{version_annotation(twin)}']"
        assert refs["SIDECARSET_VERSION_ALT"] == f"metadata.annotations['{version_alt_annotation(twin)}']"
    assert working_sidecar_problem(pod) is None


def test_v1_v2_v3_alternate_the_working_twin_without_a_gap(
    hub: Hub, k8s_namespace: str, auto_approve: Cluster, hot_watch: HotWatch
) -> None:
    first = publish(hub, V1, k8s_namespace)
    names = start_pods(hub, k8s_namespace, 3)
    k8s = hub.k8s
    for image in (V2, V3):
        k8s.knobs.post_start_delay_seconds[image] = POST_START_SECONDS  # the migration takes a while

    statuses: list[tuple[str, dict[str, int]]] = []
    rollout2, seconds2 = roll(hub, k8s_namespace, first, V2)
    assert rollout2.state == RolloutState.COMPLETED, rollout2.reason
    pods = {p["metadata"]["name"]: p for p in live_pods(hub, k8s_namespace)}
    for name in names:
        assert images(pods[name])["sidecar-2"] == V2 and images(pods[name])["sidecar-1"] == EMPTY
        assert working_twin(pods[name]) == "sidecar-2"
        annotations = pods[name]["metadata"]["annotations"]
        assert annotations[version_annotation("sidecar-2")] == str(rollout2.to_revision_number)
        assert annotations[version_annotation("sidecar-1")] == "0"
    assert rollout2.to_revision is not None
    core2 = rollout2.to_revision.to_core()
    statuses.append(("v2", compute_status(core2, pods.values()).as_status()))

    rollout3, seconds3 = roll(hub, k8s_namespace, rollout2.to_revision, V3)
    assert rollout3.state == RolloutState.COMPLETED, rollout3.reason
    pods = {p["metadata"]["name"]: p for p in live_pods(hub, k8s_namespace)}
    for name in names:
        assert images(pods[name]) == {"app": "nginx:1.25", "sidecar-1": V3, "sidecar-2": EMPTY}
        assert working_twin(pods[name]) == "sidecar-1"
    assert rollout3.to_revision is not None
    statuses.append(("v3", compute_status(rollout3.to_revision.to_core(), pods.values()).as_status()))

    time.sleep(0.5)  # let the watch catch up with the last writes
    assert hot_watch.violations == []
    assert hot_watch.events > 30
    for name in names:
        assert hot_watch.working_history[name] == ["sidecar-1", "sidecar-2", "sidecar-1"]
    full = {"matchedPods": 3, "updatedPods": 3, "readyPods": 3, "updatedReadyPods": 3}
    assert statuses == [("v2", full), ("v3", full)]
    rows = PodUpdate.objects.filter(rollout__in=[rollout2, rollout3])
    assert {row.outcome for row in rows} == {PodUpdateOutcome.SUCCEEDED} and rows.count() == 6
    per_pod: list[float] = []
    for row in rows:
        assert row.done_at is not None and row.patched_at is not None
        per_pod.append((row.done_at - row.patched_at).total_seconds())
    print(  # measured figures for the report (pytest -s)
        f"\nhot upgrade: v2 rollout {seconds2:.1f}s, v3 rollout {seconds3:.1f}s for 3 pods; per pod "
        f"(upgrade patch → old twin empty) min {min(per_pod):.1f}s max {max(per_pod):.1f}s with a "
        f"{POST_START_SECONDS}s postStart; {hot_watch.events} watch events checked"
    )


def test_failing_post_start_pauses_and_leaves_the_old_twin_working(
    hub: Hub, k8s_namespace: str, auto_approve: Cluster, hot_watch: HotWatch
) -> None:
    first = publish(hub, V1, k8s_namespace)
    names = start_pods(hub, k8s_namespace, 2)
    hub.k8s.knobs.post_start_delay_seconds[BAD] = 0.5
    hub.k8s.knobs.post_start_failures.add(BAD)

    rollout, _ = roll(hub, k8s_namespace, first, BAD)
    assert rollout.state == RolloutState.PAUSED
    assert "1 pod updates failed" in rollout.reason
    [failed] = PodUpdate.objects.filter(rollout=rollout, outcome=PodUpdateOutcome.FAILED)
    assert "CrashLoopBackOff" in failed.error and "PostStartHookError" in failed.error
    assert "still working: sidecar-1" in failed.error
    assert "Fix the image" in rollout.explanation
    # maxUnavailable 1: the second pod was never patched.
    assert PodUpdate.objects.filter(rollout=rollout, state=PodUpdateState.CLAIMED).count() == 1

    pods = {p["metadata"]["name"]: p for p in live_pods(hub, k8s_namespace)}
    broken = pods[failed.pod_name]
    assert working_twin(broken) == "sidecar-1" and images(broken)["sidecar-1"] == V1
    assert images(broken)["sidecar-2"] == BAD
    assert working_sidecar_problem(broken) is None  # the old twin keeps working
    [other] = [n for n in names if n != failed.pod_name]
    assert images(pods[other]) == {"app": "nginx:1.25", "sidecar-1": V1, "sidecar-2": EMPTY}

    # Status: the failed pod is updated (hash) but not ready — its idle twin is not on the empty image.
    assert rollout.to_revision is not None
    status = compute_status(rollout.to_revision.to_core(), pods.values()).as_status()
    assert status == {"matchedPods": 2, "updatedPods": 1, "readyPods": 1, "updatedReadyPods": 0}

    # Paused: nothing else is patched however often the reconciler runs.
    for _ in range(3):
        reconcile_cluster(hub.cluster.pk, time_budget_seconds=0.2)
    assert (
        images(next(p for p in live_pods(hub, k8s_namespace) if p["metadata"]["name"] == other))["sidecar-2"]
        == EMPTY
    )
    assert hot_watch.violations == []


def test_status_counts_a_hot_pod_ready_only_once_its_idle_twin_is_empty(
    hub: Hub, k8s_namespace: str, auto_approve: Cluster
) -> None:
    first = publish(hub, V1, k8s_namespace)
    [name] = start_pods(hub, k8s_namespace, 1)
    hub.k8s.knobs.post_start_delay_seconds[V2] = POST_START_SECONDS
    revision = publish(hub, V2, k8s_namespace)
    rollout = rollout_of(revision, first)
    core = revision.to_core()
    [before] = live_pods(hub, k8s_namespace)
    assert compute_status(core, [before]).as_status() == {
        "matchedPods": 1,
        "updatedPods": 0,
        "readyPods": 1,
        "updatedReadyPods": 0,
    }
    seen: list[tuple[str, str, tuple[int, int, int, int]]] = []  # (working, idle image, status)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        reconcile_cluster(hub.cluster.pk, time_budget_seconds=0.2, max_patches=1)
        [pod] = live_pods(hub, k8s_namespace)
        twin = working_twin(pod)
        idle = TWINS[1] if twin == TWINS[0] else TWINS[0]
        counts = compute_status(core, [pod])
        entry = (
            twin,
            images(pod)[idle],
            (counts.matched_pods, counts.updated_pods, counts.ready_pods, counts.updated_ready_pods),
        )
        if not seen or seen[-1] != entry:
            seen.append(entry)
        rollout.refresh_from_db()
        if rollout.state == RolloutState.COMPLETED:
            break
    assert rollout.state == RolloutState.COMPLETED
    for _twin, idle_image, seen_counts in seen:
        if idle_image != EMPTY:
            assert seen_counts[2] == 0, seen  # not ready while the idle twin runs a real image
    assert ("sidecar-1", V2, (1, 1, 0, 0)) in seen  # patched, migrating: unavailable
    assert seen[-1] == ("sidecar-2", EMPTY, (1, 1, 1, 1))
    assert name == pod["metadata"]["name"]
