"""Kruise's pod condition ``SidecarSetUpgradable``, as its SidecarSet controller writes it.

One condition per pod for all SidecarSets: its ``message`` is a JSON object of SidecarSet name →
upgradable (``{"log-agent":false}``); the status is ``True`` with reason
``AllSidecarsetUpgradable`` when every entry is true, else ``False`` with reason
``UpdateImmutableField`` (a SidecarSet changed more than images: the pod needs recreate). Tools
that read Kruise's condition keep working against pods the hub manages.

Pure: ``upgradable_condition`` returns the condition to write, or ``None`` when the pod already
carries it (no write).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

__all__ = ["CONDITION_TYPE", "recorded", "upgradable_condition"]

CONDITION_TYPE = "SidecarSetUpgradable"
REASON_UPGRADABLE = "AllSidecarsetUpgradable"
REASON_NOT_UPGRADABLE = "UpdateImmutableField"


def _current(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == CONDITION_TYPE:
            return condition
    return None


def _entries(condition: Mapping[str, Any] | None) -> dict[str, Any]:
    """The message's name → upgradable entries (an unreadable message counts as none, as Kruise
    would fail on it and the hub rewrites it)."""
    try:
        entries = json.loads(str((condition or {}).get("message") or "{}"))
    except ValueError:
        return {}
    return dict(entries) if isinstance(entries, dict) else {}


def recorded(pod: Mapping[str, Any]) -> dict[str, Any]:
    """The SidecarSets the pod's condition records, name → upgradable (empty without one)."""
    return _entries(_current(pod))


def upgradable_condition(
    pod: Mapping[str, Any], sidecarset_name: str, upgradable: bool, *, now: datetime
) -> dict[str, Any] | None:
    """The ``SidecarSetUpgradable`` condition ``pod`` should carry once ``sidecarset_name`` is
    recorded as ``upgradable`` (other SidecarSets' entries kept), or ``None`` when it already
    does. ``lastTransitionTime`` moves only when the status changes (as Kubernetes' helpers do)."""
    current = _current(pod)
    entries = _entries(current)
    entries[sidecarset_name] = upgradable
    status = "True" if all(value is not False for value in entries.values()) else "False"
    condition = {
        "type": CONDITION_TYPE,
        "status": status,
        "reason": REASON_UPGRADABLE if status == "True" else REASON_NOT_UPGRADABLE,
        # Go's encoding/json: keys sorted, no spaces
        "message": json.dumps(entries, sort_keys=True, separators=(",", ":")),
    }
    if current is not None and all(current.get(key) == value for key, value in condition.items()):
        return None
    unchanged_status = current is not None and current.get("status") == status
    transition = current.get("lastTransitionTime") if unchanged_status and current else None
    condition["lastTransitionTime"] = transition or now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return condition
