from django.apps import AppConfig


class RolloutsConfig(AppConfig):
    """Rollouts of new sidecar images: steps, approvals and per-pod history."""

    name = "rollouts"
