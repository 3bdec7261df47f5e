"""Pods for the hot-upgrade state machine tests: the seed's hot-upgrade SidecarSet (the last
section of the seed document), pods injected by the core's ``inject``, a tiny kubelet that
writes container statuses, and the writes of ``hot_upgrade`` applied as the apiserver would."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

from sandbox.simulator import image_id
from sidecarhub.sidecarset import InjectionCandidate, SidecarSet, inject, parse_sidecarset
from sidecarhub.sidecarset.predicates import ANNOTATION_INPLACE_UPDATE_STATE

EMPTY = "openkruise/hotupgrade-sample:empty"
V1 = "openkruise/hotupgrade-sample:sidecarv1"
V2 = "openkruise/hotupgrade-sample:sidecarv2"
V3 = "openkruise/hotupgrade-sample:sidecarv3"
NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)

SEED = """
apiVersion: apps.kruise.io/v1alpha1
kind: SidecarSet
metadata:
  name: hotupgrade-sidecarset
spec:
  selector:
    matchLabels:
      app: hotupgrade
  containers:
  - name: sidecar
    image: {image}
    imagePullPolicy: Always
    lifecycle:
      postStart:
        exec:
          command:
          - /bin/sh
          - /migrate.sh
    upgradeStrategy:
      upgradeType: HotUpgrade
      hotUpgradeEmptyImage: openkruise/hotupgrade-sample:empty
"""


def seed_sidecarset(image: str = V1) -> SidecarSet:
    return parse_sidecarset(SEED.format(image=image))


def injected_pod(sidecarset: SidecarSet | None = None, *, name: str = "pod-1") -> dict[str, Any]:
    """A pod as the hub's webhook injects it, with every container running and ready."""
    core = sidecarset or seed_sidecarset()
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"uid-{name}",
            "resourceVersion": "1",
            "labels": {"app": "hotupgrade"},
        },
        "spec": {"containers": [{"name": "main", "image": "busybox:1"}]},
    }
    candidate = InjectionCandidate.of(core, revision_name=f"{core.name}-1", revision_number=1)
    result = inject(pod, {"kubernetes.io/metadata.name": "default"}, [candidate], now=NOW)
    return kubelet(result.pod)


def kubelet(
    pod: dict[str, Any],
    *,
    not_started: tuple[str, ...] = (),
    not_ready: tuple[str, ...] = (),
    waiting: dict[str, str] | None = None,
    stale: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Statuses for the spec: every container runs its spec image (``stale`` ones still run the
    image of the previous status), ``not_started`` are in postStart, ``waiting`` maps a
    container to a waiting reason; the pod is Ready when every container is ready."""
    pod = copy.deepcopy(pod)
    previous = {s["name"]: s for s in pod.get("status", {}).get("containerStatuses") or []}
    statuses = []
    for container in pod["spec"]["containers"]:
        name, image = container["name"], container["image"]
        if name in stale and name in previous:
            statuses.append(previous[name])
            continue
        status: dict[str, Any] = {
            "name": name,
            "image": image,
            "imageID": image_id(image),
            "ready": name not in not_ready and name not in not_started,
            "started": name not in not_started,
            "restartCount": 0,
            "state": {"running": {"startedAt": "2026-07-01T12:00:00Z"}},
        }
        if waiting and name in waiting:
            status.update(ready=False, started=False, state={"waiting": {"reason": waiting[name]}})
        statuses.append(status)
    ready = all(s["ready"] for s in statuses)
    pod["status"] = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        "containerStatuses": statuses,
    }
    return pod


def apply(pod: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """A strategic-merge patch of annotations and container images, as the apiserver applies it."""
    pod = copy.deepcopy(pod)
    pod["metadata"].setdefault("annotations", {}).update(body.get("metadata", {}).get("annotations", {}))
    images = {c["name"]: c["image"] for c in body.get("spec", {}).get("containers", [])}
    for container in pod["spec"]["containers"]:
        container["image"] = images.get(container["name"], container["image"])
    pod["metadata"]["resourceVersion"] = str(int(pod["metadata"]["resourceVersion"]) + 1)
    return pod


def upgrade_body(
    sidecarset: SidecarSet,
    pod: dict[str, Any],
    changes: list[tuple[str, str, str]],
    annotations: dict[str, str],
) -> dict[str, Any]:
    """What the engine sends for the upgrade: images, versions, and the in-place record."""
    statuses = {s["name"]: s for s in pod["status"]["containerStatuses"]}
    record = {
        sidecarset.name: {
            "lastContainerStatuses": {
                name: {"imageID": statuses[name]["imageID"]} for name, _o, _n in changes
            }
        }
    }
    return {
        "metadata": {
            "annotations": {**annotations, ANNOTATION_INPLACE_UPDATE_STATE: json.dumps(record)},
        },
        "spec": {"containers": [{"name": name, "image": new} for name, _old, new in changes]},
    }
