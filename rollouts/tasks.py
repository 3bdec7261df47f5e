"""Celery tasks of the rollouts app. Thin: each takes IDs and runs one bounded reconcile
(STYLE P7, P8, P9); the reconciler is single-flight per cluster, so duplicates are harmless.

Registered under the names in ``rollouts.enqueue``, through which the services queue them."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db.models import Q

from rollouts import enqueue
from rollouts.choices import ACTIVE_ROLLOUT_STATES, OPEN_POD_UPDATE_STATES
from rollouts.models import Rollout
from rollouts.reconciler import reconcile_cluster
from rollouts.services import create_missing_releases
from sidecarhub.tasks import hub_task

__all__ = ["reconcile_all_rollouts_task", "reconcile_rollouts_task"]

log = logging.getLogger(__name__)


@hub_task(enqueue.RECONCILE_CLUSTER)
def reconcile_rollouts_task(cluster_id: int, woken: bool = False) -> dict[str, Any]:
    """One bounded reconcile of a cluster's rollouts, then re-enqueue while work is due.

    ``woken``: queued by an event (approval, publish...). If another worker holds the cluster's
    lock, a woken task re-enqueues itself once (a second later) so the event is not lost while
    that worker finishes a pass that started before the event; unwoken duplicates just exit.
    """
    report = reconcile_cluster(cluster_id)
    for other in sorted(report.wake_clusters):  # the next wave's clusters
        reconcile_rollouts_task.delay(other, True)
    if report.locked_out:
        if woken:
            reconcile_rollouts_task.apply_async((cluster_id, False), countdown=1.0)
    elif report.more_work:
        delay = float(getattr(settings, "SIDECARHUB_ROLLOUT_REQUEUE_SECONDS", 0.2))
        reconcile_rollouts_task.apply_async((cluster_id, False), countdown=delay)
    return {
        "locked_out": report.locked_out,
        "patched": report.patched,
        "finished": report.finished,
        "transitions": report.transitions[:20],
        "more_work": report.more_work,
        "error": report.error,
        "pod_lists": report.pod_lists,
    }


@hub_task(enqueue.RECONCILE_ALL)
def reconcile_all_rollouts_task() -> None:
    """Beat entry: first create the releases the publish signal lost (``create_missing_releases``:
    this is what guarantees every publish its release; the signal is only the fast path), then
    one reconcile per cluster with an unfinished rollout or an open pod update."""
    try:
        create_missing_releases()
    except Exception:  # the reconciles below must still run; the next tick repairs again
        log.exception("the periodic release repair failed")
    cluster_ids = (
        Rollout.objects.filter(
            Q(state__in=ACTIVE_ROLLOUT_STATES) | Q(pod_updates__state__in=OPEN_POD_UPDATE_STATES)
        )
        .filter(cluster__isnull=False)  # a deleted cluster's rollouts are history
        .values_list("cluster_id", flat=True)
        .distinct()
    )
    for cluster_id in set(cluster_ids):
        reconcile_rollouts_task.delay(cluster_id, False)
