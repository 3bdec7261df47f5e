from django.apps import AppConfig


class ClustersConfig(AppConfig):
    """Registered Kubernetes clusters, their credentials, push and admission."""

    name = "clusters"

    def ready(self) -> None:
        # The receivers, and the tasks: registered in every process (not only workers), so
        # that ``clusters.enqueue`` sends through the task itself (eager mode in tests).
        from clusters import receivers, tasks  # noqa: F401
        from sidecarhub.signals import revision_published, sidecarset_deleted, sidecarset_team_changed

        revision_published.connect(receivers.on_revision_published, dispatch_uid="clusters.push")
        sidecarset_deleted.connect(receivers.on_sidecarset_deleted, dispatch_uid="clusters.remove")
        sidecarset_team_changed.connect(receivers.on_sidecarset_team_changed, dispatch_uid="clusters.team")
