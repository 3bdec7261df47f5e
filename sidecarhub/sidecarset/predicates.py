"""What the update path knows about one pod: update.md §1.2, over plain pod dicts.

Pods are the JSON objects the apiserver returns (``metadata``/``spec``/``status``, camelCase),
never client model objects. Every predicate here is a pure function of one SidecarSet and one
pod. Words as update.md §1.2 defines them:

- **matched**: active, selected (namespace and labels), injected by this SidecarSet (its name in
  the injected-list annotation), and carrying all of its containers (both twins and a working
  entry for a HotUpgrade container);
- **updated**: the pod's hash entry for this SidecarSet equals the SidecarSet's revision hash;
- **consistent**: the kubelet runs what the spec asks for (digest images compared with the
  status imageID; tag images through the in-place update record, update.md §2.4);
- **ready**: Running, ``Ready`` condition True, not terminating, and for every HotUpgrade
  container the idle twin is on the empty image (§5.5);
- **unavailable-updated**: updated and (not consistent or not ready) — the only unavailability
  that ``maxUnavailable`` counts (decision 11 keeps Kruise's rule);
- **needs recreate** (Kruise: "not upgradable"; decision 15): the without-image hash differs, or a
  native-sidecar init container's image differs from the SidecarSet's;
- **in flight**: a ready sidecar container is not yet consistent (an earlier in-place update is
  still rolling); Kruise skips such a pod for the round.

This module holds the predicates and :class:`PodEvaluation` (every predicate of one pod at once)
with ``evaluate_general``, the reference evaluation. The planner's one-pass fast evaluation
(``PreparedFacts``, ``evaluate_pod``) is in ``evaluation.py``, which builds on this module and
falls back to the reference. The planner (``planning.py``) evaluates each pod once with a
precomputed :class:`SidecarSetFacts`; the single-purpose functions below are for callers that
ask about one pod (the API's pod detail, the rollout worker's observation of a patched pod).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from sidecarhub.sidecarset.annotations import (
    ANNOTATION_HASH,
    ANNOTATION_HASH_WITHOUT_IMAGE,
    ANNOTATION_INJECTED_LIST,
    ANNOTATION_WORKING_HOT_UPGRADE_CONTAINER,
    PREFIX,
    load_json_object,
)
from sidecarhub.sidecarset.hashing import hash_without_images, revision_hash
from sidecarhub.sidecarset.model import NAMESPACE_NAME_LABEL, LabelSelector, SidecarSet
from sidecarhub.sidecarset.shapes import as_mapping, as_sequence, is_mapping

__all__ = [
    "ANNOTATION_INPLACE_UPDATE_STATE",
    "INACTIVE_PHASES",
    "NOT_READ",
    "NamespaceLabels",
    "PodEvaluation",
    "PodRef",
    "SidecarSetFacts",
    "Upgradability",
    "consistent_with",
    "digest_walk",
    "entry_hash",
    "evaluate_general",
    "hot_upgrade_reset_due",
    "is_consistent",
    "is_in_flight",
    "is_matched",
    "is_ready",
    "is_unavailable_updated",
    "is_updated",
    "match_failure",
    "namespace_failure",
    "needs_recreate_reason",
    "needs_recreate_reason_from",
    "pod_ref",
    "read_inplace_record",
    "record_consistent",
]

# JSON object: SidecarSet name -> {"revision", "updateTimestamp",
#   "lastContainerStatuses": {<container>: {"imageID": <status imageID before the patch>}}}
# Kruise's ``kruise.io/sidecarset-inplace-update-state`` under the hub's prefix (decision 4). The
# rollout worker writes it with every in-place patch; without it, completion of a tag-image update
# cannot be told from the pod (update.md §2.4) and such pods count as consistent at once.
ANNOTATION_INPLACE_UPDATE_STATE = f"{PREFIX}/sidecarset-inplace-update-state"

# namespace name -> that namespace's labels
NamespaceLabels = Mapping[str, Mapping[str, str]]

_EMPTY: Mapping[str, Any] = {}
# The in-place record of a pod before it is read (``read_inplace_record`` may return None).
NOT_READ = object()
# Phases of a pod that has finished running: such a pod is never matched.
INACTIVE_PHASES = frozenset({"Succeeded", "Failed"})


class PodRef(NamedTuple):
    """Identity of a pod: a pod recreated under the same name has another ``uid``."""

    namespace: str
    name: str
    uid: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class Upgradability(StrEnum):
    """How a matched, not-updated pod stands towards an in-place update (update.md §1.2, §1.5)."""

    UPGRADABLE = "upgradable"  # a candidate: only images differ and nothing is still rolling
    NEEDS_RECREATE = "needs_recreate"  # Kruise "not upgradable" (decision 15): never patched in place
    IN_FLIGHT = "in_flight"  # an earlier in-place update is still rolling: skipped this round


@dataclass(frozen=True)
class HotContainer:
    """A HotUpgrade sidecar ``x``: its twins ``x-1``/``x-2`` and the image the idle twin runs."""

    name: str
    first: str
    second: str
    empty_image: str


_last_facts: tuple[SidecarSet, SidecarSetFacts] | None = None


@dataclass(frozen=True)
class SidecarSetFacts:
    """What the predicates need from a SidecarSet, computed once (hashes are not cheap).

    Build with :meth:`of`. ``sidecar_names`` are the pod container names the SidecarSet owns
    (both twins for a HotUpgrade container; init containers never, as in Kruise).
    """

    name: str
    revision_hash: str
    hash_without_images: str
    selector: LabelSelector | None
    namespace_selector: LabelSelector | None
    required_containers: tuple[str, ...]
    sidecar_names: frozenset[str]
    hot_containers: tuple[HotContainer, ...]
    native_init_images: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, sidecarset: SidecarSet | SidecarSetFacts) -> SidecarSetFacts:
        if isinstance(sidecarset, SidecarSetFacts):
            return sidecarset
        # One-entry memo by identity (a SidecarSet is frozen): the engine evaluates pods one by
        # one against the same SidecarSet, and its hashes cost far more than an evaluation.
        global _last_facts
        last = _last_facts  # read once: another thread may replace it meanwhile
        if last is not None and last[0] is sidecarset:
            return last[1]
        facts = cls._compute(sidecarset)
        _last_facts = (sidecarset, facts)
        return facts

    @classmethod
    def _compute(cls, sidecarset: SidecarSet) -> SidecarSetFacts:
        names: list[str] = []
        hot: list[HotContainer] = []
        for container in sidecarset.containers:
            twins = container.hot_upgrade_names
            if twins is None:
                names.append(container.name)
            else:
                names.extend(twins)
                hot.append(
                    HotContainer(container.name, twins[0], twins[1], container.hot_upgrade_empty_image)
                )
        return cls(
            name=sidecarset.name,
            revision_hash=revision_hash(sidecarset),
            hash_without_images=hash_without_images(sidecarset),
            selector=sidecarset.selector,
            namespace_selector=sidecarset.namespace_selector,
            required_containers=tuple(names),
            sidecar_names=frozenset(names),
            hot_containers=tuple(hot),
            native_init_images=tuple(
                (container.name, container.image)
                for container in sidecarset.init_containers
                if container.is_native_sidecar
            ),
        )


# --- reading pods ---------------------------------------------------------------------------


# ``type(...) is dict`` first: pods decoded from JSON are plain dicts and lists, and an ABC
# isinstance check costs more than everything else per pod at 10,000 pods.


def pod_ref(pod: Mapping[str, Any]) -> PodRef:
    metadata = as_mapping(pod.get("metadata"))
    return PodRef(
        str(metadata.get("namespace") or ""), str(metadata.get("name") or ""), str(metadata.get("uid") or "")
    )


def entry_hash(raw: Any, sidecarset_name: str, expected: str) -> str | None:
    """The ``hash`` recorded for the SidecarSet in a hash annotation (either of Kruise's formats).

    Shortcut: a JSON text without backslashes holds each string value verbatim, so when the
    expected hash is not a substring, no entry can equal it and parsing is skipped. Compared
    with ``expected``, the answer is the same as after a full parse (``None``: no usable entry).
    """
    if type(raw) is not str and not isinstance(raw, str):
        return None
    if expected not in raw and "\\" not in raw:
        return None
    parsed = load_json_object(raw)
    if parsed is None:
        return None
    entry = parsed.get(sidecarset_name)
    if type(entry) is dict:  # JSON decoded: plain types (an ABC check costs per updated pod)
        value = entry.get("hash")
        return value if type(value) is str else ""
    if type(entry) is str:  # the legacy format: name -> hash
        return entry
    return None


def _working_map(annotations: Mapping[str, Any]) -> dict[str, Any]:
    return load_json_object(annotations.get(ANNOTATION_WORKING_HOT_UPGRADE_CONTAINER)) or {}


def _idle_twin(hot: HotContainer, working: Mapping[str, Any]) -> str:
    # Kruise: the working twin is x-1 only when the annotation says exactly x-1; otherwise x-2.
    return hot.second if working.get(hot.name) == hot.first else hot.first


def _working_twin(hot: HotContainer, working: Mapping[str, Any]) -> str:
    return hot.first if working.get(hot.name) == hot.first else hot.second


def _twin_version(annotations: Mapping[str, Any], twin: str) -> int:
    """``version.sidecarset.sidecarhub.io/<twin>`` as a number (0 when absent or not a number)."""
    value = annotations.get(f"version.sidecarset.{PREFIX}/{twin}")
    return int(value) if isinstance(value, str) and value.isdigit() else 0


def _split_reference(reference: str) -> tuple[str, str]:
    """(repository, digest) of an image or imageID, with any ``scheme://`` prefix removed."""
    if "://" in reference:
        reference = reference.split("://", 1)[1]
    repository, _, digest = reference.partition("@")
    return repository, digest


def _is_digest_image(image: str) -> bool:
    digest = image.partition("@")[2]
    return ":" in digest


def _ready_condition(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for condition in as_sequence(status.get("conditions")):
        if is_mapping(condition) and condition.get("type") == "Ready":
            return condition
    return None


def _is_running_and_ready(metadata: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    if status.get("phase") != "Running" or metadata.get("deletionTimestamp"):
        return False
    condition = _ready_condition(status)
    return condition is not None and condition.get("status") == "True"


def _status_named(statuses: Sequence[Any], name: str) -> Mapping[str, Any] | None:
    for status in statuses:
        if is_mapping(status) and status.get("name") == name:
            return status
    return None


def _spec_image(containers: Sequence[Any], name: str) -> str | None:
    for container in containers:
        if is_mapping(container) and container.get("name") == name:
            return str(container.get("image") or "")
    return None


def read_inplace_record(annotations: Mapping[str, Any], sidecarset_name: str) -> Mapping[str, Any] | None:
    """Last recorded imageIDs per container for the SidecarSet; ``None`` when unparsable.

    A missing annotation or a missing entry is an empty record (everything done), as in Kruise.
    """
    raw = annotations.get(ANNOTATION_INPLACE_UPDATE_STATE)
    if raw is None:
        return _EMPTY
    parsed = load_json_object(raw)
    if parsed is None:
        return None
    entry = parsed.get(sidecarset_name)
    if entry is None:
        return _EMPTY
    if type(entry) is not dict:  # JSON decoded: a mapping is a dict
        return None
    last = entry.get("lastContainerStatuses")
    if last is None:
        return _EMPTY
    return last if type(last) is dict else None


def digest_walk(containers: Sequence[Any], statuses: Sequence[Any], selected: Collection[str]) -> bool | None:
    """consistent(P, C) steps 2-3 (§1.2): the verdict while images are digests, ``None`` at the
    first image of ``selected`` that is not (the in-place record then decides)."""
    for container in containers:
        if not is_mapping(container):
            continue
        name = container.get("name")
        if name not in selected:
            continue
        image = str(container.get("image") or "")
        if "@" not in image or not _is_digest_image(image):
            return None
        status = _status_named(statuses, str(name))
        if status is None:
            return False
        if _split_reference(image) != _split_reference(str(status.get("imageID") or "")):
            return False
    return True


def record_consistent(
    containers: Sequence[Any],
    statuses: Sequence[Any],
    selected: Collection[str],
    record: Mapping[str, Any] | None,
) -> bool:
    """consistent(P, C) step 4 (§1.2, §2.4): no container of ``selected`` is not yet done."""
    if record is None:
        return False
    if not record:
        return True
    for status in statuses:
        if type(status) is not dict and not is_mapping(status):
            continue
        name = status.get("name")
        if name not in selected or name not in record:
            continue
        entry = record[name]
        before = entry.get("imageID") if type(entry) is dict else as_mapping(entry).get("imageID")
        if before == status.get("imageID") and _spec_image(containers, str(name)) != status.get("image"):
            return False
    return True


def needs_recreate_reason_from(
    facts: SidecarSetFacts, annotations: Mapping[str, Any], spec: Mapping[str, Any]
) -> str | None:
    """Why an in-place update is impossible (decision 15), or ``None`` when only images differ."""
    recorded = entry_hash(
        annotations.get(ANNOTATION_HASH_WITHOUT_IMAGE), facts.name, facts.hash_without_images
    )
    if recorded != facts.hash_without_images:
        return "a field other than the image changed (hash-without-image differs)"
    if facts.native_init_images:
        init_images = {
            c.get("name"): str(c.get("image") or "")
            for c in as_sequence(spec.get("initContainers"))
            if is_mapping(c)
        }
        for name, image in facts.native_init_images:
            if init_images.get(name) != image:
                return f"native sidecar init container {name} changed (never restarted in place)"
    return None


class _Pod:
    """One pod's fields, read once; parsed annotations are cached on first use."""

    __slots__ = (
        "_consistent_all",
        "_inplace",
        "_working",
        "annotations",
        "containers",
        "facts",
        "metadata",
        "spec",
        "status",
        "statuses",
    )

    def __init__(self, facts: SidecarSetFacts, pod: Mapping[str, Any]) -> None:
        self.facts = facts
        self.metadata = as_mapping(pod.get("metadata"))
        self.annotations = as_mapping(self.metadata.get("annotations"))
        self.spec = as_mapping(pod.get("spec"))
        self.status = as_mapping(pod.get("status"))
        self.containers = as_sequence(self.spec.get("containers"))
        self.statuses = as_sequence(self.status.get("containerStatuses"))
        self._working: dict[str, Any] | None = None
        self._inplace: Any = NOT_READ
        self._consistent_all: bool | None = None

    @property
    def working(self) -> dict[str, Any]:
        if self._working is None:
            self._working = _working_map(self.annotations)
        return self._working

    # matched ---------------------------------------------------------------------------

    def match_failure(self) -> str | None:
        """Why the pod is not matched, namespace aside (see :func:`namespace_failure`)."""
        facts = self.facts
        if self.status.get("phase") in INACTIVE_PHASES:
            return f"pod phase is {self.status.get('phase')}"
        if self.metadata.get("deletionTimestamp"):
            return "pod is terminating"
        labels = as_mapping(self.metadata.get("labels"))
        if facts.selector is None or not facts.selector.matches(labels):
            return "labels do not match spec.selector"
        injected = self.annotations.get(ANNOTATION_INJECTED_LIST)
        if not isinstance(injected, str) or facts.name not in injected.split(","):
            return "not injected by this SidecarSet (never injected retroactively)"
        present = {c.get("name") for c in self.containers if is_mapping(c)}
        for name in facts.required_containers:
            if name not in present:
                return f"sidecar container {name} is missing"
        for hot in facts.hot_containers:
            if hot.name not in self.working:
                return f"no working-container entry for hot-upgrade sidecar {hot.name}"
        return None

    # updated / needs recreate ------------------------------------------------------------

    def is_updated(self) -> bool:
        facts = self.facts
        return (
            entry_hash(self.annotations.get(ANNOTATION_HASH), facts.name, facts.revision_hash)
            == facts.revision_hash
        )

    def needs_recreate_reason(self) -> str | None:
        return needs_recreate_reason_from(self.facts, self.annotations, self.spec)

    # consistent / ready ------------------------------------------------------------------

    def is_consistent(self, names: Collection[str] | None = None) -> bool:
        """update.md §1.2 consistent(P, C); ``names`` empty or ``None`` means all sidecar names."""
        if not names or (
            len(names) == len(self.facts.sidecar_names) and set(names) == self.facts.sidecar_names
        ):
            if self._consistent_all is None:
                self._consistent_all = self._consistent(self.facts.sidecar_names)
            return self._consistent_all
        return self._consistent(names)

    def _consistent(self, selected: Collection[str]) -> bool:
        consistent, self._inplace = consistent_with(
            self.containers, self.statuses, selected, self.annotations, self.facts.name, self._inplace
        )
        return consistent

    def is_ready(self) -> bool:
        if not _is_running_and_ready(self.metadata, self.status):
            return False
        for hot in self.facts.hot_containers:
            if _spec_image(self.containers, _idle_twin(hot, self.working)) != hot.empty_image:
                return False
        return True

    def in_flight_container(self) -> str | None:
        """A sidecar container that is ready but not consistent on its own, if any."""
        sidecars = self.facts.sidecar_names
        for status in self.statuses:
            if (
                is_mapping(status)
                and status.get("ready") is True
                and status.get("name") in sidecars
                and not self.is_consistent((str(status["name"]),))
            ):
                return str(status["name"])
        return None

    def hot_upgrade_reset_due(self) -> bool:
        """update.md §5.4: the new twin runs and is ready, the old one must go back to the empty image."""
        hot_containers = self.facts.hot_containers
        if not hot_containers:
            return False
        idle = {_idle_twin(hot, self.working) for hot in hot_containers}
        if all(
            _spec_image(self.containers, _idle_twin(hot, self.working)) == hot.empty_image
            for hot in hot_containers
        ):
            return False
        # The hub switches the working annotation only once the new twin is ready
        # (hot_upgrade.py), so an idle twin with a higher version than the working one is a new
        # twin still migrating (or failed): never reset it. Kruise's own writes never produce
        # this (its working twin always holds the higher version), so its cases are unchanged.
        if any(
            _twin_version(self.annotations, _idle_twin(hot, self.working))
            > _twin_version(self.annotations, _working_twin(hot, self.working))
            for hot in hot_containers
        ):
            return False
        if not self.is_consistent(self.facts.sidecar_names - idle):
            return False
        if _is_running_and_ready(self.metadata, self.status):
            return True
        return all(
            status.get("ready") is True
            for status in self.statuses
            if is_mapping(status) and status.get("name") not in idle
        )


# --- every predicate at once: the reference evaluation (the fast one is in evaluation.py) ----


class PodEvaluation(NamedTuple):
    """Everything §1.2 says about one pod for one SidecarSet. Fields after ``match_failure`` are
    only meaningful for matched pods, ``upgradability`` only for those not updated; ``reason``
    says in a few words why the pod stands where it does."""

    ref: PodRef
    matched: bool
    match_failure: str | None
    updated: bool
    ready: bool
    consistent: bool | None  # None: not needed (neither ready nor updated), so not computed
    unavailable_updated: bool
    upgradability: Upgradability | None
    reason: str
    hot_upgrade_reset_due: bool
    labels: Mapping[str, str] = _EMPTY  # the pod's labels (ordering and the canary selector read them)


def namespace_failure(
    sidecarset: SidecarSet | SidecarSetFacts, namespace: str, namespace_labels: NamespaceLabels | None
) -> str | None:
    """Why the namespace is not selected by ``namespaceSelector``, or ``None``.

    ``namespace_labels`` maps namespace names to their labels; ``kubernetes.io/metadata.name``
    is added as Kubernetes does. ``None`` means "not checked": the caller listed pods only from
    the selected namespaces, as Kruise does (update.md §1.4 step 2).
    """
    selector = SidecarSetFacts.of(sidecarset).namespace_selector
    if namespace_labels is None or selector is None:
        return None
    labels = {**as_mapping(namespace_labels.get(namespace)), NAMESPACE_NAME_LABEL: namespace}
    return None if selector.matches(labels) else "namespace does not match spec.namespaceSelector"


def consistent_with(
    containers: Sequence[Any],
    statuses: Sequence[Any],
    selected: Collection[str],
    annotations: Mapping[str, Any],
    sidecarset_name: str,
    record: Any,
) -> tuple[bool, Any]:
    """consistent(P, ``selected``) and the in-place record (read now if needed and ``NOT_READ``)."""
    if len(containers) != len(statuses):
        return False, record
    verdict = digest_walk(containers, statuses, selected)
    if verdict is not None:
        return verdict, record
    if record is NOT_READ:
        record = read_inplace_record(annotations, sidecarset_name)
    return record_consistent(containers, statuses, selected, record), record


MALFORMED_POD = "the pod is malformed (a field the hub reads has the wrong JSON type)"


def evaluate_general(facts: SidecarSetFacts, pod: Mapping[str, Any]) -> PodEvaluation:
    """``evaluation.evaluate_pod_content`` for any pod and SidecarSet: the reference the fast path follows.

    A pod whose fields have types no apiserver sends (a list as ``status.phase``, an object as a
    container name) is not matched (``MALFORMED_POD``): Kruise's typed decoding never lets such a
    pod reach its controller, and one odd pod must not fail the whole round."""
    view = _Pod(facts, pod)
    metadata = view.metadata
    ref = PodRef(
        str(metadata.get("namespace") or ""), str(metadata.get("name") or ""), str(metadata.get("uid") or "")
    )
    try:
        return _evaluate_matchable(view, ref)
    except TypeError:  # an unhashable value where a name or phase belongs
        return PodEvaluation(ref, False, MALFORMED_POD, False, False, None, False, None, MALFORMED_POD, False)


def _evaluate_matchable(view: _Pod, ref: PodRef) -> PodEvaluation:
    facts, metadata = view.facts, view.metadata
    failure = view.match_failure()
    if failure is not None:
        return PodEvaluation(ref, False, failure, False, False, None, False, None, failure, False)
    labels = as_mapping(metadata.get("labels"))
    updated = view.is_updated()
    ready = view.is_ready()
    # consistent is costly (it may parse the in-place record); status only needs it for ready pods,
    # the budget only for updated ready pods, so it is computed for those alone.
    consistent = view.is_consistent() if (ready or updated) else None
    unavailable = updated and not (ready and bool(consistent))
    reset_due = view.hot_upgrade_reset_due() if facts.hot_containers else False
    upgradability: Upgradability | None = None
    reason = ""
    if updated:
        if not unavailable:
            reason = "updated, running and ready"
        elif not consistent:
            reason = "updated; the new sidecar image is not running yet"
        else:
            reason = "updated; not ready"
    else:
        recreate = view.needs_recreate_reason()
        if recreate is not None:
            upgradability, reason = Upgradability.NEEDS_RECREATE, recreate
        else:
            container = view.in_flight_container()
            if container is not None:
                upgradability = Upgradability.IN_FLIGHT
                reason = f"container {container} is ready but still rolling an earlier update"
            else:
                upgradability, reason = Upgradability.UPGRADABLE, "only sidecar images differ"
    # tuple.__new__: NamedTuple's own __new__ is Python code, too slow at 10,000 pods a round.
    return tuple.__new__(
        PodEvaluation,
        (ref, True, None, updated, ready, consistent, unavailable, upgradability, reason, reset_due, labels),
    )


# --- single predicates ------------------------------------------------------------------------


def match_failure(
    sidecarset: SidecarSet | SidecarSetFacts,
    pod: Mapping[str, Any],
    *,
    namespace_labels: NamespaceLabels | None = None,
) -> str | None:
    """Why ``pod`` is not matched (§1.2), or ``None`` when it is."""
    facts = SidecarSetFacts.of(sidecarset)
    return (
        namespace_failure(facts, pod_ref(pod).namespace, namespace_labels) or _Pod(facts, pod).match_failure()
    )


def is_matched(
    sidecarset: SidecarSet | SidecarSetFacts,
    pod: Mapping[str, Any],
    *,
    namespace_labels: NamespaceLabels | None = None,
) -> bool:
    return match_failure(sidecarset, pod, namespace_labels=namespace_labels) is None


def is_updated(sidecarset: SidecarSet | SidecarSetFacts, pod: Mapping[str, Any]) -> bool:
    """The pod's hash entry for the SidecarSet equals its revision hash (images are not looked at)."""
    return _Pod(SidecarSetFacts.of(sidecarset), pod).is_updated()


def is_consistent(
    sidecarset: SidecarSet | SidecarSetFacts,
    pod: Mapping[str, Any],
    container_names: Collection[str] | None = None,
) -> bool:
    """§1.2 consistent(P, C) and §2.4: the kubelet runs the spec's images for these containers."""
    return _Pod(SidecarSetFacts.of(sidecarset), pod).is_consistent(container_names)


def is_ready(sidecarset: SidecarSet | SidecarSetFacts, pod: Mapping[str, Any]) -> bool:
    """Running, Ready, not terminating, and every hot sidecar's idle twin on the empty image (§5.5)."""
    return _Pod(SidecarSetFacts.of(sidecarset), pod).is_ready()


def is_unavailable_updated(sidecarset: SidecarSet | SidecarSetFacts, pod: Mapping[str, Any]) -> bool:
    """Updated and (not consistent or not ready): what maxUnavailable counts (§1.2, §1.7)."""
    view = _Pod(SidecarSetFacts.of(sidecarset), pod)
    return view.is_updated() and not (view.is_ready() and view.is_consistent())


def needs_recreate_reason(sidecarset: SidecarSet | SidecarSetFacts, pod: Mapping[str, Any]) -> str | None:
    """Why an in-place update is impossible (decision 15), or ``None`` when only images differ."""
    return _Pod(SidecarSetFacts.of(sidecarset), pod).needs_recreate_reason()


def is_in_flight(sidecarset: SidecarSet | SidecarSetFacts, pod: Mapping[str, Any]) -> bool:
    """A ready sidecar container is not consistent on its own: an earlier update is still rolling."""
    return _Pod(SidecarSetFacts.of(sidecarset), pod).in_flight_container() is not None


def hot_upgrade_reset_due(sidecarset: SidecarSet | SidecarSetFacts, pod: Mapping[str, Any]) -> bool:
    """§5.4: the pod's hot sidecars run the new twin, ready; the old twin must be reset to empty."""
    return _Pod(SidecarSetFacts.of(sidecarset), pod).hot_upgrade_reset_due()
