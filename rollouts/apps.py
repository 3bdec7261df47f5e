from django.apps import AppConfig


class RolloutsConfig(AppConfig):
    """Rollouts of new sidecar images: steps, approvals and per-pod history."""

    name = "rollouts"

    def ready(self) -> None:
        # The tasks: registered in every process (not only workers), so that
        # ``rollouts.enqueue`` sends through the task itself (eager mode in tests).
        from clusters import push
        from rollouts import tasks  # noqa: F401
        from rollouts.services import on_revision_published
        from rollouts.status import hub_status
        from sidecarhub.signals import revision_published

        revision_published.connect(on_revision_published, dispatch_uid="rollouts.on_revision_published")
        push.register_hub_status_provider(hub_status)
