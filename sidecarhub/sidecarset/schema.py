"""Structural checks of a SidecarSet document: shape, types and unknown fields, with field paths.

This is the job Kruise's CRD schema (plus Go's strict JSON decoding) does before any webhook
runs. The SidecarSet-specific parts are described here; the embedded Kubernetes objects
(Container, Volume, LabelSelector, ObjectMeta, ...) are checked against the Kubernetes 1.37
OpenAPI schemas that ``kubernetes_validate`` ships, in their strict form, so an unknown field
such as ``spec.containers[0].imagee`` is reported rather than silently dropped.

Guarantee: :func:`structural_errors` never raises on any JSON-compatible input.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

import jsonschema
from kubernetes_validate import utils as kubernetes_validate_utils
from referencing import Registry, Resource

from sidecarhub.sidecarset.errors import FieldError, FieldPath

__all__ = [
    "API_GROUP",
    "KIND",
    "SIDECAR_CONTAINER_EXTRA_FIELDS",
    "SUPPORTED_API_VERSIONS",
    "V1ALPHA1",
    "V1BETA1",
    "core_object_errors",
    "structural_errors",
]

API_GROUP = "apps.kruise.io"
V1ALPHA1 = "apps.kruise.io/v1alpha1"
V1BETA1 = "apps.kruise.io/v1beta1"
SUPPORTED_API_VERSIONS = (V1ALPHA1, V1BETA1)
KIND = "SidecarSet"

# Fields a SidecarContainer adds to the core Container (Kruise's sidecarset_types.go).
SIDECAR_CONTAINER_EXTRA_FIELDS = (
    "podInjectPolicy",
    "upgradeStrategy",
    "shareVolumePolicy",
    "shareVolumeDevicePolicy",
    "transferEnv",
    "resourcesPolicy",
)

# The newest schema set shipped by kubernetes-validate 1.37.0; "strict" forbids unknown fields.
_KUBERNETES_SCHEMA_DIR = "kubernetes-json-schema/v1.37.0-local-strict"
_KUBERNETES_VERSION = "1.37"
_DEFINITIONS_ID = "https://kubernetes.io/api/_definitions.json"


def _core(definition: str) -> dict[str, Any]:
    return {"$ref": f"{_DEFINITIONS_ID}#/$defs/{definition}"}


def _nullable(*types: str) -> list[str]:
    # Go decodes JSON null into the zero value, so null is accepted wherever a field is optional.
    return [*types, "null"]


def _object(properties: Mapping[str, Any], required: Iterable[str] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": _nullable("object"),
        "properties": dict(properties),
        "additionalProperties": False,
    }
    if required:
        schema["required"] = list(required)
    return schema


def _array(items: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": _nullable("array"), "items": dict(items)}


_STRING = {"type": _nullable("string")}
_BOOLEAN = {"type": _nullable("boolean")}
_INTEGER = {"type": _nullable("integer")}
_LABEL_SELECTOR = _core("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector")
_INT_OR_STRING = {"type": _nullable("integer", "string")}

_TRANSFER_ENV = _object(
    {
        "sourceContainerName": _STRING,
        "sourceContainerNameFrom": _object({"fieldRef": _core("io.k8s.api.core.v1.ObjectFieldSelector")}),
        "envName": _STRING,
        "envNames": _array(_STRING),
    }
)
_RESOURCE_EXPRESSIONS = _object({"cpu": _STRING, "memory": _STRING})
_RESOURCES_POLICY = _object(
    {
        # The CRD declares this enum; it is the only SidecarContainer enum the apiserver enforces.
        "targetContainersMode": {"enum": ["sum", "max"]},
        "targetContainersNameRegex": _STRING,
        "resourcesExpr": _object({"limits": _RESOURCE_EXPRESSIONS, "requests": _RESOURCE_EXPRESSIONS}),
    },
    required=("targetContainersMode", "resourcesExpr"),
)
# Only the SidecarContainer extras; the core Container fields are checked by core_object_errors.
_SIDECAR_CONTAINER = {
    "type": "object",
    "properties": {
        "podInjectPolicy": _STRING,
        "upgradeStrategy": _object({"upgradeType": _STRING, "hotUpgradeEmptyImage": _STRING}),
        "shareVolumePolicy": _object({"type": _STRING}),
        "shareVolumeDevicePolicy": _object({"type": _STRING}),
        "transferEnv": _array(_TRANSFER_ENV),
        "resourcesPolicy": _RESOURCES_POLICY,
    },
}
_UPDATE_STRATEGY = _object(
    {
        "type": _STRING,
        "paused": _BOOLEAN,
        "selector": _LABEL_SELECTOR,
        "partition": _INT_OR_STRING,
        "maxUnavailable": _INT_OR_STRING,
        "priorityStrategy": _object(
            {
                "weightPriority": _array(
                    _object({"weight": _INTEGER, "matchSelector": _LABEL_SELECTOR}, required=("weight",))
                ),
                "orderPriority": _array(_object({"orderedKey": _STRING})),
            }
        ),
        "scatterStrategy": _array(_object({"key": _STRING, "value": _STRING})),
    }
)
_INJECTION_STRATEGY = _object(
    {
        "paused": _BOOLEAN,
        "revision": _object({"revisionName": _STRING, "customVersion": _STRING, "policy": _STRING}),
    }
)
_PATCH_POD_METADATA = _object(
    {"annotations": {"type": _nullable("object"), "additionalProperties": _STRING}, "patchPolicy": _STRING}
)
_STATUS = _object(
    {
        "observedGeneration": _INTEGER,
        "matchedPods": _INTEGER,
        "updatedPods": _INTEGER,
        "readyPods": _INTEGER,
        "updatedReadyPods": _INTEGER,
        "latestRevision": _STRING,
        "collisionCount": _INTEGER,
    }
)


def _spec_properties(api_version: str) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "selector": _LABEL_SELECTOR,
        "namespaceSelector": _LABEL_SELECTOR,
        "initContainers": _array(_SIDECAR_CONTAINER),
        "containers": _array(_SIDECAR_CONTAINER),
        "volumes": _array({"type": "object"}),
        "updateStrategy": _UPDATE_STRATEGY,
        "injectionStrategy": _INJECTION_STRATEGY,
        "imagePullSecrets": _array(_core("io.k8s.api.core.v1.LocalObjectReference")),
        "revisionHistoryLimit": _INTEGER,
        "patchPodMetadata": _array(_PATCH_POD_METADATA),
    }
    # v1alpha1 has spec.namespace; v1beta1 replaced it and added spec.customVersion.
    if api_version == V1ALPHA1:
        properties["namespace"] = _STRING
    else:
        properties["customVersion"] = _STRING
    return properties


def _sidecarset_schema(api_version: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {
                "allOf": [_core("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")],
                "type": "object",
                "required": ["name"],
            },
            "spec": _object(_spec_properties(api_version)),
            "status": _STATUS,
        },
        "required": ["apiVersion", "kind", "metadata"],
        "additionalProperties": False,
    }


@functools.cache
def _registry() -> Registry:
    definitions = kubernetes_validate_utils.schema_contents(
        f"{_KUBERNETES_SCHEMA_DIR}/_definitions.json", _KUBERNETES_VERSION
    )
    return Resource.from_contents(definitions) @ Registry()


@functools.cache
def _validator(schema_name: str) -> jsonschema.Draft202012Validator:
    schema = _sidecarset_schema(schema_name) if schema_name in SUPPORTED_API_VERSIONS else _core(schema_name)
    return jsonschema.Draft202012Validator(schema, registry=_registry())


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


# Fields whose keys are data (label keys, resource names), rendered as [key] like Kubernetes does.
_MAP_FIELDS = frozenset({"annotations", "labels", "matchLabels", "limits", "requests", "nodeSelector"})


def _translate(error: jsonschema.ValidationError, base: FieldPath) -> list[FieldError]:
    """Turn one jsonschema error into field errors that name the exact field."""
    path = base
    previous: str | int | None = None
    for part in error.absolute_path:
        path = path.key(part) if previous in _MAP_FIELDS and isinstance(part, str) else path.segment(part)
        previous = part
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        known = set(error.schema.get("properties", {}))
        return [
            FieldError.at(path.segment(key), "unknown field") for key in error.instance if key not in known
        ]
    if error.validator == "required" and isinstance(error.instance, Mapping):
        missing = [key for key in error.validator_value if key not in error.instance]
        return [FieldError.at(path.child(key), "required") for key in missing]
    if error.validator == "type":
        expected = (
            error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        )
        wanted = " or ".join(kind for kind in expected if kind != "null")
        return [FieldError.at(path, f"must be {wanted or 'null'}, not {_json_type(error.instance)}")]
    if error.validator == "oneOf":
        # Quantity and IntOrString are the only oneOf schemas Kubernetes uses for fields.
        kinds: list[str] = []
        for option in error.validator_value:
            option_types = option.get("type", []) if isinstance(option, Mapping) else []
            option_types = [option_types] if isinstance(option_types, str) else option_types
            kinds.extend(kind for kind in option_types if kind != "null" and kind not in kinds)
        wanted = " or ".join(kinds)
        return [FieldError.at(path, f"must be {wanted}, not {_json_type(error.instance)}")]
    if error.validator == "enum":
        allowed = ", ".join(str(option) for option in error.validator_value)
        return [FieldError.at(path, f"must be one of: {allowed}")]
    return [FieldError.at(path, error.message)]


def _schema_errors(
    validator: jsonschema.Draft202012Validator, instance: Any, base: FieldPath
) -> list[FieldError]:
    errors: list[FieldError] = []
    for error in validator.iter_errors(instance):
        errors.extend(_translate(error, base))
    return errors


def core_object_errors(instance: Any, definition: str, path: FieldPath) -> list[FieldError]:
    """Check ``instance`` against a Kubernetes 1.37 definition, e.g. ``io.k8s.api.core.v1.Container``.

    Types, required fields and unknown fields are checked; the semantic rules Kubernetes applies
    in Go (name formats, references) are not part of the OpenAPI schema (see ``kube_rules``).
    """
    return _schema_errors(_validator(definition), instance, path)


def _containers_without_extras(
    spec: Mapping[str, Any], list_name: str
) -> Iterable[tuple[int, dict[str, Any]]]:
    items = spec.get(list_name)
    if not isinstance(items, list):
        return
    for position, item in enumerate(items):
        if isinstance(item, Mapping):
            yield (
                position,
                {key: value for key, value in item.items() if key not in SIDECAR_CONTAINER_EXTRA_FIELDS},
            )


def structural_errors(document: Any) -> list[FieldError]:
    """All shape problems of a SidecarSet document: kind, apiVersion, types, required and unknown fields.

    ``document`` is plain JSON data (as returned by ``load_document``). An empty list means the
    document has the shape of a SidecarSet of the version it names, so it can be converted.
    """
    root = FieldPath()
    if not isinstance(document, Mapping):
        return [FieldError.at(root, f"must be an object, not {_json_type(document)}")]
    api_version = document.get("apiVersion")
    kind = document.get("kind")
    errors: list[FieldError] = []
    if api_version not in SUPPORTED_API_VERSIONS:
        supported = " or ".join(SUPPORTED_API_VERSIONS)
        errors.append(FieldError.at(root.child("apiVersion"), f"must be {supported}, not {api_version!r}"))
    if kind != KIND:
        errors.append(FieldError.at(root.child("kind"), f"must be {KIND}, not {kind!r}"))
    if errors:
        return errors
    errors.extend(_schema_errors(_validator(api_version), document, root))
    spec = document.get("spec")
    if isinstance(spec, Mapping):
        spec_path = root.child("spec")
        for list_name in ("initContainers", "containers"):
            for position, container in _containers_without_extras(spec, list_name):
                errors.extend(
                    core_object_errors(
                        container, "io.k8s.api.core.v1.Container", spec_path.child(list_name).index(position)
                    )
                )
        volumes = spec.get("volumes")
        if isinstance(volumes, list):
            for position, volume in enumerate(volumes):
                if isinstance(volume, Mapping):
                    errors.extend(
                        core_object_errors(
                            volume, "io.k8s.api.core.v1.Volume", spec_path.child("volumes").index(position)
                        )
                    )
    return errors
