"""Kruise's ``SidecarSetUpgradable`` pod condition, as the hub writes it (decision 18)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sidecarhub.sidecarset.conditions import CONDITION_TYPE, recorded, upgradable_condition

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
LATER = datetime(2026, 12, 4, 13, 0, tzinfo=UTC)


def _pod(*conditions: dict[str, Any]) -> dict[str, Any]:
    return {"status": {"conditions": [{"type": "Ready", "status": "True"}, *conditions]}}


def test_not_upgradable_is_false_with_kruises_reason_and_message() -> None:
    condition = upgradable_condition(_pod(), "log-agent", False, now=NOW)
    assert condition == {
        "type": CONDITION_TYPE,
        "status": "False",
        "reason": "UpdateImmutableField",
        "message": '{"log-agent":false}',
        "lastTransitionTime": "2026-12-04T12:00:00Z",
    }


def test_entries_of_other_sidecarsets_are_kept_and_all_must_be_upgradable() -> None:
    marked = _pod(upgradable_condition(_pod(), "mesh", False, now=NOW) or {})
    condition = upgradable_condition(marked, "log-agent", True, now=LATER)
    assert condition is not None
    assert json.loads(condition["message"]) == {"log-agent": True, "mesh": False}
    assert (condition["status"], condition["reason"]) == ("False", "UpdateImmutableField")
    # the status did not change: the transition time stays
    assert condition["lastTransitionTime"] == "2026-12-04T12:00:00Z"
    both = _pod(condition)
    upgradable = upgradable_condition(both, "mesh", True, now=LATER)
    assert upgradable is not None
    assert (upgradable["status"], upgradable["reason"]) == ("True", "AllSidecarsetUpgradable")
    assert upgradable["lastTransitionTime"] == "2026-12-04T13:00:00Z"
    assert recorded(_pod(upgradable)) == {"log-agent": True, "mesh": True}


def test_no_write_when_the_pod_already_carries_it() -> None:
    written = upgradable_condition(_pod(), "log-agent", False, now=NOW)
    assert written is not None
    assert upgradable_condition(_pod(written), "log-agent", False, now=LATER) is None


def test_an_unreadable_message_is_rewritten() -> None:
    broken = {"type": CONDITION_TYPE, "status": "False", "reason": "x", "message": "not json"}
    condition = upgradable_condition(_pod(broken), "log-agent", True, now=NOW)
    assert condition is not None and json.loads(condition["message"]) == {"log-agent": True}
    assert recorded(_pod()) == {}
