"""``plan_round`` equals a straightforward reference planner on generated pods.

The planner takes shortcuts for speed (a flat predicate pass, bare candidates whose ref and labels
are read only when the budget walk reaches them, updated pods only counted, ranks instead of full
order keys, classification only as far as the walk goes). The reference below takes none: it
evaluates every pod with ``evaluate_general`` (the ``_Pod`` code), sorts the candidates by
``default_order_key``, applies priorities and scatter to all of them, and walks the budget over
the fully classified list, as update.md §1.4-§1.7 read. Both must give the same plan: status,
``U``, the order, what is patched, every matched pod's class, the unmatched pods.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from planning_pods import make_pod, make_sidecarset, set_ready
from test_planning_fast_path import _pod

from sidecarhub.sidecarset import PlanningCache, PodClass, SidecarSet, plan_round
from sidecarhub.sidecarset.ordering import default_order_key, priority_sort_key, scatter_order
from sidecarhub.sidecarset.planning import resolve_max_unavailable, resolve_partition
from sidecarhub.sidecarset.predicates import SidecarSetFacts, Upgradability, evaluate_general

V1 = make_sidecarset("envoy:1")


def reference_plan(
    sidecarset: SidecarSet, pods: list[dict[str, Any]], apply_canary: bool = True
) -> dict[str, Any]:
    facts = SidecarSetFacts.of(sidecarset)
    strategy = sidecarset.update_strategy
    evaluated = [(evaluate_general(facts, pod), pod) for pod in pods]
    matched = sorted(((e, p) for e, p in evaluated if e.matched), key=lambda item: item[0].ref)
    unmatched = sorted((e.ref, e.match_failure) for e, _ in evaluated if not e.matched)
    updated = [e for e, _ in matched if e.updated]
    status = (
        len(matched),
        len(updated),
        sum(1 for e, _ in matched if e.ready and e.consistent),
        sum(1 for e in updated if e.ready and e.consistent),
    )
    unavailable = sum(1 for e in updated if e.unavailable_updated)
    classes = {e.ref: PodClass.UPDATED for e in updated}
    canary = strategy.selector if apply_canary else None
    candidates = []
    for evaluation, pod in matched:
        if evaluation.updated:
            continue
        if canary is not None and not canary.matches(evaluation.labels):
            classes[evaluation.ref] = PodClass.NOT_SELECTED
        elif evaluation.upgradability is Upgradability.NEEDS_RECREATE:
            classes[evaluation.ref] = PodClass.NEEDS_RECREATE
        elif evaluation.upgradability is Upgradability.IN_FLIGHT:
            classes[evaluation.ref] = PodClass.IN_FLIGHT
        else:
            candidates.append((evaluation, pod))
    candidates.sort(key=lambda item: default_order_key(item[1]))
    priority = strategy.priority_strategy
    if priority is not None and (priority.weight_priority or priority.order_priority):
        key = priority_sort_key(priority)
        candidates.sort(key=lambda item: key(item[0].labels))
    if strategy.scatter_strategy and len(candidates) > 1:
        order = scatter_order(
            [e.labels for e, _ in candidates], [e.labels for e, _ in matched], strategy.scatter_strategy
        )
        candidates = [candidates[position] for position in order]
    partition = resolve_partition(strategy.partition, len(matched))
    max_unavailable = resolve_max_unavailable(strategy.max_unavailable, len(matched))
    blocked = (
        strategy.type == "NotUpdate" or strategy.paused or any(e.hot_upgrade_reset_due for e, _ in matched)
    )
    to_patch = []
    if not blocked:
        budget = unavailable
        for evaluation, _ in candidates[: max(0, len(candidates) - partition)]:
            if not evaluation.ready:
                to_patch.append(evaluation.ref)
                continue
            if budget >= max_unavailable:
                break
            budget += 1
            to_patch.append(evaluation.ref)
    for evaluation, _ in candidates:
        classes[evaluation.ref] = PodClass.CANDIDATE if evaluation.ref in to_patch else PodClass.WAITING
    return {
        "status": status,
        "unavailable_before": unavailable,
        "ordered": [e.ref for e, _ in candidates],
        "to_patch": to_patch,
        "classes": classes,
        "unmatched": unmatched,
    }


def plan_summary(plan: Any) -> dict[str, Any]:
    counts = plan.status
    summary = {
        "status": (counts.matched_pods, counts.updated_pods, counts.ready_pods, counts.updated_ready_pods),
        "unavailable_before": plan.unavailable_before,
        "to_patch": [decision.ref for decision in plan.to_patch],
    }
    # read after to_patch: a lazy round classifies the rest only now
    summary["ordered"] = [decision.ref for decision in plan.ordered]
    patched = set(summary["to_patch"])
    summary["classes"] = {
        decision.ref: PodClass.CANDIDATE if decision.ref in patched else decision.pod_class
        for decision in plan.decisions
    }
    summary["unmatched"] = list(plan.unmatched)
    return summary


_amounts = st.one_of(st.integers(0, 8), st.integers(0, 100).map(lambda value: f"{value}%"))
_strategies = st.fixed_dictionaries(
    {"maxUnavailable": _amounts},
    optional={
        "partition": _amounts,
        "scatterStrategy": st.just([{"key": "zone", "value": "*"}]),
        "priorityStrategy": st.sampled_from(
            [
                {"orderPriority": [{"orderedKey": "zone"}]},
                {"weightPriority": [{"weight": 5, "matchSelector": {"matchLabels": {"zone": "b"}}}]},
            ]
        ),
        "selector": st.just({"matchLabels": {"canary": "yes"}}),
        "paused": st.booleans(),
    },
)


def _population(rng: random.Random, sidecarset: SidecarSet, count: int) -> list[dict[str, Any]]:
    """Well-formed pods of every kind (most of a real round), some mutated into other shapes."""
    pods = []
    for index in range(count):
        labels = {"zone": rng.choice("abc"), **({"canary": "yes"} if rng.random() < 0.5 else {})}
        common: dict[str, Any] = {
            "labels": labels,
            "namespace": rng.choice(["ns-1", "ns-2"]),
            "created": rng.randrange(5),
            "ready_since": rng.choice([None, 1, 2, 3]),
            "restarts": rng.randrange(3),
            "node": rng.choice(["node-1", None]),
        }
        roll = rng.random()
        if roll < 0.15:
            pods.append(_pod(rng, index, sidecarset))  # mutated: any shape the general path judges
            continue
        if roll < 0.45:
            kubelet_done = rng.random() < 0.8
            pod = make_pod(
                f"p-{index}", injected=V1, updated_to=sidecarset, kubelet_done=kubelet_done, **common
            )
        else:
            pod = make_pod(f"p-{index}", injected=V1, **common)
        if rng.random() < 0.15:
            pod = set_ready(pod, False)
        pods.append(pod)
    return pods


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), strategy=_strategies, canary=st.booleans(), size=st.integers(0, 40))
def test_plan_round_equals_the_reference_planner(
    seed: int, strategy: dict[str, Any], canary: bool, size: int
) -> None:
    rng = random.Random(seed)
    sidecarset = make_sidecarset("envoy:2", strategy=strategy)
    pods = _population(rng, sidecarset, size)
    expected = reference_plan(sidecarset, pods, apply_canary=canary)
    assert plan_summary(plan_round(sidecarset, pods, apply_canary_selector=canary)) == expected
    # the cached path (full evaluations) gives the same plan, cold and warm
    cache = PlanningCache()
    assert plan_summary(plan_round(sidecarset, pods, apply_canary_selector=canary, cache=cache)) == expected
    assert plan_summary(plan_round(sidecarset, pods, apply_canary_selector=canary, cache=cache)) == expected
