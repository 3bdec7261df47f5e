"""Read-only selectors of the rollouts app for the API, the admin and the CLI.

Nothing here changes a row. Progress counts are annotations computed by correlated subqueries,
so a page of rollouts costs one query however many pods they touched (STYLE P5: constant
number of queries). The numbers mean the same as ``previews.rollout_progress``:

- ``total``: pods over ALL steps of the rollout: the larger of the pods in the steps prepared
  so far and ``Rollout.planned_pods`` (its updated pods plus the in-place candidates left,
  counted when its latest step was prepared); before any step is prepared, 0;
- ``updated``: PodUpdates whose outcome is ``succeeded`` (or ``recreated``: a restart replaced
  the pod); ``failed``: ``failed`` or
  ``timed_out``; ``skipped`` and ``pod_gone``: the other final outcomes;
- ``in_flight``: PodUpdates not finished yet (claimed, patching, observing).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import CharField, Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Greatest

from rollouts.choices import (
    FAILED_OUTCOMES,
    OPEN_POD_UPDATE_STATES,
    TERMINAL_STEP_STATES,
    UPDATED_OUTCOMES,
    PodUpdateOutcome,
)
from rollouts.models import PodUpdate, Rollout, RolloutStep

__all__ = [
    "POD_UPDATE_CSV_COLUMNS",
    "Progress",
    "pod_update_csv",
    "progress_of",
    "rollouts_with_progress",
    "steps_with_progress",
    "text_progress_bar",
]


def _count_pod_updates(condition: Q) -> Coalesce:
    rows = (
        PodUpdate.objects.filter(condition, rollout=OuterRef("pk"))
        .order_by()
        .values("rollout")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(rows, output_field=IntegerField()), Value(0))


def rollouts_with_progress(queryset: QuerySet[Rollout]) -> QuerySet[Rollout]:
    """``queryset`` annotated with ``progress_*`` counts, ``steps_total``, ``current_step``
    (ordinal of the first step not finished; ``None`` when all are) and ``current_step_state``."""
    steps = RolloutStep.objects.filter(rollout=OuterRef("pk")).order_by()
    total = steps.values("rollout").annotate(n=Sum("pod_count")).values("n")
    step_count = steps.values("rollout").annotate(n=Count("pk")).values("n")
    current = (
        RolloutStep.objects.filter(rollout=OuterRef("pk"))
        .exclude(state__in=TERMINAL_STEP_STATES)
        .order_by("ordinal")
        .values("ordinal")[:1]
    )
    return queryset.annotate(
        progress_total=Greatest(
            Coalesce(Subquery(total, output_field=IntegerField()), Value(0)),
            Coalesce("planned_pods", Value(0)),
            output_field=IntegerField(),
        ),
        progress_updated=_count_pod_updates(Q(outcome__in=UPDATED_OUTCOMES)),
        progress_failed=_count_pod_updates(Q(outcome__in=FAILED_OUTCOMES)),
        progress_skipped=_count_pod_updates(Q(outcome=PodUpdateOutcome.SKIPPED)),
        progress_pod_gone=_count_pod_updates(Q(outcome=PodUpdateOutcome.POD_GONE)),
        progress_in_flight=_count_pod_updates(Q(state__in=OPEN_POD_UPDATE_STATES)),
        steps_total=Coalesce(Subquery(step_count, output_field=IntegerField()), Value(0)),
        current_step=Subquery(current, output_field=IntegerField()),
        current_step_state=Subquery(current.values("state")[:1], output_field=CharField()),
    )


def steps_with_progress(queryset: QuerySet[RolloutStep]) -> QuerySet[RolloutStep]:
    """``queryset`` annotated with the same ``progress_*`` counts, per step (one join)."""
    return queryset.annotate(
        progress_updated=Count("pod_updates", filter=Q(pod_updates__outcome__in=UPDATED_OUTCOMES)),
        progress_failed=Count("pod_updates", filter=Q(pod_updates__outcome__in=FAILED_OUTCOMES)),
        progress_skipped=Count("pod_updates", filter=Q(pod_updates__outcome=PodUpdateOutcome.SKIPPED)),
        progress_pod_gone=Count("pod_updates", filter=Q(pod_updates__outcome=PodUpdateOutcome.POD_GONE)),
        progress_in_flight=Count("pod_updates", filter=Q(pod_updates__state__in=OPEN_POD_UPDATE_STATES)),
    )


@dataclass(frozen=True)
class Progress:
    """Progress counts of one rollout or step (see the module docstring)."""

    total: int
    updated: int
    failed: int
    skipped: int
    pod_gone: int
    in_flight: int

    @property
    def finished(self) -> int:
        return self.updated + self.failed + self.skipped + self.pod_gone

    @property
    def percent(self) -> int:
        """Updated pods as a whole percentage of ``total`` (0 when nothing is prepared yet)."""
        return min(100, (100 * self.updated) // self.total) if self.total else 0

    def share(self, count: int) -> float:
        """``count`` as a percentage of the bar (never more than 100 in all)."""
        return round(100.0 * count / self.total, 2) if self.total else 0.0


def progress_of(row: Any) -> Progress:
    """The ``Progress`` of a row annotated by ``rollouts_with_progress`` / ``steps_with_progress``
    (a step's total is its own ``pod_count``)."""
    total = getattr(row, "progress_total", None)
    if total is None:
        total = getattr(row, "pod_count", 0)
    return Progress(
        total=int(total or 0),
        updated=int(getattr(row, "progress_updated", 0) or 0),
        failed=int(getattr(row, "progress_failed", 0) or 0),
        skipped=int(getattr(row, "progress_skipped", 0) or 0),
        pod_gone=int(getattr(row, "progress_pod_gone", 0) or 0),
        in_flight=int(getattr(row, "progress_in_flight", 0) or 0),
    )


def text_progress_bar(progress: Progress, width: int = 20) -> str:
    """``[#####!!-------] 5/14 pods done, 2 failed``: a rollout's (or step's) own record, as the
    console's "rollout: 5 / 14 pods done"; ``#`` updated, ``!`` failed, ``~`` in flight, ``-``
    still to do."""
    if progress.total:
        updated = round(width * progress.updated / progress.total)
        failed = round(width * progress.failed / progress.total)
        flying = round(width * progress.in_flight / progress.total)
        updated = min(updated, width)
        failed = min(failed, width - updated)
        flying = min(flying, width - updated - failed)
        bar = "#" * updated + "!" * failed + "~" * flying
        bar = bar.ljust(width, "-")
    else:
        bar = " " * width
    text = f"[{bar}] {progress.updated}/{progress.total} pods done"
    if progress.failed:
        text += f", {progress.failed} failed"
    if progress.in_flight:
        text += f", {progress.in_flight} in flight"
    return text


POD_UPDATE_CSV_COLUMNS = (
    "id",
    "cluster",
    "namespace",
    "pod_name",
    "pod_uid",
    "sidecarset",
    "rollout_id",
    "step_id",
    "step_ordinal",
    "container",
    "from_image",
    "to_image",
    "from_revision",
    "to_revision",
    "state",
    "outcome",
    "error",
    "patch_attempts",
    "conflicts",
    "claimed_at",
    "patching_at",
    "patched_at",
    "done_at",
    "workload_kind",
    "workload_name",
    "cluster_deleted",
)


def _iso(value: Any) -> str:
    return value.isoformat() if value is not None else ""


def _csv_row(update: PodUpdate) -> list[Any]:
    return [
        update.pk,
        update.cluster_name,
        update.namespace,
        update.pod_name,
        update.pod_uid,
        update.rollout.sidecarset_name,
        update.rollout_id,
        update.step_id,
        update.step.ordinal,
        update.container,
        update.from_image,
        update.to_image,
        update.from_revision_number if update.from_revision_number is not None else "",
        update.to_revision_number,
        update.state,
        update.outcome,
        update.error,
        update.patch_attempts,
        update.conflicts,
        _iso(update.claimed_at),
        _iso(update.patching_at),
        _iso(update.patched_at),
        _iso(update.done_at),
        update.workload_kind,
        update.workload_name,
        "true" if update.cluster_id is None else "false",
    ]


def pod_update_csv(queryset: QuerySet[PodUpdate] | Iterable[PodUpdate]) -> Iterator[str]:
    """CSV text of ``queryset``, header first, one chunk per row (for streaming responses).

    Rows are read in chunks of 1,000 (``iterator``), so an export of the whole history never
    holds it in memory. Times are ISO 8601 in UTC; an empty cell means "not reached".
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate(0)
        return text

    writer.writerow(POD_UPDATE_CSV_COLUMNS)
    yield flush()
    if isinstance(queryset, QuerySet):
        rows: Iterable[PodUpdate] = queryset.select_related("cluster", "rollout", "step").iterator(
            chunk_size=1000
        )
    else:
        rows = queryset
    for update in rows:
        writer.writerow(_csv_row(update))
        yield flush()
