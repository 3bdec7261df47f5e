"""The worked examples of update.md §1.8 (E1-E6): decision 11 makes them the acceptance tests.

Rounds are played with a tiny worker (``patch_pod``) and kubelet (``kubelet_restart``): each
test says what happens to the pods between rounds and checks status and the patched pods.
"""

from __future__ import annotations

from typing import Any

import pytest
from planning_pods import (
    kubelet_restart,
    make_pod,
    make_pods,
    make_sidecarset,
    names,
    patch_pod,
    replace,
    set_ready,
)

from sidecarhub.sidecarset import PodClass, SidecarSet, compute_status, plan_round
from sidecarhub.sidecarset.planning import resolve_max_unavailable, resolve_partition

V1 = make_sidecarset("envoy:1")


def status_tuple(sidecarset: SidecarSet, pods: list[dict[str, Any]]) -> tuple[int, int, int, int]:
    status = compute_status(sidecarset, pods)
    return status.matched_pods, status.updated_pods, status.ready_pods, status.updated_ready_pods


def test_e1_defaults_four_pods_one_at_a_time() -> None:
    # §1.8 E1: M=1, P=0; each pod is patched only after the previous one is back and ready.
    v2 = make_sidecarset("envoy:2")
    pods = make_pods(4, injected=V1)
    history: list[tuple[tuple[int, int, int, int], list[str]]] = []
    order: list[str] = []
    for _ in range(4):
        # round: one pod patched
        plan = plan_round(v2, pods)
        history.append((status_tuple(v2, pods), names(plan.to_patch)))
        assert len(plan.to_patch) == 1
        patched = patch_pod(plan.to_patch[0].pod, v2)
        order.append(patched["metadata"]["name"])
        pods = replace(pods, [patched])
        # round 2: kubelet not done yet (inconsistent): nothing
        plan = plan_round(v2, pods)
        assert plan.unavailable_before == 1 and plan.to_patch == ()
        # round 3: sidecar restarting, pod NotReady: nothing
        restarting = set_ready(patched, False)
        pods = replace(pods, [restarting])
        assert plan_round(v2, pods).to_patch == ()
        # round 4: runs v2 and is Ready
        pods = replace(pods, [kubelet_restart(restarting)])
    assert history[0] == ((4, 0, 4, 0), ["pod-3"])
    assert order == ["pod-3", "pod-2", "pod-1", "pod-0"]  # newest first (default order)
    assert status_tuple(v2, pods) == (4, 4, 4, 4)
    final = plan_round(v2, pods)
    assert final.complete and final.to_patch == ()


def test_e1_cold_upgrade_status_sequence_for_two_pods() -> None:
    # §1.8 E1 (TestUpdateColdUpgradeSidecar): {2,0,2,0}→{2,1,1,0}→{2,1,2,1}→{2,2,1,1}→{2,2,2,2}.
    v2 = make_sidecarset("envoy:2")
    pods = make_pods(2, injected=V1)
    seen = [status_tuple(v2, pods)]
    for _ in range(2):
        plan = plan_round(v2, pods)
        assert len(plan.to_patch) == 1
        patched = patch_pod(plan.to_patch[0].pod, v2)
        pods = replace(pods, [patched])
        seen.append(status_tuple(v2, pods))
        pods = replace(pods, [kubelet_restart(patched)])
        seen.append(status_tuple(v2, pods))
    assert seen == [(2, 0, 2, 0), (2, 1, 1, 0), (2, 1, 2, 1), (2, 2, 1, 1), (2, 2, 2, 2)]


def test_e2_partition_50_percent_max_unavailable_20_percent() -> None:
    # §1.8 E2: P = ceil(5.0) = 5, M = ceil(2.0) = 2; rounds patch 2, 0, 2, 1, 0.
    v2 = make_sidecarset("envoy:2", strategy={"partition": "50%", "maxUnavailable": "20%"})
    pods = make_pods(10, injected=V1)
    plan = plan_round(v2, pods)
    assert (plan.partition, plan.max_unavailable) == (5, 2)
    counts = []
    for _ in range(5):
        plan = plan_round(v2, pods)  # R1, R3, R5...: pods done
        counts.append(len(plan.to_patch))
        patched = [patch_pod(decision.pod, v2) for decision in plan.to_patch]
        pods = replace(pods, patched)
        if patched:
            in_flight = plan_round(v2, pods)  # the round while they restart
            counts.append(len(in_flight.to_patch))
            pods = replace(pods, [kubelet_restart(pod) for pod in patched])
    assert counts[:6] == [2, 0, 2, 0, 1, 0]
    assert counts[6:] == [0, 0]
    assert status_tuple(v2, pods) == (10, 5, 10, 5)
    assert not plan_round(v2, pods).complete


@pytest.mark.parametrize(
    ("pod_count", "partition", "expected_partition", "expected_updated"),
    [
        (9, "50%", 5, 4),  # ceil(4.5) = 5
        (3, "99%", 2, 1),  # ceil(2.97) = 3, adjusted to 2
        (5, "1%", 1, 4),
        (10, "100%", 10, 0),
        (10, "150%", 10, 0),  # clamped to N
    ],
)
def test_e2_partition_rounding_cases(
    pod_count: int, partition: str, expected_partition: int, expected_updated: int
) -> None:
    # §1.8 E2 "other rounding cases": played to the end with maxUnavailable 100%.
    v2 = make_sidecarset("envoy:2", strategy={"partition": partition, "maxUnavailable": "100%"})
    pods = make_pods(pod_count, injected=V1)
    assert resolve_partition(partition, pod_count) == expected_partition
    for _ in range(pod_count + 1):
        plan = plan_round(v2, pods)
        pods = replace(pods, [kubelet_restart(patch_pod(d.pod, v2)) for d in plan.to_patch])
    assert compute_status(v2, pods).updated_pods == expected_updated


@pytest.mark.parametrize(("value", "pods", "expected"), [("5%", 5, 1), ("30%", 7, 3)])
def test_e2_max_unavailable_rounding(value: str, pods: int, expected: int) -> None:
    # §1.8 E2: maxUnavailable percents are rounded up.
    assert resolve_max_unavailable(value, pods) == expected
    v2 = make_sidecarset("envoy:2", strategy={"maxUnavailable": value})
    assert len(plan_round(v2, make_pods(pods, injected=V1)).to_patch) == expected


def test_e3_not_ready_pods_before_the_update_stall_the_rollout() -> None:
    # §1.8 E3: 20 pods, M = 2, 3 NotReady (app crash-loops, sidecar fine): 5 patched, then 0.
    v2 = make_sidecarset("envoy:2", strategy={"maxUnavailable": "10%"})
    pods = make_pods(20, injected=V1)
    crash_looping = {"pod-4", "pod-9", "pod-14"}
    pods = [set_ready(pod, False) if pod["metadata"]["name"] in crash_looping else pod for pod in pods]
    first = plan_round(v2, pods)
    assert first.max_unavailable == 2
    assert names(first.to_patch) == ["pod-14", "pod-9", "pod-4", "pod-19", "pod-18"]
    patched = [patch_pod(decision.pod, v2) for decision in first.to_patch]
    # the kubelet restarts every sidecar on v2; the crash-looping pods stay NotReady
    pods = replace(
        pods,
        [kubelet_restart(pod, ready=pod["metadata"]["name"] not in crash_looping) for pod in patched],
    )
    for _ in range(3):
        plan = plan_round(v2, pods)
        assert plan.unavailable_before == 3
        assert plan.to_patch == ()
    matched, updated, ready, updated_ready = status_tuple(v2, pods)
    assert (matched, updated) == (20, 5)
    assert ready <= 17 and updated_ready <= 2


def e4_pods(sidecarset: SidecarSet) -> list[dict[str, Any]]:
    """1000 pods: 800 updated, of which 760 consistent and ready (40 still restarting)."""
    pods = []
    for index in range(1000):
        if index < 760:
            pods.append(make_pod(f"pod-{index}", injected=V1, updated_to=sidecarset, created=index))
        elif index < 800:
            pods.append(
                make_pod(
                    f"pod-{index}", injected=V1, updated_to=sidecarset, kubelet_done=False, created=index
                )
            )
        else:
            pods.append(make_pod(f"pod-{index}", injected=V1, created=index))
    return pods


@pytest.mark.parametrize(("partition", "expected"), [(180, 20), (100, 60), ("18%", 20), ("10%", 60)])
def test_e4_partition_then_budget(partition: int | str, expected: int) -> None:
    # §1.8 E4 (TestGetNextUpgradePods): 200 candidates, U = 40, M = 100 → budget 60.
    v2 = make_sidecarset("envoy:2", strategy={"partition": partition, "maxUnavailable": 100})
    plan = plan_round(v2, e4_pods(v2))
    assert plan.unavailable_before == 40
    assert len(plan.ordered) == 200
    assert len(plan.to_patch) == expected


def test_e5_scatter_by_zone_wildcard() -> None:
    # §1.8 E5: default order a1 a2 a3 b1 b2 b3 c1 c2 c3 → scattered c1 b1 a1 a2 c2 b2 a3 b3 c3.
    default_order = ["a1", "a2", "a3", "b1", "b2", "b3", "c1", "c2", "c3"]
    pods = [
        make_pod(name, injected=V1, created=100 - position, labels={"zone": name[0]})
        for position, name in enumerate(default_order)
    ]
    v2 = make_sidecarset(
        "envoy:2", strategy={"maxUnavailable": 3, "scatterStrategy": [{"key": "zone", "value": "*"}]}
    )
    plan = plan_round(v2, pods)
    assert names(plan.ordered) == ["c1", "b1", "a1", "a2", "c2", "b2", "a3", "b3", "c3"]
    assert names(plan.to_patch) == ["c1", "b1", "a1"]
    plain = plan_round(make_sidecarset("envoy:2", strategy={"maxUnavailable": 3}), pods)
    assert names(plain.ordered) == default_order


def test_e5_single_scatter_term() -> None:
    # §1.8 E5: a single term zone=a on a1…a4 b1 b2 gives a1 a2 b1 a3 b2 a4.
    default_order = ["a1", "a2", "a3", "a4", "b1", "b2"]
    pods = [
        make_pod(name, injected=V1, created=100 - position, labels={"zone": name[0]})
        for position, name in enumerate(default_order)
    ]
    v2 = make_sidecarset("envoy:2", strategy={"scatterStrategy": [{"key": "zone", "value": "a"}]})
    assert names(plan_round(v2, pods).ordered) == ["a1", "a2", "b1", "a3", "b2", "a4"]


def test_e6_order_priority() -> None:
    # §1.8 E6: key1=5 everywhere, pod-17 key1=10, pod-18 key1=20 → pod-18, pod-17, then the rest.
    labels = {17: "10", 18: "20"}
    pods = [
        make_pod(f"pod-{index}", injected=V1, created=index, labels={"key1": labels.get(index, "5")})
        for index in range(20)
    ]
    v2 = make_sidecarset(
        "envoy:2", strategy={"priorityStrategy": {"orderPriority": [{"orderedKey": "key1"}]}}
    )
    plan = plan_round(v2, pods)
    assert names(plan.ordered)[:2] == ["pod-18", "pod-17"]
    # the rest keep the default order (newest first)
    assert names(plan.ordered)[2:] == [f"pod-{index}" for index in (19, *range(16, -1, -1))]
    assert all(decision.pod_class is PodClass.WAITING for decision in plan.ordered[1:])
