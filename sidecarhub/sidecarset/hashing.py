"""Revision hashes of a SidecarSet, and the "images only?" classification built on them.

Kruise (injection.md §4, update.md §2.2) keeps two hashes: one over the sidecar containers,
one over the same containers with every ``image`` blanked. A pod is outdated when the first
differs; it can be updated in place only while the second still matches. Our hashes cover
exactly what Kruise's cover:

- every entry of ``spec.containers``, all fields, Kruise's extras included, defaults applied;
- ``spec.initContainers`` (the whole list, plain ones included) only when at least one init
  container is a native sidecar (``restartPolicy: Always``) — Kruise's quirk, kept so that
  "which change needs which action" stays the same;
- nothing else (volumes, selectors, strategies, patchPodMetadata, imagePullSecrets, ...).

The digest is SHA-256 over canonical JSON, not Kruise's Go encoding, so values differ from
Kruise's annotations. Spellings that Kruise's Go serialization makes identical (``cpu: 1000m``
vs ``cpu: "1"``, ``stdin: false`` vs no ``stdin``, ``args: []`` vs no ``args``) hash the same.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from sidecarhub.sidecarset.model import SidecarContainer, SidecarSet, thaw
from sidecarhub.sidecarset.quantity import quantity_equivalence_key

__all__ = ["ChangeKind", "classify_change", "hash_without_images", "revision_hash"]

# Go value-struct fields of SidecarContainer: always serialized, so absent equals {}.
_ALWAYS_PRESENT_STRUCTS = ("resources", "upgradeStrategy", "shareVolumePolicy")
# Plain (non-pointer) bools and ints tagged omitempty: false/0 serialize like absence.
_OMITTED_WHEN_FALSE = {"stdin", "stdinOnce", "tty"}
_PROBE_OMITTED_WHEN_ZERO = {
    "initialDelaySeconds",
    "timeoutSeconds",
    "periodSeconds",
    "successThreshold",
    "failureThreshold",
}


class ChangeKind(StrEnum):
    """What a new revision changes for pods that run the old one."""

    NONE = "none"  # no sidecar container changed: pods are up to date as they are
    IMAGES_ONLY = "images_only"  # only sidecar images changed: pods can be updated in place
    OTHER = "other"  # anything else changed: pods need to be recreated (Kruise: "not upgradable")


def _without_empty_values(value: Any) -> Any:
    """Drop null, "" and [] members of objects, as Go's omitempty does for strings, slices and pointers."""
    if isinstance(value, Mapping):
        return {
            key: _without_empty_values(item)
            for key, item in value.items()
            if item is not None and item != "" and item != [] and item != ()
        }
    if isinstance(value, list | tuple):
        return [_without_empty_values(item) for item in value]
    return value


def _canonical_container(container: SidecarContainer, *, blank_image: bool) -> dict[str, Any]:
    data = _without_empty_values(thaw(container.data))
    if blank_image:
        data.pop("image", None)
    for struct_name in _ALWAYS_PRESENT_STRUCTS:
        data.setdefault(struct_name, {})
    for flag in _OMITTED_WHEN_FALSE:
        if data.get(flag) is False:
            del data[flag]
    resources = data["resources"]
    for list_name in ("limits", "requests"):
        amounts = resources.get(list_name)
        if isinstance(amounts, dict):
            resources[list_name] = {
                name: quantity_equivalence_key(amount) or amount for name, amount in amounts.items()
            }
            if not resources[list_name]:
                del resources[list_name]
    for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = data.get(probe_name)
        if isinstance(probe, dict):
            for key in _PROBE_OMITTED_WHEN_ZERO & set(probe):
                if probe[key] == 0:
                    del probe[key]
    for port in data.get("ports", []):
        if isinstance(port, dict) and port.get("hostPort") == 0:
            del port["hostPort"]
    for mount in data.get("volumeMounts", []):
        if isinstance(mount, dict) and mount.get("readOnly") is False:
            del mount["readOnly"]
    return data


def _digest(sidecarset: SidecarSet, *, blank_images: bool) -> str:
    hashed: dict[str, Any] = {
        "containers": [_canonical_container(c, blank_image=blank_images) for c in sidecarset.containers]
    }
    if any(container.is_native_sidecar for container in sidecarset.init_containers):
        hashed["initContainers"] = [
            _canonical_container(c, blank_image=blank_images) for c in sidecarset.init_containers
        ]
    encoded = json.dumps(hashed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def revision_hash(sidecarset: SidecarSet) -> str:
    """Hash of the sidecar containers (64 hex chars): pods recorded with another value are outdated."""
    return _digest(sidecarset, blank_images=False)


def hash_without_images(sidecarset: SidecarSet) -> str:
    """The same hash with every container's ``image`` blanked: equal means an in-place update is possible."""
    return _digest(sidecarset, blank_images=True)


def classify_change(old: SidecarSet, new: SidecarSet) -> ChangeKind:
    """Classify ``old`` → ``new`` as Kruise's controller would treat pods injected from ``old``.

    ``NONE`` when the revision hash is unchanged (even if volumes, selectors or strategies
    changed), ``IMAGES_ONLY`` when only the without-image hash matches, ``OTHER`` otherwise
    (including when images changed too, and when a container was added, removed or reordered).
    """
    if revision_hash(old) == revision_hash(new):
        return ChangeKind.NONE
    if hash_without_images(old) == hash_without_images(new):
        return ChangeKind.IMAGES_ONLY
    return ChangeKind.OTHER
