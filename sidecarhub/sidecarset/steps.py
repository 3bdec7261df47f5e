"""Plan one rollout step (decision 13): the exact pods an approver sees and the worker patches.

A step is the next pods in the round's planned order (``planning.plan_round``) up to a
cumulative number of updated pods, or, for the canary step, every candidate selected by
``updateStrategy.selector``. The worker then runs rounds restricted to the step's pods
(``plan_round(..., only=step.refs)``), so ``maxUnavailable`` still holds per round. Pure and
deterministic, like the round planner.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from sidecarhub.sidecarset.model import SidecarSet
from sidecarhub.sidecarset.planning import (
    PlanningCache,
    PodDecision,
    RoundPlan,
    plan_round,
    resolve_step_target,
)
from sidecarhub.sidecarset.predicates import NamespaceLabels, PodRef

__all__ = ["CANARY_STEP", "StepPlan", "plan_step"]

# The step that updates the pods selected by ``updateStrategy.selector`` (decision 13).
CANARY_STEP: Final = "canary"


@dataclass(frozen=True)
class StepPlan:
    """One rollout step (decision 13): its exact pods, to show the approver and then to patch.

    ``target_updated`` is the cumulative number of updated pods the step aims for; ``pods`` are
    the next candidates in planned order that get there (partition respected). ``shortfall`` is
    how many are missing (needs recreate, in flight, not selected or kept by partition).
    ``first_round`` is what the first round would patch under ``maxUnavailable``.
    """

    step: int | str
    target_updated: int
    updated_before: int
    pods: tuple[PodDecision, ...]
    first_round: tuple[PodDecision, ...]
    shortfall: int
    blocked_reason: str | None
    round: RoundPlan

    @property
    def refs(self) -> frozenset[PodRef]:
        """The step's pod identities, for ``plan_round(..., only=...)`` and the PodUpdate rows."""
        return frozenset(decision.ref for decision in self.pods)


def plan_step(
    sidecarset: SidecarSet,
    pods: Iterable[Mapping[str, Any]],
    step_target: int | str,
    *,
    namespace_labels: NamespaceLabels | None = None,
    apply_canary_selector: bool | None = None,
    cache: PlanningCache | None = None,
) -> StepPlan:
    """The exact pods of one rollout step (decision 13), in planned order.

    ``step_target`` is :data:`CANARY_STEP` (every candidate selected by ``updateStrategy.selector``)
    or a cumulative count of updated pods: an int or ``"N%"`` of the matched pods (rounded up).
    The step's pods are the next candidates in the round's order, never past ``partition``.
    ``apply_canary_selector`` defaults to True for the canary step and False otherwise (later
    steps cover the rest). Pods that appear later are left for the next step; the worker
    patches the step with ``plan_round(..., only=step.refs)``, round by round.
    """
    pod_list = list(pods)
    is_canary = step_target == CANARY_STEP
    if is_canary and sidecarset.update_strategy.selector is None:
        raise ValueError("a canary step needs spec.updateStrategy.selector")
    use_selector = is_canary if apply_canary_selector is None else apply_canary_selector
    round_plan = plan_round(
        sidecarset,
        pod_list,
        namespace_labels=namespace_labels,
        apply_canary_selector=use_selector,
        cache=cache,
    )
    updated_before = round_plan.status.updated_pods
    eligible = round_plan.ordered[: max(0, len(round_plan.ordered) - round_plan.partition)]
    if is_canary:
        target = updated_before + len(eligible)
    else:
        target = max(updated_before, resolve_step_target(step_target, round_plan.status.matched_pods))
    strategy = sidecarset.update_strategy
    if strategy.type == "NotUpdate" or strategy.paused:
        # Nothing may be patched, so the step holds no pods (hot-upgrade resets, which only delay
        # a round, do not block preparing a step).
        return StepPlan(
            step=step_target,
            target_updated=target,
            updated_before=updated_before,
            pods=(),
            first_round=(),
            shortfall=target - updated_before,
            blocked_reason=round_plan.blocked_reason,
            round=round_plan,
        )
    chosen = eligible[: target - updated_before]
    first_round: tuple[PodDecision, ...] = ()
    if chosen:
        first_round = plan_round(
            sidecarset,
            pod_list,
            namespace_labels=namespace_labels,
            only=frozenset(decision.ref for decision in chosen),
            apply_canary_selector=use_selector,
            cache=cache,
        ).to_patch
    return StepPlan(
        step=step_target,
        target_updated=target,
        updated_before=updated_before,
        pods=chosen,
        first_round=first_round,
        shortfall=target - updated_before - len(chosen),
        blocked_reason=round_plan.blocked_reason,
        round=round_plan,
    )
