"""Pods as the hub holds them: compact records decoded straight from the apiserver's JSON.

A pod as the apiserver returns it carries much that the hub never reads (``managedFields``,
volumes, probes, env, resources, IPs...). Decoded whole, a 10,000-pod list is ≈ 250 MiB of dicts
in a worker. The hub decodes pods with msgspec into :data:`PodRecord`: the same JSON shape
(plain dicts and lists, so the planner's fast path, the engine and the status write-back read
them as before) holding only the fields the hub reads. Unknown fields are skipped by the decoder
without ever being built.

This is the one pod representation of the hub: every pod it reads from a cluster (lists, the pod
a patch returns, a pod read again by name) goes through :func:`decode_pod` or
:func:`decode_pod_list`. A field read anywhere in the core, the engine or the status write-back
must be listed here (``tests/unit/test_pod_records.py`` checks the planner and the in-place
observation give the same answers on full and compact pods).

Leaves are typed ``Any`` so that a value of an unexpected type decodes as is and the core judges
it as before (``shapes.py``); a structure of another shape (``containers`` not a list...) fails
the typed decode, and that pod is then kept as plain JSON (:func:`compact_pod` falls back).
"""

from __future__ import annotations

import sys
from typing import Any, TypedDict

import msgspec
import orjson

from sidecarhub.sidecarset.planning import cyclic_gc_paused

__all__ = ["KEPT_CONDITIONS", "PodRecord", "compact_pod", "decode_pod", "decode_pod_list"]

# The pod conditions the hub reads (the predicates' Ready, Kruise's SidecarSetUpgradable in
# conditions.py); a pod carries five or more, and the others are a fifth of a compact record.
KEPT_CONDITIONS = frozenset({"Ready", "SidecarSetUpgradable"})


class _OwnerReference(TypedDict, total=False):
    kind: Any  # matching.excluded_reason (DaemonSet pods), workloads grouping
    name: Any
    uid: Any
    controller: Any


class _Metadata(TypedDict, total=False):
    name: Any
    namespace: Any
    uid: Any
    resourceVersion: Any  # patch precondition, PlanningCache key
    creationTimestamp: Any  # default order, drift
    deletionTimestamp: Any  # inactive pods
    labels: Any  # selectors, priority/scatter, workloads
    annotations: Any  # injected list, hashes, in-place and hot-upgrade records, patchPodMetadata
    ownerReferences: list[_OwnerReference]


class _Container(TypedDict, total=False):
    name: Any
    image: Any
    restartPolicy: Any  # native sidecar init containers


class _Spec(TypedDict, total=False):
    nodeName: Any  # default order
    containers: list[_Container]
    initContainers: list[_Container]


class _Condition(TypedDict, total=False):
    type: Any
    status: Any
    lastTransitionTime: Any  # default order (Ready time), SidecarSetUpgradable
    reason: Any  # SidecarSetUpgradable (conditions.py)
    message: Any


class _Waiting(TypedDict, total=False):
    reason: Any  # failure reasons of a new image (ErrImagePull...)
    message: Any


class _Running(TypedDict, total=False):
    pass  # only its presence is read ("running" in state)


class _Terminated(TypedDict, total=False):
    reason: Any
    exitCode: Any


class _State(TypedDict, total=False):
    running: _Running
    waiting: _Waiting
    terminated: _Terminated


class _ContainerStatus(TypedDict, total=False):
    name: Any
    image: Any
    imageID: Any
    ready: Any
    started: Any
    restartCount: Any  # default order
    state: _State


class _Status(TypedDict, total=False):
    phase: Any
    conditions: list[_Condition]
    containerStatuses: list[_ContainerStatus]
    initContainerStatuses: list[_ContainerStatus]


class PodRecord(TypedDict, total=False):
    """A pod as the hub holds it: the apiserver's JSON shape, only the fields the hub reads."""

    metadata: _Metadata
    spec: _Spec
    status: _Status


# ``continue`` is a keyword: only the functional syntax can name it
_ListMetadata = TypedDict("_ListMetadata", {"continue": Any, "resourceVersion": Any}, total=False)


class _PodList(TypedDict, total=False):
    metadata: _ListMetadata
    items: list[PodRecord]


class _RawPodList(TypedDict, total=False):
    metadata: _ListMetadata
    items: list[Any]


_pod_decoder = msgspec.json.Decoder(PodRecord)
_list_decoder = msgspec.json.Decoder(_PodList)
_raw_list_decoder = msgspec.json.Decoder(_RawPodList)


def _share_values(pods: list[Any]) -> None:
    """Drop the conditions the hub does not read, and make values that repeat from pod to pod
    (container names, images and image IDs, phase, namespace, node, owner, condition words) one
    string object each (``sys.intern``): together a third of a compact record. In place."""
    kept, share = KEPT_CONDITIONS, sys.intern
    for pod in pods:
        if type(pod) is not dict:
            continue
        metadata, spec, status = pod.get("metadata"), pod.get("spec"), pod.get("status")
        if type(metadata) is dict:
            value = metadata.get("namespace")
            if type(value) is str:
                metadata["namespace"] = share(value)
            for owner in metadata.get("ownerReferences") or ():
                for key in ("kind", "name", "uid"):
                    value = owner.get(key)
                    if type(value) is str:
                        owner[key] = share(value)
        if type(spec) is dict:
            value = spec.get("nodeName")
            if type(value) is str:
                spec["nodeName"] = share(value)
            for container in spec.get("containers") or ():
                _share_fields(container, ("name", "image"), share)
        if type(status) is dict:
            value = status.get("phase")
            if type(value) is str:
                status["phase"] = share(value)
            conditions = status.get("conditions")
            if conditions:
                conditions = status["conditions"] = [c for c in conditions if c.get("type") in kept]
                for condition in conditions:
                    _share_fields(condition, ("type", "status"), share)
            for container_status in status.get("containerStatuses") or ():
                _share_fields(container_status, ("name", "image", "imageID"), share)


def _share_fields(item: dict[str, Any], keys: tuple[str, ...], share: Any) -> None:
    for key in keys:
        value = item.get(key)
        if type(value) is str:
            item[key] = share(value)


def compact_pod(pod: Any) -> Any:
    """``pod`` (decoded JSON) as a compact record; as it is when it has another shape."""
    try:
        record = msgspec.convert(pod, PodRecord)
    except msgspec.ValidationError:
        return pod
    _share_values([record])
    return record


def decode_pod(raw: bytes) -> Any:
    """One pod's JSON body as a compact record (``None`` for an empty body)."""
    if not raw:
        return None
    try:
        record = _pod_decoder.decode(raw)
    except msgspec.ValidationError:
        return compact_pod(orjson.loads(raw))
    _share_values([record])
    return record


# JSON makes no reference cycles; with the collector on, the dicts of one 500-pod page start
# collections that walk every pod already listed (up to 5x the decode's own time at 10,000).
@cyclic_gc_paused
def decode_pod_list(raw: bytes) -> dict[str, Any]:
    """A PodList body (one page): ``items`` as compact records, ``metadata`` (its ``continue``).

    A page holding a pod of another shape is decoded again item by item, so only that pod stays
    plain JSON. Malformed JSON raises as ``orjson.loads`` would."""
    if not raw:
        return {}
    try:
        page: dict[str, Any] = dict(_list_decoder.decode(raw))
    except msgspec.ValidationError:
        page = dict(_raw_list_decoder.decode(raw))
        page["items"] = [compact_pod(item) for item in page.get("items") or ()]
        return page
    _share_values(page.get("items") or [])
    return page
