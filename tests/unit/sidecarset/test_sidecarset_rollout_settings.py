"""The rollout policy (issue 16 item 8): one parser and validator for the field
(``rollout_policy``, as the API, the admin and the database give it) and for its import format,
the ``rollouts.sidecarhub.io/*`` annotations; every problem a field error naming the field or the
annotation; export's annotations read back to the same policy."""

from __future__ import annotations

from typing import Any

import pytest

from sidecarhub.sidecarset import parse_sidecarset
from sidecarhub.sidecarset.rollout_settings import (
    RolloutSettings,
    check_rollout_policy,
    check_steps,
    rollout_policy_annotations,
    settings_from_policy,
    split_rollout_annotations,
)

PREFIX = "rollouts.sidecarhub.io/"
CANARY = {"selector": {"matchLabels": {"canary": "true"}}}


def split(document: dict[str, Any], annotations: dict[str, str], strategy: Any = None) -> Any:
    document["metadata"]["annotations"] = {PREFIX + key: value for key, value in annotations.items()}
    if strategy is not None:
        document["spec"]["updateStrategy"] = strategy
    return split_rollout_annotations(parse_sidecarset(document))


def test_no_rollout_annotation_is_no_policy(document: dict[str, Any]) -> None:
    document["metadata"]["annotations"] = {"team": "mesh"}
    sidecarset = parse_sidecarset(document)
    assert split_rollout_annotations(sidecarset) == (sidecarset, None, [])


def test_every_annotation_is_read_and_leaves_the_annotations(document: dict[str, Any]) -> None:
    document["metadata"]["annotations"] = {"team": "mesh"}
    annotations = {
        "steps": " canary, 2 ,50%,100%",
        "max-unavailable": "25%",
        "failure-threshold": "0",
        "progress-deadline-seconds": "60",
        "pod-timeout-seconds": "30",
        "approval-ttl-seconds": "3600",
    }
    document["metadata"]["annotations"].update({PREFIX + key: value for key, value in annotations.items()})
    document["spec"]["updateStrategy"] = CANARY
    sidecarset, policy, errors = split_rollout_annotations(parse_sidecarset(document))
    assert errors == []
    assert dict(sidecarset.annotations) == {"team": "mesh"}
    assert policy == {
        "steps": ["canary", 2, "50%", "100%"],
        "max_unavailable": "25%",
        "failure_threshold": 0,
        "progress_deadline_seconds": 60,
        "pod_timeout_seconds": 30,
        "approval_ttl_seconds": 3600,
    }


def test_empty_annotations_are_unset_but_still_a_policy(document: dict[str, Any]) -> None:
    """An import that carries only empty rollout annotations clears the policy ({} not None)."""
    _, policy, errors = split(document, {"steps": "", "failure-threshold": " "})
    assert (policy, errors) == ({}, [])


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
        ("failure_threshold", "1", "unknown rollout setting; known: "),
    ],
)
def test_a_bad_annotation_is_a_field_error_naming_it(
    document: dict[str, Any], key: str, value: str, message: str
) -> None:
    _, policy, errors = split(document, {key: value})
    assert [error.path for error in errors] == [f"metadata.annotations[{PREFIX}{key}]"]
    assert message in errors[0].message
    assert policy == {}  # the bad value is left out


def test_canary_must_come_first(document: dict[str, Any]) -> None:
    _, _, errors = split(document, {"steps": "1,canary"}, CANARY)
    assert [error.message for error in errors] == ["the canary step can only be the first step"]


def test_several_annotation_problems_are_all_reported(document: dict[str, Any]) -> None:
    _, _, errors = split(document, {"failure-threshold": "x", "steps": "canary"})
    assert sorted(error.path for error in errors) == [
        f"metadata.annotations[{PREFIX}failure-threshold]",
        f"metadata.annotations[{PREFIX}steps]",
    ]


def test_the_field_is_checked_by_the_same_rules_in_canonical_order() -> None:
    policy, errors = check_rollout_policy(
        {"approval_ttl_seconds": "60", "failure_threshold": 2, "steps": ["canary", "1", 50, "100%"]},
        has_canary_selector=True,
    )
    assert errors == []
    assert list(policy.items()) == [
        ("steps", ["canary", 1, 50, "100%"]),
        ("failure_threshold", 2),
        ("approval_ttl_seconds", 60),
    ]
    assert check_rollout_policy({"steps": None, "max_unavailable": ""}, has_canary_selector=False) == ({}, [])


@pytest.mark.parametrize(
    ("policy", "path", "message"),
    [
        ({"failure_threshold": -1}, "rollout_policy.failure_threshold", "is not a whole number"),
        ({"failure_threshold": True}, "rollout_policy.failure_threshold", "is not a whole number"),
        ({"pod_timeout_seconds": 1.5}, "rollout_policy.pod_timeout_seconds", "is not a whole number"),
        ({"approval_ttl_seconds": 2**31}, "rollout_policy.approval_ttl_seconds", "at most"),
        ({"steps": ["canary"]}, "rollout_policy.steps", "needs spec.updateStrategy.selector"),
        ({"steps": []}, "rollout_policy.steps", "at least one step"),
        ({"steps": [True]}, "rollout_policy.steps", "every step must be"),
        ({"steps": {"a": 1}}, "rollout_policy.steps", "must be a list of step targets"),
        ({"max_unavailable": -1}, "rollout_policy.max_unavailable", "non-negative integer or a percentage"),
        ({"max_unavailable": [1]}, "rollout_policy.max_unavailable", "non-negative integer or a percentage"),
        ({"stepz": ["1"]}, "rollout_policy.stepz", "unknown rollout setting; the settings are steps,"),
        ({"a b": 1}, "rollout_policy[a b]", "unknown rollout setting"),
        (["steps"], "rollout_policy", "must be an object with the keys steps, max_unavailable"),
    ],
)
def test_a_bad_field_value_is_a_field_error_naming_it(policy: Any, path: str, message: str) -> None:
    checked, errors = check_rollout_policy(policy, has_canary_selector=False)
    assert [error.path for error in errors] == [path]
    assert message in errors[0].message
    assert checked == {}


def test_export_annotations_read_back_to_the_same_policy(document: dict[str, Any]) -> None:
    policy = {"steps": ["canary", 1, "50%", "100%"], "max_unavailable": 2, "pod_timeout_seconds": 30}
    annotations = rollout_policy_annotations(policy)
    assert annotations == {
        PREFIX + "steps": "canary,1,50%,100%",
        PREFIX + "max-unavailable": "2",
        PREFIX + "pod-timeout-seconds": "30",
    }
    document["metadata"]["annotations"] = annotations
    document["spec"]["updateStrategy"] = CANARY
    assert split_rollout_annotations(parse_sidecarset(document))[1:] == (policy, [])


def test_settings_take_the_set_keys_over_the_defaults() -> None:
    defaults = RolloutSettings(failure_threshold=7, pod_timeout_seconds=99)
    settings, errors = settings_from_policy(
        {"steps": [1, "100%"], "failure_threshold": 0, "approval_ttl_seconds": "x"},
        defaults,
        has_canary_selector=False,
    )
    assert settings == RolloutSettings(steps=(1, "100%"), failure_threshold=0, pod_timeout_seconds=99)
    assert [error.path for error in errors] == ["rollout_policy.approval_ttl_seconds"]


def test_check_steps_raises_value_error() -> None:
    assert check_steps(["canary", "1", 50], has_canary_selector=True) == ("canary", 1, 50)
    with pytest.raises(ValueError, match="at least one step"):
        check_steps([], has_canary_selector=False)
    with pytest.raises(ValueError, match=r"needs spec\.updateStrategy\.selector"):
        check_steps(["canary"], has_canary_selector=False)
