from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class SidecarhubConfig(AppConfig):
    """SidecarSet definitions and the project-wide pieces (health, tasks)."""

    name = "sidecarhub"
    verbose_name = "SidecarSets"


class ConsoleAdminConfig(admin_apps.AdminConfig):
    """``django.contrib.admin`` with the console's site (home dashboard first; ``sidecarhub.console``)."""

    default = False  # named in INSTALLED_APPS; SidecarhubConfig stays this module's default
    default_site = "sidecarhub.console.ConsoleSite"
