"""Builders for the injection tests: one SidecarSet, candidate or pod per call, plain data out."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sidecarhub.sidecarset import (
    InjectionCandidate,
    InjectionResult,
    InjectionRevision,
    SidecarSet,
    inject,
    parse_sidecarset,
)

NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
NOW_TEXT = "2024-05-06T07:08:09Z"
DEFAULT_SELECTOR: dict[str, Any] = {"matchLabels": {"app": "nginx"}}


def make_sidecarset(
    name: str = "sidecarset1",
    *,
    selector: Mapping[str, Any] | None = None,
    annotations: Mapping[str, str] | None = None,
    **spec: Any,
) -> SidecarSet:
    """A parsed (defaulted) SidecarSet; ``spec`` keys are v1beta1 spec fields in Kruise's spelling."""
    document: dict[str, Any] = {
        "apiVersion": "apps.kruise.io/v1beta1",
        "kind": "SidecarSet",
        "metadata": {"name": name},
        "spec": {"selector": copy.deepcopy(dict(selector or DEFAULT_SELECTOR)), **copy.deepcopy(spec)},
    }
    if annotations:
        document["metadata"]["annotations"] = dict(annotations)
    return parse_sidecarset(document)


def container(name: str, image: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": image or f"{name}:1.0", **fields}


def make_pod(
    *,
    name: str = "test-pod",
    namespace: str = "default",
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    containers: Iterable[Mapping[str, Any]] | None = None,
    init_containers: Iterable[Mapping[str, Any]] | None = None,
    volumes: Iterable[Mapping[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": dict(labels or {"app": "nginx"}),
    }
    if annotations is not None:
        metadata["annotations"] = dict(annotations)
    app_containers = [container("nginx")] if containers is None else containers
    pod_spec: dict[str, Any] = {"containers": [dict(item) for item in app_containers]}
    if init_containers is not None:
        pod_spec["initContainers"] = [dict(item) for item in init_containers]
    if volumes is not None:
        pod_spec["volumes"] = [dict(item) for item in volumes]
    pod_spec.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}


def as_candidate(item: SidecarSet | InjectionCandidate) -> InjectionCandidate:
    return item if isinstance(item, InjectionCandidate) else InjectionCandidate.of(item)


def run_injection(
    pod: Mapping[str, Any],
    *sidecarsets: SidecarSet | InjectionCandidate,
    namespace_labels: Mapping[str, str] | None = None,
    seed: str = "",
) -> InjectionResult:
    """``inject`` at ``NOW`` with the namespace labels (default: none besides its name)."""
    return inject(
        pod,
        {} if namespace_labels is None else namespace_labels,
        [as_candidate(item) for item in sidecarsets],
        now=NOW,
        seed=seed,
    )


def revision(sidecarset: SidecarSet, name: str, number: int, **fields: Any) -> InjectionRevision:
    return InjectionRevision(sidecarset=sidecarset, name=name, number=number, **fields)


def names(containers: Iterable[Mapping[str, Any]]) -> list[str]:
    return [item["name"] for item in containers]


def pod_containers(result: InjectionResult, list_name: str = "containers") -> list[dict[str, Any]]:
    return result.pod["spec"].get(list_name, [])


def by_name(result: InjectionResult, name: str, list_name: str = "containers") -> dict[str, Any]:
    return next(item for item in pod_containers(result, list_name) if item["name"] == name)


def annotation_json(result: InjectionResult, key: str) -> Any:
    return json.loads(result.pod["metadata"]["annotations"][key])


def env_pairs(container_dict: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return [(env["name"], env.get("value", env.get("valueFrom"))) for env in container_dict.get("env", [])]
