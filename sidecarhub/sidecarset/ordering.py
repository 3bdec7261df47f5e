"""Candidate order for one update round: update.md §1.6 (default order, priority, scatter).

Pure functions over pod dicts and label maps, used by ``planning.plan_round``. Kruise's rules,
with decision 11's deterministic tie-breaks (namespace, then pod name, then uid) and decision 12
(``orderPriority``: pods with none of the keys go last).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sidecarhub.sidecarset.model import LabelSelector, PriorityStrategy, ScatterTerm
from sidecarhub.sidecarset.shapes import as_mapping

if TYPE_CHECKING:  # evaluation imports this module (order keys built in its predicate pass)
    from sidecarhub.sidecarset.predicates import PodRef

__all__ = [
    "RANK_UNKNOWN_TIME",
    "RUNNING_READY_RANK",
    "RUNNING_READY_RANK_BOUND",
    "default_order_key",
    "expand_scatter_terms",
    "expand_scatter_terms_in_ref_order",
    "order_key_head",
    "order_key_rank",
    "order_key_tail",
    "priority_sort_key",
    "scatter",
    "scatter_order",
    "timestamp",
]

_TRAILING_DIGITS = re.compile(r"([0-9]+)$")
_PHASE_RANK = {"Unknown": 1, "Running": 2}  # everything else ranks like Pending (0)
_INT64_MAX = 2**63 - 1
_EVERYTHING = LabelSelector()

_from_iso = datetime.fromisoformat  # bound once: called for most pods of a round
_NEVER = float("-inf")  # a missing time: sorts before every known one


def timestamp(value: Any) -> float | None:
    """A Kubernetes time (RFC 3339) as POSIX seconds; ``None`` when missing or unreadable."""
    if type(value) is not str and not isinstance(value, str):
        return None
    if not value:
        return None
    try:
        moment = _from_iso(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def default_order_key(pod: Mapping[str, Any]) -> tuple[Any, ...]:
    """Sort key of Kubernetes' "active pods" order (§1.6.1), with decision 11's tie-breaks.

    Unbound first; Pending < Unknown < Running; not Ready first; among Ready pods the most
    recently ready first (no transition time first of all); more restarts first; newer first
    (no creation time first of all); then namespace, pod name, uid (decision 11). It is
    :func:`order_key_head` followed by :func:`order_key_tail`.
    """
    metadata = as_mapping(pod.get("metadata"))
    status = as_mapping(pod.get("status"))
    ready_condition = None
    for condition in status.get("conditions") or ():
        if (type(condition) is dict or isinstance(condition, Mapping)) and condition.get("type") == "Ready":
            ready_condition = condition
            break
    head = order_key_head(as_mapping(pod.get("spec")).get("nodeName"), status.get("phase"), ready_condition)
    return head + order_key_tail(metadata, status.get("containerStatuses") or ())


def order_key_head(
    node_name: Any, phase: Any, ready_condition: Mapping[str, Any] | None
) -> tuple[int, float]:
    """The first two items of :func:`default_order_key`: (bound, phase rank, ready) packed in one
    small int, then the negated Ready transition time (-inf when not ready or unknown: first).

    ``ready_condition`` is the pod's first ``Ready`` condition, or ``None``. Pods that became
    ready at different times differ here already, so the planner computes the tail only for
    pods whose heads are equal.
    """
    ready = 0
    ready_since = _NEVER  # no transition time sorts before every known one
    if ready_condition is not None and ready_condition.get("status") == "True":
        ready = 1
        since = timestamp(ready_condition.get("lastTransitionTime"))
        if since is not None:
            ready_since = -since
    rank = _PHASE_RANK.get(phase if type(phase) is str else str(phase), 0)
    return (6 if node_name else 0) + 2 * rank + ready, ready_since


# order_key_rank: each (bound, phase, ready) group spans 1e12; times fit in (-2.6e11, 6.3e11)
# (datetime's years 1-9999), an unknown time is placed below them all.
_RANK_SPAN = 1e12
RANK_UNKNOWN_TIME = -5e11
# The groups of a Running pod whose Ready condition is True, bound to a node or not, scaled: the
# planner's predicate pass adds the negated Ready time itself (most candidates are such pods).
RUNNING_READY_RANK_BOUND = (6.0 + 2 * _PHASE_RANK["Running"] + 1) * _RANK_SPAN
RUNNING_READY_RANK = (2 * _PHASE_RANK["Running"] + 1) * _RANK_SPAN


def order_key_rank(node_name: Any, phase: Any, ready_condition: Mapping[str, Any] | None) -> float:
    """:func:`order_key_head` as one float, for a fast pre-sort: a lower rank always means an
    earlier :func:`default_order_key`; equal ranks (a real tie, or two times rounded together)
    say nothing, so the planner sorts pods with equal ranks by the full key."""
    rank = 6.0 if node_name else 0.0
    rank += 2 * _PHASE_RANK.get(phase if type(phase) is str else str(phase), 0)
    since = None
    if ready_condition is not None and ready_condition.get("status") == "True":
        rank += 1
        since = timestamp(ready_condition.get("lastTransitionTime"))
    return rank * _RANK_SPAN + (RANK_UNKNOWN_TIME if since is None else -since)


def order_key_tail(metadata: Mapping[str, Any], container_statuses: Iterable[Any]) -> tuple[Any, ...]:
    """The rest of :func:`default_order_key`: more restarts first, newer first (no creation time
    first of all), then namespace, pod name and uid (decision 11)."""
    restarts = 0
    for container_status in container_statuses:
        if type(container_status) is dict or isinstance(container_status, Mapping):
            count = container_status.get("restartCount")
            if type(count) is int and count > restarts:
                restarts = count
    created = timestamp(metadata.get("creationTimestamp"))
    namespace = metadata.get("namespace")
    name = metadata.get("name")
    uid = metadata.get("uid")
    return (
        -restarts,
        _NEVER if created is None else -created,
        namespace if type(namespace) is str else str(namespace or ""),
        name if type(name) is str else str(name or ""),
        uid if type(uid) is str else str(uid or ""),
    )


def _trailing_int(value: str) -> int:
    match = _TRAILING_DIGITS.search(value)
    if match is None:
        return 0
    number = int(match.group(1))
    return number if number <= _INT64_MAX else 0  # Go's ParseInt fails there; Kruise then uses 0


def priority_sort_key(strategy: PriorityStrategy) -> Callable[[Mapping[str, str]], Any]:
    """§1.6.2 sort key over a pod's labels (use with a stable sort; lower sorts first)."""
    if strategy.weight_priority:
        terms = [(term.weight, term.match_selector or _EVERYTHING) for term in strategy.weight_priority]

        def weight_key(labels: Mapping[str, str]) -> int:
            return -sum(weight for weight, selector in terms if selector.matches(labels))

        return weight_key
    keys = strategy.order_priority

    def order_key(labels: Mapping[str, str]) -> tuple[int, int]:
        for level, key in enumerate(keys):
            if key in labels:
                return level, -_trailing_int(labels[key])
        return len(keys), 0  # decision 12: none of the keys → after every keyed pod

    return order_key


def _round_half_away(value: float) -> int:
    return math.floor(value + 0.5)


def _group_shape(matching: int, other: int) -> tuple[int, int, int]:
    groups = min(matching, other)
    return groups, _round_half_away(matching / groups), _round_half_away(other / groups)


def _scatter_one(
    order: list[int], values: Sequence[str | None], value: str, total_matching: int, total: int
) -> list[int]:
    """Apply one term: ``values[i]`` is candidate i's value of the term's key."""
    matching = [i for i in order if values[i] == value]
    other = [i for i in order if values[i] != value]
    if len(matching) <= 1 or len(other) <= 1:
        return order
    total_other = total - total_matching
    last = matching.pop()  # kept aside for the very end
    total_matching -= 1
    if total_matching > 0 and total_other / total_matching >= len(other) / len(matching):
        groups, matching_size, other_size = _group_shape(len(matching), len(other))
        remainder = 0
    else:
        _, matching_size, other_size = _group_shape(max(total_matching, 1), max(total_other, 1))
        groups = min(len(matching) // matching_size, len(other) // other_size)
        remainder = len(other) - groups * other_size
    result = other[:remainder]
    m, u = 0, remainder
    for _ in range(groups):
        result += matching[m : m + matching_size]
        result += other[u : u + other_size]
        m += matching_size
        u += other_size
    result += matching[m:]
    result += other[u:]
    result.append(last)
    return result


def expand_scatter_terms(
    terms: Sequence[ScatterTerm], all_matched: Sequence[Mapping[str, str]]
) -> list[ScatterTerm]:
    """§1.6.3 step 1: each ``value: "*"`` term becomes one term per distinct value of its key
    among all matched pods, in pod-list order; duplicates are dropped, explicit terms stay put."""
    expanded: list[ScatterTerm] = []
    for term in terms:
        if term.value == "*":
            for labels in all_matched:
                if term.key in labels:
                    value_term = ScatterTerm(term.key, labels[term.key])
                    if value_term not in expanded:
                        expanded.append(value_term)
        elif term not in expanded:
            expanded.append(term)
    return expanded


def scatter_order(
    candidates: Sequence[Mapping[str, str]],
    all_matched: Sequence[Mapping[str, str]],
    terms: Sequence[ScatterTerm],
) -> list[int]:
    """§1.6.3 on label sets: the new order of ``candidates`` as indexes into it.

    ``all_matched`` are the labels of every matched pod (updated ones included) in pod-list
    order; it is used to expand ``value: "*"`` terms and for the TM/TU densities.
    """
    return scatter(candidates, all_matched, expand_scatter_terms(terms, all_matched))


def scatter(
    candidates: Sequence[Mapping[str, str]],
    all_matched: Sequence[Mapping[str, str]],
    expanded: list[ScatterTerm],
) -> list[int]:
    """§1.6.3 steps 2-3, with the terms already expanded."""
    keys = {term.key for term in expanded}
    candidate_values = {key: [labels.get(key) for labels in candidates] for key in keys}
    candidate_counts = {key: Counter(values) for key, values in candidate_values.items()}
    if len(expanded) > 1:
        # keep terms some candidate matches, most matched first (stable for equal counts)
        expanded = sorted(
            (term for term in expanded if candidate_counts[term.key][term.value] > 0),
            key=lambda term: -candidate_counts[term.key][term.value],
        )
    matched_counts = {key: Counter([labels.get(key) for labels in all_matched]) for key in keys}
    order = list(range(len(candidates)))
    total = len(all_matched)
    for term in expanded:
        order = _scatter_one(
            order, candidate_values[term.key], term.value, matched_counts[term.key][term.value], total
        )
    return order


def expand_scatter_terms_in_ref_order(
    terms: Sequence[ScatterTerm], pods: Iterable[tuple[PodRef, Mapping[str, str]]]
) -> list[ScatterTerm]:
    """:func:`expand_scatter_terms` over pods in canonical (PodRef) order, without sorting them
    all: each wildcard value is placed by the smallest PodRef that carries it (decision 11)."""
    wildcard_keys = {term.key for term in terms if term.value == "*"}
    first_seen: dict[tuple[str, str], PodRef] = {}
    for ref, labels in pods:
        for key in wildcard_keys:
            value = labels.get(key)
            if value is not None:
                seen = first_seen.get((key, value))
                if seen is None or ref < seen:
                    first_seen[key, value] = ref
    expanded: list[ScatterTerm] = []
    for term in terms:
        if term.value == "*":
            values = sorted((ref, value) for (key, value), ref in first_seen.items() if key == term.key)
            replacements = [ScatterTerm(term.key, value) for _, value in values]
        else:
            replacements = [term]
        for replacement in replacements:
            if replacement not in expanded:
                expanded.append(replacement)
    return expanded
