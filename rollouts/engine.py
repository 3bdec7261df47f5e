"""The rollout engine: what one pass does to one running step, pod by pod (STYLE P10).

Called by the reconciler (``rollouts.reconciler``) with the cluster's lock held. Per pod:

1. the ``PodUpdate`` row goes ``claimed → patching`` and that is committed BEFORE the patch
   (pods are patched in small batches, ``PATCH_BATCH_SIZE``: one transaction moves every row of
   the batch to ``patching`` and commits, THEN the batch's patches are sent, a few in flight at
   once, then one transaction records their outcomes);
2. the patch is a strategic-merge patch that changes ONLY the sidecar images
   (``spec.containers[name].image``) plus the hub's hash annotation and the in-place update
   state annotation (update.md §2.3), and carries ``metadata.resourceVersion`` (the pod's, as
   listed), which the apiserver enforces as a precondition;
3. 409 (conflict): re-read the pod — if it shows our patch, it landed; otherwise the row goes
   back to ``claimed`` and the next pass re-plans it. Never a blind retry;
4. after a crash, a row left in ``patching`` is resolved by READING the pod: patched →
   ``observing``; not patched → back to ``claimed`` (re-planned, patched again at most once
   more, with a fresh precondition); gone → ``pod_gone``;
5. ``observing`` ends when the new image runs and the pod is ready (update.md §2.4: status
   image/imageID and readiness, via the planner's predicates), or fails (image pull error,
   crash loop), or times out;
6. hot upgrade (update.md §5, ``sidecarhub.sidecarset.hot_upgrade``): the patch above writes the
   new image to the IDLE twin (plus the version annotations); ``observing`` then follows the
   pure state machine: when the new twin runs and is ready the row goes ``switching`` (committed
   BEFORE the patch that points the working annotation at it), then ``resetting`` (committed
   BEFORE the patch that puts the old twin on the empty image), and ends when the old twin runs
   the empty image and the pod is ready. Each of these patches carries the pod's
   resourceVersion; after a crash the row is resolved by reading the pod (the state machine
   never asks for a write that already landed). A failure or a deadline leaves the working
   twin alone and fails the row.

The planner is the only judge of what may be patched now (``plan_round(..., only=step pods)``),
so maxUnavailable holds in every pass (a batch only holds pods of the planner's ``to_patch``).
Pause and abort intents are read between batches of at most ``PATCH_BATCH_SIZE`` pods (before
each batch is claimed): a pause stops the pass after the batch in flight, never inside it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Case, CharField, DateTimeField, F, Field, TextField, Value, When
from django.utils import timezone
from kubernetes import client

from clusters.kube import ClusterApiError, ClusterUnreachable, KubeClient, KubeError
from rollouts.choices import (
    FAILED_OUTCOMES,
    OPEN_POD_UPDATE_STATES,
    PATCHED_POD_UPDATE_STATES,
    PodUpdateOutcome,
    PodUpdateState,
)
from rollouts.models import PodUpdate, Rollout, RolloutStep
from sidecarhub.sidecarset import (
    ANNOTATION_INPLACE_UPDATE_STATE,
    PlanningCache,
    PodClass,
    SidecarSet,
    hot_upgrade,
    plan_round,
)
from sidecarhub.sidecarset.annotations import ANNOTATION_HASH, load_json_object
from sidecarhub.sidecarset.evaluation import evaluate_pod
from sidecarhub.sidecarset.hot_upgrade import HotUpgradeAction
from sidecarhub.sidecarset.predicates import PodRef

__all__ = [
    "FAILURE_REASONS",
    "PassResult",
    "build_patch",
    "claim_step_pods",
    "fetch_pods",
    "observe_hot_row",
    "observe_open_rows",
    "patch_batch",
    "planning_cache",
    "planning_sidecarset",
    "run_step_pass",
]

log = logging.getLogger(__name__)

STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
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
MAX_CONFLICTS = 5
# Pods patched per batch (one commit claims them all, their patches are in flight together, one
# commit records the outcomes) and the pause/abort intent is read once per batch; requests in
# flight at once (bounded again by the client's urllib3 pool, so no connection is thrown away).
PATCH_BATCH_SIZE = 16
PATCH_CONCURRENCY = 8
# Rollouts whose planning cache this process keeps (see ``planning_cache``).
PLANNING_CACHE_ROLLOUTS = 8

_planning_caches: OrderedDict[int, PlanningCache] = OrderedDict()
_planning_caches_lock = threading.Lock()


def planning_cache(rollout_id: int) -> PlanningCache:
    """This process's ``PlanningCache`` for a rollout: a pass re-evaluates only the pods whose
    resourceVersion changed since the previous pass (at 10,000 pods a round plans in about half
    the time; ``benchmarks/plan_round.py``). A cache is used only under its cluster's reconcile
    lock, so never by two passes at once; the least recently used beyond
    ``PLANNING_CACHE_ROLLOUTS`` are dropped."""
    with _planning_caches_lock:
        cache = _planning_caches.pop(rollout_id, None)
        if cache is None:  # not ``or``: an empty cache is falsy (it has a length)
            cache = PlanningCache()
        _planning_caches[rollout_id] = cache
        while len(_planning_caches) > PLANNING_CACHE_ROLLOUTS:
            _planning_caches.popitem(last=False)
        return cache


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


def _uid(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("uid") or "")


def _containers(pod: Mapping[str, Any]) -> dict[str, str]:
    return {
        str(c.get("name")): str(c.get("image") or "") for c in (pod.get("spec") or {}).get("containers") or []
    }


def _statuses(pod: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str(s.get("name")): s for s in (pod.get("status") or {}).get("containerStatuses") or []}


def image_changes(core: SidecarSet, pod: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(container, pod's image, SidecarSet's image) for each cold sidecar whose image differs."""
    present = _containers(pod)
    return [
        (container.name, present[container.name], container.image)
        for container in core.containers
        if container.hot_upgrade_names is None
        and container.name in present
        and present[container.name] != container.image
    ]


def has_hot_upgrade(core: SidecarSet) -> bool:
    """The SidecarSet has a HotUpgrade sidecar (its rows follow the hot-upgrade state machine)."""
    return any(container.hot_upgrade_names is not None for container in core.containers)


def row_targets(core: SidecarSet, pod: Mapping[str, Any] | None) -> tuple[str, str, str]:
    """``(container, from_image, to_image)`` of a PodUpdate row, comma-joined: each cold sidecar
    whose image differs, and each hot sidecar's idle twin (from: the working twin's image)."""
    changes = image_changes(core, pod) if pod is not None else []
    items = [(name, old, new) for name, old, new in changes]
    if pod is not None:
        for twins in hot_upgrade.read_twins(core, pod):
            if twins.working_image != twins.target_image:
                items.append((twins.idle, twins.working_image, twins.target_image))
    if not items:
        sidecars = [c for c in core.containers if c.hot_upgrade_names is None]
        return ",".join(c.name for c in sidecars), "", ",".join(c.image for c in sidecars)
    return (
        ",".join(name for name, _o, _n in items),
        ",".join(old for _n, old, _new in items),
        ",".join(new for _n, _o, new in items),
    )


def build_patch(
    core: SidecarSet,
    pod: Mapping[str, Any],
    *,
    revision_name: str,
    revision_hash: str,
    now: datetime,
    revision_number: int = 0,
) -> dict[str, Any]:
    """The strategic-merge patch body for one pod (see the module docstring, point 2).

    Only this SidecarSet's entries of the two annotations are replaced; the in-place state keeps
    its first ``revision``/``updateTimestamp`` (Kruise's quirk, update.md §2.3) and records the
    status imageID of each container it changes. Hot sidecars: the idle twin gets the new image
    and the version annotations (``hot_upgrade.upgrade_changes``; the new twin's version derives
    from ``revision_number``); the working annotation is switched later (point 6).
    """
    metadata = pod.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    names = sorted(
        [c.name for c in core.containers] + [c.name for c in core.init_containers if c.is_native_sidecar]
    )
    hashes = load_json_object(annotations.get(ANNOTATION_HASH)) or {}
    hashes[core.name] = {
        "updateTimestamp": stamp,
        "hash": revision_hash,
        "sidecarSetName": core.name,
        "sidecarList": names,
        "controllerRevision": revision_name,
    }
    changes = image_changes(core, pod)
    hot_annotations: dict[str, str] = {}
    if has_hot_upgrade(core):
        version = hot_upgrade.next_version(core, pod, revision_number)
        hot_changes, hot_annotations = hot_upgrade.upgrade_changes(core, pod, version=version)
        changes = changes + hot_changes
    states = load_json_object(annotations.get(ANNOTATION_INPLACE_UPDATE_STATE)) or {}
    entry = states.get(core.name) if isinstance(states.get(core.name), dict) else None
    entry = dict(entry) if entry else {"revision": revision_name, "updateTimestamp": stamp}
    last = dict(entry.get("lastContainerStatuses") or {})
    statuses = _statuses(pod)
    for name, _old, _new in changes:
        last[name] = {"imageID": str((statuses.get(name) or {}).get("imageID") or "")}
    entry["lastContainerStatuses"] = last
    states[core.name] = entry
    body: dict[str, Any] = {
        "metadata": {
            "resourceVersion": str(metadata.get("resourceVersion") or ""),
            "annotations": {
                ANNOTATION_HASH: json.dumps(hashes, sort_keys=True, separators=(",", ":")),
                ANNOTATION_INPLACE_UPDATE_STATE: json.dumps(states, sort_keys=True, separators=(",", ":")),
                **hot_annotations,
            },
        }
    }
    if changes:
        body["spec"] = {"containers": [{"name": name, "image": new} for name, _old, new in changes]}
    return body


def shows_patch(core: SidecarSet, pod: Mapping[str, Any], row: PodUpdate) -> bool:
    """The pod carries our patch: this revision's hash and the row's target images."""
    if not evaluate_pod(core, pod).updated:
        return False
    present = _containers(pod)
    wanted = zip(row.container.split(","), row.to_image.split(","), strict=False)
    return all(present.get(name) == image for name, image in wanted if name)


# --- pass bookkeeping ------------------------------------------------------------------------


@dataclass
class PassResult:
    """What one pass over a step did; ``stop_reason`` is set when the pass stopped early."""

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


class _Closings:
    """Rows to close, written together: one guarded UPDATE per (state, outcome, error) instead of
    a commit per row (a pass may close hundreds of rows whose pods became ready together)."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, str, str], list[int]] = {}

    def add(self, row: PodUpdate, outcome: str, error: str = "") -> None:
        self._groups.setdefault((row.state, outcome, error[:2000]), []).append(row.pk)

    def flush(self) -> int:
        """Write every group; return how many rows moved (a row another pass moved is left out)."""
        now = timezone.now()
        moved = 0
        for (state, outcome, error), ids in self._groups.items():
            moved += PodUpdate.objects.filter(pk__in=ids, state=state).update(
                state=PodUpdateState.DONE, outcome=outcome, error=error, done_at=now
            )
        self._groups.clear()
        return moved


def _finish(row: PodUpdate, outcome: str, error: str = "") -> bool:
    """Close one open row now (guarded by its current state); True when it moved."""
    closing = _Closings()
    closing.add(row, outcome, error)
    return bool(closing.flush())


def _move(row: PodUpdate, to_state: str, **fields: Any) -> bool:
    return bool(PodUpdate.objects.filter(pk=row.pk, state=row.state).update(state=to_state, **fields))


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


def _resource_version(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("resourceVersion") or "")


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


# --- patching ----------------------------------------------------------------------------------


def _intent(rollout_id: int) -> str:
    """'pause' / 'abort' when a person asked for it (read between pods), else ''."""
    row = Rollout.objects.filter(pk=rollout_id).values("pause_requested", "abort_requested", "state").first()
    if row is None:
        return "abort"
    if row["abort_requested"]:
        return "abort"
    if row["pause_requested"] or row["state"] != "running":
        return "pause"
    return ""


def _read_pod(kube: KubeClient, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return kube.call(
            client.CoreV1Api(kube.api_client).read_namespaced_pod,
            name,
            namespace,
            what=f"read pod {namespace}/{name}",
        )
    except ClusterApiError as exc:
        if exc.not_found:
            return None
        raise


def _per_row(values: Mapping[int, Any], output_field: Field[Any, Any]) -> Case:
    """A value per row (by pk) in one UPDATE."""
    return Case(*(When(pk=pk, then=Value(value)) for pk, value in values.items()), output_field=output_field)


def _claim_batch(
    core: SidecarSet, items: Sequence[tuple[PodUpdate, Mapping[str, Any]]], now: datetime
) -> list[tuple[PodUpdate, Mapping[str, Any]]]:
    """Move the batch's rows ``claimed → patching`` in ONE transaction (lock, then one UPDATE),
    committed before any of their patches is sent; return the rows that moved (a row another
    pass moved is left out)."""
    hot = has_hot_upgrade(core)
    with transaction.atomic():
        claimable = set(
            PodUpdate.objects.select_for_update()
            .filter(pk__in=[row.pk for row, _pod in items], state=PodUpdateState.CLAIMED)
            .values_list("pk", flat=True)
        )
        moving = [(row, pod) for row, pod in items if row.pk in claimable]
        if not moving:
            return []
        versions = {row.pk: _resource_version(pod) for row, pod in moving}
        fields: dict[str, Any] = {"resource_version": _per_row(versions, CharField())}
        targets: dict[int, tuple[str, str, str]] = {}
        if hot:  # which twin is idle is known only now, from the pod as listed
            targets = {row.pk: row_targets(core, pod) for row, pod in moving}
            columns: tuple[tuple[str, Field[Any, Any]], ...] = (
                ("container", CharField()),
                ("from_image", TextField()),
                ("to_image", TextField()),
            )
            for index, (name, output) in enumerate(columns):
                fields[name] = _per_row({pk: value[index] for pk, value in targets.items()}, output)
        PodUpdate.objects.filter(pk__in=list(versions), state=PodUpdateState.CLAIMED).update(
            state=PodUpdateState.PATCHING, patching_at=now, patch_attempts=F("patch_attempts") + 1, **fields
        )
    # What the UPDATE wrote, without reading the rows back: their other fields are as loaded
    # in this pass (the cluster's lock is held).
    for row, _pod in moving:
        row.state, row.patching_at, row.patch_attempts = PodUpdateState.PATCHING, now, row.patch_attempts + 1
        row.resource_version = versions[row.pk]
        if row.pk in targets:
            row.container, row.from_image, row.to_image = targets[row.pk]
    return moving


def _send_patch(kube: KubeClient, row: PodUpdate, body: dict[str, Any]) -> tuple[KubeError | None, datetime]:
    """Send one pod's patch (runs in a pool thread: no database access here). Returns the error
    (``None`` when the patch landed) and when the reply came."""
    try:
        kube.call(
            client.CoreV1Api(kube.api_client).patch_namespaced_pod,
            row.pod_name,
            row.namespace,
            body,
            _content_type=STRATEGIC_MERGE_PATCH,
            what=f"patch pod {row.namespace}/{row.pod_name}",
        )
    except (ClusterUnreachable, ClusterApiError) as exc:
        return exc, timezone.now()
    return None, timezone.now()


def patch_concurrency(kube: KubeClient) -> int:
    """Patches in flight at once: ``PATCH_CONCURRENCY``, never more than the client's urllib3
    pool keeps connections for (so every request reuses a kept-alive connection)."""
    configuration = getattr(getattr(kube, "api_client", None), "configuration", None)
    pool = int(getattr(configuration, "connection_pool_maxsize", 0) or PATCH_CONCURRENCY)
    return max(1, min(PATCH_CONCURRENCY, pool))


def patch_batch(
    kube: KubeClient,
    core: SidecarSet,
    rollout: Rollout,
    items: Sequence[tuple[PodUpdate, Mapping[str, Any]]],
    result: PassResult,
    *,
    executor: ThreadPoolExecutor | None = None,
) -> None:
    """Patch a batch of claimed pods (see the module docstring, points 1 to 3): one committed
    transaction moves every row to ``patching``; then the patches are sent (concurrently on
    ``executor`` when given; each carries its pod's resourceVersion); then the rows whose patch
    landed go to ``observing`` in one update. 404 and refusals close their rows; 409 re-reads the
    pod (``_on_conflict``); an unreachable apiserver leaves its rows in ``patching`` (the next
    pass resolves them by reading the pods)."""
    now = timezone.now()
    claimed = _claim_batch(core, items, now)
    if not claimed:
        return
    to_revision = rollout.to_revision
    bodies = [
        build_patch(
            core,
            pod,
            revision_name=to_revision.name if to_revision is not None else "",
            revision_hash=rollout.to_revision_hash,
            now=now,
            revision_number=rollout.to_revision_number,
        )
        for _row, pod in claimed
    ]
    rows = [row for row, _pod in claimed]
    if executor is not None and len(rows) > 1:
        outcomes = list(executor.map(lambda row, body: _send_patch(kube, row, body), rows, bodies))
    else:
        outcomes = [_send_patch(kube, row, body) for row, body in zip(rows, bodies, strict=True)]
    landed = {row.pk: at for row, (error, at) in zip(rows, outcomes, strict=True) if error is None}
    if landed:
        PodUpdate.objects.filter(pk__in=list(landed), state=PodUpdateState.PATCHING).update(
            state=PodUpdateState.OBSERVING,
            patched_at=_per_row(landed, DateTimeField()),
        )
        result.patched += len(landed)
    for row, (error, _at) in zip(rows, outcomes, strict=True):
        if error is None:
            continue
        if isinstance(error, ClusterUnreachable):
            result.unreachable = str(error)  # the row stays ``patching``: the next pass reads the pod
        elif isinstance(error, ClusterApiError) and error.status == 404:
            _finish(row, PodUpdateOutcome.POD_GONE, "the pod was deleted before the patch")
            result.finished += 1
        elif isinstance(error, ClusterApiError) and error.status == 409:
            result.conflicts += 1
            if result.unreachable:
                continue  # stays ``patching``; resolved by reading on the next pass
            _on_conflict(kube, core, row, result)
        else:
            _finish(row, PodUpdateOutcome.FAILED, f"the apiserver refused the patch: {error}")
            result.finished += 1


def patch_one(
    kube: KubeClient,
    core: SidecarSet,
    rollout: Rollout,
    row: PodUpdate,
    pod: Mapping[str, Any],
    result: PassResult,
) -> None:
    """Patch one claimed pod (a batch of one). The row is committed in ``patching`` before the
    request is sent."""
    patch_batch(kube, core, rollout, [(row, pod)], result)


def _on_conflict(kube: KubeClient, core: SidecarSet, row: PodUpdate, result: PassResult) -> None:
    """409: the pod changed since it was listed. Re-read it and re-check; never retry blindly."""
    try:
        pod = _read_pod(kube, row.namespace, row.pod_name)
    except (ClusterUnreachable, ClusterApiError) as exc:
        result.unreachable = str(exc)
        return  # stays ``patching``; resolved by reading on the next pass
    if pod is not None and _uid(pod) != row.pod_uid:
        pod = None
    if pod is not None and shows_patch(core, pod, row):
        _move(row, PodUpdateState.OBSERVING, patched_at=timezone.now())
        result.patched += 1
        return
    if pod is None:
        _finish(row, PodUpdateOutcome.POD_GONE, "the pod was deleted (or recreated) before the patch")
        result.finished += 1
        return
    if row.conflicts + 1 >= MAX_CONFLICTS:
        _finish(row, PodUpdateOutcome.FAILED, f"the pod kept changing: {row.conflicts + 1} conflicts")
        result.finished += 1
        return
    # Not patched: back to claimed; the next pass plans it again from a fresh list.
    _move(row, PodUpdateState.CLAIMED, conflicts=F("conflicts") + 1, patch_attempts=F("patch_attempts") - 1)


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
        plan = plan_round(
            core,
            pods,
            namespace_labels=namespace_labels,
            only=frozenset(claimed),
            apply_canary_selector=step.canary,
            cache=planning_cache(rollout.pk),
        )
        if plan.blocked_reason is not None:
            result.waiting_reasons.append(plan.blocked_reason)
        decisions = {decision.ref: decision for decision in plan.decisions}
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
        waiting = [d for d in plan.ordered if d.ref in claimed and d.pod_class is PodClass.WAITING]
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
