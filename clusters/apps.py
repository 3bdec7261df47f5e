from django.apps import AppConfig


class ClustersConfig(AppConfig):
    """Registered Kubernetes clusters, their credentials, push and admission."""

    name = "clusters"
