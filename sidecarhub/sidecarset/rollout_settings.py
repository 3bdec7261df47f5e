"""A SidecarSet's rollout policy: how its releases proceed (steps, failure threshold, deadlines).

The policy is a first-class field of the definition (``SidecarSet.rollout_policy``), frozen into
each published revision (``SidecarSetRevision.rollout_policy``), edited in the API and the
admin; the ``rollouts.sidecarhub.io/*`` annotations are its import format (a Kruise document
carrying them fills the field) and what export writes. This module is the one parser and
validator for both forms, used when a definition is saved or published (``sidecarhub.services``:
a bad value is a 400 naming the field or the annotation, nothing is stored) and when a release is
created (``rollouts.services.resolve_settings``: the revision's policy over the hub's defaults).
The policy is not hashed: changing it never makes pods "needs recreate".

Keys (:data:`POLICY_KEYS`; annotation ``rollouts.sidecarhub.io/<key with dashes>``):

- ``steps``: ``["canary", "50%", "100%"]`` (annotation ``"canary,50%,100%"``): step targets in
  order (decision 13): ``canary`` (the pods of ``spec.updateStrategy.selector``; first only, and
  only with that selector), a cumulative count (``1``) or a percent of the matched pods (``50%``);
- ``max_unavailable``: an int or a percent, as ``spec.updateStrategy.maxUnavailable``;
- ``failure_threshold``, ``progress_deadline_seconds``, ``pod_timeout_seconds``,
  ``approval_ttl_seconds``: whole numbers.

Pure: no Django, no database. Problems are :class:`FieldError` values with the field's path
(``rollout_policy.failure_threshold``) or the annotation's
(``metadata.annotations[rollouts.sidecarhub.io/failure-threshold]``), or ``ValueError`` from
:func:`check_steps` for callers with their own error type.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from sidecarhub.sidecarset.errors import FieldError, FieldPath
from sidecarhub.sidecarset.model import SidecarSet
from sidecarhub.sidecarset.planning import resolve_step_target
from sidecarhub.sidecarset.steps import CANARY_STEP

__all__ = [
    "MAX_ROLLOUT_STEPS",
    "POLICY_KEYS",
    "POLICY_PATH",
    "ROLLOUT_ANNOTATION_PREFIX",
    "RolloutSettings",
    "annotation_key",
    "check_rollout_policy",
    "check_steps",
    "default_steps",
    "parse_step_target",
    "rollout_policy_annotations",
    "settings_from_policy",
    "split_rollout_annotations",
]

ROLLOUT_ANNOTATION_PREFIX: Final = "rollouts.sidecarhub.io/"
# The policy's keys, in the order they are stored and shown; each is a field of RolloutSettings.
POLICY_KEYS: Final = (
    "steps",
    "max_unavailable",
    "failure_threshold",
    "progress_deadline_seconds",
    "pod_timeout_seconds",
    "approval_ttl_seconds",
)
# Where the API and the admin put the policy; field errors are paths under it.
POLICY_PATH: Final = FieldPath().child("rollout_policy")

# A release stores each step as a row with a small ordinal; a hundred steps is already absurd.
MAX_ROLLOUT_STEPS: Final = 100
# Step targets and maxUnavailable are stored as text of at most 16 characters (``Rollout``).
_MAX_TARGET_CHARS: Final = 16
# The whole-number settings are stored as PostgreSQL integers.
_MAX_WHOLE_NUMBER: Final = 2**31 - 1
_DIGITS = re.compile(r"^[0-9]{1,18}$")
_PERCENT = re.compile(r"^[0-9]+%$")


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


def _whole_number(raw: Any) -> int | str:
    """``raw`` as a whole number, or a message saying why it is not one."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        number: int | str = raw
    else:
        number = parse_step_target(raw) if isinstance(raw, str) else str(raw)
    if not isinstance(number, int) or number < 0:
        return f"{str(raw)[:40]!r} is not a whole number"
    return number


def _check_value(key: str, raw: Any, has_canary_selector: bool) -> tuple[Any, str | None]:
    """One policy value in canonical form (``None``: unset), or ``(None, message)``."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None, None
    if key == "steps":
        if isinstance(raw, str):
            items: list[Any] = [part for part in (p.strip() for p in raw.split(",")) if part]
        elif isinstance(raw, list | tuple):
            items = list(raw)
        else:
            return None, 'must be a list of step targets, e.g. ["canary", "50%", "100%"]'
        if any(isinstance(item, bool) or not isinstance(item, int | str) for item in items):
            return None, 'every step must be a count (1) or a percent ("50%") or "canary"'
        try:
            return list(check_steps(items, has_canary_selector=has_canary_selector)), None
        except ValueError as exc:
            return None, str(exc)
    if key == "max_unavailable":
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            return None, "must be a non-negative integer or a percentage such as '10%'"
        value = parse_step_target(raw) if isinstance(raw, str) else raw
        if isinstance(value, int) and value < 0:
            return None, "must be a non-negative integer or a percentage such as '10%'"
        problem = _max_unavailable_error(value)
        return (value, None) if problem is None else (None, problem)
    number = _whole_number(raw)
    if isinstance(number, str):
        return None, number
    if number > _MAX_WHOLE_NUMBER:
        return None, f"must be at most {_MAX_WHOLE_NUMBER}"
    return number, None


def _check_entries(
    entries: Sequence[tuple[str, Any, FieldPath]], has_canary_selector: bool
) -> tuple[dict[str, Any], list[FieldError]]:
    policy: dict[str, Any] = {}
    errors: list[FieldError] = []
    for key, raw, path in entries:
        value, problem = _check_value(key, raw, has_canary_selector)
        if problem is not None:
            errors.append(FieldError.at(path, problem))
        elif value is not None:
            policy[key] = value
    # Canonical key order, so two equal policies are equal JSON (publish compares them).
    return {key: policy[key] for key in POLICY_KEYS if key in policy}, errors


def check_rollout_policy(
    policy: Any, *, has_canary_selector: bool, path: FieldPath = POLICY_PATH
) -> tuple[dict[str, Any], list[FieldError]]:
    """A rollout policy as the API, the admin and the database give it, in canonical form, and
    every problem (each at ``rollout_policy.<key>``).

    Canonical: only the keys that are set (``None`` and ``""`` are unset), in
    :data:`POLICY_KEYS` order; ``steps`` a list of counts (int), percents and ``"canary"``
    (a comma-separated string is accepted too); whole numbers as ints (digit strings accepted).
    A value with a problem is left out. ``has_canary_selector``: whether the SidecarSet has
    ``spec.updateStrategy.selector`` (a ``canary`` step needs it).
    """
    if policy is None:
        return {}, []
    if not isinstance(policy, Mapping):
        return {}, [FieldError.at(path, f"must be an object with the keys {', '.join(POLICY_KEYS)}")]
    entries: list[tuple[str, Any, FieldPath]] = []
    errors: list[FieldError] = []
    for key, raw in policy.items():
        if key in POLICY_KEYS:
            entries.append((key, raw, path.segment(str(key))))
        else:
            unknown = f"unknown rollout setting; the settings are {', '.join(POLICY_KEYS)}"
            errors.append(FieldError.at(path.segment(str(key)), unknown))
    checked, problems = _check_entries(entries, has_canary_selector)
    return checked, [*errors, *problems]


def annotation_key(policy_key: str) -> str:
    """The import-format annotation of a policy key: ``rollouts.sidecarhub.io/failure-threshold``."""
    return ROLLOUT_ANNOTATION_PREFIX + policy_key.replace("_", "-")


def split_rollout_annotations(
    sidecarset: SidecarSet,
) -> tuple[SidecarSet, dict[str, Any] | None, list[FieldError]]:
    """Read the ``rollouts.sidecarhub.io/*`` annotations (the import format) out of a SidecarSet.

    Returns the SidecarSet without them, the policy they give (``None`` when the SidecarSet has
    none of them; keys they omit or leave empty are unset), and every problem, each at the
    annotation's path (``metadata.annotations[rollouts.sidecarhub.io/steps]``); an unknown key
    under the prefix is a problem too (a typo would otherwise be ignored).
    """
    annotations: Mapping[str, str] = sidecarset.annotations or {}
    ours = {key: value for key, value in annotations.items() if key.startswith(ROLLOUT_ANNOTATION_PREFIX)}
    if not ours:
        return sidecarset, None, []
    base_path = FieldPath().child("metadata").child("annotations")
    by_annotation = {annotation_key(key): key for key in POLICY_KEYS}
    entries: list[tuple[str, Any, FieldPath]] = []
    errors: list[FieldError] = []
    for annotation, value in ours.items():
        if annotation in by_annotation:
            entries.append((by_annotation[annotation], value, base_path.key(annotation)))
        else:
            known = ", ".join(sorted(by_annotation))
            errors.append(
                FieldError.at(base_path.key(annotation), f"unknown rollout setting; known: {known}")
            )
    policy, problems = _check_entries(entries, sidecarset.update_strategy.selector is not None)
    rest = MappingProxyType({key: value for key, value in annotations.items() if key not in ours})
    return dataclasses.replace(sidecarset, annotations=rest), policy, [*errors, *problems]


def rollout_policy_annotations(policy: Mapping[str, Any]) -> dict[str, str]:
    """A canonical policy in the import format (what export writes): one annotation per set key."""
    annotations: dict[str, str] = {}
    for key in POLICY_KEYS:
        value = policy.get(key)
        if value is None:
            continue
        annotations[annotation_key(key)] = (
            ",".join(str(step) for step in value) if key == "steps" else str(value)
        )
    return annotations


def settings_from_policy(
    policy: Any, defaults: RolloutSettings, *, has_canary_selector: bool
) -> tuple[RolloutSettings, list[FieldError]]:
    """``defaults`` with the policy's set keys over them, and every problem with the policy.

    ``steps`` unset stays as in ``defaults`` (``None``: :func:`default_steps` applies later,
    after any explicit override). A value with a problem is left at its default.
    """
    checked, errors = check_rollout_policy(policy, has_canary_selector=has_canary_selector)
    values: dict[str, Any] = {
        key: tuple(value) if key == "steps" else value for key, value in checked.items()
    }
    return dataclasses.replace(defaults, **values), errors
