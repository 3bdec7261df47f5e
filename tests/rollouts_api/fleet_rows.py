"""Rows for the fleet view tests, written directly (no services, no signals, no Kubernetes):
a SidecarSet with revisions, clusters with targets and placements, rollouts with steps."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from clusters.models import Cluster, DriftedPod, SidecarSetPlacement, SidecarSetTarget
from rollouts.choices import RolloutKind, RolloutState, StepState
from rollouts.models import Rollout, RolloutStep
from sidecarhub.models import SidecarSet, SidecarSetRevision
from tests.rollouts_api.conftest import document, make_cluster

__all__ = ["add_drift", "add_rollout", "make_sidecarset", "place"]


def make_sidecarset(name: str, revisions: int) -> SidecarSet:
    """A SidecarSet with revisions 1..``revisions``, the last one current."""
    spec = document(name, "log-agent:1")["spec"]
    sidecarset = SidecarSet.objects.create(name=name, spec=spec)
    revision = None
    for number in range(1, revisions + 1):
        revision = SidecarSetRevision.objects.create(
            sidecarset=sidecarset,
            number=number,
            name=f"{name}-{number}",
            revision_hash=f"hash-{name}-{number}",
            hash_without_images=f"plain-{name}",
            document=document(name, f"log-agent:{number}"),
            author_name="author",
        )
    SidecarSet.objects.filter(pk=sidecarset.pk).update(current_revision=revision)
    return SidecarSet.objects.select_related("current_revision").get(pk=sidecarset.pk)


def revision(sidecarset: SidecarSet, number: int) -> SidecarSetRevision:
    return SidecarSetRevision.objects.get(sidecarset=sidecarset, number=number)


def place(
    sidecarset: SidecarSet,
    cluster_name: str,
    *,
    wave: int = 0,
    serving: int | None = None,
    target: bool = True,
    placed: bool = True,
    pods: tuple[int, int, int] | None = None,
    **cluster_fields: Any,
) -> Cluster:
    """A cluster targeted by ``sidecarset`` in ``wave`` (``target``) with a placement serving
    revision ``serving`` (``placed``) and (matched, updated, ready) ``pods``."""
    cluster = Cluster.objects.filter(name=cluster_name).first()
    if cluster is None:
        cluster = make_cluster(cluster_name, **cluster_fields)
    if target:
        SidecarSetTarget.objects.create(sidecarset=sidecarset, cluster=cluster, wave=wave)
    if placed:
        matched, updated, ready = pods if pods is not None else (None, None, None)
        SidecarSetPlacement.objects.create(
            sidecarset=sidecarset,
            sidecarset_name=sidecarset.name,
            cluster=cluster,
            wave=wave,
            serving_revision=revision(sidecarset, serving) if serving is not None else None,
            serving_since=timezone.now() - timedelta(hours=1) if serving is not None else None,
            matched_pods=matched,
            updated_pods=updated,
            ready_pods=ready,
            status_observed_at=timezone.now() if pods is not None else None,
        )
    return cluster


def add_rollout(
    sidecarset: SidecarSet,
    cluster: Cluster,
    *,
    to: int,
    source: int | None = None,
    wave: int = 0,
    state: str = RolloutState.PENDING,
    steps: tuple[tuple[str, int], ...] = ((StepState.PENDING, 0),),
    in_place: bool = True,
    kind: str = RolloutKind.UPDATE,
    rollback_of: Rollout | None = None,
    reason: str = "",
    minutes_ago: int = 0,
) -> Rollout:
    """A rollout from ``source`` (default ``to - 1``) to ``to`` with ``steps`` as (state,
    needs_recreate_count), created ``minutes_ago``."""
    source = to - 1 if source is None else source
    rollout = Rollout.objects.create(
        sidecarset=sidecarset,
        sidecarset_name=sidecarset.name,
        cluster=cluster,
        cluster_name=cluster.name,
        kind=kind,
        rollback_of=rollback_of,
        from_revision=revision(sidecarset, source) if source else None,
        to_revision=revision(sidecarset, to),
        from_revision_number=source or None,
        to_revision_number=to,
        to_revision_hash=f"hash-{sidecarset.name}-{to}",
        wave=wave,
        in_place=in_place,
        author_name="author",
        state=state,
        reason=reason,
        steps=["1", "100%"][: len(steps)],
        max_unavailable="1",
        # As the reconciler completes it: the pods its steps left needing recreate.
        needs_recreate=max((count for _, count in steps), default=0)
        if state == RolloutState.COMPLETED
        else 0,
    )
    if minutes_ago:
        created = timezone.now() - timedelta(minutes=minutes_ago)
        Rollout.objects.filter(pk=rollout.pk).update(created_at=created)
    for ordinal, (step_state, needs_recreate) in enumerate(steps, start=1):
        RolloutStep.objects.create(
            rollout=rollout,
            ordinal=ordinal,
            target=str(ordinal),
            state=step_state,
            needs_recreate_count=needs_recreate,
        )
    return Rollout.objects.get(pk=rollout.pk)


def add_drift(cluster: Cluster, *missing: str, count: int = 1) -> None:
    now = timezone.now()
    start = DriftedPod.objects.filter(cluster=cluster).count()
    for index in range(start, start + count):
        DriftedPod.objects.create(
            cluster=cluster,
            namespace="shop",
            pod_name=f"orphan-{index}",
            pod_uid=f"{cluster.name}-orphan-{index}",
            missing_sidecarsets=sorted(missing),
            first_seen_at=now,
            last_seen_at=now,
        )
