"""Owning workloads of pods and their restarts, as Kubernetes defines them (decision 18). Pure:
plain JSON in, frozen values out; no Django, no database, no network.

- ``group_by_workload``: which workload owns each pod that needs recreate. A pod owned by a
  ReplicaSet belongs to the Deployment that owns that ReplicaSet (its controller
  ownerReference); a pod owned by a StatefulSet or a DaemonSet belongs to it. Bare pods, pods of
  a ReplicaSet with no Deployment, and pods of any other controller (Job, a custom resource) are
  "not restartable": listed, never touched.
- ``plan_restart_steps``: the workloads cut into steps by cumulative targets, as rollout steps
  are (``1``, ``"50%"``, ``"100%"`` of the workloads).
- ``restart_patch`` / ``restart_marker_of``: what ``kubectl rollout restart`` writes (the
  pod-template annotation ``kubectl.kubernetes.io/restartedAt``) and reading it back, so a
  worker that died after writing its intent decides by READING the workload whether its patch
  landed.
- ``restart_status``: whether a workload's own rollout is complete, by the rules
  ``kubectl rollout status`` applies, with the counts a person needs ("ready 4/6").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sidecarhub.sidecarset.planning import resolve_step_target

__all__ = [
    "RESTARTED_AT_ANNOTATION",
    "Grouping",
    "NotRestartable",
    "PodEntry",
    "RestartStatus",
    "WorkloadGroup",
    "WorkloadKind",
    "WorkloadRef",
    "controller_of",
    "group_by_workload",
    "plan_restart_steps",
    "replicaset_owners",
    "restart_marker_of",
    "restart_patch",
    "restart_status",
]

RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"

Json = Mapping[str, Any]


class WorkloadKind(StrEnum):
    """The workloads the hub restarts (apps/v1 kinds, as Kubernetes spells them)."""

    DEPLOYMENT = "Deployment"
    STATEFULSET = "StatefulSet"
    DAEMONSET = "DaemonSet"


@dataclass(frozen=True, order=True)
class PodEntry:
    namespace: str
    name: str
    uid: str

    def as_dict(self) -> dict[str, str]:
        return {"namespace": self.namespace, "name": self.name, "uid": self.uid}


@dataclass(frozen=True, order=True)
class WorkloadRef:
    namespace: str
    name: str
    kind: str
    uid: str

    def label(self) -> str:
        """``Deployment web/api`` (for people)."""
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True)
class WorkloadGroup:
    """One workload and the pods of it that need recreate."""

    workload: WorkloadRef
    pods: tuple[PodEntry, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.workload.kind,
            "namespace": self.workload.namespace,
            "name": self.workload.name,
            "uid": self.workload.uid,
            "pods": [pod.as_dict() for pod in self.pods],
        }


@dataclass(frozen=True)
class NotRestartable:
    pod: PodEntry
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {**self.pod.as_dict(), "reason": self.reason}


@dataclass(frozen=True)
class Grouping:
    """Workloads in a stable order (namespace, name, kind) and the pods no workload restarts."""

    workloads: tuple[WorkloadGroup, ...]
    not_restartable: tuple[NotRestartable, ...]

    @property
    def pod_count(self) -> int:
        return sum(len(group.pods) for group in self.workloads)


def _meta(obj: Json) -> Json:
    return obj.get("metadata") or {}


def controller_of(obj: Json) -> Json | None:
    """The ownerReference with ``controller: true`` (what Kubernetes controllers set), or None."""
    for reference in _meta(obj).get("ownerReferences") or []:
        if reference.get("controller"):
            return dict(reference)
    return None


def replicaset_owners(replicasets: Iterable[Json]) -> dict[tuple[str, str], Json | None]:
    """(namespace, ReplicaSet name) → its controller ownerReference (None: no controller)."""
    return {
        (str(_meta(rs).get("namespace") or ""), str(_meta(rs).get("name") or "")): controller_of(rs)
        for rs in replicasets
    }


def _entry(pod: Json) -> PodEntry:
    meta = _meta(pod)
    return PodEntry(str(meta.get("namespace") or ""), str(meta.get("name") or ""), str(meta.get("uid") or ""))


def group_by_workload(
    pods: Iterable[Json], owners_of_replicasets: Mapping[tuple[str, str], Json | None]
) -> Grouping:
    """Group ``pods`` by the workload that owns them (module docstring).

    ``owners_of_replicasets``: ``replicaset_owners`` of the ReplicaSets in the pods' namespaces;
    a ReplicaSet missing from it is treated as gone (its pods are not restartable).
    """
    groups: dict[WorkloadRef, list[PodEntry]] = {}
    refused: list[NotRestartable] = []
    for pod in pods:
        entry = _entry(pod)
        owner = controller_of(pod)
        if owner is None:
            refused.append(
                NotRestartable(entry, "a bare pod (no controller): delete and recreate it yourself")
            )
            continue
        kind, name = str(owner.get("kind") or ""), str(owner.get("name") or "")
        if kind == "ReplicaSet":
            key = (entry.namespace, name)
            if key not in owners_of_replicasets:
                refused.append(NotRestartable(entry, f"owned by ReplicaSet {name}, which was not found"))
                continue
            rs_owner = owners_of_replicasets[key]
            if rs_owner is None or rs_owner.get("kind") != WorkloadKind.DEPLOYMENT:
                what = f"{rs_owner.get('kind')} {rs_owner.get('name')}" if rs_owner else "no Deployment"
                refused.append(
                    NotRestartable(
                        entry, f"owned by ReplicaSet {name} ({what}): a ReplicaSet is not restarted"
                    )
                )
                continue
            workload = WorkloadRef(
                entry.namespace,
                str(rs_owner.get("name")),
                WorkloadKind.DEPLOYMENT,
                str(rs_owner.get("uid") or ""),
            )
        elif kind in (WorkloadKind.STATEFULSET, WorkloadKind.DAEMONSET):
            workload = WorkloadRef(entry.namespace, name, kind, str(owner.get("uid") or ""))
        else:
            refused.append(NotRestartable(entry, f"owned by {kind} {name}: not a restartable workload"))
            continue
        groups.setdefault(workload, []).append(entry)
    return Grouping(
        workloads=tuple(WorkloadGroup(ref, tuple(sorted(groups[ref]))) for ref in sorted(groups)),
        not_restartable=tuple(sorted(refused, key=lambda item: item.pod)),
    )


def plan_restart_steps(
    workloads: Sequence[WorkloadGroup], targets: Sequence[int | str]
) -> list[tuple[str, tuple[WorkloadGroup, ...]]]:
    """Cut ``workloads`` (in order) into steps by cumulative targets (a count of workloads or a
    percent, rounded up); a step that would add no workload is left out, and the last step
    always takes every workload left. Returns (target, workloads) per step; ``ValueError`` for
    a target that is not a count or a percent."""
    steps: list[tuple[str, tuple[WorkloadGroup, ...]]] = []
    done = 0
    for position, target in enumerate(targets):
        goal = resolve_step_target(target, len(workloads))
        if position == len(targets) - 1:
            goal = len(workloads)
        if goal > done:
            steps.append((str(target), tuple(workloads[done:goal])))
            done = goal
    return steps


def restart_patch(marker: str) -> dict[str, Any]:
    """The strategic-merge patch ``kubectl rollout restart`` sends: only the pod template's
    ``restartedAt`` annotation changes, so the workload's controller replaces its pods by its
    own rules (maxUnavailable, maxSurge, partition, ordering, PodDisruptionBudgets via evictions
    are the controller's business). Sending it twice with the same ``marker`` changes nothing."""
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: marker}}}}}


def restart_marker_of(workload: Json) -> str | None:
    """The pod template's ``restartedAt`` annotation as the workload carries it now."""
    template = (workload.get("spec") or {}).get("template") or {}
    value = (_meta(template).get("annotations") or {}).get(RESTARTED_AT_ANNOTATION)
    return str(value) if value is not None else None


@dataclass(frozen=True)
class RestartStatus:
    """Whether the workload's own rollout is complete, and its counts in words."""

    complete: bool
    ready: int
    desired: int
    summary: str


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def restart_status(kind: str, workload: Json) -> RestartStatus:
    """The workload's rollout state by ``kubectl rollout status`` rules:

    - every kind: ``status.observedGeneration >= metadata.generation`` (the controller saw the
      restart);
    - Deployment: ``updatedReplicas == replicas``, ``availableReplicas == replicas`` and no old
      replica left (``status.replicas == replicas``);
    - StatefulSet: ``updatedReplicas == replicas``, ``currentRevision == updateRevision`` and
      ``availableReplicas`` (or ``readyReplicas``) ``== replicas``;
    - DaemonSet: ``updatedNumberScheduled == numberAvailable == desiredNumberScheduled``.
    """
    spec, status = workload.get("spec") or {}, workload.get("status") or {}
    generation = _int(_meta(workload).get("generation"))
    observed = _int(status.get("observedGeneration")) >= generation
    if kind == WorkloadKind.DAEMONSET:
        desired = _int(status.get("desiredNumberScheduled"))
        updated = _int(status.get("updatedNumberScheduled"))
        available = _int(status.get("numberAvailable"))
        complete = observed and updated == desired and available == desired
        return RestartStatus(
            complete, available, desired, f"available {available}/{desired}, updated {updated}/{desired}"
        )
    desired = _int(spec.get("replicas", 1))
    updated = _int(status.get("updatedReplicas"))
    ready = _int(status.get("readyReplicas"))
    available = _int(status.get("availableReplicas", ready))
    if kind == WorkloadKind.STATEFULSET:
        same_revision = bool(status.get("updateRevision")) and status.get("currentRevision") == status.get(
            "updateRevision"
        )
        complete = observed and updated == desired and same_revision and available == desired
    else:
        complete = observed and updated == desired and available == desired
        complete = complete and _int(status.get("replicas")) == desired
    summary = f"ready {ready}/{desired}, updated {updated}/{desired}"
    if not observed:
        summary += " (the controller has not seen the restart yet)"
    return RestartStatus(complete, ready, desired, summary)
