"""Building the sidecars of one SidecarSet for one pod (injection.md §7.7, §10; decision 8).

Each sidecar becomes a plain container dict: its core Container, resources from resourcesPolicy,
its own plus the app containers' shared volume mounts (never the service-account token mount,
decision 8) and devices, ``IS_INJECTED=true``, transferred and subPathExpr env vars, and for
HotUpgrade the ``x-1``/``x-2`` twins with their version env and annotations. Pure; the pod is
only read.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sidecarhub.sidecarset.annotations import (
    ENV_IS_INJECTED,
    ENV_SIDECARSET_VERSION,
    ENV_SIDECARSET_VERSION_ALT,
    version_alt_annotation,
    version_annotation,
)
from sidecarhub.sidecarset.kubernetes_rules import qualified_name_error
from sidecarhub.sidecarset.model import PlainTemplate, SidecarContainer, SidecarSet
from sidecarhub.sidecarset.resources_policy import resources_from_policy
from sidecarhub.sidecarset.shapes import as_mapping, list_of_dicts

__all__ = ["SERVICE_ACCOUNT_TOKEN_MOUNT_PATH", "BuiltSidecars", "build_sidecars"]

# Decision 8: shareVolumePolicy never hands the app's API credentials to a sidecar.
SERVICE_ACCOUNT_TOKEN_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
_SUBPATH_EXPR_VARIABLE = re.compile(r"\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")
_FIELD_PATH_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.*)'\]$")


@dataclass
class BuiltSidecars:
    """Everything one SidecarSet contributes to the pod, before merging.

    Container entries are ``(podInjectPolicy, container, SidecarSet name)``; hot-upgrade twins
    appear as two entries, ``x-1`` first.
    """

    init_containers: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)
    containers: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)
    working_containers: dict[str, str] = field(default_factory=dict)


def _is_injected(container: Mapping[str, Any]) -> bool:
    return any(
        env.get("name") == ENV_IS_INJECTED and env.get("value") == "true"
        for env in list_of_dicts(container.get("env"))
    )


def _env_named(container: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    return next((env for env in list_of_dicts(container.get("env")) if env.get("name") == name), None)


def _shared_mounts(
    sidecar: SidecarContainer, app_containers: Sequence[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """§7.7.3: app containers' mounts (decision 8: not the token mount) and their subPathExpr envs."""
    if sidecar.share_volume_policy != "enabled":
        return [], []
    mounts: list[dict[str, Any]] = []
    envs: list[dict[str, Any]] = []
    for app in app_containers:
        if _is_injected(app):
            continue
        for mount in list_of_dicts(app.get("volumeMounts")):
            if str(mount.get("mountPath") or "").rstrip("/") == SERVICE_ACCOUNT_TOKEN_MOUNT_PATH:
                continue
            mounts.append(copy.deepcopy(mount))
            for variable in _SUBPATH_EXPR_VARIABLE.findall(str(mount.get("subPathExpr") or "")):
                env = _env_named(app, variable)
                if env is not None:
                    envs.append(copy.deepcopy(env))
    return mounts, envs


def _source_container_name(transfer: Mapping[str, Any], pod_metadata: Mapping[str, Any]) -> str | None:
    """§7.7.5 step 2; ``None`` when ``sourceContainerNameFrom`` is unusable (the entry is skipped)."""
    source = str(transfer.get("sourceContainerName") or "")
    name_from = transfer.get("sourceContainerNameFrom")
    field_ref = name_from.get("fieldRef") if isinstance(name_from, Mapping) else None
    if not isinstance(field_ref, Mapping):
        return source
    field_path = str(field_ref.get("fieldPath") or "")
    if field_path == "metadata.name":
        # Kruise advertises metadata.name but rejects it; the hub supports it (empty if generated).
        return str(pod_metadata.get("name") or "")
    match = _FIELD_PATH_SUBSCRIPT.match(field_path)
    if match is None:
        return None
    kind, key = match[1], match[2]
    if qualified_name_error(key.lower() if kind == "annotations" else key):
        return None
    values = pod_metadata.get(kind)
    return str(values.get(key) or "") if isinstance(values, Mapping) else ""


def _transferred_envs(
    sidecar: SidecarContainer, app_containers: Sequence[dict[str, Any]], pod_metadata: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """§7.7.5: env vars copied from app containers; a missing container or variable is skipped."""
    by_container = {str(app.get("name") or ""): app for app in reversed(app_containers)}
    transferred: list[dict[str, Any]] = []
    for transfer in sidecar.transfer_env:
        names = {str(name) for name in transfer.get("envNames") or () if name}
        if transfer.get("envName"):
            names.add(str(transfer["envName"]))
        source = _source_container_name(transfer, pod_metadata)
        if source is None or source not in by_container:
            continue
        for name in sorted(names):
            env = _env_named(by_container[source], name)
            if env is not None:
                transferred.append(copy.deepcopy(env))
    return transferred


def _ready_sidecar(sidecar: SidecarContainer, sidecarset: SidecarSet) -> PlainTemplate | None:
    """``[container, volumes]`` as :func:`_prepare_sidecar` makes them for a sidecar that takes
    nothing from the pod but its resources (no shared volumes or devices, no transferEnv), made
    once per sidecar (and its SidecarSet's volumes); None for the other sidecars. The container's
    keys are in the order the steps below add them, a placeholder ``resources`` first, so the
    JSON of the pod is the same text."""
    cached = sidecar.derived.get("injection_template")
    if cached is not None and cached[0] is sidecarset.volumes:
        return cached[1]
    template = None
    if (
        sidecar.share_volume_policy != "enabled"
        and sidecar.share_volume_device_policy != "enabled"
        and not sidecar.transfer_env
    ):
        container = sidecar.core_container()
        if sidecar.resources_policy is not None:
            container["resources"] = None  # set per pod by resourcesPolicy
        own_mounts = list_of_dicts(container.get("volumeMounts"))
        if own_mounts:
            container["volumeMounts"] = own_mounts
        container["env"] = [*list_of_dicts(container.get("env")), {"name": ENV_IS_INJECTED, "value": "true"}]
        volumes = [sidecarset.volume_copy(name) for name in sidecar.volume_names]
        template = PlainTemplate([container, [volume for volume in volumes if volume is not None]])
    sidecar.derived["injection_template"] = (sidecarset.volumes, template)
    return template


def _prepare_sidecar(
    sidecar: SidecarContainer,
    pod: Mapping[str, Any],
    sidecarset: SidecarSet,
    built: BuiltSidecars,
    excluded_names: frozenset[str],
) -> dict[str, Any]:
    """The sidecar as it goes into the pod, before any hot-upgrade split (§7.7.1 steps 2-9)."""
    spec = as_mapping(pod.get("spec"))
    ready = _ready_sidecar(sidecar, sidecarset)
    container, volumes = ready.copy() if ready is not None else (sidecar.core_container(), None)
    if sidecar.resources_policy is not None:
        container["resources"] = resources_from_policy(
            sidecar.resources_policy,
            spec,
            excluded_names=excluded_names,
            where=f"SidecarSet {sidecarset.name} container {sidecar.name}",
        )
    if volumes is not None:
        built.volumes.extend(volumes)
        return container  # nothing else depends on the pod
    for name in sidecar.volume_names:
        volume = sidecarset.volume_copy(name)
        if volume is not None:
            built.volumes.append(volume)

    metadata = as_mapping(pod.get("metadata"))
    app_containers = list_of_dicts(spec.get("containers"))
    shared_mounts, subpath_envs = _shared_mounts(sidecar, app_containers)
    transferred = _transferred_envs(sidecar, app_containers, metadata)
    transferred_names = {env.get("name") for env in transferred}
    extra_envs = transferred + [env for env in subpath_envs if env.get("name") not in transferred_names]

    own_mounts = list_of_dicts(container.get("volumeMounts"))
    own_devices = list_of_dicts(container.get("volumeDevices"))
    used_paths = {mount.get("mountPath") for mount in own_mounts} | {
        device.get("devicePath") for device in own_devices
    }
    mounts = list(own_mounts)
    for mount in shared_mounts:
        if mount.get("mountPath") not in used_paths:
            mounts.append(mount)
            used_paths.add(mount.get("mountPath"))
    if mounts:
        container["volumeMounts"] = mounts

    env = [*list_of_dicts(container.get("env")), {"name": ENV_IS_INJECTED, "value": "true"}]
    present = {item.get("name") for item in env}
    for item in extra_envs:
        if item.get("name") not in present:
            env.append(item)
            present.add(item.get("name"))
    container["env"] = env

    if sidecar.share_volume_device_policy == "enabled":
        taken = {device.get("devicePath") for device in own_devices} | {
            mount.get("mountPath") for mount in mounts
        }
        devices = list(own_devices)
        for app in app_containers:
            if _is_injected(app):
                continue
            for device in list_of_dicts(app.get("volumeDevices")):
                if device.get("devicePath") not in taken:
                    devices.append(copy.deepcopy(device))
                    taken.add(device.get("devicePath"))
        if devices:
            container["volumeDevices"] = devices
    return container


def _hot_upgrade_twins(
    sidecar: SidecarContainer, container: dict[str, Any], built: BuiltSidecars
) -> list[dict[str, Any]]:
    """§10: ``x-1`` (working, real image) and ``x-2`` (empty image), with version env and annotations."""
    twin_names = sidecar.hot_upgrade_names
    assert twin_names is not None
    twins: list[dict[str, Any]] = []
    images = (container.get("image"), sidecar.hot_upgrade_empty_image)
    versions = (("1", "0"), ("0", "1"))
    for twin_name, image, (version, version_alt) in zip(twin_names, images, versions, strict=True):
        twin = copy.deepcopy(container)
        twin["name"] = twin_name
        twin["image"] = image
        # fieldRef.apiVersion stays empty, as in Kruise; the apiserver defaults it to v1.
        twin["env"] = [
            *twin.get("env", []),
            {
                "name": ENV_SIDECARSET_VERSION,
                "valueFrom": {
                    "fieldRef": {"fieldPath": f"metadata.annotations['{version_annotation(twin_name)}']"}
                },
            },
            {
                "name": ENV_SIDECARSET_VERSION_ALT,
                "valueFrom": {
                    "fieldRef": {"fieldPath": f"metadata.annotations['{version_alt_annotation(twin_name)}']"}
                },
            },
        ]
        built.annotations[version_annotation(twin_name)] = version
        built.annotations[version_alt_annotation(twin_name)] = version_alt
        twins.append(twin)
    built.working_containers[sidecar.name] = twin_names[0]
    return twins


def build_sidecars(
    sidecarset: SidecarSet, pod: Mapping[str, Any], excluded_names: frozenset[str]
) -> tuple[BuiltSidecars, list[str]]:
    """All containers, volumes and hot-upgrade annotations of one SidecarSet, and its sidecarList.

    ``pod`` is the pod being created, after patchPodMetadata and before any merge (sharing and
    transferEnv read only the pod's own containers). ``excluded_names`` are the sidecar names of
    every SidecarSet injected into this pod, never resourcesPolicy targets.
    """
    built = BuiltSidecars()
    sidecar_list: list[str] = []
    for sidecar in sidecarset.init_containers:
        if sidecar.is_native_sidecar:
            sidecar_list.append(sidecar.name)
        container = _prepare_sidecar(sidecar, pod, sidecarset, built, excluded_names)
        # A plain init container marked HotUpgrade is injected as one container, as in Kruise.
        parts = (
            _hot_upgrade_twins(sidecar, container, built)
            if sidecar.is_native_sidecar and sidecar.is_hot_upgrade
            else [container]
        )
        built.init_containers.extend((sidecar.pod_inject_policy, part, sidecarset.name) for part in parts)
    for sidecar in sidecarset.containers:
        sidecar_list.append(sidecar.name)
        container = _prepare_sidecar(sidecar, pod, sidecarset, built, excluded_names)
        parts = _hot_upgrade_twins(sidecar, container, built) if sidecar.is_hot_upgrade else [container]
        built.containers.extend((sidecar.pod_inject_policy, part, sidecarset.name) for part in parts)
    return built, sorted(sidecar_list)
