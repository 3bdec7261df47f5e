from django.apps import AppConfig


class RolloutsConfig(AppConfig):
    """Rollouts of new sidecar images: steps, approvals and per-pod history."""

    name = "rollouts"

    def ready(self) -> None:
        # The tasks: registered in every process (not only workers), so that
        # ``rollouts.enqueue`` sends through the task itself (eager mode in tests).
        from django.db.models.signals import pre_delete

        from clusters import push
        from clusters.models import Cluster
        from rollouts import tasks  # noqa: F401
        from rollouts.receivers import on_cluster_deleting, on_sidecarset_deleting
        from rollouts.services import on_revision_published
        from rollouts.status import hub_status
        from sidecarhub.models import SidecarSet
        from sidecarhub.signals import revision_published

        revision_published.connect(on_revision_published, dispatch_uid="rollouts.on_revision_published")
        push.register_hub_status_provider(hub_status)
        # The ledger outlives clusters and SidecarSets: their active rollouts end first.
        pre_delete.connect(on_cluster_deleting, sender=Cluster, dispatch_uid="rollouts.cluster_deleting")
        pre_delete.connect(
            on_sidecarset_deleting, sender=SidecarSet, dispatch_uid="rollouts.sidecarset_deleting"
        )
