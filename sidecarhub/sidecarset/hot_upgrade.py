"""Hot upgrade of one pod as an explicit state machine (update.md §5, §9 item 12). Pure.

A HotUpgrade sidecar ``x`` runs as two twins, ``x-1`` and ``x-2`` (injection.md §10): the
*working* twin (named by the working-container annotation) runs the real image, the *idle* twin
runs ``hotUpgradeEmptyImage`` (E). Moving one pod from image A to image T goes through the
states of update.md §5.6, each with the action the hub takes next:

====================  ============================  ==========================================
state (§5.6)          pod                           next action (:class:`HotUpgradeAction`)
====================  ============================  ==========================================
H0 steady, old        working A, idle E             ``PATCH_IDLE``: idle twin → T, versions
H1 upgrading          working A, idle T starting    ``WAIT_NEW``: running, ready, pod Ready
H1 new twin ready     working A, idle T ready       ``SWITCH``: working annotation → new twin
H2 switched           working T, idle A             ``RESET``: old twin → E, versions "0"
H2 resetting          working T, idle E starting    ``WAIT_RESET``: old twin runs E
H3 steady, new        working T, idle E             ``DONE`` (pod ready and consistent)
====================  ============================  ==========================================

``FAILED`` ends the machine: the new twin reports a container failure (image pull error, crash
loop — a failing ``postStart`` makes the kubelet kill and restart it), or a wait passed its
deadline. The working twin is never touched before the new one runs and is ready, so a
failure leaves the old twin working.

Deliberate difference from Kruise (``docs/compatibility.md``): Kruise writes the working
annotation in the same write as the new image (§5.2), so for the whole migration the
annotation names a twin that is still restarting. The hub switches it only once the new twin is
running and ready, so the annotation always names a twin that serves. Consequently the target
of an upgrade is always the idle twin (Kruise's rules 1-3 of §5.2 exist to recover from an
annotation that points at a broken twin, which cannot happen here).

The version annotations and ``SIDECARSET_VERSION`` / ``SIDECARSET_VERSION_ALT`` behave as
Kruise's: the env vars are downward-API references to the annotations (an env var cannot change
in place), so the annotations are written in the SAME write as the image; the kubelet resolves
them when it restarts the twin. The new twin gets a version higher than every version on the
pod (:func:`next_version`), so "VERSION > ALT > 0: migrate" holds even for a rollback.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sidecarhub.sidecarset.annotations import (
    ANNOTATION_WORKING_HOT_UPGRADE_CONTAINER,
    load_json_object,
    version_alt_annotation,
    version_annotation,
)
from sidecarhub.sidecarset.model import SidecarSet
from sidecarhub.sidecarset.predicates import ANNOTATION_INPLACE_UPDATE_STATE, is_consistent, is_ready
from sidecarhub.sidecarset.shapes import as_mapping

__all__ = [
    "HotTwins",
    "HotUpgradeAction",
    "HotUpgradeStep",
    "next_hot_upgrade_step",
    "next_version",
    "read_twins",
    "reset_patch",
    "switch_patch",
    "upgrade_changes",
]


class HotUpgradeAction(StrEnum):
    """What the hub does next to one pod (in the order a pod goes through them)."""

    PATCH_IDLE = "patch_idle"  # write the new image (and versions) to the idle twin
    WAIT_NEW = "wait_new"  # the new twin restarts, its postStart migrates state: wait, with a deadline
    SWITCH = "switch"  # the new twin runs and is ready: point the working annotation at it
    RESET = "reset"  # write the empty image to the old twin (and its versions to "0")
    WAIT_RESET = "wait_reset"  # the old twin restarts on the empty image: wait, with a deadline
    DONE = "done"  # working twin on the target image, idle twin on the empty image, pod ready
    FAILED = "failed"  # a twin failed or a deadline passed; the working twin was left alone


# A pod's action is the least advanced of its hot containers' actions.
_ORDER = (
    HotUpgradeAction.PATCH_IDLE,
    HotUpgradeAction.WAIT_NEW,
    HotUpgradeAction.SWITCH,
    HotUpgradeAction.RESET,
    HotUpgradeAction.WAIT_RESET,
    HotUpgradeAction.DONE,
)
_WAITS = frozenset({HotUpgradeAction.WAIT_NEW, HotUpgradeAction.WAIT_RESET})


@dataclass(frozen=True)
class HotTwins:
    """One HotUpgrade sidecar as the pod has it: which twin works, and the spec images."""

    name: str  # the SidecarSet's container name (``x``)
    working: str  # the working twin's name (``x-1`` or ``x-2``)
    idle: str
    working_image: str  # spec images
    idle_image: str
    target_image: str  # the SidecarSet's image
    empty_image: str  # hotUpgradeEmptyImage


@dataclass(frozen=True)
class HotUpgradeStep:
    """The next action for one pod, the twins it applies to, and why (words for people)."""

    action: HotUpgradeAction
    twins: tuple[HotTwins, ...]
    reason: str
    timed_out: bool = False  # FAILED because a wait passed its deadline (not a container failure)


def _annotations(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return as_mapping(as_mapping(pod.get("metadata")).get("annotations"))


def _spec_images(pod: Mapping[str, Any]) -> dict[str, str]:
    containers = as_mapping(pod.get("spec")).get("containers") or []
    return {str(c.get("name")): str(c.get("image") or "") for c in containers if isinstance(c, Mapping)}


def _statuses(pod: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    statuses = as_mapping(pod.get("status")).get("containerStatuses") or []
    return {str(s.get("name")): s for s in statuses if isinstance(s, Mapping)}


def read_twins(sidecarset: SidecarSet, pod: Mapping[str, Any]) -> tuple[HotTwins, ...]:
    """The pod's HotUpgrade sidecars of this SidecarSet (those with both twins present).

    The working twin is the one the annotation names; as in Kruise, anything but exactly
    ``x-1`` means ``x-2``."""
    working = load_json_object(_annotations(pod).get(ANNOTATION_WORKING_HOT_UPGRADE_CONTAINER)) or {}
    images = _spec_images(pod)
    found = []
    for container in sidecarset.containers:
        names = container.hot_upgrade_names
        if names is None or names[0] not in images or names[1] not in images:
            continue
        first, second = names
        work, idle = (first, second) if working.get(container.name) == first else (second, first)
        found.append(
            HotTwins(
                name=container.name,
                working=work,
                idle=idle,
                working_image=images[work],
                idle_image=images[idle],
                target_image=container.image,
                empty_image=container.hot_upgrade_empty_image,
            )
        )
    return tuple(found)


def _runs(status: Mapping[str, Any] | None, image: str) -> bool:
    """The container runs ``image``: status image, running, started (postStart returned)."""
    if status is None or status.get("image") != image:
        return False
    return "running" in as_mapping(status.get("state")) and status.get("started") is not False


def _failure(status: Mapping[str, Any] | None, image: str, failure_reasons: Collection[str]) -> str | None:
    """A failure of the container on ``image``; a status still about another image (the kubelet
    has not reacted to the patch yet) says nothing about it."""
    if as_mapping(status).get("image") != image:
        return None
    waiting = as_mapping(as_mapping(as_mapping(status).get("state")).get("waiting"))
    reason = waiting.get("reason")
    if reason in failure_reasons:
        message = str(waiting.get("message") or "").strip()
        return f"{reason}" + (f": {message}" if message else "")
    return None


def _pod_ready(pod: Mapping[str, Any]) -> bool:
    status = as_mapping(pod.get("status"))
    if status.get("phase") != "Running" or as_mapping(pod.get("metadata")).get("deletionTimestamp"):
        return False
    return any(
        isinstance(c, Mapping) and c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _container_step(
    twins: HotTwins,
    statuses: Mapping[str, Mapping[str, Any]],
    pod_ready: bool,
    failure_reasons: Collection[str],
) -> tuple[HotUpgradeAction, str]:
    target, empty = twins.target_image, twins.empty_image
    working, idle = statuses.get(twins.working), statuses.get(twins.idle)
    if twins.working_image != target:
        if twins.idle_image != target:
            return HotUpgradeAction.PATCH_IDLE, f"{twins.idle} gets {target}; {twins.working} keeps working"
        failure = _failure(idle, target, failure_reasons)
        if failure is not None:
            return HotUpgradeAction.FAILED, f"new twin {twins.idle} ({target}): {failure}"
        if _runs(idle, target) and as_mapping(idle).get("ready") is True and pod_ready:
            return HotUpgradeAction.SWITCH, f"{twins.idle} runs {target} and the pod is ready"
        what = "running" if not _runs(idle, target) else "ready (or the pod is not Ready)"
        return HotUpgradeAction.WAIT_NEW, f"new twin {twins.idle} ({target}) is not {what} yet"
    # The working twin has the target image: the switch happened (or nothing was to change).
    if not (_runs(working, target) and as_mapping(working).get("ready") is True):
        failure = _failure(working, target, failure_reasons)
        if failure is not None:
            return HotUpgradeAction.FAILED, f"working twin {twins.working} ({target}): {failure}"
        return HotUpgradeAction.WAIT_NEW, f"working twin {twins.working} ({target}) is not running and ready"
    if twins.idle_image != empty:
        return HotUpgradeAction.RESET, f"{twins.idle} ({twins.idle_image}) goes back to the empty image"
    if _runs(idle, empty):
        return HotUpgradeAction.DONE, f"{twins.working} works on {target}; {twins.idle} is empty"
    failure = _failure(idle, empty, failure_reasons)
    if failure is not None:
        return HotUpgradeAction.FAILED, f"old twin {twins.idle} on the empty image {empty}: {failure}"
    return HotUpgradeAction.WAIT_RESET, f"old twin {twins.idle} is not running the empty image yet"


def next_hot_upgrade_step(
    sidecarset: SidecarSet,
    pod: Mapping[str, Any],
    *,
    now: datetime,
    waiting_since: datetime | None,
    timeout_seconds: float,
    failure_reasons: Collection[str],
) -> HotUpgradeStep:
    """The next action for ``pod`` towards the SidecarSet's images (see the module docstring).

    Derived from the pod alone (level-triggered): after a crash, reading the pod again gives the
    action that is still due, never one that already landed. ``waiting_since`` is when the
    current wait began (the upgrade patch for ``WAIT_NEW``, the reset for ``WAIT_RESET``); a
    wait that lasts ``timeout_seconds`` from then becomes ``FAILED`` with ``timed_out``.
    ``failure_reasons`` are container waiting reasons that mean "will not start". ``DONE`` also
    needs the pod ready and consistent as the planner judges it (update.md §1.2), so cold
    sidecars of the same SidecarSet are waited for too.
    """
    twins = read_twins(sidecarset, pod)
    statuses = _statuses(pod)
    pod_ready = _pod_ready(pod)
    steps = [(t, *_container_step(t, statuses, pod_ready, failure_reasons)) for t in twins]
    failed = [(t, reason) for t, action, reason in steps if action is HotUpgradeAction.FAILED]
    if failed:
        return HotUpgradeStep(
            HotUpgradeAction.FAILED, tuple(t for t, _ in failed), "; ".join(r for _, r in failed)
        )
    if steps:
        action = min((action for _, action, _ in steps), key=_ORDER.index)
        chosen = [(t, reason) for t, a, reason in steps if a is action]
        step = HotUpgradeStep(action, tuple(t for t, _ in chosen), "; ".join(r for _, r in chosen))
    else:
        step = HotUpgradeStep(HotUpgradeAction.DONE, (), "no hot-upgrade sidecar on this pod")
    if step.action is HotUpgradeAction.DONE and not (
        is_ready(sidecarset, pod) and is_consistent(sidecarset, pod)
    ):
        step = HotUpgradeStep(
            HotUpgradeAction.WAIT_RESET, step.twins, "the pod is not ready and consistent yet"
        )
    if (
        step.action in _WAITS
        and waiting_since is not None
        and now >= waiting_since + timedelta(seconds=timeout_seconds)
    ):
        since = "the patch" if step.action is HotUpgradeAction.WAIT_NEW else "the reset"
        return HotUpgradeStep(
            HotUpgradeAction.FAILED,
            step.twins,
            f"{step.reason} {int(timeout_seconds)}s after {since}",
            timed_out=True,
        )
    return step


# --- the writes ---------------------------------------------------------------------------------


def _version(annotations: Mapping[str, Any], twin: str) -> int:
    try:
        return int(str(annotations.get(version_annotation(twin)) or "0"))
    except ValueError:
        return 0


def next_version(sidecarset: SidecarSet, pod: Mapping[str, Any], revision_number: int) -> str:
    """The version the new twin gets: the target revision's number, raised above every twin
    version on the pod (Kruise writes the SidecarSet's resourceVersion, which only grows)."""
    annotations = _annotations(pod)
    highest = max(
        (_version(annotations, name) for t in read_twins(sidecarset, pod) for name in (t.working, t.idle)),
        default=0,
    )
    return str(max(revision_number, highest + 1))


def upgrade_changes(
    sidecarset: SidecarSet, pod: Mapping[str, Any], *, version: str
) -> tuple[list[tuple[str, str, str]], dict[str, str]]:
    """The H0 → H1 write (§5.2 without the working annotation): ``(twin, old image, new image)``
    for each idle twin that gets the target image, and the version annotations:
    ``version/<new>`` = ``version``, ``versionalt/<new>`` = the working twin's version,
    ``versionalt/<working>`` = ``version``. Hot sidecars whose working twin already runs the
    target image are left alone (Kruise compares with the working twin's image too)."""
    annotations = _annotations(pod)
    changes: list[tuple[str, str, str]] = []
    written: dict[str, str] = {}
    for twins in read_twins(sidecarset, pod):
        if twins.working_image == twins.target_image:
            continue
        changes.append((twins.idle, twins.idle_image, twins.target_image))
        written[version_annotation(twins.idle)] = version
        written[version_alt_annotation(twins.idle)] = str(_version(annotations, twins.working))
        written[version_alt_annotation(twins.working)] = version
    return changes, written


def switch_patch(pod: Mapping[str, Any], twins: Sequence[HotTwins]) -> dict[str, Any]:
    """The H1 → H2 write: the working annotation names the new twins (other entries kept)."""
    working = load_json_object(_annotations(pod).get(ANNOTATION_WORKING_HOT_UPGRADE_CONTAINER)) or {}
    for item in twins:
        working[item.name] = item.idle
    value = json.dumps(dict(sorted(working.items())), separators=(",", ":"))
    return {"metadata": {"annotations": {ANNOTATION_WORKING_HOT_UPGRADE_CONTAINER: value}}}


def reset_patch(sidecarset: SidecarSet, pod: Mapping[str, Any], twins: Sequence[HotTwins]) -> dict[str, Any]:
    """The H2 reset (§5.4): each old twin gets the empty image, ``version/<old>`` = "0",
    ``versionalt/<working>`` = "0", and its pre-reset imageID goes into the in-place record (so
    consistent(P) waits for it to restart). The hash annotation is not changed."""
    statuses = _statuses(pod)
    annotations: dict[str, str] = {}
    states = load_json_object(_annotations(pod).get(ANNOTATION_INPLACE_UPDATE_STATE)) or {}
    entry = dict(states.get(sidecarset.name) or {}) if isinstance(states.get(sidecarset.name), dict) else {}
    last = dict(entry.get("lastContainerStatuses") or {})
    for item in twins:
        annotations[version_annotation(item.idle)] = "0"
        annotations[version_alt_annotation(item.working)] = "0"
        last[item.idle] = {"imageID": str(as_mapping(statuses.get(item.idle)).get("imageID") or "")}
    entry["lastContainerStatuses"] = last
    states[sidecarset.name] = entry
    annotations[ANNOTATION_INPLACE_UPDATE_STATE] = json.dumps(states, sort_keys=True, separators=(",", ":"))
    return {
        "metadata": {"annotations": annotations},
        "spec": {"containers": [{"name": item.idle, "image": item.empty_image} for item in twins]},
    }
