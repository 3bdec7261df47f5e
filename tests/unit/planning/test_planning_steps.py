"""Rollout steps (decision 13): the exact pods of a step, cumulative targets, the canary step."""

from __future__ import annotations

from typing import Any

import pytest
from planning_pods import kubelet_restart, make_pod, make_pods, make_sidecarset, names, patch_pod, replace

from sidecarhub.sidecarset import CANARY_STEP, SidecarSet, StepPlan, plan_round, plan_step
from sidecarhub.sidecarset.planning import resolve_step_target

V1 = make_sidecarset("envoy:1")


def run_step(sidecarset: SidecarSet, pods: list[dict[str, Any]], step: StepPlan) -> list[dict[str, Any]]:
    """Play rounds restricted to the step's pods until none is left to patch."""
    for _ in range(len(step.pods) + 1):
        plan = plan_round(sidecarset, pods, only=step.refs, apply_canary_selector=False)
        assert len([d for d in plan.to_patch if d.ready]) <= max(
            0, plan.max_unavailable - plan.unavailable_before
        )
        pods = replace(
            pods, [kubelet_restart(patch_pod(decision.pod, sidecarset)) for decision in plan.to_patch]
        )
    return pods


def test_steps_one_ten_fifty_hundred_percent_are_cumulative() -> None:
    v2 = make_sidecarset("envoy:2", strategy={"maxUnavailable": "20%"})
    pods = make_pods(40, injected=V1)
    seen: set[str] = set()
    targets: list[tuple[int | str, int]] = [(1, 1), ("10%", 4), ("50%", 20), ("100%", 40)]
    for step_target, expected_total in targets:
        step = plan_step(v2, pods, step_target)
        assert step.target_updated == expected_total
        assert len(step.pods) == expected_total - step.updated_before
        assert step.shortfall == 0
        step_names = set(names(step.pods))
        assert not step_names & seen  # every pod is in exactly one step
        seen |= step_names
        # the first round patches the head of the step, within maxUnavailable (8)
        assert names(step.first_round) == names(step.pods)[: min(8, len(step.pods))]
        pods = run_step(v2, pods, step)
        assert plan_round(v2, pods).status.updated_pods == expected_total
    assert len(seen) == 40


def test_step_pods_follow_the_planned_order() -> None:
    v2 = make_sidecarset("envoy:2")
    pods = make_pods(10, injected=V1)
    step = plan_step(v2, pods, 3)
    assert names(step.pods) == names(plan_round(v2, pods).ordered)[:3] == ["pod-9", "pod-8", "pod-7"]


def test_canary_step_then_the_rest_up_to_partition() -> None:
    # decision 13 default steps: the canary selector's pods, then the rest up to the final partition.
    v2 = make_sidecarset(
        "envoy:2",
        strategy={"selector": {"matchLabels": {"canary": "true"}}, "maxUnavailable": 3},
    )
    pods = [
        make_pod(
            f"pod-{index}", injected=V1, created=index, labels={"canary": "true"} if index in (2, 5) else None
        )
        for index in range(8)
    ]
    canary = plan_step(v2, pods, CANARY_STEP)
    assert names(canary.pods) == ["pod-5", "pod-2"]
    assert canary.target_updated == 2
    pods = run_step(v2, pods, canary)
    rest = plan_step(v2, pods, "100%")
    assert sorted(names(rest.pods)) == sorted(f"pod-{index}" for index in (0, 1, 3, 4, 6, 7))
    assert len(rest.first_round) == 3


def test_steps_never_pass_the_partition() -> None:
    v2 = make_sidecarset("envoy:2", strategy={"partition": 3, "maxUnavailable": 10})
    pods = make_pods(10, injected=V1)
    step = plan_step(v2, pods, "100%")
    assert len(step.pods) == 7
    assert step.shortfall == 3
    assert names(step.pods) == [f"pod-{index}" for index in range(9, 2, -1)]  # the oldest 3 stay old


def test_needs_recreate_pods_are_a_shortfall_not_step_members() -> None:
    v2 = make_sidecarset("envoy:2", strategy={"maxUnavailable": 10})
    with_env = make_sidecarset("envoy:1", env=[{"name": "A", "value": "1"}])
    pods = [*make_pods(3, injected=V1), make_pod("odd", injected=with_env)]
    step = plan_step(v2, pods, "100%")
    assert len(step.pods) == 3 and step.shortfall == 1
    assert "odd" not in names(step.pods)


def test_paused_or_not_update_prepares_no_pods() -> None:
    for strategy in ({"paused": True}, {"type": "NotUpdate"}):
        step = plan_step(make_sidecarset("envoy:2", strategy=strategy), make_pods(3, injected=V1), "100%")
        assert step.pods == () and step.first_round == ()
        assert step.blocked_reason is not None


def test_a_canary_step_needs_a_selector() -> None:
    with pytest.raises(ValueError, match="selector"):
        plan_step(make_sidecarset("envoy:2"), make_pods(2, injected=V1), CANARY_STEP)


@pytest.mark.parametrize(
    ("step", "matched", "expected"),
    [(1, 40, 1), ("1", 40, 1), ("10%", 40, 4), ("10%", 5, 1), ("50%", 9, 5), ("100%", 7, 7), (99, 7, 7)],
)
def test_step_targets(step: int | str, matched: int, expected: int) -> None:
    assert resolve_step_target(step, matched) == expected


@pytest.mark.parametrize("step", ["ten", "10.5%", -1])
def test_bad_step_targets_are_refused(step: int | str) -> None:
    with pytest.raises(ValueError, match="step"):
        resolve_step_target(step, 10)
