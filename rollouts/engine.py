"""The rollout engine: what one pass does to one running step, pod by pod (STYLE P10).

Called by the reconciler (``rollouts.reconciler``) with the cluster's lock held. This module holds
the step pass and its orchestration: the pass's inputs (the SidecarSet the planner sees, the pod
list, the planning cache), writing a step's ``claimed`` rows, observing and resolving the rows
already patched, and ``run_step_pass``, which plans and patches the pods the planner allows,
batch by batch, through ``rollouts.patching``. That module holds points 1 to 3 (``claimed →
patching``, the patch with its resourceVersion precondition, 409) and the writes that close rows.
Per pod, after the patch:

4. after a crash, a row left in ``patching`` is resolved by READING the pod: patched →
   ``observing``; not patched → back to ``claimed`` (re-planned, patched again at most once
   more, with a fresh precondition); gone → ``pod_gone``;
5. ``observing`` ends when the new image runs and the pod is ready (update.md §2.4: status
   image/imageID and readiness, via the planner's predicates), or fails (image pull error,
   crash loop), or times out;
6. hot upgrade (update.md §5, ``sidecarhub.sidecarset.hot_upgrade``): the patch (point 2, in
   ``rollouts.patching``) writes the new image to the IDLE twin (plus the version annotations);
   ``observing`` then follows the pure state machine: when the new twin runs and is ready the
   row goes ``switching`` (committed BEFORE the patch that points the working annotation at it),
   then ``resetting`` (committed BEFORE the patch that puts the old twin on the empty image), and
   ends when the old twin runs the empty image and the pod is ready. Each of these patches
   carries the pod's resourceVersion; after a crash the row is resolved by reading the pod (the
   state machine never asks for a write that already landed). A failure or a deadline leaves
   the working twin alone and fails the row.

The planner is the only judge of what may be patched now (``plan_round(..., only=step pods)``),
so maxUnavailable holds in every pass (a batch only holds pods of the planner's ``to_patch``).
Pause and abort intents are read between batches of at most ``PATCH_BATCH_SIZE`` pods (before
each batch is claimed): a pause stops the pass after the batch in flight, never inside it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from django.db.models import F
from django.utils import timezone
from kubernetes import client

from clusters.kube import ClusterApiError, ClusterUnreachable, KubeClient
from rollouts.choices import (
    FAILED_OUTCOMES,
    OPEN_POD_UPDATE_STATES,
    PATCHED_POD_UPDATE_STATES,
    PodUpdateOutcome,
    PodUpdateState,
    RolloutState,
)
from rollouts.models import PodUpdate, Rollout, RolloutStep
from rollouts.patching import (
    MAX_CONFLICTS,
    STRATEGIC_MERGE_PATCH,
    PassResult,
    _Closings,
    _finish,
    _move,
    _resource_version,
    _statuses,
    _uid,
    has_hot_upgrade,
    patch_batch,
    patch_concurrency,
    row_targets,
    shows_patch,
)
from sidecarhub.sidecarset import PlanningCaches, PodClass, SidecarSet, hot_upgrade, plan_round
from sidecarhub.sidecarset.evaluation import evaluate_pod
from sidecarhub.sidecarset.hot_upgrade import HotUpgradeAction
from sidecarhub.sidecarset.predicates import PodRef

__all__ = [
    "FAILURE_REASONS",
    "claim_step_pods",
    "fetch_pods",
    "observe_hot_row",
    "observe_open_rows",
    "planning_caches",
    "planning_sidecarset",
    "run_step_pass",
]

log = logging.getLogger(__name__)

# Container waiting reasons that mean "the new sidecar will not start" (decision 14).
FAILURE_REASONS = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)
MAX_PATCH_ATTEMPTS = 2
# Pods patched per batch (one commit claims them all, their patches are in flight together, one
# commit records the outcomes) and the pause/abort intent is read once per batch; requests in
# flight at once: ``rollouts.patching.PATCH_CONCURRENCY``.
PATCH_BATCH_SIZE = 16
# This process's planning cache per rollout: a pass re-evaluates only the pods whose
# resourceVersion changed since the previous pass (at 10,000 pods a round plans in about half the
# time; benchmarks/plan_round.py). Beyond PLANNING_CACHE_ROLLOUTS the least recently used is dropped.
PLANNING_CACHE_ROLLOUTS = 8
planning_caches = PlanningCaches(PLANNING_CACHE_ROLLOUTS)


# --- inputs --------------------------------------------------------------------------------


def _int_or_percent(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def planning_sidecarset(rollout: Rollout) -> SidecarSet:
    """The SidecarSet the planner sees for this rollout: the target revision's containers (so its
    hashes), the rollout's maxUnavailable, and ``type``/``paused`` from the SidecarSet's CURRENT
    revision (so ``updateStrategy.paused`` published later holds the rollout)."""
    to_revision = rollout.to_revision
    if to_revision is None:
        raise LookupError(f"rollout {rollout.pk}: its target revision no longer exists")
    core = to_revision.to_core()
    strategy = core.update_strategy
    current = rollout.sidecarset.current_revision
    if current is not None and current.pk != to_revision.pk:
        current_strategy = current.to_core().update_strategy
        strategy = dataclasses.replace(strategy, type=current_strategy.type, paused=current_strategy.paused)
    strategy = dataclasses.replace(strategy, max_unavailable=_int_or_percent(rollout.max_unavailable))
    return dataclasses.replace(core, update_strategy=strategy)


def fetch_pods(
    kube: KubeClient, core: SidecarSet
) -> tuple[list[dict[str, Any]], dict[str, dict[str, str]] | None]:
    """The cluster's pods that may match (plain JSON) and, when the SidecarSet has a
    namespaceSelector, every namespace's labels. ``matchLabels`` filter on the server."""
    selector = core.selector
    label_selector = None
    if selector is not None and selector.match_labels:
        label_selector = ",".join(f"{key}={value}" for key, value in sorted(selector.match_labels.items()))
    pods = kube.list_pods(label_selector=label_selector)
    namespace_labels = None
    if core.namespace_selector is not None:
        namespace_labels = kube.namespace_labels()
    return pods, namespace_labels


# --- claiming ----------------------------------------------------------------------------------


def claim_step_pods(
    rollout: Rollout, step: RolloutStep, core: SidecarSet, pods_by_uid: Mapping[str, Mapping[str, Any]]
) -> int:
    """Write one ``claimed`` row per approved pod (idempotent); pods already gone are recorded
    ``pod_gone`` at once. Returns the number of rows written."""
    existing = set(PodUpdate.objects.filter(rollout=rollout).values_list("pod_uid", flat=True))
    rows = []
    now = timezone.now()
    for ref in step.pods:
        if ref["uid"] in existing:
            continue
        pod = pods_by_uid.get(ref["uid"])
        container, from_image, to_image = row_targets(core, pod)
        row = PodUpdate(
            rollout=rollout,
            step=step,
            cluster_id=rollout.cluster_id,
            namespace=ref["namespace"],
            pod_name=ref["name"],
            pod_uid=ref["uid"],
            container=container,
            from_image=from_image,
            to_image=to_image,
            from_revision_number=rollout.from_revision_number,
            to_revision_number=rollout.to_revision_number,
        )
        if pod is None:
            row.state, row.outcome, row.done_at = PodUpdateState.DONE, PodUpdateOutcome.POD_GONE, now
            row.error = "the pod was deleted before its step started"
        rows.append(row)
    PodUpdate.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


# --- observing ---------------------------------------------------------------------------------


def _failure(pod: Mapping[str, Any], row: PodUpdate) -> str | None:
    """Why the patched sidecar will not start, from a status about the row's NEW image: until the
    kubelet reacts to the patch, the status still describes the old container (which may have
    been failing: a rollback of a bad image), and that is no verdict on the new one."""
    statuses = _statuses(pod)
    for name, image in zip(row.container.split(","), row.to_image.split(","), strict=False):
        status = statuses.get(name) or {}
        if status.get("image") != image:
            continue
        waiting = (status.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in FAILURE_REASONS:
            message = str(waiting.get("message") or "").strip()
            return f"container {name}: {reason}" + (f": {message}" if message else "")
    return None


def _running_new_image(pod: Mapping[str, Any], row: PodUpdate) -> bool:
    statuses = _statuses(pod)
    for name, image in zip(row.container.split(","), row.to_image.split(","), strict=False):
        status = statuses.get(name) or {}
        if (
            status.get("image") != image
            or not status.get("ready")
            or "running" not in (status.get("state") or {})
        ):
            return False
    return True


def observe_row(
    core: SidecarSet, row: PodUpdate, pod: Mapping[str, Any] | None, *, timeout_seconds: int, now: datetime
) -> tuple[str, str] | None:
    """The end an ``observing`` row's pod reached, as (outcome, error); ``None`` while it has not.
    Nothing is written (``observe_open_rows`` closes the rows of a pass together)."""
    if pod is None:
        return PodUpdateOutcome.POD_GONE, "the pod was deleted while its new sidecar started"
    if not shows_patch(core, pod, row):
        return PodUpdateOutcome.SKIPPED, "the pod's sidecar was changed by someone else after the patch"
    failure = _failure(pod, row)
    if failure is not None:
        return PodUpdateOutcome.FAILED, failure
    evaluation = evaluate_pod(core, pod)
    if evaluation.ready and evaluation.consistent and _running_new_image(pod, row):
        return PodUpdateOutcome.SUCCEEDED, ""
    started = row.patched_at or row.patching_at or row.claimed_at
    if started + timedelta(seconds=timeout_seconds) <= now:
        what = "not ready" if evaluation.consistent else "the new image is not running"
        return PodUpdateOutcome.TIMED_OUT, f"{what} {timeout_seconds}s after the patch"
    return None


def resolve_patching_row(
    core: SidecarSet, row: PodUpdate, pod: Mapping[str, Any] | None, *, reason_if_not_patched: str = ""
) -> str:
    """A row left in ``patching`` (a crash, or an unreachable apiserver): decide by READING.

    Returns the new state. Not patched → back to ``claimed`` (or done/failed after
    ``MAX_PATCH_ATTEMPTS``; or done/skipped with ``reason_if_not_patched`` for an ended rollout).
    """
    if pod is None:
        _finish(row, PodUpdateOutcome.POD_GONE, "the pod was deleted")
        return PodUpdateState.DONE
    if shows_patch(core, pod, row):
        _move(row, PodUpdateState.OBSERVING, patched_at=row.patching_at or timezone.now())
        return PodUpdateState.OBSERVING
    if reason_if_not_patched:
        _finish(row, PodUpdateOutcome.SKIPPED, reason_if_not_patched)
        return PodUpdateState.DONE
    if row.patch_attempts >= MAX_PATCH_ATTEMPTS:
        _finish(row, PodUpdateOutcome.FAILED, f"the patch did not land after {row.patch_attempts} attempts")
        return PodUpdateState.DONE
    _move(row, PodUpdateState.CLAIMED)
    return PodUpdateState.CLAIMED


def observe_open_rows(
    core: SidecarSet,
    rollout: Rollout,
    pods_by_uid: Mapping[str, Mapping[str, Any]],
    *,
    step: RolloutStep | None = None,
    ended_reason: str = "",
    now: datetime | None = None,
    kube: KubeClient | None = None,
) -> PassResult:
    """Resolve ``patching`` rows and observe ``observing`` rows (of one step, or the whole
    rollout). With ``ended_reason`` (a paused-for-good or aborted rollout), ``claimed`` rows and
    unpatched ``patching`` rows are closed as skipped. Hot-upgrade rows (``observing``,
    ``switching``, ``resetting``) are driven through their state machine when ``kube`` is given
    (a pod already patched finishes its hot upgrade even in a paused rollout: pauses are honoured
    between pods), and only observed otherwise."""
    now = now or timezone.now()
    result = PassResult()
    rows = PodUpdate.objects.filter(rollout=rollout, state__in=PATCHED_POD_UPDATE_STATES)
    if step is not None:
        rows = rows.filter(step=step)
    hot = has_hot_upgrade(core)
    closings = _Closings()
    for row in rows:
        pod = pods_by_uid.get(row.pod_uid)
        if row.state == PodUpdateState.PATCHING:
            state = resolve_patching_row(core, row, pod, reason_if_not_patched=ended_reason)
            if state != PodUpdateState.OBSERVING:
                result.finished += state == PodUpdateState.DONE
                continue
            row.refresh_from_db()
        if hot:
            if observe_hot_row(kube, core, rollout, row, pod, now=now, result=result) is not None:
                result.finished += 1
            if result.unreachable:
                break
            continue
        end = observe_row(core, row, pod, timeout_seconds=rollout.pod_timeout_seconds, now=now)
        if end is not None:
            closings.add(row, *end)
    result.finished += closings.flush()
    return result


def _hot_write(
    kube: KubeClient,
    row: PodUpdate,
    pod: Mapping[str, Any],
    body: dict[str, Any],
    what: str,
    result: PassResult,
) -> dict[str, Any] | str | None:
    """Send one hot-upgrade patch (the row's intent is already committed). Returns the patched
    pod, an outcome when the row was closed, or ``None`` when the next pass must read the pod."""
    body = {**body, "metadata": {**body.get("metadata", {}), "resourceVersion": _resource_version(pod)}}
    try:
        patched = kube.call(
            client.CoreV1Api(kube.api_client).patch_namespaced_pod,
            row.pod_name,
            row.namespace,
            body,
            _content_type=STRATEGIC_MERGE_PATCH,
            what=f"{what} pod {row.namespace}/{row.pod_name}",
        )
    except ClusterUnreachable as exc:
        result.unreachable = str(exc)  # the row keeps its state: the next pass reads the pod
        return None
    except ClusterApiError as exc:
        if exc.status == 404:
            _finish(row, PodUpdateOutcome.POD_GONE, f"the pod was deleted during the hot upgrade ({what})")
            return PodUpdateOutcome.POD_GONE
        if exc.status == 409:
            result.conflicts += 1
            if row.conflicts + 1 >= MAX_CONFLICTS:
                _finish(row, PodUpdateOutcome.FAILED, f"the pod kept changing: {row.conflicts + 1} conflicts")
                return PodUpdateOutcome.FAILED
            PodUpdate.objects.filter(pk=row.pk).update(conflicts=F("conflicts") + 1)
            return None  # re-read and re-decided on the next pass
        _finish(row, PodUpdateOutcome.FAILED, f"the apiserver refused the {what}: {exc}")
        return PodUpdateOutcome.FAILED
    return patched if isinstance(patched, dict) else None


def observe_hot_row(
    kube: KubeClient | None,
    core: SidecarSet,
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
        _finish(row, PodUpdateOutcome.POD_GONE, "the pod was deleted during its hot upgrade")
        return PodUpdateOutcome.POD_GONE
    changed = "the pod's hot sidecar was changed by someone else after the patch"
    if not evaluate_pod(core, pod).updated:
        _finish(row, PodUpdateOutcome.SKIPPED, changed)
        return PodUpdateOutcome.SKIPPED
    for _ in range(3):  # at most: switch, then reset, then look once more
        if row.state == PodUpdateState.RESETTING:
            waiting_since = row.patching_at
        else:
            waiting_since = row.patched_at or row.patching_at or row.claimed_at
        decision = hot_upgrade.next_hot_upgrade_step(
            core,
            pod,
            now=now,
            waiting_since=waiting_since,
            timeout_seconds=rollout.pod_timeout_seconds,
            failure_reasons=FAILURE_REASONS,
        )
        action = decision.action
        if action is HotUpgradeAction.DONE:
            _finish(row, PodUpdateOutcome.SUCCEEDED)
            return PodUpdateOutcome.SUCCEEDED
        if action is HotUpgradeAction.FAILED:
            outcome = PodUpdateOutcome.TIMED_OUT if decision.timed_out else PodUpdateOutcome.FAILED
            working = ", ".join(f"{t.working} ({t.working_image})" for t in decision.twins)
            _finish(row, outcome, f"hot upgrade: {decision.reason}; still working: {working}")
            return outcome
        if action is HotUpgradeAction.PATCH_IDLE:
            _finish(row, PodUpdateOutcome.SKIPPED, changed)
            return PodUpdateOutcome.SKIPPED
        if action in (HotUpgradeAction.WAIT_NEW, HotUpgradeAction.WAIT_RESET) or kube is None:
            return None
        if action is HotUpgradeAction.SWITCH:
            to_state, what = PodUpdateState.SWITCHING, "switch"
            body = hot_upgrade.switch_patch(pod, decision.twins)
            fields: dict[str, Any] = {"resource_version": _resource_version(pod)}
        else:  # RESET
            to_state, what = PodUpdateState.RESETTING, "reset"
            body = hot_upgrade.reset_patch(core, pod, decision.twins)
            fields = {"resource_version": _resource_version(pod), "patching_at": timezone.now()}
        # The intent is committed before the write (a crash leaves a row resolved by reading).
        if not _move(row, to_state, **fields):
            return None
        row.refresh_from_db()
        written = _hot_write(kube, row, pod, body, what, result)
        if written is None or isinstance(written, str):
            return written
        pod = written
        result.hot_writes += 1
        now = timezone.now()
    return None


# --- the pass: batches, pause and abort --------------------------------------------------------


def _intent(rollout_id: int) -> str:
    """'pause' / 'abort' when a person asked for it (read between pods), else ''."""
    row = Rollout.objects.filter(pk=rollout_id).values("pause_requested", "abort_requested", "state").first()
    if row is None:
        return "abort"
    if row["abort_requested"]:
        return "abort"
    if row["pause_requested"] or row["state"] != RolloutState.RUNNING:
        return "pause"
    return ""


def _patch_in_batches(
    kube: KubeClient,
    core: SidecarSet,
    rollout: Rollout,
    items: Sequence[tuple[PodUpdate, Mapping[str, Any]]],
    result: PassResult,
    deadline: float | None = None,
) -> None:
    """Patch ``items`` (the planner's ``to_patch``, in its order) batch by batch; the pause/abort
    intent is read before each batch, so it is honoured between batches of at most
    ``PATCH_BATCH_SIZE`` pods; an unreachable apiserver ends the pass, and so does the pass's
    ``deadline`` (``time.monotonic()``; checked after each batch: the rest waits for the next pass)."""
    workers = min(patch_concurrency(kube), PATCH_BATCH_SIZE, len(items))
    executor = (
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sidecarhub-patch")
        if workers > 1
        else None
    )
    try:
        for start in range(0, len(items), PATCH_BATCH_SIZE):
            result.intent = _intent(rollout.pk)
            if result.intent:
                break
            patch_batch(
                kube, core, rollout, items[start : start + PATCH_BATCH_SIZE], result, executor=executor
            )
            if result.unreachable or (deadline is not None and time.monotonic() >= deadline):
                break
    finally:
        if executor is not None:
            executor.shutdown(wait=True)


def run_step_pass(
    kube: KubeClient,
    rollout: Rollout,
    step: RolloutStep,
    core: SidecarSet,
    pods: list[dict[str, Any]],
    namespace_labels: Mapping[str, Mapping[str, str]] | None,
    *,
    max_patches: int,
    now: datetime | None = None,
    deadline: float | None = None,
) -> PassResult:
    """One bounded pass over a running step: resolve, observe, close pods that no longer need
    an update, then patch up to ``max_patches`` pods the planner allows now, in batches of at
    most ``PATCH_BATCH_SIZE`` (pause and abort are honoured between batches)."""
    now = now or timezone.now()
    pods_by_uid = {_uid(pod): pod for pod in pods}
    result = observe_open_rows(core, rollout, pods_by_uid, step=step, now=now, kube=kube)
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
                core,
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
        closings = _Closings()
        for ref, row in list(claimed.items()):
            decision = decisions.get(ref)
            closing: tuple[str, str] | None = None
            if ref.uid not in pods_by_uid:
                closing = (PodUpdateOutcome.POD_GONE, "the pod was deleted before it was patched")
            elif decision is None:
                closing = (PodUpdateOutcome.SKIPPED, f"no longer matched: {unmatched.get(ref, 'unknown')}")
            elif decision.pod_class is PodClass.UPDATED:
                closing = (PodUpdateOutcome.SKIPPED, "already at the target revision")
            elif decision.pod_class is PodClass.NEEDS_RECREATE:
                closing = (PodUpdateOutcome.SKIPPED, f"needs recreate: {decision.reason}")
            elif decision.pod_class is PodClass.NOT_SELECTED:
                closing = (PodUpdateOutcome.SKIPPED, "no longer selected by updateStrategy.selector")
            elif decision.pod_class is PodClass.WAITING and decision.reason.startswith("kept on the old"):
                closing = (PodUpdateOutcome.SKIPPED, decision.reason)
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
                _patch_in_batches(kube, core, rollout, items, result, deadline)
    result.open_rows = PodUpdate.objects.filter(step=step, state__in=OPEN_POD_UPDATE_STATES).count()
    return result


def step_failures(step: RolloutStep) -> list[PodUpdate]:
    """Failed and timed-out rows of a step, oldest first."""
    return list(PodUpdate.objects.filter(step=step, outcome__in=FAILED_OUTCOMES).order_by("done_at", "pk"))
