"""The Kubernetes objects the hub writes into each cluster (decision 3): its CRD and the
SidecarSet custom resource built from a published revision. Pure functions over plain data.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from sidecarhub.sidecarset.annotations import ANNOTATION_HASH, ANNOTATION_HASH_WITHOUT_IMAGE

__all__ = [
    "CRD_NAME",
    "GROUP",
    "KIND",
    "MANAGED_BY_LABEL",
    "MANAGED_BY_SELECTOR",
    "MANAGED_BY_VALUE",
    "PLURAL",
    "REVISION_NAME_ANNOTATION",
    "VERSION",
    "crd_manifest",
    "crd_manifest_hash",
    "custom_resource",
    "status_body",
]

GROUP = "sidecarhub.io"
VERSION = "v1beta1"
KIND = "SidecarSet"
PLURAL = "sidecarsets"
CRD_NAME = f"{PLURAL}.{GROUP}"
API_VERSION = f"{GROUP}/{VERSION}"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "sidecarhub"
MANAGED_BY_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"  # every resource the hub placed
REVISION_NAME_ANNOTATION = f"{GROUP}/revision-name"
REVISION_NUMBER_ANNOTATION = f"{GROUP}/revision-number"

_OPEN_OBJECT: dict[str, Any] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
_OPEN_LIST: dict[str, Any] = {"type": "array", "items": _OPEN_OBJECT}
_COUNTER: dict[str, Any] = {"type": "integer", "format": "int32", "minimum": 0}


def crd_manifest() -> dict[str, Any]:
    """CustomResourceDefinition ``sidecarsets.sidecarhub.io``: cluster-scoped, Kruise's v1beta1
    spec shape (top-level fields typed, their contents preserved as-is), a status subresource
    with Kruise's counters plus the hub's own state, and MATCHED / UPDATED / READY columns."""
    spec_schema = {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {
            "selector": _OPEN_OBJECT,
            "namespaceSelector": _OPEN_OBJECT,
            "customVersion": {"type": "string"},
            "initContainers": _OPEN_LIST,
            "containers": _OPEN_LIST,
            "volumes": _OPEN_LIST,
            "imagePullSecrets": _OPEN_LIST,
            "updateStrategy": _OPEN_OBJECT,
            "injectionStrategy": _OPEN_OBJECT,
            "revisionHistoryLimit": {"type": "integer", "format": "int32"},
            "patchPodMetadata": _OPEN_LIST,
        },
    }
    status_schema = {
        "type": "object",
        "properties": {
            "observedGeneration": {"type": "integer", "format": "int64"},
            "matchedPods": _COUNTER,
            "updatedPods": _COUNTER,
            "readyPods": _COUNTER,
            "updatedReadyPods": _COUNTER,
            "latestRevision": {"type": "string"},
            "collisionCount": {"type": "integer", "format": "int32"},
            # The revision this cluster serves (decision 17): pushed here and injected by its webhook.
            "servingRevision": {"type": "string"},
            # The hub's rollout state (filled by the rollouts app).
            "hub": _OPEN_OBJECT,
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME, "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE}},
        "spec": {
            "group": GROUP,
            "scope": "Cluster",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": "sidecarset",
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "MATCHED", "type": "integer", "jsonPath": ".status.matchedPods"},
                        {"name": "UPDATED", "type": "integer", "jsonPath": ".status.updatedPods"},
                        {"name": "READY", "type": "integer", "jsonPath": ".status.readyPods"},
                        {"name": "SERVING", "type": "string", "jsonPath": ".status.servingRevision"},
                        {"name": "AGE", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                }
            ],
        },
    }


def crd_manifest_hash() -> str:
    """A stable hash of ``crd_manifest()``; a cluster whose stored hash differs gets it re-applied."""
    return hashlib.sha256(json.dumps(crd_manifest(), sort_keys=True).encode()).hexdigest()


def custom_resource(
    document: Mapping[str, Any],
    *,
    revision_name: str,
    revision_number: int,
    revision_hash: str,
    hash_without_images: str,
) -> dict[str, Any]:
    """The SidecarSet custom resource for one published revision (its whole desired state, for
    server-side apply: fields the hub applied before and leaves out now are removed)."""
    metadata = document.get("metadata") or {}
    labels = {str(k): str(v) for k, v in (metadata.get("labels") or {}).items()}
    labels[MANAGED_BY_LABEL] = MANAGED_BY_VALUE
    annotations = {str(k): str(v) for k, v in (metadata.get("annotations") or {}).items()}
    annotations.update(
        {
            ANNOTATION_HASH: revision_hash,
            ANNOTATION_HASH_WITHOUT_IMAGE: hash_without_images,
            REVISION_NAME_ANNOTATION: revision_name,
            REVISION_NUMBER_ANNOTATION: str(revision_number),
        }
    )
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": str(metadata.get("name") or ""), "labels": labels, "annotations": annotations},
        "spec": json.loads(json.dumps(document.get("spec") or {})),
    }


def status_body(
    name: str,
    counters: Mapping[str, int],
    *,
    observed_generation: int,
    latest_revision: str,
    serving_revision: str = "",
) -> dict[str, Any]:
    """The status subresource patch (server-side apply) carrying Kruise's counters and the
    revision the cluster serves."""
    status: dict[str, Any] = {
        "observedGeneration": observed_generation,
        "matchedPods": int(counters.get("matchedPods", 0)),
        "updatedPods": int(counters.get("updatedPods", 0)),
        "readyPods": int(counters.get("readyPods", 0)),
        "updatedReadyPods": int(counters.get("updatedReadyPods", 0)),
        "latestRevision": latest_revision,
        "collisionCount": 0,
        "servingRevision": serving_revision,
    }
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "status": status}
