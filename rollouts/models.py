"""Models of the rollouts app: Rollout, its steps, approvals, per-pod updates and state history.

A ``Rollout`` moves the pods of one SidecarSet in one cluster from one revision to another, in
steps (decision 13) that people approve. Rows change state only through
``rollouts.transitions`` (guarded, conditional, with a ``StepTransition`` history row) and are
written by ``rollouts.services`` and the engine; admin, API and CLI only read them or call
services.

Revisions are referenced with ``SET_NULL`` plus copies of their number and hash: a finished
rollout must not keep ``revisionHistoryLimit`` from pruning (``PROTECT`` would make every
publish after the limit fail), and the pruning in ``sidecarhub.services`` never deletes a
revision that a non-terminal rollout references, so an active rollout always has both.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models

from rollouts.choices import (
    ApprovalDecision,
    PodUpdateOutcome,
    PodUpdateState,
    RolloutKind,
    RolloutOutcome,
    RolloutState,
    StepState,
)
from rollouts.querysets import PodUpdateQuerySet, RolloutQuerySet, StepQuerySet

if TYPE_CHECKING:
    from clusters.models import Cluster
    from sidecarhub.models import SidecarSet

__all__ = [
    "MAX_EXPLANATION_NOTES",
    "Approval",
    "PodUpdate",
    "Rollout",
    "RolloutStep",
    "StepTransition",
    "with_note",
]

# Notes kept in an explanation (one per line); older ones are dropped and counted, so a rollout
# that waits or pauses for weeks does not grow its row (and every page showing it) without bound.
MAX_EXPLANATION_NOTES = 50
_DROPPED_NOTES = re.compile(r"^\((\d+) earlier notes? dropped\)$")


def with_note(explanation: str, note: str, *, keep: int = MAX_EXPLANATION_NOTES) -> str:
    """``explanation`` with ``note`` appended as its newest line, keeping the newest ``keep``
    notes and a first line counting the dropped ones: ``(N earlier notes dropped)``. A note's own
    line breaks become spaces (a note is one line, so the count is of notes)."""
    lines = explanation.splitlines()
    dropped = 0
    if lines and (counted := _DROPPED_NOTES.match(lines[0])):
        dropped = int(counted.group(1))
        lines = lines[1:]
    notes = [line for line in lines if line.strip()]
    flat = " ".join(part.strip() for part in note.splitlines() if part.strip())
    if flat:
        notes.append(flat)
    if len(notes) > keep:
        dropped += len(notes) - keep
        notes = notes[-keep:]
    if dropped:
        notes.insert(0, f"({dropped} earlier note{'' if dropped == 1 else 's'} dropped)")
    return "\n".join(notes)


class Rollout(models.Model):
    """One revision change of one SidecarSet in one cluster, executed in approved steps.

    Guarantees: ``state`` follows ``ROLLOUT_TRANSITIONS`` and every change has a
    ``StepTransition`` row (``step`` empty). A newer revision supersedes an active rollout
    (abort requested); the newer one starts once no other rollout of the same SidecarSet and
    cluster is active. At most one update rollout per (revision, cluster): a release is created
    once. The settings (steps, maxUnavailable, thresholds, timeouts) are a snapshot taken at
    creation: later edits of defaults do not change a running rollout. ``pause_requested`` /
    ``abort_requested`` are intents a person sets at any time; the engine honours them between
    pods (never in the middle of one pod's patch).
    """

    # SET_NULL plus copied names: the ledger outlives the SidecarSet and the cluster (empty FK =
    # deleted; an active rollout is failed first, see ``rollouts.receivers``).
    sidecarset = models.ForeignKey(
        "sidecarhub.SidecarSet", null=True, blank=True, on_delete=models.SET_NULL, related_name="rollouts"
    )
    sidecarset_name = models.CharField(max_length=63, help_text="Copy of the SidecarSet's name")
    cluster = models.ForeignKey(
        "clusters.Cluster", null=True, blank=True, on_delete=models.SET_NULL, related_name="rollouts"
    )
    cluster_name = models.CharField(max_length=63, default="", help_text="Copy of the cluster's name")
    kind = models.CharField(max_length=16, choices=RolloutKind.choices, default=RolloutKind.UPDATE)
    rollback_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="rollbacks"
    )
    restart_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="restarts",
        help_text="Restart rollouts: the rollout whose pods need recreate",
    )
    from_revision = models.ForeignKey(
        "sidecarhub.SidecarSetRevision", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    to_revision = models.ForeignKey(
        "sidecarhub.SidecarSetRevision", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Copies: a terminal rollout's revisions may be pruned later.
    from_revision_number = models.PositiveIntegerField(null=True, blank=True)
    to_revision_number = models.PositiveIntegerField()
    to_revision_hash = models.CharField(max_length=64)
    wave = models.PositiveSmallIntegerField(default=0, help_text="Lower waves complete first")

    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    author_name = models.CharField(max_length=150, help_text="Copy of the author's username ('system')")

    state = models.CharField(max_length=16, choices=RolloutState.choices, default=RolloutState.PENDING)
    state_changed_at = models.DateTimeField(auto_now_add=True)
    reason = models.CharField(max_length=300, blank=True, help_text="Why it is in its state, in one line")
    explanation = models.TextField(blank=True, help_text="Appended notes a person can act on")  # with_note
    pause_requested = models.BooleanField(default=False)
    abort_requested = models.BooleanField(default=False)
    intent_by = models.CharField(max_length=150, blank=True, help_text="Who asked for the pending intent")
    intent_reason = models.CharField(max_length=300, blank=True, help_text="Why (their words)")

    # Settings snapshot (see rollouts.services.RolloutSettings).
    in_place = models.BooleanField(
        default=True,
        help_text="False: the revision cannot be applied in place (not images only, or NotUpdate): "
        "one gate step, no pod patched, existing pods need recreate",
    )
    needs_recreate = models.PositiveIntegerField(
        default=0, help_text="Pods still running the definition it replaced when it completed (decision 18)"
    )
    planned_pods = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Pods the whole rollout updates in place, as counted when its latest step was "
        "prepared (its pods updated so far plus the in-place candidates left); empty until then",
    )
    steps = models.JSONField(help_text='Step targets, e.g. ["canary", "50%", "100%"] or [1, "10%", "100%"]')
    max_unavailable = models.CharField(max_length=16, help_text="maxUnavailable: an int or 'N%'")
    failure_threshold = models.PositiveIntegerField(
        default=0, help_text="Failed pods a step tolerates; one more pauses the rollout"
    )
    progress_deadline_seconds = models.PositiveIntegerField(
        default=600, help_text="A running step with no pod finishing for this long pauses the rollout"
    )
    pod_timeout_seconds = models.PositiveIntegerField(
        default=300, help_text="Seconds a patched pod has to run its new sidecar and be ready"
    )
    approval_ttl_seconds = models.PositiveIntegerField(
        default=86400, help_text="Seconds a prepared step waits for approval before it expires"
    )
    workloads_at_once = models.PositiveSmallIntegerField(
        default=1, help_text="Restart rollouts: workloads restarting at the same time"
    )
    workload_deadline_seconds = models.PositiveIntegerField(
        default=600,
        help_text="Restart rollouts: seconds a restarted workload has to complete its own rollout "
        "(counted again from a resume) before the restart pauses",
    )

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = RolloutQuerySet.as_manager()

    class Meta:
        ordering = ("-created_at", "-id")
        permissions = [
            ("approve_rolloutstep", "Can approve or deny a rollout step"),
            ("operate_rollout", "Can pause, resume, abort and roll back rollouts"),
        ]
        indexes = [models.Index(fields=("cluster", "state"), name="rollout_cluster_state_idx")]
        constraints = [
            # One release per revision: the publish's receiver and the periodic repair both
            # create it (``rollouts.services.create_rollouts_for_revision``), never twice.
            models.UniqueConstraint(
                fields=("to_revision", "cluster"),
                condition=models.Q(kind=RolloutKind.UPDATE),
                name="rollout_one_update_per_revision_cluster",
            )
        ]

    def __str__(self) -> str:
        source = f"#{self.from_revision_number}" if self.from_revision_number else "-"
        return (
            f"{self.sidecarset_name} {source}→#{self.to_revision_number} in {self.cluster_name}: {self.state}"
        )

    @property
    def cluster_deleted(self) -> bool:
        """The cluster was unregistered from the hub (the row keeps its name)."""
        return self.cluster_id is None

    @property
    def sidecarset_deleted(self) -> bool:
        """The SidecarSet was deleted (the row keeps its name)."""
        return self.sidecarset_id is None

    # The engine's accessors: a rollout it acts on has both (``LookupError`` otherwise: its
    # cluster or SidecarSet was deleted, and the rollout is history).
    @property
    def live_cluster(self) -> Cluster:
        if self.cluster is None:
            raise LookupError(f"cluster {self.cluster_name} was deleted from the hub")
        return self.cluster

    @property
    def live_cluster_id(self) -> int:
        if self.cluster_id is None:
            raise LookupError(f"cluster {self.cluster_name} was deleted from the hub")
        return self.cluster_id

    @property
    def live_sidecarset(self) -> SidecarSet:
        if self.sidecarset is None:
            raise LookupError(f"SidecarSet {self.sidecarset_name} was deleted")
        return self.sidecarset

    @property
    def live_sidecarset_id(self) -> int:
        if self.sidecarset_id is None:
            raise LookupError(f"SidecarSet {self.sidecarset_name} was deleted")
        return self.sidecarset_id

    @property
    def outcome(self) -> str:
        """How a completed rollout ended: ``succeeded`` only when no pod still runs the definition
        it replaced, else ``needs_recreate`` (decision 18); '' until it has completed."""
        if self.state != RolloutState.COMPLETED:
            return ""
        return RolloutOutcome.NEEDS_RECREATE if self.needs_recreate else RolloutOutcome.SUCCEEDED


class RolloutStep(models.Model):
    """One step (batch) of a rollout: a target, then (once prepared) its exact pod list.

    Guarantees: ``pods`` is fixed when the step is prepared (``[{namespace, name, uid}]``) and
    only these pods are ever patched by this step; ``preparation`` counts preparations (a
    denied or expired step is prepared again, with a fresh list, and needs a fresh approval);
    ``heartbeat_at`` is refreshed by every engine pass over the running step.
    """

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="rollout_steps")
    ordinal = models.PositiveSmallIntegerField(help_text="1, 2, ... in execution order")
    target = models.CharField(max_length=16, help_text="'canary', a count ('1') or a percent ('50%')")
    canary = models.BooleanField(default=False, help_text="Restricted to updateStrategy.selector")
    state = models.CharField(max_length=24, choices=StepState.choices, default=StepState.PENDING)
    state_changed_at = models.DateTimeField(auto_now_add=True)
    preparation = models.PositiveIntegerField(default=0)

    pods = models.JSONField(default=list, blank=True, help_text="[{namespace, name, uid}] once prepared")
    workloads = models.JSONField(
        default=list,
        blank=True,
        help_text="Restart steps: [{kind, namespace, name, uid, pods: [{namespace, name, uid}]}], fixed "
        "when the restart is started; ``pods`` then lists their pods that need recreate",
    )
    pod_count = models.PositiveIntegerField(default=0)
    target_updated = models.PositiveIntegerField(null=True, blank=True, help_text="Cumulative goal")
    shortfall = models.PositiveIntegerField(default=0, help_text="Pods missing to reach the goal")
    needs_recreate = models.JSONField(
        default=list,
        blank=True,
        help_text="[{namespace, name, uid, reason}] seen when prepared (first 1,000)",
    )
    needs_recreate_count = models.PositiveIntegerField(
        default=0, help_text="Pods seen when prepared that cannot be updated in place (all of them)"
    )
    prepared_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    last_progress_at = models.DateTimeField(null=True, blank=True)
    failures_acknowledged = models.PositiveIntegerField(
        default=0, help_text="Failures already seen by a person who resumed the rollout"
    )
    explanation = models.TextField(blank=True)

    objects = StepQuerySet.as_manager()

    class Meta:
        ordering = ("rollout", "ordinal")
        constraints = [models.UniqueConstraint(fields=("rollout", "ordinal"), name="step_ordinal_unique")]
        indexes = [models.Index(fields=("state", "heartbeat_at"), name="step_state_heartbeat_idx")]

    def __str__(self) -> str:
        return f"step {self.ordinal} ({self.target}) of rollout {self.rollout_id}: {self.state}"

    def pod_refs(self) -> frozenset[tuple[str, str, str]]:
        """The prepared pods as (namespace, name, uid) tuples (``PodRef``-compatible)."""
        return frozenset((p["namespace"], p["name"], p["uid"]) for p in self.pods)


class Approval(models.Model):
    """One approver's decision about one preparation of a step (security audit as well).

    Guarantees: at most one ``approve`` per (step, preparation) — enforced by the database as
    well as by the guarded transition, so two concurrent approvals cannot both win.
    """

    step = models.ForeignKey(RolloutStep, on_delete=models.CASCADE, related_name="approvals")
    preparation = models.PositiveIntegerField()
    decision = models.CharField(max_length=8, choices=ApprovalDecision.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150)
    comment = models.TextField(blank=True)
    automatic = models.BooleanField(default=False, help_text="Approved by the cluster's auto-approve")
    request_id = models.CharField(
        max_length=64, blank=True, default="", help_text="The API call, admin action or CLI run that decided"
    )
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ("step", "at", "id")
        constraints = [
            models.UniqueConstraint(
                fields=("step", "preparation"),
                condition=models.Q(decision="approve"),
                name="approval_one_approve_per_preparation",
            )
        ]

    def __str__(self) -> str:
        return f"{self.decision} of step {self.step_id} by {self.actor_name}"


class PodUpdate(models.Model):
    """One pod's in-place update within one rollout, or its replacement by a workload restart
    (``workload_kind`` set, outcome ``recreated``); it outlives the pod.

    Guarantees: one row per (rollout, pod uid); written in ``claimed`` when its step starts,
    moved to ``patching`` and committed BEFORE the patch is sent, so a worker killed at any
    instant leaves a row that the next pass resolves by reading the pod (never by patching
    twice). ``patch_attempts`` counts patches actually sent (at most 2: the retry after an
    unresolved crash uses a fresh resourceVersion precondition). ``container``, ``from_image``
    and ``to_image`` hold comma-joined values, in the same order, when several sidecars change.
    """

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="pod_updates")
    step = models.ForeignKey(RolloutStep, on_delete=models.CASCADE, related_name="pod_updates")
    cluster = models.ForeignKey(
        "clusters.Cluster", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cluster_name = models.CharField(max_length=63, default="", help_text="Copy of the cluster's name")
    namespace = models.CharField(max_length=253)
    pod_name = models.CharField(max_length=253)
    pod_uid = models.CharField(max_length=64)
    # Restart rollouts: the workload whose restart replaces the pod, and the ``restartedAt``
    # value written BEFORE its patch (after a crash, the workload is read: carries it → landed).
    workload_kind = models.CharField(max_length=16, blank=True)
    workload_name = models.CharField(max_length=253, blank=True)
    restart_marker = models.CharField(max_length=64, blank=True)
    container = models.CharField(max_length=500)
    from_image = models.TextField(blank=True)
    to_image = models.TextField()
    from_revision_number = models.PositiveIntegerField(null=True, blank=True)
    to_revision_number = models.PositiveIntegerField()

    state = models.CharField(max_length=16, choices=PodUpdateState.choices, default=PodUpdateState.CLAIMED)
    outcome = models.CharField(max_length=16, choices=PodUpdateOutcome.choices, blank=True, db_index=True)
    error = models.TextField(blank=True)
    patch_attempts = models.PositiveSmallIntegerField(default=0)
    conflicts = models.PositiveSmallIntegerField(default=0, help_text="resourceVersion conflicts seen")
    resource_version = models.CharField(max_length=64, blank=True, help_text="Precondition of the last patch")

    claimed_at = models.DateTimeField(auto_now_add=True)
    patching_at = models.DateTimeField(null=True, blank=True)
    patched_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)

    objects = PodUpdateQuerySet.as_manager()

    class Meta:
        verbose_name = "pod update"
        verbose_name_plural = "per-pod history"
        ordering = ("rollout", "step", "namespace", "pod_name")
        constraints = [models.UniqueConstraint(fields=("rollout", "pod_uid"), name="pod_update_unique")]
        indexes = [models.Index(fields=("step", "state"), name="pod_update_step_state_idx")]

    def __str__(self) -> str:
        return f"{self.namespace}/{self.pod_name}: {self.state} {self.outcome}".rstrip()

    @property
    def cluster_deleted(self) -> bool:
        """The cluster was unregistered from the hub (the row keeps its name)."""
        return self.cluster_id is None


class StepTransition(models.Model):
    """History of every state change of a rollout (``step`` empty) or of one of its steps.

    Written by ``rollouts.transitions`` in the same transaction as the change; never edited.
    """

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="transitions")
    step = models.ForeignKey(
        RolloutStep, null=True, blank=True, on_delete=models.CASCADE, related_name="transitions"
    )
    from_state = models.CharField(max_length=24)
    to_state = models.CharField(max_length=24)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150)
    reason = models.TextField(blank=True)
    request_id = models.CharField(
        max_length=64,
        blank=True,
        default="",
        help_text="The API call, admin action or CLI run that caused it",
    )
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ("at", "id")

    def __str__(self) -> str:
        subject = f"step {self.step_id}" if self.step_id else f"rollout {self.rollout_id}"
        return f"{subject}: {self.from_state} → {self.to_state} by {self.actor_name}"

    def as_tuple(self) -> tuple[Any, ...]:
        """(step ordinal or None, from, to) — handy in tests and the CLI."""
        return (self.step.ordinal if self.step is not None else None, self.from_state, self.to_state)
