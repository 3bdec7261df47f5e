"""The ``rollouts.sidecarhub.io/*`` annotations (issue 15, durable releases): one parse for saving
a definition and for creating its release, every problem a field error naming the annotation."""

from __future__ import annotations

from typing import Any

import pytest

from sidecarhub.sidecarset import parse_sidecarset
from sidecarhub.sidecarset.rollout_settings import (
    RolloutSettings,
    check_steps,
    read_rollout_settings,
    rollout_settings_errors,
)

PREFIX = "rollouts.sidecarhub.io/"
CANARY = {"selector": {"matchLabels": {"canary": "true"}}}


def settings_of(document: dict[str, Any], annotations: dict[str, str], strategy: Any = None) -> Any:
    document["metadata"]["annotations"] = {PREFIX + key: value for key, value in annotations.items()}
    if strategy is not None:
        document["spec"]["updateStrategy"] = strategy
    return read_rollout_settings(parse_sidecarset(document), RolloutSettings(failure_threshold=7))


def test_no_annotation_keeps_the_defaults(document: dict[str, Any]) -> None:
    assert settings_of(document, {}) == (RolloutSettings(failure_threshold=7), [])


def test_every_annotation_is_read(document: dict[str, Any]) -> None:
    settings, errors = settings_of(
        document,
        {
            "steps": " canary, 2 ,50%,100%",
            "max-unavailable": "25%",
            "failure-threshold": "0",
            "progress-deadline-seconds": "60",
            "pod-timeout-seconds": "30",
            "approval-ttl-seconds": "3600",
        },
        CANARY,
    )
    assert errors == []
    assert settings == RolloutSettings(
        steps=("canary", 2, "50%", "100%"),
        max_unavailable="25%",
        failure_threshold=0,
        progress_deadline_seconds=60,
        pod_timeout_seconds=30,
        approval_ttl_seconds=3600,
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("failure-threshold", "x", "'x' is not a whole number"),
        ("failure-threshold", "-1", "'-1' is not a whole number"),
        ("failure-threshold", "²", "'²' is not a whole number"),
        ("pod-timeout-seconds", "9" * 5000, "is not a whole number"),
        ("approval-ttl-seconds", str(2**31), "must be at most"),
        ("steps", "canary,100%", "a canary step needs spec.updateStrategy.selector"),
        ("steps", "50%,abc", "step 2:"),
        ("steps", ",", "a rollout needs at least one step"),
        ("steps", "1%" * 200, "step 1:"),
        ("steps", ",".join(["1"] * 101), "at most 100 steps"),
        ("steps", "9" * 30, "too long"),
        ("max-unavailable", "half", "must be a non-negative integer or a percentage"),
    ],
)
def test_a_bad_value_is_a_field_error_naming_the_annotation(
    document: dict[str, Any], key: str, value: str, message: str
) -> None:
    settings, errors = settings_of(document, {key: value})
    assert [error.path for error in errors] == [f"metadata.annotations[{PREFIX}{key}]"]
    assert message in errors[0].message
    assert settings == RolloutSettings(failure_threshold=7)  # the bad value is left at its default


def test_canary_must_come_first(document: dict[str, Any]) -> None:
    _, errors = settings_of(document, {"steps": "1,canary"}, CANARY)
    assert [error.message for error in errors] == ["the canary step can only be the first step"]


def test_several_problems_are_all_reported(document: dict[str, Any]) -> None:
    document["metadata"]["annotations"] = {PREFIX + "failure-threshold": "x", PREFIX + "steps": "canary"}
    errors = rollout_settings_errors(parse_sidecarset(document))
    assert sorted(error.path for error in errors) == [
        f"metadata.annotations[{PREFIX}failure-threshold]",
        f"metadata.annotations[{PREFIX}steps]",
    ]


def test_check_steps_raises_value_error() -> None:
    assert check_steps(["canary", "1", 50], has_canary_selector=True) == ("canary", 1, 50)
    with pytest.raises(ValueError, match="at least one step"):
        check_steps([], has_canary_selector=False)
    with pytest.raises(ValueError, match=r"needs spec\.updateStrategy\.selector"):
        check_steps(["canary"], has_canary_selector=False)
