"""The canonical SidecarSet: one immutable, typed form for both Kruise API versions.

Shape follows Kruise's v1beta1 (the storage version): namespace scoping is only
``namespace_selector``, the custom version is ``custom_version``. Objects are built by
``parse_sidecarset`` (already defaulted and structurally checked) and are deeply immutable:
embedded Kubernetes objects (container bodies, volumes) are read-only mappings and tuples.
``to_spec_dict()`` gives back a plain, mutable v1beta1 spec; building a ``SidecarSet`` from that
dict again yields an equal object.
"""

from __future__ import annotations

import marshal
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any

from sidecarhub.sidecarset.schema import KIND, SIDECAR_CONTAINER_EXTRA_FIELDS, V1BETA1

__all__ = [
    "CANARY_ANNOTATION",
    "CANARY_BASE_ANNOTATION",
    "CUSTOM_VERSION_LABEL",
    "HOT_UPGRADE_SUFFIXES",
    "NAMESPACE_NAME_LABEL",
    "InjectRevision",
    "InjectionStrategy",
    "LabelSelector",
    "LabelSelectorRequirement",
    "PatchPodMetadata",
    "PlainTemplate",
    "PriorityStrategy",
    "ScatterTerm",
    "SidecarContainer",
    "SidecarSet",
    "UpdateStrategy",
    "WeightPriority",
    "freeze",
    "thaw",
]

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
CUSTOM_VERSION_LABEL = "apps.kruise.io/sidecarset-custom-version"
CANARY_ANNOTATION = "apps.kruise.io/sidecarset-canary"
CANARY_BASE_ANNOTATION = "apps.kruise.io/sidecarset-base"
HOT_UPGRADE_SUFFIXES = ("-1", "-2")

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def freeze(value: Any) -> Any:
    """A read-only deep copy of JSON data: mappings become ``MappingProxyType``, lists tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({key: freeze(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(item) for item in value)
    return value


_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def thaw(value: Any) -> Any:
    """A plain, mutable deep copy of (possibly frozen) JSON data."""
    kind = type(value)
    if kind in _JSON_SCALARS:  # most values; the ABC checks below are slow (injection)
        return value
    if kind is MappingProxyType or kind is dict:  # what ``freeze`` makes, checked by type first
        return {key: thaw(item) for key, item in value.items()}
    if kind is tuple or kind is list:
        return [thaw(item) for item in value]
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(item) for item in value]
    return value


class PlainTemplate:
    """Frozen JSON data ready to hand out as fresh, private, plain copies, many times over.

    ``copy()`` equals ``thaw(value)`` and shares nothing mutable with any other copy. For plain
    JSON data the thawed form is kept ``marshal``-ed (version 2: no shared references), so a copy
    is one C call instead of a recursive walk (issue 17: thawing each sidecar per pod was a sixth
    of the admission handler). Data marshal cannot write (subclasses of JSON types) is thawed per
    copy, as before.
    """

    __slots__ = ("_frozen", "_marshalled")

    def __init__(self, frozen: Any) -> None:
        self._frozen = frozen
        try:
            self._marshalled: bytes | None = marshal.dumps(thaw(frozen), 2)
        except ValueError:  # "unmarshallable object"
            self._marshalled = None

    def copy(self) -> Any:
        return marshal.loads(self._marshalled) if self._marshalled is not None else thaw(self._frozen)


def _string_map(value: Any) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        return _EMPTY
    return MappingProxyType({str(key): "" if item is None else str(item) for key, item in value.items()})


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


@dataclass(frozen=True)
class LabelSelectorRequirement:
    """One ``matchExpressions`` entry: ``key`` ``operator`` (In, NotIn, Exists, DoesNotExist) ``values``."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"key": self.key, "operator": self.operator}
        if self.values:
            result["values"] = list(self.values)
        return result


@dataclass(frozen=True)
class LabelSelector:
    """A Kubernetes label selector. ``is_empty`` selectors are kept distinct from absent (``None``) ones."""

    match_labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()

    @classmethod
    def from_dict(cls, data: Any) -> LabelSelector | None:
        if data is None:
            return None
        data = data if isinstance(data, Mapping) else {}
        expressions = tuple(
            LabelSelectorRequirement(
                key=str(item.get("key") or ""),
                operator=str(item.get("operator") or ""),
                values=tuple("" if value is None else str(value) for value in _list(item.get("values"))),
            )
            for item in _list(data.get("matchExpressions"))
            if isinstance(item, Mapping)
        )
        return cls(match_labels=_string_map(data.get("matchLabels")), match_expressions=expressions)

    @property
    def is_empty(self) -> bool:
        return not self.match_labels and not self.match_expressions

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy every requirement (an empty selector matches everything).

        An unknown operator matches nothing, as a selector Kubernetes cannot parse selects nothing.
        """
        if any(labels.get(key) != value for key, value in self.match_labels.items()):
            return False
        for requirement in self.match_expressions:
            present = requirement.key in labels
            if requirement.operator == "In":
                satisfied = present and labels[requirement.key] in requirement.values
            elif requirement.operator == "NotIn":
                satisfied = not present or labels[requirement.key] not in requirement.values
            elif requirement.operator == "Exists":
                satisfied = present
            elif requirement.operator == "DoesNotExist":
                satisfied = not present
            else:
                satisfied = False
            if not satisfied:
                return False
        return True

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        if self.match_labels:
            result["matchLabels"] = dict(self.match_labels)
        if self.match_expressions:
            result["matchExpressions"] = [requirement.to_dict() for requirement in self.match_expressions]
        return result


@dataclass(frozen=True)
class SidecarContainer:
    """One sidecar (from ``containers`` or ``initContainers``): a full core Container plus Kruise's extras.

    ``data`` is the defaulted JSON object, read-only. Typed accessors read from it, so there is
    a single source of truth; ``to_dict()`` returns a mutable copy, ``core_container()`` the
    plain Kubernetes Container (extras removed), as injection puts it into a pod. The accessors
    injection reads per pod are computed once per object (``cached_property``: the object is
    immutable, so this changes no answer).
    """

    data: Mapping[str, Any]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SidecarContainer:
        return cls(data=freeze(data))

    def _get(self, name: str, default: Any = None) -> Any:
        value = self.data.get(name)
        return default if value is None else value

    @cached_property
    def name(self) -> str:
        return str(self._get("name", ""))

    @property
    def image(self) -> str:
        return str(self._get("image", ""))

    @cached_property
    def pod_inject_policy(self) -> str:
        return str(self._get("podInjectPolicy", ""))

    @property
    def upgrade_type(self) -> str:
        return str(self._get("upgradeStrategy", _EMPTY).get("upgradeType") or "")

    @property
    def hot_upgrade_empty_image(self) -> str:
        return str(self._get("upgradeStrategy", _EMPTY).get("hotUpgradeEmptyImage") or "")

    @cached_property
    def share_volume_policy(self) -> str:
        return str(self._get("shareVolumePolicy", _EMPTY).get("type") or "")

    @cached_property
    def share_volume_device_policy(self) -> str | None:
        """``None`` when unset (Kruise keeps it a pointer so old hashes do not change)."""
        policy = self.data.get("shareVolumeDevicePolicy")
        return None if policy is None else str(policy.get("type") or "")

    @property
    def restart_policy(self) -> str:
        return str(self._get("restartPolicy", ""))

    @cached_property
    def transfer_env(self) -> tuple[Mapping[str, Any], ...]:
        return tuple(self._get("transferEnv", ()))

    @cached_property
    def resources_policy(self) -> Mapping[str, Any] | None:
        return self.data.get("resourcesPolicy")

    @cached_property
    def is_native_sidecar(self) -> bool:
        """An init container that keeps running (``restartPolicy: Always``), Kubernetes' native sidecar."""
        return self.restart_policy == "Always"

    @cached_property
    def is_hot_upgrade(self) -> bool:
        # Only the exact value enables hot upgrade, as in Kruise.
        return self.upgrade_type == "HotUpgrade"

    @cached_property
    def hot_upgrade_names(self) -> tuple[str, str] | None:
        """The twin names (``x-1``, ``x-2``) a HotUpgrade sidecar gets in the pod; ``None`` otherwise."""
        if not self.is_hot_upgrade:
            return None
        first, second = (self.name + suffix for suffix in HOT_UPGRADE_SUFFIXES)
        return first, second

    @cached_property
    def volume_names(self) -> tuple[str, ...]:
        """Names referenced by ``volumeMounts`` then ``volumeDevices``, in order, without repeats."""
        names: list[str] = []
        for list_name in ("volumeMounts", "volumeDevices"):
            for item in self._get(list_name, ()):
                name = str(item.get("name") or "")
                if name not in names:
                    names.append(name)
        return tuple(names)

    def to_dict(self) -> dict[str, Any]:
        return thaw(self.data)

    def core_container(self) -> dict[str, Any]:
        """A fresh, private Kubernetes Container: the sidecar without Kruise's extra fields."""
        return self._core_template.copy()

    @cached_property
    def derived(self) -> dict[str, Any]:
        """Values other modules derive from this immutable sidecar, kept with it so they are
        computed once (e.g. injection's ready container, ``sidecar_building``)."""
        return {}

    @cached_property
    def _core_template(self) -> PlainTemplate:
        return PlainTemplate(
            {key: value for key, value in self.data.items() if key not in SIDECAR_CONTAINER_EXTRA_FIELDS}
        )


@dataclass(frozen=True)
class WeightPriority:
    weight: int
    match_selector: LabelSelector | None

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"weight": self.weight}
        if self.match_selector is not None:
            result["matchSelector"] = self.match_selector.to_dict()
        return result


@dataclass(frozen=True)
class PriorityStrategy:
    """``updateStrategy.priorityStrategy``: weight terms or ordered label keys (validation forbids both)."""

    weight_priority: tuple[WeightPriority, ...] = ()
    order_priority: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        if self.weight_priority:
            result["weightPriority"] = [term.to_dict() for term in self.weight_priority]
        if self.order_priority:
            result["orderPriority"] = [{"orderedKey": key} for key in self.order_priority]
        return result


@dataclass(frozen=True)
class ScatterTerm:
    key: str
    value: str


@dataclass(frozen=True)
class UpdateStrategy:
    """``spec.updateStrategy`` after defaulting (type RollingUpdate, partition 0, maxUnavailable 1)."""

    type: str = "RollingUpdate"
    paused: bool = False
    selector: LabelSelector | None = None
    partition: int | str = 0
    max_unavailable: int | str = 1
    priority_strategy: PriorityStrategy | None = None
    scatter_strategy: tuple[ScatterTerm, ...] = ()

    @classmethod
    def from_dict(cls, data: Any) -> UpdateStrategy:
        data = data if isinstance(data, Mapping) else {}
        priority = data.get("priorityStrategy")
        priority_strategy = None
        if isinstance(priority, Mapping):
            priority_strategy = PriorityStrategy(
                weight_priority=tuple(
                    WeightPriority(
                        weight=int(term.get("weight") or 0),
                        match_selector=LabelSelector.from_dict(term.get("matchSelector")),
                    )
                    for term in _list(priority.get("weightPriority"))
                    if isinstance(term, Mapping)
                ),
                order_priority=tuple(
                    str(term.get("orderedKey") or "")
                    for term in _list(priority.get("orderPriority"))
                    if isinstance(term, Mapping)
                ),
            )
        partition = data.get("partition")
        max_unavailable = data.get("maxUnavailable")
        return cls(
            type=str(data.get("type") or ""),
            paused=bool(data.get("paused")),
            selector=LabelSelector.from_dict(data.get("selector")),
            partition=0 if partition is None else partition,
            max_unavailable=1 if max_unavailable is None else max_unavailable,
            priority_strategy=priority_strategy,
            scatter_strategy=tuple(
                ScatterTerm(key=str(term.get("key") or ""), value=str(term.get("value") or ""))
                for term in _list(data.get("scatterStrategy"))
                if isinstance(term, Mapping)
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"type": self.type}
        if self.paused:
            result["paused"] = True
        if self.selector is not None:
            result["selector"] = self.selector.to_dict()
        result["partition"] = self.partition
        result["maxUnavailable"] = self.max_unavailable
        if self.priority_strategy is not None:
            result["priorityStrategy"] = self.priority_strategy.to_dict()
        if self.scatter_strategy:
            result["scatterStrategy"] = [
                {"key": term.key, "value": term.value} for term in self.scatter_strategy
            ]
        return result


@dataclass(frozen=True)
class InjectRevision:
    """``injectionStrategy.revision``: pin injection to a historical revision (``revision_name`` wins)."""

    revision_name: str | None = None
    custom_version: str | None = None
    policy: str = "Always"

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        if self.revision_name is not None:
            result["revisionName"] = self.revision_name
        if self.custom_version is not None:
            result["customVersion"] = self.custom_version
        result["policy"] = self.policy
        return result


@dataclass(frozen=True)
class InjectionStrategy:
    paused: bool = False
    revision: InjectRevision | None = None

    @classmethod
    def from_dict(cls, data: Any) -> InjectionStrategy:
        data = data if isinstance(data, Mapping) else {}
        revision = data.get("revision")
        return cls(
            paused=bool(data.get("paused")),
            revision=None
            if not isinstance(revision, Mapping)
            else InjectRevision(
                revision_name=revision.get("revisionName"),
                custom_version=revision.get("customVersion"),
                policy=str(revision.get("policy") or ""),
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        if self.paused:
            result["paused"] = True
        if self.revision is not None:
            result["revision"] = self.revision.to_dict()
        return result


@dataclass(frozen=True)
class PatchPodMetadata:
    """One ``patchPodMetadata`` entry: pod annotations to set, and how (Retain, Overwrite, MergePatchJson)."""

    annotations: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    patch_policy: str = "Retain"

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        if self.annotations:
            result["annotations"] = dict(self.annotations)
        result["patchPolicy"] = self.patch_policy
        return result


@dataclass(frozen=True)
class SidecarSet:
    """A parsed, defaulted SidecarSet definition in canonical (v1beta1) shape.

    Guarantees: immutable; equal definitions compare equal whichever API version they came
    from; ``SidecarSet.from_document(s.to_document()) == s``. Status and server-populated
    metadata (uid, resourceVersion, ...) are not part of the definition. Not hashable (it holds
    read-only mappings); key caches by name or by ``revision_hash``.
    """

    name: str
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    annotations: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    custom_version: str = ""
    init_containers: tuple[SidecarContainer, ...] = ()
    containers: tuple[SidecarContainer, ...] = ()
    volumes: tuple[Mapping[str, Any], ...] = ()
    image_pull_secrets: tuple[str, ...] = ()
    update_strategy: UpdateStrategy = field(default_factory=UpdateStrategy)
    injection_strategy: InjectionStrategy = field(default_factory=InjectionStrategy)
    revision_history_limit: int = 10
    patch_pod_metadata: tuple[PatchPodMetadata, ...] = ()

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> SidecarSet:
        """Build from a structurally valid, defaulted v1beta1 document (see ``parse_sidecarset``)."""
        metadata = document.get("metadata") or {}
        spec = document.get("spec") or {}
        limit = spec.get("revisionHistoryLimit")
        return cls(
            name=str(metadata.get("name") or ""),
            labels=_string_map(metadata.get("labels")),
            annotations=_string_map(metadata.get("annotations")),
            selector=LabelSelector.from_dict(spec.get("selector")),
            namespace_selector=LabelSelector.from_dict(spec.get("namespaceSelector")),
            custom_version=str(spec.get("customVersion") or ""),
            init_containers=tuple(
                SidecarContainer.from_dict(item) for item in _list(spec.get("initContainers"))
            ),
            containers=tuple(SidecarContainer.from_dict(item) for item in _list(spec.get("containers"))),
            volumes=tuple(freeze(item) for item in _list(spec.get("volumes"))),
            image_pull_secrets=tuple(
                str(item.get("name") or "")
                for item in _list(spec.get("imagePullSecrets"))
                if isinstance(item, Mapping)
            ),
            update_strategy=UpdateStrategy.from_dict(spec.get("updateStrategy")),
            injection_strategy=InjectionStrategy.from_dict(spec.get("injectionStrategy")),
            revision_history_limit=10 if limit is None else int(limit),
            patch_pod_metadata=tuple(
                PatchPodMetadata(
                    annotations=_string_map(item.get("annotations")),
                    patch_policy=str(item.get("patchPolicy") or ""),
                )
                for item in _list(spec.get("patchPodMetadata"))
                if isinstance(item, Mapping)
            ),
        )

    # --- convenient views -------------------------------------------------------------

    @property
    def container_names(self) -> tuple[str, ...]:
        return tuple(container.name for container in self.containers)

    @property
    def init_container_names(self) -> tuple[str, ...]:
        return tuple(container.name for container in self.init_containers)

    @property
    def volume_names(self) -> tuple[str, ...]:
        return tuple(str(volume.get("name") or "") for volume in self.volumes)

    @cached_property
    def sidecar_names(self) -> frozenset[str]:
        """The names of all its sidecars, init containers included."""
        return frozenset(container.name for _, _, container in self.all_containers)

    @property
    def all_containers(self) -> Iterator[tuple[str, int, SidecarContainer]]:
        """``(list_name, index, container)`` for init containers, then containers."""
        for list_name, containers in (
            ("initContainers", self.init_containers),
            ("containers", self.containers),
        ):
            for position, container in enumerate(containers):
                yield list_name, position, container

    @property
    def is_canary(self) -> bool:
        """Kruise's rule: annotation exactly ``"true"`` and a non-empty base annotation."""
        return self.annotations.get(CANARY_ANNOTATION) == "true" and bool(
            self.annotations.get(CANARY_BASE_ANNOTATION)
        )

    @property
    def canary_base(self) -> str | None:
        return self.annotations.get(CANARY_BASE_ANNOTATION) if self.is_canary else None

    def volume(self, name: str) -> Mapping[str, Any] | None:
        return next((volume for volume in self.volumes if volume.get("name") == name), None)

    def volume_copy(self, name: str) -> dict[str, Any] | None:
        """``thaw(self.volume(name))``: a fresh, private copy of the first volume of that name."""
        template = self._volume_templates.get(name)
        return None if template is None else template.copy()

    @cached_property
    def _volume_templates(self) -> dict[Any, PlainTemplate]:
        templates: dict[Any, PlainTemplate] = {}
        for volume in self.volumes:
            name = volume.get("name")
            if name not in templates:  # the first of a name, as ``volume`` finds it
                templates[name] = PlainTemplate(volume)
        return templates

    # --- plain data -------------------------------------------------------------------

    def to_spec_dict(self) -> dict[str, Any]:
        """The v1beta1 ``spec`` as plain, mutable JSON data (defaults included)."""
        spec: dict[str, Any] = {}
        if self.selector is not None:
            spec["selector"] = self.selector.to_dict()
        if self.namespace_selector is not None:
            spec["namespaceSelector"] = self.namespace_selector.to_dict()
        if self.custom_version:
            spec["customVersion"] = self.custom_version
        if self.init_containers:
            spec["initContainers"] = [container.to_dict() for container in self.init_containers]
        if self.containers:
            spec["containers"] = [container.to_dict() for container in self.containers]
        if self.volumes:
            spec["volumes"] = [thaw(volume) for volume in self.volumes]
        spec["updateStrategy"] = self.update_strategy.to_dict()
        spec["injectionStrategy"] = self.injection_strategy.to_dict()
        if self.image_pull_secrets:
            spec["imagePullSecrets"] = [{"name": name} for name in self.image_pull_secrets]
        spec["revisionHistoryLimit"] = self.revision_history_limit
        if self.patch_pod_metadata:
            spec["patchPodMetadata"] = [patch.to_dict() for patch in self.patch_pod_metadata]
        return spec

    def to_document(self) -> dict[str, Any]:
        """The whole object as a v1beta1 document (``to_kruise(s, "v1beta1")`` without status)."""
        metadata: dict[str, Any] = {"name": self.name}
        if self.labels:
            metadata["labels"] = dict(self.labels)
        if self.annotations:
            metadata["annotations"] = dict(self.annotations)
        return {"apiVersion": V1BETA1, "kind": KIND, "metadata": metadata, "spec": self.to_spec_dict()}
