"""Queue the clusters app's Celery tasks after commit, by their registered names (STYLE P7, P8).

The services (``clusters.services``, ``clusters.push``) sit below ``clusters.tasks``, whose tasks
call them, so they do not import it: they queue through this module, which knows only the
tasks' stable names (``clusters.tasks`` registers its tasks under these constants). Every
function registers the send with ``transaction.on_commit`` and passes IDs only.

The send is ``app.signature(name).delay()``: where the task is registered (every process with
Django set up: ``ClustersConfig.ready`` imports ``clusters.tasks``) that is exactly the task's
own ``.delay()`` (its options; eager mode in tests); elsewhere the message is sent by name.
"""

from __future__ import annotations

from django.db import transaction

from sidecarhub.celery import app

__all__ = [
    "CHECK_ALL_CLUSTERS",
    "CHECK_CLUSTER_HEALTH",
    "PUSH_REVISION",
    "REFRESH_ALL_CLUSTER_STATUSES",
    "REFRESH_CLUSTER_STATUS",
    "REGISTER_WEBHOOK",
    "REMOVE_PLACEMENT",
    "health_check",
    "push",
    "removal",
    "send",
    "webhook_registration",
]

# The registered task names (stable: beat schedules and queued messages refer to them).
CHECK_CLUSTER_HEALTH = "clusters.check_cluster_health"
CHECK_ALL_CLUSTERS = "clusters.check_all_clusters"
PUSH_REVISION = "clusters.push_revision"
REMOVE_PLACEMENT = "clusters.remove_placement"
REFRESH_CLUSTER_STATUS = "clusters.refresh_cluster_status"
REFRESH_ALL_CLUSTER_STATUSES = "clusters.refresh_all_cluster_statuses"
REGISTER_WEBHOOK = "clusters.register_webhook"


def send(name: str, *args: int) -> None:
    """Queue the task registered as ``name`` with ``args`` now (callers wrap it in on_commit)."""
    app.signature(name, args=args).delay()


def health_check(cluster_id: int) -> None:
    """After commit: check the cluster's reachability and version."""
    transaction.on_commit(lambda: send(CHECK_CLUSTER_HEALTH, cluster_id))


def push(revision_id: int, cluster_id: int) -> None:
    """After commit: apply the revision's custom resource to the cluster."""
    transaction.on_commit(lambda: send(PUSH_REVISION, revision_id, cluster_id))


def removal(placement_id: int) -> None:
    """After commit: delete the placement's custom resource from its cluster."""
    transaction.on_commit(lambda: send(REMOVE_PLACEMENT, placement_id))


def webhook_registration(cluster_id: int) -> None:
    """After commit: apply the hub's admission webhook configuration to the cluster."""
    transaction.on_commit(lambda: send(REGISTER_WEBHOOK, cluster_id))
