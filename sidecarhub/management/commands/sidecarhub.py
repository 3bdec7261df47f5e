"""The ``sidecarhub`` CLI: one command, subcommands contributed by apps.

Run it as ``sidecarhub ...`` (the console script, ``sidecarhub.cli_main``: it first reads the
env file ``make run`` writes) or, with the service's environment already set, as
``manage.py sidecarhub ...``: the same parser and the same handlers.

Each installed app may provide a module ``<app>/cli.py`` with ``register(subparsers)``, which
adds its subparsers and sets on each, via ``set_defaults``:

- ``handler(args: argparse.Namespace, stdout=...) -> None``: writes its output to ``stdout``
  and reports failure by raising ``CommandError`` (message on stderr, exit code ``returncode``;
  the codes are listed in ``sidecarhub/clitools.py``);
- ``permissions``: the permissions the verb needs, the same as the API action it mirrors
  (``clitools.api_permissions``). A verb without them is refused (deny by default, like the API).

Before a handler runs, the dispatcher authenticates the person acting by their API token
(``SIDECARHUB_TOKEN``) and checks ``permissions``; the handler finds the user in ``args.user``
and passes it as ``actor`` to the services, which make their own checks (four eyes, teams).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sidecarhub.clitools import authenticated_user, require

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
    help = "sidecarhub: SidecarSets, targets, clusters, releases, rollouts and tokens, as a user."
    # The services check what they need; Django's system checks belong to the server's start.
    requires_system_checks: list[str] = []

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.prog = parser.prog.strip()  # the console script passes no program name
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        subparsers = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
        for module in cli_modules():
            module.register(subparsers)

    def handle(self, *args: Any, **options: Any) -> None:
        handler = options.get("handler")
        permissions = options.get("permissions")
        if handler is None or permissions is None:
            raise CommandError(f"subcommand {options.get('subcommand')!r} has no handler or permissions")
        user = authenticated_user()
        require(user, permissions)
        handler(argparse.Namespace(**options, user=user), stdout=self.stdout)
