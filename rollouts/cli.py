"""``manage.py sidecarhub rollout status | approve | deny | pause | resume | abort | undo``, and
the fleet view: ``manage.py sidecarhub fleet NAME [--json]`` (every target cluster of a
SidecarSet) and ``manage.py sidecarhub releases NAME [--limit N] [--json]`` (its newest releases
by wave). ``--json`` prints exactly the API's body (``GET /api/v1/sidecarsets/{name}/fleet/``).

Every verb calls the same service as the API and the admin, as the user named by ``--actor``
(required, so the permission and four-eyes checks apply and the history names a person), with
a fresh request ID per run (``cli-`` and 12 hex digits) that its history rows record.

Exit codes: 0 done; 1 not found or bad input (unknown rollout, step or user); 3 not permitted
(permission or four-eyes rule); 4 conflict (the rollout or step is not in a state the verb
accepts: the message says which state it is in and what to do). argparse errors exit with 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.db.models import QuerySet
from django.utils import timezone

from clusters.kube import KubeError
from rollouts import fleet, restarts, services
from rollouts.api.serializers import FleetSerializer, ReleasesSerializer
from rollouts.choices import ACTIVE_ROLLOUT_STATES, RolloutKind, RolloutOutcome, StepState
from rollouts.models import Rollout, RolloutStep
from rollouts.queries import progress_of, rollouts_with_progress, steps_with_progress, text_progress_bar
from rollouts.services import NotPermitted, RolloutNotFound
from rollouts.transitions import InvalidTransition, RolloutError
from sidecarhub.middleware import cli_request_id
from sidecarhub.models import SidecarSet

__all__ = ["EXIT_CONFLICT", "EXIT_NOT_FOUND", "EXIT_NOT_PERMITTED", "register"]

EXIT_NOT_FOUND = 1
EXIT_NOT_PERMITTED = 3
EXIT_CONFLICT = 4

_HINTS = {
    "pause": "only a pending or running rollout can be paused",
    "resume": "only a paused rollout can be resumed",
    "abort": "a finished rollout cannot be aborted; use `rollout undo` to roll it back",
    "undo": "pause the rollout first (`rollout pause ID`), then undo it",
    "approve": "see `rollout status ROLLOUT_ID` for the step awaiting approval",
    "deny": "see `rollout status ROLLOUT_ID` for the step awaiting approval",
    "restart": "see `rollout restart-preview ID`",
}


def _out(stdout: Any) -> Any:
    return stdout if stdout is not None else sys.stdout


def _actor(username: str) -> Any:
    user_model = get_user_model()
    user = user_model.objects.filter(**{user_model.USERNAME_FIELD: username}).first()
    if user is None:
        raise CommandError(
            f"no user named {username!r} (--actor names the person acting)", returncode=EXIT_NOT_FOUND
        )
    if not user.is_active:
        raise CommandError(f"user {username!r} is inactive", returncode=EXIT_NOT_PERMITTED)
    return user


# A verb's handler: the parsed arguments and where to write (stdout when None).
Handler = Callable[[argparse.Namespace, Any], None]


def _run(verb: str, call: Callable[[], Any]) -> Any:
    """Call a service; map its refusals to ``CommandError`` with an exit code and a hint."""
    try:
        return call()
    except RolloutNotFound as exc:
        raise CommandError(str(exc), returncode=EXIT_NOT_FOUND) from None
    except NotPermitted as exc:
        raise CommandError(f"not permitted: {exc}", returncode=EXIT_NOT_PERMITTED) from None
    except InvalidTransition as exc:
        raise CommandError(
            f"{exc.what} {exc.object_id} is {exc.current_state}: nothing done ({_HINTS[verb]})",
            returncode=EXIT_CONFLICT,
        ) from None
    except RolloutError as exc:
        raise CommandError(str(exc), returncode=EXIT_CONFLICT) from None
    except KubeError as exc:
        raise CommandError(f"cannot read the cluster now: {exc}", returncode=EXIT_CONFLICT) from None


def _table(rows: Sequence[Sequence[str]], out: Any) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write(
            "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip() + "\n"
        )


def _ago(value: Any) -> str:
    if value is None:
        return "-"
    seconds = max(0, int((timezone.now() - value).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _revisions(rollout: Rollout) -> str:
    source = f"#{rollout.from_revision_number}" if rollout.from_revision_number else "-"
    return f"{source}->#{rollout.to_revision_number}"


def _state(rollout: Rollout) -> str:
    if rollout.outcome == RolloutOutcome.NEEDS_RECREATE:
        return f"{rollout.state} ({rollout.needs_recreate} pods need recreate)"
    if rollout.abort_requested:
        return f"{rollout.state} (abort requested)"
    if rollout.pause_requested:
        return f"{rollout.state} (pause requested)"
    return str(rollout.state)


# --- status --------------------------------------------------------------------------------------


def handle_status(args: argparse.Namespace, stdout: Any = None) -> None:
    """One rollout in detail (ID), or a table of rollouts (active ones unless ``--all``)."""
    out = _out(stdout)
    if args.id is not None:
        _status_one(args.id, out)
        return
    rows: QuerySet[Rollout] = rollouts_with_progress(Rollout.objects.select_related("cluster"))
    if args.sidecarset:
        rows = rows.filter(sidecarset_name=args.sidecarset)
    if args.cluster:
        rows = rows.filter(cluster_name=args.cluster)
    if not args.all:
        rows = rows.filter(state__in=ACTIVE_ROLLOUT_STATES)
    rows = rows.order_by("-created_at", "-id")[: args.limit]
    table = [("ID", "SIDECARSET", "REVISION", "CLUSTER", "WAVE", "STATE", "STEP", "PROGRESS", "CHANGED")]
    for rollout in rows:
        current = rollout.current_step  # type: ignore[attr-defined]  # annotated by rollouts_with_progress
        table.append(
            (
                str(rollout.pk),
                rollout.sidecarset_name,
                _revisions(rollout),
                rollout.cluster_name,
                str(rollout.wave),
                _state(rollout),
                f"{current or '-'}/{rollout.steps_total}",  # type: ignore[attr-defined]
                text_progress_bar(progress_of(rollout)),
                _ago(rollout.state_changed_at),
            )
        )
    if len(table) == 1:
        where = f" of SidecarSet {args.sidecarset}" if args.sidecarset else ""
        where += f" in cluster {args.cluster}" if args.cluster else ""
        out.write(
            f"no {'' if args.all else 'active '}rollouts{where}"
            + ("" if args.all else " (--all shows finished ones)")
            + "\n"
        )
        return
    _table(table, out)


def _status_one(rollout_id: int, out: Any) -> None:
    rollout = rollouts_with_progress(Rollout.objects.select_related("cluster")).filter(pk=rollout_id).first()
    if rollout is None:
        raise CommandError(f"rollout {rollout_id} not found", returncode=EXIT_NOT_FOUND)
    out.write(
        f"rollout {rollout.pk}: {rollout.sidecarset_name} {_revisions(rollout)} ({rollout.kind}) "
        f"in cluster {rollout.cluster_name}, wave {rollout.wave}\n"
    )
    out.write(
        f"state:    {_state(rollout)} since {rollout.state_changed_at:%Y-%m-%d %H:%M:%S} "
        f"({_ago(rollout.state_changed_at)})\n"
    )
    if rollout.reason:
        out.write(f"reason:   {rollout.reason}\n")
    if rollout.intent_by:
        out.write(
            f"intent:   by {rollout.intent_by}"
            + (f": {rollout.intent_reason}" if rollout.intent_reason else "")
            + "\n"
        )
    out.write(f"author:   {rollout.author_name}\n")
    out.write(f"progress: {text_progress_bar(progress_of(rollout), 30)}\n\n")
    steps = steps_with_progress(RolloutStep.objects.filter(rollout=rollout).order_by("ordinal"))
    table = [("STEP", "ID", "TARGET", "STATE", "PODS", "PROGRESS", "APPROVAL")]
    awaiting: RolloutStep | None = None
    for step in steps.prefetch_related("approvals"):
        approvals = [a for a in step.approvals.all() if a.preparation == step.preparation]
        decision = approvals[-1] if approvals else None
        if step.state == StepState.AWAITING_APPROVAL:
            awaiting = step
            note = f"expires {step.expires_at:%Y-%m-%d %H:%M}" if step.expires_at else "awaiting"
        elif decision is not None:
            note = f"{decision.decision}d by {decision.actor_name}" + (
                " (auto)" if decision.automatic else ""
            )
        else:
            note = "-"
        table.append(
            (
                str(step.ordinal),
                str(step.pk),
                step.target,
                str(step.state),
                str(step.pod_count) if step.prepared_at else "-",
                text_progress_bar(progress_of(step), 10) if step.prepared_at else "",
                note,
            )
        )
    _table(table, out)
    if awaiting is not None:
        out.write(
            f"\nstep {awaiting.ordinal} awaits approval ({awaiting.pod_count} pods): "
            f"manage.py sidecarhub rollout approve {awaiting.pk} --actor USER [-m COMMENT]\n"
        )


# --- fleet view ----------------------------------------------------------------------------------


def _sidecarset_id(name: str) -> int:
    found = SidecarSet.objects.filter(name=name).values_list("pk", flat=True).first()
    if found is None:
        raise CommandError(f"SidecarSet {name!r} not found", returncode=EXIT_NOT_FOUND)
    return int(found)


def _revision(number: int | None) -> str:
    return f"#{number}" if number is not None else "-"


def _rollout_cells(rollout: fleet.RolloutSummary | None) -> tuple[str, str, str]:
    """(ROLLOUT, STATE, STEP) cells: ``7: #1->#2`` (id: revisions), ``running``, ``1/2 awaiting_approval``."""
    if rollout is None:
        return "-", "-", "-"
    arrow = " undo " if rollout.kind == RolloutKind.ROLLBACK else "->"
    what = f"{rollout.id}: {_revision(rollout.from_revision)}{arrow}{_revision(rollout.to_revision)}"
    state = str(rollout.state) + ("" if rollout.in_place else " (gate only)")
    step = (
        f"{rollout.step_ordinal}/{rollout.steps_total} {rollout.step_state}"
        if rollout.step_ordinal is not None
        else "-"
    )
    return what, state, step


def _pods(row: fleet.FleetCluster) -> str:
    if row.matched_pods is None:
        return "not observed"
    return f"{row.updated_pods or 0}/{row.matched_pods} updated, {row.ready_pods or 0} ready"


def _held(held: bool, reason: str) -> str:
    return ("held: " + reason if reason else "held") if held else "-"


def handle_fleet(args: argparse.Namespace, stdout: Any = None) -> None:
    """Every target cluster of a SidecarSet: what it serves against the current revision, its
    hold, its latest rollout, its pods, needs recreate and drift (``--json``: the API's body)."""
    out = _out(stdout)
    found = fleet.fleet_of(_sidecarset_id(args.name))
    if args.json:
        out.write(json.dumps(FleetSerializer(found).data, indent=2) + "\n")
        return
    out.write(f"SidecarSet {found.sidecarset}: current revision {_revision(found.current_revision)}\n")
    if not found.clusters:
        out.write("no target cluster\n")
        return
    table = [("CLUSTER", "WAVE", "SERVING", "HELD", "ROLLOUT", "STATE", "STEP", "PODS", "RECREATE", "DRIFT")]
    for row in found.clusters:
        serving = _revision(row.serving_revision) + (" (behind)" if row.behind else "")
        table.append(
            (
                row.cluster,
                str(row.wave),
                serving,
                _held(row.held, row.held_reason),
                *_rollout_cells(row.latest_rollout),
                _pods(row),
                str(row.needs_recreate),
                str(row.drift),
            )
        )
    _table(table, out)


def handle_releases(args: argparse.Namespace, stdout: Any = None) -> None:
    """The newest releases of a SidecarSet, each with its stage and its rollouts by wave."""
    out = _out(stdout)
    found = fleet.releases_of(_sidecarset_id(args.name), limit=args.limit)
    if args.json:
        out.write(json.dumps(ReleasesSerializer(found).data, indent=2) + "\n")
        return
    if not found.releases:
        out.write(f"SidecarSet {found.sidecarset} has no release yet (a first publish serves at once)\n")
        return
    for position, release in enumerate(found.releases):
        if position:
            out.write("\n")
        current = " (current)" if release.current else ""
        out.write(f"revision {release.revision}{current}: {release.stage_text}\n")
        table = [("WAVE", "CLUSTER", "HELD", "ROLLOUT", "STATE", "STEP", "RECREATE", "NOTE")]
        for wave in release.waves:
            for member in wave.clusters:
                note = member.rollout.reason or "-"
                if member.rollback is not None:
                    note = f"rolled back: rollout {member.rollback.id} is {member.rollback.state}"
                table.append(
                    (
                        str(wave.wave),
                        member.cluster,
                        _held(member.held, member.held_reason),
                        *_rollout_cells(member.rollout),
                        str(member.rollout.needs_recreate),
                        note,
                    )
                )
        _table(table, out)


# --- verbs ---------------------------------------------------------------------------------------


def handle_approve(args: argparse.Namespace, stdout: Any = None) -> None:
    """Approve a prepared step as ``--actor``."""
    actor = _actor(args.actor)
    approval = _run(
        "approve",
        lambda: services.approve_step(
            args.step_id, actor=actor, request_id=cli_request_id(), comment=args.message
        ),
    )
    step = approval.step
    _out(stdout).write(
        f"step {step.ordinal} (id {step.pk}) of rollout {step.rollout_id} approved by {approval.actor_name}: "
        f"{step.pod_count} pods will be updated\n"
    )


def handle_deny(args: argparse.Namespace, stdout: Any = None) -> None:
    """Deny a prepared step as ``--actor``; the rollout pauses."""
    actor = _actor(args.actor)
    approval = _run(
        "deny",
        lambda: services.deny_step(
            args.step_id, actor=actor, request_id=cli_request_id(), comment=args.message
        ),
    )
    step = approval.step
    _out(stdout).write(
        f"step {step.ordinal} (id {step.pk}) of rollout {step.rollout_id} denied by {approval.actor_name}; "
        f"the rollout pauses (resume prepares the step again)\n"
    )


def _operate(verb: str, service: Callable[..., Rollout]) -> Handler:
    def handler(args: argparse.Namespace, stdout: Any = None) -> None:
        actor = _actor(args.actor)
        rollout = _run(
            verb, lambda: service(args.id, actor=actor, request_id=cli_request_id(), reason=args.reason)
        )
        out = _out(stdout)
        if verb == "undo":
            out.write(
                f"rollout {args.id} rolled back: new rollout {rollout.pk} "
                f"({_revisions(rollout)}) needs approvals like any rollout\n"
            )
        elif rollout.pause_requested or rollout.abort_requested:
            out.write(f"rollout {rollout.pk}: {verb} requested; the worker stops between pods\n")
        else:
            out.write(f"rollout {rollout.pk} is now {rollout.state}\n")

    handler.__doc__ = f"{verb.capitalize()} a rollout as ``--actor``."
    return handler


handle_pause = _operate("pause", services.pause_rollout)
handle_resume = _operate("resume", services.resume_rollout)
handle_abort = _operate("abort", services.abort_rollout)
handle_undo = _operate("undo", services.rollback_rollout)


def _targets(text: str) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] or None


def handle_restart_preview(args: argparse.Namespace, stdout: Any = None) -> None:
    """What a restart of the rollout's pods that need recreate would do now (decision 18)."""
    preview = _run(
        "restart", lambda: restarts.preview_restart(args.id, actor=None, steps=_targets(args.steps))
    )
    out = _out(stdout)
    out.write(
        f"rollout {preview.rollout_id}: {preview.pods_needing_recreate} pods of {preview.sidecarset} in "
        f"{preview.cluster} need recreate (revision {preview.revision_number}); "
        f"{preview.workloads_at_once} workload(s) at a time, {preview.workload_deadline_seconds}s each\n"
    )
    rows = [["STEP", "TARGET", "WORKLOAD", "PODS"]]
    for step in preview.steps:
        for workload in step.workloads:
            name = f"{workload.kind} {workload.namespace}/{workload.name}"
            rows.append([str(step.ordinal), step.target, name, str(workload.pod_count)])
    if len(rows) > 1:
        _table(rows, out)
    for item in preview.not_restartable:
        out.write(f"not restartable: {item['namespace']}/{item['name']}: {item['reason']}\n")


def handle_restart(args: argparse.Namespace, stdout: Any = None) -> None:
    """Start an approved, stepped restart of the rollout's workloads as ``--actor``."""
    actor = _actor(args.actor)
    restart = _run(
        "restart",
        lambda: restarts.start_restart(
            args.id, actor=actor, request_id=cli_request_id(), steps=_targets(args.steps), reason=args.reason
        ),
    )
    steps = list(restart.rollout_steps.order_by("ordinal"))
    _out(stdout).write(
        f"restart rollout {restart.pk} created for rollout {args.id}: "
        + ", ".join(
            f"step {step.ordinal}: {len(step.workloads)} workloads, {step.pod_count} pods" for step in steps
        )
        + f"; each step needs an approval (`rollout status {restart.pk}`)\n"
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``rollout`` command (with its verbs), ``fleet`` and ``releases`` to
    ``manage.py sidecarhub``."""
    parser = subparsers.add_parser(
        "rollout",
        help="rollouts of new sidecar images: status, approvals, pause / resume / abort / undo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(
        dest="rollout_command",
        metavar="{status,approve,deny,pause,resume,abort,undo,restart,restart-preview}",
    )
    sub.required = True

    status = sub.add_parser("status", help="a table of rollouts, or one rollout with its steps")
    status.add_argument("id", nargs="?", type=int, default=None, help="one rollout in detail")
    status.add_argument("--sidecarset", help="only this SidecarSet's rollouts")
    status.add_argument("--cluster", help="only rollouts in this cluster")
    status.add_argument("--all", action="store_true", help="include finished rollouts")
    status.add_argument("--limit", type=int, default=50, help="at most this many rows (default 50)")
    status.set_defaults(handler=handle_status)

    handler: Handler
    for name, handler, help_text in (
        ("approve", handle_approve, "approve a prepared step (someone other than the rollout's author)"),
        ("deny", handle_deny, "deny a prepared step; the rollout pauses"),
    ):
        verb = sub.add_parser(name, help=help_text)
        verb.add_argument("step_id", type=int, help="the step's id (see `rollout status ID`)")
        verb.add_argument("--actor", required=True, help="username of the person deciding")
        verb.add_argument("-m", "--message", default="", help="comment recorded with the decision")
        verb.set_defaults(handler=handler)

    rollout_verbs: tuple[tuple[str, Handler, str], ...] = (
        ("pause", handle_pause, "pause a rollout (between pods)"),
        ("resume", handle_resume, "resume a paused rollout"),
        ("abort", handle_abort, "abort a rollout for good (updated pods keep the new image)"),
        ("undo", handle_undo, "roll back: a new rollout to the previous revision, with approvals"),
    )
    for name, handler, help_text in rollout_verbs:
        verb = sub.add_parser(name, help=help_text)
        verb.add_argument("id", type=int, help="the rollout's id")
        verb.add_argument("--actor", required=True, help="username of the person acting")
        verb.add_argument("--reason", default="", help="why (recorded in the history)")
        verb.set_defaults(handler=handler)

    preview = sub.add_parser(
        "restart-preview",
        help="the workloads a restart of the rollout's pods that need recreate would restart",
    )
    preview.add_argument("id", type=int, help="the rollout whose pods need recreate")
    preview.add_argument("--steps", default="", help='targets of workloads, e.g. "1,100%%" (default: 100%%)')
    preview.set_defaults(handler=handle_restart_preview)
    restart = sub.add_parser(
        "restart",
        help="restart the workloads owning the rollout's pods that need recreate, in approved steps",
    )
    restart.add_argument("id", type=int, help="the rollout whose pods need recreate")
    restart.add_argument("--actor", required=True, help="username of the person acting")
    restart.add_argument("--steps", default="", help='targets of workloads, e.g. "1,100%%" (default: 100%%)')
    restart.add_argument("--reason", default="", help="why (recorded in the history)")
    restart.set_defaults(handler=handle_restart)

    fleet_parser = subparsers.add_parser(
        "fleet", help="every target cluster of a SidecarSet: serving revision, hold, rollout, pods, drift"
    )
    fleet_parser.add_argument("name", help="the SidecarSet's name")
    fleet_parser.add_argument("--json", action="store_true", help="print the API's JSON body")
    fleet_parser.set_defaults(handler=handle_fleet)

    releases_parser = subparsers.add_parser(
        "releases", help="the newest releases of a SidecarSet, by wave, each with where it stands"
    )
    releases_parser.add_argument("name", help="the SidecarSet's name")
    releases_parser.add_argument(
        "--limit",
        type=int,
        default=fleet.DEFAULT_RELEASES,
        choices=range(1, fleet.MAX_RELEASES + 1),
        metavar=f"1..{fleet.MAX_RELEASES}",
        help=f"newest releases to show (default {fleet.DEFAULT_RELEASES})",
    )
    releases_parser.add_argument("--json", action="store_true", help="print the API's JSON body")
    releases_parser.set_defaults(handler=handle_releases)
