"""Celery tasks of the clusters app. Thin: each takes IDs, reloads, does one bounded step
through a service, and is safe to run twice (STYLE P7, P8).

Registered under the names in ``clusters.enqueue``, through which the services queue them."""

from __future__ import annotations

import logging
import random
from typing import Any

from celery import Task

from clusters import enqueue
from clusters.drift import detect_drift
from clusters.kube import KubeError, PodListing
from clusters.models import Cluster
from clusters.push import PushOutcome, apply_revision, remove_placement, write_back_status
from clusters.services import check_cluster_health
from clusters.webhooks import WebhookNotConfigured, register_webhook
from sidecarhub.tasks import hub_task

logger = logging.getLogger(__name__)

__all__ = [
    "check_all_clusters_task",
    "check_cluster_health_task",
    "push_revision_task",
    "refresh_all_cluster_statuses_task",
    "refresh_cluster_status_task",
    "register_webhook_task",
    "remove_placement_task",
]

# Push retries: 2, 4, 8 ... seconds (capped), with jitter; after that the periodic status refresh
# re-queues failed placements (SIDECARHUB_PUSH_REQUEUE_SECONDS).
PUSH_MAX_RETRIES = 10
PUSH_BACKOFF_BASE_SECONDS = 2.0
PUSH_BACKOFF_MAX_SECONDS = 120.0


def _backoff_seconds(retries: int) -> float:
    delay = min(PUSH_BACKOFF_MAX_SECONDS, PUSH_BACKOFF_BASE_SECONDS * (2**retries))
    return delay * (0.75 + random.random() / 2)


@hub_task(enqueue.CHECK_CLUSTER_HEALTH)
def check_cluster_health_task(cluster_id: int) -> None:
    """Check one cluster's reachability and version (one ``/version`` call)."""
    check_cluster_health(cluster_id)


@hub_task(enqueue.CHECK_ALL_CLUSTERS)
def check_all_clusters_task() -> None:
    """Beat entry: fan out one health check per registered cluster."""
    for cluster_id in Cluster.objects.values_list("pk", flat=True):
        check_cluster_health_task.delay(cluster_id)


@hub_task(enqueue.PUSH_REVISION, bind=True, max_retries=PUSH_MAX_RETRIES)
def push_revision_task(self: Task, revision_id: int, cluster_id: int) -> str:
    """Apply one revision to one cluster; on failure the placement is marked failed (with the
    error) and the task retries with exponential backoff."""
    outcome = apply_revision(revision_id, cluster_id)
    if outcome == PushOutcome.FAILED and self.request.retries < PUSH_MAX_RETRIES:
        raise self.retry(countdown=_backoff_seconds(self.request.retries))
    return str(outcome)


@hub_task(enqueue.REMOVE_PLACEMENT, bind=True, max_retries=PUSH_MAX_RETRIES)
def remove_placement_task(self: Task, placement_id: int) -> str:
    """Delete one SidecarSet's resource from one cluster; retried with backoff on failure."""
    outcome = remove_placement(placement_id)
    if outcome == PushOutcome.FAILED and self.request.retries < PUSH_MAX_RETRIES:
        raise self.retry(countdown=_backoff_seconds(self.request.retries))
    return str(outcome)


@hub_task(enqueue.REFRESH_CLUSTER_STATUS)
def refresh_cluster_status_task(cluster_id: int) -> dict[str, Any]:
    """Status write-back for one cluster, then drift detection (issue 5 §4), from one pod list."""
    cluster = Cluster.objects.filter(pk=cluster_id).first()
    listing = PodListing(cluster) if cluster is not None else None
    result = write_back_status(cluster_id, listing)
    # --- drift (clusters.drift): pods lacking an active SidecarSet's injection ---
    drift = detect_drift(cluster_id, listing)
    return {
        "statuses_written": result.statuses_written,
        "requeued": result.requeued,
        "error": result.error,
        "drifted_pods": drift.drifted,
        "drift_error": drift.error,
    }


@hub_task(enqueue.REFRESH_ALL_CLUSTER_STATUSES)
def refresh_all_cluster_statuses_task() -> None:
    """Beat entry: fan out one status refresh per cluster that has placements."""
    ids = Cluster.objects.filter(placements__isnull=False).values_list("pk", flat=True).distinct()
    for cluster_id in ids:
        refresh_cluster_status_task.delay(cluster_id)


# --- admission webhook registration (clusters.webhooks) -------------------------------------


@hub_task(enqueue.REGISTER_WEBHOOK, bind=True, max_retries=PUSH_MAX_RETRIES)
def register_webhook_task(self: Task, cluster_id: int) -> str:
    """Apply the hub's MutatingWebhookConfiguration to one cluster; retried with backoff while
    the cluster is unreachable. A cluster without a webhook URL is logged, not retried."""
    try:
        registration = register_webhook(cluster_id)
    except Cluster.DoesNotExist:
        return "skipped"
    except WebhookNotConfigured as exc:
        logger.info("register webhook: %s", exc)
        return "not configured"
    except KubeError:
        if self.request.retries < PUSH_MAX_RETRIES:
            raise self.retry(countdown=_backoff_seconds(self.request.retries)) from None
        raise
    return registration.url
