"""The restart executor: what one pass does to one running restart step (decision 18).

Called by the reconciler (``rollouts.reconciler``) with the cluster's lock held and the turn's
pod list. A restart step's rows (one ``PodUpdate`` per pod that needs recreate, naming its
workload) move together per workload, through ``rollouts.pod_updates`` only:

1. ``claimed → patching`` with the ``restartedAt`` value the patch will write, COMMITTED
   before the patch (``pod_updates.start_restarting``);
2. the patch is ``kubectl rollout restart``'s (``workloads.restart_patch``): the workload's own
   controller replaces its pods by its own rules;
3. after a crash (or an unanswered patch), a ``patching`` workload is decided by READING it: it
   carries the marker → the patch landed (``observing``); it does not → the same patch (same
   marker, so a no-op if it raced) is sent again, at most ``MAX_RESTART_ATTEMPTS`` in all. A
   workload is therefore never restarted twice by one step;
4. ``observing`` rows end ``recreated`` when the workload's own rollout is complete
   (``workloads.restart_status``) and their old pod (by uid) is gone;
5. a workload not complete within ``Rollout.workload_deadline_seconds`` (counted from its patch,
   or from the step's last resume) stalls the step: the reconciler pauses the restart with the
   workload and its counts. Paused, it is still observed (its rows can still end ``recreated``);
   nothing new is restarted until a person resumes.

At most ``Rollout.workloads_at_once`` workloads are in flight; pause and abort intents are read
before each new workload, never in the middle of one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone
from kubernetes import client

from clusters.kube import ClusterApiError, ClusterUnreachable, KubeClient
from rollouts import pod_updates
from rollouts.choices import (
    OPEN_POD_UPDATE_STATES,
    PATCHED_POD_UPDATE_STATES,
    PodUpdateOutcome,
    PodUpdateState,
    RolloutState,
    StepState,
)
from rollouts.models import PodUpdate, Rollout, RolloutStep, StepTransition
from rollouts.pod_patches import STRATEGIC_MERGE_PATCH, PatchReply, PatchResult
from rollouts.workloads import WorkloadKind, restart_marker_of, restart_patch, restart_status

__all__ = [
    "MAX_RESTART_ATTEMPTS",
    "RestartPassResult",
    "WorkloadRead",
    "observe_restart_rows",
    "read_workload",
    "run_restart_pass",
    "running_since",
    "send_restart",
]

MAX_RESTART_ATTEMPTS = 2

WorkloadKey = tuple[str, str, str]  # (kind, namespace, name)


@dataclass
class RestartPassResult:
    """What one pass over a restart step did; ``stalled`` names a workload past its deadline."""

    restarted: int = 0  # workload patches that landed
    finished: int = 0  # rows closed
    open_rows: int = 0
    stalled: str = ""
    unreachable: str = ""
    intent: str = ""
    waiting: str = ""  # what the in-flight workloads are at (for the step's explanation)

    @property
    def progressed(self) -> bool:
        return bool(self.restarted or self.finished)


# --- the apps/v1 calls -----------------------------------------------------------------------------


def _api(kube: KubeClient, verb: str, kind: str) -> Callable[..., Any]:
    suffix = {
        WorkloadKind.DEPLOYMENT: "deployment",
        WorkloadKind.STATEFULSET: "stateful_set",
        WorkloadKind.DAEMONSET: "daemon_set",
    }[WorkloadKind(kind)]
    operation: Callable[..., Any] = getattr(client.AppsV1Api(kube.api_client), f"{verb}_namespaced_{suffix}")
    return operation


@dataclass(frozen=True)
class WorkloadRead:
    """A workload read by name: ``workload`` None when gone; ``unreachable`` when no answer."""

    workload: dict[str, Any] | None
    unreachable: str = ""


def read_workload(kube: KubeClient, kind: str, namespace: str, name: str) -> WorkloadRead:
    try:
        found = kube.call(_api(kube, "read", kind), name, namespace, what=f"read {kind} {namespace}/{name}")
    except ClusterUnreachable as exc:
        return WorkloadRead(None, unreachable=str(exc))
    except ClusterApiError as exc:
        return WorkloadRead(None) if exc.not_found else WorkloadRead(None, unreachable=str(exc))
    return WorkloadRead(found if isinstance(found, dict) else None)


def send_restart(kube: KubeClient, kind: str, namespace: str, name: str, marker: str) -> PatchReply:
    """Send ``kubectl rollout restart``'s patch (``workloads.restart_patch``)."""
    try:
        kube.call(
            _api(kube, "patch", kind),
            name,
            namespace,
            restart_patch(marker),
            _content_type=STRATEGIC_MERGE_PATCH,
            what=f"restart {kind} {namespace}/{name}",
        )
    except ClusterUnreachable as exc:
        return PatchReply(PatchResult.UNREACHABLE, timezone.now(), error=str(exc))
    except ClusterApiError as exc:
        if exc.status == 404:
            return PatchReply(PatchResult.GONE, timezone.now(), error=str(exc))
        if exc.status == 409:
            return PatchReply(PatchResult.CONFLICT, timezone.now(), error=str(exc))
        return PatchReply(PatchResult.REFUSED, timezone.now(), error=str(exc))
    return PatchReply(PatchResult.LANDED, timezone.now())


# --- per workload ------------------------------------------------------------------------------


def _key(row: PodUpdate) -> WorkloadKey:
    return (row.workload_kind, row.namespace, row.workload_name)


def _label(key: WorkloadKey) -> str:
    return f"{key[0]} {key[1]}/{key[2]}"


def _close_gone_workload(rows: Sequence[PodUpdate], pods_by_uid: Mapping[str, Any], key: WorkloadKey) -> int:
    closings = pod_updates.Closings()
    for row in rows:
        if row.pod_uid in pods_by_uid:
            closings.add(
                row, PodUpdateOutcome.SKIPPED, f"{_label(key)} was deleted; the pod was not replaced"
            )
        else:
            closings.add(row, PodUpdateOutcome.POD_GONE, f"{_label(key)} was deleted")
    return closings.flush()


def _marker() -> str:
    """A ``restartedAt`` value unique to this restart (RFC 3339 with microseconds)."""
    return timezone.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _settle(
    kube: KubeClient,
    rollout: Rollout,
    key: WorkloadKey,
    rows: list[PodUpdate],
    pods_by_uid: Mapping[str, Any],
    result: RestartPassResult,
    *,
    mode: str,
    now: datetime,
    running_since: datetime | None = None,
) -> None:
    """Decide the in-flight rows of one workload by reading it (module docstring, points 3-5).

    ``mode``: ``run`` (a running step: an unlanded patch is sent again; a deadline stalls),
    ``paused`` (an unlanded patch is taken back to ``claimed``: resume restarts it), ``ended``
    (an unlanded patch is skipped; a deadline closes the rows ``timed_out``)."""
    read = read_workload(kube, *key)
    if read.unreachable:
        result.unreachable = read.unreachable
        return
    if read.workload is None:
        result.finished += _close_gone_workload(rows, pods_by_uid, key)
        return
    workload = read.workload
    patching = [row for row in rows if row.state == PodUpdateState.PATCHING]
    if patching:
        marker = patching[0].restart_marker
        if restart_marker_of(workload) == marker:
            pod_updates.record_restarted(patching, patching[0].patching_at or now)
        elif mode == "paused":
            for row in patching:
                pod_updates.move(row, PodUpdateState.CLAIMED)
            return
        elif mode == "ended":
            for row in patching:
                result.finished += pod_updates.close(
                    row, PodUpdateOutcome.SKIPPED, f"not restarted: rollout {rollout.state}"
                )
            return
        elif max(row.patch_attempts for row in patching) >= MAX_RESTART_ATTEMPTS:
            for row in patching:
                result.finished += pod_updates.close(
                    row, PodUpdateOutcome.FAILED, f"{_label(key)}: the restart did not land after 2 attempts"
                )
            return
        else:
            pod_updates.count_restart_resend(patching)
            if not _land(kube, key, patching, marker, pods_by_uid, result):
                return
    observing = [row for row in rows if row.state == PodUpdateState.OBSERVING]
    if not observing:
        return
    status = restart_status(key[0], workload)
    closings = pod_updates.Closings()
    left = []
    for row in observing:
        if status.complete and row.pod_uid not in pods_by_uid:
            closings.add(row, PodUpdateOutcome.RECREATED)
        else:
            left.append(row)
    result.finished += closings.flush()
    if not left:
        return
    started = max(row.patched_at or row.patching_at or now for row in left)
    if running_since is not None and mode == "run":
        started = max(started, running_since)
    waited = (now - started).total_seconds()
    gone = sum(1 for row in left if row.pod_uid not in pods_by_uid)
    words = f"{_label(key)}: {status.summary}; {len(left) - gone} of its old pods still running"
    result.waiting = words
    if waited <= rollout.workload_deadline_seconds:
        return
    if mode == "run":
        result.stalled = words + f" after {int(waited)}s (deadline {rollout.workload_deadline_seconds}s)"
    elif mode == "ended":
        for row in left:
            result.finished += pod_updates.close(
                row, PodUpdateOutcome.TIMED_OUT, f"{words}; not complete within the deadline"
            )


def _land(
    kube: KubeClient,
    key: WorkloadKey,
    rows: list[PodUpdate],
    marker: str,
    pods_by_uid: Mapping[str, Any],
    result: RestartPassResult,
) -> bool:
    """Send one workload's restart for its ``patching`` rows; True when it landed."""
    reply = send_restart(kube, *key, marker)
    if reply.result is PatchResult.LANDED:
        pod_updates.record_restarted(rows, reply.at)
        result.restarted += 1
        return True
    if reply.result is PatchResult.GONE:
        result.finished += _close_gone_workload(rows, pods_by_uid, key)
    elif reply.result is PatchResult.REFUSED:
        for row in rows:
            result.finished += pod_updates.close(
                row,
                PodUpdateOutcome.FAILED,
                f"the apiserver refused the restart of {_label(key)}: {reply.error}",
            )
    else:  # unreachable or 409: the rows stay ``patching``; the next pass reads the workload
        result.unreachable = reply.error
    return False


def _intent(rollout_id: int) -> str:
    """'pause' / 'abort' when a person asked for it (read before each new workload), else ''."""
    row = Rollout.objects.filter(pk=rollout_id).values("pause_requested", "abort_requested", "state").first()
    if row is None or row["abort_requested"]:
        return "abort"
    if row["pause_requested"] or row["state"] != RolloutState.RUNNING:
        return "pause"
    return ""


def _grouped(rows: Iterable[PodUpdate]) -> dict[WorkloadKey, list[PodUpdate]]:
    groups: dict[WorkloadKey, list[PodUpdate]] = {}
    for row in rows:
        groups.setdefault(_key(row), []).append(row)
    return groups


def running_since(step: RolloutStep) -> datetime | None:
    """When the step last went to ``running`` (its start, or its last resume)."""
    return (
        StepTransition.objects.filter(step=step, to_state=StepState.RUNNING)
        .order_by("-at")
        .values_list("at", flat=True)
        .first()
    )


# --- the passes ----------------------------------------------------------------------------------


def run_restart_pass(
    kube: KubeClient,
    rollout: Rollout,
    step: RolloutStep,
    pods_by_uid: Mapping[str, Any],
    *,
    blocked: str = "",
    now: datetime | None = None,
) -> RestartPassResult:
    """One bounded pass over a running restart step: settle the workloads in flight, then (unless
    ``blocked``, stalled or asked to pause/abort) restart the next ones, up to
    ``workloads_at_once`` in flight."""
    now = now or timezone.now()
    result = RestartPassResult()
    since = running_since(step)
    rows = _grouped(PodUpdate.objects.filter(step=step, state__in=OPEN_POD_UPDATE_STATES).order_by("pk"))
    in_flight = 0
    for key, group in rows.items():
        if any(row.state in PATCHED_POD_UPDATE_STATES for row in group):
            _settle(kube, rollout, key, group, pods_by_uid, result, mode="run", now=now, running_since=since)
            if result.unreachable:
                break
            if any(row.state in OPEN_POD_UPDATE_STATES for row in group):
                in_flight += 1
    if not (result.unreachable or result.stalled or blocked):
        order = [(w["kind"], w["namespace"], w["name"]) for w in step.workloads]
        for key in order:
            if in_flight >= max(1, rollout.workloads_at_once):
                break
            claimed = [row for row in rows.get(key, []) if row.state == PodUpdateState.CLAIMED]
            if not claimed:
                continue
            result.intent = _intent(rollout.pk)
            if result.intent:
                break
            gone = [row for row in claimed if row.pod_uid not in pods_by_uid]
            closings = pod_updates.Closings()
            for row in gone:
                closings.add(
                    row, PodUpdateOutcome.POD_GONE, "the pod was gone before its workload was restarted"
                )
            result.finished += closings.flush()
            claimed = [row for row in claimed if row.pod_uid in pods_by_uid]
            if not claimed:
                continue
            moving = pod_updates.start_restarting(claimed, _marker(), timezone.now())
            if not moving:
                continue
            in_flight += 1
            landed = _land(kube, key, moving, moving[0].restart_marker, pods_by_uid, result)
            if not landed and result.unreachable:
                break
    result.open_rows = PodUpdate.objects.filter(step=step, state__in=OPEN_POD_UPDATE_STATES).count()
    return result


def observe_restart_rows(
    kube: KubeClient, rollout: Rollout, pods_by_uid: Mapping[str, Any], *, now: datetime | None = None
) -> RestartPassResult:
    """A paused or ended restart: nothing new is restarted; workloads already restarted are still
    observed (their rows can end ``recreated``). Paused: an unlanded patch goes back to
    ``claimed``; ended: it is skipped, and a workload past its deadline closes ``timed_out``."""
    now = now or timezone.now()
    result = RestartPassResult()
    mode = "paused" if rollout.state == RolloutState.PAUSED else "ended"
    rows = PodUpdate.objects.filter(rollout=rollout, state__in=PATCHED_POD_UPDATE_STATES).order_by("pk")
    for key, group in _grouped(rows).items():
        _settle(kube, rollout, key, group, pods_by_uid, result, mode=mode, now=now)
        if result.unreachable:
            break
    return result
