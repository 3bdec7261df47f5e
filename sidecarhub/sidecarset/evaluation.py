"""The planner's one-pass evaluation of pods: every update.md §1.2 predicate at once, fast.

:class:`PreparedFacts` readies a :class:`~sidecarhub.sidecarset.predicates.SidecarSetFacts` for
evaluating many pods: a flat path for well-formed matched pods, tuned for 10,000 pods a round, and
``predicates.evaluate_general`` (the reference it must equal) for any other pod.
:func:`evaluate_pod` and :func:`evaluate_pod_content` are the entry points for one pod. The
predicates themselves, their words (matched, updated, consistent, ...) and the result type
:class:`~sidecarhub.sidecarset.predicates.PodEvaluation` are in ``predicates.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from orjson import loads as _loads

from sidecarhub.sidecarset.annotations import ANNOTATION_HASH, ANNOTATION_INJECTED_LIST
from sidecarhub.sidecarset.model import SidecarSet
from sidecarhub.sidecarset.ordering import (
    RANK_UNKNOWN_TIME,
    RUNNING_READY_RANK,
    RUNNING_READY_RANK_BOUND,
    order_key_rank,
    timestamp,
)
from sidecarhub.sidecarset.predicates import (
    ANNOTATION_INPLACE_UPDATE_STATE,
    INACTIVE_PHASES,
    NOT_READ,
    NamespaceLabels,
    PodEvaluation,
    PodRef,
    SidecarSetFacts,
    Upgradability,
    consistent_with,
    digest_walk,
    entry_hash,
    evaluate_general,
    namespace_failure,
    needs_recreate_reason_from,
    pod_ref,
    read_inplace_record,
    record_consistent,
)
from sidecarhub.sidecarset.shapes import as_mapping, as_sequence, is_mapping

__all__ = [
    "BARE_EVALUATIONS",
    "PreparedFacts",
    "evaluate_pod",
    "evaluate_pod_content",
]

# NamedTuple's generated __new__ is Python code; tuple.__new__ builds the same object in C,
# which matters when 10,000 are built per round (the planner uses it too).
_new_tuple = tuple.__new__

# The deferred evaluation of a matched pod that is not updated, shared by every such pod of a
# round (``evaluate_deferred(..., bare=True)``): not ready, ready and consistent, ready and not
# consistent. ``ref`` is None and ``labels`` empty until ``PreparedFacts.classify`` fills them in.
_NO_LABELS: Mapping[str, str] = MappingProxyType({})
BARE_EVALUATIONS: tuple[PodEvaluation, ...] = tuple(
    _new_tuple(
        PodEvaluation,
        (None, True, None, False, ready, consistent, False, None, "", False, _NO_LABELS),
    )
    for ready, consistent in ((False, None), (True, True), (True, False))
)


def _record_consistent(
    annotations: Mapping[str, Any],
    sidecarset_name: str,
    containers: Sequence[Any],
    statuses: Sequence[Any],
    sidecar_names: frozenset[str],
) -> bool:
    """``record_consistent`` over ``read_inplace_record``, reading Kruise's shape of the record by
    subscript first (one call instead of three, for every updated ready pod of a round)."""
    raw = annotations.get(ANNOTATION_INPLACE_UPDATE_STATE)
    if raw is None:
        return True  # no record: every container counts as done
    try:
        last = _loads(raw)[sidecarset_name]["lastContainerStatuses"] if type(raw) is str else None
    except (ValueError, KeyError, TypeError):
        last = None
    if type(last) is not dict:  # any other shape: read_inplace_record says what it means
        last = read_inplace_record(annotations, sidecarset_name)
    return record_consistent(containers, statuses, sidecar_names, last)


def _ref_of(metadata: Mapping[str, Any]) -> PodRef:
    """``predicates.pod_ref`` of a pod whose metadata is a dict (tuple.__new__: see above)."""
    namespace = metadata.get("namespace")
    name = metadata.get("name")
    uid = metadata.get("uid")
    if type(namespace) is not str or type(name) is not str or type(uid) is not str:
        namespace, name, uid = str(namespace or ""), str(name or ""), str(uid or "")
    return _new_tuple(PodRef, (namespace, name, uid))


def evaluate_pod(
    sidecarset: SidecarSet | SidecarSetFacts,
    pod: Mapping[str, Any],
    *,
    namespace_labels: NamespaceLabels | None = None,
) -> PodEvaluation:
    """Evaluate every §1.2 predicate of ``pod`` at once (cheap parts first, parses only if needed).

    ``namespace_labels`` as for :func:`namespace_failure`. The result depends only on the
    SidecarSet facts and the pod's content, so it may be cached by pod uid and resourceVersion
    (``planning.PlanningCache``), the namespace check aside.
    """
    facts = SidecarSetFacts.of(sidecarset)
    if namespace_labels is not None:
        failure = namespace_failure(facts, pod_ref(pod).namespace, namespace_labels)
        if failure is not None:
            return PodEvaluation(
                pod_ref(pod), False, failure, False, False, None, False, None, failure, False
            )
    return evaluate_pod_content(facts, pod)


def evaluate_pod_content(facts: SidecarSetFacts, pod: Mapping[str, Any]) -> PodEvaluation:
    """:func:`evaluate_pod` without the namespace check."""
    return PreparedFacts.of(facts).evaluate(pod)


class PreparedFacts:
    """A :class:`SidecarSetFacts` readied for evaluating many pods (the planner builds one a round).

    :meth:`evaluate` equals :func:`evaluate_pod_content` (``evaluate_general``, the reference).
    A matched, well-formed pod (plain dicts and lists, as JSON decodes) of a SidecarSet without
    HotUpgrade containers takes a flat path that reads each field once and parses annotations
    only when their text could change the answer; any other pod goes the general way. The
    planner calls the halves: :meth:`evaluate_deferred` (all the status needs) for every pod,
    :meth:`classify` (parses the hash-without-image) only for pods its budget walk reaches.
    """

    __slots__ = ("_fast", "_match_expressions", "_match_labels", "_plain_name", "_sidecar_count", "facts")

    _last: PreparedFacts | None = None  # one-entry memo for evaluate_pod_content

    def __init__(self, facts: SidecarSetFacts) -> None:
        self.facts = facts
        selector = facts.selector
        self._fast = selector is not None and not facts.hot_containers and bool(facts.sidecar_names)
        self._match_labels = tuple(selector.match_labels.items()) if selector is not None else ()
        self._match_expressions = selector is not None and bool(selector.match_expressions)
        self._sidecar_count = len(facts.sidecar_names)
        self._plain_name = "," not in facts.name  # then "name" alone is an injected-list holding it

    @classmethod
    def of(cls, facts: SidecarSetFacts) -> PreparedFacts:
        last = cls._last  # read once: another thread may replace it meanwhile
        if last is None or last.facts is not facts:
            last = cls._last = cls(facts)
        return last

    def evaluate(self, pod: Mapping[str, Any]) -> PodEvaluation:
        """All §1.2 predicates of one pod (namespace aside), as :func:`evaluate_pod_content`."""
        evaluation: PodEvaluation = self.evaluate_deferred(pod)[0]  # type: ignore[assignment]
        if evaluation[1] and not evaluation[3] and evaluation[7] is None:  # matched, not updated
            return self.classify(pod, evaluation)
        return evaluation

    def evaluate_deferred(
        self, pod: Mapping[str, Any], brief: bool = False, bare: bool = False
    ) -> tuple[PodEvaluation | None, float | bool | None]:
        """:meth:`evaluate` but, for a matched pod that is not updated, possibly without its
        ``upgradability`` (``None``) and ``reason`` (empty) yet: :meth:`classify` adds them.
        With ``brief``, an updated pod may come back as ``(None, ready and consistent)``: all
        that the status and the budget need (evaluate it again for the rest). With ``bare``, a
        deferred evaluation may be a shared one (:data:`BARE_EVALUATIONS`) whose ``ref`` is
        ``None`` and whose ``labels`` are empty: :meth:`classify` adds them too. A round with
        neither a canary selector nor priorities reads a candidate's ref and labels only when
        its budget walk reaches it, so the other candidates never pay for them.

        The second item is the pod's ``ordering.order_key_rank`` (a pre-sort value consistent with
        its default order key) when the evaluation is deferred (a possible candidate), else ``None``.
        """
        facts = self.facts
        if not self._fast:
            return evaluate_general(facts, pod), None
        # Subscripts, not a type check per field: on a pod of another shape (a field missing, a
        # list where an object belongs...) a subscript or ``.get`` raises, and that pod goes the
        # general way. The few checks left are values that would not raise but read otherwise.
        try:
            metadata = pod["metadata"]
            annotations = metadata["annotations"]
            labels = metadata["labels"]
            spec = pod["spec"]
            containers = spec["containers"]
            status = pod["status"]
            phase = status["phase"]
            statuses = status.get("containerStatuses")
            if statuses is None:
                statuses = ()
            elif type(statuses) is not list:  # a string has a length too
                return evaluate_general(facts, pod), None
            if type(labels) is not dict or phase in INACTIVE_PHASES or metadata.get("deletionTimestamp"):
                return evaluate_general(facts, pod), None
            for key, value in self._match_labels:
                if labels.get(key) != value:
                    return evaluate_general(facts, pod), None
            if self._match_expressions and not facts.selector.matches(labels):  # type: ignore[union-attr]
                return evaluate_general(facts, pod), None
            name = facts.name
            injected = annotations.get(ANNOTATION_INJECTED_LIST)
            if (injected != name or not self._plain_name) and (
                type(injected) is not str or name not in injected.split(",")
            ):
                return evaluate_general(facts, pod), None
            sidecar_names = facts.sidecar_names
            present = 0
            walk_digests = False  # a sidecar image may be a digest: consistent needs digest_walk
            for container in containers:
                if container["name"] in sidecar_names:
                    present += 1
                    image = container["image"]
                    if type(image) is not str or "@" in image:
                        walk_digests = True
            ready_condition = None
            for condition in status["conditions"]:
                if condition["type"] == "Ready":
                    ready_condition = condition
                    break
        except (KeyError, TypeError, AttributeError):
            return evaluate_general(facts, pod), None
        if present < self._sidecar_count or (
            self._sidecar_count > 1 and not sidecar_names <= {c.get("name") for c in containers}
        ):
            return evaluate_general(facts, pod), None

        # matched: updated, ready, consistent (only when ready or updated), as evaluate_general
        revision = facts.revision_hash
        raw = annotations.get(ANNOTATION_HASH)
        if type(raw) is str and revision not in raw and "\\" not in raw:
            updated = False  # no entry can hold the hash (see entry_hash)
        elif type(raw) is str:
            try:  # the entry of Kruise's current format; entry_hash reads any other shape
                updated = _loads(raw)[name]["hash"] == revision
            except (ValueError, KeyError, TypeError):
                updated = entry_hash(raw, name, revision) == revision
        else:
            updated = False  # not a string: no entry (entry_hash)
        ready = phase == "Running" and ready_condition is not None and ready_condition.get("status") == "True"
        if brief and updated and not ready:
            return None, False  # not available whatever its consistency
        consistent: bool | None = None
        if ready or updated:
            if len(containers) != len(statuses):
                consistent = False
            else:
                # Without a digest, the first sidecar in spec order stops the walk at once (None).
                consistent = digest_walk(containers, statuses, sidecar_names) if walk_digests else None
                if consistent is None:  # no record (most pods): every container counts as done
                    consistent = annotations.get(
                        ANNOTATION_INPLACE_UPDATE_STATE
                    ) is None or _record_consistent(annotations, name, containers, statuses, sidecar_names)
        if brief and updated:
            return None, bool(ready and consistent)
        order_key: float | None = None
        if not updated:
            if ready:  # Running and Ready: order_key_rank's group is 11 (bound) or 5, inlined
                since = timestamp(ready_condition.get("lastTransitionTime"))  # type: ignore[union-attr]
                order_key = (RUNNING_READY_RANK_BOUND if spec.get("nodeName") else RUNNING_READY_RANK) + (
                    RANK_UNKNOWN_TIME if since is None else -since
                )
            else:
                order_key = order_key_rank(spec.get("nodeName"), phase, ready_condition)
            if bare:
                return (BARE_EVALUATIONS[1 if consistent else 2] if ready else BARE_EVALUATIONS[0]), order_key
        ref = _ref_of(metadata)
        if updated:
            if ready and consistent:
                unavailable, reason = False, "updated, running and ready"
            elif not consistent:
                unavailable, reason = True, "updated; the new sidecar image is not running yet"
            else:
                unavailable, reason = True, "updated; not ready"
        else:
            unavailable, reason = False, ""
        # tuple.__new__: NamedTuple's own __new__ is Python code, too slow at 10,000 pods a round.
        evaluation = _new_tuple(
            PodEvaluation,
            (ref, True, None, updated, ready, consistent, unavailable, None, reason, False, labels),
        )
        return evaluation, order_key

    def classify(self, pod: Mapping[str, Any], evaluation: PodEvaluation) -> PodEvaluation:
        """Complete a deferred evaluation (a matched pod, not updated): needs recreate, in flight
        or upgradable, as update.md §1.2 upgradable(P) says. Others are returned unchanged."""
        if evaluation[7] is not None or not evaluation[1] or evaluation[3]:
            return evaluation
        facts = self.facts
        metadata = as_mapping(pod.get("metadata"))
        ref, labels = evaluation[0], evaluation[10]
        if ref is None:  # bare: the pod took the flat path (its labels are a dict)
            ref, labels = _ref_of(metadata), metadata["labels"]
        annotations = as_mapping(metadata.get("annotations"))
        spec = as_mapping(pod.get("spec"))
        reason = needs_recreate_reason_from(facts, annotations, spec)
        if reason is not None:
            upgradability = Upgradability.NEEDS_RECREATE
        else:
            upgradability, reason = Upgradability.UPGRADABLE, "only sidecar images differ"
        # consistent(P, {x}) is consistent(P, all) for one sidecar: then a consistent pod (most
        # ready candidates) cannot be in flight, and its container statuses need not be read.
        if upgradability is Upgradability.UPGRADABLE and (self._sidecar_count > 1 or not evaluation[5]):
            containers = as_sequence(spec.get("containers"))
            statuses = as_sequence(as_mapping(pod.get("status")).get("containerStatuses"))
            sidecar_names = facts.sidecar_names
            record: Any = NOT_READ
            for container_status in statuses:
                if (
                    not is_mapping(container_status)
                    or container_status.get("ready") is not True
                    or container_status.get("name") not in sidecar_names
                ):
                    continue
                container_name = str(container_status["name"])
                if self._sidecar_count == 1 and evaluation[5] is not None:
                    own = evaluation[5]  # consistent(P, {x}) is consistent(P, all) for one sidecar
                else:
                    own, record = consistent_with(
                        containers, statuses, (container_name,), annotations, facts.name, record
                    )
                if not own:
                    upgradability = Upgradability.IN_FLIGHT
                    reason = f"container {container_name} is ready but still rolling an earlier update"
                    break
        return _new_tuple(
            PodEvaluation, (ref, *evaluation[1:7], upgradability, reason, evaluation[9], labels)
        )
