"""Use cases of rollouts: create on publish, prepare, approve / deny, pause, resume, abort,
roll back (STYLE P1, P3, P7). Read-only previews and progress counts are in ``previews.py``.

Every service has the shape ``verb(object_id, *, actor, request_id="", ...)``: ``actor`` is the
acting user (``None`` = the system), ``request_id`` the API call, admin action or CLI run that
asked (``sidecarhub.middleware``; "" for the system). It writes its history rows
(``StepTransition``, ``Approval``, both carrying ``request_id``) in the same transaction as the
change, and queues work (the cluster's reconciler) only after commit. Expected failures are
exceptions whose message is written for people:

- ``RolloutNotFound`` (404), ``NotPermitted`` (403: permission or four-eyes rule),
- ``InvalidTransition`` (409: the rollout or step is not in a state the verb accepts;
  ``current_state`` says which),
- ``RolloutError`` (400/409: anything else, e.g. a rollback without a previous revision).

Rollout settings (``RolloutSettings``) come, in this order, from an explicit argument, from the
revision's rollout policy (``SidecarSetRevision.rollout_policy``, frozen at publish: ``steps``
such as ``["canary", "50%", "100%"]``, ``max_unavailable``, ``failure_threshold``,
``progress_deadline_seconds``, ``pod_timeout_seconds``, ``approval_ttl_seconds``; checked by the
pure core, ``sidecarhub.sidecarset.rollout_settings``, which also validates it when a definition
is saved or published), then from the revision (``updateStrategy.maxUnavailable``) and the
``SIDECARHUB_ROLLOUT_*`` settings. A cluster's approval lifetime
(``Cluster.rollout_approval_ttl_seconds``, part of its rollout policy), when set, replaces the
approval lifetime of every rollout created in it.

Releases are durable: the publish's post-commit signal starts one at once
(``on_revision_published``), and the periodic reconcile creates any the signal lost
(``create_missing_releases``); both go through ``create_rollouts_for_revision``, which never
creates a second update rollout for the same (revision, cluster).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from clusters.models import Cluster, SidecarSetPlacement
from clusters.push import serve_revision
from clusters.targeting import resolve_targets
from rollouts import enqueue, transitions
from rollouts.choices import (
    ACTIVE_ROLLOUT_STATES,
    FAILED_OUTCOMES,
    ApprovalDecision,
    RolloutKind,
    RolloutState,
    StepState,
)
from rollouts.lifecycle import (
    SERVE_STEP,
    expire_step,
    finish_aborted,
    get_step,
    open_gate,
    pause_now,
)
from rollouts.models import Approval, PodUpdate, Rollout, RolloutStep
from rollouts.permissions import approval_refusal, operate_refusal
from rollouts.transitions import InvalidTransition, NotPermitted, RolloutError, RolloutNotFound
from sidecarhub.changes import Actor, actor_name
from sidecarhub.models import SidecarSet, SidecarSetRevision
from sidecarhub.sidecarset import CANARY_STEP, ChangeKind, classify_change
from sidecarhub.sidecarset import SidecarSet as CoreSidecarSet
from sidecarhub.sidecarset.rollout_settings import (
    RolloutSettings,
    check_steps,
    default_steps,
    parse_step_target,
    settings_from_policy,
)

__all__ = [
    "InvalidTransition",
    "NotPermitted",
    "ReleaseMember",
    "RolloutError",
    "RolloutNotFound",
    "RolloutSettings",
    "abort_rollout",
    "approve_step",
    "create_missing_releases",
    "create_rollouts_for_revision",
    "deny_step",
    "get_rollout",
    "on_revision_published",
    "pause_rollout",
    "plan_release",
    "resume_rollout",
    "rollback_rollout",
    "serving_revisions",
    "wake_cluster",
]

log = logging.getLogger(__name__)

# SidecarSets whose missing releases one periodic repair creates at most (the rest: next tick).
MISSING_RELEASES_PER_PASS = 50


# --- helpers -----------------------------------------------------------------------------------


def _user(actor: Actor) -> Any:
    return actor if actor is not None and getattr(actor, "is_authenticated", False) else None


def wake_cluster(cluster_id: int | None) -> None:
    """Queue the cluster's reconciler after the current transaction commits (at once outside one);
    nothing for a rollout whose cluster was deleted."""
    if cluster_id is not None:
        enqueue.wake_cluster(cluster_id)


def get_rollout(rollout_id: int) -> Rollout:
    """The rollout with its cluster, or ``RolloutNotFound``."""
    rollout = (
        Rollout.objects.select_related("cluster__owner_team", "sidecarset__owner_team")
        .filter(pk=rollout_id)
        .first()
    )
    if rollout is None:
        raise RolloutNotFound("rollout", rollout_id)
    return rollout


def _require_operator(actor: Actor, rollout: Rollout) -> None:
    """``NotPermitted`` unless the system acts or ``rollouts.permissions.can_operate`` allows."""
    refusal = operate_refusal(actor, rollout) if actor is not None else None
    if refusal is not None:
        raise NotPermitted(refusal)


def _setting(name: str, default: int) -> int:
    return int(getattr(django_settings, name, default))


def resolve_settings(
    revision: SidecarSetRevision, explicit: RolloutSettings | None = None
) -> RolloutSettings:
    """The effective settings for a rollout to ``revision`` (see the module docstring).

    ``RolloutError`` when the revision's policy is invalid (only a revision published before it
    was validated can have such) or the explicit steps are.
    """
    core = revision.to_core()
    has_selector = core.update_strategy.selector is not None
    base = RolloutSettings(
        failure_threshold=_setting("SIDECARHUB_ROLLOUT_FAILURE_THRESHOLD", 0),
        progress_deadline_seconds=_setting("SIDECARHUB_ROLLOUT_PROGRESS_DEADLINE_SECONDS", 600),
        pod_timeout_seconds=_setting("SIDECARHUB_ROLLOUT_POD_TIMEOUT_SECONDS", 300),
        approval_ttl_seconds=_setting("SIDECARHUB_ROLLOUT_APPROVAL_TTL_SECONDS", 86400),
    )
    merged, errors = settings_from_policy(revision.rollout_policy, base, has_canary_selector=has_selector)
    if errors:
        raise RolloutError("; ".join(str(error) for error in errors))
    if explicit is not None:
        merged = dataclasses.replace(
            merged,
            **{
                f.name: getattr(explicit, f.name)
                for f in dataclasses.fields(explicit)
                if getattr(explicit, f.name) != getattr(RolloutSettings(), f.name)
            },
        )
    try:
        steps = check_steps(merged.steps or default_steps(has_selector), has_canary_selector=has_selector)
    except ValueError as exc:
        raise RolloutError(str(exc)) from None
    max_unavailable = (
        merged.max_unavailable if merged.max_unavailable is not None else core.update_strategy.max_unavailable
    )
    return dataclasses.replace(merged, steps=steps, max_unavailable=max_unavailable)


def _create_rollout(
    *,
    sidecarset: SidecarSet,
    cluster_id: int,
    wave: int,
    from_revision: SidecarSetRevision | None,
    to_revision: SidecarSetRevision,
    effective: RolloutSettings,
    actor: Actor,
    request_id: str,
    kind: str = RolloutKind.UPDATE,
    in_place: bool = True,
    rollback_of: Rollout | None = None,
    reason: str,
) -> Rollout:
    assert effective.steps is not None
    user = _user(actor)
    cluster_name, cluster_approval_ttl = Cluster.objects.values_list(
        "name", "rollout_approval_ttl_seconds"
    ).get(pk=cluster_id)
    rollout = Rollout.objects.create(
        sidecarset=sidecarset,
        sidecarset_name=sidecarset.name,
        cluster_id=cluster_id,
        cluster_name=cluster_name,
        kind=kind,
        rollback_of=rollback_of,
        from_revision=from_revision,
        to_revision=to_revision,
        from_revision_number=from_revision.number if from_revision is not None else None,
        to_revision_number=to_revision.number,
        to_revision_hash=to_revision.revision_hash,
        wave=wave,
        in_place=in_place,
        author=user,
        author_name=actor_name(actor),
        reason=reason[:300],
        steps=[str(step) if isinstance(step, str) else step for step in effective.steps],
        max_unavailable=str(effective.max_unavailable),
        failure_threshold=effective.failure_threshold,
        progress_deadline_seconds=effective.progress_deadline_seconds,
        pod_timeout_seconds=effective.pod_timeout_seconds,
        approval_ttl_seconds=(
            cluster_approval_ttl if cluster_approval_ttl is not None else effective.approval_ttl_seconds
        ),
    )
    RolloutStep.objects.bulk_create(
        RolloutStep(rollout=rollout, ordinal=position + 1, target=str(step), canary=step == CANARY_STEP)
        for position, step in enumerate(effective.steps)
    )
    rollout.transitions.create(
        from_state="",
        to_state=RolloutState.PENDING,
        actor=user,
        actor_name=actor_name(actor),
        reason=reason,
        request_id=request_id[:64],
    )
    wake_cluster(cluster_id)
    return rollout


def _supersede(sidecarset_id: int, revision: SidecarSetRevision, *, actor: Actor, request_id: str) -> None:
    """Stop active rollouts of the SidecarSet that go to another revision (a newer one wins).

    Only those created before ``revision`` was published: what a publish supersedes is what
    existed when it was made. A release created late (the periodic repair) must not abort what
    people started since, e.g. the rollback of another cluster of this very release.
    """
    reason = f"superseded by revision {revision.number}"
    for rollout in Rollout.objects.filter(
        sidecarset_id=sidecarset_id, state__in=ACTIVE_ROLLOUT_STATES, created_at__lt=revision.created_at
    ).exclude(to_revision=revision):
        _abort(rollout, actor=actor, request_id=request_id, reason=reason)


# --- publish → rollouts ------------------------------------------------------------------------


def on_revision_published(
    sender: Any,
    *,
    sidecarset_id: int,
    revision_id: int,
    previous_revision_id: int | None = None,
    change_kind: str = "",
    actor_id: int | None = None,
    request_id: str = "",
    **kwargs: Any,
) -> None:
    """Receiver of ``sidecarhub.signals.revision_published`` (connected in ``RolloutsConfig``).

    An images-only revision creates one rollout per target cluster; other kinds create none
    (a change of anything but images stops active rollouts of older revisions and leaves pods
    as they are: they are "needs recreate", see ``preview_revision``); ``none`` wakes the
    target clusters' reconcilers (e.g. ``updateStrategy.paused`` was switched off).
    """
    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id is not None else None
    create_rollouts_for_revision(
        revision_id,
        actor=actor,
        request_id=request_id,
        previous_revision_id=previous_revision_id,
        change_kind=change_kind or None,
    )


@dataclasses.dataclass(frozen=True)
class ReleaseMember:
    """What publishing a revision does in one target cluster (``plan_release``): a rollout from
    what the cluster serves (``source``), in place or only a gate, or none, and why."""

    cluster_id: int
    wave: int
    source: SidecarSetRevision | None
    creates_rollout: bool
    in_place: bool
    why: str


def serving_revisions(sidecarset_id: int, cluster_ids: Iterable[int]) -> dict[int, SidecarSetRevision | None]:
    """Cluster id -> the revision its placement of the SidecarSet serves (one query)."""
    return {
        placement.cluster_id: placement.serving_revision
        for placement in SidecarSetPlacement.objects.select_related("serving_revision").filter(
            sidecarset_id=sidecarset_id, cluster_id__in=list(cluster_ids), should_exist=True
        )
    }


def plan_release(
    core: CoreSidecarSet,
    number: int,
    targets: Mapping[int, int],
    serving: Mapping[int, SidecarSetRevision | None],
    *,
    revision_id: int | None = None,
) -> list[ReleaseMember]:
    """Per target cluster (``cluster id -> wave``, in wave order), what a release of revision
    ``number`` (``core``; ``revision_id`` None: not published yet, a preview) does, given what
    each cluster serves (``serving``: its placement's revision). The one rule that the publish
    and its preview share (see ``create_rollouts_for_revision``)."""
    members = []
    for cluster_id, wave in sorted(targets.items(), key=lambda item: (item[1], item[0])):
        source = serving.get(cluster_id)
        if source is None:
            members.append(
                ReleaseMember(cluster_id, wave, None, False, False, "new target: serves it at once")
            )
            continue
        if source.pk == revision_id:
            members.append(ReleaseMember(cluster_id, wave, source, False, False, "serves it already"))
            continue
        kind = classify_change(source.to_core(), core)
        if kind == ChangeKind.NONE:
            why = f"serves revision {source.number}, which differs in nothing pods see: serves it at once"
            members.append(ReleaseMember(cluster_id, wave, source, False, False, why))
            continue
        in_place = kind == ChangeKind.IMAGES_ONLY and core.update_strategy.type != "NotUpdate"
        if in_place:
            why = f"revision {number} changes only sidecar images"
        else:
            why = (
                f"revision {number}: updateStrategy.type is NotUpdate"
                if kind == ChangeKind.IMAGES_ONLY
                else f"revision {number} changes more than sidecar images"
            ) + "; pods are not updated in place (they need recreate)"
        members.append(ReleaseMember(cluster_id, wave, source, True, in_place, why))
    return members


def create_rollouts_for_revision(
    revision_id: int,
    *,
    actor: Actor,
    request_id: str = "",
    previous_revision_id: int | None = None,
    change_kind: str | None = None,
    settings: RolloutSettings | None = None,
) -> list[Rollout]:
    """Start the release of a newly published revision (decision 17): one rollout per target
    cluster that serves an earlier revision, in waves. Returns the created rows.

    Guarantees:
    - idempotent: a cluster that already has a rollout (any kind, any state) to this revision
      gets none, so the publish's receiver and the periodic repair (``create_missing_releases``)
      may both run, in any order, concurrently too (one at a time per SidecarSet: its row is
      locked; and a unique constraint on (revision, cluster) for update rollouts backs it);
    - only for the SidecarSet's current revision: a revision superseded by a newer publish
      before its release was created gets none (the newer release covers its clusters);
    - a change nothing pods see (``none``) creates no rollout (every cluster serves it at once,
      ``clusters.push.sync_placements``) and wakes the target clusters' reconcilers;
    - a cluster with no placement yet, or one that already serves this revision, gets no rollout:
      a new target serves the current revision at once (nothing earlier to protect there);
    - each rollout goes from what ITS cluster serves (which may lag behind the previous revision)
      and is in place only when that change is images only and the strategy is not
      ``NotUpdate``; otherwise it has one gate step and patches nothing (``in_place`` false: its
      pods need recreate);
    - active rollouts of the SidecarSet to other revisions created before this revision are
      aborted ("superseded"), also when this runs late (see ``_supersede``);
    - rollouts start in wave order (the reconciler starts a wave when every rollout of the
      previous waves of the same revision has completed or is held).
    ``RolloutError`` (nothing written) when the settings are invalid.

    ``change_kind`` ``None``: classified here from the previous revision (the receiver passes
    the one publish computed; the repair passes none, and every cluster is then judged by what
    it serves); it decides only whether this is a ``none`` change.
    """
    revision = SidecarSetRevision.objects.filter(pk=revision_id).first()
    if revision is None:
        return []
    previous = (
        SidecarSetRevision.objects.filter(pk=previous_revision_id).first()
        if previous_revision_id is not None
        else None
    )
    core = revision.to_core()
    if change_kind is None:  # not given: classified here, as publish does
        change_kind = classify_change(previous.to_core(), core) if previous is not None else ChangeKind.OTHER
    with transaction.atomic():
        # One release creation at a time per SidecarSet, and none racing a publish of it.
        sidecarset = SidecarSet.objects.select_for_update().filter(pk=revision.sidecarset_id).first()
        if sidecarset is None or sidecarset.current_revision_id != revision.pk:
            return []
        targets = resolve_targets(sidecarset.pk)
        if change_kind == ChangeKind.NONE:
            for cluster_id in targets:
                wake_cluster(cluster_id)
            return []
        _supersede(sidecarset.pk, revision, actor=actor, request_id=request_id)
        serving = serving_revisions(sidecarset.pk, targets)
        released = set(Rollout.objects.filter(to_revision=revision).values_list("cluster_id", flat=True))
        effective: RolloutSettings | None = None
        rollouts = []
        for member in plan_release(core, revision.number, targets, serving, revision_id=revision.pk):
            if not member.creates_rollout or member.cluster_id in released:
                continue  # a new target, it serves this revision already, or its release exists
            if member.in_place:
                effective = effective or resolve_settings(revision, settings)
                rollout_settings = effective
            else:
                rollout_settings = dataclasses.replace(
                    resolve_settings(revision, settings), steps=(SERVE_STEP,)
                )
            rollouts.append(
                _create_rollout(
                    sidecarset=sidecarset,
                    cluster_id=member.cluster_id,
                    wave=member.wave,
                    from_revision=member.source,
                    to_revision=revision,
                    effective=rollout_settings,
                    actor=actor,
                    request_id=request_id,
                    reason=member.why,
                    in_place=member.in_place,
                )
            )
        return rollouts


def create_missing_releases(*, limit: int = MISSING_RELEASES_PER_PASS) -> list[Rollout]:
    """Create the releases the publish signal lost (the periodic reconcile runs this first).

    The signal's receiver is only the fast path: it runs after commit and its failures are
    logged, not retried (an invalid setting of a revision published before validation, a
    database error, a web process that died between commit and receiver). This finds, for each
    SidecarSet, the target clusters whose placement serves an earlier revision (set, different,
    not the same revision hash: a change nothing pods see needs no release) and that have no
    rollout at all to the current revision, and creates their release through
    ``create_rollouts_for_revision`` (idempotent, so racing the receiver is harmless). At most
    ``limit`` SidecarSets per call; each in its own transaction, so one failing (logged) does
    not stop the others. Returns the created rollouts.
    """
    current = OuterRef("sidecarset__current_revision_id")
    candidates = (
        SidecarSetPlacement.objects.filter(
            should_exist=True,
            sidecarset__current_revision__isnull=False,
            serving_revision__isnull=False,
        )
        .exclude(serving_revision_id=F("sidecarset__current_revision_id"))
        .exclude(serving_revision__revision_hash=F("sidecarset__current_revision__revision_hash"))
        .exclude(Exists(Rollout.objects.filter(to_revision_id=current, cluster_id=OuterRef("cluster_id"))))
        .values_list("sidecarset_id", "sidecarset__current_revision_id", "cluster_id")
        .order_by("sidecarset_id")
    )
    missing: dict[tuple[int, int], set[int]] = {}
    for sidecarset_id, revision_id, cluster_id in candidates:
        missing.setdefault((sidecarset_id, revision_id), set()).add(cluster_id)
    created: list[Rollout] = []
    for (sidecarset_id, revision_id), cluster_ids in list(missing.items())[:limit]:
        if not cluster_ids & set(resolve_targets(sidecarset_id)):
            continue  # placements not yet in step with the targets: nothing to release there
        try:
            rollouts = create_rollouts_for_revision(revision_id, actor=None)
        except RolloutError as exc:
            log.warning("release of revision %s cannot be created: %s", revision_id, exc)
            continue
        except DatabaseError:  # e.g. lost a race to the receiver on a database without row locks
            log.exception("release of revision %s: creation failed; next pass retries", revision_id)
            continue
        if rollouts:
            log.warning(
                "release of revision %s was missing in clusters %s; created by the periodic repair",
                revision_id,
                sorted(rollout.live_cluster_id for rollout in rollouts),
            )
        created.extend(rollouts)
    return created


# --- steps: prepare, approve, deny, expire -----------------------------------------------------


def _check_decision(step: RolloutStep, *, actor: Actor, request_id: str) -> None:
    refusal = approval_refusal(actor, step)
    if refusal is not None:
        raise NotPermitted(refusal)
    if step.rollout.state != RolloutState.RUNNING:
        raise InvalidTransition("rollout", step.rollout_id, step.rollout.state, "deciding on a step")
    if step.state == StepState.AWAITING_APPROVAL and step.expires_at and step.expires_at <= timezone.now():
        with contextlib.suppress(InvalidTransition):
            expire_step(step.pk, actor=None, request_id=request_id)
        raise InvalidTransition("step", step.pk, StepState.EXPIRED, StepState.APPROVED)


def approve_step(step_id: int, *, actor: Actor, request_id: str = "", comment: str = "") -> Approval:
    """Approve a prepared step: the engine then patches exactly its pod list.

    Guarantees: ``NotPermitted`` unless ``rollouts.permissions.can_approve``; an expired step is
    marked expired (rollout paused) and refused with ``InvalidTransition``; of two concurrent
    approvals exactly one wins, the other gets ``InvalidTransition``. Writes the ``Approval``
    and the step's ``StepTransition``; wakes the cluster's reconciler after commit.
    """
    step = get_step(step_id)
    _check_decision(step, actor=actor, request_id=request_id)
    with transaction.atomic():
        approved = transitions.approve_step_row(
            step.pk, actor=actor, reason=comment or f"approved by {actor_name(actor)}", request_id=request_id
        )
        approval = Approval.objects.create(
            step=approved,
            preparation=approved.preparation,
            decision=ApprovalDecision.APPROVE,
            actor=_user(actor),
            actor_name=actor_name(actor),
            comment=comment,
            request_id=request_id[:64],
        )
        open_gate(approved, step.rollout)
        wake_cluster(step.rollout.cluster_id)
    return approval


def deny_step(step_id: int, *, actor: Actor, request_id: str = "", comment: str = "") -> Approval:
    """Deny a prepared step; the rollout pauses (resume prepares the step again).

    Same permission, expiry and concurrency rules as ``approve_step``.
    """
    step = get_step(step_id)
    _check_decision(step, actor=actor, request_id=request_id)
    reason = f"step {step.ordinal} denied by {actor_name(actor)}" + (f": {comment}" if comment else "")
    with transaction.atomic():
        denied = transitions.deny_step_row(step.pk, actor=actor, reason=reason, request_id=request_id)
        approval = Approval.objects.create(
            step=denied,
            preparation=denied.preparation,
            decision=ApprovalDecision.DENY,
            actor=_user(actor),
            actor_name=actor_name(actor),
            comment=comment,
            request_id=request_id[:64],
        )
        pause_now(step.rollout, actor=actor, request_id=request_id, reason=reason)
    return approval


# --- pause, resume, abort, rollback ------------------------------------------------------------


def _running_step(rollout_id: int) -> RolloutStep | None:
    return (
        RolloutStep.objects.filter(rollout_id=rollout_id, state__in=[StepState.APPROVED, StepState.RUNNING])
        .order_by("ordinal")
        .first()
    )


def pause_rollout(rollout_id: int, *, actor: Actor, request_id: str = "", reason: str = "") -> Rollout:
    """Pause a rollout. A pending one pauses at once; a running one gets a pause intent that the
    engine honours between pods (the pod being patched finishes first). Idempotent for an
    already requested pause; ``InvalidTransition`` for a paused or finished rollout."""
    rollout = get_rollout(rollout_id)
    _require_operator(actor, rollout)
    text = f"paused by {actor_name(actor)}" + (f": {reason}" if reason else "")
    if rollout.state == RolloutState.PENDING:
        return transitions.pause_rollout_row(rollout.pk, actor=actor, reason=text, request_id=request_id)
    moved = Rollout.objects.filter(pk=rollout.pk, state=RolloutState.RUNNING).update(
        pause_requested=True, intent_by=actor_name(actor), intent_reason=reason[:300]
    )
    if not moved:
        raise InvalidTransition("rollout", rollout.pk, get_rollout(rollout.pk).state, RolloutState.PAUSED)
    wake_cluster(rollout.cluster_id)
    return get_rollout(rollout.pk)


def resume_rollout(rollout_id: int, *, actor: Actor, request_id: str = "", reason: str = "") -> Rollout:
    """Resume a paused rollout: its paused step runs again (failures so far are acknowledged and
    no longer count against the threshold); a denied or expired step is prepared again."""
    rollout = get_rollout(rollout_id)
    _require_operator(actor, rollout)
    text = f"resumed by {actor_name(actor)}" + (f": {reason}" if reason else "")
    with transaction.atomic():
        resumed = transitions.resume_rollout_row(
            rollout.pk,
            actor=actor,
            reason=text,
            request_id=request_id,
            before_start=rollout.started_at is None,
        )
        for step in RolloutStep.objects.filter(rollout=rollout, state=StepState.PAUSED):
            failures = PodUpdate.objects.filter(step=step, outcome__in=FAILED_OUTCOMES).count()
            transitions.resume_step_row(
                step.pk, actor=actor, reason=text, request_id=request_id, failures_acknowledged=failures
            )
        for step in RolloutStep.objects.filter(
            rollout=rollout, state__in=[StepState.DENIED, StepState.EXPIRED]
        ):
            transitions.reprepare_step_row(step.pk, actor=actor, reason=text, request_id=request_id)
        wake_cluster(rollout.cluster_id)
    return resumed


def _abort(rollout: Rollout, *, actor: Actor, request_id: str, reason: str) -> None:
    """Abort now when nothing runs; otherwise request it (the engine stops between pods)."""
    if rollout.state == RolloutState.RUNNING and _running_step(rollout.pk) is not None:
        Rollout.objects.filter(pk=rollout.pk, state=RolloutState.RUNNING).update(
            abort_requested=True, intent_by=actor_name(actor), intent_reason=reason[:300]
        )
    else:
        finish_aborted(rollout.pk, actor=actor, request_id=request_id, reason=reason)
    wake_cluster(rollout.cluster_id)


def abort_rollout(rollout_id: int, *, actor: Actor, request_id: str = "", reason: str = "") -> Rollout:
    """Abort a rollout for good. Pending, paused or between steps: at once; with a step running:
    an abort intent the engine honours between pods. Pods already updated keep their new image
    (use ``rollback_rollout`` to undo). ``InvalidTransition`` for a finished rollout."""
    rollout = get_rollout(rollout_id)
    _require_operator(actor, rollout)
    if rollout.state not in ACTIVE_ROLLOUT_STATES:
        raise InvalidTransition("rollout", rollout.pk, rollout.state, RolloutState.ABORTED)
    text = f"aborted by {actor_name(actor)}" + (f": {reason}" if reason else "")
    with transaction.atomic():
        _abort(rollout, actor=actor, request_id=request_id, reason=text)
    return get_rollout(rollout.pk)


def _deleted_subject(rollout: Rollout) -> str:
    if rollout.cluster_id is None:
        return f"cluster {rollout.cluster_name}"
    return f"SidecarSet {rollout.sidecarset_name}"


def rollback_rollout(rollout_id: int, *, actor: Actor, request_id: str = "", reason: str = "") -> Rollout:
    """Roll a rollout back (decision 16): at once, the cluster serves the rollout's source
    revision again (its custom resource is pushed, its webhook injects it to new pods within the
    admission cache's refresh); then a new rollout in the same cluster returns the pods that were
    updated, through the same steps and approvals (the others already run the source revision).

    A running or paused rollout is aborted first (between pods). ``RolloutError`` when it has
    no source revision (a first publish) or the source was pruned. The SidecarSet's definition
    (its current revision) is not changed: the release shows the cluster rolled back.
    """
    rollout = get_rollout(rollout_id)
    _require_operator(actor, rollout)
    if rollout.cluster_id is None or rollout.sidecarset_id is None:
        raise RolloutError(
            f"rollout {rollout.pk}: {_deleted_subject(rollout)} was deleted; nothing to roll back"
        )
    if rollout.from_revision_id is None or rollout.to_revision_id is None:
        raise RolloutError(f"rollout {rollout.pk} has no earlier revision to roll back to")
    if rollout.state == RolloutState.PENDING:
        raise InvalidTransition(
            "rollout", rollout.pk, rollout.state, "rolled back (it never started: abort it)"
        )
    text = f"rollback of rollout {rollout.pk} by {actor_name(actor)}" + (f": {reason}" if reason else "")
    with transaction.atomic():
        if rollout.state in (RolloutState.RUNNING, RolloutState.PAUSED):
            # stopped between pods; the rollback rollout starts once it has stopped
            _abort(rollout, actor=actor, request_id=request_id, reason=text)
        source = SidecarSetRevision.objects.filter(pk=rollout.from_revision_id).first()
        if source is None:
            raise RolloutError(
                f"revision {rollout.from_revision_number} was pruned; it cannot be served again"
            )
        serve_revision(rollout.sidecarset_id, rollout.cluster_id, source.pk)
        effective = RolloutSettings(
            steps=tuple(parse_step_target(step) for step in rollout.steps),
            max_unavailable=parse_step_target(rollout.max_unavailable),
            failure_threshold=rollout.failure_threshold,
            progress_deadline_seconds=rollout.progress_deadline_seconds,
            pod_timeout_seconds=rollout.pod_timeout_seconds,
            approval_ttl_seconds=rollout.approval_ttl_seconds,
        )
        return _create_rollout(
            sidecarset=rollout.live_sidecarset,
            cluster_id=rollout.cluster_id,
            wave=rollout.wave,
            from_revision=rollout.to_revision,
            to_revision=source,
            effective=effective,
            actor=actor,
            request_id=request_id,
            kind=RolloutKind.ROLLBACK,
            in_place=rollout.in_place,
            rollback_of=rollout,
            reason=text,
        )
