"""Plan one update round exactly as update.md §1.2-§1.7 says.

Pure and deterministic: the same SidecarSet and the same pods (in any input order) give the same
plan. Kruise's rules are kept (decision 11), with these deliberate differences, each listed in
``docs/compatibility.md``:

- ties that Kruise leaves to its unstable sort over cache order are broken by namespace, then
  pod name (last, as decision 11 asks), then uid; "pod-list order", which Kruise uses to expand
  ``scatterStrategy`` wildcards, is the same order;
- ``orderPriority``: pods with none of the keys go last (decision 12; Kruise puts them first);
- changes other than sidecar images, and any change to a native-sidecar init container, are
  "needs recreate" and never patched (decision 15).

One round (``plan_round``), as update.md §1.4 steps 4-10:

1. evaluate every pod (``evaluation.PreparedFacts``, the answers of ``evaluate_pod``) and compute
   the status counters (§3);
2. classify each matched pod: updated, not selected (canary ``updateStrategy.selector``), needs
   recreate, in flight, or a candidate (late, and only as far as needed: see ``_Classes``);
3. order the candidates (``ordering.py``): default order (§1.6.1), ``priorityStrategy``
   (§1.6.2), then ``scatterStrategy`` (§1.6.3);
4. stop if ``type: NotUpdate``, ``paused``, or hot-upgrade resets are due (§5.4);
5. cut the last ``partition`` candidates, then walk the rest under ``maxUnavailable`` (§1.7).

Rollout steps (decision 13) are planned on top of this, in ``steps.py``.
"""

from __future__ import annotations

import functools
import gc
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from itertools import compress, islice
from operator import eq, itemgetter
from typing import Any, NamedTuple, ParamSpec, TypeVar, cast

from sidecarhub.sidecarset.evaluation import BARE_EVALUATIONS, PreparedFacts
from sidecarhub.sidecarset.model import SidecarSet
from sidecarhub.sidecarset.ordering import (
    default_order_key,
    expand_scatter_terms_in_ref_order,
    order_key_rank,
    priority_sort_key,
    scatter,
)
from sidecarhub.sidecarset.predicates import (
    NamespaceLabels,
    PodEvaluation,
    PodRef,
    SidecarSetFacts,
    Upgradability,
    namespace_failure,
    pod_ref,
)
from sidecarhub.sidecarset.shapes import as_mapping

__all__ = [
    "PlanningCache",
    "PodClass",
    "PodDecision",
    "RoundPlan",
    "SidecarSetStatusCounts",
    "compute_status",
    "cyclic_gc_paused",
    "plan_round",
    "resolve_max_unavailable",
    "resolve_partition",
    "resolve_step_target",
]

_PERCENT = re.compile(r"^([0-9]+)%$")
# NamedTuple's generated __new__ is Python code; tuple.__new__ builds the same object in C, which
# matters when 10,000 decisions are built per round (evaluation.py does the same for evaluations).
_new_tuple = tuple.__new__

_P = ParamSpec("_P")
_R = TypeVar("_R")


class PodClass(StrEnum):
    """Where a matched pod stands in this round's plan."""

    CANDIDATE = "candidate"  # patched this round, in the plan's order
    WAITING = "waiting"  # could be patched, held back (partition, maxUnavailable, step, pause)
    IN_FLIGHT = "in_flight"  # a sidecar is ready but still rolling an earlier update: skipped
    UPDATED = "updated"  # carries the current revision hash (maybe still restarting: see unavailable)
    NEEDS_RECREATE = "needs_recreate"  # more than images differ (decision 15): never patched in place
    NOT_SELECTED = "not_selected"  # outside the canary updateStrategy.selector


class PodDecision(NamedTuple):
    """One matched pod's verdict. ``pod`` is the dict that was passed in (for its resourceVersion)."""

    ref: PodRef
    pod_class: PodClass
    reason: str
    ready: bool  # update.md §1.2 ready(P)
    unavailable: bool  # updated and not (ready and consistent): it counts against maxUnavailable
    pod: Mapping[str, Any]

    def __repr__(self) -> str:
        return f"PodDecision({self.ref}, {self.pod_class.value}, {self.reason!r})"


@dataclass(frozen=True)
class SidecarSetStatusCounts:
    """The status counters of update.md §3, over matched pods, before this round's patches."""

    matched_pods: int
    updated_pods: int
    ready_pods: int  # ready and consistent (a hot pod also needs its idle twin on the empty image)
    updated_ready_pods: int

    def as_status(self) -> dict[str, int]:
        """The counters under Kruise's status field names."""
        return {
            "matchedPods": self.matched_pods,
            "updatedPods": self.updated_pods,
            "readyPods": self.ready_pods,
            "updatedReadyPods": self.updated_ready_pods,
        }


@dataclass(frozen=True, eq=False)
class RoundPlan:
    """What one round does and why, for every matched pod.

    ``to_patch`` is what to patch now, in order. ``ordered`` is every candidate (patched now or
    waiting) in planned order. ``decisions`` holds every matched pod exactly once: ``ordered``
    first, then the others by namespace and name. ``partition`` and ``max_unavailable`` are the
    absolute values (§1.7); ``unavailable_before`` is U, the unavailable updated pods before this
    round. ``ordered`` and ``decisions`` are built on first access (a round that only patches
    does not pay for 10,000 verdict objects).
    """

    sidecarset_name: str
    revision_hash: str
    status: SidecarSetStatusCounts
    partition: int
    max_unavailable: int
    unavailable_before: int
    blocked_reason: str | None
    to_patch: tuple[PodDecision, ...]
    hot_upgrade_resets: tuple[PodDecision, ...]
    unmatched: tuple[tuple[PodRef, str], ...]
    _classes: _Classes = field(repr=False)
    _waiting_reason: Callable[[int, int, _Matched], str] = field(repr=False)

    @cached_property
    def ordered(self) -> tuple[PodDecision, ...]:
        candidates = self._classes.resolve()
        eligible_count = max(0, len(candidates) - self.partition)
        patched = len(self.to_patch)
        # to_patch is not a prefix of the candidates when a round is restricted to a step
        patched_refs = {decision.ref: decision for decision in self.to_patch} if patched else {}
        return tuple(
            patched_refs[item[0]]
            if item[0] in patched_refs
            else _decision(item, PodClass.WAITING, self._waiting_reason(position, eligible_count, item))
            for position, item in enumerate(candidates)
        )

    @cached_property
    def decisions(self) -> tuple[PodDecision, ...]:
        self._classes.resolve()
        classes = self._classes
        updated = classes.updated
        if classes.briefs and classes.evaluate is not None:
            evaluations = [classes.evaluate(pod)[0] for pod in classes.briefs]
            updated = updated + [
                (evaluation[0], evaluation, pod, None, None)
                for evaluation, pod in zip(evaluations, classes.briefs, strict=True)
            ]
        others = [(item, PodClass.UPDATED, item[1].reason) for item in updated]
        others += classes.others
        others.sort(key=lambda entry: entry[0][0])
        return self.ordered + tuple(_decision(item, pod_class, reason) for item, pod_class, reason in others)

    def decisions_for(self, refs: Collection[PodRef]) -> dict[PodRef, PodDecision]:
        """The decisions of the pods in ``refs`` that are matched, by ref, in the order of
        ``decisions``: the same as filtering ``decisions``, but without deciding every other pod
        when the round was planned lazily (the engine asks about a step's claimed pods only;
        deciding all 10,000 costs twice the round itself)."""
        classes = self._classes
        if "decisions" in self.__dict__ or classes._resolved:
            return {decision.ref: decision for decision in self.decisions if decision.ref in refs}
        # Planned lazily, so partition is 0 and every candidate is eligible: a waiting pod's
        # reason does not depend on its position (see plan_round's waiting_reason).
        patched = {decision.ref: decision for decision in self.to_patch}
        found: dict[PodRef, PodDecision] = {}  # the candidates first, in planned order
        others: list[tuple[_Matched, PodClass, str]] = []  # then the rest, by ref
        for position in range(len(classes)):
            ref = classes.ref_at(position)
            if ref not in refs:
                continue
            if ref in patched:
                found[ref] = patched[ref]
                continue
            item = classes.at(position)
            upgradability = item[1].upgradability
            if upgradability is Upgradability.UPGRADABLE:
                found[ref] = _decision(item, PodClass.WAITING, self._waiting_reason(0, 1, item))
            elif upgradability is Upgradability.NEEDS_RECREATE:
                others.append((item, PodClass.NEEDS_RECREATE, item[1].reason))
            else:
                others.append((item, PodClass.IN_FLIGHT, item[1].reason))
        others += [(item, PodClass.UPDATED, item[1].reason) for item in classes.updated if item[0] in refs]
        if classes.evaluate is not None:
            for pod in classes.briefs:
                if pod_ref(pod) in refs:
                    evaluation = classes.evaluate(pod)[0]
                    others.append(
                        ((evaluation[0], evaluation, pod, None, None), PodClass.UPDATED, evaluation.reason)
                    )
        others += [entry for entry in classes.others if entry[0][0] in refs]
        others.sort(key=lambda entry: entry[0][0])
        for item, pod_class, reason in others:
            found[item[0]] = _decision(item, pod_class, reason)
        return found

    def of_class(self, pod_class: PodClass) -> tuple[PodDecision, ...]:
        return tuple(decision for decision in self.decisions if decision.pod_class is pod_class)

    def class_counts(self) -> dict[PodClass, int]:
        counts = dict.fromkeys(PodClass, 0)
        for decision in self.decisions:
            counts[decision.pod_class] += 1
        return counts

    @property
    def complete(self) -> bool:
        """Every matched pod carries the current revision (update.md §1.4 step 9)."""
        return self.status.updated_pods >= self.status.matched_pods


# --- arithmetic (§1.7) -------------------------------------------------------------------------


def _scaled(value: int | str, total: int, field_path: str) -> tuple[int, bool]:
    """(absolute value, was a percent); percents of ``total`` rounded up, as Kruise does.

    Validation (Kruise's, kept) only lets non-negative ints and ``^[0-9]+%$`` through, so a
    ``ValueError`` here means an unvalidated SidecarSet reached the planner.
    """
    if isinstance(value, bool):
        raise ValueError(f"{field_path}: {value!r} is not an int or a percent")
    if isinstance(value, int):
        return value, False
    match = _PERCENT.match(str(value))
    if match is None:
        raise ValueError(f"{field_path}: {value!r} is not an int or a percent")
    return -(-int(match.group(1)) * total // 100), True


def resolve_partition(partition: int | str | None, matched: int) -> int:
    """§1.7.1: ints as is; ``p%`` → ceil(p·N/100), N-1 if that is N (N > 1, not "100%"); in [0, N]."""
    if partition is None:
        return 0
    value, is_percent = _scaled(partition, matched, "spec.updateStrategy.partition")
    if is_percent and matched > 1 and value == matched and partition != "100%":
        value = matched - 1
    return max(0, min(value, matched))


def resolve_max_unavailable(max_unavailable: int | str | None, matched: int) -> int:
    """§1.7.2: 1 when unset, ints as is, ``p%`` → ceil(p·N/100)."""
    if max_unavailable is None:
        return 1
    return _scaled(max_unavailable, matched, "spec.updateStrategy.maxUnavailable")[0]


def resolve_step_target(step: int | str, matched: int) -> int:
    """A numeric step (``1``, ``"10%"``) as a cumulative count of updated pods, in [0, N].

    Percents are of all matched pods, rounded up (as Kruise rounds maxUnavailable).
    """
    if isinstance(step, str) and step.isdigit():
        step = int(step)
    value = _scaled(step, matched, "step")[0]
    if value < 0:
        raise ValueError(f"step: {step!r} is negative")
    return min(value, matched)


# --- planning ----------------------------------------------------------------------------------


# A matched pod inside the planner: (ref, evaluation, pod dict, order rank, cache key). The rank
# (``ordering.order_key_rank``) is set for pods that are not updated (possible candidates). A plain
# tuple, not a NamedTuple: 10,000 are built per round and a tuple display is the cheapest object.
_Matched = tuple[PodRef, PodEvaluation, Mapping[str, Any], float | None, str | None]
# What the cache keeps per resourceVersion: the (possibly deferred) evaluation and the order rank.
_Entry = tuple[PodEvaluation, float | None]


class _Brief:
    """What a cold round keeps of the pods it does not evaluate in full.

    ``pods``: updated pods kept as they are, ``available`` of them ready and consistent. A round
    needs only these two numbers from them (status and ``U``); their decisions, when asked for,
    evaluate them again (the same answer: evaluation is pure). ``candidates``: bare items of
    matched pods that are not updated (ref ``None``, a shared evaluation: see
    ``PreparedFacts.evaluate_deferred``), ``candidates_ready`` of them ready and consistent; they
    are counted here, not in ``matched``, and ``_Classes.at`` completes those a round reaches.
    """

    __slots__ = ("available", "candidates", "candidates_ready", "pods")

    def __init__(self) -> None:
        self.pods: list[Mapping[str, Any]] = []
        self.available = 0
        self.candidates: list[_Matched] = []
        self.candidates_ready = 0

    def __len__(self) -> int:
        """How many matched pods it holds."""
        return len(self.pods) + len(self.candidates)


class PlanningCache:
    """Pod evaluations reused from one round to the next (an optional speed-up; same results).

    An evaluation depends only on the SidecarSet and the pod's content, and any change to a pod
    changes its ``resourceVersion``; so entries are keyed by resourceVersion, checked against the
    pod's uid on every hit (a resourceVersion seen on another pod is a miss, never a wrong
    answer), and dropped when the SidecarSet's facts change. Pods without both are never cached.
    After each call the cache holds only the pods of that call, so it stays as big as one pod
    list. Not thread-safe: keep one per worker, cluster and SidecarSet.
    """

    __slots__ = ("_entries", "_facts")

    def __init__(self) -> None:
        self._facts: SidecarSetFacts | None = None
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def entries_for(self, facts: SidecarSetFacts) -> dict[str, _Entry]:
        """The last round's entries if that round planned the same facts, else none."""
        return self._entries if self._facts == facts else {}

    def keep(self, facts: SidecarSetFacts, entries: dict[str, _Entry]) -> None:
        """Keep only this round's entries (the cache stays as big as one pod list)."""
        self._facts, self._entries = facts, entries


def _decision(item: _Matched, pod_class: PodClass, reason: str) -> PodDecision:
    evaluation = item[1]
    return _new_tuple(
        PodDecision,
        (item[0], pod_class, reason, evaluation.ready, evaluation.unavailable_updated, item[2]),
    )


# Decision 11's canonical order: namespace, then pod name, then uid (PodRef's field order).
_ref_order = itemgetter(0)
_order_key = itemgetter(3)


def _blocked_reason(sidecarset: SidecarSet, resets_due: bool) -> str | None:
    strategy = sidecarset.update_strategy
    if strategy.type == "NotUpdate":
        return "updateStrategy.type is NotUpdate: pods change only when recreated"
    if strategy.paused:
        return "updateStrategy.paused is true"
    if resets_due:
        return "hot-upgrade resets are due; a round with resets patches nothing else (update.md §5.4)"
    return None


_NOT_READY_REASON = "not ready: patched without using maxUnavailable"


class _Classes:
    """The selected, not-updated pods of a round in planned order, classified on demand.

    Pods come in sorted (default order, then priority) with deferred evaluations
    (``PreparedFacts.evaluate_deferred``); :meth:`at` classifies one (parsing its
    hash-without-image annotation), :meth:`resolve` all of them. Dropping pods that are not
    candidates keeps the order of the others, so classifying late gives the same order as
    classifying first. A round whose plan needs only the first candidates (no partition, no
    scatter) classifies only the pods its budget walk reaches; ``RoundPlan.ordered`` and
    ``decisions`` resolve the rest when asked. Classifications are written back to the cache.
    """

    __slots__ = (
        "_classify",
        "_entries",
        "_pending",
        "_resolved",
        "briefs",
        "candidates",
        "evaluate",
        "others",
        "updated",
    )

    def __init__(
        self,
        pending: list[_Matched],
        updated: list[_Matched],
        others: list[tuple[_Matched, PodClass, str]],
        classify: Callable[[Mapping[str, Any], PodEvaluation], PodEvaluation],
        entries: dict[str, _Entry] | None,
    ) -> None:
        self._pending = pending
        self._classify = classify
        self._entries = entries
        self._resolved = False
        self.candidates: list[_Matched] = []
        self.updated = updated  # the updated pods, whose class needs no tuple until asked for
        self.briefs: list[Mapping[str, Any]] = []  # updated pods evaluated briefly (see _Brief)
        self.evaluate: Callable[..., Any] | None = None  # evaluates them in full when asked for
        self.others = others  # not selected, then (once classified) needs recreate and in flight

    def at(self, position: int) -> _Matched:
        """The pending pod at ``position``, classified (its evaluation has an upgradability)."""
        item = self._pending[position]
        evaluation = item[1]
        if evaluation[7] is None:
            evaluation = self._classify(item[2], evaluation)
            item = (evaluation[0], evaluation, item[2], item[3], item[4])  # a bare item gets its ref
            self._pending[position] = item
            if item[4] is not None and self._entries is not None:
                self._entries[item[4]] = (evaluation, item[3])
        return item

    def resolve(self) -> list[_Matched]:
        """Classify every pending pod: the candidates in planned order (``others`` gets the rest)."""
        if not self._resolved:
            for position in range(len(self._pending)):
                item = self.at(position)
                evaluation = item[1]
                if evaluation.upgradability is Upgradability.UPGRADABLE:
                    self.candidates.append(item)
                elif evaluation.upgradability is Upgradability.NEEDS_RECREATE:
                    self.others.append((item, PodClass.NEEDS_RECREATE, evaluation.reason))
                else:
                    self.others.append((item, PodClass.IN_FLIGHT, evaluation.reason))
            self._pending = []
            self._resolved = True
        return self.candidates

    def ref_at(self, position: int) -> PodRef:
        """The ref of the pending pod at ``position``, without classifying it."""
        ref = self._pending[position][0]
        return pod_ref(self._pending[position][2]) if ref is None else ref

    def __len__(self) -> int:
        return len(self._pending)


def _budget_walk(ordered: Sequence[_Matched], unavailable: int, max_unavailable: int) -> list[str]:
    """§1.7 step 4: the reasons of the first candidates of ``ordered`` to patch (one each)."""
    reasons: list[str] = []
    for item in ordered:
        if not item[1].ready:
            reasons.append(_NOT_READY_REASON)
            continue
        if unavailable >= max_unavailable:
            break
        unavailable += 1
        reasons.append(f"within maxUnavailable ({unavailable}/{max_unavailable} unavailable)")
    return reasons


def _lazy_budget_walk(
    classes: _Classes, only: Collection[PodRef] | None, unavailable: int, max_unavailable: int
) -> list[PodDecision]:
    """:func:`_budget_walk` over the candidates of ``classes`` (all eligible: no partition),
    classifying pods only as far as the walk goes."""
    chosen: list[PodDecision] = []
    for position in range(len(classes)):
        if only is not None and classes.ref_at(position) not in only:
            continue
        item = classes.at(position)
        if item[1].upgradability is not Upgradability.UPGRADABLE:
            continue
        if not item[1].ready:
            chosen.append(_decision(item, PodClass.CANDIDATE, _NOT_READY_REASON))
            continue
        if unavailable >= max_unavailable:
            break
        unavailable += 1
        reason = f"within maxUnavailable ({unavailable}/{max_unavailable} unavailable)"
        chosen.append(_decision(item, PodClass.CANDIDATE, reason))
    return chosen


def _evaluate_all(
    prepared: PreparedFacts,
    pods: Iterable[Mapping[str, Any]],
    namespace_labels: NamespaceLabels | None,
    cache: PlanningCache | None,
    brief: bool = False,
    bare: bool = False,
) -> tuple[list[_Matched], list[tuple[PodRef, str]], dict[str, _Entry] | None, _Brief]:
    """Evaluate every pod (deferred, see ``PreparedFacts``): the matched ones, the unmatched
    ones with their reasons (sorted by PodRef), the cache's new entries (if a cache), and the
    matched pods left out of ``matched`` (only without a cache, see :class:`_Brief`): updated
    ones with ``brief``, bare candidates with ``bare``."""
    facts = prepared.facts
    evaluate = prepared.evaluate_deferred
    check_namespaces = namespace_labels is not None and facts.namespace_selector is not None
    matched: list[_Matched] = []
    unmatched: list[tuple[PodRef, str]] = []
    append_matched = matched.append  # bound once: 10,000 iterations
    briefs = _Brief()
    if cache is None and not check_namespaces:  # the cold path: nothing but the predicates
        append_brief = briefs.pods.append
        append_candidate = briefs.candidates.append
        ready_candidate = BARE_EVALUATIONS[1]  # the bare evaluation of a ready, consistent pod
        available = candidates_ready = 0
        for pod in pods:
            evaluation, order_key = evaluate(pod, brief, bare)
            if evaluation is None:  # updated (brief): order_key says ready and consistent
                append_brief(pod)
                if order_key:
                    available += 1
            elif evaluation[0] is None:  # a bare candidate
                append_candidate((None, evaluation, pod, order_key, None))
                if evaluation is ready_candidate:
                    candidates_ready += 1
            elif evaluation[1]:  # matched
                append_matched((evaluation[0], evaluation, pod, order_key, None))
            else:
                unmatched.append((evaluation[0], evaluation[8]))
        briefs.available, briefs.candidates_ready = available, candidates_ready
        unmatched.sort()
        return matched, unmatched, None, briefs
    previous = cache.entries_for(facts) if cache is not None else {}
    current: dict[str, _Entry] = {}
    namespace_failures: dict[str, str | None] = {}
    previous_get = previous.get
    for pod in pods:
        metadata = pod.get("metadata")
        if type(metadata) is not dict:
            metadata = as_mapping(metadata)
        if check_namespaces:
            namespace = str(metadata.get("namespace") or "")
            if namespace not in namespace_failures:
                namespace_failures[namespace] = namespace_failure(facts, namespace, namespace_labels)
            failure = namespace_failures[namespace]
            if failure is not None:
                ref = PodRef(namespace, str(metadata.get("name") or ""), str(metadata.get("uid") or ""))
                unmatched.append((ref, failure))
                continue
        key = metadata.get("resourceVersion") if cache is not None else None
        entry = previous_get(key) if key else None
        if entry is None or entry[0][0][2] != metadata.get("uid"):
            entry = cast(_Entry, evaluate(pod))  # not brief: always an evaluation
        evaluation = entry[0]
        if key and evaluation[0][2]:
            current[key] = entry
        else:
            key = None
        if evaluation[1]:  # matched
            append_matched((evaluation[0], evaluation, pod, entry[1], key))
        else:
            unmatched.append((evaluation[0], evaluation[8]))
    if cache is not None:
        cache.keep(facts, current)
    # Input order never matters (decision 11): candidates are sorted by a total order, the rest
    # by PodRef where an order is shown or used (scatter wildcards, decisions).
    unmatched.sort()
    return matched, unmatched, current if cache is not None else None, briefs


def cyclic_gc_paused(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``function`` with the cyclic garbage collector paused (the process-wide switch; left
    alone when it is already off).

    A round keeps a few tuples per pod until it returns and makes no reference cycles. With the
    collector on, every 700 of them start a collection that walks the survivors again, and the
    older generation's walks reach into the pod dicts: a third of a 10,000-pod round. Paused,
    the next collection after the round walks them once (``benchmarks/plan_round.py`` counts it).
    """

    @functools.wraps(function)
    def paused(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        if not gc.isenabled():
            return function(*args, **kwargs)
        gc.disable()
        try:
            return function(*args, **kwargs)
        finally:
            gc.enable()

    return paused


def _status(matched: Sequence[_Matched], briefs: _Brief) -> SidecarSetStatusCounts:
    updated, updated_ready = len(briefs.pods), briefs.available
    ready = briefs.available + briefs.candidates_ready
    for item in matched:
        evaluation = item[1]
        is_ready = evaluation.ready and bool(evaluation.consistent)
        updated += evaluation.updated
        ready += is_ready
        updated_ready += evaluation.updated and is_ready
    return SidecarSetStatusCounts(len(matched) + len(briefs), updated, ready, updated_ready)


@cyclic_gc_paused
def compute_status(
    sidecarset: SidecarSet,
    pods: Iterable[Mapping[str, Any]],
    *,
    namespace_labels: NamespaceLabels | None = None,
    cache: PlanningCache | None = None,
) -> SidecarSetStatusCounts:
    """``matchedPods``, ``updatedPods``, ``readyPods``, ``updatedReadyPods`` exactly as update.md §3.

    ``namespace_labels`` and ``cache`` as for :func:`plan_round`.
    """
    prepared = PreparedFacts.of(SidecarSetFacts.of(sidecarset))
    matched, _, _, briefs = _evaluate_all(prepared, pods, namespace_labels, cache, brief=True, bare=True)
    return _status(matched, briefs)


def _default_order(pending: list[_Matched]) -> list[_Matched]:
    """``pending`` sorted by ``ordering.default_order_key`` (§1.6.1 with decision 11's tie-breaks).

    Items carry their ``order_key_rank`` (from the predicate pass, or ``_rank_of`` for pods the
    general path evaluated), a float that never orders two pods against their keys. They are
    sorted by it (float keys: the fastest sort), then each run of equal ranks by the full key:
    the same order as sorting by the full key, which is computed only for pods whose ranks tie
    (e.g. not-ready pods, or pods ready in the same second).
    """
    ordered = sorted(pending, key=_order_key)
    ranks = list(map(_order_key, ordered))
    # positions i where ordered[i] and ordered[i + 1] have equal ranks (found in C, no Python loop)
    ties = list(compress(range(len(ranks) - 1), map(eq, ranks, islice(ranks, 1, None))))
    position = 0
    while position < len(ties):
        start = end = ties[position]
        while position < len(ties) and ties[position] == end:  # a run of consecutive ties
            end += 1
            position += 1
        ordered[start : end + 1] = sorted(ordered[start : end + 1], key=_full_order_key)
    return ordered


def _rank_of(pod: Mapping[str, Any]) -> float:
    status = as_mapping(pod.get("status"))
    ready_condition = None
    for condition in status.get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            ready_condition = condition
            break
    return order_key_rank(as_mapping(pod.get("spec")).get("nodeName"), status.get("phase"), ready_condition)


def _full_order_key(item: _Matched) -> tuple[Any, ...]:
    return default_order_key(item[2])


def _scatter(
    sidecarset: SidecarSet, candidates: list[_Matched], matched: Sequence[_Matched]
) -> list[_Matched]:
    strategy = sidecarset.update_strategy
    if not strategy.scatter_strategy or len(candidates) <= 1:
        return candidates
    positions = scatter(
        [item[1].labels for item in candidates],
        [item[1].labels for item in matched],  # counts only: order does not matter here
        expand_scatter_terms_in_ref_order(  # canonical pod-list order (decision 11)
            strategy.scatter_strategy, ((item[0], item[1].labels) for item in matched)
        ),
    )
    return [candidates[position] for position in positions]


@cyclic_gc_paused
def plan_round(
    sidecarset: SidecarSet,
    pods: Iterable[Mapping[str, Any]],
    *,
    namespace_labels: NamespaceLabels | None = None,
    only: Collection[PodRef] | None = None,
    apply_canary_selector: bool = True,
    cache: PlanningCache | None = None,
) -> RoundPlan:
    """Plan one round over the SidecarSet's pods (update.md §1.4 steps 4-10).

    Args:
        sidecarset: the revision to roll out (its hashes define "updated").
        pods: pod dicts as the apiserver returns them; pods that do not match are reported in
            ``unmatched`` and otherwise ignored. Any order: the plan does not depend on it.
        namespace_labels: labels of each pod's namespace, to check ``namespaceSelector``. ``None``
            means the caller listed pods only from the selected namespaces (not re-checked).
        only: restrict the patch to these pods (an approved step's pods, decision 13). Partition is
            applied first, on all candidates; the others are ``waiting``.
        apply_canary_selector: honour ``updateStrategy.selector``. The rollout engine passes
            ``False`` for steps after the canary step.
        cache: a :class:`PlanningCache` kept between rounds; the plan is the same with or
            without it, only faster when most pods did not change.

    Guarantees: pure and deterministic; ``to_patch`` never makes more than ``max_unavailable``
    updated pods unavailable beyond those already so, except not-ready pods, which Kruise patches
    without using the budget; never touches the ``partition`` last candidates.
    """
    facts = SidecarSetFacts.of(sidecarset)
    prepared = PreparedFacts.of(facts)
    strategy = sidecarset.update_strategy
    canary = strategy.selector if apply_canary_selector else None
    priority = strategy.priority_strategy
    prioritized = priority is not None and bool(priority.weight_priority or priority.order_priority)
    # Scatter reads every matched pod's labels and ref, so updated pods cannot stay brief then;
    # a canary selector and priorities read every candidate's labels, so candidates stay bare
    # (ref and labels read only for the pods the budget walk reaches) only without all three.
    brief = not strategy.scatter_strategy
    bare = brief and canary is None and not prioritized
    matched, unmatched, entries, briefs = _evaluate_all(prepared, pods, namespace_labels, cache, brief, bare)
    total = len(matched) + len(briefs)

    # One pass: status counters (§3), U (§1.7 step 3) and the first split of §1.5.
    others: list[tuple[_Matched, PodClass, str]] = []
    updated_items: list[_Matched] = []
    # selected, not updated: candidates, needs recreate or in flight
    pending: list[_Matched] = list(briefs.candidates)
    updated, updated_ready = len(briefs.pods), briefs.available
    ready = briefs.available + briefs.candidates_ready
    unavailable = len(briefs.pods) - briefs.available
    resets: list[_Matched] = []
    for item in matched:
        evaluation = item[1]
        counted_ready = evaluation[4] and evaluation[5]  # ready and consistent
        if counted_ready:
            ready += 1
        if evaluation[9]:  # hot-upgrade reset due
            resets.append(item)
        if evaluation[3]:  # updated
            updated += 1
            if counted_ready:
                updated_ready += 1
            else:
                unavailable += 1
            updated_items.append(item)
        elif canary is not None and not canary.matches(evaluation.labels):
            others.append((item, PodClass.NOT_SELECTED, "outside updateStrategy.selector"))
        elif item[3] is None:  # evaluated by the general predicate path: no order rank yet
            pending.append((*item[:3], _rank_of(item[2]), item[4]))
        else:
            pending.append(item)
    status = SidecarSetStatusCounts(total, updated, ready, updated_ready)

    # §1.6: default order, then priority (stable); classification keeps that order (see _Classes).
    pending = _default_order(pending)
    if prioritized:
        key = priority_sort_key(priority)  # type: ignore[arg-type]  # prioritized: not None
        pending.sort(key=lambda item: key(item[1].labels))  # stable: earlier order breaks ties
    classes = _Classes(pending, updated_items, others, prepared.classify, entries)
    classes.briefs, classes.evaluate = briefs.pods, prepared.evaluate_deferred

    partition = resolve_partition(strategy.partition, total)
    max_unavailable = resolve_max_unavailable(strategy.max_unavailable, total)
    blocked = _blocked_reason(sidecarset, bool(resets))
    to_patch: tuple[PodDecision, ...] = ()
    if partition or strategy.scatter_strategy:
        # Partition counts every candidate and scatter reorders them all: classify them all now.
        ordered = _scatter(sidecarset, classes.resolve(), matched)
        classes.candidates = ordered
        eligible = ordered[: max(0, len(ordered) - partition)]
        if only is not None:
            eligible = [item for item in eligible if item[0] in only]
        if blocked is None:
            reasons = _budget_walk(eligible, unavailable, max_unavailable)
            to_patch = tuple(
                _decision(item, PodClass.CANDIDATE, reason)
                for item, reason in zip(eligible, reasons, strict=False)
            )
    elif blocked is None:
        to_patch = tuple(_lazy_budget_walk(classes, only, unavailable, max_unavailable))

    def waiting_reason(position: int, eligible_count: int, item: _Matched) -> str:
        if position >= eligible_count:
            return f"kept on the old revision by partition ({partition})"
        if only is not None and item[0] not in only:
            return "not in this step's pod list"
        if blocked is not None:
            return blocked
        return f"maxUnavailable ({max_unavailable}) reached this round"

    return RoundPlan(
        sidecarset_name=sidecarset.name,
        revision_hash=facts.revision_hash,
        status=status,
        partition=partition,
        max_unavailable=max_unavailable,
        unavailable_before=unavailable,
        blocked_reason=blocked,
        to_patch=to_patch,
        hot_upgrade_resets=tuple(
            _decision(
                item, PodClass.UPDATED if item[1].updated else PodClass.WAITING, "hot-upgrade reset due"
            )
            for item in sorted(resets, key=_ref_order)
        ),
        unmatched=tuple(unmatched),
        _classes=classes,
        _waiting_reason=waiting_reason,
    )
