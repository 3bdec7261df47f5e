"""Kruise's in-place update rules for one pod (update.md §2, §2.3, §2.4; decision 14).

Pure: pods are plain JSON dicts, nothing is written. The rollout executor (``rollouts.engine``)
asks this module:

- which sidecar images of a pod change (``image_changes``) and what one pod's update record
  names (``update_targets``: containers, from and to images, comma-joined in the same order);
- the strategic-merge patch body that updates a pod in place (``build_patch``): ONLY the sidecar
  images, this SidecarSet's entry of the hub's hash annotation and of the in-place update state
  (its first ``revision``/``updateTimestamp`` kept, Kruise's quirk), plus, for hot sidecars, the
  idle twin's image and version annotations; ``with_precondition`` adds the pod's
  resourceVersion, which the apiserver enforces;
- whether a pod carries an update (``carries_update``), and how an update ended
  (``observe_update``): the new image runs and the pod is ready, the new image fails
  (``FAILURE_REASONS``, judged only from a status about the NEW image), a deadline passed, or
  someone else changed the sidecar.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sidecarhub.sidecarset import hot_upgrade
from sidecarhub.sidecarset.annotations import ANNOTATION_HASH, load_json_object
from sidecarhub.sidecarset.evaluation import evaluate_pod
from sidecarhub.sidecarset.model import SidecarSet
from sidecarhub.sidecarset.predicates import ANNOTATION_INPLACE_UPDATE_STATE

__all__ = [
    "FAILURE_REASONS",
    "UpdateTargets",
    "UpdateVerdict",
    "build_patch",
    "carries_update",
    "container_images",
    "container_statuses",
    "has_hot_upgrade",
    "image_changes",
    "new_image_failure",
    "observe_update",
    "pod_uid",
    "resource_version",
    "runs_new_image",
    "update_targets",
    "with_precondition",
]

# Container waiting reasons that mean "the new sidecar will not start" (decision 14).
FAILURE_REASONS = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)


class UpdateVerdict(StrEnum):
    """How one pod's in-place update ended (the values of ``rollouts.choices.PodUpdateOutcome``)."""

    SUCCEEDED = "succeeded"  # the new image runs (status image) and the pod is ready
    FAILED = "failed"  # the new image will not start (FAILURE_REASONS)
    TIMED_OUT = "timed_out"  # not running-and-ready within the deadline
    POD_GONE = "pod_gone"  # the pod was deleted (or recreated under a new uid)
    SKIPPED = "skipped"  # someone else changed the sidecar after the patch


@dataclass(frozen=True)
class UpdateTargets:
    """What one pod's update changes: containers, their images before and after, comma-joined in
    the same order (the columns of a ``PodUpdate`` row)."""

    container: str
    from_image: str
    to_image: str

    def wanted(self) -> list[tuple[str, str]]:
        """``(container, image after)`` pairs (empty container names dropped)."""
        return [
            (name, image)
            for name, image in zip(self.container.split(","), self.to_image.split(","), strict=False)
            if name
        ]


# --- reading a pod -----------------------------------------------------------------------------


def pod_uid(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("uid") or "")


def resource_version(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("resourceVersion") or "")


def container_images(pod: Mapping[str, Any]) -> dict[str, str]:
    """Spec image of each (regular) container, by name."""
    return {
        str(c.get("name")): str(c.get("image") or "") for c in (pod.get("spec") or {}).get("containers") or []
    }


def container_statuses(pod: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Status of each (regular) container, by name."""
    return {str(s.get("name")): s for s in (pod.get("status") or {}).get("containerStatuses") or []}


# --- what changes --------------------------------------------------------------------------------


def has_hot_upgrade(sidecarset: SidecarSet) -> bool:
    """The SidecarSet has a HotUpgrade sidecar (its pods follow the hot-upgrade state machine)."""
    return any(container.hot_upgrade_names is not None for container in sidecarset.containers)


def image_changes(sidecarset: SidecarSet, pod: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(container, pod's image, SidecarSet's image) for each cold sidecar whose image differs."""
    present = container_images(pod)
    return [
        (container.name, present[container.name], container.image)
        for container in sidecarset.containers
        if container.hot_upgrade_names is None
        and container.name in present
        and present[container.name] != container.image
    ]


def update_targets(sidecarset: SidecarSet, pod: Mapping[str, Any] | None) -> UpdateTargets:
    """The targets of one pod's update: each cold sidecar whose image differs, and each hot
    sidecar's idle twin (from: the working twin's image). With no pod, or nothing to change,
    every cold sidecar at the SidecarSet's image."""
    items = list(image_changes(sidecarset, pod)) if pod is not None else []
    if pod is not None:
        for twins in hot_upgrade.read_twins(sidecarset, pod):
            if twins.working_image != twins.target_image:
                items.append((twins.idle, twins.working_image, twins.target_image))
    if not items:
        sidecars = [c for c in sidecarset.containers if c.hot_upgrade_names is None]
        return UpdateTargets(",".join(c.name for c in sidecars), "", ",".join(c.image for c in sidecars))
    return UpdateTargets(
        ",".join(name for name, _old, _new in items),
        ",".join(old for _name, old, _new in items),
        ",".join(new for _name, _old, new in items),
    )


# --- the patch ---------------------------------------------------------------------------------


def build_patch(
    sidecarset: SidecarSet,
    pod: Mapping[str, Any],
    *,
    revision_name: str,
    revision_hash: str,
    now: datetime,
    revision_number: int = 0,
) -> dict[str, Any]:
    """The strategic-merge patch body that updates ``pod`` in place (module docstring), with the
    pod's resourceVersion as precondition.

    Only this SidecarSet's entries of the two annotations are replaced; the in-place state keeps
    its first ``revision``/``updateTimestamp`` (update.md §2.3) and records the status imageID of
    each container it changes. Hot sidecars: the idle twin gets the new image and the version
    annotations (the new twin's version derives from ``revision_number``); the working
    annotation is switched later (``hot_upgrade.switch_patch``).
    """
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    names = sorted(
        [c.name for c in sidecarset.containers]
        + [c.name for c in sidecarset.init_containers if c.is_native_sidecar]
    )
    hashes = load_json_object(annotations.get(ANNOTATION_HASH)) or {}
    hashes[sidecarset.name] = {
        "updateTimestamp": stamp,
        "hash": revision_hash,
        "sidecarSetName": sidecarset.name,
        "sidecarList": names,
        "controllerRevision": revision_name,
    }
    changes = image_changes(sidecarset, pod)
    hot_annotations: dict[str, str] = {}
    if has_hot_upgrade(sidecarset):
        version = hot_upgrade.next_version(sidecarset, pod, revision_number)
        hot_changes, hot_annotations = hot_upgrade.upgrade_changes(sidecarset, pod, version=version)
        changes = changes + hot_changes
    states = load_json_object(annotations.get(ANNOTATION_INPLACE_UPDATE_STATE)) or {}
    entry = states.get(sidecarset.name) if isinstance(states.get(sidecarset.name), dict) else None
    entry = dict(entry) if entry else {"revision": revision_name, "updateTimestamp": stamp}
    last = dict(entry.get("lastContainerStatuses") or {})
    statuses = container_statuses(pod)
    for name, _old, _new in changes:
        last[name] = {"imageID": str((statuses.get(name) or {}).get("imageID") or "")}
    entry["lastContainerStatuses"] = last
    states[sidecarset.name] = entry
    body: dict[str, Any] = {
        "metadata": {
            "annotations": {
                ANNOTATION_HASH: json.dumps(hashes, sort_keys=True, separators=(",", ":")),
                ANNOTATION_INPLACE_UPDATE_STATE: json.dumps(states, sort_keys=True, separators=(",", ":")),
                **hot_annotations,
            },
        }
    }
    if changes:
        body["spec"] = {"containers": [{"name": name, "image": new} for name, _old, new in changes]}
    return with_precondition(body, pod)


def with_precondition(body: Mapping[str, Any], pod: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` with the pod's resourceVersion in its metadata: the apiserver answers 409 when
    the pod changed since it was read, so a patch never lands on a pod nobody looked at."""
    metadata = {**(body.get("metadata") or {}), "resourceVersion": resource_version(pod)}
    return {**body, "metadata": metadata}


# --- what a pod shows ----------------------------------------------------------------------------


def carries_update(sidecarset: SidecarSet, pod: Mapping[str, Any], targets: UpdateTargets) -> bool:
    """The pod carries the update: this revision's hash and the target images."""
    if not evaluate_pod(sidecarset, pod).updated:
        return False
    present = container_images(pod)
    return all(present.get(name) == image for name, image in targets.wanted())


def new_image_failure(pod: Mapping[str, Any], targets: UpdateTargets) -> str | None:
    """Why an updated sidecar will not start, from a status about its NEW image: until the
    kubelet reacts to the patch, the status still describes the old container (which may have
    been failing: a rollback of a bad image), and that is no verdict on the new one."""
    statuses = container_statuses(pod)
    for name, image in targets.wanted():
        status = statuses.get(name) or {}
        if status.get("image") != image:
            continue
        waiting = (status.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in FAILURE_REASONS:
            message = str(waiting.get("message") or "").strip()
            return f"container {name}: {reason}" + (f": {message}" if message else "")
    return None


def runs_new_image(pod: Mapping[str, Any], targets: UpdateTargets) -> bool:
    """Every target container runs its new image (status image) and is ready."""
    statuses = container_statuses(pod)
    for name, image in targets.wanted():
        status = statuses.get(name) or {}
        if (
            status.get("image") != image
            or not status.get("ready")
            or "running" not in (status.get("state") or {})
        ):
            return False
    return True


def observe_update(
    sidecarset: SidecarSet,
    pod: Mapping[str, Any] | None,
    targets: UpdateTargets,
    *,
    patched_at: datetime,
    timeout_seconds: int,
    now: datetime,
) -> tuple[UpdateVerdict, str] | None:
    """How a patched pod's (cold) update ended, as (verdict, words for people); ``None`` while
    it has not: the new images must run, the pod be ready and consistent (update.md §2.4)."""
    if pod is None:
        return UpdateVerdict.POD_GONE, "the pod was deleted while its new sidecar started"
    if not carries_update(sidecarset, pod, targets):
        return UpdateVerdict.SKIPPED, "the pod's sidecar was changed by someone else after the patch"
    failure = new_image_failure(pod, targets)
    if failure is not None:
        return UpdateVerdict.FAILED, failure
    evaluation = evaluate_pod(sidecarset, pod)
    if evaluation.ready and evaluation.consistent and runs_new_image(pod, targets):
        return UpdateVerdict.SUCCEEDED, ""
    if patched_at + timedelta(seconds=timeout_seconds) <= now:
        what = "not ready" if evaluation.consistent else "the new image is not running"
        return UpdateVerdict.TIMED_OUT, f"{what} {timeout_seconds}s after the patch"
    return None
