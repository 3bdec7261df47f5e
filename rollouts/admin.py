"""The rollouts console: rollouts with a progress bar, a detail page with every step (its exact
pods, its approvals, approve / deny), pause / resume / abort / rollback, the next step's preview,
the per-pod history with CSV export, and the fleet view on each SidecarSet's page (``Fleet`` and
``Releases`` tables, added through ``SidecarSetAdmin.add_change_page_panel``).

Nothing here changes a row itself: every button and action calls the same service as the API
and the CLI (``rollouts.services``) with the signed-in user as actor, so the permission and
four-eyes checks are the services' own. Refusals are shown as messages a person can act on.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch, QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from clusters.kube import KubeError
from rollouts import fleet, pages, previews, restarts, services
from rollouts.choices import (
    ACTIVE_ROLLOUT_STATES,
    APPROVABLE_STEP_STATES,
    PodUpdateOutcome,
    ReleaseStage,
    RolloutKind,
    RolloutOutcome,
    RolloutState,
    StepState,
)
from rollouts.models import Approval, PodUpdate, Rollout, RolloutStep, StepTransition
from rollouts.permissions import APPROVE_PERMISSION, approval_refusal, can_operate
from rollouts.queries import (
    Progress,
    pod_update_csv,
    progress_of,
    rollouts_with_progress,
    steps_with_progress,
)
from rollouts.services import NotPermitted
from rollouts.transitions import InvalidTransition, RolloutError, RolloutNotFound
from sidecarhub.admin import ReadOnlyAdmin, SidecarSetAdmin
from sidecarhub.live import live_response, page_context
from sidecarhub.middleware import request_id_of
from sidecarhub.models import SidecarSet, SidecarSetRevision

__all__ = [
    "PodUpdateAdmin",
    "RolloutAdmin",
    "fleet_panel",
    "observed_pods_html",
    "progress_bar_html",
    "state_badge",
]

# Colours of states (GitHub-like palette, readable in light and dark admin themes).
_GREEN, _RED, _AMBER, _BLUE, _GREY, _DARK = "#1a7f37", "#cf222e", "#9a6700", "#0969da", "#6e7781", "#424a53"
_STATE_COLOURS = {
    RolloutState.PENDING: _GREY,
    RolloutState.RUNNING: _BLUE,
    RolloutState.PAUSED: _AMBER,
    RolloutState.COMPLETED: _GREEN,
    RolloutState.ABORTED: _DARK,
    RolloutState.FAILED: _RED,
    StepState.AWAITING_APPROVAL: "#8250df",
    StepState.APPROVED: _BLUE,
    StepState.SUCCEEDED: _GREEN,
    StepState.DENIED: _RED,
    StepState.EXPIRED: _AMBER,
    StepState.CANCELLED: _DARK,
    PodUpdateOutcome.SKIPPED: _GREY,
    PodUpdateOutcome.POD_GONE: _DARK,
    PodUpdateOutcome.TIMED_OUT: _RED,
    ReleaseStage.HELD: _AMBER,
    ReleaseStage.NEEDS_RECREATE: _AMBER,
    RolloutOutcome.NEEDS_RECREATE: _AMBER,
    ReleaseStage.ROLLED_BACK: _RED,
    ReleaseStage.SUPERSEDED: _DARK,
}

# What each verb means for a person, shown next to its button.
VERB_HELP = {
    "pause": "Stops between pods (the pod being patched finishes first). Resumable.",
    "resume": "Runs the paused step again; failures seen so far no longer count. "
    "A denied or expired step is prepared again with a fresh pod list.",
    "abort": "Stops for good. Pods already updated keep the new image (roll back to undo).",
    "rollback": "At once, new pods of this cluster get the previous revision again; then a new "
    "rollout returns the updated pods through the same steps and approvals. A running or paused "
    "rollout is aborted first (between pods).",
    "restart": "Creates a restart rollout: the workloads owning the pods that need recreate are "
    "restarted (kubectl rollout restart), in steps (targets of workloads, e.g. 1,100%) that each need "
    "an approval. Bare and ReplicaSet-only pods are listed, never touched. Preview it first.",
}


def state_badge(state: str, label: str | None = None) -> str:
    """A coloured pill for a rollout, step or pod-update state."""
    colour = _STATE_COLOURS.get(state, _GREY)  # type: ignore[call-overload]  # TextChoices members are str
    return format_html(
        '<span class="sh-badge" style="display:inline-block;padding:1px 8px;border-radius:10px;'
        'color:#fff;background:{};font-size:11px;font-weight:600;white-space:nowrap">{}</span>',
        colour,
        label or state.replace("_", " "),
    )


# The console shows two pod counts that must never read alike (README, "Two pod counts"):
# - a rollout's own record, its ledger (``progress_bar_html``): "rollout: 1 / 5 pods done", the
#   pods it updated of those it plans to update in place over its steps, failures apart;
# - what the cluster reports (``observed_pods_html``): "pods on revision: 2 / 6", the pods the
#   SidecarSet matches there now and, of those, the ones on the revision the cluster carries
#   (Kruise's matchedPods / updatedPods from the last status refresh), pods created since a
#   rollout began included.
_LEDGER_OF = {
    "rollout": "This rollout's own record (not a live count of the cluster)",
    "step": "This step's own record (not a live count of the cluster)",
    "rollouts": "These rollouts' own records, summed (not a live count of the clusters)",
}
_LEDGER_TOTAL = {
    "rollout": "pods it updates in place over all its steps",
    "step": "pods of this step",
    "rollouts": "pods they update in place over all their steps",
}


def _bar_html(
    title: str, css_class: str, width_px: int, parts: Iterable[tuple[str, float, str]], text: Any
) -> str:
    """A bar of coloured shares (class, percent, colour) over a grey track, with its words below."""
    shares = format_html_join("", '<div class="{}" style="width:{}%;background:{}"></div>', parts)
    return format_html(
        '<div class="{}" title="{}" style="display:flex;flex-direction:column;gap:2px">'
        '<div style="display:flex;width:{}px;height:10px;background:#d0d7de;'
        'border-radius:5px;overflow:hidden">{}</div>'
        '<span style="font-size:11px;white-space:nowrap">{}</span></div>',
        css_class,
        title,
        width_px,
        shares,
        text,
    )


def progress_bar_html(progress: Progress, width_px: int = 160, scope: str = "rollout") -> str:
    """A rollout's (``scope`` "step": a step's; "rollouts": several summed) own record as a bar
    (green updated, red failed, grey in flight) and "rollout: updated / total pods done", with
    failures."""
    title = (
        f"{_LEDGER_OF[scope]}: {progress.updated} pods updated, {progress.failed} failed, "
        f"{progress.in_flight} in flight, {progress.skipped} skipped, {progress.pod_gone} gone, "
        f"of the {progress.total} {_LEDGER_TOTAL[scope]}"
    )
    failed = (
        format_html(' · <strong style="color:{}">{} failed</strong>', _RED, progress.failed)
        if progress.failed
        else ""
    )
    text = format_html("{}: {} / {} pods done{}", scope, progress.updated, progress.total, failed)
    parts = (
        ("sh-updated", progress.share(progress.updated), _GREEN),
        ("sh-failed", progress.share(progress.failed), _RED),
        ("sh-inflight", progress.share(progress.in_flight), "#8c959f"),
    )
    return _bar_html(title, "sh-progress", width_px, parts, text)


def observed_pods_html(row: fleet.FleetCluster, width_px: int = 120) -> str:
    """The pods a cluster reported for a SidecarSet as a blue bar and "pods on revision:
    updated / matched" ("" until its status refresh first observed them)."""
    if row.matched_pods is None:
        return ""
    matched = row.matched_pods
    updated = min(row.updated_pods or 0, matched)
    when = f" at {row.status_observed_at:%Y-%m-%d %H:%M} UTC" if row.status_observed_at else ""
    serving = f" (serving #{row.serving_revision})" if row.serving_revision is not None else ""
    title = (
        f"Observed live in cluster {row.cluster} by its status refresh{when}: {updated} of the "
        f"{matched} pods this SidecarSet matches there run the revision the cluster carries"
        f"{serving}, {row.ready_pods or 0} ready. Every matching pod counts, pods created since a "
        "rollout began included: not a rollout's own count."
    )
    share = round(100.0 * updated / matched, 2) if matched else 0.0
    text = format_html("pods on revision: {} / {}", updated, matched)
    return _bar_html(title, "sh-observed-pods", width_px, (("sh-on-revision", share, _BLUE),), text)


def _ago(value: Any) -> str:
    if value is None:
        return "-"
    seconds = int((timezone.now() - value).total_seconds())
    if seconds < 0:
        return f"in {_span(-seconds)}"
    return f"{_span(seconds)} ago"


def _span(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _split_tag(image: str) -> tuple[str, str]:
    """``registry:5000/team/agent:2`` -> (``registry:5000/team/agent``, ``2``); no tag -> ''."""
    repository, colon, tag = image.rpartition(":")
    if not colon or "/" in tag:  # the colon was a registry port
        return image, ""
    return repository, tag


def _image_change_text(old: str, new: str) -> tuple[str, str]:
    """Short forms of an image change (the whole references are the tooltip): only the tags
    when the repository is the same (``2.4.0`` → ``2.4.1``), else the last path segments."""
    old_repository, old_tag = _split_tag(old)
    new_repository, new_tag = _split_tag(new)
    if old_repository == new_repository and old_tag and new_tag:
        return _shorten(old_tag, 24), _shorten(new_tag, 24)
    return _shorten(old.rsplit("/", 1)[-1], 32), _shorten(new.rsplit("/", 1)[-1], 32)


def _diff_url(
    rollout: Rollout, from_revision: SidecarSetRevision | None, to_revision: SidecarSetRevision | None
) -> str:
    """The SidecarSet's revision diff page for the rollout's two revisions ('' when either is gone)."""
    if rollout.sidecarset_id is None or from_revision is None or to_revision is None:
        return ""
    url = reverse("admin:sidecarhub_sidecarset_diff", args=[rollout.sidecarset_id])
    return f"{url}?from={from_revision.number}&to={to_revision.number}"


def _release_url(rollout: Rollout) -> str:
    """The page of the release an update (or the rollback of one) belongs to."""
    if rollout.sidecarset_id is None or rollout.kind == RolloutKind.RESTART:
        return ""
    revision = rollout.to_revision_number
    if rollout.kind == RolloutKind.ROLLBACK:
        if rollout.rollback_of_id is None:
            return ""
        source = Rollout.objects.filter(pk=rollout.rollback_of_id)
        revision = source.values_list("to_revision_number", flat=True).first() or 0
        if not revision:
            return ""
    return release_url(rollout.sidecarset_id, revision)


def release_url(sidecarset_id: int, revision: int) -> str:
    return reverse("admin:rollouts_rollout_release", args=[sidecarset_id, revision])


def deleted_label(name: str, deleted: bool) -> str:
    """A cluster's (or SidecarSet's) copied name, marked when it was deleted from the hub."""
    if deleted:
        return format_html('{} <span class="sh-quiet">(deleted)</span>', name)
    return name


@admin.register(Rollout)
class RolloutAdmin(ReadOnlyAdmin):
    """Rollouts with state, cluster, wave and progress; the detail page drives them."""

    list_display = (
        "id",
        "sidecarset_name",
        "revisions",
        "cluster_display",
        "wave",
        "state_and_status",
        "progress_display",
        "step_display",
        "author_name",
        "changed",
    )
    list_display_links = ("id", "sidecarset_name")
    list_filter = ("state", "kind", "cluster_name", "wave")  # the copied name: deleted clusters too
    search_fields = ("sidecarset_name", "author_name", "reason")
    list_per_page = 50
    actions = (
        "approve_next_step",
        "pause_selected",
        "resume_selected",
        "abort_selected",
        "rollback_selected",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Rollout]:
        return rollouts_with_progress(super().get_queryset(request).select_related("cluster"))

    # --- columns --------------------------------------------------------------------------------

    @admin.display(description="cluster", ordering="cluster_name")
    def cluster_display(self, rollout: Rollout) -> str:
        return deleted_label(rollout.cluster_name, rollout.cluster_id is None)

    @admin.display(description="revision")
    def revisions(self, rollout: Rollout) -> str:
        source = f"#{rollout.from_revision_number}" if rollout.from_revision_number else "none"
        arrow = " ↩ " if rollout.kind == "rollback" else " → "
        return f"{source}{arrow}#{rollout.to_revision_number}"

    @admin.display(description="state", ordering="state")
    def state_display(self, rollout: Rollout) -> str:
        if rollout.outcome == RolloutOutcome.NEEDS_RECREATE:  # never the plain green "completed"
            return state_badge(rollout.outcome, f"completed, {rollout.needs_recreate} need recreate")
        badge = state_badge(rollout.state, rollout.get_state_display())
        if rollout.abort_requested:
            return format_html("{} <small>abort requested</small>", badge)
        if rollout.pause_requested:
            return format_html("{} <small>pause requested</small>", badge)
        return badge

    @admin.display(description="progress")
    def progress_display(self, rollout: Rollout) -> str:
        return progress_bar_html(progress_of(rollout), 120)

    @admin.display(description="step")
    def step_display(self, rollout: Rollout) -> str:
        current = getattr(rollout, "current_step", None)
        total = getattr(rollout, "steps_total", 0)
        return f"{current} of {total}" if current else f"done ({total})"

    @admin.display(description="state: what it waits for", ordering="state")
    def state_and_status(self, rollout: Rollout) -> str:
        return format_html(
            '{}<div class="sh-status-line" style="font-size:11px;max-width:260px">{}</div>',
            self.state_display(rollout),
            pages.annotated_rollout_status(rollout),
        )

    @admin.display(description="changed", ordering="state_changed_at")
    def changed(self, rollout: Rollout) -> str:
        return format_html(
            '<span title="{}">{}</span>', rollout.state_changed_at, _ago(rollout.state_changed_at)
        )

    # --- permissions of the buttons and actions --------------------------------------------------

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return can_operate(request.user)

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(APPROVE_PERMISSION))

    # --- the service calls (one place for the messages) ------------------------------------------

    def _call(self, request: HttpRequest, what: str, call: Callable[[], Any]) -> Any:
        """Run one service call; turn its refusal into a message. Returns its result or None."""
        try:
            return call()
        except NotPermitted as exc:
            self.message_user(request, f"{what}: not permitted: {exc}", messages.ERROR)
        except InvalidTransition as exc:
            self.message_user(
                request,
                f"{what}: nothing done, the {exc.what} is now {exc.current_state} ({exc})",
                messages.WARNING,
            )
        except RolloutError as exc:
            self.message_user(request, f"{what}: {exc}", messages.ERROR)
        return None

    def _operate(
        self, request: HttpRequest, verb: str, rollout_id: int, reason: str, steps: list[str] | None = None
    ) -> Rollout | None:
        calls: dict[str, Callable[..., Rollout]] = {
            "pause": services.pause_rollout,
            "resume": services.resume_rollout,
            "abort": services.abort_rollout,
            "rollback": services.rollback_rollout,
            "restart": functools.partial(restarts.start_restart, steps=steps or None),
        }
        call = calls[verb]
        result = self._call(
            request,
            f"{verb} rollout {rollout_id}",
            lambda: call(rollout_id, actor=request.user, request_id=request_id_of(request), reason=reason),
        )
        if result is not None:
            if verb == "restart":
                text = (
                    f"rollout {rollout_id}: restart rollout {result.pk} created; approve its steps to run it"
                )
            elif verb == "rollback":
                text = (
                    f"rollout {rollout_id}: rollback rollout {result.pk} created; approve its steps to run it"
                )
            elif result.pause_requested or result.abort_requested:
                text = f"rollout {rollout_id}: {verb} requested; the worker stops between pods"
            else:
                text = f"rollout {rollout_id} is now {result.state}"
            self.message_user(request, text, messages.SUCCESS)
        return result

    def _decide(self, request: HttpRequest, step_id: int, decision: str, comment: str) -> Approval | None:
        call = services.approve_step if decision == "approve" else services.deny_step
        result = self._call(
            request,
            f"{decision} step {step_id}",
            lambda: call(step_id, actor=request.user, request_id=request_id_of(request), comment=comment),
        )
        if result is not None:
            done = "approved" if decision == "approve" else "denied (the rollout pauses)"
            self.message_user(request, f"step {result.step.ordinal} {done}", messages.SUCCESS)
        return result

    def _bulk(self, request: HttpRequest, queryset: QuerySet[Rollout], verb: str) -> None:
        for rollout_id in queryset.values_list("pk", flat=True):
            self._operate(request, verb, rollout_id, "from the admin list")

    @admin.action(description="Pause selected rollouts", permissions=["operate"])
    def pause_selected(self, request: HttpRequest, queryset: QuerySet[Rollout]) -> None:
        self._bulk(request, queryset, "pause")

    @admin.action(description="Resume selected rollouts", permissions=["operate"])
    def resume_selected(self, request: HttpRequest, queryset: QuerySet[Rollout]) -> None:
        self._bulk(request, queryset, "resume")

    @admin.action(description="Abort selected rollouts", permissions=["operate"])
    def abort_selected(self, request: HttpRequest, queryset: QuerySet[Rollout]) -> None:
        self._bulk(request, queryset, "abort")

    @admin.action(
        description="Roll back selected rollouts (new rollouts, need approvals)", permissions=["operate"]
    )
    def rollback_selected(self, request: HttpRequest, queryset: QuerySet[Rollout]) -> None:
        self._bulk(request, queryset, "rollback")

    @admin.action(
        description="Approve the step awaiting approval of selected rollouts", permissions=["approve"]
    )
    def approve_next_step(self, request: HttpRequest, queryset: QuerySet[Rollout]) -> None:
        steps = RolloutStep.objects.filter(rollout__in=queryset, state__in=APPROVABLE_STEP_STATES)
        found = False
        for step_id in steps.values_list("pk", flat=True):
            found = True
            self._decide(request, step_id, "approve", "approved from the admin list")
        if not found:
            self.message_user(
                request, "none of the selected rollouts has a step awaiting approval", messages.INFO
            )

    # --- pages ------------------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        own = [
            path(
                "<int:object_id>/operate/<str:verb>/",
                view(self.operate_view),
                name="rollouts_rollout_operate",
            ),
            path(
                "<int:object_id>/steps/<int:step_id>/<str:decision>/",
                view(self.decide_view),
                name="rollouts_rollout_decide",
            ),
            path("<int:object_id>/preview/", view(self.preview_view), name="rollouts_rollout_preview"),
            path("fleet/<int:sidecarset_id>/", view(self.fleet_view), name="rollouts_rollout_fleet"),
            path(
                "release/<int:sidecarset_id>/<int:revision>/",
                view(self.release_view),
                name="rollouts_rollout_release",
            ),
            path(
                "<int:object_id>/restart-preview/",
                view(self.restart_preview_view),
                name="rollouts_rollout_restart_preview",
            ),
        ]
        return own + super().get_urls()

    def _detail_url(self, rollout_id: int) -> str:
        return reverse("admin:rollouts_rollout_change", args=[rollout_id])

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        """The rollout's page: what changes (images, revisions, diff), where (SidecarSet, cluster,
        release), what it waits for, progress over all steps, buttons, steps, history."""
        rollout = self._page_rollout(request, object_id)
        operable = can_operate(request.user, rollout)
        verbs = [
            (verb, VERB_HELP[verb])
            for verb, allowed_states in (
                ("pause", {RolloutState.PENDING, RolloutState.RUNNING}),
                ("resume", {RolloutState.PAUSED}),
                ("abort", {RolloutState.PENDING, RolloutState.RUNNING, RolloutState.PAUSED}),
                (
                    "rollback",
                    {RolloutState.PAUSED, RolloutState.COMPLETED, RolloutState.ABORTED, RolloutState.FAILED},
                ),
                ("restart", {RolloutState.RUNNING, RolloutState.PAUSED, RolloutState.COMPLETED}),
            )
            if rollout.state in allowed_states
            and not (verb == "restart" and rollout.kind == RolloutKind.RESTART)
        ]
        history = (
            StepTransition.objects.filter(rollout=rollout).select_related("step").order_by("-at", "-id")[:100]
        )
        revisions = {
            revision.pk: revision
            for revision in SidecarSetRevision.objects.filter(
                pk__in=[pk for pk in (rollout.from_revision_id, rollout.to_revision_id) if pk is not None]
            )
        }
        from_revision = revisions.get(rollout.from_revision_id) if rollout.from_revision_id else None
        to_revision = revisions.get(rollout.to_revision_id) if rollout.to_revision_id else None
        context = {
            **self.admin_site.each_context(request),
            **self.progress_context(request, rollout),
            "title": f"Rollout {rollout.pk}: {rollout.sidecarset_name} in {rollout.cluster_name}",
            "opts": self.model._meta,
            "original": rollout,
            "revisions": self.revisions(rollout),
            "images": pages.image_changes(from_revision, to_revision),
            "diff_url": _diff_url(rollout, from_revision, to_revision),
            "sidecarset_url": reverse("admin:sidecarhub_sidecarset_change", args=[rollout.sidecarset_id])
            if rollout.sidecarset_id
            else "",
            "cluster_url": reverse("admin:clusters_cluster_change", args=[rollout.cluster_id])
            if rollout.cluster_id
            else "",
            "release_url": _release_url(rollout),
            "verbs": verbs if operable else [],
            "operable": operable,
            "history": history,
            "pod_updates_url": reverse("admin:rollouts_podupdate_changelist")
            + f"?rollout__id__exact={rollout.pk}",
            "export_url": reverse("admin:rollouts_podupdate_export") + f"?rollout__id__exact={rollout.pk}",
            "preview_url": reverse("admin:rollouts_rollout_preview", args=[rollout.pk]),
            "restart_preview_url": ""
            if rollout.kind == RolloutKind.RESTART
            else reverse("admin:rollouts_rollout_restart_preview", args=[rollout.pk]),
            "restart_of_url": self._detail_url(rollout.restart_of_id) if rollout.restart_of_id else "",
            "rollback_of_url": self._detail_url(rollout.rollback_of_id) if rollout.rollback_of_id else "",
            # A live region (sidecarhub.live): polled while the rollout can still change.
            **page_context(request, live=rollout.state in ACTIVE_ROLLOUT_STATES),
        }
        return live_response(TemplateResponse(request, "admin/rollouts/rollout/detail.html", context))

    def _page_rollout(self, request: HttpRequest, object_id: str | int) -> Rollout:
        """The rollout with its progress counts and its steps (each with its counts and approvals)."""
        steps = steps_with_progress(RolloutStep.objects.order_by("ordinal")).prefetch_related(
            Prefetch("approvals", queryset=Approval.objects.order_by("at", "id"))
        )
        rollout = get_object_or_404(
            self.get_queryset(request).prefetch_related(Prefetch("rollout_steps", queryset=steps)),
            pk=object_id if str(object_id).isdigit() else -1,
        )
        if not self.has_view_permission(request, rollout):
            raise PermissionDenied
        return rollout

    def progress_context(self, request: HttpRequest, rollout: Rollout) -> dict[str, Any]:
        """The context of ``_progress.html`` (status sentence, progress over all steps, steps with
        their pods and approvals): the part of the page that changes while a rollout moves."""
        user = request.user
        steps = list(rollout.rollout_steps.all())
        step_rows = []
        for step in steps:
            decidable = step.state in APPROVABLE_STEP_STATES and rollout.state == RolloutState.RUNNING
            step.rollout = rollout  # the policy reads step.rollout.cluster: no extra query
            step_rows.append(
                {
                    "step": step,
                    "badge": state_badge(step.state, step.get_state_display()),
                    "progress": progress_bar_html(progress_of(step), 120, scope="step"),
                    "decidable": decidable,
                    "refusal": approval_refusal(user, step) if decidable else None,
                    "expires_in": _ago(step.expires_at) if step.expires_at else "",
                    # A step's note is current only while it is paused or once it has ended: a
                    # resumed step's pause note is history (shown in the table below).
                    "note": step.explanation
                    if step.state not in (StepState.RUNNING, StepState.APPROVED, StepState.PENDING)
                    else "",
                }
            )
        progress = progress_of(rollout)
        return {
            "rollout": rollout,
            "state": self.state_display(rollout),
            "status": pages.rollout_status(rollout, steps),
            "progress": progress,
            "progress_bar": progress_bar_html(progress, 320),
            "steps": step_rows,
        }

    def operate_view(self, request: HttpRequest, object_id: int, verb: str) -> HttpResponse:
        """POST: pause, resume, abort or roll back (through the services)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if verb not in VERB_HELP:
            raise PermissionDenied
        rollout = get_object_or_404(Rollout, pk=object_id)
        if not self.has_view_permission(request, rollout):
            raise PermissionDenied
        steps = [part.strip() for part in request.POST.get("steps", "").split(",") if part.strip()]
        result = self._operate(request, verb, rollout.pk, request.POST.get("reason", "")[:300], steps)
        if verb in ("rollback", "restart") and result is not None:
            return HttpResponseRedirect(self._detail_url(result.pk))
        return HttpResponseRedirect(self._detail_url(rollout.pk))

    def decide_view(self, request: HttpRequest, object_id: int, step_id: int, decision: str) -> HttpResponse:
        """POST: approve or deny one step (the service applies the permission and four eyes)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if decision not in ("approve", "deny"):
            raise PermissionDenied
        step = get_object_or_404(RolloutStep, pk=step_id, rollout_id=object_id)
        if not self.has_view_permission(request, None):
            raise PermissionDenied
        self._decide(request, step.pk, decision, request.POST.get("comment", "")[:2000])
        return HttpResponseRedirect(self._detail_url(object_id))

    def fleet_view(self, request: HttpRequest, sidecarset_id: int) -> HttpResponse:
        """The fleet panel of a SidecarSet's page alone: what its live region polls."""
        sidecarset = get_object_or_404(SidecarSet, pk=sidecarset_id)
        html = fleet_panel(request, sidecarset)
        if not html:
            raise PermissionDenied
        return live_response(HttpResponse(html))

    def release_view(self, request: HttpRequest, sidecarset_id: int, revision: int) -> HttpResponse:
        """One release: a published revision across its clusters and waves (``rollouts.pages``)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            page = pages.release_page(sidecarset_id, revision)
        except RolloutNotFound as exc:
            raise Http404(str(exc)) from None
        diff_url = ""
        if page.previous_revision is not None:
            diff_url = (
                reverse("admin:sidecarhub_sidecarset_diff", args=[sidecarset_id])
                + f"?from={page.previous_revision}&to={revision}"
            )
        lines = [
            {
                "line": line,
                "rollout": _rollout_cell(line.member.rollout),
                "rollback": _rollout_cell(line.member.rollback),
                "progress_bar": progress_bar_html(line.progress, 140),
                "cluster_url": reverse("admin:clusters_cluster_change", args=[line.member.cluster_id])
                if line.member.cluster_id
                else "",
            }
            for line in page.rollouts
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": f"Release of {page.sidecarset} revision {revision}",
            "opts": self.model._meta,
            "page": page,
            "release": page.release,
            "badge": state_badge(page.release.stage, ReleaseStage(page.release.stage).label),
            "progress_bar": progress_bar_html(page.progress, 320, scope="rollouts"),
            "lines": lines,
            "diff_url": diff_url,
            "sidecarset_url": reverse("admin:sidecarhub_sidecarset_change", args=[sidecarset_id]),
        }
        return TemplateResponse(request, "admin/rollouts/rollout/release.html", context)

    def preview_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """The next step's exact pods: stored once prepared, computed from the cluster before."""
        rollout = get_object_or_404(Rollout.objects.select_related("cluster"), pk=object_id)
        if not self.has_view_permission(request, rollout):
            raise PermissionDenied
        preview = None
        error = ""
        try:
            preview = previews.preview_next_step(rollout.pk, actor=request.user)
        except KubeError as exc:
            error = f"cannot read the pods of cluster {rollout.cluster_name} now: {exc}"
        except RolloutError as exc:
            error = str(exc)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Next step of rollout {rollout.pk}",
            "opts": self.model._meta,
            "original": rollout,
            "rollout": rollout,
            "preview": preview,
            "error": error,
            "detail_url": self._detail_url(rollout.pk),
        }
        return TemplateResponse(request, "admin/rollouts/rollout/preview.html", context)

    def restart_preview_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """What a restart of the rollout's pods that need recreate would do now (decision 18)."""
        rollout = get_object_or_404(Rollout.objects.select_related("cluster"), pk=object_id)
        if not self.has_view_permission(request, rollout):
            raise PermissionDenied
        steps = [part.strip() for part in request.GET.get("steps", "").split(",") if part.strip()]
        preview = None
        error = ""
        try:
            preview = restarts.preview_restart(rollout.pk, actor=request.user, steps=steps or None)
        except KubeError as exc:
            error = f"cannot read cluster {rollout.cluster_name} now: {exc}"
        except RolloutError as exc:
            error = str(exc)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Restart preview of rollout {rollout.pk}",
            "opts": self.model._meta,
            "original": rollout,
            "rollout": rollout,
            "preview": preview,
            "steps": ",".join(steps),
            "error": error,
            "detail_url": self._detail_url(rollout.pk),
        }
        return TemplateResponse(request, "admin/rollouts/rollout/restart_preview.html", context)


# --- the fleet view on the SidecarSet's page ------------------------------------------------------

FLEET_PERMISSIONS = ("rollouts.view_rollout", "clusters.view_cluster")
RECENT_ROLLOUTS = 20  # the SidecarSet page lists its newest rollouts; the changelist has them all


def _statuses(summaries: Iterable[fleet.RolloutSummary | None]) -> dict[int, str]:
    """Rollout id -> ``pages.rollout_status`` of the summarized rollouts (two queries)."""
    ids = {summary.id for summary in summaries if summary is not None}
    rows = Rollout.objects.filter(pk__in=ids).prefetch_related("rollout_steps")
    return {row.pk: pages.rollout_status(row, row.rollout_steps.all()) for row in rows}


def _rollout_cell(
    rollout: fleet.RolloutSummary | None, statuses: Mapping[int, str] | None = None
) -> dict[str, Any] | None:
    if rollout is None:
        return None
    source = f"#{rollout.from_revision}" if rollout.from_revision is not None else "none"
    arrow = " ↩ " if rollout.kind == RolloutKind.ROLLBACK else " → "
    return {
        "summary": rollout,
        "url": reverse("admin:rollouts_rollout_change", args=[rollout.id]),
        "badge": state_badge(rollout.state),
        "step_badge": state_badge(rollout.step_state) if rollout.step_state else "",
        "revisions": f"{source}{arrow}#{rollout.to_revision}",
        "status": (statuses or {}).get(rollout.id, rollout.reason),
    }


def fleet_panel(request: HttpRequest, sidecarset: SidecarSet) -> str:
    """The ``Fleet`` and ``Releases`` tables of a SidecarSet's change page (``rollouts.fleet``);
    nothing for users who may not see rollouts and clusters."""
    if not request.user.has_perms(FLEET_PERMISSIONS):
        return ""
    found = fleet.fleet_of(sidecarset.pk)
    found_releases = fleet.releases_of(sidecarset.pk).releases
    statuses = _statuses(
        [row.latest_rollout for row in found.clusters]
        + [
            summary
            for release in found_releases
            for member in release.clusters
            for summary in (member.rollout, member.rollback)
        ]
    )
    clusters = [
        {
            "row": row,
            "cluster_url": reverse("admin:clusters_cluster_change", args=[row.cluster_id]),
            "drift_url": reverse("admin:clusters_driftedpod_changelist")
            + f"?cluster__id__exact={row.cluster_id}",
            "rollout": _rollout_cell(row.latest_rollout, statuses),
            "pods": observed_pods_html(row, 120),
        }
        for row in found.clusters
    ]
    skipped = [
        {"skipped": skipped, "url": reverse("admin:clusters_cluster_change", args=[skipped.cluster_id])}
        for skipped in found.skipped_clusters
    ]
    releases = [
        {
            "release": release,
            "badge": state_badge(release.stage, release.stage_text),
            "url": release_url(sidecarset.pk, release.revision),
            "clusters": [
                {
                    "wave": wave.wave,
                    "member": member,
                    "rollout": _rollout_cell(member.rollout, statuses),
                    "rollback": _rollout_cell(member.rollback, statuses),
                }
                for wave in release.waves
                for member in wave.clusters
            ],
        }
        for release in found_releases
    ]

    recent = rollouts_with_progress(
        Rollout.objects.filter(sidecarset_id=sidecarset.pk).order_by("-created_at", "-id")
    ).prefetch_related("rollout_steps")[:RECENT_ROLLOUTS]
    rollouts = [
        {
            "rollout": rollout,
            "url": reverse("admin:rollouts_rollout_change", args=[rollout.pk]),
            "badge": state_badge(rollout.state, rollout.get_state_display()),
            "status": pages.rollout_status(rollout, rollout.rollout_steps.all()),
            "progress": progress_bar_html(progress_of(rollout), 120),
        }
        for rollout in recent
    ]
    context = {
        "fleet": found,
        "clusters": clusters,
        "skipped": skipped,
        "releases": releases,
        # A live region (sidecarhub.live) that polls this panel alone.
        **page_context(request),
        "live_url": reverse("admin:rollouts_rollout_fleet", args=[sidecarset.pk]),
        "rollouts": rollouts,
        "all_rollouts_url": reverse("admin:rollouts_rollout_changelist")
        + f"?sidecarset_name={sidecarset.name}",
    }
    return render_to_string("admin/rollouts/sidecarset/fleet.html", context, request=request)


SidecarSetAdmin.add_change_page_panel(fleet_panel)


def publish_preview_panel(request: HttpRequest, sidecarset: SidecarSet) -> str:
    """What publishing would do (``previews.preview_publish``), shown on the publish page before
    confirming: the clusters by wave, the steps, pods in place vs needing recreate per cluster."""
    if not request.user.has_perms(FLEET_PERMISSIONS):
        return ""
    preview = previews.preview_publish(sidecarset.pk, actor=request.user)
    rows = [
        {"row": cluster, "url": reverse("admin:clusters_cluster_change", args=[cluster.cluster_id])}
        for cluster in preview.clusters
    ]
    skipped = [
        {"skipped": skipped, "url": reverse("admin:clusters_cluster_change", args=[skipped.cluster_id])}
        for skipped in preview.skipped_clusters
    ]
    supersedes = [
        {"rollout": rollout, "url": reverse("admin:rollouts_rollout_change", args=[rollout.id])}
        for rollout in preview.supersedes
    ]
    context = {"preview": preview, "rows": rows, "supersedes": supersedes, "skipped": skipped}
    return render_to_string("admin/rollouts/sidecarset/publish_preview.html", context, request=request)


def published_note(request: HttpRequest, revision: SidecarSetRevision) -> str:
    """The success message's link to the release a publish started (its rollouts by cluster)."""
    clusters = list(
        Rollout.objects.filter(to_revision=revision, kind=RolloutKind.UPDATE)
        .order_by("wave", "cluster_name")
        .values_list("cluster_name", flat=True)
    )
    if not clusters:
        return "No rollout: every target cluster serves it at once (or it has no target cluster)."
    return format_html(
        '<a href="{}" class="sh-release-link">Release of revision {}</a>: {} rollout{} ({}).',
        release_url(revision.sidecarset_id, revision.number),
        revision.number,
        len(clusters),
        "" if len(clusters) == 1 else "s",
        ", ".join(clusters),
    )


SidecarSetAdmin.add_publish_page_panel(publish_preview_panel)
SidecarSetAdmin.add_published_note(published_note)


@admin.register(PodUpdate)
class PodUpdateAdmin(ReadOnlyAdmin):
    """Per-pod history (read-only) with filters and CSV export of the filtered list."""

    # Six narrow columns, so the image and outcome stay on screen at 1,400 px beside the nav
    # and filter sidebars: the cluster goes under the pod, the error under the outcome, and long
    # values (pod names, image references, errors) are cut with the whole value as a tooltip.
    list_display = (
        "when",
        "pod_display",
        "rollout_link",
        "outcome_display",
        "image_change",
        "duration",
    )
    list_filter = ("outcome", "state", "workload_kind", "cluster_name", "claimed_at")
    search_fields = (
        "pod_name",
        "namespace",
        "pod_uid",
        "workload_name",
        "to_image",
        "error",
        "rollout__sidecarset_name",
    )
    date_hierarchy = "claimed_at"
    list_select_related = ("rollout", "step")
    list_per_page = 100
    actions = ("export_selected",)
    change_list_template = "admin/rollouts/podupdate/change_list.html"

    @admin.display(description="claimed (UTC)", ordering="claimed_at")
    def when(self, update: PodUpdate) -> str:
        return format_html(
            '<span title="{}" class="sh-nowrap">{}</span>',
            update.claimed_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            update.claimed_at.strftime("%m-%d %H:%M"),
        )

    @admin.display(description="pod", ordering="pod_name")
    def pod_display(self, update: PodUpdate) -> str:
        full = f"{update.namespace}/{update.pod_name}"
        workload = f" ({update.workload_kind} {update.workload_name})" if update.workload_kind else ""
        return format_html(
            '<span class="sh-cut sh-pod" title="{}{}">{}</span>'
            '<span class="sh-cut sh-pod sh-quiet" title="{}">{} · {}</span>',
            full,
            workload,
            update.pod_name,
            full,
            deleted_label(update.cluster_name, update.cluster_id is None),
            update.namespace,
        )

    @admin.display(description="rollout", ordering="rollout")
    def rollout_link(self, update: PodUpdate) -> str:
        url = reverse("admin:rollouts_rollout_change", args=[update.rollout_id])
        return format_html(
            '<a href="{}" title="{} rollout {}, step {}" class="sh-nowrap">#{} · {}</a>',
            url,
            update.rollout.sidecarset_name,
            update.rollout_id,
            update.step.ordinal,
            update.rollout_id,
            update.step.ordinal,
        )

    @admin.display(description="image (from → to)")
    def image_change(self, update: PodUpdate) -> str:
        # Several sidecars: comma-joined, in the same order (see PodUpdate).
        containers = update.container.split(",")
        before = update.from_image.split(",") if update.from_image else []
        after = update.to_image.split(",")
        lines = []
        for position, container in enumerate(containers):
            old = before[position] if position < len(before) else "?"
            new = after[position] if position < len(after) else "?"
            short_old, short_new = _image_change_text(old, new)
            lines.append(
                format_html(
                    '<div class="sh-cut sh-image" title="{}: {} → {}">{}: {} → <strong>{}</strong></div>',
                    container,
                    old,
                    new,
                    container,
                    short_old,
                    short_new,
                )
            )
        return format_html_join("", "{}", ((line,) for line in lines))

    @admin.display(description="outcome", ordering="outcome")
    def outcome_display(self, update: PodUpdate) -> str:
        if not update.outcome:
            return state_badge(update.state, f"{update.get_state_display()}…")
        badge = state_badge(update.outcome, update.get_outcome_display())
        if not update.error:
            return badge
        return format_html(
            '{}<span class="sh-cut sh-error" title="{}">{}</span>', badge, update.error, update.error
        )

    @admin.display(description="took")
    def duration(self, update: PodUpdate) -> str:
        if update.done_at is None:
            return "-"
        return _span(max(0, int((update.done_at - update.claimed_at).total_seconds())))

    def _csv_response(self, rows: Any) -> StreamingHttpResponse:
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        return StreamingHttpResponse(
            pod_update_csv(rows),
            content_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="pod-updates-{stamp}.csv"'},
        )

    @admin.action(description="Export selected as CSV", permissions=["view"])
    def export_selected(self, request: HttpRequest, queryset: QuerySet[PodUpdate]) -> StreamingHttpResponse:
        return self._csv_response(queryset.order_by("-claimed_at", "-id"))

    def get_urls(self) -> list[URLPattern]:
        own = [
            path("export/", self.admin_site.admin_view(self.export_view), name="rollouts_podupdate_export")
        ]
        return own + super().get_urls()

    def export_view(self, request: HttpRequest) -> StreamingHttpResponse:
        """CSV of the changelist as filtered (same query string as the list page)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        changelist = self.get_changelist_instance(request)
        return self._csv_response(changelist.get_queryset(request))
