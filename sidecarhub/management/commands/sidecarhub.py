"""``manage.py sidecarhub <subcommand> ...``: one command, subcommands contributed by apps.

Each installed app may provide a module ``<app>/cli.py`` with ``register(subparsers)``, which
adds its subparsers and sets ``handler`` on each via ``set_defaults(handler=...)``. A handler is
``handler(args: argparse.Namespace, stdout=...) -> None``: it writes its output to ``stdout``
and reports failure by raising ``CommandError`` (message on stderr, exit code ``returncode``,
default 1). This module only discovers and dispatches.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser

__all__ = ["Command", "cli_modules"]


def cli_modules() -> list[Any]:
    """The ``<app>.cli`` modules of installed apps, in INSTALLED_APPS order."""
    modules = []
    for config in apps.get_app_configs():
        name = f"{config.name}.cli"
        if importlib.util.find_spec(name) is not None:
            modules.append(importlib.import_module(name))
    return modules


class Command(BaseCommand):
    help = "sidecarhub commands: apply and export SidecarSets, and what other apps add."

    def add_arguments(self, parser: CommandParser) -> None:
        subparsers = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
        for module in cli_modules():
            module.register(subparsers)

    def handle(self, *args: Any, **options: Any) -> None:
        handler = options.get("handler")
        if handler is None:
            raise CommandError(f"subcommand {options.get('subcommand')!r} has no handler")
        handler(argparse.Namespace(**options), stdout=self.stdout)
