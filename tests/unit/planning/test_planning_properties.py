"""Properties of the planner over random pod populations and strategies (hypothesis)."""

from __future__ import annotations

import copy
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from planning_pods import make_pod, make_sidecarset, set_ready

from sidecarhub.sidecarset import PlanningCache, PodClass, SidecarSet, plan_round, plan_step

V1 = make_sidecarset("envoy:1")
V2 = make_sidecarset("envoy:2")
WITH_ENV = make_sidecarset("envoy:1", env=[{"name": "A", "value": "1"}])

_amounts = st.one_of(st.integers(0, 12), st.integers(0, 120).map(lambda value: f"{value}%"))
_pod_kinds = st.sampled_from(["old", "old-not-ready", "done", "restarting", "updated-not-ready", "recreate"])
_pods = st.lists(
    st.tuples(
        _pod_kinds,
        st.integers(0, 5),  # creation second: many ties
        st.sampled_from(["a", "b", "c"]),  # zone
        st.booleans(),  # canary label
        st.sampled_from(["ns-1", "ns-2"]),
    ),
    max_size=25,
)
_strategies = st.fixed_dictionaries(
    {"partition": _amounts, "maxUnavailable": _amounts},
    optional={
        "scatterStrategy": st.just([{"key": "zone", "value": "*"}]),
        "priorityStrategy": st.just({"orderPriority": [{"orderedKey": "zone"}]}),
    },
)


def build(specs: list[tuple[str, int, str, bool, str]], sidecarset: SidecarSet) -> list[dict[str, Any]]:
    pods = []
    for index, (kind, created, zone, canary, namespace) in enumerate(specs):
        labels = {"zone": zone, **({"canary": "yes"} if canary else {})}
        common: dict[str, Any] = {"created": created, "labels": labels, "namespace": namespace}
        name = f"pod-{index}"
        if kind == "old":
            pod = make_pod(name, injected=V1, **common)
        elif kind == "old-not-ready":
            pod = set_ready(make_pod(name, injected=V1, **common), False)
        elif kind == "done":
            pod = make_pod(name, injected=V1, updated_to=sidecarset, **common)
        elif kind == "restarting":
            pod = make_pod(name, injected=V1, updated_to=sidecarset, kubelet_done=False, **common)
        elif kind == "updated-not-ready":
            pod = set_ready(make_pod(name, injected=V1, updated_to=sidecarset, **common), False)
        else:
            pod = make_pod(name, injected=WITH_ENV, **common)
        pods.append(pod)
    return pods


def summary(plan: Any) -> tuple[Any, ...]:
    return (
        plan.status,
        [(d.ref, d.pod_class, d.reason) for d in plan.decisions],
        [d.ref for d in plan.to_patch],
        plan.unmatched,
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=_pods, strategy=_strategies)
def test_budget_and_partition_are_never_exceeded(specs: list[Any], strategy: dict[str, Any]) -> None:
    sidecarset = make_sidecarset("envoy:2", strategy=strategy)
    plan = plan_round(sidecarset, build(specs, sidecarset))
    # ready pods patched never take U past M; not-ready ones are free (Kruise's rule, decision 11)
    ready_patched = sum(1 for decision in plan.to_patch if decision.ready)
    assert ready_patched <= max(0, plan.max_unavailable - plan.unavailable_before)
    # the last `partition` candidates are never patched
    kept = plan.ordered[len(plan.ordered) - plan.partition :] if plan.partition else ()
    assert not {d.ref for d in kept} & {d.ref for d in plan.to_patch}
    assert len(plan.to_patch) <= max(0, len(plan.ordered) - plan.partition)
    # to_patch is a prefix of the planned order (Kruise patches the first n candidates)
    assert list(plan.to_patch) == list(plan.ordered[: len(plan.to_patch)])
    # only candidates are patched, and every matched pod has exactly one verdict
    assert all(decision.pod_class is PodClass.CANDIDATE for decision in plan.to_patch)
    refs = [decision.ref for decision in plan.decisions]
    assert len(refs) == len(set(refs)) == plan.status.matched_pods


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=_pods, strategy=_strategies, seed=st.integers(0, 2**32 - 1))
def test_plans_do_not_depend_on_input_order(specs: list[Any], strategy: dict[str, Any], seed: int) -> None:
    # decision 11: deterministic, whatever order the cache lists pods in
    sidecarset = make_sidecarset("envoy:2", strategy=strategy)
    pods = build(specs, sidecarset)
    shuffled = list(pods)
    random.Random(seed).shuffle(shuffled)
    assert summary(plan_round(sidecarset, shuffled)) == summary(plan_round(sidecarset, pods))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=_pods, strategy=_strategies, changed=st.sets(st.integers(0, 24)))
def test_a_warm_cache_gives_the_same_plan(
    specs: list[Any], strategy: dict[str, Any], changed: set[int]
) -> None:
    sidecarset = make_sidecarset("envoy:2", strategy=strategy)
    pods = build(specs, sidecarset)
    cache = PlanningCache()
    plan_round(sidecarset, pods, cache=cache)
    # some pods change between rounds (new resourceVersion, other readiness)
    later = []
    for index, pod in enumerate(pods):
        if index in changed:
            pod = set_ready(copy.deepcopy(pod), pod["status"]["conditions"][0]["status"] != "True")
        later.append(pod)
    assert summary(plan_round(sidecarset, later, cache=cache)) == summary(plan_round(sidecarset, later))
    # a cache filled for another SidecarSet is not reused
    other = make_sidecarset("envoy:3", strategy=strategy)
    assert summary(plan_round(other, later, cache=cache)) == summary(plan_round(other, later))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=_pods, strategy=_strategies, target=st.integers(0, 120).map(lambda value: f"{value}%"))
def test_a_step_is_a_prefix_of_the_planned_candidates(
    specs: list[Any], strategy: dict[str, Any], target: str
) -> None:
    sidecarset = make_sidecarset("envoy:2", strategy=strategy)
    pods = build(specs, sidecarset)
    step = plan_step(sidecarset, pods, target)
    ordered = step.round.ordered
    assert list(step.pods) == list(ordered[: len(step.pods)])
    assert len(step.pods) <= max(0, len(ordered) - step.round.partition)
    assert step.updated_before + len(step.pods) + step.shortfall == step.target_updated
    assert {d.ref for d in step.first_round} <= step.refs


@settings(max_examples=100, deadline=None)
@given(
    zones=st.lists(
        st.tuples(st.sampled_from(["ns-1", "ns-2"]), st.sampled_from(["a", "b", "c", None])), max_size=12
    ),
    seed=st.integers(0, 1000),
)
def test_wildcards_expand_in_canonical_pod_order(zones: list[tuple[str, str | None]], seed: int) -> None:
    # decision 11: "pod-list order" for scatter wildcards is (namespace, name) order; the planner's
    # linear-time expansion must agree with expanding over the sorted pod list.
    from sidecarhub.sidecarset.model import ScatterTerm
    from sidecarhub.sidecarset.ordering import expand_scatter_terms, expand_scatter_terms_in_ref_order
    from sidecarhub.sidecarset.predicates import pod_ref

    pods = [
        make_pod(f"pod-{index}", injected=V1, namespace=namespace, labels={"zone": zone} if zone else None)
        for index, (namespace, zone) in enumerate(zones)
    ]
    random.Random(seed).shuffle(pods)
    items = [(pod_ref(pod), pod["metadata"]["labels"]) for pod in pods]
    terms = [ScatterTerm("zone", "b"), ScatterTerm("zone", "*")]
    in_order = [labels for _, labels in sorted(items, key=lambda item: item[0])]
    assert expand_scatter_terms_in_ref_order(terms, items) == expand_scatter_terms(terms, in_order)
