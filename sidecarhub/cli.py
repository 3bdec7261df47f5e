"""The SidecarSet and token verbs of the ``sidecarhub`` CLI (the registry, the dispatcher and
how a verb learns who is acting are in ``sidecarhub/management/commands/sidecarhub.py``).

- ``sidecarset list``: every SidecarSet with its current revision and whether it has
  unpublished changes;
- ``sidecarset get NAME [--version v1alpha1|v1beta1] [--revision N]``: Kruise YAML (the draft,
  or a published revision), which ``apply`` takes back;
- ``sidecarset apply -f FILE [--owner-team TEAM] [-m MESSAGE]``: kubectl-like create-or-update
  of every document in FILE (``-`` for stdin), all or nothing, printing ``sidecarset/<name>
  created | configured | unchanged`` and the changed fields; on any error, exit code 1 and
  every error with its document index, line and field path. Nothing is published;
- ``sidecarset diff NAME [--from N] [--to N]``: the unpublished draft against the current
  revision (or two revisions), as a unified YAML diff with the kind of change;
- ``sidecarset publish NAME [-m MESSAGE]``: a new immutable revision; its release starts;
- ``token create USER [--rotate]``: issue USER's API token and print it (the only time it is
  shown).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from django.core.management.base import CommandError

from sidecarhub import services
from sidecarhub.api.views import SidecarSetViewSet
from sidecarhub.choices import ApplyOutcome, KruiseVersion
from sidecarhub.clitools import (
    EXIT_CONFLICT,
    EXIT_NOT_FOUND,
    EXIT_NOT_PERMITTED,
    api_permissions,
    output,
    write_table,
)
from sidecarhub.middleware import cli_request_id
from sidecarhub.models import SidecarSet
from sidecarhub.services import DefinitionError, ImportInvalid, NothingToPublish
from sidecarhub.tokens import ISSUE_PERMISSIONS, TokenError, TokenNotPermitted, issue_token

__all__ = ["register"]


def _read(filename: str) -> bytes:
    if filename == "-":
        return sys.stdin.buffer.read()
    with open(filename, "rb") as handle:
        return handle.read()


def _definition_error(exc: DefinitionError) -> CommandError:
    code = EXIT_CONFLICT if isinstance(exc, NothingToPublish) else EXIT_NOT_FOUND
    return CommandError(str(exc), returncode=code)


def handle_list(args: argparse.Namespace, stdout: Any = None) -> None:
    """One line per SidecarSet: current revision, version of the draft (the API's ``version``),
    whether the draft has unpublished changes, owner."""
    rows = [("NAME", "REVISION", "VERSION", "UNPUBLISHED", "OWNER", "UPDATED")]
    for sidecarset in SidecarSet.objects.for_display().order_by("name"):
        current = sidecarset.current_revision
        rows.append(
            (
                sidecarset.name,
                f"#{current.number}" if current is not None else "-",
                str(sidecarset.version),
                "yes" if sidecarset.has_unpublished_changes else "no",
                str(sidecarset.owner_team or "-"),
                f"{sidecarset.updated_at:%Y-%m-%d %H:%M}",
            )
        )
    out = output(stdout)
    if len(rows) == 1:
        out.write("no SidecarSets yet (`sidecarhub sidecarset apply -f FILE` creates them)\n")
        return
    write_table(rows, out)


def handle_get(args: argparse.Namespace, stdout: Any = None) -> None:
    """Print the SidecarSet (or one revision) as Kruise YAML of the requested version."""
    try:
        text = services.export_sidecarset(args.name, args.kruise_version, revision_number=args.revision)
    except DefinitionError as exc:
        raise _definition_error(exc) from None
    output(stdout).write(text)


def handle_apply(args: argparse.Namespace, stdout: Any = None) -> None:
    """Apply every document of ``args.filename``; raise ``CommandError`` listing every problem."""
    try:
        text = _read(args.filename)
    except OSError as exc:
        raise CommandError(f"cannot read {args.filename}: {exc.strerror or exc}") from exc
    try:
        results = services.import_documents(
            text,
            actor=args.user,
            request_id=cli_request_id(),
            owner_team=args.owner_team,
            message=args.message,
        )
    except ImportInvalid as exc:
        lines = [f"{len(exc.errors)} error(s); nothing was applied", *(f"  {error}" for error in exc.errors)]
        raise CommandError("\n".join(lines)) from exc
    out = output(stdout)
    for result in results:
        out.write(f"sidecarset/{result.name} {result.outcome}\n")
        if result.outcome == ApplyOutcome.CONFIGURED:
            for changed in result.changed_paths:
                out.write(f"  ~ {changed}\n")


def handle_diff(args: argparse.Namespace, stdout: Any = None) -> None:
    """The draft against the current revision, or ``--from``/``--to`` two revisions."""
    try:
        if args.from_number is None and args.to_number is None:
            diff = services.diff_unpublished(args.name)
        else:
            if args.from_number is None or args.to_number is None:
                raise CommandError("--from and --to go together (neither: the unpublished draft)")
            diff = services.diff_revisions(args.name, args.from_number, args.to_number)
    except DefinitionError as exc:
        raise _definition_error(exc) from None
    out = output(stdout)
    if not diff.unified_diff:
        out.write("no differences\n")
        return
    out.write(diff.unified_diff)
    out.write(f"change kind: {diff.change_kind}\n")


def handle_publish(args: argparse.Namespace, stdout: Any = None) -> None:
    """Publish the draft as a new revision; say where its release can be followed."""
    try:
        revision = services.publish_sidecarset(
            args.name, actor=args.user, request_id=cli_request_id(), message=args.message
        )
    except DefinitionError as exc:
        raise _definition_error(exc) from None
    output(stdout).write(
        f"sidecarset/{args.name} published as revision {revision.number}; "
        f"follow its release: sidecarhub release status {args.name} --watch\n"
    )


def handle_token_create(args: argparse.Namespace, stdout: Any = None) -> None:
    """Issue a user's API token and print it once (``--rotate`` replaces an existing one)."""
    try:
        key = issue_token(args.username, actor=args.user, rotate=args.rotate, request_id=cli_request_id())
    except TokenNotPermitted as exc:
        raise CommandError(f"not permitted: {exc}", returncode=EXIT_NOT_PERMITTED) from None
    except TokenError as exc:
        raise CommandError(str(exc), returncode=EXIT_NOT_FOUND) from None
    out = output(stdout)
    out.write(f"{key}\n")
    if getattr(out, "isatty", lambda: False)():
        out.write(
            f"(the API token of {args.username}: shown only now. Use it as SIDECARHUB_TOKEN for the CLI, "
            "or as `Authorization: Token ...` for the API)\n"
        )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``sidecarset`` and ``token`` to the ``sidecarhub`` command."""
    viewset = SidecarSetViewSet
    parser = subparsers.add_parser(
        "sidecarset",
        help="SidecarSet definitions: list, get, apply, diff, publish",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="sidecarset_command", metavar="{list,get,apply,diff,publish}")
    sub.required = True

    listing = sub.add_parser("list", help="every SidecarSet with its current revision")
    listing.set_defaults(handler=handle_list, permissions=api_permissions(viewset, "list"))

    get = sub.add_parser("get", help="a SidecarSet (or one revision) as Kruise YAML")
    get.add_argument("name")
    get.add_argument(
        "--version", dest="kruise_version", choices=KruiseVersion.values, default=KruiseVersion.V1BETA1.value
    )
    get.add_argument("--revision", type=int, help="this published revision instead of the draft")
    get.set_defaults(handler=handle_get, permissions=api_permissions(viewset, "export"))

    apply_parser = sub.add_parser("apply", help="create or update SidecarSets from a Kruise YAML file")
    apply_parser.add_argument(
        "-f", "--filename", required=True, help="YAML file with one or more documents; - for stdin"
    )
    apply_parser.add_argument("--owner-team", default="", help="owner team of SidecarSets this creates")
    apply_parser.add_argument("-m", "--message", default="", help="change-log message")
    apply_parser.set_defaults(handler=handle_apply, permissions=api_permissions(viewset, "import_documents"))

    diff = sub.add_parser("diff", help="the unpublished draft against the current revision, or two revisions")
    diff.add_argument("name")
    diff.add_argument("--from", dest="from_number", type=int, help="older revision")
    diff.add_argument("--to", dest="to_number", type=int, help="newer revision")
    diff.set_defaults(handler=handle_diff, permissions=api_permissions(viewset, "diff"))

    publish = sub.add_parser("publish", help="publish the draft as a new revision (its release starts)")
    publish.add_argument("name")
    publish.add_argument("-m", "--message", default="", help="why (recorded with the revision)")
    publish.set_defaults(handler=handle_publish, permissions=api_permissions(viewset, "publish"))

    token = subparsers.add_parser("token", help="API tokens (for the CLI and the REST API)")
    token_sub = token.add_subparsers(dest="token_command", metavar="{create}")
    token_sub.required = True
    create = token_sub.add_parser("create", help="issue a user's API token and print it (only this once)")
    create.add_argument("username")
    create.add_argument("--rotate", action="store_true", help="replace the user's token (the old one stops)")
    create.set_defaults(handler=handle_token_create, permissions=ISSUE_PERMISSIONS)
