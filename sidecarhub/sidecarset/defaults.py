"""Kruise's SidecarSet defaults (its mutating webhook, injection.md §3), applied to a v1beta1 document.

Guarantees: idempotent (defaulting a defaulted document changes nothing); only fills values
that are absent, empty or null, except resource quantities finer than a milli-unit, which are
rounded up as Kubernetes does. Works on plain JSON data that passed the structural check.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from sidecarhub.sidecarset.quantity import parse_quantity, round_up_to_milli

__all__ = ["apply_defaults", "default_image_pull_policy"]

_PROBE_DEFAULTS = {"timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
# Volume sources whose defaultMode Kubernetes sets to 0644.
_DEFAULT_MODE_SOURCES = ("secret", "configMap", "downwardAPI", "projected")
_DEFAULT_FILE_MODE = 0o644


def _object(parent: MutableMapping[str, Any], key: str) -> MutableMapping[str, Any] | None:
    value = parent.get(key)
    return value if isinstance(value, MutableMapping) else None


def _objects(parent: MutableMapping[str, Any], key: str) -> list[MutableMapping[str, Any]]:
    value = parent.get(key)
    return [item for item in value if isinstance(item, MutableMapping)] if isinstance(value, list) else []


def _set_if_empty(target: MutableMapping[str, Any], key: str, value: Any) -> None:
    if target.get(key) in (None, ""):
        target[key] = value


def default_image_pull_policy(image: str) -> str:
    """``Always`` when the tag is ``latest`` or absent (and there is no digest), else ``IfNotPresent``."""
    if "@" in image:
        return "IfNotPresent"
    last_component = image.rsplit("/", 1)[-1]
    tag = last_component.split(":", 1)[1] if ":" in last_component else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _default_http_get(handler: MutableMapping[str, Any] | None) -> None:
    http_get = _object(handler, "httpGet") if handler is not None else None
    if http_get is not None:
        _set_if_empty(http_get, "path", "/")
        _set_if_empty(http_get, "scheme", "HTTP")


def _default_field_ref(holder: MutableMapping[str, Any] | None) -> None:
    field_ref = _object(holder, "fieldRef") if holder is not None else None
    if field_ref is not None:
        _set_if_empty(field_ref, "apiVersion", "v1")


def _round_quantities(resources: MutableMapping[str, Any] | None) -> None:
    if resources is None:
        return
    for list_name in ("limits", "requests"):
        amounts = _object(resources, list_name)
        if amounts is None:
            continue
        for resource_name, value in list(amounts.items()):
            parsed = parse_quantity(value) if isinstance(value, str | int | float) else None
            if parsed is not None and round_up_to_milli(parsed[0]) != parsed[0]:
                amounts[resource_name] = f"{int(round_up_to_milli(parsed[0]) * 1000)}m"


def _default_container(container: MutableMapping[str, Any], inject_policy: str) -> None:
    _set_if_empty(container, "podInjectPolicy", inject_policy)
    upgrade_strategy = _object(container, "upgradeStrategy")
    if upgrade_strategy is None:
        upgrade_strategy = container["upgradeStrategy"] = {}
    _set_if_empty(upgrade_strategy, "upgradeType", "ColdUpgrade")
    share_volume_policy = _object(container, "shareVolumePolicy")
    if share_volume_policy is None:
        share_volume_policy = container["shareVolumePolicy"] = {}
    _set_if_empty(share_volume_policy, "type", "disabled")
    image = container.get("image")
    _set_if_empty(
        container, "imagePullPolicy", default_image_pull_policy(image if isinstance(image, str) else "")
    )
    _set_if_empty(container, "terminationMessagePath", "/dev/termination-log")
    _set_if_empty(container, "terminationMessagePolicy", "File")
    for port in _objects(container, "ports"):
        _set_if_empty(port, "protocol", "TCP")
    for transfer in _objects(container, "transferEnv"):
        _default_field_ref(_object(transfer, "sourceContainerNameFrom"))
    for env_var in _objects(container, "env"):
        _default_field_ref(_object(env_var, "valueFrom"))
    _round_quantities(_object(container, "resources"))
    # Kruise calls SetDefaults_Probe for liveness and readiness only; startupProbe is left alone.
    for probe_name in ("livenessProbe", "readinessProbe"):
        probe = _object(container, probe_name)
        if probe is not None:
            for key, value in _PROBE_DEFAULTS.items():
                if not probe.get(key):
                    probe[key] = value
            _default_http_get(probe)
    lifecycle = _object(container, "lifecycle")
    if lifecycle is not None:
        _default_http_get(_object(lifecycle, "postStart"))
        _default_http_get(_object(lifecycle, "preStop"))


def _default_volume(volume: MutableMapping[str, Any]) -> None:
    if all(key == "name" or value is None for key, value in volume.items()):
        volume["emptyDir"] = {}
        return
    host_path = _object(volume, "hostPath")
    if host_path is not None and host_path.get("type") is None:
        host_path["type"] = ""
    for source_name in _DEFAULT_MODE_SOURCES:
        source = _object(volume, source_name)
        if source is not None and source.get("defaultMode") is None:
            source["defaultMode"] = _DEFAULT_FILE_MODE
    downward_api = _object(volume, "downwardAPI")
    if downward_api is not None:
        for item in _objects(downward_api, "items"):
            _default_field_ref(item)
    projected = _object(volume, "projected")
    if projected is not None:
        for projection in _objects(projected, "sources"):
            projected_downward_api = _object(projection, "downwardAPI")
            if projected_downward_api is not None:
                for item in _objects(projected_downward_api, "items"):
                    _default_field_ref(item)
            token = _object(projection, "serviceAccountToken")
            if token is not None and token.get("expirationSeconds") is None:
                token["expirationSeconds"] = 3600


def apply_defaults(document: MutableMapping[str, Any]) -> None:
    """Fill Kruise's defaults into a v1beta1 SidecarSet document, in place (injection.md §3 steps 1-8).

    Step 9 (the hash annotations) is not stored: hashes are computed from the canonical form.
    """
    spec = _object(document, "spec")
    if spec is None:
        spec = document["spec"] = {}
    update_strategy = _object(spec, "updateStrategy")
    if update_strategy is None:
        update_strategy = spec["updateStrategy"] = {}
    _set_if_empty(update_strategy, "type", "RollingUpdate")
    _set_if_empty(update_strategy, "maxUnavailable", 1)
    _set_if_empty(update_strategy, "partition", 0)
    for container in _objects(spec, "initContainers"):
        _default_container(container, "AfterAppContainer")
    for container in _objects(spec, "containers"):
        _default_container(container, "BeforeAppContainer")
    for volume in _objects(spec, "volumes"):
        _default_volume(volume)
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    for patch in _objects(spec, "patchPodMetadata"):
        _set_if_empty(patch, "patchPolicy", "Retain")
    injection_strategy = _object(spec, "injectionStrategy")
    revision = _object(injection_strategy, "revision") if injection_strategy is not None else None
    if revision is not None:
        _set_if_empty(revision, "policy", "Always")
