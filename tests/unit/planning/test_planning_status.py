"""Status counters (update.md §3; issue 4 §4 writes them back), including the hot-upgrade rule."""

from __future__ import annotations

from planning_pods import EMPTY_IMAGE, image_id, make_hot_pod, make_pod, make_sidecarset, set_ready

from sidecarhub.sidecarset import PodClass, SidecarSetStatusCounts, compute_status, plan_round

V1 = make_sidecarset("envoy:1")
V2 = make_sidecarset("envoy:2")
HOT_V1 = make_sidecarset("envoy:1", hot=True)
HOT_V2 = make_sidecarset("envoy:2", hot=True)


def test_counters_over_matched_pods_only() -> None:
    pods = [
        make_pod("done", injected=V1, updated_to=V2),  # matched, updated, ready
        make_pod("restarting", injected=V1, updated_to=V2, kubelet_done=False),  # updated, not consistent
        make_pod("old", injected=V1),  # ready, not updated
        set_ready(make_pod("old-not-ready", injected=V1), False),
        make_pod("gone", injected=V1, phase="Succeeded"),  # not matched
    ]
    pods[-1]["metadata"]["annotations"] = {}
    status = compute_status(V2, pods)
    assert status == SidecarSetStatusCounts(
        matched_pods=4, updated_pods=2, ready_pods=2, updated_ready_pods=1
    )
    assert status.as_status() == {"matchedPods": 4, "updatedPods": 2, "readyPods": 2, "updatedReadyPods": 1}


def test_ready_pods_needs_consistency_not_just_the_ready_condition() -> None:
    # §3 readyPods: a pod whose sidecar restart is still pending is not counted, though Ready.
    restarting = make_pod("p", injected=V1, updated_to=V2, kubelet_done=False)
    assert restarting["status"]["conditions"][0]["status"] == "True"
    assert compute_status(V2, [restarting]).ready_pods == 0


def test_plan_round_reports_the_same_status() -> None:
    pods = [make_pod("a", injected=V1, updated_to=V2), make_pod("b", injected=V1)]
    assert plan_round(V2, pods).status == compute_status(V2, pods)


def test_hot_upgrade_status_sequence_one_pod() -> None:
    # §5.5 / §7.2 hot upgrade, 1 pod: {1,0,1,0} → {1,1,0,0} → {1,1,0,0} → {1,1,1,1}.
    steady = make_hot_pod("p", injected=HOT_V1, twin_images=("envoy:1", EMPTY_IMAGE))
    round_1 = plan_round(HOT_V2, [steady])
    assert round_1.status.as_status() == {
        "matchedPods": 1,
        "updatedPods": 0,
        "readyPods": 1,
        "updatedReadyPods": 0,
    }
    assert [decision.ref.name for decision in round_1.to_patch] == ["p"]

    # round 2: x-2 ← v2 written, the kubelet has not acted yet (Ready condition still True)
    patched = make_hot_pod(
        "p",
        injected=HOT_V1,
        hash_of=HOT_V2,
        working="envoy-2",
        twin_images=("envoy:1", "envoy:2"),
        running=("envoy:1", EMPTY_IMAGE),
        recorded_ids={"envoy-2": image_id(EMPTY_IMAGE)},
    )
    round_2 = plan_round(HOT_V2, [patched])
    assert round_2.status.as_status() == {
        "matchedPods": 1,
        "updatedPods": 1,
        "readyPods": 0,
        "updatedReadyPods": 0,
    }
    assert round_2.hot_upgrade_resets == () and round_2.to_patch == ()

    # round 3: the status shows v2 on x-2: the reset of x-1 is due, nothing else happens
    running_v2 = make_hot_pod(
        "p",
        injected=HOT_V1,
        hash_of=HOT_V2,
        working="envoy-2",
        twin_images=("envoy:1", "envoy:2"),
        recorded_ids={"envoy-2": image_id(EMPTY_IMAGE)},
    )
    round_3 = plan_round(HOT_V2, [running_v2])
    assert round_3.status.as_status() == {
        "matchedPods": 1,
        "updatedPods": 1,
        "readyPods": 0,
        "updatedReadyPods": 0,
    }
    assert [decision.ref.name for decision in round_3.hot_upgrade_resets] == ["p"]
    assert round_3.blocked_reason is not None and "hot-upgrade resets" in round_3.blocked_reason

    # round 4: x-1 runs the empty image
    reset = make_hot_pod(
        "p",
        injected=HOT_V1,
        hash_of=HOT_V2,
        working="envoy-2",
        twin_images=(EMPTY_IMAGE, "envoy:2"),
        recorded_ids={"envoy-2": image_id(EMPTY_IMAGE), "envoy-1": image_id("envoy:1")},
    )
    round_4 = plan_round(HOT_V2, [reset])
    assert round_4.status.as_status() == {
        "matchedPods": 1,
        "updatedPods": 1,
        "readyPods": 1,
        "updatedReadyPods": 1,
    }
    assert round_4.complete
    assert round_4.of_class(PodClass.UPDATED)[0].unavailable is False
