"""Round-level rules: classification of every pod, NotUpdate, paused, decision 15, the hash
scenarios of update.md §7.3 seen from the planner, and restricting a round to a step's pods."""

from __future__ import annotations

from planning_pods import kubelet_restart, make_pod, make_pods, make_sidecarset, names, patch_pod, replace

from sidecarhub.sidecarset import PodClass, PodRef, plan_round

V1 = make_sidecarset("envoy:1")
V2 = make_sidecarset("envoy:2")


def test_every_matched_pod_is_classified_exactly_once() -> None:
    v3 = make_sidecarset(
        "envoy:3", strategy={"selector": {"matchLabels": {"canary": "yes"}}, "maxUnavailable": 1}
    )
    with_env = make_sidecarset("envoy:1", env=[{"name": "A", "value": "1"}])
    rolling = make_pod("in-flight", injected=V1, updated_to=V2, kubelet_done=False, labels={"canary": "yes"})
    rolling["status"]["containerStatuses"][1]["ready"] = True
    pods = [
        make_pod("updated", injected=V1, updated_to=v3),
        make_pod("not-selected", injected=V1),
        make_pod("recreate", injected=with_env, labels={"canary": "yes"}),
        rolling,
        make_pod("candidate", injected=V1, labels={"canary": "yes"}, created=5),
        make_pod("waiting", injected=V1, labels={"canary": "yes"}, created=1),
        make_pod("stranger", injected=V1, labels={"app": "db"}),
    ]
    plan = plan_round(v3, pods)
    classes = {decision.ref.name: decision.pod_class for decision in plan.decisions}
    assert classes == {
        "updated": PodClass.UPDATED,
        "not-selected": PodClass.NOT_SELECTED,
        "recreate": PodClass.NEEDS_RECREATE,
        "in-flight": PodClass.IN_FLIGHT,
        "candidate": PodClass.CANDIDATE,
        "waiting": PodClass.WAITING,
    }
    assert [ref.name for ref, _ in plan.unmatched] == ["stranger"]
    assert all(decision.reason for decision in plan.decisions)
    assert names(plan.to_patch) == ["candidate"]


def test_not_update_patches_nothing_but_still_counts() -> None:
    # §1.1 / §1.4 step 6: NotUpdate stops before any pod is touched; status is still computed.
    not_update = make_sidecarset("envoy:2", strategy={"type": "NotUpdate"})
    plan = plan_round(not_update, make_pods(3, injected=V1))
    assert plan.to_patch == ()
    assert plan.status.matched_pods == 3
    assert plan.blocked_reason is not None and "NotUpdate" in plan.blocked_reason
    assert {decision.pod_class for decision in plan.decisions} == {PodClass.WAITING}


def test_paused_patches_nothing_but_still_counts() -> None:
    # §1.1 / §1.4 step 7, §7.2 "paused → the pod is not patched".
    paused = make_sidecarset("envoy:2", strategy={"paused": True})
    plan = plan_round(paused, make_pods(2, injected=V1))
    assert plan.to_patch == ()
    assert plan.status.as_status()["matchedPods"] == 2
    assert "paused" in (plan.blocked_reason or "")


def test_one_pending_pod_is_patched() -> None:
    # §7.2: 1 Pending pod, defaults → patched (not-ready pods are exempt from the budget).
    pending = make_pod("p", injected=V1, phase="Pending", ready=False)
    assert names(plan_round(V2, [pending]).to_patch) == ["p"]


def test_one_pod_partition_one_is_not_patched() -> None:
    # §7.2: 1 pod, partition 1 → not patched.
    plan = plan_round(make_sidecarset("envoy:2", strategy={"partition": 1}), [make_pod("p", injected=V1)])
    assert plan.to_patch == ()
    assert "partition" in plan.ordered[0].reason


def test_pod_already_at_the_current_hash_is_left_alone() -> None:
    # §7.2: nothing changes for a pod already at the current hash.
    plan = plan_round(V2, [make_pod("p", injected=V1, updated_to=V2)])
    assert plan.to_patch == () and plan.complete


def test_decision_15_non_image_change_needs_recreate_even_with_a_new_image() -> None:
    # §2.2: env changed together with the image → every existing pod "needs recreate", none patched.
    with_env = make_sidecarset(
        "envoy:2", env=[{"name": "A", "value": "1"}], strategy={"maxUnavailable": "100%"}
    )
    plan = plan_round(with_env, make_pods(4, injected=V1))
    assert plan.to_patch == ()
    assert len(plan.of_class(PodClass.NEEDS_RECREATE)) == 4
    assert not plan.complete
    # reverting the non-image change makes them candidates again (e2e "command" test, §2.2)
    assert (
        len(
            plan_round(
                make_sidecarset("envoy:3", strategy={"maxUnavailable": 4}), make_pods(4, injected=V1)
            ).to_patch
        )
        == 4
    )


def test_decision_15_native_sidecar_image_change_needs_recreate() -> None:
    # Kubernetes does not restart a native sidecar (init container, restartPolicy Always) on an
    # image change, so such a revision is never applied in place, even if only images differ.
    old = make_sidecarset(
        "envoy:1", init_containers=[{"name": "proxy", "image": "proxy:1", "restartPolicy": "Always"}]
    )
    new = make_sidecarset(
        "envoy:1",
        init_containers=[{"name": "proxy", "image": "proxy:2", "restartPolicy": "Always"}],
        strategy={"type": "NotUpdate"},
    )
    pod = make_pod("p", injected=old)
    pod["spec"]["initContainers"] = [{"name": "proxy", "image": "proxy:1", "restartPolicy": "Always"}]
    plan = plan_round(new, [pod])
    (decision,) = plan.decisions
    assert decision.pod_class is PodClass.NEEDS_RECREATE
    assert "native sidecar init container proxy" in decision.reason
    # the same pod with the new init image is simply "updated" once its hash says so
    assert plan_round(old, [pod]).decisions[0].pod_class is PodClass.UPDATED


def test_hash_scenarios_seen_from_the_planner() -> None:
    # §7.3 hash: an image change keeps the without-image hash (pods are candidates); a container
    # rename changes both (needs recreate); a plain init container change leaves the hash alone
    # (pods stay updated); a native-sidecar init container is part of the hash.
    pods = make_pods(2, injected=V1)
    assert len(plan_round(make_sidecarset("envoy:9", strategy={"maxUnavailable": 2}), pods).to_patch) == 2
    renamed = make_sidecarset("envoy:1")
    renamed_doc = renamed.to_document()
    renamed_doc["spec"]["containers"][0]["name"] = "envoy2"
    from sidecarhub.sidecarset import parse_sidecarset

    pods_with_envoy2 = [make_pod("p", injected=V1)]
    pods_with_envoy2[0]["spec"]["containers"].append({"name": "envoy2", "image": "envoy:1"})
    pods_with_envoy2[0]["status"]["containerStatuses"].append(
        {"name": "envoy2", "image": "envoy:1", "imageID": "x"}
    )
    assert (
        plan_round(parse_sidecarset(renamed_doc), pods_with_envoy2).decisions[0].pod_class
        is PodClass.NEEDS_RECREATE
    )
    plain_init = make_sidecarset("envoy:1", init_containers=[{"name": "init", "image": "init:2"}])
    assert plan_round(plain_init, pods).complete
    native_init = make_sidecarset(
        "envoy:1", init_containers=[{"name": "init", "image": "init:2", "restartPolicy": "Always"}]
    )
    assert not plan_round(native_init, pods).complete


def test_only_restricts_the_patch_to_a_step_and_keeps_the_budget() -> None:
    # decision 13: once approved, only the step's pods are patched, round by round.
    v2 = make_sidecarset("envoy:2", strategy={"maxUnavailable": 2})
    pods = make_pods(6, injected=V1)
    step = {PodRef("default", name, f"uid-default-{name}") for name in ("pod-1", "pod-2", "pod-4")}
    plan = plan_round(v2, pods, only=step)
    assert names(plan.to_patch) == ["pod-4", "pod-2"]
    assert {decision.reason for decision in plan.ordered if decision.ref not in step} == {
        "not in this step's pod list"
    }
    pods = replace(pods, [kubelet_restart(patch_pod(decision.pod, v2)) for decision in plan.to_patch])
    assert names(plan_round(v2, pods, only=step).to_patch) == ["pod-1"]
    # a recreated pod (same name, new uid) is not part of the approved step
    recreated = make_pod("pod-1", injected=V1)
    recreated["metadata"]["uid"] = "new-uid"
    pods = replace(pods, [recreated])
    assert plan_round(v2, pods, only=step).to_patch == ()


def test_cache_never_mixes_up_pods_that_share_a_resource_version() -> None:
    # The PlanningCache keys by resourceVersion and checks the uid on every hit: two pods with
    # the same resourceVersion (e.g. from two clusters) must keep their own verdicts.
    from sidecarhub.sidecarset import PlanningCache

    done = make_pod("a", injected=V1, updated_to=V2, resource_version="7")
    waiting = make_pod("b", injected=V1, resource_version="7")
    cache = PlanningCache()
    for _ in range(3):
        for pods in ([done, waiting], [waiting, done], [waiting], [done]):
            with_cache = plan_round(V2, pods, cache=cache)
            assert [(d.ref, d.pod_class) for d in with_cache.decisions] == [
                (d.ref, d.pod_class) for d in plan_round(V2, pods).decisions
            ]
