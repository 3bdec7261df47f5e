"""The SidecarSet subcommands of ``manage.py sidecarhub`` (the registry and the handler
convention are described in ``sidecarhub/management/commands/sidecarhub.py``).

``apply -f FILE [--actor USER] [--owner-team TEAM]``: kubectl-like create-or-update of every
document in FILE (``-`` for stdin), all or nothing, printing ``sidecarset/<name> created |
configured | unchanged`` and the changed fields; on any error, exit code 1 and every error with
its document index, line and field path. ``export NAME [--version v1alpha1|v1beta1]
[--revision N]`` prints Kruise YAML.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import CommandError

from sidecarhub import services
from sidecarhub.choices import ApplyOutcome, KruiseVersion
from sidecarhub.middleware import cli_request_id
from sidecarhub.services import DefinitionError, ImportInvalid, SidecarSetInvalid

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``apply`` and ``export`` to the ``sidecarhub`` command."""
    apply_parser = subparsers.add_parser("apply", help="create or update SidecarSets from a Kruise YAML file")
    apply_parser.add_argument(
        "-f", "--filename", required=True, help="YAML file with one or more documents; - for stdin"
    )
    apply_parser.add_argument("--actor", help="username recorded as the author (default: system)")
    apply_parser.add_argument(
        "--owner-team",
        default="",
        help="name of the team (an existing Team) owning the SidecarSets this creates",
    )
    apply_parser.add_argument("-m", "--message", default="", help="change-log message")
    apply_parser.set_defaults(handler=handle_apply)

    export_parser = subparsers.add_parser("export", help="print a SidecarSet as Kruise YAML")
    export_parser.add_argument("name")
    export_parser.add_argument(
        "--version", dest="kruise_version", choices=KruiseVersion.values, default=KruiseVersion.V1BETA1.value
    )
    export_parser.add_argument("--revision", type=int, help="export this published revision instead")
    export_parser.set_defaults(handler=handle_export)


def _out(stdout: Any) -> Any:
    return stdout if stdout is not None else sys.stdout


def _read(filename: str) -> bytes:
    if filename == "-":
        return sys.stdin.buffer.read()
    with open(filename, "rb") as handle:
        return handle.read()


def handle_apply(args: argparse.Namespace, stdout: Any = None) -> None:
    """Apply every document of ``args.filename``; raise ``CommandError`` listing every problem."""
    actor = None
    if args.actor:
        user_model = get_user_model()
        actor = user_model.objects.filter(**{user_model.USERNAME_FIELD: args.actor}).first()
        if actor is None:
            raise CommandError(f"no user named {args.actor!r}")
    try:
        text = _read(args.filename)
    except OSError as exc:
        raise CommandError(f"cannot read {args.filename}: {exc.strerror or exc}") from exc
    try:
        results = services.import_documents(
            text,
            actor=actor,
            request_id=cli_request_id(),
            owner_team=args.owner_team,
            message=args.message,
        )
    except ImportInvalid as exc:
        lines = [f"{len(exc.errors)} error(s); nothing was applied", *(f"  {error}" for error in exc.errors)]
        raise CommandError("\n".join(lines)) from exc
    except (SidecarSetInvalid, PermissionDenied) as exc:  # an unknown --owner-team; a team rule
        raise CommandError(str(exc)) from exc
    out = _out(stdout)
    for result in results:
        out.write(f"sidecarset/{result.name} {result.outcome}\n")
        if result.outcome == ApplyOutcome.CONFIGURED:
            for changed in result.changed_paths:
                out.write(f"  ~ {changed}\n")


def handle_export(args: argparse.Namespace, stdout: Any = None) -> None:
    """Print the SidecarSet (or one revision) as Kruise YAML of the requested version."""
    try:
        text = services.export_sidecarset(args.name, args.kruise_version, revision_number=args.revision)
    except DefinitionError as exc:
        raise CommandError(str(exc)) from exc
    _out(stdout).write(text)
