"""Targets, placements, push and status write-back: how published SidecarSets reach clusters.

- ``create_target`` / ``update_target`` / ``delete_target`` edit a SidecarSet's targets and
  re-resolve its placements (``sync_placements``).
- ``sync_placements(sidecarset_id)`` keeps one ``SidecarSetPlacement`` per target cluster (a
  new one serves the current revision: state ``pending``, a push task queued after commit) and
  marks clusters that are no longer targets ``removing`` (a removal task queued after commit).
  It runs on every publish (``revision_published``), target change, cluster label change and
  SidecarSet deletion. Publishing does not move what an existing placement serves (decision
  17): ``serve_revision`` does, when a release's gate opens or a cluster is rolled back.
- ``apply_revision(revision_id, cluster_id)`` is the push step: install the CRD if needed and
  server-side apply the custom resource (field manager ``sidecarhub``). Idempotent.
- ``remove_placement(placement_id)`` deletes the custom resource from that one cluster;
  ``delete_hub_resources(kube)`` deletes all of the hub's from a cluster (when it leaves the hub).
- ``write_back_status(cluster_id)`` lists the cluster's pods once (plain JSON), computes each
  applied SidecarSet's counters (update.md §3), writes them to the resource's status
  subresource and to the placement row, and re-queues failed pushes and removals. The periodic
  ``clusters.refresh_cluster_status`` task runs it, then the drift check, from one pod list.

Which clusters a SidecarSet's targets select is ``clusters.targeting``; tasks are queued through
``clusters.enqueue``.

Placement state changes are conditional UPDATEs guarded by the expected states and revision
(STYLE P3); a stale or duplicate task finds nothing to do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from kubernetes import client

from clusters import enqueue
from clusters.choices import PLACEMENT_TRANSITIONS, PlacementState
from clusters.kube import ClusterApiError, KubeClient, KubeError, PodListing, cached_kube_client
from clusters.models import Cluster, SidecarSetPlacement, SidecarSetTarget
from clusters.resources import (
    CRD_NAME,
    GROUP,
    MANAGED_BY_SELECTOR,
    PLURAL,
    VERSION,
    crd_manifest,
    crd_manifest_hash,
    custom_resource,
    status_body,
)
from clusters.targeting import resolve_targets
from sidecarhub.changes import record_change
from sidecarhub.choices import ChangeAction
from sidecarhub.models import SidecarSet, SidecarSetRevision
from sidecarhub.sidecarset import SidecarSet as CoreSidecarSet
from sidecarhub.sidecarset.caches import PlanningCaches
from sidecarhub.sidecarset.conditions import CONDITION_TYPE, recorded, upgradable_condition
from sidecarhub.sidecarset.planning import PodClass, compute_status, plan_round
from sidecarhub.sidecarset.pod_records import decode_pod
from sidecarhub.teams import require_team_access
from sidecarhub.transitions import InvalidTransition

__all__ = [
    "PushOutcome",
    "StatusWriteBack",
    "TargetInvalid",
    "apply_revision",
    "check_target",
    "check_target_deletion",
    "create_target",
    "delete_hub_resources",
    "delete_target",
    "ensure_crd",
    "register_hub_status_provider",
    "remove_placement",
    "resync_selector_targets",
    "retry_placement",
    "serve_revision",
    "sidecarset_removed",
    "sync_placements",
    "update_target",
    "write_back_status",
]

log = logging.getLogger(__name__)

# Callables (cluster_id, sidecarset_name) -> dict written as ``status.hub`` by the status
# write-back; the rollouts app registers its provider in ``ready()`` (no import of rollouts here).
_HUB_STATUS_PROVIDERS: list[Callable[[int, str], dict[str, Any]]] = []


def register_hub_status_provider(provider: Callable[[int, str], dict[str, Any]]) -> None:
    """Add a contributor to ``status.hub`` (idempotent)."""
    if provider not in _HUB_STATUS_PROVIDERS:
        _HUB_STATUS_PROVIDERS.append(provider)


def _hub_status(cluster_id: int, sidecarset_name: str) -> dict[str, Any]:
    hub: dict[str, Any] = {}
    for provider in _HUB_STATUS_PROVIDERS:
        try:
            hub.update(provider(cluster_id, sidecarset_name))
        except Exception:  # status is best effort: never fail the write-back for it
            log.exception("status.hub provider %r failed", provider)
    return hub


_ACTIVE_STATES = (PlacementState.PENDING, PlacementState.FAILED)
_CRD_ESTABLISH_TIMEOUT_SECONDS = 20.0


class TargetInvalid(ValueError):
    """Target input rejected; ``errors`` maps field names to messages."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{key}: {value}" for key, value in errors.items()))
        self.errors = dict(errors)


class PushOutcome(StrEnum):
    """What one push or removal step did."""

    APPLIED = "applied"
    REMOVED = "removed"
    FAILED = "failed"
    SKIPPED = "skipped"  # stale task (another revision is wanted) or nothing to do


@dataclass
class StatusWriteBack:
    """What one status write-back of one cluster did."""

    cluster_id: int
    statuses_written: int = 0
    conditions_written: int = 0  # pods whose SidecarSetUpgradable condition changed
    requeued: int = 0
    error: str = ""
    counters: dict[str, dict[str, int]] = field(default_factory=dict)


# --- targets -----------------------------------------------------------------------------


def _selector_error(selector: Any) -> str | None:
    if not isinstance(selector, dict):
        return "must be a label selector object (matchLabels / matchExpressions)"
    unknown = set(selector) - {"matchLabels", "matchExpressions"}
    if unknown:
        return f"unknown key {sorted(unknown)[0]!r}"
    labels = selector.get("matchLabels", {})
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        return "matchLabels must map strings to strings"
    expressions = selector.get("matchExpressions", [])
    if not isinstance(expressions, list):
        return "matchExpressions must be a list"
    for position, item in enumerate(expressions):
        if not isinstance(item, dict) or not item.get("key"):
            return f"matchExpressions[{position}].key is required"
        operator = item.get("operator")
        values = item.get("values") or []
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return f"matchExpressions[{position}].operator must be In, NotIn, Exists or DoesNotExist"
        if operator in ("In", "NotIn") and not values:
            return f"matchExpressions[{position}].values must not be empty for {operator}"
        if operator in ("Exists", "DoesNotExist") and values:
            return f"matchExpressions[{position}].values must be empty for {operator}"
    if not labels and not expressions:
        return "must not be empty (name clusters explicitly, or select them by label)"
    return None


def _validate_target(cluster_id: int | None, cluster_selector: Any, wave: int) -> None:
    if (cluster_id is None) == (cluster_selector is None):
        raise TargetInvalid({"cluster": "give exactly one of cluster or cluster_selector"})
    if cluster_selector is not None:
        error = _selector_error(cluster_selector)
        if error:
            raise TargetInvalid({"cluster_selector": error})
    if not isinstance(wave, int) or wave < 0 or wave > 1000:
        raise TargetInvalid({"wave": "must be an integer from 0 to 1000"})


def _target_snapshot(target: SidecarSetTarget) -> dict[str, Any]:
    return {
        "sidecarset": target.sidecarset.name,
        "cluster": target.cluster.name if target.cluster_id and target.cluster else None,
        "cluster_selector": target.cluster_selector,
        "wave": target.wave,
    }


def _record(
    target: SidecarSetTarget,
    action: ChangeAction,
    *,
    actor: Any,
    request_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    record_change(
        target,
        action,
        actor=actor,
        request_id=request_id,
        before=before,
        after=after,
        parent=target.sidecarset,
    )


def _require_target_access(actor: Any, sidecarset: SidecarSet, cluster_id: int | None) -> None:
    """A target belongs to its SidecarSet's team; one that names a cluster also needs the
    cluster's team (a new target is served at once, without a rollout to approve). Selector
    targets select only clusters their SidecarSet's team may use (``clusters.targeting``), so
    they never reach another team's cluster and need no check here."""
    require_team_access(actor, [sidecarset.owner_team], f"SidecarSet {sidecarset.name!r}")
    if cluster_id is not None:
        cluster = Cluster.objects.select_related("owner_team").filter(pk=cluster_id).first()
        if cluster is not None:
            require_team_access(actor, [cluster.owner_team], f"cluster {cluster.name!r}")


def _check_target(
    sidecarset_id: int,
    sidecarset: SidecarSet | None,
    existing: SidecarSetTarget | None,
    *,
    actor: Any,
    cluster_id: int | None,
    cluster_selector: dict[str, Any] | None,
    wave: int,
) -> None:
    """The rules of a target write (``existing``: the row an update changes, else a new one),
    in the order the writes apply them; ``TargetInvalid`` or ``NotTeamMember``."""
    if existing is not None and sidecarset is not None:
        _require_target_access(actor, sidecarset, existing.cluster_id)
    _validate_target(cluster_id, cluster_selector, wave)
    if sidecarset is not None and (existing is None or cluster_id != existing.cluster_id):
        _require_target_access(actor, sidecarset, cluster_id)
    if cluster_id is not None:
        explicit = SidecarSetTarget.objects.filter(sidecarset_id=sidecarset_id, cluster_id=cluster_id)
        if existing is not None:
            explicit = explicit.exclude(pk=existing.pk)
        if explicit.exists():
            raise TargetInvalid({"cluster": "this cluster is already an explicit target of the SidecarSet"})


def check_target(
    sidecarset_id: int,
    *,
    actor: Any = None,
    target_id: int | None = None,
    cluster_id: int | None = None,
    cluster_selector: dict[str, Any] | None = None,
    wave: int = 0,
) -> None:
    """Whether ``create_target`` (``target_id`` None) or ``update_target`` of ``target_id`` to
    this whole row would accept it, without writing: the same ``TargetInvalid`` or
    ``NotTeamMember`` they would raise. For forms that check before they save (the SidecarSet
    page's inline targets), so a refusal is shown next to what was typed and nothing is saved."""
    sidecarset = SidecarSet.objects.select_related("owner_team").filter(pk=sidecarset_id).first()
    existing = (
        SidecarSetTarget.objects.filter(pk=target_id, sidecarset_id=sidecarset_id).first()
        if target_id is not None
        else None
    )
    _check_target(
        sidecarset_id,
        sidecarset,
        existing,
        actor=actor,
        cluster_id=cluster_id,
        cluster_selector=cluster_selector,
        wave=wave,
    )


def check_target_deletion(target_id: int, *, actor: Any = None) -> None:
    """Whether ``delete_target`` would accept deleting the target, without writing
    (``NotTeamMember`` as it would raise; a target that is gone already is no refusal)."""
    target = SidecarSetTarget.objects.select_related("sidecarset__owner_team").filter(pk=target_id).first()
    if target is not None:
        _require_target_access(actor, target.sidecarset, target.cluster_id)


@transaction.atomic
def create_target(
    sidecarset_id: int,
    *,
    actor: Any = None,
    request_id: str = "",
    cluster_id: int | None = None,
    cluster_selector: dict[str, Any] | None = None,
    wave: int = 0,
) -> SidecarSetTarget:
    """Add a target to a SidecarSet and push it to the newly selected clusters (if published).
    Rules: ``check_target`` (team rules: ``_require_target_access``)."""
    owner = SidecarSet.objects.select_related("owner_team").filter(pk=sidecarset_id).first()
    _check_target(
        sidecarset_id,
        owner,
        None,
        actor=actor,
        cluster_id=cluster_id,
        cluster_selector=cluster_selector,
        wave=wave,
    )
    target = SidecarSetTarget.objects.create(
        sidecarset_id=sidecarset_id, cluster_id=cluster_id, cluster_selector=cluster_selector, wave=wave
    )
    _record(
        target,
        ChangeAction.CREATE,
        actor=actor,
        request_id=request_id,
        before=None,
        after=_target_snapshot(target),
    )
    sync_placements(sidecarset_id)
    return target


@transaction.atomic
def update_target(
    target_id: int, *, changes: Mapping[str, Any], actor: Any = None, request_id: str = ""
) -> SidecarSetTarget:
    """Change a target's cluster, selector or wave; placements follow. Rules: ``check_target``."""
    target = (
        SidecarSetTarget.objects.select_for_update(of=("self",))
        .select_related("sidecarset", "cluster")
        .get(pk=target_id)
    )
    cluster_id = changes.get("cluster_id", target.cluster_id)
    selector = changes.get("cluster_selector", target.cluster_selector)
    if "cluster_id" in changes and changes["cluster_id"] is not None and "cluster_selector" not in changes:
        selector = None
    if (
        "cluster_selector" in changes
        and changes["cluster_selector"] is not None
        and "cluster_id" not in changes
    ):
        cluster_id = None
    wave = changes.get("wave", target.wave)
    _check_target(
        target.sidecarset_id,
        target.sidecarset,
        target,
        actor=actor,
        cluster_id=cluster_id,
        cluster_selector=selector,
        wave=wave,
    )
    before = _target_snapshot(target)
    target.cluster_id, target.cluster_selector, target.wave = cluster_id, selector, wave
    target.save()
    target.refresh_from_db()
    _record(
        target,
        ChangeAction.UPDATE,
        actor=actor,
        request_id=request_id,
        before=before,
        after=_target_snapshot(target),
    )
    sync_placements(target.sidecarset_id)
    return target


@transaction.atomic
def delete_target(target_id: int, *, actor: Any = None, request_id: str = "") -> None:
    """Remove a target; clusters no longer selected lose the resource (that cluster only)."""
    target = (
        SidecarSetTarget.objects.select_for_update(of=("self",))
        .select_related("sidecarset", "cluster")
        .get(pk=target_id)
    )
    _require_target_access(actor, target.sidecarset, target.cluster_id)
    _record(
        target,
        ChangeAction.DELETE,
        actor=actor,
        request_id=request_id,
        before=_target_snapshot(target),
        after=None,
    )
    sidecarset_id = target.sidecarset_id
    target.delete()
    sync_placements(sidecarset_id)


# --- placements ------------------------------------------------------------------------------


def _transition(
    placement_id: int,
    *,
    from_states: Iterable[str],
    to_state: str,
    extra: Q | None = None,
    **fields: Any,
) -> bool:
    """One guarded UPDATE; True when the row moved (STYLE P3)."""
    allowed = [state for state in from_states if to_state in PLACEMENT_TRANSITIONS[state]]
    query = Q(pk=placement_id, state__in=allowed)
    if extra is not None:
        query &= extra
    return bool(
        SidecarSetPlacement.objects.filter(query).update(
            state=to_state, state_changed_at=timezone.now(), **fields
        )
    )


@transaction.atomic
def sync_placements(sidecarset_id: int, *, serve_from: int | None = None) -> None:
    """Make placements match the SidecarSet's targets (see the module docstring).

    Which revision a placement serves (decision 17): a new placement, or a cluster targeted
    again, serves the current revision at once (nothing earlier to protect there); an existing
    one keeps serving what it serves until its release's gate opens (``serve_revision``). A
    publish that changes nothing pods see passes ``serve_from`` (the revision it replaced): the
    placements serving THAT revision move to the current one at once; a cluster serving another
    one (held back, rolled back) keeps it. Idempotent: nothing is queued for a placement that
    already has (or is pushing) the revision it serves."""
    sidecarset = SidecarSet.objects.select_for_update().filter(pk=sidecarset_id).first()
    if sidecarset is None:
        return
    current_id = sidecarset.current_revision_id
    desired = resolve_targets(sidecarset_id) if current_id is not None else {}
    existing = {
        p.cluster_id: p
        for p in SidecarSetPlacement.objects.select_for_update().filter(sidecarset_name=sidecarset.name)
    }
    now = timezone.now()
    for cluster_id, wave in desired.items():
        placement = existing.get(cluster_id)
        if placement is None:
            SidecarSetPlacement.objects.create(
                sidecarset=sidecarset,
                sidecarset_name=sidecarset.name,
                cluster_id=cluster_id,
                wave=wave,
                serving_revision_id=current_id,
                serving_since=now,
            )
            enqueue.push(current_id, cluster_id)  # type: ignore[arg-type]
            continue
        serving_id = placement.serving_revision_id
        fields: dict[str, Any] = {"sidecarset": sidecarset, "wave": wave, "should_exist": True}
        follows = serve_from is not None and serving_id == serve_from
        if follows or not placement.should_exist or serving_id is None:
            if serving_id != current_id:
                fields.update(serving_revision_id=current_id, serving_since=now)
            serving_id = current_id
        unchanged = (
            placement.should_exist
            and placement.serving_revision_id == serving_id
            and placement.state in (PlacementState.APPLIED, PlacementState.PENDING)
        )
        SidecarSetPlacement.objects.filter(pk=placement.pk).update(**fields)
        if not unchanged:
            _transition(placement.pk, from_states=PlacementState.values, to_state=PlacementState.PENDING)
            enqueue.push(serving_id, cluster_id)  # type: ignore[arg-type]
    for cluster_id, placement in existing.items():
        if cluster_id not in desired and (placement.should_exist or placement.state == PlacementState.FAILED):
            _mark_removing(placement)


@transaction.atomic
def serve_revision(sidecarset_id: int, cluster_id: int, revision_id: int) -> bool:
    """Make the cluster serve ``revision_id`` of the SidecarSet (a release's gate opened, or a
    rollback): its custom resource is pushed again and its webhook injects it within the
    admission cache's refresh. True when the serving revision moved; False when it already
    served it or the SidecarSet no longer has a placement there (nothing to serve)."""
    placement = (
        SidecarSetPlacement.objects.select_for_update()
        .filter(sidecarset_id=sidecarset_id, cluster_id=cluster_id, should_exist=True)
        .first()
    )
    if placement is None or placement.serving_revision_id == revision_id:
        return False
    SidecarSetPlacement.objects.filter(pk=placement.pk).update(
        serving_revision_id=revision_id, serving_since=timezone.now()
    )
    _transition(placement.pk, from_states=PlacementState.values, to_state=PlacementState.PENDING)
    enqueue.push(revision_id, cluster_id)
    return True


def _mark_removing(placement: SidecarSetPlacement) -> None:
    SidecarSetPlacement.objects.filter(pk=placement.pk).update(should_exist=False)
    if _transition(placement.pk, from_states=PlacementState.values, to_state=PlacementState.REMOVING):
        enqueue.removal(placement.pk)


@transaction.atomic
def sidecarset_removed(name: str) -> None:
    """The SidecarSet ``name`` was deleted: remove its resource from every cluster."""
    for placement in SidecarSetPlacement.objects.select_for_update().filter(sidecarset_name=name):
        if placement.state != PlacementState.REMOVED or placement.should_exist:
            _mark_removing(placement)


def resync_selector_targets(*, actor: Any = None, request_id: str = "") -> None:
    """Re-resolve every SidecarSet that targets clusters by label (after a label change)."""
    ids = set(SidecarSetTarget.objects.filter(cluster__isnull=True).values_list("sidecarset_id", flat=True))
    for sidecarset_id in sorted(ids):
        sync_placements(sidecarset_id)


@transaction.atomic
def retry_placement(placement_id: int, *, actor: Any = None) -> SidecarSetPlacement:
    """Queue the placement's push (or removal) again now; refused unless it failed or is pending.
    A write to the cluster: refused (``NotTeamMember``) unless ``actor`` may act in the
    cluster's team, as for the cluster's other writes (``clusters.services``)."""
    placement = (
        SidecarSetPlacement.objects.select_for_update(of=("self",))
        .select_related("cluster__owner_team")
        .get(pk=placement_id)
    )
    cluster = placement.cluster
    require_team_access(actor, [cluster.owner_team], f"cluster {cluster.name!r}")
    if placement.state not in _ACTIVE_STATES and placement.state != PlacementState.REMOVING:
        raise InvalidTransition("placement", placement.pk, placement.state, PlacementState.PENDING)
    _requeue(placement)
    return placement


def _requeue(placement: SidecarSetPlacement) -> None:
    if placement.should_exist and placement.serving_revision_id is not None:
        enqueue.push(placement.serving_revision_id, placement.cluster_id)
    elif not placement.should_exist:
        enqueue.removal(placement.pk)


# --- push ----------------------------------------------------------------------------------------


def ensure_crd(kube: KubeClient, cluster: Cluster) -> None:
    """Install (server-side apply) the hub's CRD unless this cluster already has this version;
    wait until it is Established. Idempotent."""
    wanted = crd_manifest_hash()
    if cluster.crd_manifest_hash == wanted:
        return
    kube.apply_crd(crd_manifest())
    deadline = time.monotonic() + _CRD_ESTABLISH_TIMEOUT_SECONDS
    while True:
        conditions = (kube.read_crd(CRD_NAME).get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
            break
        if time.monotonic() > deadline:
            raise ClusterApiError(
                f"cluster {cluster.name}: CRD {CRD_NAME} not Established after "
                f"{_CRD_ESTABLISH_TIMEOUT_SECONDS:.0f}s",
                status=0,
                cluster_name=cluster.name,
            )
        time.sleep(0.1)
    Cluster.objects.filter(pk=cluster.pk).update(crd_manifest_hash=wanted)
    cluster.crd_manifest_hash = wanted


def _fail(placement: SidecarSetPlacement, exc: KubeError, guard: Q) -> PushOutcome:
    if isinstance(exc, ClusterApiError) and exc.not_found:
        # The resource type is missing (CRD deleted behind our back): reinstall next time.
        Cluster.objects.filter(pk=placement.cluster_id).update(crd_manifest_hash="")
    _transition(
        placement.pk,
        from_states=(*_ACTIVE_STATES, PlacementState.REMOVING),
        to_state=PlacementState.FAILED,
        extra=guard,
        last_error=str(exc)[:2000],
        failed_attempts=F("failed_attempts") + 1,
    )
    log.warning("placement %s: %s", placement.pk, exc)
    return PushOutcome.FAILED


def apply_revision(revision_id: int, cluster_id: int) -> PushOutcome:
    """Push step for one (revision, cluster): ensure the CRD, server-side apply the custom
    resource, record ``applied`` (or ``failed`` with the error). Idempotent; a task for a
    revision that is no longer wanted there does nothing (``SKIPPED``)."""
    placement = (
        SidecarSetPlacement.objects.select_related("cluster", "serving_revision")
        .filter(cluster_id=cluster_id, serving_revision_id=revision_id, should_exist=True)
        .first()
    )
    if placement is None or placement.state not in _ACTIVE_STATES:
        return PushOutcome.SKIPPED
    revision: SidecarSetRevision = placement.serving_revision  # type: ignore[assignment]
    guard = Q(serving_revision_id=revision_id, should_exist=True)
    try:
        kube = cached_kube_client(placement.cluster)
        ensure_crd(kube, placement.cluster)
        kube.apply_cluster_object(
            GROUP,
            VERSION,
            PLURAL,
            custom_resource(
                revision.document,
                revision_name=revision.name,
                revision_number=revision.number,
                revision_hash=revision.revision_hash,
                hash_without_images=revision.hash_without_images,
            ),
        )
    except KubeError as exc:
        return _fail(placement, exc, guard)
    moved = _transition(
        placement.pk,
        from_states=_ACTIVE_STATES,
        to_state=PlacementState.APPLIED,
        extra=guard,
        applied_revision_id=revision.pk,
        applied_revision_number=revision.number,
        applied_revision_hash=revision.revision_hash,
        applied_at=timezone.now(),
        last_error="",
        failed_attempts=0,
    )
    return PushOutcome.APPLIED if moved else PushOutcome.SKIPPED


def remove_placement(placement_id: int) -> PushOutcome:
    """Delete the SidecarSet's custom resource from the placement's cluster (only there).
    Idempotent: an already missing resource (or CRD) counts as removed."""
    placement = SidecarSetPlacement.objects.select_related("cluster").filter(pk=placement_id).first()
    if placement is None or placement.should_exist:
        return PushOutcome.SKIPPED
    if placement.state not in (PlacementState.REMOVING, PlacementState.FAILED):
        return PushOutcome.SKIPPED
    guard = Q(should_exist=False)
    try:
        kube = cached_kube_client(placement.cluster)
        kube.delete_cluster_object(GROUP, VERSION, PLURAL, placement.sidecarset_name)
    except KubeError as exc:
        return _fail(placement, exc, guard)
    moved = _transition(
        placement.pk,
        from_states=(PlacementState.REMOVING, PlacementState.FAILED),
        to_state=PlacementState.REMOVED,
        extra=guard,
        last_error="",
        failed_attempts=0,
        matched_pods=None,
        updated_pods=None,
        ready_pods=None,
        updated_ready_pods=None,
    )
    return PushOutcome.REMOVED if moved else PushOutcome.SKIPPED


def delete_hub_resources(kube: KubeClient) -> list[str]:
    """Delete every SidecarSet resource the hub placed in ``kube``'s cluster (labelled
    ``app.kubernetes.io/managed-by: sidecarhub``, whether or not a placement row still names it);
    return their names. The CRD stays, as Helm leaves CRDs: deleting it would delete every
    resource of the type, the hub's or not. A missing CRD means nothing to delete."""
    try:
        resources = kube.list_cluster_objects(GROUP, VERSION, PLURAL, label_selector=MANAGED_BY_SELECTOR)
    except ClusterApiError as exc:
        if exc.not_found:
            return []
        raise
    names = sorted(str((resource.get("metadata") or {}).get("name") or "") for resource in resources)
    return [name for name in names if name and kube.delete_cluster_object(GROUP, VERSION, PLURAL, name)]


# --- status write-back -------------------------------------------------------------------------


# Per placement: each periodic write-back re-evaluates only the pods that changed since the last
# one in this process (at 10,000 pods, about half the time of a cold evaluation).
_status_caches = PlanningCaches(capacity=64)


def _status_of(
    placement_id: int,
    sidecarset: CoreSidecarSet,
    pods: list[dict[str, Any]],
    namespace_labels: Mapping[str, Mapping[str, str]],
) -> dict[str, int]:
    """The update.md §3 counters, from the core's planner (pure predicates over plain pods)."""
    with _status_caches.borrow(placement_id) as cache:
        return compute_status(sidecarset, pods, namespace_labels=namespace_labels, cache=cache).as_status()


# Pod condition writes per SidecarSet and status round (the rest waits for the next round).
MAX_CONDITION_WRITES = 500


def _write_upgradable_conditions(
    kube: KubeClient,
    placement_id: int,
    sidecarset: CoreSidecarSet,
    pods: list[dict[str, Any]],
    namespace_labels: Mapping[str, Mapping[str, str]],
) -> int:
    """Kruise's ``SidecarSetUpgradable`` pod condition (``sidecarhub.sidecarset.conditions``), as
    its controller writes it: ``False`` on each pod that needs recreate for this SidecarSet,
    ``True`` again once such a pod runs the revision (a pod never marked is left alone).
    Returns the pods written; a pod gone meanwhile is skipped."""
    with _status_caches.borrow(placement_id) as cache:
        plan = plan_round(
            sidecarset, pods, namespace_labels=namespace_labels, cache=cache, apply_canary_selector=False
        )
    now = timezone.now()
    wanted: list[tuple[Mapping[str, Any], dict[str, Any]]] = []
    for pod_class, upgradable in ((PodClass.NEEDS_RECREATE, False), (PodClass.UPDATED, True)):
        for decision in plan.of_class(pod_class):
            if upgradable and sidecarset.name not in recorded(decision.pod):
                continue
            condition = upgradable_condition(decision.pod, sidecarset.name, upgradable, now=now)
            if condition is not None:
                wanted.append((decision.pod, condition))
    written = 0
    api = client.CoreV1Api(kube.api_client)
    for pod, condition in wanted[:MAX_CONDITION_WRITES]:
        metadata = pod.get("metadata") or {}
        namespace, name = str(metadata.get("namespace") or ""), str(metadata.get("name") or "")
        try:
            kube.call(
                api.patch_namespaced_pod_status,
                name,
                namespace,
                {"status": {"conditions": [condition]}},
                what=f"mark pod {namespace}/{name} {CONDITION_TYPE}={condition['status']}",
                decode=decode_pod,
            )
        except ClusterApiError as exc:
            if not exc.not_found:
                raise
            continue
        written += 1
    return written


def _requeue_stuck(cluster_id: int) -> int:
    """Re-queue failed placements whose Celery retries may be exhausted, and pending ones that
    waited too long (a lost message). Returns how many were queued."""
    stale = timezone.now() - timedelta(
        seconds=float(getattr(settings, "SIDECARHUB_PUSH_REQUEUE_SECONDS", 300))
    )
    count = 0
    with transaction.atomic():
        for placement in SidecarSetPlacement.objects.filter(
            cluster_id=cluster_id,
            state__in=[PlacementState.FAILED, PlacementState.PENDING, PlacementState.REMOVING],
            state_changed_at__lt=stale,
        ):
            _requeue(placement)
            count += 1
    return count


def write_back_status(cluster_id: int, listing: PodListing | None = None) -> StatusWriteBack:
    """One bounded status round for one cluster: list pods and namespaces once (or read them
    from ``listing``, shared with the drift check), compute each applied SidecarSet's counters,
    write them to the custom resource's status subresource (server-side apply) and to the
    placement. Safe to run concurrently and repeatedly."""
    result = StatusWriteBack(cluster_id)
    cluster = Cluster.objects.filter(pk=cluster_id).first()
    if cluster is None:
        return result
    listing = listing or PodListing(cluster)
    result.requeued = _requeue_stuck(cluster_id)
    placements = list(
        SidecarSetPlacement.objects.select_related("applied_revision", "serving_revision").filter(
            cluster_id=cluster_id, should_exist=True, state=PlacementState.APPLIED
        )
    )
    if not placements:
        return result
    try:
        kube = listing.kube
        pods, namespace_labels = listing.pods, listing.namespace_labels
        live = {
            str((obj.get("metadata") or {}).get("name")): obj
            for obj in kube.list_cluster_objects(GROUP, VERSION, PLURAL)
        }
        for placement in placements:
            resource = live.get(placement.sidecarset_name)
            if resource is None:
                # Deleted behind the hub's back: push it again.
                SidecarSetPlacement.objects.filter(pk=placement.pk, state=PlacementState.APPLIED).update(
                    state=PlacementState.PENDING, state_changed_at=timezone.now()
                )
                with transaction.atomic():
                    _requeue(placement)
                result.requeued += 1
                continue
            document = (
                placement.applied_revision.document
                if placement.applied_revision is not None
                else {"metadata": {"name": placement.sidecarset_name}, "spec": resource.get("spec") or {}}
            )
            core = CoreSidecarSet.from_document(document)
            counters = _status_of(placement.pk, core, pods, namespace_labels)
            metadata = resource.get("metadata") or {}
            body = status_body(
                placement.sidecarset_name,
                counters,
                observed_generation=int(metadata.get("generation") or 0),
                latest_revision=str(
                    (metadata.get("annotations") or {}).get("sidecarhub.io/revision-name") or ""
                ),
                serving_revision=placement.serving_revision.name if placement.serving_revision else "",
            )
            hub = _hub_status(cluster_id, placement.sidecarset_name)
            if hub:
                body["status"]["hub"] = hub
            kube.apply_cluster_object(GROUP, VERSION, PLURAL, body, status=True)
            SidecarSetPlacement.objects.filter(pk=placement.pk).update(
                matched_pods=counters["matchedPods"],
                updated_pods=counters["updatedPods"],
                ready_pods=counters["readyPods"],
                updated_ready_pods=counters["updatedReadyPods"],
                status_observed_at=timezone.now(),
            )
            result.counters[placement.sidecarset_name] = counters
            result.statuses_written += 1
            result.conditions_written += _write_upgradable_conditions(
                kube, placement.pk, core, pods, namespace_labels
            )
    except KubeError as exc:
        result.error = str(exc)
        log.warning("status write-back: %s", exc)
    return result
