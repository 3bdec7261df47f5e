"""A pod whose fields have types no apiserver sends is not matched, and does not fail the round:
one odd pod must not stop a rollout (bad input never a crash). Kruise's typed decoding never lets
such a pod reach its controller at all."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from planning_pods import make_pod, make_sidecarset

from sidecarhub.sidecarset import PlanningCache, plan_round
from sidecarhub.sidecarset.predicates import MALFORMED_POD

V1 = make_sidecarset("envoy:1")
V2 = make_sidecarset("envoy:2")


def _phase_list(pod: dict[str, Any]) -> None:
    pod["status"]["phase"] = ["Running"]


def _container_name_object(pod: dict[str, Any]) -> None:
    pod["spec"]["containers"][0]["name"] = {"name": "envoy"}


@pytest.mark.parametrize("mangle", [_phase_list, _container_name_object])
@pytest.mark.parametrize("cached", [False, True])
def test_a_malformed_pod_is_unmatched_and_the_round_goes_on(mangle: Any, cached: bool) -> None:
    pods = [make_pod(f"p-{index}", injected=V1, created=index) for index in range(4)]
    odd = copy.deepcopy(pods[1])
    mangle(odd)
    pods[1] = odd
    plan = plan_round(V2, pods, cache=PlanningCache() if cached else None)
    refs = {decision.ref.name for decision in plan.decisions}
    assert refs == {"p-0", "p-2", "p-3"}
    assert plan.status.matched_pods == 3
    [reason] = [reason for ref, reason in plan.unmatched if ref.name == "p-1"]
    assert reason == MALFORMED_POD


def test_a_container_status_with_an_odd_name_is_ignored() -> None:
    pods = [make_pod(f"p-{index}", injected=V1, created=index) for index in range(2)]
    pods[1]["status"]["containerStatuses"][0]["name"] = ["envoy"]
    plan = plan_round(V2, pods)
    assert plan.status.matched_pods == 2 and not plan.unmatched
