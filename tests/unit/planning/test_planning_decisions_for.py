"""``RoundPlan.decisions_for(refs)`` equals filtering ``RoundPlan.decisions`` by ref, in the same
order, whether the round was planned lazily (no partition, no scatter: only the pods the budget
walk reaches are classified) or in full, restricted to a step or not, cold or from a cache.

The engine asks a round only about a step's claimed pods; deciding every pod of a 10,000-pod
round costs more than planning it.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from planning_pods import make_pod, make_sidecarset

from sidecarhub.sidecarset import PlanningCache, PodClass, PodRef, plan_round
from sidecarhub.sidecarset.predicates import pod_ref

V1 = make_sidecarset("envoy:1")
RECREATE = make_sidecarset("envoy:1", env=[{"name": "A", "value": "1"}])


def _target(rng: random.Random) -> Any:
    strategy: dict[str, Any] = {"maxUnavailable": rng.choice([1, 2, "30%", "100%"])}
    if rng.random() < 0.4:
        strategy["partition"] = rng.choice([1, 3, "20%"])
    if rng.random() < 0.3:
        strategy["scatterStrategy"] = [{"key": "zone", "value": "a"}]
    if rng.random() < 0.3:
        strategy["selector"] = {"matchLabels": {"canary": "yes"}}
    if rng.random() < 0.1:
        strategy["paused"] = True
    return make_sidecarset("envoy:2", strategy=strategy)


def _pods(rng: random.Random, target: Any, count: int) -> list[dict[str, Any]]:
    pods = []
    for index in range(count):
        kind = rng.choice(["old", "old", "updated", "restarting", "recreate", "other"])
        labels = {"app": "web" if kind != "other" else "db", "zone": rng.choice("ab")}
        if rng.random() < 0.4:
            labels["canary"] = "yes"
        options: dict[str, Any] = {
            "labels": labels,
            "ready": rng.random() > 0.2,
            "created": rng.randrange(5),
            "ready_since": rng.choice([None, 1, 2]),
            "namespace": rng.choice(["a", "b"]),
            "resource_version": str(1000 + index),
        }
        name = f"p-{index}"
        if kind == "updated":
            pods.append(make_pod(name, injected=V1, updated_to=target, **options))
        elif kind == "restarting":
            pods.append(make_pod(name, injected=V1, updated_to=target, kubelet_done=False, **options))
        elif kind == "recreate":
            pods.append(make_pod(name, injected=RECREATE, **options))
        else:
            pods.append(make_pod(name, injected=V1, **options))
    return pods


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), cached=st.booleans(), restricted=st.booleans())
def test_decisions_for_equals_filtered_decisions(seed: int, cached: bool, restricted: bool) -> None:
    rng = random.Random(seed)
    target = _target(rng)
    pods = _pods(rng, target, rng.randrange(1, 30))
    refs_of_pods = [pod_ref(pod) for pod in pods]
    only = frozenset(rng.sample(refs_of_pods, rng.randrange(len(refs_of_pods) + 1))) if restricted else None
    asked: set[PodRef] = set(rng.sample(refs_of_pods, rng.randrange(len(refs_of_pods) + 1)))
    asked.add(PodRef("a", "not-listed", "uid-x"))  # a pod the round never saw: not in the answer

    def plan() -> Any:
        cache = PlanningCache() if cached else None
        if cache is not None:
            plan_round(target, pods, only=only, cache=cache)  # fill it: the next round hits
        return plan_round(target, pods, only=only, cache=cache)

    expected = [decision for decision in plan().decisions if decision.ref in asked]
    answered = plan().decisions_for(asked)
    assert list(answered.values()) == expected
    assert list(answered) == [decision.ref for decision in expected]

    # Asking first, then for everything, on one plan: both stay consistent.
    same = plan()
    first = same.decisions_for(asked)
    assert list(first.values()) == [decision for decision in same.decisions if decision.ref in asked]


def test_a_lazy_round_decides_only_the_pods_asked_about() -> None:
    """With no partition and no scatter, asking about one waiting pod classifies the pods the
    budget walk reached and that one, not the whole round."""
    target = make_sidecarset("envoy:2", strategy={"maxUnavailable": 1})
    pods = [
        make_pod(f"p-{index}", injected=V1, created=index, resource_version=str(index + 1))
        for index in range(40)
    ]
    plan = plan_round(target, pods)
    assert len(plan.to_patch) == 1
    last = plan._classes.ref_at(len(plan._classes) - 1)
    answer = plan.decisions_for({last})
    assert [decision.pod_class for decision in answer.values()] == [PodClass.WAITING]
    assert answer[last].reason == "maxUnavailable (1) reached this round"
    unclassified = [item for item in plan._classes._pending if item[1].upgradability is None]
    # The walk classified the pod it patched and the next one (where the budget ran out); the
    # answer classified the one asked about. The other 37 were never looked at again.
    assert len(unclassified) == 40 - 3
    assert not plan._classes._resolved and "decisions" not in plan.__dict__
