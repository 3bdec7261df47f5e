"""The ``sidecarhub`` console script (pyproject.toml): read the env file, start Django, run the
``sidecarhub`` management command with the arguments given.

The env file (``sidecarhub.envfile``; ``make run`` writes ``var/sidecarhub.env``) supplies the
service's environment and an API token, without overriding what the shell already set, so a
fresh terminal needs nothing else and ``SIDECARHUB_TOKEN=... sidecarhub ...`` acts as someone
else.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Run one CLI command; exits with the code ``sidecarhub.clitools`` lists."""
    from sidecarhub.envfile import EnvFileError, load_env_file

    try:
        load_env_file()
    except EnvFileError as exc:
        sys.stderr.write(f"sidecarhub: {exc}\n")
        sys.exit(1)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sidecarhub.settings")

    import django
    from django.core.exceptions import ImproperlyConfigured

    try:
        django.setup()
    except ImproperlyConfigured as exc:
        sys.stderr.write(
            f"sidecarhub: {exc}\n(no env file found: start the hub with `make run`, which writes "
            "var/sidecarhub.env, or set SIDECARHUB_ENV_FILE)\n"
        )
        sys.exit(1)

    from sidecarhub.management.commands.sidecarhub import Command

    try:
        # prog "sidecarhub" (not "manage.py sidecarhub") in usage and error messages.
        Command().run_from_argv(["", "sidecarhub", *(sys.argv[1:] if argv is None else argv)])
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        sys.exit(130)
