"""Builders for the planning tests: SidecarSets, pods as the apiserver returns them, and a kubelet.

Pods are plain dicts shaped like real ones: an ``app`` container plus the sidecar, container
statuses with images and imageIDs, the hub's annotations written as injection and the rollout
worker write them. The helpers return new dicts; nothing is mutated in place.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sidecarhub.sidecarset import (
    ANNOTATION_INPLACE_UPDATE_STATE,
    SidecarSet,
    hash_without_images,
    parse_sidecarset,
    revision_hash,
)
from sidecarhub.sidecarset.annotations import (
    ANNOTATION_HASH,
    ANNOTATION_HASH_WITHOUT_IMAGE,
    ANNOTATION_INJECTED_LIST,
    ANNOTATION_WORKING_HOT_UPGRADE_CONTAINER,
)

NAME = "mesh"
EMPTY_IMAGE = "empty:1"
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def make_sidecarset(
    image: str = "envoy:2",
    *,
    strategy: Mapping[str, Any] | None = None,
    env: Iterable[Mapping[str, str]] = (),
    hot: bool = False,
    init_containers: Iterable[Mapping[str, Any]] = (),
    namespace_selector: Mapping[str, Any] | None = None,
) -> SidecarSet:
    """SidecarSet ``mesh`` with one sidecar ``envoy`` (HotUpgrade when ``hot``), selecting app=web."""
    container: dict[str, Any] = {"name": "envoy", "image": image}
    if env:
        container["env"] = [dict(item) for item in env]
    if hot:
        container["upgradeStrategy"] = {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": EMPTY_IMAGE}
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": "web"}}, "containers": [container]}
    if strategy is not None:
        spec["updateStrategy"] = copy.deepcopy(dict(strategy))
    if init_containers:
        spec["initContainers"] = [dict(item) for item in init_containers]
    if namespace_selector is not None:
        spec["namespaceSelector"] = copy.deepcopy(dict(namespace_selector))
    return parse_sidecarset(
        {
            "apiVersion": "apps.kruise.io/v1beta1",
            "kind": "SidecarSet",
            "metadata": {"name": NAME},
            "spec": spec,
        }
    )


def image_id(image: str) -> str:
    """The imageID a runtime would report for a tag image (a digest derived from the tag)."""
    return f"docker.io/library/{image.split(':')[0]}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def _timestamp(seconds: float) -> str:
    return (EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hash_record(hash_value: str) -> str:
    return json.dumps(
        {NAME: {"hash": hash_value, "sidecarSetName": NAME, "sidecarList": ["envoy"]}},
        sort_keys=True,
        separators=(",", ":"),
    )


def make_pod(
    name: str,
    *,
    injected: SidecarSet,
    updated_to: SidecarSet | None = None,
    kubelet_done: bool = True,
    ready: bool = True,
    phase: str = "Running",
    labels: Mapping[str, str] | None = None,
    created: float = 0,
    ready_since: float | None = None,
    restarts: int = 0,
    node: str | None = "node-1",
    namespace: str = "default",
    resource_version: str | None = "1",
) -> dict[str, Any]:
    """A cold-sidecar pod injected from ``injected``, optionally patched in place to ``updated_to``.

    ``kubelet_done`` says whether the kubelet already restarted the sidecar on the patched image.
    ``ready`` sets the pod's Ready condition and every container's ready flag (a sidecar still
    restarting is not ready). ``created``/``ready_since`` are seconds after 2024-01-01.
    """
    injected_image = injected.containers[0].image
    target = updated_to or injected
    spec_image = target.containers[0].image
    running_image = spec_image if (updated_to is None or kubelet_done) else injected_image
    annotations: dict[str, str] = {
        ANNOTATION_INJECTED_LIST: NAME,
        ANNOTATION_HASH: _hash_record(revision_hash(target)),
        ANNOTATION_HASH_WITHOUT_IMAGE: _hash_record(hash_without_images(injected)),
    }
    if updated_to is not None and spec_image != injected_image:
        annotations[ANNOTATION_INPLACE_UPDATE_STATE] = json.dumps(
            {
                NAME: {
                    "revision": "r",
                    "lastContainerStatuses": {"envoy": {"imageID": image_id(injected_image)}},
                }
            }
        )
    sidecar_ready = ready and running_image == spec_image
    pod: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{namespace}-{name}",
            "creationTimestamp": _timestamp(created),
            "labels": {"app": "web", **(labels or {})},
            "annotations": annotations,
        },
        "spec": {
            "containers": [{"name": "app", "image": "web:1"}, {"name": "envoy", "image": spec_image}],
        },
        "status": {
            "phase": phase,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "lastTransitionTime": _timestamp(created + 10 if ready_since is None else ready_since),
                }
            ],
            "containerStatuses": [
                {
                    "name": "app",
                    "image": "web:1",
                    "imageID": image_id("web:1"),
                    "ready": ready,
                    "restartCount": restarts,
                },
                {
                    "name": "envoy",
                    "image": running_image,
                    "imageID": image_id(running_image),
                    "ready": sidecar_ready,
                    "restartCount": 0,
                },
            ],
        },
    }
    if resource_version is not None:
        pod["metadata"]["resourceVersion"] = resource_version
    if node is not None:
        pod["spec"]["nodeName"] = node
    return pod


def make_pods(
    count: int, *, injected: SidecarSet, prefix: str = "pod", **options: Any
) -> list[dict[str, Any]]:
    """``count`` pods ``pod-0``… created one second apart (so ``pod-<n>`` is the newest)."""
    return [
        make_pod(f"{prefix}-{index}", injected=injected, created=index, **options) for index in range(count)
    ]


# --- a tiny rollout worker and kubelet, to play rounds ------------------------------------------


def _bump(pod: dict[str, Any]) -> None:
    metadata = pod["metadata"]
    metadata["resourceVersion"] = str(int(metadata.get("resourceVersion") or "0") + 1)


def patch_pod(pod: Mapping[str, Any], sidecarset: SidecarSet) -> dict[str, Any]:
    """What the rollout worker writes for a cold sidecar (update.md §2.3): image, hash, in-place record."""
    patched = copy.deepcopy(dict(pod))
    image = sidecarset.containers[0].image
    envoy = next(c for c in patched["spec"]["containers"] if c["name"] == "envoy")
    status = next(s for s in patched["status"]["containerStatuses"] if s["name"] == "envoy")
    annotations = patched["metadata"]["annotations"]
    annotations[ANNOTATION_HASH] = _hash_record(revision_hash(sidecarset))
    if envoy["image"] != image:
        envoy["image"] = image
        annotations[ANNOTATION_INPLACE_UPDATE_STATE] = json.dumps(
            {NAME: {"revision": "r", "lastContainerStatuses": {"envoy": {"imageID": status["imageID"]}}}}
        )
    _bump(patched)
    return patched


def kubelet_restart(pod: Mapping[str, Any], *, ready: bool = True) -> dict[str, Any]:
    """The kubelet runs the spec's sidecar image; the pod's readiness becomes ``ready``."""
    restarted = copy.deepcopy(dict(pod))
    envoy = next(c for c in restarted["spec"]["containers"] if c["name"] == "envoy")
    status = next(s for s in restarted["status"]["containerStatuses"] if s["name"] == "envoy")
    status["image"] = envoy["image"]
    status["imageID"] = image_id(envoy["image"])
    status["ready"] = ready
    restarted["status"]["conditions"][0]["status"] = "True" if ready else "False"
    _bump(restarted)
    return restarted


def set_ready(pod: Mapping[str, Any], ready: bool) -> dict[str, Any]:
    """Flip the pod's Ready condition and its containers' ready flags (images unchanged)."""
    changed = copy.deepcopy(dict(pod))
    changed["status"]["conditions"][0]["status"] = "True" if ready else "False"
    for status in changed["status"]["containerStatuses"]:
        status["ready"] = ready
    _bump(changed)
    return changed


def replace(pods: list[dict[str, Any]], new: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """``pods`` with each pod of ``new`` swapped in by name."""
    by_name = {pod["metadata"]["name"]: pod for pod in new}
    return [by_name.get(pod["metadata"]["name"], pod) for pod in pods]


def names(decisions: Iterable[Any]) -> list[str]:
    return [decision.ref.name for decision in decisions]


# --- hot upgrade -------------------------------------------------------------------------------


def make_hot_pod(
    name: str,
    *,
    injected: SidecarSet,
    twin_images: tuple[str, str],
    running: tuple[str, str] | None = None,
    working: str = "envoy-1",
    hash_of: SidecarSet | None = None,
    ready: bool = True,
    twin_ready: tuple[bool, bool] = (True, True),
    recorded_ids: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A pod with the hot twins ``envoy-1``/``envoy-2``: spec images ``twin_images``, the kubelet
    running ``running`` (default: the spec images), the working twin ``working``."""
    running = running or twin_images
    annotations: dict[str, str] = {
        ANNOTATION_INJECTED_LIST: NAME,
        ANNOTATION_HASH: _hash_record(revision_hash(hash_of or injected)),
        ANNOTATION_HASH_WITHOUT_IMAGE: _hash_record(hash_without_images(injected)),
        ANNOTATION_WORKING_HOT_UPGRADE_CONTAINER: json.dumps({"envoy": working}),
    }
    if recorded_ids:
        annotations[ANNOTATION_INPLACE_UPDATE_STATE] = json.dumps(
            {
                NAME: {
                    "lastContainerStatuses": {
                        twin: {"imageID": value} for twin, value in recorded_ids.items()
                    }
                }
            }
        )
    twins = ("envoy-1", "envoy-2")
    return {
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"uid-{name}",
            "resourceVersion": "1",
            "creationTimestamp": _timestamp(0),
            "labels": {"app": "web"},
            "annotations": annotations,
        },
        "spec": {
            "nodeName": "node-1",
            "containers": [
                {"name": "app", "image": "web:1"},
                *({"name": twin, "image": image} for twin, image in zip(twins, twin_images, strict=True)),
            ],
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [
                {"name": "app", "image": "web:1", "imageID": image_id("web:1"), "ready": ready},
                *(
                    {"name": twin, "image": image, "imageID": image_id(image), "ready": flag}
                    for twin, image, flag in zip(twins, running, twin_ready, strict=True)
                ),
            ],
        },
    }
