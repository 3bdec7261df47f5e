"""The pure hot-upgrade state machine (``sidecarhub.sidecarset.hot_upgrade``): every transition
of update.md §5.6 as the hub runs it, every failure and timeout, and the version annotations."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from typing import Any

import pytest
from hot_upgrade_pods import (
    EMPTY,
    NOW,
    V1,
    V2,
    V3,
    apply,
    injected_pod,
    kubelet,
    seed_sidecarset,
    upgrade_body,
)

from sidecarhub.sidecarset import hot_upgrade, parse_sidecarset
from sidecarhub.sidecarset.annotations import (
    ANNOTATION_WORKING_HOT_UPGRADE_CONTAINER,
    version_alt_annotation,
    version_annotation,
)
from sidecarhub.sidecarset.hot_upgrade import HotUpgradeAction as A
from sidecarhub.sidecarset.predicates import hot_upgrade_reset_due, is_consistent, is_ready

FAILURES = frozenset({"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull"})
TIMEOUT = 60.0


def step(
    sidecarset: Any, pod: dict[str, Any], *, since: Any = NOW, now: Any = NOW
) -> hot_upgrade.HotUpgradeStep:
    return hot_upgrade.next_hot_upgrade_step(
        sidecarset, pod, now=now, waiting_since=since, timeout_seconds=TIMEOUT, failure_reasons=FAILURES
    )


def images(pod: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["image"] for c in pod["spec"]["containers"]}


def working(pod: dict[str, Any]) -> str:
    return json.loads(pod["metadata"]["annotations"][ANNOTATION_WORKING_HOT_UPGRADE_CONTAINER])["sidecar"]


def versions(pod: dict[str, Any]) -> dict[str, tuple[str, str]]:
    annotations = pod["metadata"]["annotations"]
    return {
        twin: (annotations[version_annotation(twin)], annotations[version_alt_annotation(twin)])
        for twin in ("sidecar-1", "sidecar-2")
    }


def upgraded(target: Any, pod: dict[str, Any], revision_number: int) -> dict[str, Any]:
    """H0 → H1: the engine's upgrade write (idle twin → target image, versions)."""
    version = hot_upgrade.next_version(target, pod, revision_number)
    changes, annotations = hot_upgrade.upgrade_changes(target, pod, version=version)
    return apply(pod, upgrade_body(target, pod, changes, annotations))


def full_upgrade(target: Any, pod: dict[str, Any], revision_number: int) -> dict[str, Any]:
    """H0 → H3 with a kubelet that does everything at once; asserts each action on the way."""
    assert step(target, pod).action is A.PATCH_IDLE
    pod = kubelet(upgraded(target, pod, revision_number))
    decision = step(target, pod)
    assert decision.action is A.SWITCH
    pod = apply(pod, hot_upgrade.switch_patch(pod, decision.twins))
    decision = step(target, pod)
    assert decision.action is A.RESET
    pod = kubelet(apply(pod, hot_upgrade.reset_patch(target, pod, decision.twins)))
    assert step(target, pod).action is A.DONE
    return pod


def test_injected_pod_is_h0_steady_and_done_for_its_own_revision() -> None:
    pod = injected_pod()
    assert images(pod) == {"main": "busybox:1", "sidecar-1": V1, "sidecar-2": EMPTY}
    assert working(pod) == "sidecar-1"
    assert versions(pod) == {"sidecar-1": ("1", "0"), "sidecar-2": ("0", "1")}
    decision = step(seed_sidecarset(V1), pod)
    assert decision.action is A.DONE


def test_every_transition_from_h0_to_h3() -> None:
    target = seed_sidecarset(V2)
    h0 = injected_pod()

    # H0: patch the idle twin (x-2, on the empty image); the working twin is left alone.
    decision = step(target, h0)
    assert decision.action is A.PATCH_IDLE
    assert [(t.working, t.idle) for t in decision.twins] == [("sidecar-1", "sidecar-2")]
    h1 = upgraded(target, h0, 2)
    assert images(h1) == {"main": "busybox:1", "sidecar-1": V1, "sidecar-2": V2}
    assert working(h1) == "sidecar-1"  # the hub switches only once the new twin is ready
    assert versions(h1) == {"sidecar-1": ("1", "2"), "sidecar-2": ("2", "1")}  # new twin: VERSION > ALT > 0

    # H1: the kubelet has not restarted x-2 yet → wait.
    assert step(target, kubelet(h1, stale=("sidecar-2",))).action is A.WAIT_NEW
    # H1: x-2 runs v2, its postStart migrates (not started) → wait.
    migrating = kubelet(h1, not_started=("sidecar-2",))
    decision = step(target, migrating)
    assert decision.action is A.WAIT_NEW and "not running" in decision.reason
    # H1: x-2 started but not ready (probe) → wait.
    assert step(target, kubelet(h1, not_ready=("sidecar-2",))).action is A.WAIT_NEW
    # H1: x-2 ready but another container makes the pod not Ready → wait.
    assert step(target, kubelet(h1, not_ready=("main",))).action is A.WAIT_NEW

    # H1 ready: switch the working annotation.
    ready = kubelet(h1)
    decision = step(target, ready)
    assert decision.action is A.SWITCH
    h2 = apply(ready, hot_upgrade.switch_patch(ready, decision.twins))
    assert working(h2) == "sidecar-2" and images(h2) == images(h1)

    # H2: reset the old twin to the empty image.
    decision = step(target, h2)
    assert decision.action is A.RESET
    assert [(t.working, t.idle, t.idle_image) for t in decision.twins] == [("sidecar-2", "sidecar-1", V1)]
    resetting = apply(h2, hot_upgrade.reset_patch(target, h2, decision.twins))
    assert images(resetting)["sidecar-1"] == EMPTY
    assert versions(resetting) == {"sidecar-1": ("0", "2"), "sidecar-2": ("2", "0")}

    # H2 resetting: x-1 still runs v1 (the kubelet has not acted) → wait; not ready yet for status.
    stale = kubelet(resetting, stale=("sidecar-1",))
    assert step(target, stale).action is A.WAIT_RESET
    assert not is_consistent(target, stale)
    # H3: x-1 runs the empty image → done; ready and consistent as the planner counts them.
    h3 = kubelet(resetting)
    assert step(target, h3).action is A.DONE
    assert is_ready(target, h3) and is_consistent(target, h3)


def test_upgrades_alternate_the_working_twin_and_versions_keep_growing() -> None:
    pod = full_upgrade(seed_sidecarset(V2), injected_pod(), 2)
    assert working(pod) == "sidecar-2" and images(pod)["sidecar-1"] == EMPTY
    pod = full_upgrade(seed_sidecarset(V3), pod, 3)
    assert working(pod) == "sidecar-1"
    assert images(pod) == {"main": "busybox:1", "sidecar-1": V3, "sidecar-2": EMPTY}
    assert versions(pod) == {"sidecar-1": ("3", "0"), "sidecar-2": ("0", "3")}  # as Kruise leaves them
    # A rollback (target revision 1) still gives the new twin the highest version.
    assert hot_upgrade.next_version(seed_sidecarset(V1), pod, 1) == "4"
    pod = full_upgrade(seed_sidecarset(V1), pod, 1)
    assert working(pod) == "sidecar-2" and versions(pod)["sidecar-2"] == ("4", "0")


@pytest.mark.parametrize("reason", ["CrashLoopBackOff", "ImagePullBackOff"])
def test_new_twin_failure_fails_and_names_the_twin_that_keeps_working(reason: str) -> None:
    target = seed_sidecarset(V2)
    pod = kubelet(upgraded(target, injected_pod(), 2), waiting={"sidecar-2": reason})
    decision = step(target, pod)
    assert decision.action is A.FAILED and not decision.timed_out
    assert reason in decision.reason and "sidecar-2" in decision.reason
    assert [t.working for t in decision.twins] == ["sidecar-1"]
    assert working(pod) == "sidecar-1" and images(pod)["sidecar-1"] == V1
    # Kruise's reset rule would reset the migrating (or failed) new twin here; the hub's does not.
    assert not hot_upgrade_reset_due(target, pod)
    # The same waiting status while it is still about another image (the kubelet has not
    # reacted to the patch yet) is no verdict on the new one: wait.
    stale = copy.deepcopy(pod)
    [idle] = [s for s in stale["status"]["containerStatuses"] if s["name"] == "sidecar-2"]
    idle["image"] = "registry.example/sidecar:broken"
    assert step(target, stale).action is A.WAIT_NEW


def test_waits_time_out() -> None:
    target = seed_sidecarset(V2)
    migrating = kubelet(upgraded(target, injected_pod(), 2), not_started=("sidecar-2",))
    almost = NOW + timedelta(seconds=TIMEOUT - 1)
    assert step(target, migrating, now=almost).action is A.WAIT_NEW
    decision = step(target, migrating, now=NOW + timedelta(seconds=TIMEOUT))
    assert decision.action is A.FAILED and decision.timed_out and "60s after the patch" in decision.reason
    # No deadline known: wait.
    assert step(target, migrating, since=None, now=NOW + timedelta(days=1)).action is A.WAIT_NEW

    h2 = kubelet(upgraded(target, injected_pod(), 2))
    h2 = apply(h2, hot_upgrade.switch_patch(h2, step(target, h2).twins))
    resetting = apply(h2, hot_upgrade.reset_patch(target, h2, step(target, h2).twins))
    stuck = kubelet(resetting, stale=("sidecar-1",))
    decision = step(target, stuck, now=NOW + timedelta(seconds=TIMEOUT))
    assert decision.action is A.FAILED and decision.timed_out and "after the reset" in decision.reason


def test_failures_after_the_switch() -> None:
    target = seed_sidecarset(V2)
    h2 = kubelet(upgraded(target, injected_pod(), 2))
    h2 = apply(h2, hot_upgrade.switch_patch(h2, step(target, h2).twins))
    # The new working twin stopped being ready before the reset: the old one is not reset.
    assert step(target, kubelet(h2, not_ready=("sidecar-2",))).action is A.WAIT_NEW
    crashed = step(target, kubelet(h2, waiting={"sidecar-2": "CrashLoopBackOff"}))
    assert crashed.action is A.FAILED and "working twin sidecar-2" in crashed.reason
    # The empty image of the reset fails to pull.
    resetting = apply(h2, hot_upgrade.reset_patch(target, h2, step(target, h2).twins))
    decision = step(target, kubelet(resetting, waiting={"sidecar-1": "ImagePullBackOff"}))
    assert decision.action is A.FAILED and "empty image" in decision.reason


def test_reset_due_only_after_the_switch() -> None:
    target = seed_sidecarset(V2)
    h1 = kubelet(upgraded(target, injected_pod(), 2))
    assert not hot_upgrade_reset_due(target, h1)  # new twin ready but not switched yet
    h2 = apply(h1, hot_upgrade.switch_patch(h1, step(target, h1).twins))
    assert hot_upgrade_reset_due(target, h2)


def test_working_twin_already_on_the_target_only_needs_the_idle_reset() -> None:
    # E.g. a rollback after a failed upgrade: x-1 works on v1, x-2 is stuck on a broken v2.
    broken = kubelet(
        upgraded(seed_sidecarset(V2), injected_pod(), 2), waiting={"sidecar-2": "CrashLoopBackOff"}
    )
    target = seed_sidecarset(V1)
    changes, annotations = hot_upgrade.upgrade_changes(target, broken, version="3")
    assert changes == [] and annotations == {}
    decision = step(target, broken)
    assert decision.action is A.RESET and [t.idle for t in decision.twins] == ["sidecar-2"]
    done = kubelet(apply(broken, hot_upgrade.reset_patch(target, broken, decision.twins)))
    assert step(target, done).action is A.DONE and images(done)["sidecar-2"] == EMPTY


def test_an_older_broken_idle_twin_is_patched_again() -> None:
    broken = kubelet(
        upgraded(seed_sidecarset(V2), injected_pod(), 2), waiting={"sidecar-2": "CrashLoopBackOff"}
    )
    target = seed_sidecarset(V3)
    decision = step(target, broken)
    assert decision.action is A.PATCH_IDLE and [t.idle for t in decision.twins] == ["sidecar-2"]
    version = hot_upgrade.next_version(target, broken, 3)
    changes, annotations = hot_upgrade.upgrade_changes(target, broken, version=version)
    assert changes == [("sidecar-2", V2, V3)]
    assert annotations[version_alt_annotation("sidecar-2")] == "1"  # the working twin's version


TWO_HOT = """
apiVersion: apps.kruise.io/v1beta1
kind: SidecarSet
metadata: {{name: mesh}}
spec:
  selector: {{matchLabels: {{app: hotupgrade}}}}
  containers:
  - name: envoy
    image: envoy:{envoy}
    upgradeStrategy: {{upgradeType: HotUpgrade, hotUpgradeEmptyImage: "empty:1"}}
  - name: agent
    image: agent:{agent}
    upgradeStrategy: {{upgradeType: HotUpgrade, hotUpgradeEmptyImage: "empty:1"}}
  - name: logs
    image: logs:{logs}
"""


def test_several_sidecars_move_together_at_the_least_advanced_action() -> None:
    before = parse_sidecarset(TWO_HOT.format(envoy=1, agent=1, logs=1))
    target = parse_sidecarset(TWO_HOT.format(envoy=2, agent=2, logs=2))
    pod = injected_pod(before)
    decision = step(target, pod)
    assert decision.action is A.PATCH_IDLE and {t.name for t in decision.twins} == {"envoy", "agent"}
    pod = upgraded(target, pod, 2)
    # envoy-2 ready, agent-2 still migrating (so the pod is not Ready): nothing is switched yet.
    pod = kubelet(pod, not_started=("agent-2",))
    decision = step(target, pod)
    assert decision.action is A.WAIT_NEW and {t.name for t in decision.twins} == {"envoy", "agent"}
    assert "agent-2 (agent:2) is not running" in decision.reason
    pod = kubelet(pod)
    decision = step(target, pod)
    assert decision.action is A.SWITCH and {t.name for t in decision.twins} == {"envoy", "agent"}
    pod = apply(pod, hot_upgrade.switch_patch(pod, decision.twins))
    assert json.loads(pod["metadata"]["annotations"][ANNOTATION_WORKING_HOT_UPGRADE_CONTAINER]) == {
        "agent": "agent-2",
        "envoy": "envoy-2",
    }
    # One twin failing fails the pod, whatever the others do.
    failing = kubelet(pod, waiting={"envoy-2": "CrashLoopBackOff"})
    assert step(target, failing).action is A.FAILED


def test_a_sidecarset_without_hot_sidecars_is_done_at_once() -> None:
    cold = parse_sidecarset(
        "apiVersion: apps.kruise.io/v1beta1\nkind: SidecarSet\nmetadata: {name: logs}\n"
        "spec: {selector: {matchLabels: {app: hotupgrade}}, containers: [{name: logs, image: 'logs:1'}]}\n"
    )
    pod = injected_pod(cold)
    assert hot_upgrade.read_twins(cold, pod) == ()
    assert step(cold, pod).action is A.DONE
