"""``sidecarhub rollout status [ID [--watch]] | approve | deny | pause | resume | abort | undo |
restart | restart-preview``, and the fleet view: ``sidecarhub fleet NAME [--json]`` (every
target cluster of a SidecarSet) and ``sidecarhub release status NAME [--limit N] [--json]
[--watch]`` (its newest releases by wave). ``--json`` prints exactly the API's body
(``GET /api/v1/sidecarsets/{name}/fleet/``, ``.../releases/``).

Every verb calls the same service as the API and the admin, as the user whose API token the CLI
runs with (so the permission, four-eyes and team checks apply and the history names a person),
with a fresh request ID per run (``cli-`` and 12 hex digits) that its history rows record.

``--watch`` redraws a rollout (or a release) until it ends; the exit code says how it ended.
Exit codes: ``sidecarhub/clitools.py`` (0 done; 1 not found or bad input; 3 not permitted; 4
conflict: the message says which state the rollout or step is in and what to do; 5 a watched
rollout or release ended badly; 6 ``--timeout``).
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Callable
from typing import Any

from django.core.management.base import CommandError
from django.db.models import QuerySet
from django.utils import timezone

from clusters.kube import KubeError
from rollouts import fleet, restarts, services
from rollouts.api.serializers import FleetSerializer, ReleasesSerializer
from rollouts.api.views import RolloutStepViewSet, RolloutViewSet, SidecarSetFleetViewSet
from rollouts.choices import (
    ACTIVE_ROLLOUT_STATES,
    ReleaseStage,
    RolloutKind,
    RolloutOutcome,
    RolloutState,
    StepState,
)
from rollouts.models import Rollout, RolloutStep
from rollouts.queries import progress_of, rollouts_with_progress, steps_with_progress, text_progress_bar
from rollouts.services import NotPermitted, RolloutNotFound
from rollouts.transitions import InvalidTransition, RolloutError
from sidecarhub.clitools import (
    EXIT_CONFLICT,
    EXIT_ENDED_BADLY,
    EXIT_NOT_FOUND,
    EXIT_NOT_PERMITTED,
    Snapshot,
    add_watch_arguments,
    api_permissions,
    output,
    watch,
    write_table,
)
from sidecarhub.middleware import cli_request_id
from sidecarhub.models import SidecarSet

__all__ = ["register"]

# How a watched rollout or release ended: the good ends (exit 0); every other end exits 5.
_GOOD_ROLLOUT_ENDS = frozenset({RolloutState.COMPLETED})
_GOOD_RELEASE_ENDS = frozenset({ReleaseStage.COMPLETED, ReleaseStage.NEEDS_RECREATE})
_BAD_RELEASE_ENDS = frozenset(
    {ReleaseStage.ROLLED_BACK, ReleaseStage.SUPERSEDED, ReleaseStage.ABORTED, ReleaseStage.FAILED}
)

_HINTS = {
    "pause": "only a pending or running rollout can be paused",
    "resume": "only a paused rollout can be resumed",
    "abort": "a finished rollout cannot be aborted; use `rollout undo` to roll it back",
    "undo": "pause the rollout first (`rollout pause ID`), then undo it",
    "approve": "see `rollout status ROLLOUT_ID` for the step awaiting approval",
    "deny": "see `rollout status ROLLOUT_ID` for the step awaiting approval",
    "restart": "see `rollout restart-preview ID`",
}


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
    out = output(stdout)
    if args.id is not None:
        if args.watch:
            watch(
                lambda: _rollout_snapshot(args.id, args.user),
                out,
                interval=args.interval,
                timeout=args.timeout,
            )
        else:
            out.write(_rollout_snapshot(args.id, args.user).text)
        return
    if args.watch:
        raise CommandError(
            "--watch follows one rollout (rollout status ID --watch) or a release "
            "(release status NAME --watch)"
        )
    rows: QuerySet[Rollout] = rollouts_with_progress(
        Rollout.objects.visible_to(args.user).select_related("cluster")
    )
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
    write_table(table, out)


def _rollout_snapshot(rollout_id: int, user: Any) -> Snapshot:
    """One rollout with its steps; it has ended when its state is terminal."""
    rows = Rollout.objects.visible_to(user).select_related("cluster")
    rollout = rollouts_with_progress(rows).filter(pk=rollout_id).first()
    if rollout is None:
        raise CommandError(f"rollout {rollout_id} not found", returncode=EXIT_NOT_FOUND)
    out = io.StringIO()
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
    signature: list[object] = [rollout.state, _state(rollout), rollout.reason, progress_of(rollout)]
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
        signature.append((step.state, note, progress_of(step)))
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
    write_table(table, out)
    if awaiting is not None:
        out.write(
            f"\nstep {awaiting.ordinal} awaits approval ({awaiting.pod_count} pods): "
            f"sidecarhub rollout approve {awaiting.pk} [-m COMMENT]\n"
        )
    exit_code: int | None = None
    if rollout.state not in ACTIVE_ROLLOUT_STATES:
        exit_code = 0 if rollout.state in _GOOD_ROLLOUT_ENDS else EXIT_ENDED_BADLY
    return Snapshot(
        text=out.getvalue(),
        signature=tuple(signature),
        exit_code=exit_code,
        ending=f"rollout {rollout.pk} ended {rollout.state}"
        + (f": {rollout.reason}" if rollout.reason else ""),
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
    """The pods the cluster reported (``PODS ON REVISION``): on the revision / matched, ready."""
    if row.matched_pods is None:
        return "not observed"
    return f"{min(row.updated_pods or 0, row.matched_pods)}/{row.matched_pods}, {row.ready_pods or 0} ready"


def _held(held: bool, reason: str) -> str:
    return ("held: " + reason if reason else "held") if held else "-"


def handle_fleet(args: argparse.Namespace, stdout: Any = None) -> None:
    """Every target cluster of a SidecarSet: what it serves against the current revision, its
    hold, its latest rollout, its pods, needs recreate and drift (``--json``: the API's body)."""
    out = output(stdout)
    found = fleet.fleet_of(_sidecarset_id(args.name))
    if args.json:
        out.write(json.dumps(FleetSerializer(found).data, indent=2) + "\n")
        return
    out.write(f"SidecarSet {found.sidecarset}: current revision {_revision(found.current_revision)}\n")
    _write_fleet_table(found, out)
    for skipped in found.skipped_clusters:
        out.write(
            f"not targeted: cluster {skipped.cluster} "
            f"(owned by team {skipped.team}; add it as an explicit target)\n"
        )


def _write_fleet_table(found: fleet.Fleet, out: Any) -> None:
    if not found.clusters:
        out.write("no target cluster\n")
        return
    headings = ("CLUSTER", "WAVE", "SERVING", "HELD", "ROLLOUT", "STATE", "STEP", "PODS ON REVISION")
    table = [(*headings, "RECREATE", "DRIFT")]
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
    write_table(table, out)
    out.write(
        "PODS ON REVISION: observed live in the cluster (pods created since included), "
        "not a rollout's count\n"
    )


def _release_text(release: fleet.Release, progress: dict[int, str], awaiting: dict[int, RolloutStep]) -> str:
    out = io.StringIO()
    current = " (current)" if release.current else ""
    out.write(f"revision {release.revision}{current}: {release.stage_text}\n")
    table = [("WAVE", "CLUSTER", "HELD", "ROLLOUT", "STATE", "STEP", "ROLLOUT PROGRESS", "RECREATE", "NOTE")]
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
                    progress.get(member.rollout.id, ""),
                    str(member.rollout.needs_recreate),
                    note,
                )
            )
    write_table(table, out)
    for member in release.clusters:
        step = awaiting.get(member.rollout.id)
        if step is not None:
            out.write(
                f"cluster {member.cluster}: step {step.ordinal} of rollout {step.rollout_id} awaits approval "
                f"({step.pod_count} pods): sidecarhub rollout approve {step.pk} [-m COMMENT]\n"
            )
    return out.getvalue()


def _releases_snapshot(sidecarset_id: int, limit: int, user: Any) -> Snapshot:
    """The newest ``limit`` releases; the newest one decides whether it has ended."""
    found = fleet.releases_of(sidecarset_id, limit=limit)
    if not found.releases:
        return Snapshot(
            text=f"SidecarSet {found.sidecarset} has no release yet (a first publish serves at once)\n",
            signature=None,
            exit_code=0,
        )
    rollout_ids = [member.rollout.id for release in found.releases for member in release.clusters]
    visible = rollouts_with_progress(Rollout.objects.visible_to(user).filter(pk__in=rollout_ids))
    progress = {row.pk: text_progress_bar(progress_of(row), 10) for row in visible}
    awaiting = {
        step.rollout_id: step
        for step in RolloutStep.objects.visible_to(user)
        .filter(rollout_id__in=rollout_ids, state=StepState.AWAITING_APPROVAL)
        .order_by("ordinal")
    }
    texts = [_release_text(release, progress, awaiting) for release in found.releases]
    newest = found.releases[0]
    exit_code: int | None = None
    if newest.stage in _GOOD_RELEASE_ENDS:
        exit_code = 0
    elif newest.stage in _BAD_RELEASE_ENDS:
        exit_code = EXIT_ENDED_BADLY
    return Snapshot(
        text="\n".join(texts),
        signature=(tuple(texts), tuple(sorted(progress.items()))),
        exit_code=exit_code,
        ending=f"the release of revision {newest.revision} of {found.sidecarset} ended: {newest.stage_text}",
    )


def handle_release_status(args: argparse.Namespace, stdout: Any = None) -> None:
    """The newest releases of a SidecarSet, each with its stage and its rollouts by wave
    (``--watch``: the newest one, until it ends)."""
    out = output(stdout)
    sidecarset_id = _sidecarset_id(args.name)
    if args.json:
        found = fleet.releases_of(sidecarset_id, limit=args.limit)
        out.write(json.dumps(ReleasesSerializer(found).data, indent=2) + "\n")
        return
    if args.watch:
        watch(
            lambda: _releases_snapshot(sidecarset_id, 1, args.user),
            out,
            interval=args.interval,
            timeout=args.timeout,
        )
        return
    out.write(_releases_snapshot(sidecarset_id, args.limit, args.user).text)


# --- verbs ---------------------------------------------------------------------------------------


def handle_approve(args: argparse.Namespace, stdout: Any = None) -> None:
    """Approve a prepared step as the acting user."""
    actor = args.user
    approval = _run(
        "approve",
        lambda: services.approve_step(
            args.step_id, actor=actor, request_id=cli_request_id(), comment=args.message
        ),
    )
    step = approval.step
    output(stdout).write(
        f"step {step.ordinal} (id {step.pk}) of rollout {step.rollout_id} approved by {approval.actor_name}: "
        f"{step.pod_count} pods will be updated\n"
    )


def handle_deny(args: argparse.Namespace, stdout: Any = None) -> None:
    """Deny a prepared step as the acting user; the rollout pauses."""
    actor = args.user
    approval = _run(
        "deny",
        lambda: services.deny_step(
            args.step_id, actor=actor, request_id=cli_request_id(), comment=args.message
        ),
    )
    step = approval.step
    output(stdout).write(
        f"step {step.ordinal} (id {step.pk}) of rollout {step.rollout_id} denied by {approval.actor_name}; "
        f"the rollout pauses (resume prepares the step again)\n"
    )


def _operate(verb: str, service: Callable[..., Rollout]) -> Handler:
    def handler(args: argparse.Namespace, stdout: Any = None) -> None:
        actor = args.user
        rollout = _run(
            verb, lambda: service(args.id, actor=actor, request_id=cli_request_id(), reason=args.reason)
        )
        out = output(stdout)
        if verb == "undo":
            out.write(
                f"rollout {args.id} rolled back: new rollout {rollout.pk} "
                f"({_revisions(rollout)}) needs approvals like any rollout\n"
            )
        elif rollout.pause_requested or rollout.abort_requested:
            out.write(f"rollout {rollout.pk}: {verb} requested; the worker stops between pods\n")
        else:
            out.write(f"rollout {rollout.pk} is now {rollout.state}\n")

    handler.__doc__ = f"{verb.capitalize()} a rollout as the acting user."
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
        "restart", lambda: restarts.preview_restart(args.id, actor=args.user, steps=_targets(args.steps))
    )
    out = output(stdout)
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
        write_table(rows, out)
    for item in preview.not_restartable:
        out.write(f"not restartable: {item['namespace']}/{item['name']}: {item['reason']}\n")


def handle_restart(args: argparse.Namespace, stdout: Any = None) -> None:
    """Start an approved, stepped restart of the rollout's workloads as the acting user."""
    actor = args.user
    restart = _run(
        "restart",
        lambda: restarts.start_restart(
            args.id, actor=actor, request_id=cli_request_id(), steps=_targets(args.steps), reason=args.reason
        ),
    )
    steps = list(restart.rollout_steps.order_by("ordinal"))
    output(stdout).write(
        f"restart rollout {restart.pk} created for rollout {args.id}: "
        + ", ".join(
            f"step {step.ordinal}: {len(step.workloads)} workloads, {step.pod_count} pods" for step in steps
        )
        + f"; each step needs an approval (`rollout status {restart.pk}`)\n"
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``rollout`` command (with its verbs), ``fleet`` and ``release`` to ``sidecarhub``."""
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
    rollouts, steps = RolloutViewSet, RolloutStepViewSet

    status = sub.add_parser("status", help="a table of rollouts, or one rollout with its steps")
    status.add_argument("id", nargs="?", type=int, default=None, help="one rollout in detail")
    status.add_argument("--sidecarset", help="only this SidecarSet's rollouts")
    status.add_argument("--cluster", help="only rollouts in this cluster")
    status.add_argument("--all", action="store_true", help="include finished rollouts")
    status.add_argument("--limit", type=int, default=50, help="at most this many rows (default 50)")
    add_watch_arguments(status)
    status.set_defaults(handler=handle_status, permissions=api_permissions(rollouts, "retrieve"))

    handler: Handler
    for name, handler, help_text in (
        ("approve", handle_approve, "approve a prepared step (someone other than the rollout's author)"),
        ("deny", handle_deny, "deny a prepared step; the rollout pauses"),
    ):
        verb = sub.add_parser(name, help=help_text)
        verb.add_argument("step_id", type=int, help="the step's id (see `rollout status ID`)")
        verb.add_argument("-m", "--message", default="", help="comment recorded with the decision")
        verb.set_defaults(handler=handler, permissions=api_permissions(steps, name))

    rollout_verbs: tuple[tuple[str, str, Handler, str], ...] = (
        ("pause", "pause", handle_pause, "pause a rollout (between pods)"),
        ("resume", "resume", handle_resume, "resume a paused rollout"),
        ("abort", "abort", handle_abort, "abort a rollout for good (updated pods keep the new image)"),
        (
            "undo",
            "rollback",
            handle_undo,
            "roll back: a new rollout to the previous revision, with approvals",
        ),
    )
    for name, api_action, handler, help_text in rollout_verbs:
        verb = sub.add_parser(name, help=help_text)
        verb.add_argument("id", type=int, help="the rollout's id")
        verb.add_argument("--reason", default="", help="why (recorded in the history)")
        verb.set_defaults(handler=handler, permissions=api_permissions(rollouts, api_action))

    preview = sub.add_parser(
        "restart-preview",
        help="the workloads a restart of the rollout's pods that need recreate would restart",
    )
    preview.add_argument("id", type=int, help="the rollout whose pods need recreate")
    preview.add_argument("--steps", default="", help='targets of workloads, e.g. "1,100%%" (default: 100%%)')
    preview.set_defaults(
        handler=handle_restart_preview, permissions=api_permissions(rollouts, "restart_preview")
    )
    restart = sub.add_parser(
        "restart",
        help="restart the workloads owning the rollout's pods that need recreate, in approved steps",
    )
    restart.add_argument("id", type=int, help="the rollout whose pods need recreate")
    restart.add_argument("--steps", default="", help='targets of workloads, e.g. "1,100%%" (default: 100%%)')
    restart.add_argument("--reason", default="", help="why (recorded in the history)")
    restart.set_defaults(handler=handle_restart, permissions=api_permissions(rollouts, "restart"))

    fleet_parser = subparsers.add_parser(
        "fleet", help="every target cluster of a SidecarSet: serving revision, hold, rollout, pods, drift"
    )
    fleet_parser.add_argument("name", help="the SidecarSet's name")
    fleet_parser.add_argument("--json", action="store_true", help="print the API's JSON body")
    fleet_parser.set_defaults(
        handler=handle_fleet, permissions=api_permissions(SidecarSetFleetViewSet, "fleet")
    )

    release_parser = subparsers.add_parser(
        "release", help="releases: a published revision across its clusters"
    )
    release_sub = release_parser.add_subparsers(dest="release_command", metavar="{status}")
    release_sub.required = True
    release_status = release_sub.add_parser(
        "status", help="the newest releases of a SidecarSet, by wave, each with where it stands"
    )
    release_status.add_argument("name", help="the SidecarSet's name")
    release_status.add_argument(
        "--limit",
        type=int,
        default=fleet.DEFAULT_RELEASES,
        choices=range(1, fleet.MAX_RELEASES + 1),
        metavar=f"1..{fleet.MAX_RELEASES}",
        help=f"newest releases to show (default {fleet.DEFAULT_RELEASES}; --watch: the newest)",
    )
    release_status.add_argument("--json", action="store_true", help="print the API's JSON body (one look)")
    add_watch_arguments(release_status)
    release_status.set_defaults(
        handler=handle_release_status, permissions=api_permissions(SidecarSetFleetViewSet, "releases")
    )
