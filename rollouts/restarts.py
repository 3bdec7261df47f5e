"""Use cases of workload restarts (decision 18): preview and start an approved, stepped restart of
the workloads owning the pods that a rollout left needing recreate.

A restart is a rollout of kind ``restart`` (``RolloutKind.RESTART``) in the same cluster, for the
same SidecarSet and revision as the rollout it comes from (``restart_of``): its steps list
workloads instead of pods (``RolloutStep.workloads``, with their pods in ``pods``), and the
rollout machinery gives it the rest unchanged: the state machines and their history rows,
approvals with the four-eyes rule, expiry, auto-approve clusters, pause / resume / abort
(``rollouts.services``), the API, the admin and the CLI. The reconciler runs its steps with
``rollouts.restart_engine``.

Service shape as in ``rollouts.services``: ``verb(rollout_id, *, actor, request_id="", ...)``;
``RolloutNotFound`` (404), ``NotPermitted`` (403), ``RolloutError`` (400: nothing to restart,
a revision not served, a restart already active...).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from django.conf import settings as django_settings
from django.db import transaction
from kubernetes import client

from clusters.kube import KubeClient, cached_kube_client
from clusters.models import SidecarSetPlacement
from rollouts.choices import ACTIVE_ROLLOUT_STATES, RolloutKind, RolloutState
from rollouts.lifecycle import parse_step_target, stale_pods
from rollouts.models import Rollout, RolloutStep
from rollouts.pass_inputs import PassInputs
from rollouts.permissions import operate_refusal
from rollouts.services import get_rollout, wake_cluster
from rollouts.transitions import NotPermitted, RolloutError
from rollouts.workloads import (
    Grouping,
    WorkloadGroup,
    group_by_workload,
    plan_restart_steps,
    replicaset_owners,
)
from sidecarhub.changes import Actor, actor_name

__all__ = [
    "RestartPreview",
    "RestartStepPreview",
    "RestartWorkloadPreview",
    "preview_restart",
    "restart_settings",
    "start_restart",
]

DEFAULT_STEPS: tuple[int | str, ...] = ("100%",)


@dataclasses.dataclass(frozen=True)
class RestartWorkloadPreview:
    kind: str
    namespace: str
    name: str
    pod_count: int


@dataclasses.dataclass(frozen=True)
class RestartStepPreview:
    ordinal: int
    target: str
    workloads: tuple[RestartWorkloadPreview, ...]

    @property
    def pod_count(self) -> int:
        return sum(workload.pod_count for workload in self.workloads)


@dataclasses.dataclass(frozen=True)
class RestartPreview:
    """What ``start_restart`` would do now: the workloads and pod counts per step, and the pods
    that need recreate but no workload restart replaces (listed, never touched)."""

    rollout_id: int
    cluster: str
    sidecarset: str
    revision_number: int
    pods_needing_recreate: int
    steps: tuple[RestartStepPreview, ...]
    not_restartable: tuple[dict[str, str], ...]
    workloads_at_once: int
    workload_deadline_seconds: int


def restart_settings() -> tuple[int, int]:
    """(workloads restarting at once, seconds a workload has to complete its own rollout)."""
    at_once = int(getattr(django_settings, "SIDECARHUB_RESTART_WORKLOADS_AT_ONCE", 1))
    deadline = int(getattr(django_settings, "SIDECARHUB_RESTART_WORKLOAD_DEADLINE_SECONDS", 600))
    return max(1, at_once), max(1, deadline)


def _check_source(source: Rollout) -> None:
    if source.kind == RolloutKind.RESTART:
        raise RolloutError(f"rollout {source.pk} is a restart; start a restart from the rollout it came from")
    if source.cluster_id is None:
        raise RolloutError(f"rollout {source.pk}: cluster {source.cluster_name} was deleted from the hub")
    if source.sidecarset_id is None:
        raise RolloutError(f"rollout {source.pk}: SidecarSet {source.sidecarset_name} was deleted")
    if source.to_revision_id is None:
        raise RolloutError(f"rollout {source.pk}: revision {source.to_revision_number} no longer exists")
    serving = (
        SidecarSetPlacement.objects.filter(sidecarset_id=source.sidecarset_id, cluster_id=source.cluster_id)
        .values_list("serving_revision_id", flat=True)
        .first()
    )
    if serving != source.to_revision_id:
        raise RolloutError(
            f"cluster {source.cluster_name} does not serve revision {source.to_revision_number} of "
            f"{source.sidecarset_name}: restarted pods would not get it (approve its gate first)"
        )


def _grouping(source: Rollout, kube: KubeClient) -> Grouping:
    """The source's cluster's pods that run another definition than its revision, by workload
    (``KubeError`` when the cluster cannot be read: the API answers 503)."""
    inputs = PassInputs(kube)
    core = inputs.planning_sidecarset(source)
    listing = inputs.pods(core)
    stale = [decision.pod for decision in stale_pods(core, listing)]
    namespaces = sorted({str((pod.get("metadata") or {}).get("namespace")) for pod in stale})
    apps = client.AppsV1Api(kube.api_client)
    replicasets: list[dict[str, Any]] = []
    for namespace in namespaces:
        page = kube.call(apps.list_namespaced_replica_set, namespace, what=f"list replicasets in {namespace}")
        replicasets.extend(page.get("items") or [])
    return group_by_workload(stale, replicaset_owners(replicasets))


def _planned(
    grouping: Grouping, steps: Sequence[int | str] | None
) -> list[tuple[str, tuple[WorkloadGroup, ...]]]:
    targets = [parse_step_target(step) for step in (steps or DEFAULT_STEPS)]
    if any(target == "canary" for target in targets):
        raise RolloutError("a restart has no canary step: use counts or percents of workloads")
    try:
        return plan_restart_steps(grouping.workloads, targets)
    except ValueError as exc:
        raise RolloutError(f"steps: {exc} (use a count like 1 or a percent like 50%)") from None


def preview_restart(
    rollout_id: int, *, actor: Actor, steps: Sequence[int | str] | None = None, kube: KubeClient | None = None
) -> RestartPreview:
    """What a restart of ``rollout_id``'s pods that need recreate would do now (reads the cluster;
    changes nothing)."""
    source = get_rollout(rollout_id)
    _check_source(source)
    grouping = _grouping(source, kube or cached_kube_client(source.live_cluster))
    planned = _planned(grouping, steps)
    at_once, deadline = restart_settings()
    return RestartPreview(
        rollout_id=source.pk,
        cluster=source.cluster_name,
        sidecarset=source.sidecarset_name,
        revision_number=source.to_revision_number,
        pods_needing_recreate=grouping.pod_count + len(grouping.not_restartable),
        steps=tuple(
            RestartStepPreview(
                ordinal=position + 1,
                target=target,
                workloads=tuple(
                    RestartWorkloadPreview(
                        group.workload.kind, group.workload.namespace, group.workload.name, len(group.pods)
                    )
                    for group in groups
                ),
            )
            for position, (target, groups) in enumerate(planned)
        ),
        not_restartable=tuple(item.as_dict() for item in grouping.not_restartable),
        workloads_at_once=at_once,
        workload_deadline_seconds=deadline,
    )


def start_restart(
    rollout_id: int,
    *,
    actor: Actor,
    request_id: str = "",
    steps: Sequence[int | str] | None = None,
    reason: str = "",
    kube: KubeClient | None = None,
) -> Rollout:
    """Start an approved, stepped restart of the workloads owning the pods that ``rollout_id``
    left needing recreate (decision 18). Returns the new restart rollout (pending; the reconciler
    starts it and puts its first step up for approval).

    Guarantees: the workloads and their pods are fixed now, as previewed, one step per target
    (counts or percents of workloads, default one step); ReplicaSet-only, bare and other pods
    are listed as not restartable (each step's ``needs_recreate``) and never touched; every step
    needs an approval by someone other than the restart's author (unless the cluster allows it),
    or is approved at once on an auto-approve cluster. ``NotPermitted`` without
    ``rollouts.operate_rollout``; ``RolloutError`` when the cluster does not serve the revision,
    a restart of the SidecarSet is already active in the cluster, or nothing is restartable.
    """
    source = get_rollout(rollout_id)
    refusal = operate_refusal(actor, source) if actor is not None else None
    if refusal is not None:
        raise NotPermitted(refusal)
    _check_source(source)
    active = Rollout.objects.filter(
        sidecarset_id=source.live_sidecarset_id,
        cluster_id=source.live_cluster_id,
        kind=RolloutKind.RESTART,
        state__in=ACTIVE_ROLLOUT_STATES,
    ).first()
    if active is not None:
        raise RolloutError(
            f"restart {active.pk} of {source.sidecarset_name} in this cluster is still {active.state}"
        )
    grouping = _grouping(source, kube or cached_kube_client(source.live_cluster))
    planned = _planned(grouping, steps)
    if not planned:
        raise RolloutError(
            f"nothing to restart: {len(grouping.not_restartable)} pods need recreate and none is owned by a "
            "Deployment, StatefulSet or DaemonSet"
        )
    at_once, deadline = restart_settings()
    not_restartable = [item.as_dict() for item in grouping.not_restartable]
    text = f"restart of the workloads of rollout {source.pk} by {actor_name(actor)}" + (
        f": {reason}" if reason else ""
    )
    user: Any = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    with transaction.atomic():
        restart = Rollout.objects.create(
            sidecarset_id=source.sidecarset_id,
            sidecarset_name=source.sidecarset_name,
            cluster_id=source.cluster_id,
            cluster_name=source.cluster_name,
            kind=RolloutKind.RESTART,
            restart_of=source,
            from_revision_id=source.from_revision_id,
            to_revision_id=source.to_revision_id,
            from_revision_number=source.from_revision_number,
            to_revision_number=source.to_revision_number,
            to_revision_hash=source.to_revision_hash,
            wave=source.wave,
            in_place=False,
            author=user,
            author_name=actor_name(actor),
            reason=text[:300],
            steps=[target for target, _groups in planned],
            max_unavailable=source.max_unavailable,
            failure_threshold=0,
            approval_ttl_seconds=source.approval_ttl_seconds,
            workloads_at_once=at_once,
            workload_deadline_seconds=deadline,
        )
        RolloutStep.objects.bulk_create(
            RolloutStep(
                rollout=restart,
                ordinal=position + 1,
                target=target,
                workloads=[group.as_dict() for group in groups],
                pods=[pod.as_dict() for group in groups for pod in group.pods],
                pod_count=sum(len(group.pods) for group in groups),
                needs_recreate=not_restartable[:1000],
                needs_recreate_count=len(not_restartable),
            )
            for position, (target, groups) in enumerate(planned)
        )
        restart.transitions.create(
            from_state="",
            to_state=RolloutState.PENDING,
            actor=user,
            actor_name=actor_name(actor),
            reason=text,
            request_id=request_id[:64],
        )
        wake_cluster(source.cluster_id)
    return restart
