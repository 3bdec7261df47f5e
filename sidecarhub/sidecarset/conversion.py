"""From Kruise YAML/JSON (v1alpha1 or v1beta1) to the canonical :class:`SidecarSet`, and back.

Import path: load the text (size-capped), check the structure against the version it names,
refuse a v1alpha1 object that sets both ``namespace`` and ``namespaceSelector`` (decision 1;
Kruise silently drops the selector), convert to v1beta1 exactly as Kruise's conversion webhook
does, apply Kruise's defaults, and build the immutable canonical object.

Export path: :func:`to_kruise` writes either version. As in Kruise, v1alpha1 output never
reconstructs ``spec.namespace``; the ``kubernetes.io/metadata.name`` selector stands in for it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Literal

from sidecarhub.sidecarset.defaults import apply_defaults
from sidecarhub.sidecarset.documents import load_document
from sidecarhub.sidecarset.errors import FieldError, FieldPath, SidecarSetInvalid
from sidecarhub.sidecarset.model import CUSTOM_VERSION_LABEL, NAMESPACE_NAME_LABEL, SidecarSet
from sidecarhub.sidecarset.schema import KIND, V1ALPHA1, V1BETA1, structural_errors

__all__ = ["KRUISE_HASH_ANNOTATIONS", "parse_sidecarset", "read_sidecarset", "to_kruise"]

# Kruise recomputes these on every write; they describe Kruise's hash, not ours, so they are dropped.
KRUISE_HASH_ANNOTATIONS = ("kruise.io/sidecarset-hash", "kruise.io/sidecarset-hash-without-image")
# Metadata that describes a stored object rather than the definition (uid, resourceVersion, ...).
_DEFINITION_METADATA = ("name", "labels", "annotations")

KruiseVersion = Literal["v1alpha1", "v1beta1"]


def _both_namespace_fields_error(document: Mapping[str, Any]) -> FieldError | None:
    spec = document.get("spec") or {}
    if spec.get("namespace") and spec.get("namespaceSelector") is not None:
        return FieldError.at(
            FieldPath().child("spec").child("namespaceSelector"),
            "may not be set together with spec.namespace in v1alpha1 (Kruise would silently ignore the "
            "selector); keep one of them",
        )
    return None


def _to_v1beta1(document: Mapping[str, Any]) -> dict[str, Any]:
    """Kruise's v1alpha1 → v1beta1 conversion on plain data; v1beta1 input is copied unchanged."""
    converted = copy.deepcopy(dict(document))
    metadata = converted.setdefault("metadata", {})
    spec = converted.get("spec")
    spec = converted["spec"] = dict(spec) if isinstance(spec, Mapping) else {}
    if document.get("apiVersion") == V1ALPHA1:
        namespace = spec.pop("namespace", None)
        if namespace:
            spec["namespaceSelector"] = {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}}
        labels = metadata.get("labels") or {}
        custom_version = labels.pop(CUSTOM_VERSION_LABEL, None)
        if custom_version:
            spec["customVersion"] = custom_version
        if not labels:
            metadata.pop("labels", None)
    converted["apiVersion"] = V1BETA1
    converted["metadata"] = {key: value for key, value in metadata.items() if key in _DEFINITION_METADATA}
    annotations = converted["metadata"].get("annotations")
    if isinstance(annotations, dict):
        for key in KRUISE_HASH_ANNOTATIONS:
            annotations.pop(key, None)
    converted.pop("status", None)
    return converted


def read_sidecarset(
    source: str | bytes | Mapping[str, Any] | Any,
) -> tuple[SidecarSet | None, list[FieldError]]:
    """Parse one SidecarSet document without raising: ``(sidecarset, [])`` or ``(None, errors)``.

    ``source`` is YAML text, JSON text, or already-parsed data in either Kruise version. Errors
    cover malformed or oversized text, wrong kind/apiVersion, wrong types, unknown fields and
    decision 1. Semantic rules (injection.md §5) are ``validate_sidecarset``'s job.
    """
    data, errors = load_document(source)
    if errors:
        return None, errors
    errors = structural_errors(data)
    if errors:
        return None, errors
    both_error = _both_namespace_fields_error(data)
    if both_error is not None:
        return None, [both_error]
    document = _to_v1beta1(data)
    apply_defaults(document)
    return SidecarSet.from_document(document), []


def parse_sidecarset(source: str | bytes | Mapping[str, Any] | Any) -> SidecarSet:
    """Like :func:`read_sidecarset`, but raise :class:`SidecarSetInvalid` (with every error) on bad input."""
    sidecarset, errors = read_sidecarset(source)
    if sidecarset is None:
        raise SidecarSetInvalid(errors)
    return sidecarset


def to_kruise(sidecarset: SidecarSet, version: KruiseVersion = "v1beta1") -> dict[str, Any]:
    """Export as a Kruise document of ``version`` (plain, mutable data; defaults included, no status).

    v1alpha1: ``spec.customVersion`` becomes the ``apps.kruise.io/sidecarset-custom-version``
    label, and namespace scoping stays a ``namespaceSelector`` (Kruise's conversion never
    restores ``spec.namespace``).
    """
    document = sidecarset.to_document()
    if version == "v1beta1":
        return document
    if version != "v1alpha1":
        raise ValueError(f"unknown Kruise version {version!r}; expected 'v1alpha1' or 'v1beta1'")
    spec = document["spec"]
    custom_version = spec.pop("customVersion", "")
    if custom_version:
        document["metadata"].setdefault("labels", {})[CUSTOM_VERSION_LABEL] = custom_version
    return {"apiVersion": V1ALPHA1, "kind": KIND, "metadata": document["metadata"], "spec": spec}
