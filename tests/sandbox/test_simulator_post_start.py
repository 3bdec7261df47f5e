"""The pod simulator's postStart knobs (what the hot-upgrade tests need): a hook that takes a
while keeps the container running but neither ``started`` nor ready, and the pod not Ready; a
hook that fails makes the kubelet kill the container, which then crash-loops and is never ready,
while the pod's other containers keep running."""

from __future__ import annotations

import json
import time

import pytest

from sandbox.testing import RunningCluster, wait_for

pytestmark = pytest.mark.k8s


def _pod(name: str, *containers: tuple[str, str]) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [{"name": c, "image": image} for c, image in containers]},
    }


def _read(k8s: RunningCluster, namespace: str, name: str) -> dict:
    return json.loads(k8s.core.read_namespaced_pod(name, namespace, _preload_content=False).data)  # type: ignore[attr-defined]  # _preload_content=False: a raw urllib3 response


def _ready(pod: dict) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions") or []
    )


def _statuses(pod: dict) -> dict[str, dict]:
    return {s["name"]: s for s in pod.get("status", {}).get("containerStatuses") or []}


def test_post_start_delay_keeps_the_container_unstarted_and_the_pod_not_ready(
    k8s: RunningCluster, k8s_namespace: str
) -> None:
    k8s.knobs.post_start_delay_seconds["migrating:*"] = 2.0
    created = time.monotonic()
    k8s.core.create_namespaced_pod(
        k8s_namespace,
        _pod("web", ("app", "nginx:1"), ("proxy", "migrating:1")),  # type: ignore[arg-type]  # stubs want a model object; a dict is sent as is
        _preload_content=False,
    )
    proxy = wait_for(lambda: _statuses(_read(k8s, k8s_namespace, "web")).get("proxy"), what="proxy status")
    assert "running" in proxy["state"] and proxy["started"] is False and proxy["ready"] is False
    assert not _ready(_read(k8s, k8s_namespace, "web"))

    pod = wait_for(
        lambda: p if _ready(p := _read(k8s, k8s_namespace, "web")) else None,
        timeout_seconds=15,
        what="Ready once postStart returned",
    )
    assert time.monotonic() - created >= 1.0  # startedAt has second precision
    proxy = _statuses(pod)["proxy"]
    assert proxy["started"] is True and proxy["ready"] is True and proxy["restartCount"] == 0


def test_post_start_delay_adds_to_the_readiness_delay_after_an_in_place_restart(
    k8s: RunningCluster, k8s_namespace: str
) -> None:
    k8s.core.create_namespaced_pod(k8s_namespace, _pod("web", ("proxy", "proxy:1")), _preload_content=False)  # type: ignore[arg-type]  # stubs want a model object; a dict is sent as is
    wait_for(lambda: _ready(_read(k8s, k8s_namespace, "web")), what="Ready")
    k8s.knobs.post_start_delay_seconds["proxy:2"] = 1.0
    k8s.knobs.ready_delay_seconds["proxy:2"] = 1.0
    k8s.core.patch_namespaced_pod(
        "web", k8s_namespace, {"spec": {"containers": [{"name": "proxy", "image": "proxy:2"}]}}
    )
    restarting = wait_for(
        lambda: (s := _statuses(_read(k8s, k8s_namespace, "web"))["proxy"])["image"] == "proxy:2" and s,
        what="the restarted container",
    )
    assert restarting["restartCount"] == 1 and restarting["ready"] is False
    started = wait_for(
        lambda: (s := _statuses(_read(k8s, k8s_namespace, "web"))["proxy"])["started"] and s,
        timeout_seconds=10,
        what="postStart returned",
    )
    assert started["restartCount"] == 1
    wait_for(lambda: _ready(_read(k8s, k8s_namespace, "web")), timeout_seconds=10, what="Ready again")


def test_failing_post_start_crash_loops_and_leaves_the_other_containers_alone(
    k8s: RunningCluster, k8s_namespace: str
) -> None:
    k8s.core.create_namespaced_pod(
        k8s_namespace,
        _pod("web", ("app", "nginx:1"), ("proxy", "proxy:1")),  # type: ignore[arg-type]  # stubs want a model object; a dict is sent as is
        _preload_content=False,
    )
    before = _statuses(
        wait_for(lambda: p if _ready(p := _read(k8s, k8s_namespace, "web")) else None, what="Ready")
    )
    k8s.knobs.post_start_delay_seconds["proxy:bad"] = 1.0
    k8s.knobs.post_start_failures.add("proxy:bad")
    k8s.core.patch_namespaced_pod(
        "web", k8s_namespace, {"spec": {"containers": [{"name": "proxy", "image": "proxy:bad"}]}}
    )
    running = wait_for(
        lambda: (s := _statuses(_read(k8s, k8s_namespace, "web"))["proxy"])["image"] == "proxy:bad" and s,
        what="the new container running its postStart",
    )
    assert "running" in running["state"] and running["started"] is False
    failed = wait_for(
        lambda: (s := _statuses(_read(k8s, k8s_namespace, "web"))["proxy"])["state"].get("waiting") and s,
        timeout_seconds=10,
        what="the container killed after its postStart failed",
    )
    assert failed["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert "PostStartHookError" in failed["state"]["waiting"]["message"]
    assert failed["ready"] is False and failed["restartCount"] >= 2
    pod = _read(k8s, k8s_namespace, "web")
    assert not _ready(pod)
    assert _statuses(pod)["app"] == before["app"]

    # A fixed image starts again (as for any crash loop).
    k8s.knobs.post_start_failures.clear()
    k8s.core.patch_namespaced_pod(
        "web", k8s_namespace, {"spec": {"containers": [{"name": "proxy", "image": "proxy:3"}]}}
    )
    wait_for(lambda: _ready(_read(k8s, k8s_namespace, "web")), timeout_seconds=10, what="Ready again")
