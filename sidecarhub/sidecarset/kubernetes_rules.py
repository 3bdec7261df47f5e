"""Kubernetes' own pod rules, applied to a SidecarSet's containers, init containers and volumes.

Kruise validates these parts by building a synthetic pod and running the apiserver's pod
validation on it (injection.md §5.5.3). Types and unknown fields are already checked against
the OpenAPI schema (``schema.py``); this module holds the semantic rules that live in Go code
(``k8s.io/kubernetes/pkg/apis/core/validation``): name formats, uniqueness, references
between mounts and volumes, enums, value ranges, requests ≤ limits, probe and lifecycle shape.

Also home to the name-format checks (DNS label, qualified name, label value) used elsewhere.
Guarantee: every function returns errors and never raises on structurally valid input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from sidecarhub.sidecarset.errors import FieldError, FieldPath
from sidecarhub.sidecarset.model import SidecarContainer, SidecarSet
from sidecarhub.sidecarset.quantity import parse_quantity

__all__ = [
    "dns_label_error",
    "label_value_error",
    "pod_errors",
    "qualified_name_error",
]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_IANA_SERVICE_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")

_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
_PROTOCOLS = ("TCP", "UDP", "SCTP")
_PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
_LIFECYCLE_HANDLERS = ("exec", "httpGet", "tcpSocket", "sleep")
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
_PROBE_COUNTERS = (
    "initialDelaySeconds",
    "timeoutSeconds",
    "periodSeconds",
    "successThreshold",
    "failureThreshold",
)
_ENV_SOURCES = ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef", "fileKeyRef")
# Volume sources that can back a volumeDevice (block mode).
_BLOCK_SOURCES = ("persistentVolumeClaim", "ephemeral")


def dns_label_error(value: str) -> str | None:
    """Why ``value`` is not an RFC 1123 label (container and volume names), or ``None``."""
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not _DNS_LABEL.match(value):
        return (
            "must be a lowercase RFC 1123 label (a-z, 0-9 and '-', starting and ending with an alphanumeric)"
        )
    return None


def qualified_name_error(value: str) -> str | None:
    """Why ``value`` is not a qualified name (``prefix/name``: label and annotation keys), or ``None``."""
    prefix, _, name = value.rpartition("/")
    if "/" in prefix:
        return "must be a qualified name: an optional DNS subdomain prefix and '/', then a name"
    if value.endswith("/") or (not prefix and value.startswith("/")):
        return "prefix and name must both be non-empty"
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return "prefix must be a lowercase DNS subdomain"
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if not _QUALIFIED_NAME_PART.match(name):
        return "name part must be alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric"
    return None


def label_value_error(value: str) -> str | None:
    """Why ``value`` is not a valid label value (empty is valid), or ``None``."""
    if value == "":
        return None
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not _QUALIFIED_NAME_PART.match(value):
        return "must consist of alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric"
    return None


def _port_name_error(value: str) -> str | None:
    if len(value) > 15:
        return "must be no more than 15 characters (IANA service name)"
    if not _IANA_SERVICE_NAME.match(value) or "--" in value or not re.search(r"[a-z]", value):
        return "must be an IANA service name: lowercase alphanumerics and '-', with at least one letter"
    return None


def _env_name_error(value: str) -> str | None:
    if not value:
        return "required"
    if "=" in value or any(not 32 <= ord(char) <= 126 for char in value):
        return "may contain printable ASCII characters except '='"
    return None


def _items(value: Any) -> list[tuple[int, Mapping[str, Any]]]:
    if not isinstance(value, list | tuple):
        return []
    return [(position, item) for position, item in enumerate(value) if isinstance(item, Mapping)]


def _handler_errors(holder: Mapping[str, Any], handlers: Iterable[str], path: FieldPath) -> list[FieldError]:
    present = [name for name in handlers if holder.get(name) is not None]
    if len(present) == 1:
        return []
    if not present:
        return [FieldError.at(path, f"must specify one handler ({', '.join(handlers)})")]
    return [
        FieldError.at(
            path.child(present[1]), f"may not specify more than one handler; found {', '.join(present)}"
        )
    ]


def _resources_errors(resources: Mapping[str, Any], path: FieldPath) -> list[FieldError]:
    errors: list[FieldError] = []
    parsed: dict[str, dict[str, Any]] = {}
    for list_name in ("limits", "requests"):
        amounts = resources.get(list_name) or {}
        parsed[list_name] = {}
        for resource_name, amount in amounts.items():
            amount_path = path.child(list_name).key(resource_name)
            name_error = qualified_name_error(resource_name)
            if name_error:
                errors.append(FieldError.at(amount_path, f"invalid resource name: {name_error}"))
            quantity = parse_quantity(amount)
            if quantity is None:
                errors.append(FieldError.at(amount_path, f"{amount!r} is not a quantity (e.g. 100m, 1Gi)"))
            elif quantity[0] < 0:
                errors.append(FieldError.at(amount_path, "must be greater than or equal to 0"))
            else:
                parsed[list_name][resource_name] = quantity[0]
    for resource_name, request in parsed["requests"].items():
        limit = parsed["limits"].get(resource_name)
        if limit is not None and request > limit:
            errors.append(
                FieldError.at(
                    path.child("requests").key(resource_name),
                    f"must not exceed the {resource_name} limit of {resources['limits'][resource_name]}",
                )
            )
    return errors


def _probe_errors(probe: Mapping[str, Any], probe_name: str, path: FieldPath) -> list[FieldError]:
    errors = _handler_errors(probe, _PROBE_HANDLERS, path)
    for counter in _PROBE_COUNTERS:
        value = probe.get(counter)
        if isinstance(value, int) and value < 0:
            errors.append(FieldError.at(path.child(counter), "must be greater than or equal to 0"))
    if probe_name in ("livenessProbe", "startupProbe") and probe.get("successThreshold") not in (None, 0, 1):
        errors.append(FieldError.at(path.child("successThreshold"), "must be 1"))
    return errors


def _env_errors(container: Mapping[str, Any], path: FieldPath) -> list[FieldError]:
    errors: list[FieldError] = []
    for position, env_var in _items(container.get("env")):
        env_path = path.child("env").index(position)
        name_error = _env_name_error(str(env_var.get("name") or ""))
        if name_error:
            errors.append(FieldError.at(env_path.child("name"), name_error))
        value_from = env_var.get("valueFrom")
        if value_from is None:
            continue
        if env_var.get("value"):
            errors.append(
                FieldError.at(env_path.child("valueFrom"), "may not be specified when value is not empty")
            )
        sources = [name for name in _ENV_SOURCES if value_from.get(name) is not None]
        if len(sources) != 1:
            errors.append(
                FieldError.at(
                    env_path.child("valueFrom"), f"must specify exactly one of: {', '.join(_ENV_SOURCES)}"
                )
            )
    return errors


def _ports_errors(container: Mapping[str, Any], path: FieldPath) -> list[FieldError]:
    errors: list[FieldError] = []
    port_names: set[str] = set()
    for position, port in _items(container.get("ports")):
        port_path = path.child("ports").index(position)
        container_port = port.get("containerPort")
        if not isinstance(container_port, int) or not 1 <= container_port <= 65535:
            errors.append(FieldError.at(port_path.child("containerPort"), "must be between 1 and 65535"))
        host_port = port.get("hostPort")
        if isinstance(host_port, int) and not 0 <= host_port <= 65535:
            errors.append(
                FieldError.at(port_path.child("hostPort"), "must be between 1 and 65535, or 0 for none")
            )
        protocol = port.get("protocol")
        if protocol not in _PROTOCOLS:
            errors.append(
                FieldError.at(port_path.child("protocol"), f"must be one of: {', '.join(_PROTOCOLS)}")
            )
        name = port.get("name")
        if name:
            name_error = _port_name_error(name)
            if name_error:
                errors.append(FieldError.at(port_path.child("name"), name_error))
            elif name in port_names:
                errors.append(FieldError.at(port_path.child("name"), f"duplicate port name {name!r}"))
            port_names.add(name)
    return errors


def _mounts_errors(
    container: Mapping[str, Any], volumes: Mapping[str, Mapping[str, Any]], path: FieldPath
) -> list[FieldError]:
    errors: list[FieldError] = []
    mount_paths = [str(mount.get("mountPath") or "") for _, mount in _items(container.get("volumeMounts"))]
    device_paths = [
        str(device.get("devicePath") or "") for _, device in _items(container.get("volumeDevices"))
    ]
    seen_mount_paths: set[str] = set()
    for position, mount in _items(container.get("volumeMounts")):
        mount_path = path.child("volumeMounts").index(position)
        name = str(mount.get("name") or "")
        if not name:
            errors.append(FieldError.at(mount_path.child("name"), "required"))
        elif name not in volumes:
            errors.append(
                FieldError.at(mount_path.child("name"), f"volume {name!r} not found in spec.volumes")
            )
        target = str(mount.get("mountPath") or "")
        if not target:
            errors.append(FieldError.at(mount_path.child("mountPath"), "required"))
        elif target in seen_mount_paths:
            errors.append(FieldError.at(mount_path.child("mountPath"), f"duplicate mount path {target!r}"))
        elif target in device_paths:
            errors.append(
                FieldError.at(
                    mount_path.child("mountPath"), "must not already exist as a path in volumeDevices"
                )
            )
        seen_mount_paths.add(target)
    seen_device_paths: set[str] = set()
    for position, device in _items(container.get("volumeDevices")):
        device_path = path.child("volumeDevices").index(position)
        name = str(device.get("name") or "")
        volume = volumes.get(name)
        if not name:
            errors.append(FieldError.at(device_path.child("name"), "required"))
        elif volume is None:
            errors.append(
                FieldError.at(device_path.child("name"), f"volume {name!r} not found in spec.volumes")
            )
        elif not any(volume.get(source) is not None for source in _BLOCK_SOURCES):
            errors.append(
                FieldError.at(
                    device_path.child("name"),
                    "a volumeDevice must use a persistentVolumeClaim or ephemeral volume",
                )
            )
        target = str(device.get("devicePath") or "")
        if not target:
            errors.append(FieldError.at(device_path.child("devicePath"), "required"))
        elif target in seen_device_paths:
            errors.append(FieldError.at(device_path.child("devicePath"), f"duplicate device path {target!r}"))
        elif target in mount_paths:
            errors.append(
                FieldError.at(
                    device_path.child("devicePath"), "must not already exist as a path in volumeMounts"
                )
            )
        seen_device_paths.add(target)
    return errors


def _container_errors(
    container: SidecarContainer, is_init: bool, volumes: Mapping[str, Mapping[str, Any]], path: FieldPath
) -> list[FieldError]:
    data = container.data
    errors: list[FieldError] = []
    if not container.name:
        errors.append(FieldError.at(path.child("name"), "required"))
    else:
        name_error = dns_label_error(container.name)
        if name_error:
            errors.append(FieldError.at(path.child("name"), name_error))
    if not container.image:
        errors.append(FieldError.at(path.child("image"), "required"))
    elif container.image != container.image.strip():
        errors.append(FieldError.at(path.child("image"), "must not have leading or trailing whitespace"))
    if data.get("imagePullPolicy") not in _PULL_POLICIES:
        errors.append(
            FieldError.at(path.child("imagePullPolicy"), f"must be one of: {', '.join(_PULL_POLICIES)}")
        )
    if data.get("terminationMessagePolicy") not in _TERMINATION_MESSAGE_POLICIES:
        errors.append(
            FieldError.at(
                path.child("terminationMessagePolicy"),
                f"must be one of: {', '.join(_TERMINATION_MESSAGE_POLICIES)}",
            )
        )
    errors.extend(_ports_errors(data, path))
    errors.extend(_env_errors(data, path))
    errors.extend(_mounts_errors(data, volumes, path))
    errors.extend(_resources_errors(data.get("resources") or {}, path.child("resources")))
    restart_policy = container.restart_policy
    if restart_policy and not is_init:
        errors.append(FieldError.at(path.child("restartPolicy"), "may only be set on init containers"))
    elif restart_policy and restart_policy != "Always":
        errors.append(
            FieldError.at(path.child("restartPolicy"), "must be Always (a native sidecar) or unset")
        )
    runs_alongside_app = not is_init or container.is_native_sidecar
    for probe_name in _PROBES:
        probe = data.get(probe_name)
        if probe is None:
            continue
        if not runs_alongside_app:
            errors.append(
                FieldError.at(
                    path.child(probe_name), "may not be set for init containers without restartPolicy: Always"
                )
            )
        else:
            errors.extend(_probe_errors(probe, probe_name, path.child(probe_name)))
    lifecycle = data.get("lifecycle")
    if lifecycle is not None:
        if not runs_alongside_app:
            errors.append(
                FieldError.at(
                    path.child("lifecycle"),
                    "may not be set for init containers without restartPolicy: Always",
                )
            )
        else:
            for hook in ("postStart", "preStop"):
                if lifecycle.get(hook) is not None:
                    errors.extend(
                        _handler_errors(
                            lifecycle[hook], _LIFECYCLE_HANDLERS, path.child("lifecycle").child(hook)
                        )
                    )
    return errors


def _volume_errors(sidecarset: SidecarSet, spec_path: FieldPath) -> list[FieldError]:
    errors: list[FieldError] = []
    seen: set[str] = set()
    for position, volume in enumerate(sidecarset.volumes):
        path = spec_path.child("volumes").index(position)
        name = str(volume.get("name") or "")
        name_error = dns_label_error(name) if name else "required"
        if name_error:
            errors.append(FieldError.at(path.child("name"), name_error))
        elif name in seen:
            errors.append(FieldError.at(path.child("name"), f"duplicate volume name {name!r}"))
        seen.add(name)
        sources = [key for key, value in volume.items() if key != "name" and value is not None]
        if len(sources) > 1:
            errors.append(
                FieldError.at(
                    path.child(sources[1]),
                    f"may not specify more than one volume source; found {', '.join(sources)}",
                )
            )
        elif not sources:
            errors.append(FieldError.at(path, "must specify a volume source"))
    return errors


def pod_errors(sidecarset: SidecarSet) -> list[FieldError]:
    """Kubernetes pod rules for the SidecarSet's containers, init containers and volumes.

    Mirrors what Kruise's synthetic-pod validation reports: container names are unique across
    both lists, mounts reference ``spec.volumes`` of this SidecarSet, host ports do not repeat.
    """
    spec_path = FieldPath().child("spec")
    volumes = {str(volume.get("name") or ""): volume for volume in sidecarset.volumes}
    errors = _volume_errors(sidecarset, spec_path)
    seen_names: set[str] = set()
    host_ports: set[tuple[Any, Any, Any]] = set()
    for list_name, position, container in sidecarset.all_containers:
        path = spec_path.child(list_name).index(position)
        errors.extend(_container_errors(container, list_name == "initContainers", volumes, path))
        if container.name and container.name in seen_names:
            errors.append(FieldError.at(path.child("name"), f"duplicate container name {container.name!r}"))
        seen_names.add(container.name)
        for port_position, port in _items(container.data.get("ports")):
            host_port = port.get("hostPort")
            if not host_port:
                continue
            key = (host_port, port.get("protocol"), port.get("hostIP") or "")
            if key in host_ports:
                errors.append(
                    FieldError.at(
                        path.child("ports").index(port_position).child("hostPort"),
                        f"duplicate host port {host_port}",
                    )
                )
            host_ports.add(key)
    return errors
