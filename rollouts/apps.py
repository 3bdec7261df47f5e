from django.apps import AppConfig


class RolloutsConfig(AppConfig):
    """Rollouts of new sidecar images: steps, approvals and per-pod history."""

    name = "rollouts"

    def ready(self) -> None:
        from clusters import push
        from rollouts.services import on_revision_published
        from rollouts.status import hub_status
        from sidecarhub.signals import revision_published

        revision_published.connect(on_revision_published, dispatch_uid="rollouts.on_revision_published")
        push.register_hub_status_provider(hub_status)
