"""Queue the rollouts app's Celery tasks after commit, by their registered names (STYLE P7, P8).

The services (``rollouts.services``) sit below ``rollouts.tasks``, whose periodic task calls
them (the release repair), so they do not import it: they queue through this module, which knows
only the tasks' stable names (``rollouts.tasks`` registers its tasks under these constants), as
``clusters.enqueue`` does for the clusters app. ``RolloutsConfig.ready`` imports
``rollouts.tasks`` in every process, so a send is the task's own ``.delay()`` (eager in tests).
"""

from __future__ import annotations

from django.db import transaction

from sidecarhub.celery import app

__all__ = ["RECONCILE_ALL", "RECONCILE_CLUSTER", "wake_cluster"]

# The registered task names (stable: beat schedules and queued messages refer to them).
RECONCILE_CLUSTER = "rollouts.reconcile_cluster"
RECONCILE_ALL = "rollouts.reconcile_all"


def wake_cluster(cluster_id: int) -> None:
    """After commit (at once outside a transaction): a woken reconcile of the cluster's rollouts."""
    transaction.on_commit(lambda: app.signature(RECONCILE_CLUSTER, args=(cluster_id, True)).delay())
