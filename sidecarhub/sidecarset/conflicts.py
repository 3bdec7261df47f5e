"""Conflicts between SidecarSets that may select the same pods (injection.md §5.10).

Kept apart from :func:`validate_sidecarset` because it needs the other SidecarSets: the Django
model layer loads them and calls :func:`find_conflicts`. Pure and deterministic; the overlap test
is Kruise's conservative heuristic (two selectors count as overlapping unless one pins a label
in a way the other rules out), so "no conflict" here means Kruise would also accept it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sidecarhub.sidecarset.errors import FieldError, FieldPath
from sidecarhub.sidecarset.model import LabelSelector, SidecarSet

__all__ = ["ConflictIndex", "find_conflicts", "selectors_may_overlap"]

_ANY_VALUE = "*any*"


def _allowed_values(selector: LabelSelector) -> dict[str, set[str]]:
    """Kruise's reduction of ``selector`` to key → values it allows (``_ANY_VALUE`` for Exists)."""
    allowed: dict[str, set[str]] = {}
    for key, value in selector.match_labels.items():
        allowed.setdefault(key, set()).add(value)
    for requirement in selector.match_expressions:
        if requirement.operator == "In":
            allowed.setdefault(requirement.key, set()).update(requirement.values)
        elif requirement.operator == "Exists":
            allowed.setdefault(requirement.key, set()).add(_ANY_VALUE)
    return allowed


def _is_disjoint_from(first: LabelSelector, second: LabelSelector) -> bool:
    """True when some requirement of ``second`` rules out every pod ``first`` pins (Kruise's one-way test)."""
    pinned = _allowed_values(first)
    requirements: list[tuple[str, str, tuple[str, ...]]] = [
        (key, "In", (value,)) for key, value in second.match_labels.items()
    ]
    requirements += [(r.key, r.operator, r.values) for r in second.match_expressions]
    for key, operator, values in requirements:
        first_values = pinned.get(key)
        if operator == "In":
            if first_values and _ANY_VALUE not in first_values and not first_values & set(values):
                return True
        elif operator == "NotIn":
            if first_values and _ANY_VALUE not in first_values and first_values <= set(values):
                return True
        elif operator == "Exists":
            if first_values is None:
                return True
        elif operator == "DoesNotExist" and first_values is not None:
            return True
    return False


def selectors_may_overlap(first: LabelSelector | None, second: LabelSelector | None) -> bool:
    """Whether two selectors may select a common object; ``None`` means "everything" (namespace selectors)."""
    if first is None or second is None:
        return True
    return not (_is_disjoint_from(first, second) or _is_disjoint_from(second, first))


def _may_share_pods(candidate: SidecarSet, other: SidecarSet) -> bool:
    if other.name == candidate.name or other.name == candidate.canary_base:
        return False
    if not selectors_may_overlap(candidate.namespace_selector, other.namespace_selector):
        return False
    # A missing pod selector matches nothing (and is a validation error); no overlap to report.
    if candidate.selector is None or other.selector is None:
        return False
    return selectors_may_overlap(candidate.selector, other.selector)


def _annotation_conflicts(candidate: SidecarSet, other: SidecarSet, spec_path: FieldPath) -> list[FieldError]:
    errors: list[FieldError] = []
    for position, patch in enumerate(candidate.patch_pod_metadata):
        if patch.patch_policy == "Retain":
            continue
        for other_patch in other.patch_pod_metadata:
            if other_patch.patch_policy == "Retain":
                continue
            if "Overwrite" not in (patch.patch_policy, other_patch.patch_policy):
                continue  # two MergePatchJson patches compose
            for key in sorted(set(patch.annotations) & set(other_patch.annotations)):
                errors.append(
                    FieldError.at(
                        spec_path.child("patchPodMetadata").index(position).child("annotations").key(key),
                        f"conflicts with SidecarSet {other.name!r}, which also patches this annotation "
                        f"({patch.patch_policy} vs {other_patch.patch_policy})",
                    )
                )
    return errors


def find_conflicts(candidate: SidecarSet, others: Iterable[SidecarSet]) -> list[FieldError]:
    """Errors for every clash between ``candidate`` and the SidecarSets in ``others`` that may share pods.

    Reported, as in Kruise: an init container name used by another's init containers, a
    container name used by another's containers, a volume name whose definition differs, and a
    pod annotation both patch when neither uses Retain and at least one uses Overwrite. A
    SidecarSet in ``others`` with the candidate's own name (its stored version) is ignored, and so
    is the candidate's canary base. Like Kruise, cross-list clashes (init vs container) and
    hot-upgrade twin names are not checked across SidecarSets.
    """
    spec_path = FieldPath().child("spec")
    errors: list[FieldError] = []
    for other in sorted(others, key=lambda sidecarset: sidecarset.name):
        if not _may_share_pods(candidate, other):
            continue
        for list_name, names, other_names in (
            ("initContainers", candidate.init_container_names, set(other.init_container_names)),
            ("containers", candidate.container_names, set(other.container_names)),
        ):
            for position, name in enumerate(names):
                if name in other_names:
                    errors.append(
                        FieldError.at(
                            spec_path.child(list_name).index(position).child("name"),
                            f"container {name!r} is also defined by SidecarSet {other.name!r}, "
                            "which may select the same pods",
                        )
                    )
        for position, volume in enumerate(candidate.volumes):
            other_volume = other.volume(str(volume.get("name") or ""))
            if other_volume is not None and other_volume != volume:
                errors.append(
                    FieldError.at(
                        spec_path.child("volumes").index(position),
                        f"volume {volume.get('name')!r} is defined differently by SidecarSet {other.name!r}, "
                        "which may select the same pods",
                    )
                )
        errors.extend(_annotation_conflicts(candidate, other, spec_path))
    return errors


def _conflict_keys(sidecarset: SidecarSet) -> set[tuple[str, str]]:
    """Every name a conflict between two SidecarSets needs both to use (see ``find_conflicts``)."""
    keys = {("initContainers", name) for name in sidecarset.init_container_names}
    keys.update(("containers", name) for name in sidecarset.container_names)
    keys.update(("volumes", str(volume.get("name") or "")) for volume in sidecarset.volumes)
    keys.update(("annotations", key) for patch in sidecarset.patch_pod_metadata for key in patch.annotations)
    return keys


class ConflictIndex:
    """Many SidecarSets, indexed by the names a conflict can involve, for checking many candidates.

    ``find_conflicts(candidate)`` equals :func:`find_conflicts` over every indexed SidecarSet, but
    compares the candidate only with those sharing an init container, container, volume or
    patched annotation name with it: a clash needs a shared name, so the answer is the same, and
    checking n documents against n stored ones costs about n comparisons instead of n².
    ``put`` adds a SidecarSet or replaces the one of the same name; ``remove`` drops one.
    """

    def __init__(self, sidecarsets: Iterable[SidecarSet] = ()) -> None:
        self._by_name: dict[str, SidecarSet] = {}
        self._keys: dict[str, set[tuple[str, str]]] = {}
        self._names_by_key: dict[tuple[str, str], set[str]] = {}
        for sidecarset in sidecarsets:
            self.put(sidecarset)

    def __iter__(self) -> Iterator[SidecarSet]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def get(self, name: str) -> SidecarSet | None:
        return self._by_name.get(name)

    def put(self, sidecarset: SidecarSet) -> None:
        self.remove(sidecarset.name)
        keys = _conflict_keys(sidecarset)
        self._by_name[sidecarset.name] = sidecarset
        self._keys[sidecarset.name] = keys
        for key in keys:
            self._names_by_key.setdefault(key, set()).add(sidecarset.name)

    def remove(self, name: str) -> None:
        """Drop the SidecarSet ``name`` (nothing when it is not indexed)."""
        self._by_name.pop(name, None)
        for key in self._keys.pop(name, set()):
            self._names_by_key[key].discard(name)

    def find_conflicts(self, candidate: SidecarSet) -> list[FieldError]:
        names = set().union(*(self._names_by_key.get(key, set()) for key in _conflict_keys(candidate)))
        return find_conflicts(candidate, (self._by_name[name] for name in names))
