"""Drift: pods that match SidecarSets active in their cluster but lack their injection (issue 5 §4).

``detect_drift(cluster_id)`` lists the cluster's pods and namespaces once, asks the core
(``missing_injections``: decision 6 exclusions, paused, both selectors, canary bases) which
active SidecarSets each pod lacks, and stores the answer as ``DriftedPod`` rows through
``record_drift``. "Active" is the admission webhook's own rule (``clusters.admission.
load_active_candidates``: SidecarSets targeting the cluster, at their current revision), so
drift and injection never disagree about what a pod should have.

Pods created while the hub was unreachable (failurePolicy Ignore) or before a SidecarSet was
published show up here; the hub does not fix them (Kubernetes cannot add containers to a running
pod): recreating them through their workload does. Bounded: one pod list, one namespace list,
shared with the status write-back of the same status refresh (``clusters.kube.PodListing``).
Run by the periodic status refresh task (``clusters.refresh_cluster_status``) after the status
write-back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from clusters.admission import load_active_candidates
from clusters.kube import KubeError, PodListing
from clusters.models import Cluster, DriftedPod
from sidecarhub.sidecarset import SidecarSet, missing_injections

__all__ = ["DriftResult", "PodDrift", "detect_drift", "find_drift", "record_drift"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PodDrift:
    """One drifted pod: where it is and which SidecarSets it lacks (sorted names)."""

    namespace: str
    name: str
    uid: str
    missing: tuple[str, ...]
    created_at: datetime | None


@dataclass
class DriftResult:
    """What one drift round found for one cluster (``error`` when the cluster was unreadable)."""

    cluster_id: int
    drifted: int = 0
    checked_pods: int = 0
    error: str = ""


def find_drift(
    pods: Iterable[Mapping[str, Any]],
    namespace_labels: Mapping[str, Mapping[str, str]],
    sidecarsets: list[SidecarSet],
) -> list[PodDrift]:
    """Pure: the drifted pods among ``pods`` (plain JSON) for the active ``sidecarsets``."""
    found: list[PodDrift] = []
    for pod in pods:
        metadata = pod.get("metadata") or {}
        namespace = str(metadata.get("namespace") or "")
        missing = missing_injections(pod, namespace_labels.get(namespace), sidecarsets)
        if missing:
            created = metadata.get("creationTimestamp")
            found.append(
                PodDrift(
                    namespace=namespace,
                    name=str(metadata.get("name") or ""),
                    uid=str(metadata.get("uid") or f"{namespace}/{metadata.get('name')}"),
                    missing=tuple(missing),
                    created_at=parse_datetime(created) if isinstance(created, str) else None,
                )
            )
    return found


@transaction.atomic
def record_drift(cluster_id: int, drifted: list[PodDrift]) -> None:
    """Replace the cluster's ``DriftedPod`` rows with ``drifted`` (keeping ``first_seen_at``)."""
    now = timezone.now()
    existing = {
        row.pod_uid: row for row in DriftedPod.objects.select_for_update().filter(cluster_id=cluster_id)
    }
    seen = {item.uid for item in drifted}
    DriftedPod.objects.filter(cluster_id=cluster_id).exclude(pod_uid__in=seen).delete()
    for item in drifted:
        row = existing.get(item.uid)
        if row is None:
            DriftedPod.objects.create(
                cluster_id=cluster_id,
                namespace=item.namespace,
                pod_name=item.name,
                pod_uid=item.uid,
                missing_sidecarsets=list(item.missing),
                pod_created_at=item.created_at,
                first_seen_at=now,
                last_seen_at=now,
            )
        else:
            DriftedPod.objects.filter(pk=row.pk).update(
                missing_sidecarsets=list(item.missing), last_seen_at=now
            )


def detect_drift(cluster_id: int, listing: PodListing | None = None) -> DriftResult:
    """One drift round for one cluster (see the module docstring); ``listing``: the pods and
    namespaces the status write-back already listed. Safe to run repeatedly."""
    result = DriftResult(cluster_id)
    cluster = Cluster.objects.filter(pk=cluster_id).first()
    if cluster is None:
        return result
    listing = listing or PodListing(cluster)
    candidates, _ = load_active_candidates(cluster)
    sidecarsets = [candidate.latest.sidecarset for candidate in candidates]
    if not sidecarsets:
        record_drift(cluster_id, [])
        return result
    try:
        pods, namespace_labels = listing.pods, listing.namespace_labels
    except KubeError as exc:
        result.error = str(exc)
        log.warning("drift: %s", exc)
        return result  # keep the last known drift rather than clearing it
    drifted = find_drift(pods, namespace_labels, sidecarsets)
    record_drift(cluster_id, drifted)
    result.drifted = len(drifted)
    result.checked_pods = len(pods)
    return result
