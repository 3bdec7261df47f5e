"""``manage.py cluster add|list|check|rotate-key`` (the same verbs as ``manage.py sidecarhub cluster``)."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from clusters.cli import add_cluster_commands


class Command(BaseCommand):
    help = "Registered Kubernetes clusters: add from a kubeconfig, list, check, rotate the encryption key."

    def add_arguments(self, parser: CommandParser) -> None:
        add_cluster_commands(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        namespace = argparse.Namespace(**options)
        options["handler"](namespace, stdout=self.stdout)
