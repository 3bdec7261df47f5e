"""Batched patching: a ``PodUpdate`` row from ``claimed`` through the patch to ``observing``, the
patch itself, and closing rows.

Called by the step pass (``rollouts.engine``) with the cluster's lock held. This module holds what
a row's patch is (``row_targets``, ``build_patch``, ``shows_patch``: does a pod carry it), the
batched patch (``patch_batch``: claim, send, record), the 409 re-read, and the row writes every
part of a pass shares: ``PassResult`` (what a pass did) and the grouped closings (``_Closings``,
``_finish``, ``_move``). Per pod:

1. the ``PodUpdate`` row goes ``claimed → patching`` and that is committed BEFORE the patch
   (pods are patched in small batches, ``rollouts.engine.PATCH_BATCH_SIZE``: one transaction
   moves every row of the batch to ``patching`` and commits, THEN the batch's patches are sent, a
   few in flight at once, then one transaction records their outcomes);
2. the patch is a strategic-merge patch that changes ONLY the sidecar images
   (``spec.containers[name].image``) plus the hub's hash annotation and the in-place update
   state annotation (update.md §2.3), and carries ``metadata.resourceVersion`` (the pod's, as
   listed), which the apiserver enforces as a precondition;
3. 409 (conflict): re-read the pod — if it shows our patch, it landed; otherwise the row goes
   back to ``claimed`` and the next pass re-plans it. Never a blind retry.

What follows the patch (crash resolution, observing, the hot-upgrade switch and reset: points 4
to 6) is in ``rollouts.engine``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Case, CharField, DateTimeField, F, Field, TextField, Value, When
from django.utils import timezone
from kubernetes import client

from clusters.kube import ClusterApiError, ClusterUnreachable, KubeClient, KubeError
from rollouts.choices import PodUpdateOutcome, PodUpdateState
from rollouts.models import PodUpdate, Rollout
from sidecarhub.sidecarset import ANNOTATION_INPLACE_UPDATE_STATE, SidecarSet, hot_upgrade
from sidecarhub.sidecarset.annotations import ANNOTATION_HASH, load_json_object
from sidecarhub.sidecarset.evaluation import evaluate_pod

__all__ = [
    "PassResult",
    "build_patch",
    "patch_batch",
]

STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
MAX_CONFLICTS = 5
# Requests in flight at once (bounded again by the client's urllib3 pool, so no connection is
# thrown away; see ``patch_concurrency``).
PATCH_CONCURRENCY = 8


# --- the patch ---------------------------------------------------------------------------------


def _uid(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("uid") or "")


def _resource_version(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("resourceVersion") or "")


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


# --- patching ----------------------------------------------------------------------------------


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
