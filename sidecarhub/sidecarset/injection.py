"""Sidecar injection at pod creation: pod in, pod out (injection.md §7-§11; decisions 4-10).

:func:`inject` is the whole admission decision for one pod CREATE (decision 10: the caller never
calls it for UPDATE). It is pure and deterministic: the same pod, namespace labels, candidates,
``now`` and ``seed`` give the same output byte for byte, whatever the order of ``candidates``,
and the input pod is never mutated. Steps, in Kruise's order:

1. matching (``matching.py``): decision 6 exclusions, ``injectionStrategy.paused``, both
   selectors; the version to inject (latest, or the pinned revision of §7.4 — decision 7:
   a pinned revision that no longer exists falls back to the latest with a warning); the
   canary/base rule; SidecarSets are then applied in decision 5's order (namespace-scoped ones
   first, then cluster-wide ones, each group by name: ``matching.application_order``);
2. ``patchPodMetadata`` (Retain, Overwrite, MergePatchJson), before the sidecars are built so
   ``transferEnv`` can read patched annotations;
3. each sidecar (``sidecar_building.py``, ``resources_policy.py``): resourcesPolicy, shared
   volume mounts (decision 8: never the service-account token mount) and devices,
   transferEnv, ``IS_INJECTED``, hot-upgrade twins;
4. merge: init containers sorted by name, ``podInjectPolicy`` placement, a same-named pod
   container replaced in place with a warning (decision 9), volumes the sidecars mount (the
   pod's own volume wins), imagePullSecrets, and the hub's annotations (decision 4).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sidecarhub.sidecarset import json_text
from sidecarhub.sidecarset.annotations import (
    ANNOTATION_HASH,
    ANNOTATION_HASH_WITHOUT_IMAGE,
    ANNOTATION_INJECTED_LIST,
    ANNOTATION_WORKING_HOT_UPGRADE_CONTAINER,
    load_json_object,
)
from sidecarhub.sidecarset.hashing import hash_without_images, revision_hash
from sidecarhub.sidecarset.json_patch import patch_between
from sidecarhub.sidecarset.matching import (
    InjectionError,
    application_order,
    drop_canary_bases,
    excluded_reason,
    namespace_labels_for,
    pod_annotations,
    pod_labels,
    pod_selector_matches,
    selector_error,
)
from sidecarhub.sidecarset.model import NAMESPACE_NAME_LABEL, LabelSelector, SidecarSet
from sidecarhub.sidecarset.shapes import list_of_dicts
from sidecarhub.sidecarset.sidecar_building import (
    SERVICE_ACCOUNT_TOKEN_MOUNT_PATH,
    build_sidecars,
)

__all__ = [
    "SERVICE_ACCOUNT_TOKEN_MOUNT_PATH",
    "CandidateIndex",
    "InjectionCandidate",
    "InjectionError",
    "InjectionResult",
    "InjectionRevision",
    "inject",
]

_BEFORE_APP_CONTAINER = "BeforeAppContainer"


@dataclass(frozen=True)
class InjectionRevision:
    """One published revision of a SidecarSet, as injection needs it.

    ``name`` is what pods record as ``controllerRevision`` (may be empty, as in Kruise before the
    first reconcile); ``number`` orders revisions (customVersion pins take the highest).
    ``hash``/``hash_without_image`` default to the core's hashes of ``sidecarset``;
    ``custom_version`` defaults to ``sidecarset.custom_version``.
    """

    sidecarset: SidecarSet
    name: str = ""
    number: int = 0
    hash: str = ""
    hash_without_image: str = ""
    custom_version: str | None = None

    def __post_init__(self) -> None:
        # Frozen: fill the derived defaults once, so equal inputs stay equal objects.
        if not self.hash:
            object.__setattr__(self, "hash", revision_hash(self.sidecarset))
        if not self.hash_without_image:
            object.__setattr__(self, "hash_without_image", hash_without_images(self.sidecarset))
        if self.custom_version is None:
            object.__setattr__(self, "custom_version", self.sidecarset.custom_version)


@dataclass(frozen=True)
class InjectionCandidate:
    """An active SidecarSet: its latest revision, plus the retained history for revision pinning.

    Matching always uses the latest definition (selectors, strategies, canary annotations); a
    pinned revision only supplies what Kruise's ControllerRevision holds: containers, init
    containers, volumes, imagePullSecrets and patchPodMetadata, with its own hashes and name.
    ``history`` may include the latest revision too; it is searched together with ``latest``.
    """

    latest: InjectionRevision
    history: tuple[InjectionRevision, ...] = ()

    @property
    def name(self) -> str:
        return self.latest.sidecarset.name

    @classmethod
    def of(
        cls,
        sidecarset: SidecarSet,
        *,
        revision_name: str = "",
        revision_number: int = 0,
        history: Sequence[InjectionRevision] = (),
    ) -> InjectionCandidate:
        """Shorthand: the latest revision built from ``sidecarset`` with the core's hashes."""
        latest = InjectionRevision(sidecarset=sidecarset, name=revision_name, number=revision_number)
        return cls(latest=latest, history=tuple(history))


@dataclass(frozen=True)
class InjectionResult:
    """The outcome of :func:`inject`: the new pod, what was injected, and admission warnings.

    ``original`` is a private deep copy of the caller's pod (which is never mutated or shared),
    or, with ``inject(..., copy_pod=False)``, the pod handed over (a shallow copy of its top).
    ``pod`` shares every part injection left unchanged with ``original`` (copies are made only of
    what changes): treat both as read-only. ``excluded_reason`` is non-empty when decision 6 (or
    an inactive pod) ruled injection out.
    """

    original: dict[str, Any]
    pod: dict[str, Any]
    injected: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    excluded_reason: str = ""

    @property
    def changed(self) -> bool:
        return self.pod != self.original

    def json_patch(self) -> list[dict[str, Any]]:
        """RFC 6902 operations turning ``original`` into ``pod``, built from what injection changed
        (``json_patch.patch_between``: the parts both share are skipped without being compared)."""
        return patch_between(self.original, self.pod)


@dataclass(frozen=True)
class _Chosen:
    """The version of one SidecarSet injected into this pod."""

    sidecarset: SidecarSet
    hash: str
    hash_without_image: str
    revision_name: str


# --- version choice (§7.4, decision 7) -------------------------------------------------------


def _pinned_revision(candidate: InjectionCandidate) -> tuple[InjectionRevision | None, str]:
    """The revision ``injectionStrategy.revision`` names, and a description of the pin."""
    pin = candidate.latest.sidecarset.injection_strategy.revision
    assert pin is not None
    revisions = (candidate.latest, *candidate.history)
    if pin.revision_name is not None:
        # Unlike Kruise, only this SidecarSet's own revisions can be named (§15.6).
        found = next((item for item in revisions if item.name == pin.revision_name), None)
        return found, f"revisionName {pin.revision_name!r}"
    tagged = [item for item in revisions if item.custom_version == pin.custom_version]
    found = max(tagged, key=lambda item: item.number, default=None)
    return found, f"customVersion {pin.custom_version!r}"


def _draw(seed: str, sidecarset_name: str, pod: Mapping[str, Any]) -> float:
    """A uniform number in [0, 1), fixed by its inputs, replacing Kruise's random draw (§7.4.1)."""
    material = json.dumps([seed, sidecarset_name, pod], sort_keys=True, default=str)
    return int(hashlib.sha256(material.encode("utf-8")).hexdigest()[:16], 16) / 2**64


def _chosen_from(candidate: InjectionCandidate, revision: InjectionRevision) -> _Chosen:
    if revision is candidate.latest:
        return _Chosen(revision.sidecarset, revision.hash, revision.hash_without_image, revision.name)
    stored = revision.sidecarset
    # Kruise's revision data holds only these five fields; all else comes from the latest (§7.4.2).
    restored = dataclasses.replace(
        candidate.latest.sidecarset,
        containers=stored.containers,
        init_containers=stored.init_containers,
        volumes=stored.volumes,
        image_pull_secrets=stored.image_pull_secrets,
        patch_pod_metadata=stored.patch_pod_metadata,
    )
    return _Chosen(restored, revision.hash, revision.hash_without_image, revision.name)


def _choose_version(
    candidate: InjectionCandidate, pod: Mapping[str, Any], labels: Mapping[str, str], seed: str
) -> tuple[_Chosen, list[str]]:
    sidecarset = candidate.latest.sidecarset
    pin = sidecarset.injection_strategy.revision
    latest = _chosen_from(candidate, candidate.latest)
    if pin is None or (pin.revision_name is None and pin.custom_version is None):
        return latest, []
    pinned, described = _pinned_revision(candidate)
    if pinned is None:
        return latest, [
            f"SidecarSet {sidecarset.name}: the pinned revision ({described}) no longer exists; "
            f"injected the latest revision {candidate.latest.name or '(unnamed)'} instead"
        ]
    historical = _chosen_from(candidate, pinned)
    strategy = sidecarset.update_strategy
    if strategy.paused or pin.policy != "Partial":
        return historical, []
    if strategy.selector is not None:
        problem = selector_error(strategy.selector)
        if problem:
            raise InjectionError(f"SidecarSet {sidecarset.name}: updateStrategy.selector: {problem}")
        if not strategy.selector.matches(labels):
            return historical, []
    partition = strategy.partition
    if not isinstance(partition, str):
        return latest, []
    match = re.fullmatch(r"([0-9]+)%", partition)
    if match is None:
        raise InjectionError(
            f"SidecarSet {sidecarset.name}: updateStrategy.partition {partition!r} is not a percentage"
        )
    chose_pinned = _draw(seed, sidecarset.name, pod) <= int(match[1]) / 100
    return (historical if chose_pinned else latest), []


def _has_bad_operator(selector: LabelSelector) -> bool:
    return any(
        requirement.operator not in ("In", "NotIn", "Exists", "DoesNotExist")
        or (requirement.operator in ("In", "NotIn")) != bool(requirement.values)
        for requirement in selector.match_expressions
    )


class CandidateIndex:
    """The candidates of one definitions snapshot, in decision 5's order, indexed for matching.

    Build it once per snapshot (the admission cache does) and pass it to :func:`inject` instead of
    the sequence: matching then looks only at the candidates :meth:`reachable` names, so its cost
    follows the SidecarSets that may concern the pod, not every SidecarSet of the cluster.

    Each candidate is filed under one requirement its pod selector cannot match without (a
    ``matchLabels`` pair, the values of an ``In`` expression, the key of an ``Exists`` one),
    scoped by the namespace its ``namespaceSelector`` pins with ``kubernetes.io/metadata.name``
    (a v1alpha1 ``namespace``) when it pins one. Left out entirely: paused candidates, a
    ``namespaceSelector`` Kubernetes cannot parse, an absent or empty pod selector (none of these
    ever matches or refuses a pod). A selector with a bad operator refuses every pod of the
    namespaces it applies to (Kruise), so it is always reachable, as is a selector made only of
    ``NotIn`` / ``DoesNotExist`` expressions. What does not depend on the pod is computed at most
    once per candidate and kept here: the pod selector's validation and the latest version.

    Raises ``ValueError`` when two candidates share a name.
    """

    def __init__(self, candidates: Iterable[InjectionCandidate]) -> None:
        ordered = sorted(candidates, key=lambda item: application_order(item.latest.sidecarset))
        names = {candidate.name for candidate in ordered}
        if len(names) != len(ordered):
            raise ValueError("each SidecarSet may be a candidate only once")
        self.candidates: tuple[InjectionCandidate, ...] = tuple(ordered)
        self._always: list[int] = []
        # (namespace scope or None, label key, label value) and (scope, key) -> positions.
        self._by_label: dict[tuple[str | None, str, str], list[int]] = {}
        self._by_key: dict[tuple[str | None, str], list[int]] = {}
        # Positions whose pod selector has an operator Kubernetes does not know (filed ones only).
        self._bad_operator: set[int] = set()
        # Per position, computed at most once (candidates are immutable), so that a snapshot's
        # index pays them once and not per pod: the pod selector's parse error ("" when it parses,
        # ``selector_error`` ran per matching candidate per pod before, issue 17), and the version
        # injected when no pin applies.
        self._selector_problems: dict[int, str] = {}
        self._latest: dict[int, _Chosen] = {}
        for position, candidate in enumerate(self.candidates):
            self._file(position, candidate.latest.sidecarset)

    def __len__(self) -> int:
        return len(self.candidates)

    def _file(self, position: int, sidecarset: SidecarSet) -> None:
        namespace_selector = sidecarset.namespace_selector
        selector = sidecarset.selector
        if sidecarset.injection_strategy.paused or selector is None or selector.is_empty:
            return
        scope: str | None = None
        if namespace_selector is not None:
            if selector_error(namespace_selector) is not None:
                return  # matches no namespace (namespace_matches)
            scope = namespace_selector.match_labels.get(NAMESPACE_NAME_LABEL)
        if _has_bad_operator(selector):
            self._always.append(position)
            self._bad_operator.add(position)
        elif selector.match_labels:
            key, value = min(selector.match_labels.items())
            self._by_label.setdefault((scope, key, value), []).append(position)
        elif required := next((r for r in selector.match_expressions if r.operator == "In"), None):
            for value in dict.fromkeys(required.values):
                self._by_label.setdefault((scope, required.key, value), []).append(position)
        elif exists := next((r for r in selector.match_expressions if r.operator == "Exists"), None):
            self._by_key.setdefault((scope, exists.key), []).append(position)
        else:
            self._always.append(position)

    def reachable(
        self, labels: Mapping[str, str], namespace_labels: Mapping[str, str] | None
    ) -> list[InjectionCandidate]:
        """The candidates that may match or refuse a pod with ``labels`` in a namespace with
        ``namespace_labels`` (as ``namespace_labels_for`` gives them), in decision 5's order.
        Every other candidate would be skipped by ``_select`` without effect."""
        scopes: tuple[str | None, ...] = (None,)
        if namespace_labels is not None and NAMESPACE_NAME_LABEL in namespace_labels:
            scopes = (None, namespace_labels[NAMESPACE_NAME_LABEL])
        return [self.candidates[position] for position in self._reachable_positions(labels, scopes)]

    def _reachable_positions(self, labels: Mapping[str, str], scopes: tuple[str | None, ...]) -> list[int]:
        positions = set(self._always)
        by_label, by_key = self._by_label, self._by_key
        for key, value in labels.items():
            for scope in scopes:
                positions.update(by_label.get((scope, key, value), ()))
                positions.update(by_key.get((scope, key), ()))
        return sorted(positions)

    def _selector_problem(self, position: int) -> str:
        """``selector_error`` of the candidate's pod selector ("" when it parses), memoized."""
        problem = self._selector_problems.get(position)
        if problem is None:
            selector = self.candidates[position].latest.sidecarset.selector
            problem = (selector_error(selector) if selector is not None else None) or ""
            self._selector_problems[position] = problem
        return problem

    def _latest_version(self, position: int) -> _Chosen:
        """The candidate's latest revision as injected (immutable, so shared by every pod)."""
        chosen = self._latest.get(position)
        if chosen is None:
            candidate = self.candidates[position]
            chosen = self._latest[position] = _chosen_from(candidate, candidate.latest)
        return chosen


def _select(
    pod: Mapping[str, Any],
    namespace_labels: Mapping[str, str] | None,
    candidates: CandidateIndex,
    seed: str,
) -> tuple[list[_Chosen], list[str]]:
    """§7.2-§7.3 over candidates in decision 5's order: the versions to inject, and pinning warnings."""
    labels = pod_labels(pod)
    effective_namespace_labels = namespace_labels_for(pod, namespace_labels)
    scopes: tuple[str | None, ...] = (None,)
    if effective_namespace_labels is not None and NAMESPACE_NAME_LABEL in effective_namespace_labels:
        scopes = (None, effective_namespace_labels[NAMESPACE_NAME_LABEL])
    chosen: list[_Chosen] = []
    warnings: list[str] = []
    for position in candidates._reachable_positions(labels, scopes):
        candidate = candidates.candidates[position]
        sidecarset = candidate.latest.sidecarset
        # Reachable candidates are never paused and have no namespaceSelector Kubernetes cannot
        # parse (CandidateIndex leaves those out): ``namespace_matches`` without re-validating.
        namespace_selector = sidecarset.namespace_selector
        if namespace_selector is not None and (
            effective_namespace_labels is None or not namespace_selector.matches(effective_namespace_labels)
        ):
            continue
        matched = pod_selector_matches(sidecarset.selector, labels)
        # Full validation only where it can change the answer: a bad key or value never matches a
        # real pod, but a bad operator must refuse the pod even when it would not match (Kruise).
        if sidecarset.selector is not None and (matched or position in candidates._bad_operator):
            problem = candidates._selector_problem(position)
            if problem:
                raise InjectionError(f"SidecarSet {sidecarset.name}: selector: {problem}")
        if not matched:
            continue
        pin = sidecarset.injection_strategy.revision
        if pin is None or (pin.revision_name is None and pin.custom_version is None):
            chosen.append(candidates._latest_version(position))
            continue
        version, version_warnings = _choose_version(candidate, pod, labels, seed)
        chosen.append(version)
        warnings.extend(version_warnings)
    kept = {sidecarset.name for sidecarset in drop_canary_bases(item.sidecarset for item in chosen)}
    return [item for item in chosen if item.sidecarset.name in kept], warnings


# --- patchPodMetadata (§7.6) ------------------------------------------------------------------


def _json_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _json_merge_patch(merged.get(key), value)
    return merged


# Go's encoding/json (which writes Kruise's merge result) escapes these inside strings.
_GO_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _canonical_json(value: Any) -> str:
    """``json.Marshal``'s form: compact, keys sorted, UTF-8, with Go's HTML-safe escapes (those
    characters can only occur inside strings, so replacing them in the text is exact)."""
    text = json_text.dumps(value, ensure_ascii=False, sort_keys=True)
    for character, escaped in _GO_JSON_ESCAPES.items():
        text = text.replace(character, escaped)
    return text


def _patch_metadata(annotations: dict[str, str], chosen: Sequence[_Chosen]) -> None:
    for item in chosen:
        for patch in item.sidecarset.patch_pod_metadata:
            for key, value in patch.annotations.items():
                if patch.patch_policy == "Retain":
                    annotations.setdefault(key, value)
                elif patch.patch_policy == "Overwrite":
                    annotations[key] = value
                elif patch.patch_policy == "MergePatchJson":
                    existing = annotations.get(key, "")
                    if existing == "":
                        annotations[key] = value
                        continue
                    try:
                        current, update = json.loads(existing), json.loads(value)
                    except ValueError as error:
                        raise InjectionError(
                            f"SidecarSet {item.sidecarset.name}: patchPodMetadata MergePatchJson on "
                            f"annotation {key}: not valid JSON ({error})"
                        ) from error
                    # Always the merge result in canonical form, even when the patch changes
                    # nothing (Kruise re-serializes it: §7.6).
                    annotations[key] = _canonical_json(_json_merge_patch(current, update))
                # Any other policy is a no-op, as in Kruise (the hub's validation rejects it).


# --- merging into the pod (§7.9) --------------------------------------------------------------


def _merge_containers(
    pod_containers: list[dict[str, Any]],
    injected: Sequence[tuple[str, dict[str, Any], str]],
    what: str,
) -> tuple[list[dict[str, Any]], list[str]]:
    """``[Before…] + pod containers (same names replaced in place) + [After…]``; decision 9 warnings."""
    merged = list(pod_containers)
    positions: dict[str, int] = {}
    for position, container in enumerate(merged):
        positions.setdefault(str(container.get("name") or ""), position)
    before: list[dict[str, Any]] = []
    after: list[dict[str, Any]] = []
    warnings: list[str] = []
    for policy, container, sidecarset_name in injected:
        existing = positions.get(container["name"])
        if existing is not None:
            merged[existing] = container
            warnings.append(
                f"SidecarSet {sidecarset_name}: the pod's {what} {container['name']} was replaced by the "
                f"sidecar of the same name"
            )
        elif policy == _BEFORE_APP_CONTAINER:
            before.append(container)
        else:
            after.append(container)
    return before + merged + after, warnings


def _merge_secrets(pod_secrets: Any, chosen: Sequence[_Chosen]) -> list[dict[str, Any]]:
    """§7.9 step 4: the pod's secrets deduplicated by name (also when the SidecarSets add none),
    then the SidecarSets' new ones."""
    wanted = [name for item in chosen for name in item.sidecarset.image_pull_secrets]
    merged: list[dict[str, Any]] = []
    seen: set[str] = set()
    for secret in list_of_dicts(pod_secrets):
        name = str(secret.get("name") or "")
        if name not in seen:
            merged.append(secret)
            seen.add(name)
    for name in wanted:
        if name not in seen:
            merged.append({"name": name})
            seen.add(name)
    return merged


def _compact(value: Any) -> str:
    return json_text.dumps(value, ensure_ascii=False)


def _record(
    update_timestamp: Any, hash_value: str, name: str, sidecar_list: Any, revision: str = ""
) -> dict[str, Any]:
    """One hash-annotation record, fields in Kruise's order (SidecarSetUpgradeSpec)."""
    record = {
        "updateTimestamp": update_timestamp,
        "hash": hash_value,
        "sidecarSetName": name,
        "sidecarList": sidecar_list,
    }
    if revision:
        record["controllerRevision"] = revision
    return record


def _existing_records(annotations: Mapping[str, str], key: str) -> dict[str, dict[str, Any]]:
    """A pod's existing hash annotation (current or legacy ``name → hash`` form), or an error."""
    raw = annotations.get(key, "")
    if raw == "":
        return {}
    try:
        data = json.loads(raw)
    except ValueError as error:
        raise InjectionError(f"pod annotation {key} is not valid JSON") from error
    if not isinstance(data, dict):
        raise InjectionError(f"pod annotation {key} must be a JSON object")
    records: dict[str, dict[str, Any]] = {}
    for name, value in data.items():
        if isinstance(value, str):
            records[name] = _record(None, value, name, None)
        elif isinstance(value, dict):
            records[name] = _record(
                value.get("updateTimestamp"),
                str(value.get("hash") or ""),
                str(value.get("sidecarSetName") or ""),
                value.get("sidecarList"),
                str(value.get("controllerRevision") or ""),
            )
        else:
            raise InjectionError(f"pod annotation {key}: entry {name} is neither a record nor a hash")
    return records


def _working_containers(annotations: Mapping[str, str]) -> dict[str, str]:
    data = load_json_object(annotations.get(ANNOTATION_WORKING_HOT_UPGRADE_CONTAINER)) or {}
    return {str(key): str(value) for key, value in data.items()}  # unreadable: empty, as in Kruise


def _private_copy(value: Any) -> Any:
    """A deep copy of decoded JSON (several times faster than ``copy.deepcopy`` on a pod); any
    other type is deep-copied as ``copy.deepcopy`` does."""
    kind = type(value)
    if kind is dict:
        return {key: _private_copy(item) for key, item in value.items()}
    if kind is list:
        return [_private_copy(item) for item in value]
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    return copy.deepcopy(value)


def _timestamp(now: datetime) -> str:
    moment = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the entry point --------------------------------------------------------------------------


def inject(
    pod: Mapping[str, Any],
    namespace_labels: Mapping[str, str] | None,
    candidates: Sequence[InjectionCandidate] | CandidateIndex,
    *,
    now: datetime,
    seed: str = "",
    copy_pod: bool = True,
) -> InjectionResult:
    """Inject the matching SidecarSets into a pod being created; see the module docstring.

    Args:
        pod: the pod of the AdmissionReview ``request.object`` (never mutated). If it has no
            ``metadata.namespace``, the namespace's ``kubernetes.io/metadata.name`` label is used.
        namespace_labels: the labels of the pod's Namespace object; ``None`` when it could not
            be read (then SidecarSets with a ``namespaceSelector`` do not match, as in Kruise).
        candidates: the cluster's active SidecarSets with their revision history, any order; or
            a :class:`CandidateIndex` of them, built once and reused for many pods (the same
            answer, without re-sorting and scanning every candidate per pod).
        now: the injection time written into the hash records (naive values are taken as UTC).
        seed: feeds the deterministic draw that replaces Kruise's random choice for a ``Partial``
            pin with a percent partition; pass the admission request UID so pods differ.
        copy_pod: ``False`` hands the pod over instead of copying it: the admission handler,
            which decoded the pod itself and keeps no other reference, skips a deep copy per pod.
            The pod (a plain ``dict`` of decoded JSON) then becomes ``result.original`` as is:
            the caller must neither change it afterwards nor share it with code that does, and
            should pass only pods nested well within the recursion limit (the copy is also what
            refuses a pod nested too deeply; ``json_text.shallow_limit``). The default copies.

    Raises:
        InjectionError: when Kruise would refuse the pod (unparsable selector or partition,
            resourcesPolicy matching no container, invalid JSON in MergePatchJson or hash
            annotations), or the pod is not shaped like one (``metadata`` or ``spec`` not an
            object; nesting too deep to copy). A missing pinned revision is a warning instead
            (decision 7).
        ValueError: two candidates share a name.
    """
    try:
        original = _private_copy(dict(pod)) if copy_pod else dict(pod)
    except RecursionError:
        raise InjectionError("the pod is nested too deeply to be read") from None
    for part in ("metadata", "spec"):
        if not isinstance(original.get(part, {}), dict):
            raise InjectionError(f"the pod's {part} must be an object")
    index = candidates if isinstance(candidates, CandidateIndex) else CandidateIndex(candidates)
    reason = excluded_reason(original, namespace_labels)
    if reason:
        return InjectionResult(original=original, pod=original, excluded_reason=reason)
    chosen, warnings = _select(original, namespace_labels, index, seed)
    if not chosen:
        return InjectionResult(original=original, pod=original, warnings=tuple(warnings))

    # Copy on write: only the dicts changed below are copied; the rest is shared with ``original``
    # (the lists merged below are new lists; the sidecars are built fresh).
    result = dict(original)
    metadata = result["metadata"] = dict(original.get("metadata", {}))
    annotations = pod_annotations(result)
    _patch_metadata(annotations, chosen)
    if annotations or "annotations" in metadata:
        metadata["annotations"] = annotations

    hash_records = _existing_records(annotations, ANNOTATION_HASH)
    without_image_records = _existing_records(annotations, ANNOTATION_HASH_WITHOUT_IMAGE)
    working = _working_containers(annotations)
    injected_names = {name for name in annotations.get(ANNOTATION_INJECTED_LIST, "").split(",") if name}
    # resourcesPolicy never aggregates over the sidecars of the SidecarSets injected here (§11.1).
    excluded_names = frozenset[str]().union(*(item.sidecarset.sidecar_names for item in chosen))
    timestamp = _timestamp(now)
    all_init: list[tuple[str, dict[str, Any], str]] = []
    all_containers: list[tuple[str, dict[str, Any], str]] = []
    volume_candidates: list[dict[str, Any]] = []
    produced_annotations: dict[str, str] = {}
    for item in chosen:
        built, sidecar_list = build_sidecars(item.sidecarset, result, excluded_names)
        all_init.extend(built.init_containers)
        all_containers.extend(built.containers)
        volume_candidates.extend(built.volumes)
        produced_annotations.update(built.annotations)
        working.update(built.working_containers)
        name = item.sidecarset.name
        injected_names.add(name)
        hash_records[name] = _record(timestamp, item.hash, name, sidecar_list, item.revision_name)
        without_image_records[name] = _record(timestamp, item.hash_without_image, name, sidecar_list)
    if not all_init and not all_containers:
        # §7.8: nothing to inject; only the metadata patches remain.
        return InjectionResult(original=original, pod=result, warnings=tuple(warnings))

    spec = result["spec"] = dict(original.get("spec", {}))
    if all_init:
        # Init containers are sorted by name across SidecarSets (stable), as in Kruise.
        ordered_init = sorted(all_init, key=lambda entry: entry[1]["name"])
        spec["initContainers"], init_warnings = _merge_containers(
            list_of_dicts(spec.get("initContainers")), ordered_init, "init container"
        )
        warnings.extend(init_warnings)
    if all_containers:
        spec["containers"], container_warnings = _merge_containers(
            list_of_dicts(spec.get("containers")), all_containers, "container"
        )
        warnings.extend(container_warnings)
    volumes = list_of_dicts(spec.get("volumes"))
    volume_names = {volume.get("name") for volume in volumes}
    added_volumes = False
    for volume in volume_candidates:
        if volume["name"] not in volume_names:
            volumes.append(volume)
            volume_names.add(volume["name"])
            added_volumes = True
    if added_volumes:
        spec["volumes"] = volumes
    secrets = _merge_secrets(spec.get("imagePullSecrets"), chosen)
    if secrets or "imagePullSecrets" in spec:
        spec["imagePullSecrets"] = secrets

    annotations[ANNOTATION_HASH] = _compact(dict(sorted(hash_records.items())))
    annotations[ANNOTATION_HASH_WITHOUT_IMAGE] = _compact(dict(sorted(without_image_records.items())))
    annotations[ANNOTATION_INJECTED_LIST] = ",".join(sorted(injected_names))
    if produced_annotations:
        annotations[ANNOTATION_WORKING_HOT_UPGRADE_CONTAINER] = _compact(dict(sorted(working.items())))
        annotations.update(produced_annotations)
    metadata["annotations"] = annotations
    return InjectionResult(
        original=original,
        pod=result,
        injected=tuple(item.sidecarset.name for item in chosen),
        warnings=tuple(warnings),
    )
