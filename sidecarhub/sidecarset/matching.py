"""Which SidecarSets apply to a pod at creation (injection.md §6, §7.2, §7.3; decisions 5 and 6).

Pure functions over plain pod dicts and canonical :class:`SidecarSet` objects. A pod is never
injected when decision 6 excludes it (``kube-system``/``kube-public``, mirror/static pods, the
pod opt-out annotation, namespaces labelled ``sidecarhub.io/inject=disabled``) or when Kruise
would skip it (not active: phase Succeeded/Failed or being deleted). Otherwise a SidecarSet
matches when it is not paused, its ``namespaceSelector`` (absent: all namespaces) matches the
namespace's labels and its ``selector`` (absent or empty: nothing) matches the pod's labels;
a canary that matches replaces its base (§7.3). Results are in decision 5's order:
namespace-scoped SidecarSets first, then cluster-wide ones, each group by name.

Drift detection uses :func:`matching_sidecarsets` and :func:`missing_injections`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sidecarhub.sidecarset.annotations import (
    ANNOTATION_INJECT_OPT_OUT,
    ANNOTATION_INJECTED_LIST,
    EXCLUDED_NAMESPACES,
    NAMESPACE_INJECT_DISABLED,
    NAMESPACE_INJECT_LABEL,
)
from sidecarhub.sidecarset.kubernetes_rules import label_value_error, qualified_name_error
from sidecarhub.sidecarset.model import NAMESPACE_NAME_LABEL, LabelSelector, SidecarContainer, SidecarSet

__all__ = [
    "MIRROR_POD_ANNOTATION",
    "InjectionError",
    "application_order",
    "excluded_reason",
    "matching_sidecarsets",
    "missing_injections",
    "namespace_labels_for",
    "pod_namespace",
    "selector_error",
]

# The kubelet marks the API copy of a static pod with this annotation (a "mirror pod").
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
# Where the kubelet got a pod from; anything but "api" is a static pod (file or http source).
CONFIG_SOURCE_ANNOTATION = "kubernetes.io/config.source"
_SELECTOR_OPERATORS_WITH_VALUES = ("In", "NotIn")
_SELECTOR_OPERATORS_WITHOUT_VALUES = ("Exists", "DoesNotExist")


class InjectionError(ValueError):
    """Injection must refuse this pod, as Kruise does; the message says why, for the admission denial.

    Raised for a SidecarSet Kubernetes could not evaluate (a pod selector or updateStrategy
    selector that does not parse, a partition such as ``abc%``), a resourcesPolicy that selects no
    container, and MergePatchJson or hash annotations that are not valid JSON.
    """


def _metadata(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = pod.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


def _string_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(key): "" if item is None else str(item) for key, item in value.items()}


def pod_labels(pod: Mapping[str, Any]) -> dict[str, str]:
    return _string_map(_metadata(pod).get("labels"))


def pod_annotations(pod: Mapping[str, Any]) -> dict[str, str]:
    return _string_map(_metadata(pod).get("annotations"))


def pod_namespace(pod: Mapping[str, Any], namespace_labels: Mapping[str, str] | None) -> str:
    """The pod's namespace: ``metadata.namespace``, else the namespace's name label, else ``default``.

    Kruise uses the admission request's namespace when the pod has none; the caller passes the
    Namespace object's labels, which carry ``kubernetes.io/metadata.name`` on every cluster ≥ 1.22.
    """
    namespace = str(_metadata(pod).get("namespace") or "")
    if not namespace and namespace_labels:
        namespace = str(namespace_labels.get(NAMESPACE_NAME_LABEL) or "")
    return namespace or "default"


def namespace_labels_for(
    pod: Mapping[str, Any], namespace_labels: Mapping[str, str] | None
) -> dict[str, str] | None:
    """The labels namespaceSelectors are evaluated against; ``None`` when the namespace is unknown.

    ``kubernetes.io/metadata.name`` is filled in from the pod's namespace when missing, so a
    converted v1alpha1 ``spec.namespace`` always works.
    """
    if namespace_labels is None:
        return None
    labels = {str(key): str(value) for key, value in namespace_labels.items()}
    labels.setdefault(NAMESPACE_NAME_LABEL, pod_namespace(pod, namespace_labels))
    return labels


def excluded_reason(pod: Mapping[str, Any], namespace_labels: Mapping[str, str] | None) -> str:
    """Why this pod is never injected (decision 6, or not active as in Kruise); ``""`` if it may be."""
    metadata = _metadata(pod)
    annotations = pod_annotations(pod)
    namespace = pod_namespace(pod, namespace_labels)
    if namespace in EXCLUDED_NAMESPACES:
        return f"namespace {namespace} is never injected"
    if namespace_labels and namespace_labels.get(NAMESPACE_INJECT_LABEL) == NAMESPACE_INJECT_DISABLED:
        return f"namespace {namespace} is labelled {NAMESPACE_INJECT_LABEL}={NAMESPACE_INJECT_DISABLED}"
    if annotations.get(ANNOTATION_INJECT_OPT_OUT) == "false":
        return f'pod is annotated {ANNOTATION_INJECT_OPT_OUT}: "false"'
    if MIRROR_POD_ANNOTATION in annotations or annotations.get(CONFIG_SOURCE_ANNOTATION, "api") != "api":
        return "pod is a mirror/static pod"
    owners = metadata.get("ownerReferences")
    if isinstance(owners, list) and any(
        isinstance(owner, Mapping) and owner.get("kind") == "Node" and owner.get("controller")
        for owner in owners
    ):
        return "pod is a mirror/static pod"
    status = pod.get("status")
    phase = status.get("phase") if isinstance(status, Mapping) else None
    if phase in ("Succeeded", "Failed") or metadata.get("deletionTimestamp"):
        return "pod is not active"
    return ""


def selector_error(selector: LabelSelector) -> str | None:
    """Why Kubernetes could not turn ``selector`` into a label selector (bad operator, key, value)."""
    for key, value in selector.match_labels.items():
        problem = qualified_name_error(key) or label_value_error(value)
        if problem:
            return f"matchLabels {key}={value}: {problem}"
    for requirement in selector.match_expressions:
        key_problem = qualified_name_error(requirement.key)
        if key_problem:
            return f"matchExpressions key {requirement.key!r}: {key_problem}"
        if requirement.operator in _SELECTOR_OPERATORS_WITH_VALUES:
            if not requirement.values:
                return f"matchExpressions {requirement.key} {requirement.operator}: values required"
        elif requirement.operator in _SELECTOR_OPERATORS_WITHOUT_VALUES:
            if requirement.values:
                return f"matchExpressions {requirement.key} {requirement.operator}: values must be empty"
        else:
            return f"matchExpressions {requirement.key}: unknown operator {requirement.operator!r}"
        for value in requirement.values:
            value_problem = label_value_error(value)
            if value_problem:
                return f"matchExpressions {requirement.key} value {value!r}: {value_problem}"
    return None


def namespace_matches(sidecarset: SidecarSet, namespace_labels: Mapping[str, str] | None) -> bool:
    """Kruise §7.2 step 2: no selector matches all; an unknown namespace or bad selector matches none."""
    selector = sidecarset.namespace_selector
    if selector is None:
        return True
    if namespace_labels is None or selector_error(selector) is not None:
        return False
    return selector.matches(namespace_labels)


def pod_selector_matches(selector: LabelSelector | None, labels: Mapping[str, str]) -> bool:
    """Kruise §7.2 step 3: a nil or empty pod selector never matches (callers check parse errors)."""
    if selector is None or selector.is_empty:
        return False
    return selector.matches(labels)


def application_order(sidecarset: SidecarSet) -> tuple[bool, str]:
    """Sort key of decision 5: SidecarSets scoped to namespaces (a ``namespaceSelector``, which a
    v1alpha1 ``namespace`` becomes) first, then cluster-wide ones, each group in name order.

    Kruise lists the namespace-scoped ones first too (its informer index), in random order within
    each group; this is one of Kruise's possible orders, made deterministic.
    """
    return (sidecarset.namespace_selector is None, sidecarset.name)


def drop_canary_bases(sidecarsets: Iterable[SidecarSet]) -> list[SidecarSet]:
    """§7.3: a matched canary replaces its base for this pod; a base without a matched canary stays."""
    matched = list(sidecarsets)
    bases = {sidecarset.canary_base for sidecarset in matched if sidecarset.canary_base}
    return [sidecarset for sidecarset in matched if sidecarset.name not in bases]


def matching_sidecarsets(
    pod: Mapping[str, Any],
    namespace_labels: Mapping[str, str] | None,
    sidecarsets: Iterable[SidecarSet],
) -> list[SidecarSet]:
    """The SidecarSets that injection would apply to ``pod`` now, in decision 5's order
    (:func:`application_order`).

    Applies the decision 6 exclusions, ``injectionStrategy.paused``, both selectors and the
    canary/base rule. A SidecarSet whose pod selector Kubernetes could not parse is left out
    here (``inject`` refuses the pod instead, as Kruise does). Never raises on odd pod data.
    """
    if excluded_reason(pod, namespace_labels):
        return []
    labels = pod_labels(pod)
    effective_namespace_labels = namespace_labels_for(pod, namespace_labels)
    matched = [
        sidecarset
        for sidecarset in sorted(sidecarsets, key=application_order)
        if not sidecarset.injection_strategy.paused
        and namespace_matches(sidecarset, effective_namespace_labels)
        and (sidecarset.selector is None or selector_error(sidecarset.selector) is None)
        and pod_selector_matches(sidecarset.selector, labels)
    ]
    return drop_canary_bases(matched)


def _container_names(pod: Mapping[str, Any], list_name: str) -> set[str]:
    spec = pod.get("spec")
    containers = spec.get(list_name) if isinstance(spec, Mapping) else None
    if not isinstance(containers, list):
        return set()
    return {str(item.get("name") or "") for item in containers if isinstance(item, Mapping)}


def missing_injections(
    pod: Mapping[str, Any],
    namespace_labels: Mapping[str, str] | None,
    sidecarsets: Iterable[SidecarSet],
) -> list[str]:
    """Names (sorted) of matching SidecarSets whose injection this pod lacks: drift.

    A SidecarSet is missing when the pod's ``sidecarhub.io/sidecarset-injected-list`` does not
    name it, or when one of its current ``containers`` (hot-upgrade: both twins) or native-sidecar
    ``initContainers`` is absent from the pod. Plain init containers are not checked: a pinned
    or older revision may legitimately have had different ones.
    """
    injected = {name for name in pod_annotations(pod).get(ANNOTATION_INJECTED_LIST, "").split(",") if name}
    containers = _container_names(pod, "containers")
    init_containers = _container_names(pod, "initContainers")
    missing: list[str] = []
    for sidecarset in matching_sidecarsets(pod, namespace_labels, sidecarsets):
        expected = {name for container in sidecarset.containers for name in _pod_names_of(container)}
        expected_init = {
            name
            for container in sidecarset.init_containers
            if container.is_native_sidecar
            for name in _pod_names_of(container)
        }
        if sidecarset.name not in injected or not (
            expected <= containers and expected_init <= init_containers
        ):
            missing.append(sidecarset.name)
    return missing


def _pod_names_of(container: SidecarContainer) -> tuple[str, ...]:
    """The names a sidecar has in a pod: its twins when it hot-upgrades, else its own name."""
    twins = container.hot_upgrade_names
    return twins if twins is not None else (container.name,)
