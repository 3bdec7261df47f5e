"""Rollout settings a SidecarSet carries in its ``rollouts.sidecarhub.io/*`` annotations.

One implementation of their rules, used twice: when a definition is saved or published
(``sidecarhub.services``: a bad value is a 400 naming the annotation, nothing is stored) and when
a release is created (``rollouts.services.resolve_settings``: the same parse over the hub's
defaults). Annotations are not hashed, so changing them never makes pods "needs recreate".

- ``steps``: ``"canary,50%,100%"``: step targets in order (decision 13): ``canary`` (the pods
  of ``spec.updateStrategy.selector``; first only, and only with that selector), a cumulative
  count (``1``) or a percent of the matched pods (``50%``);
- ``max-unavailable``: an int or a percent, as ``spec.updateStrategy.maxUnavailable``;
- ``failure-threshold``, ``progress-deadline-seconds``, ``pod-timeout-seconds``,
  ``approval-ttl-seconds``: whole numbers.

Pure: no Django, no database. Problems are :class:`FieldError` values with the annotation's path
(``metadata.annotations[rollouts.sidecarhub.io/failure-threshold]``), or ``ValueError`` from
:func:`check_steps` for callers with their own error type.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sidecarhub.sidecarset.errors import FieldError, FieldPath
from sidecarhub.sidecarset.model import SidecarSet
from sidecarhub.sidecarset.planning import resolve_step_target
from sidecarhub.sidecarset.steps import CANARY_STEP

__all__ = [
    "MAX_ROLLOUT_STEPS",
    "ROLLOUT_ANNOTATION_PREFIX",
    "RolloutSettings",
    "check_steps",
    "default_steps",
    "parse_step_target",
    "read_rollout_settings",
    "rollout_settings_errors",
]

ROLLOUT_ANNOTATION_PREFIX: Final = "rollouts.sidecarhub.io/"
# A release stores each step as a row with a small ordinal; a hundred steps is already absurd.
MAX_ROLLOUT_STEPS: Final = 100
# Step targets and maxUnavailable are stored as text of at most 16 characters (``Rollout``).
_MAX_TARGET_CHARS: Final = 16
# The whole-number settings are stored as PostgreSQL integers.
_MAX_WHOLE_NUMBER: Final = 2**31 - 1
_DIGITS = re.compile(r"^[0-9]{1,18}$")
_PERCENT = re.compile(r"^[0-9]+%$")
# Annotation key suffix -> RolloutSettings field, for the whole-number settings.
_WHOLE_NUMBER_SETTINGS: Final = (
    ("failure-threshold", "failure_threshold"),
    ("progress-deadline-seconds", "progress_deadline_seconds"),
    ("pod-timeout-seconds", "pod_timeout_seconds"),
    ("approval-ttl-seconds", "approval_ttl_seconds"),
)


@dataclass(frozen=True)
class RolloutSettings:
    """How a rollout proceeds; snapshotted into the ``Rollout`` row at creation.

    ``steps``: targets in order — ``"canary"`` (the pods of ``updateStrategy.selector``; first
    only), a cumulative count (``1``) or percent of matched pods (``"50%"``). ``None``: the
    default of decision 13 (:func:`default_steps`). ``max_unavailable``: ``None`` keeps the
    revision's ``updateStrategy.maxUnavailable``. Times are in seconds.
    """

    steps: tuple[int | str, ...] | None = None
    max_unavailable: int | str | None = None
    failure_threshold: int = 0
    progress_deadline_seconds: int = 600
    pod_timeout_seconds: int = 300
    approval_ttl_seconds: int = 86400


def parse_step_target(value: Any) -> int | str:
    """A step target as ``plan_step`` takes it: a pod count (int), ``"N%"`` or ``"canary"``.

    Never raises: anything that is not a plain count stays text (:func:`check_steps` judges it).
    """
    text = str(value).strip()
    return int(text) if _DIGITS.match(text) else text


def default_steps(has_canary_selector: bool) -> tuple[int | str, ...]:
    """Decision 13's default: the canary pods, then all of them (no selector: all at once)."""
    return (CANARY_STEP, "100%") if has_canary_selector else ("100%",)


def check_steps(steps: Sequence[int | str], *, has_canary_selector: bool) -> tuple[int | str, ...]:
    """The steps, parsed (:func:`parse_step_target`), or ``ValueError`` saying what is wrong.

    Rules: at least one step and at most :data:`MAX_ROLLOUT_STEPS`; ``canary`` only first and
    only with ``spec.updateStrategy.selector``; every other step a non-negative count or percent.
    """
    if not steps:
        raise ValueError("a rollout needs at least one step")
    if len(steps) > MAX_ROLLOUT_STEPS:
        raise ValueError(f"a rollout has at most {MAX_ROLLOUT_STEPS} steps, not {len(steps)}")
    checked: list[int | str] = []
    for position, raw in enumerate(steps):
        step = parse_step_target(raw)
        if step == CANARY_STEP:
            if position != 0:
                raise ValueError("the canary step can only be the first step")
            if not has_canary_selector:
                raise ValueError("a canary step needs spec.updateStrategy.selector")
        else:
            hint = "(use a count like 1 or a percent like 50%)"
            if len(str(step)) > _MAX_TARGET_CHARS:
                raise ValueError(f"step {position + 1}: {str(step)[:20]!r}... is too long {hint}")
            try:
                resolve_step_target(step, 100)
            except ValueError as exc:
                raise ValueError(f"step {position + 1}: {exc} {hint}") from None
        checked.append(step)
    return tuple(checked)


def _max_unavailable_error(value: int | str) -> str | None:
    if isinstance(value, int):
        return None if value <= _MAX_WHOLE_NUMBER else f"must be at most {_MAX_WHOLE_NUMBER}"
    if not _PERCENT.match(value) or len(value) > _MAX_TARGET_CHARS:
        return "must be a non-negative integer or a percentage such as '10%'"
    return None


def read_rollout_settings(
    sidecarset: SidecarSet, defaults: RolloutSettings | None = None
) -> tuple[RolloutSettings, list[FieldError]]:
    """The settings the SidecarSet's annotations give over ``defaults``, and every problem found.

    Annotated steps are checked against the SidecarSet's canary selector; unannotated ``steps``
    stay as in ``defaults`` (``None``: :func:`default_steps` applies later, after any explicit
    override). A value with a problem is left at its default. Empty values count as unset.
    """
    annotations: Mapping[str, str] = sidecarset.annotations or {}
    base_path = FieldPath().child("metadata").child("annotations")
    settings = defaults if defaults is not None else RolloutSettings()
    values: dict[str, Any] = {}
    errors: list[FieldError] = []

    def annotated(key: str) -> str | None:
        value = annotations.get(ROLLOUT_ANNOTATION_PREFIX + key)
        return str(value).strip() if value not in (None, "") else None

    def fail(key: str, message: str) -> None:
        errors.append(FieldError.at(base_path.key(ROLLOUT_ANNOTATION_PREFIX + key), message))

    steps_text = annotated("steps")
    if steps_text:
        steps = tuple(part for part in (p.strip() for p in steps_text.split(",")) if part)
        try:
            values["steps"] = check_steps(
                steps, has_canary_selector=sidecarset.update_strategy.selector is not None
            )
        except ValueError as exc:
            fail("steps", str(exc))
    max_unavailable_text = annotated("max-unavailable")
    if max_unavailable_text is not None:
        max_unavailable = parse_step_target(max_unavailable_text)
        problem = _max_unavailable_error(max_unavailable)
        if problem is None:
            values["max_unavailable"] = max_unavailable
        else:
            fail("max-unavailable", problem)
    for key, field_name in _WHOLE_NUMBER_SETTINGS:
        text = annotated(key)
        if text is None:
            continue
        number = parse_step_target(text)
        if not isinstance(number, int):
            fail(key, f"{text[:40]!r} is not a whole number")
        elif number > _MAX_WHOLE_NUMBER:
            fail(key, f"must be at most {_MAX_WHOLE_NUMBER}")
        else:
            values[field_name] = number
    return dataclasses.replace(settings, **values), errors


def rollout_settings_errors(sidecarset: SidecarSet) -> list[FieldError]:
    """Every problem with the SidecarSet's ``rollouts.sidecarhub.io/*`` annotations ([] = valid)."""
    return read_rollout_settings(sidecarset)[1]
