from django.apps import AppConfig


class SidecarhubConfig(AppConfig):
    """SidecarSet definitions and the project-wide pieces (health, tasks)."""

    name = "sidecarhub"
    verbose_name = "SidecarSets"
