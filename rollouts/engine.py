"""The rollout executor: what one pass does to one running step, pod by pod (STYLE P10).

Called by the reconciler (``rollouts.reconciler``) with the cluster's lock held, with the pass's
inputs (``rollouts.pass_inputs``: the SidecarSet the planner sees, the turn's pod list). Who does
what:

- the pure core decides (``plan_round``: which pods may be patched now, so maxUnavailable holds
  in every pass; ``sidecarhub.sidecarset.inplace``: the patch body, whether a pod carries it,
  how an update ended; ``sidecarhub.sidecarset.hot_upgrade``: the hot-upgrade state machine);
- ``rollouts.pod_updates`` is the only writer of ``PodUpdate`` state;
- ``rollouts.pod_patches`` is the only sender of pod patches (404, 409, unreachable sorted).

Per pod:

1. its row goes ``claimed → patching`` and that is committed BEFORE the patch (pods are patched
   in chunks of ``PATCH_CHUNK_SIZE``: one transaction moves the chunk's rows, then their patches
   are sent, a few in flight at once, then one UPDATE records the ones that landed);
2. the patch changes ONLY the sidecar images plus the hub's annotations and carries the pod's
   resourceVersion as precondition;
3. 409: re-read the pod; if it carries the update, it landed; otherwise the row goes back to
   ``claimed`` and the next pass re-plans it (at most ``MAX_CONFLICTS``). Never a blind retry;
4. after a crash, a row left in ``patching`` is resolved by READING the pod: patched →
   ``observing``; not patched → back to ``claimed`` (patched again at most once more, with a
   fresh precondition); gone → ``pod_gone``;
5. ``observing`` ends when the new image runs and the pod is ready, or fails, or times out;
6. hot upgrade: the patch writes the new image to the IDLE twin; then, when the new twin runs
   and is ready, the row goes ``switching`` (committed BEFORE the patch that points the working
   annotation at it), then ``resetting`` (committed BEFORE the patch that puts the old twin on
   the empty image), and ends when the old twin runs the empty image and the pod is ready.
   After a crash or a 409 the state machine, fed the pod as read, asks again only for a write
   that did not land. A failure or a deadline leaves the working twin alone and fails the row.

Pause and abort intents are read between chunks (before each chunk is claimed): a pause stops
the pass after the chunk in flight, never inside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from django.utils import timezone

from clusters.kube import KubeClient
from rollouts import pod_updates
from rollouts.choices import (
    FAILED_OUTCOMES,
    OPEN_POD_UPDATE_STATES,
    PATCHED_POD_UPDATE_STATES,
    PodUpdateOutcome,
    PodUpdateState,
    RolloutState,
)
from rollouts.models import PodUpdate, Rollout, RolloutStep
from rollouts.pod_patches import (
    MAX_CONFLICTS,
    PatchReply,
    PatchResult,
    patch_concurrency,
    read_pod,
    send_patch,
)
from sidecarhub.sidecarset import PlanningCaches, PodClass, PodDecision, SidecarSet, hot_upgrade, plan_round
from sidecarhub.sidecarset.evaluation import evaluate_pod
from sidecarhub.sidecarset.hot_upgrade import HotUpgradeAction
from sidecarhub.sidecarset.inplace import (
    FAILURE_REASONS,
    UpdateTargets,
    build_patch,
    carries_update,
    has_hot_upgrade,
    observe_update,
    resource_version,
    with_precondition,
)
from sidecarhub.sidecarset.predicates import PodRef

__all__ = [
    "MAX_PATCH_ATTEMPTS",
    "PATCH_CHUNK_SIZE",
    "PassResult",
    "observe_open_rows",
    "patch_pods",
    "planning_caches",
    "resolve_patching_row",
    "run_step_pass",
    "step_failures",
]

MAX_PATCH_ATTEMPTS = 2
# Pods patched per chunk (one commit claims them all, their patches are in flight together, one
# commit records the outcomes); the pause/abort intent is read once per chunk.
PATCH_CHUNK_SIZE = 16
# This process's planning cache per rollout: a pass re-evaluates only the pods whose
# resourceVersion changed since the previous pass (at 10,000 pods a round plans in about half the
# time; benchmarks/plan_round.py). Beyond PLANNING_CACHE_ROLLOUTS the least recently used is dropped.
PLANNING_CACHE_ROLLOUTS = 8
planning_caches = PlanningCaches(PLANNING_CACHE_ROLLOUTS)


@dataclass
class PassResult:
    """What one pass over a step did; ``unreachable`` / ``intent`` say why it stopped early."""

    patched: int = 0
    finished: int = 0
    conflicts: int = 0
    hot_writes: int = 0  # hot-upgrade switch and reset patches that landed
    open_rows: int = 0
    waiting_reasons: list[str] = field(default_factory=list)
    unreachable: str = ""
    intent: str = ""

    @property
    def progressed(self) -> bool:
        return bool(self.patched or self.finished or self.hot_writes)


# --- 409: re-read and re-check ---------------------------------------------------------------


class _AfterConflict(StrEnum):
    LANDED = "landed"  # the re-read pod carries the write
    RETRY = "retry"  # it does not; the write is still due (from the re-read pod)
    CLOSED = "closed"  # the pod is gone, or kept changing: the row was closed
    UNREACHABLE = "unreachable"  # no answer: the row stays, the next pass reads the pod


def _after_conflict(
    kube: KubeClient,
    row: PodUpdate,
    result: PassResult,
    *,
    landed: Callable[[Mapping[str, Any]], bool],
) -> tuple[_AfterConflict, dict[str, Any] | None]:
    """A patch got 409 (the pod changed since it was read): re-read it and re-check, bounded by
    ``MAX_CONFLICTS`` per pod update. The one conflict policy of cold and hot writes. A closed
    row is the caller's to count."""
    result.conflicts += 1
    read = read_pod(kube, row.namespace, row.pod_name, row.pod_uid)
    if read.unreachable:
        result.unreachable = read.unreachable
        return _AfterConflict.UNREACHABLE, None
    if read.pod is None:
        pod_updates.close(
            row, PodUpdateOutcome.POD_GONE, "the pod was deleted (or recreated) during its update"
        )
        return _AfterConflict.CLOSED, None
    if landed(read.pod):
        return _AfterConflict.LANDED, read.pod
    if row.conflicts + 1 >= MAX_CONFLICTS:
        pod_updates.close(
            row, PodUpdateOutcome.FAILED, f"the pod kept changing: {row.conflicts + 1} conflicts"
        )
        return _AfterConflict.CLOSED, None
    return _AfterConflict.RETRY, read.pod


# --- patching (points 1 to 3) --------------------------------------------------------------------


def _patch_chunk(
    kube: KubeClient,
    sidecarset: SidecarSet,
    rollout: Rollout,
    items: Sequence[tuple[PodUpdate, Mapping[str, Any]]],
    result: PassResult,
    executor: ThreadPoolExecutor | None,
) -> None:
    """Patch one chunk of claimed pods: one committed transaction moves every row to
    ``patching``; then the patches are sent (concurrently on ``executor``); then the rows whose
    patch landed go to ``observing`` in one update. 404 and refusals close their rows; 409 is
    re-read and re-checked; an unreachable apiserver leaves its rows in ``patching`` (the next
    pass resolves them by reading the pods)."""
    now = timezone.now()
    claimed = pod_updates.start_patching(sidecarset, items, now, hot=has_hot_upgrade(sidecarset))
    if not claimed:
        return
    to_revision = rollout.to_revision
    bodies = [
        build_patch(
            sidecarset,
            pod,
            revision_name=to_revision.name if to_revision is not None else "",
            revision_hash=rollout.to_revision_hash,
            now=now,
            revision_number=rollout.to_revision_number,
        )
        for _row, pod in claimed
    ]
    rows = [row for row, _pod in claimed]

    def send(row: PodUpdate, body: dict[str, Any]) -> PatchReply:
        return send_patch(kube, row.namespace, row.pod_name, body, what="update")

    if executor is not None and len(rows) > 1:
        replies = list(executor.map(send, rows, bodies))
    else:
        replies = [send(row, body) for row, body in zip(rows, bodies, strict=True)]
    landed = {
        row.pk: reply.at
        for row, reply in zip(rows, replies, strict=True)
        if reply.result is PatchResult.LANDED
    }
    result.patched += pod_updates.record_patched(landed)
    for row, reply in zip(rows, replies, strict=True):
        if reply.result is PatchResult.UNREACHABLE:
            result.unreachable = reply.error  # the row stays ``patching``: the next pass reads the pod
        elif reply.result is PatchResult.GONE:
            result.finished += pod_updates.close(
                row, PodUpdateOutcome.POD_GONE, "the pod was deleted before the patch"
            )
        elif reply.result is PatchResult.REFUSED:
            result.finished += pod_updates.close(
                row, PodUpdateOutcome.FAILED, f"the apiserver refused the patch: {reply.error}"
            )
        elif reply.result is PatchResult.CONFLICT:
            if result.unreachable:
                result.conflicts += 1
                continue  # stays ``patching``; resolved by reading on the next pass
            targets = pod_updates.targets_of(row)

            def landed_patch(pod: Mapping[str, Any], targets: UpdateTargets = targets) -> bool:
                return carries_update(sidecarset, pod, targets)

            verdict, _pod = _after_conflict(kube, row, result, landed=landed_patch)
            if verdict is _AfterConflict.CLOSED:
                result.finished += 1
            elif verdict is _AfterConflict.LANDED:
                result.patched += pod_updates.move(row, PodUpdateState.OBSERVING, patched_at=timezone.now())
            elif verdict is _AfterConflict.RETRY:
                pod_updates.requeue_after_conflict(row)  # re-planned from a fresh list


def _intent(rollout_id: int) -> str:
    """'pause' / 'abort' when a person asked for it (read between chunks), else ''."""
    row = Rollout.objects.filter(pk=rollout_id).values("pause_requested", "abort_requested", "state").first()
    if row is None or row["abort_requested"]:
        return "abort"
    if row["pause_requested"] or row["state"] != RolloutState.RUNNING:
        return "pause"
    return ""


def patch_pods(
    kube: KubeClient,
    sidecarset: SidecarSet,
    rollout: Rollout,
    items: Sequence[tuple[PodUpdate, Mapping[str, Any]]],
    result: PassResult,
    deadline: float | None = None,
) -> None:
    """Patch ``items`` (claimed rows with their pods as listed, in the planner's order) chunk by
    chunk; the pause/abort intent is read before each chunk; an unreachable apiserver ends the
    pass, and so does ``deadline`` (``time.monotonic()``, checked after each chunk)."""
    workers = min(patch_concurrency(kube), PATCH_CHUNK_SIZE, len(items))
    executor = (
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sidecarhub-patch")
        if workers > 1
        else None
    )
    try:
        for start in range(0, len(items), PATCH_CHUNK_SIZE):
            result.intent = _intent(rollout.pk)
            if result.intent:
                break
            _patch_chunk(kube, sidecarset, rollout, items[start : start + PATCH_CHUNK_SIZE], result, executor)
            if result.unreachable or (deadline is not None and time.monotonic() >= deadline):
                break
    finally:
        if executor is not None:
            executor.shutdown(wait=True)


# --- after the patch (points 4 to 6) -------------------------------------------------------------


def resolve_patching_row(
    sidecarset: SidecarSet, row: PodUpdate, pod: Mapping[str, Any] | None, *, reason_if_not_patched: str = ""
) -> str:
    """A row left in ``patching`` (a crash, or an unreachable apiserver): decide by READING.

    Returns the row's new state. Not patched → back to ``claimed`` (or done/failed after
    ``MAX_PATCH_ATTEMPTS``; or done/skipped with ``reason_if_not_patched`` for an ended rollout).
    """
    if pod is None:
        pod_updates.close(row, PodUpdateOutcome.POD_GONE, "the pod was deleted")
    elif carries_update(sidecarset, pod, pod_updates.targets_of(row)):
        pod_updates.move(row, PodUpdateState.OBSERVING, patched_at=row.patching_at or timezone.now())
    elif reason_if_not_patched:
        pod_updates.close(row, PodUpdateOutcome.SKIPPED, reason_if_not_patched)
    elif row.patch_attempts >= MAX_PATCH_ATTEMPTS:
        pod_updates.close(
            row, PodUpdateOutcome.FAILED, f"the patch did not land after {row.patch_attempts} attempts"
        )
    else:
        pod_updates.move(row, PodUpdateState.CLAIMED)
    return row.state


def observe_open_rows(
    sidecarset: SidecarSet,
    rollout: Rollout,
    pods_by_uid: Mapping[str, Mapping[str, Any]],
    *,
    step: RolloutStep | None = None,
    ended_reason: str = "",
    now: datetime | None = None,
    kube: KubeClient | None = None,
) -> PassResult:
    """Resolve ``patching`` rows and observe ``observing`` rows (of one step, or the whole
    rollout). With ``ended_reason`` (an ended rollout), unpatched ``patching`` rows are closed as
    skipped. Hot-upgrade rows are driven through their state machine when ``kube`` is given (a
    pod already patched finishes its hot upgrade even in a paused rollout: pauses are honoured
    between pods), and only observed otherwise."""
    now = now or timezone.now()
    result = PassResult()
    rows = PodUpdate.objects.filter(rollout=rollout, state__in=PATCHED_POD_UPDATE_STATES)
    if step is not None:
        rows = rows.filter(step=step)
    hot = has_hot_upgrade(sidecarset)
    closings = pod_updates.Closings()
    for row in rows:
        pod = pods_by_uid.get(row.pod_uid)
        if row.state == PodUpdateState.PATCHING:
            state = resolve_patching_row(sidecarset, row, pod, reason_if_not_patched=ended_reason)
            if state != PodUpdateState.OBSERVING:
                result.finished += state == PodUpdateState.DONE
                continue
        if hot:
            if _drive_hot_row(kube, sidecarset, rollout, row, pod, now=now, result=result) is not None:
                result.finished += 1
            if result.unreachable:
                break
            continue
        started = row.patched_at or row.patching_at or row.claimed_at
        end = observe_update(
            sidecarset,
            pod,
            pod_updates.targets_of(row),
            patched_at=started,
            timeout_seconds=rollout.pod_timeout_seconds,
            now=now,
        )
        if end is not None:
            closings.add(row, *end)
    result.finished += closings.flush()
    return result


def _drive_hot_row(
    kube: KubeClient | None,
    sidecarset: SidecarSet,
    rollout: Rollout,
    row: PodUpdate,
    pod: Mapping[str, Any] | None,
    *,
    now: datetime,
    result: PassResult,
) -> str | None:
    """Drive one patched hot-upgrade row (module docstring, point 6); return its outcome once
    closed. ``kube=None`` only observes (waits, failures, deadlines, completion)."""
    if pod is None:
        pod_updates.close(row, PodUpdateOutcome.POD_GONE, "the pod was deleted during its hot upgrade")
        return PodUpdateOutcome.POD_GONE
    changed = "the pod's hot sidecar was changed by someone else after the patch"
    if not evaluate_pod(sidecarset, pod).updated:
        pod_updates.close(row, PodUpdateOutcome.SKIPPED, changed)
        return PodUpdateOutcome.SKIPPED
    for _ in range(3):  # at most: switch, then reset, then look once more
        if row.state == PodUpdateState.RESETTING:
            waiting_since = row.patching_at
        else:
            waiting_since = row.patched_at or row.patching_at or row.claimed_at
        decision = hot_upgrade.next_hot_upgrade_step(
            sidecarset,
            pod,
            now=now,
            waiting_since=waiting_since,
            timeout_seconds=rollout.pod_timeout_seconds,
            failure_reasons=FAILURE_REASONS,
        )
        action = decision.action
        if action is HotUpgradeAction.DONE:
            pod_updates.close(row, PodUpdateOutcome.SUCCEEDED)
            return PodUpdateOutcome.SUCCEEDED
        if action is HotUpgradeAction.FAILED:
            outcome = PodUpdateOutcome.TIMED_OUT if decision.timed_out else PodUpdateOutcome.FAILED
            working = ", ".join(f"{t.working} ({t.working_image})" for t in decision.twins)
            pod_updates.close(row, outcome, f"hot upgrade: {decision.reason}; still working: {working}")
            return outcome
        if action is HotUpgradeAction.PATCH_IDLE:
            pod_updates.close(row, PodUpdateOutcome.SKIPPED, changed)
            return PodUpdateOutcome.SKIPPED
        if action in (HotUpgradeAction.WAIT_NEW, HotUpgradeAction.WAIT_RESET) or kube is None:
            return None
        if action is HotUpgradeAction.SWITCH:
            to_state, what = PodUpdateState.SWITCHING, "switch"
            body = hot_upgrade.switch_patch(pod, decision.twins)
            fields: dict[str, Any] = {"resource_version": resource_version(pod)}
        else:  # RESET
            to_state, what = PodUpdateState.RESETTING, "reset"
            body = hot_upgrade.reset_patch(sidecarset, pod, decision.twins)
            fields = {"resource_version": resource_version(pod), "patching_at": timezone.now()}
        # The intent is committed before the write (a crash leaves a row resolved by reading).
        if not pod_updates.move(row, to_state, **fields):
            return None
        reply = send_patch(kube, row.namespace, row.pod_name, with_precondition(body, pod), what=what)
        if reply.result is PatchResult.UNREACHABLE:
            result.unreachable = reply.error  # the row keeps its state: the next pass reads the pod
            return None
        if reply.result is PatchResult.GONE:
            pod_updates.close(
                row, PodUpdateOutcome.POD_GONE, f"the pod was deleted during the hot upgrade ({what})"
            )
            return PodUpdateOutcome.POD_GONE
        if reply.result is PatchResult.REFUSED:
            pod_updates.close(
                row, PodUpdateOutcome.FAILED, f"the apiserver refused the {what}: {reply.error}"
            )
            return PodUpdateOutcome.FAILED
        if reply.result is PatchResult.CONFLICT:
            # The state machine re-decides from the re-read pod: a write that landed is never asked again.
            verdict, reread = _after_conflict(kube, row, result, landed=lambda _pod: False)
            if verdict is _AfterConflict.CLOSED:
                return row.outcome or PodUpdateOutcome.FAILED
            if verdict is not _AfterConflict.RETRY or reread is None:
                return None
            pod_updates.count_conflict(row)
            pod = reread
        else:
            if reply.pod is None:
                return None
            pod = reply.pod
            result.hot_writes += 1
        now = timezone.now()
    return None


# --- the step pass -------------------------------------------------------------------------------


def run_step_pass(
    kube: KubeClient,
    rollout: Rollout,
    step: RolloutStep,
    sidecarset: SidecarSet,
    pods: list[dict[str, Any]],
    namespace_labels: Mapping[str, Mapping[str, str]] | None,
    *,
    pods_by_uid: Mapping[str, Mapping[str, Any]],
    max_patches: int,
    now: datetime | None = None,
    deadline: float | None = None,
) -> PassResult:
    """One bounded pass over a running step: resolve, observe, close pods that no longer need an
    update, then patch up to ``max_patches`` pods the planner allows now, in chunks of at most
    ``PATCH_CHUNK_SIZE`` (pause and abort are honoured between chunks)."""
    now = now or timezone.now()
    result = observe_open_rows(sidecarset, rollout, pods_by_uid, step=step, now=now, kube=kube)
    if result.unreachable:
        result.open_rows = PodUpdate.objects.filter(step=step, state__in=OPEN_POD_UPDATE_STATES).count()
        return result

    claimed = {
        PodRef(row.namespace, row.pod_name, row.pod_uid): row
        for row in PodUpdate.objects.filter(step=step, state=PodUpdateState.CLAIMED)
    }
    if claimed:
        with planning_caches.borrow(rollout.pk) as cache:
            plan = plan_round(
                sidecarset,
                pods,
                namespace_labels=namespace_labels,
                only=frozenset(claimed),
                apply_canary_selector=step.canary,
                cache=cache,
            )
        if plan.blocked_reason is not None:
            result.waiting_reasons.append(plan.blocked_reason)
        decisions = plan.decisions_for(claimed)  # only the step's claimed pods: see RoundPlan
        unmatched = dict(plan.unmatched)
        closings = pod_updates.Closings()
        for ref, row in list(claimed.items()):
            closing = _no_longer_due(ref, decisions.get(ref), unmatched, pods_by_uid)
            if closing is not None:
                closings.add(row, *closing)
                del claimed[ref]
        result.finished += closings.flush()
        # in planned order (decisions_for lists the candidates first, in order)
        waiting = [d for d in decisions.values() if d.ref in claimed and d.pod_class is PodClass.WAITING]
        if waiting and not plan.to_patch:
            result.waiting_reasons.append(f"{len(waiting)} pods wait: {waiting[0].reason}")
        if plan.blocked_reason is None:
            items = [
                (claimed[decision.ref], decision.pod)
                for decision in plan.to_patch[:max_patches]
                if decision.ref in claimed
            ]
            if items:
                patch_pods(kube, sidecarset, rollout, items, result, deadline)
    result.open_rows = PodUpdate.objects.filter(step=step, state__in=OPEN_POD_UPDATE_STATES).count()
    return result


def _no_longer_due(
    ref: PodRef,
    decision: PodDecision | None,
    unmatched: Mapping[PodRef, str],
    pods_by_uid: Mapping[str, Mapping[str, Any]],
) -> tuple[str, str] | None:
    """Why a claimed pod is closed without a patch (outcome, words), or ``None`` when it is due."""
    if ref.uid not in pods_by_uid:
        return PodUpdateOutcome.POD_GONE, "the pod was deleted before it was patched"
    if decision is None:
        return PodUpdateOutcome.SKIPPED, f"no longer matched: {unmatched.get(ref, 'unknown')}"
    if decision.pod_class is PodClass.UPDATED:
        return PodUpdateOutcome.SKIPPED, "already at the target revision"
    if decision.pod_class is PodClass.NEEDS_RECREATE:
        return PodUpdateOutcome.SKIPPED, f"needs recreate: {decision.reason}"
    if decision.pod_class is PodClass.NOT_SELECTED:
        return PodUpdateOutcome.SKIPPED, "no longer selected by updateStrategy.selector"
    if decision.pod_class is PodClass.WAITING and decision.reason.startswith("kept on the old"):
        return PodUpdateOutcome.SKIPPED, decision.reason
    return None


def step_failures(step: RolloutStep) -> list[PodUpdate]:
    """Failed and timed-out rows of a step, oldest first."""
    return list(PodUpdate.objects.filter(step=step, outcome__in=FAILED_OUTCOMES).order_by("done_at", "pk"))
