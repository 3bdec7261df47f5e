"""The single-flight rollout reconciler of one cluster (STYLE P9).

``reconcile_cluster(cluster_id)`` takes the cluster's advisory lock without waiting (another
worker holding it means the work is being done: return at once), then, for every rollout of
the cluster that is not finished (or still has open pod updates):

- expires approvals whose window passed (indexed ``expires_at``) and pauses their rollouts;
- starts pending rollouts whose turn came (waves in order; one active rollout per SidecarSet
  and cluster; held while the SidecarSet's current revision says ``updateStrategy.paused``);
- honours pause and abort intents between pods (between the engine's small patch chunks,
  ``engine.PATCH_CHUNK_SIZE``);
- prepares the next step, starts approved steps (one ``claimed`` PodUpdate per approved pod),
  and runs bounded passes over the running step (``rollouts.engine``);
- pauses a rollout whose step has more failures than its threshold, or made no progress for its
  progress deadline, with a reason a person can act on;
- reaps: a running step whose heartbeat is stale (its worker died) gets an explanation, and the
  pass resolves its rows by reading the pods;
- completes rollouts and wakes the clusters of the next wave.

It stops when its time budget is spent and reports whether more work is due soon (the task
then re-enqueues itself). Tests call it directly, step by step.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from clusters.kube import KubeClient, KubeError, cached_kube_client
from clusters.models import Cluster
from rollouts import engine, lifecycle, pod_updates, restart_engine, transitions
from rollouts.choices import (
    ACTIVE_ROLLOUT_STATES,
    OPEN_POD_UPDATE_STATES,
    PATCHED_POD_UPDATE_STATES,
    TERMINAL_STEP_STATES,
    RolloutKind,
    RolloutState,
    StepState,
)
from rollouts.models import PodUpdate, Rollout, RolloutStep, with_note
from rollouts.pass_inputs import PassInputs, PodListing
from rollouts.transitions import InvalidTransition, RolloutError
from sidecarhub.locks import LOCKS, try_advisory_lock
from sidecarhub.sidecarset import SidecarSet

__all__ = ["ReconcileReport", "reconcile_cluster"]

log = logging.getLogger(__name__)


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


@dataclass
class ReconcileReport:
    """What one reconcile did. ``more_work``: run again soon (a step is running or observing)."""

    cluster_id: int
    locked_out: bool = False
    patched: int = 0
    finished: int = 0
    transitions: list[str] = field(default_factory=list)
    more_work: bool = False
    error: str = ""
    pod_lists: int = 0  # pod LIST calls (one per turn and label selector: ``PassInputs``)
    wake_clusters: set[int] = field(default_factory=set)  # other clusters whose next wave may start


def reconcile_cluster(
    cluster_id: int,
    *,
    kube: KubeClient | None = None,
    time_budget_seconds: float | None = None,
    max_patches: int | None = None,
) -> ReconcileReport:
    """One bounded reconcile of the cluster's rollouts (see the module docstring). Safe to call
    from many workers at once and again after a crash: only one runs, the others return."""
    report = ReconcileReport(cluster_id)
    with try_advisory_lock(LOCKS.rollout_reconcile(cluster_id)) as acquired:
        if not acquired:
            report.locked_out = True
            return report
        cluster = Cluster.objects.filter(pk=cluster_id).first()
        if cluster is None:
            return report
        budget = (
            time_budget_seconds
            if time_budget_seconds is not None
            else _setting("SIDECARHUB_ROLLOUT_PASS_SECONDS", 5.0)
        )
        patches = int(max_patches or _setting("SIDECARHUB_ROLLOUT_PATCHES_PER_PASS", 1000))
        deadline = time.monotonic() + budget
        try:
            kube = kube or cached_kube_client(cluster)
            _expire_approvals(cluster_id, report)
            reconcile = _Pass(cluster, kube, report, deadline, patches)
            try:
                reconcile.run()
            finally:
                report.pod_lists = reconcile.inputs.pod_lists
        except KubeError as exc:
            report.error = str(exc)
            report.more_work = True
            log.info("rollouts in cluster %s: %s", cluster.name, exc)
    return report


def _expire_approvals(cluster_id: int, report: ReconcileReport) -> None:
    expired = RolloutStep.objects.filter(
        rollout__cluster_id=cluster_id, state=StepState.AWAITING_APPROVAL, expires_at__lte=timezone.now()
    ).values_list("pk", flat=True)
    for step_id in expired:
        try:
            lifecycle.expire_step(step_id, actor=None, request_id="")
            report.transitions.append(f"step {step_id} expired")
        except InvalidTransition:
            pass


class _Pass:
    """One reconcile over one cluster, in turns: each turn advances every unfinished rollout as
    far as it can go, every stage working from the turn's one pod list (``PassInputs``)."""

    def __init__(
        self, cluster: Cluster, kube: KubeClient, report: ReconcileReport, deadline: float, patches: int
    ) -> None:
        self.cluster, self.kube, self.report, self.deadline, self.patches = (
            cluster,
            kube,
            report,
            deadline,
            patches,
        )
        self.inputs = PassInputs(kube)

    def rollouts(self) -> list[Rollout]:
        open_rows = PodUpdate.objects.filter(cluster_id=self.cluster.pk, state__in=OPEN_POD_UPDATE_STATES)
        return list(
            Rollout.objects.select_related("sidecarset__current_revision", "to_revision", "cluster")
            .filter(cluster=self.cluster, sidecarset__isnull=False)  # a deleted SidecarSet's: history
            .filter(Q(state__in=ACTIVE_ROLLOUT_STATES) | Q(pk__in=open_rows.values("rollout_id")))
            .order_by("created_at", "pk")
        )

    def run(self) -> None:
        while True:
            self.report.more_work = False
            self.inputs.forget_pods()
            progressed = False
            for rollout in self.rollouts():
                try:
                    progressed |= self.advance(rollout)
                except (RolloutError, InvalidTransition, LookupError) as exc:
                    self.fail_or_pause(rollout, str(exc))
                if time.monotonic() >= self.deadline:
                    self.report.more_work = True
                    return
            if not self.report.more_work or time.monotonic() >= self.deadline:
                return
            if not progressed:
                # Only observing: look again shortly, within this pass's budget.
                time.sleep(min(_setting("SIDECARHUB_ROLLOUT_OBSERVE_INTERVAL_SECONDS", 0.3), 1.0))
                if time.monotonic() >= self.deadline:
                    self.report.more_work = True
                    return

    # --- per rollout -------------------------------------------------------------------------

    def fail_or_pause(self, rollout: Rollout, reason: str) -> None:
        log.warning("rollout %s: %s", rollout.pk, reason)
        try:
            if rollout.to_revision_id is None:
                transitions.fail_rollout_row(rollout.pk, actor=None, reason=reason)
            else:
                self.pause(rollout, reason)
        except InvalidTransition:
            pass

    def pause(
        self, rollout: Rollout, reason: str, step: RolloutStep | None = None, explanation: str = ""
    ) -> None:
        with transaction.atomic():
            if step is not None and step.state in (StepState.RUNNING, StepState.APPROVED):
                transitions.pause_step_row(
                    step.pk, actor=None, reason=reason, explanation=explanation or reason
                )
            transitions.pause_rollout_row(rollout.pk, actor=None, reason=reason)
            if explanation:
                # Read under the row's lock: the in-memory rollout may predate another note.
                locked = Rollout.objects.select_for_update().only("explanation").get(pk=rollout.pk)
                Rollout.objects.filter(pk=rollout.pk).update(
                    explanation=with_note(locked.explanation, explanation)
                )
        self.report.transitions.append(f"rollout {rollout.pk} paused: {reason}")

    def pods(self, rollout: Rollout) -> tuple[SidecarSet, PodListing]:
        """The SidecarSet the planner sees for ``rollout`` and this turn's pods for it."""
        core = self.inputs.planning_sidecarset(rollout)
        return core, self.inputs.pods(core)

    def advance(self, rollout: Rollout) -> bool:
        """Move one rollout as far as it can go now; True when something changed."""
        if rollout.state not in ACTIVE_ROLLOUT_STATES or rollout.state == RolloutState.PAUSED:
            return self.finalize(rollout)
        started = False
        if rollout.state == RolloutState.PENDING:
            if not self.maybe_start(rollout):
                return False
            rollout.refresh_from_db()  # started: its first step is prepared in this same turn
            started = True
        if rollout.abort_requested:
            reason = f"aborted by {rollout.intent_by or 'system'}" + (
                f": {rollout.intent_reason}" if rollout.intent_reason else ""
            )
            lifecycle.finish_aborted(rollout.pk, actor=None, request_id="", reason=reason)
            self.report.transitions.append(f"rollout {rollout.pk} aborted")
            self.report.more_work = True  # finalize open rows
            return True
        step = rollout.rollout_steps.exclude(state__in=TERMINAL_STEP_STATES).order_by("ordinal").first()
        if step is None:
            stale = pods_needing_recreate(rollout)
            with transaction.atomic():
                transitions.complete_rollout_row(
                    rollout.pk, actor=None, reason=completion_reason(rollout, stale), needs_recreate=stale
                )
                if rollout.kind == RolloutKind.RESTART and rollout.restart_of_id is not None:
                    settle_restarted_source(rollout, stale)
            self.report.transitions.append(f"rollout {rollout.pk} completed")
            self.wake_next_waves(rollout)
            return True
        if rollout.pause_requested and step.state != StepState.RUNNING:
            self.pause(rollout, self.intent_reason(rollout), step)
            return True
        if rollout.kind == RolloutKind.RESTART:
            return self.advance_restart(rollout, step) or started
        # One stage leads to the next within the turn, on the same pod list: an auto-approved
        # step is prepared, started and patched from one LIST.
        progressed = started
        if step.state == StepState.PENDING:
            progressed = self.prepare(rollout, step)
            step.refresh_from_db()
        if step.state == StepState.APPROVED:
            progressed |= self.start_step(rollout, step)
            step.refresh_from_db()
        if step.state == StepState.RUNNING:
            progressed |= self.run_step(rollout, step)
        return progressed

    def intent_reason(self, rollout: Rollout) -> str:
        return f"paused by {rollout.intent_by or 'system'}" + (
            f": {rollout.intent_reason}" if rollout.intent_reason else ""
        )

    def finalize(self, rollout: Rollout) -> bool:
        """Paused or ended: no new patches; patched pods are still observed to their outcome."""
        if not PodUpdate.objects.filter(rollout=rollout, state__in=PATCHED_POD_UPDATE_STATES).exists():
            return False
        core, listing = self.pods(rollout)
        if rollout.kind == RolloutKind.RESTART:
            restarts = restart_engine.observe_restart_rows(self.kube, rollout, listing.by_uid)
            self.report.finished += restarts.finished
            self.report.error = restarts.unreachable or self.report.error
            self.report.more_work = True
            return restarts.progressed
        ended = "" if rollout.state == RolloutState.PAUSED else f"not patched: rollout {rollout.state}"
        # kube: a hot-upgrade pod already patched finishes its switch and reset (between pods).
        result = engine.observe_open_rows(core, rollout, listing.by_uid, ended_reason=ended, kube=self.kube)
        if result.hot_writes:
            self.inputs.forget_pods()
        self.report.finished += result.finished
        self.report.more_work = True
        return result.progressed

    def maybe_start(self, rollout: Rollout) -> bool:
        wait = self.start_blocker(rollout)
        if wait:
            if rollout.reason != wait[:300]:
                Rollout.objects.filter(pk=rollout.pk, state=RolloutState.PENDING).update(reason=wait[:300])
            return False
        transitions.start_rollout_row(rollout.pk, actor=None, reason="its turn came")
        self.report.transitions.append(f"rollout {rollout.pk} started")
        self.report.more_work = True
        return True

    def start_blocker(self, rollout: Rollout) -> str:
        """Why a pending rollout may not start yet ('' when it may)."""
        earlier = (
            Rollout.objects.filter(
                sidecarset_id=rollout.live_sidecarset_id, cluster_id=rollout.live_cluster_id
            )
            .filter(Q(state__in=ACTIVE_ROLLOUT_STATES) | Q(pod_updates__state__in=OPEN_POD_UPDATE_STATES))
            .filter(
                Q(created_at__lt=rollout.created_at) | Q(created_at=rollout.created_at, pk__lt=rollout.pk)
            )
            .first()
        )
        if earlier is not None:
            return f"waiting for rollout {earlier.pk} of this SidecarSet in this cluster to stop"
        if self.cluster.held:
            by = f" by {self.cluster.held_by}" if self.cluster.held_by else ""
            return f"held: cluster {self.cluster.name} is held{by}" + (
                f": {self.cluster.held_reason}" if self.cluster.held_reason else ""
            )
        current = rollout.live_sidecarset.current_revision
        # updateStrategy.paused holds in-place updates only (decision 17)
        if (
            rollout.in_place
            and current is not None
            and self.inputs.revision_core(current).update_strategy.paused
        ):
            return "held: the SidecarSet's updateStrategy.paused is true"
        if rollout.kind == RolloutKind.UPDATE and rollout.wave > 0:
            blocking = (  # a held cluster is skipped: the release goes on without it
                Rollout.objects.filter(to_revision_id=rollout.to_revision_id, wave__lt=rollout.wave)
                .exclude(state=RolloutState.COMPLETED)
                .exclude(cluster__held=True)
                .exclude(cluster__isnull=True)  # its cluster was deleted: history, not a blocker
                .select_related("cluster")
                .first()
            )
            if blocking is not None:
                return (
                    f"waiting for wave {blocking.wave}: the rollout in cluster {blocking.cluster_name} "
                    f"is {blocking.state}"
                )
        return ""

    def wake_next_waves(self, rollout: Rollout) -> None:
        clusters = set(
            Rollout.objects.filter(
                to_revision_id=rollout.to_revision_id,
                wave__gt=rollout.wave,
                state=RolloutState.PENDING,
                cluster_id__isnull=False,
            ).values_list("cluster_id", flat=True)
        ) | set(
            Rollout.objects.filter(
                sidecarset_id=rollout.live_sidecarset_id,
                cluster_id=rollout.live_cluster_id,
                state=RolloutState.PENDING,
            ).values_list("cluster_id", flat=True)
        )
        for cluster_id in clusters:
            if cluster_id == self.cluster.pk:
                self.report.more_work = True
            else:
                self.report.wake_clusters.add(cluster_id)

    def prepare(self, rollout: Rollout, step: RolloutStep) -> bool:
        try:
            prepared = lifecycle.prepare_step(step.pk, actor=None, request_id="", inputs=self.inputs)
        except (RolloutError, InvalidTransition) as exc:
            self.pause(rollout, str(exc))
            return True
        self.report.transitions.append(f"step {step.ordinal} of rollout {rollout.pk} → {prepared.state}")
        self.report.more_work = prepared.state in (StepState.SUCCEEDED, StepState.APPROVED)
        return True

    def start_step(self, rollout: Rollout, step: RolloutStep) -> bool:
        core, listing = self.pods(rollout)
        with transaction.atomic():
            started = transitions.start_step_row(step.pk, actor=None, reason=f"step {step.ordinal} started")
            pod_updates.claim_step_pods(rollout, started, core, listing.by_uid)
        self.report.transitions.append(f"step {step.ordinal} of rollout {rollout.pk} running")
        self.report.more_work = True
        return True

    def run_step(self, rollout: Rollout, step: RolloutStep) -> bool:
        now = timezone.now()
        heartbeat_timeout = _setting("SIDECARHUB_ROLLOUT_HEARTBEAT_TIMEOUT_SECONDS", 120)
        if step.heartbeat_at is not None and step.heartbeat_at < now - timedelta(seconds=heartbeat_timeout):
            note = (
                f"{now:%Y-%m-%d %H:%M:%S} UTC: no heartbeat since {step.heartbeat_at:%H:%M:%S}; the worker "
                "running this step was lost. Its pods are checked by reading them (never patched twice)."
            )
            step.explanation = with_note(step.explanation, note)
            RolloutStep.objects.filter(pk=step.pk).update(explanation=step.explanation)
        RolloutStep.objects.filter(pk=step.pk).update(heartbeat_at=now)
        core, listing = self.pods(rollout)
        result = engine.run_step_pass(
            self.kube,
            rollout,
            step,
            core,
            listing.pods,
            listing.namespace_labels,
            pods_by_uid=listing.by_uid,
            max_patches=self.patches,
            now=now,
            deadline=self.deadline,
        )
        if result.patched or result.hot_writes or result.conflicts:
            self.inputs.forget_pods()  # what was listed is stale now
        self.report.patched += result.patched
        self.report.finished += result.finished
        if result.progressed:
            RolloutStep.objects.filter(pk=step.pk).update(last_progress_at=timezone.now())
            step.last_progress_at = timezone.now()
        if result.unreachable:
            self.report.error = result.unreachable
            self.report.more_work = True
            return result.progressed
        failures = engine.step_failures(step)
        counted = len(failures) - step.failures_acknowledged
        if counted > rollout.failure_threshold:
            details = "; ".join(f"{row.namespace}/{row.pod_name}: {row.error}" for row in failures[-5:])
            reason = (
                f"step {step.ordinal}: {counted} pod updates failed (threshold {rollout.failure_threshold})"
            )
            explanation = (
                f"{reason}. Last failures: {details}. Fix the image or the pods, then resume "
                "(failures so far are acknowledged), or abort, or roll back."
            )
            self.pause(rollout, reason, step, explanation)
            return True
        if result.intent == "abort":
            self.report.more_work = True
            return True
        if result.intent == "pause" or (rollout.pause_requested and not result.open_rows):
            self.pause(rollout, self.intent_reason(Rollout.objects.get(pk=rollout.pk)), step)
            return True
        if result.open_rows == 0:
            transitions.succeed_step_row(step.pk, actor=None, reason=self.summary(step))
            self.report.transitions.append(f"step {step.ordinal} of rollout {rollout.pk} succeeded")
            self.report.more_work = True
            return True
        stalled_for = (now - (step.last_progress_at or now)).total_seconds()
        if stalled_for > rollout.progress_deadline_seconds:
            why = "; ".join(result.waiting_reasons) or "patched pods did not become ready"
            reason = (
                f"step {step.ordinal}: no progress for {int(stalled_for)}s "
                f"(deadline {rollout.progress_deadline_seconds}s)"
            )
            explanation = (
                f"{reason}: {why}. Check the pods that are not ready (they block maxUnavailable "
                f"{rollout.max_unavailable}); resume when they are, or abort."
            )
            self.pause(rollout, reason, step, explanation)
            return True
        self.report.more_work = True
        return result.progressed

    # --- restarts (decision 18) ---------------------------------------------------------------

    def advance_restart(self, rollout: Rollout, step: RolloutStep) -> bool:
        """A restart rollout's step: put up for approval, started once approved (unless held or
        an in-place step of the SidecarSet runs in this cluster), then run
        (``rollouts.restart_engine``)."""
        progressed = False
        if step.state == StepState.PENDING:
            prepared = lifecycle.prepare_restart_step(step.pk, actor=None)
            self.report.transitions.append(f"step {step.ordinal} of rollout {rollout.pk} → {prepared.state}")
            self.report.more_work = prepared.state == StepState.APPROVED
            progressed = True
            step.refresh_from_db()
        if step.state == StepState.APPROVED:
            blocker = self.restart_blocker(rollout)
            if blocker:
                Rollout.objects.filter(pk=rollout.pk).update(
                    reason=f"step {step.ordinal} waits: {blocker}"[:300]
                )
                return progressed
            core, listing = self.pods(rollout)
            with transaction.atomic():
                started = transitions.start_step_row(
                    step.pk, actor=None, reason=f"step {step.ordinal} started"
                )
                pod_updates.claim_restart_pods(rollout, started, core, listing.by_uid)
            self.report.transitions.append(f"step {step.ordinal} of rollout {rollout.pk} running")
            self.report.more_work = True
            progressed = True
            step.refresh_from_db()
        if step.state == StepState.RUNNING:
            progressed |= self.run_restart(rollout, step)
        return progressed

    def restart_blocker(self, rollout: Rollout) -> str:
        """Why no workload of a restart may be restarted now ('' when it may)."""
        if self.cluster.held:
            by = f" by {self.cluster.held_by}" if self.cluster.held_by else ""
            return f"held: cluster {self.cluster.name} is held{by}"
        running = (
            RolloutStep.objects.filter(
                rollout__sidecarset_id=rollout.live_sidecarset_id,
                rollout__cluster_id=rollout.live_cluster_id,
                rollout__in_place=True,
                state=StepState.RUNNING,
            )
            .exclude(rollout__kind=RolloutKind.RESTART)
            .first()
        )
        if running is not None:
            return f"step {running.ordinal} of in-place rollout {running.rollout_id} is running"
        return ""

    def run_restart(self, rollout: Rollout, step: RolloutStep) -> bool:
        now = timezone.now()
        RolloutStep.objects.filter(pk=step.pk).update(heartbeat_at=now)
        _core, listing = self.pods(rollout)
        blocker = self.restart_blocker(rollout)
        result = restart_engine.run_restart_pass(
            self.kube, rollout, step, listing.by_uid, blocked=blocker, now=now
        )
        if result.restarted:
            self.inputs.forget_pods()
        self.report.finished += result.finished
        if result.progressed:
            RolloutStep.objects.filter(pk=step.pk).update(last_progress_at=timezone.now())
        if result.unreachable:
            self.report.error = result.unreachable
            self.report.more_work = True
            return result.progressed
        failures = engine.step_failures(step)
        counted = len(failures) - step.failures_acknowledged
        if counted > rollout.failure_threshold:
            details = "; ".join(f"{row.namespace}/{row.pod_name}: {row.error}" for row in failures[-5:])
            reason = (
                f"step {step.ordinal}: {counted} pods were not replaced "
                f"(threshold {rollout.failure_threshold})"
            )
            self.pause(
                rollout, reason, step, f"{reason}. Last failures: {details}. Fix, then resume, or abort."
            )
            return True
        if result.intent == "abort":
            self.report.more_work = True
            return True
        if result.intent == "pause" or rollout.pause_requested:
            self.pause(rollout, self.intent_reason(Rollout.objects.get(pk=rollout.pk)), step)
            return True
        if result.stalled:
            reason = f"step {step.ordinal}: {result.stalled}"
            explanation = (
                f"{reason}. Check the workload's new pods (kubectl rollout status); once they can become "
                "ready, resume (its deadline starts again; no other workload is restarted meanwhile), "
                "or abort (a workload already restarted goes on by its own rules)."
            )
            self.pause(rollout, reason, step, explanation)
            return True
        if result.open_rows == 0:
            transitions.succeed_step_row(step.pk, actor=None, reason=self.summary(step))
            self.report.transitions.append(f"step {step.ordinal} of rollout {rollout.pk} succeeded")
            self.report.more_work = True
            return True
        if blocker and rollout.reason != blocker[:300]:
            Rollout.objects.filter(pk=rollout.pk).update(reason=f"waits: {blocker}"[:300])
        self.report.more_work = True
        return result.progressed

    def summary(self, step: RolloutStep) -> str:
        counts = PodUpdate.objects.filter(step=step).counts_by_outcome()
        text = ", ".join(f"{count} {key}" for key, count in sorted(counts.items()))
        return f"step {step.ordinal} finished: {text or 'no pods'}"


def pods_needing_recreate(rollout: Rollout) -> int:
    """Pods of the rollout's cluster that its steps found unable to take the revision in place."""
    return max(rollout.rollout_steps.values_list("needs_recreate_count", flat=True), default=0)


def completion_reason(rollout: Rollout, stale: int) -> str:
    """Why a rollout with no step left is completed: never "every step succeeded" while pods
    still run the definition it replaced (decision 18)."""
    if stale:
        return (
            f"completed; {stale} pods need recreate: they still run revision "
            f"{rollout.from_revision_number or 'earlier'}, not {rollout.to_revision_number}"
        )
    return "every step succeeded"


def settle_restarted_source(restart: Rollout, left: int) -> None:
    """A restart completed: the rollout it came from (``restart_of``) now counts only the pods
    still left needing recreate (the ReplicaSet-only and bare pods no restart replaces; 0 when
    every pod was replaced), so the release no longer says its pods need recreate (decision 18).
    Only a completed source that counted more is changed; called in the completion's transaction."""
    if restart.restart_of_id is None:
        return
    source = Rollout.objects.select_for_update().filter(pk=restart.restart_of_id).first()
    if source is None or source.state != RolloutState.COMPLETED or source.needs_recreate <= left:
        return
    if left:
        reason = f"{completion_reason(source, left)} (after restart {restart.pk})"
    else:
        reason = f"completed; restart {restart.pk} recreated every pod that needed it"
    note = f"restart {restart.pk} completed: {source.needs_recreate} pods needed recreate, {left} left" + (
        " (not owned by a Deployment, StatefulSet or DaemonSet)" if left else ""
    )
    source.needs_recreate = left
    source.reason = reason[:300]
    source.explanation = with_note(source.explanation, note)
    source.save(update_fields=["needs_recreate", "reason", "explanation"])
