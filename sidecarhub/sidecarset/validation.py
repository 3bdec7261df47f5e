"""Semantic validation of a SidecarSet: Kruise's validating webhook (injection.md §5) plus decision 2.

:func:`validate_sidecarset` returns every error as a :class:`FieldError` with a field path and
never raises on bad input (text, dicts, garbage or a parsed :class:`SidecarSet`). Raw input is
first parsed; if it is not even shaped like a SidecarSet, those structural errors are returned
alone, as the apiserver's schema check runs before Kruise's webhook. Cross-SidecarSet
conflicts (§5.10) are :func:`~sidecarhub.sidecarset.conflicts.find_conflicts`' job.

Rules that need the outside world take it as arguments, so this stays pure:
``old`` (UPDATE rules, §5.8), ``find_sidecarset`` (canary base lookup, §5.9),
``revision_exists`` (pinned revision lookup, §5.4) and ``patch_metadata_allowlist`` (§5.7).
A check whose argument is not given is skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sidecarhub.sidecarset.conversion import read_sidecarset
from sidecarhub.sidecarset.errors import FieldError, FieldPath, SidecarSetInvalid
from sidecarhub.sidecarset.kubernetes_rules import label_value_error, pod_errors, qualified_name_error
from sidecarhub.sidecarset.model import (
    CANARY_BASE_ANNOTATION,
    InjectRevision,
    LabelSelector,
    SidecarContainer,
    SidecarSet,
)
from sidecarhub.sidecarset.resource_expressions import ExpressionError, check_expression

__all__ = [
    "HOT_UPGRADE",
    "PATCH_POLICIES",
    "POD_INJECT_POLICIES",
    "UPGRADE_TYPES",
    "PatchMetadataAllowRule",
    "check_sidecarset",
    "parse_patch_metadata_allowlist",
    "validate_sidecarset",
]

POD_INJECT_POLICIES = ("BeforeAppContainer", "AfterAppContainer")
SHARE_VOLUME_POLICIES = ("enabled", "disabled")
UPGRADE_TYPES = ("ColdUpgrade", "HotUpgrade")
HOT_UPGRADE = "HotUpgrade"
PATCH_POLICIES = ("Retain", "Overwrite", "MergePatchJson")
INJECT_REVISION_POLICIES = ("Always", "Partial")
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")

# The name of the hub's custom resource (apiserver: lowercase RFC 1123 subdomain) that Kruise's
# webhook also accepts (no dots): a lowercase RFC 1123 label, at most 63 characters.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PERCENT = re.compile(r"^[0-9]+%$")
_FIELD_PATH_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.*)'\]$")
# Kubernetes' limit on the total size of an object's annotations.
MAX_ANNOTATIONS_BYTES = 256 * 1024

FindSidecarSet = Callable[[str], SidecarSet | None]
RevisionExists = Callable[[SidecarSet, InjectRevision], bool]


@dataclass(frozen=True)
class PatchMetadataAllowRule:
    """One rule of the patchPodMetadata allow-list (Kruise's ``SidecarSet_PatchPodMetadata_WhiteList``).

    Applies to SidecarSets whose labels match ``selector`` (``None``: all); annotation keys
    must match one of ``allowed_key_patterns`` (unanchored regular expression search).
    """

    allowed_key_patterns: tuple[str, ...]
    selector: LabelSelector | None = None


def parse_patch_metadata_allowlist(text: str) -> tuple[PatchMetadataAllowRule, ...]:
    """Kruise's ``SidecarSet_PatchPodMetadata_WhiteList`` value (injection.md §5.7) as rules.

    ``{"rules": [{"selector": <LabelSelector, optional>, "allowedAnnotationKeyExprs": [<regex>]}]}``.
    Raises ``ValueError`` naming the problem for invalid JSON, a wrong shape, an invalid
    selector or an invalid regular expression (Kruise refuses the SidecarSet then; the hub
    refuses the configuration at start-up).
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    rules = data.get("rules") if isinstance(data, dict) else None
    if not isinstance(rules, list):
        raise ValueError('must be a JSON object {"rules": [...]}')
    parsed: list[PatchMetadataAllowRule] = []
    for position, rule in enumerate(rules):
        where = f"rules[{position}]"
        if not isinstance(rule, dict):
            raise ValueError(f"{where} must be an object")
        patterns = rule.get("allowedAnnotationKeyExprs") or []
        if not isinstance(patterns, list) or not all(isinstance(item, str) for item in patterns):
            raise ValueError(f"{where}.allowedAnnotationKeyExprs must be a list of strings")
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"{where}.allowedAnnotationKeyExprs: {pattern!r} is not a regular expression ({exc})"
                ) from None
        raw_selector = rule.get("selector")
        if raw_selector is not None and not isinstance(raw_selector, dict):
            raise ValueError(f"{where}.selector must be a label selector object")
        selector = LabelSelector.from_dict(raw_selector)
        if selector is not None and selector.is_empty:
            selector = None  # as in Kubernetes, an empty selector matches every SidecarSet
        if selector is not None:
            problems = _selector_errors(selector, FieldPath().child("selector"), required=False)
            if problems:
                detail = "; ".join(f"{error.path}: {error.message}" for error in problems)
                raise ValueError(f"{where}.selector is not a valid label selector ({detail})")
        parsed.append(PatchMetadataAllowRule(tuple(patterns), selector))
    return tuple(parsed)


def _errors(path: FieldPath, message: str) -> list[FieldError]:
    return [FieldError.at(path, message)]


# --- §5.1 metadata ---------------------------------------------------------------------


def _metadata_errors(sidecarset: SidecarSet) -> list[FieldError]:
    path = FieldPath().child("metadata")
    errors: list[FieldError] = []
    if not sidecarset.name:
        errors.append(FieldError.at(path.child("name"), "required"))
    elif len(sidecarset.name) > 63 or not _NAME.match(sidecarset.name):
        errors.append(
            FieldError.at(
                path.child("name"),
                "must be a lowercase RFC 1123 label: at most 63 characters of a-z, 0-9 and '-', "
                "starting and ending with a letter or digit",
            )
        )
    for key, value in sidecarset.labels.items():
        key_error = qualified_name_error(key)
        if key_error:
            errors.append(FieldError.at(path.child("labels").key(key), f"invalid label key: {key_error}"))
        value_error = label_value_error(value)
        if value_error:
            errors.append(FieldError.at(path.child("labels").key(key), f"invalid label value: {value_error}"))
    errors.extend(_annotations_errors(sidecarset.annotations, path.child("annotations")))
    return errors


def _annotations_errors(annotations: Mapping[str, str], path: FieldPath) -> list[FieldError]:
    errors: list[FieldError] = []
    total = 0
    for key, value in annotations.items():
        key_error = qualified_name_error(key.lower())
        if key_error:
            errors.append(FieldError.at(path.key(key), f"invalid annotation key: {key_error}"))
        total += len(key) + len(value)
    if total > MAX_ANNOTATIONS_BYTES:
        errors.append(FieldError.at(path, f"may not be larger than {MAX_ANNOTATIONS_BYTES} bytes in total"))
    return errors


# --- §5.3 selectors ---------------------------------------------------------------------


def _selector_errors(selector: LabelSelector | None, path: FieldPath, *, required: bool) -> list[FieldError]:
    if selector is None:
        return _errors(path, "required") if required else []
    if selector.is_empty:
        return _errors(path, "must not be empty (it would select nothing)")
    errors: list[FieldError] = []
    for key, value in selector.match_labels.items():
        key_error = qualified_name_error(key)
        if key_error:
            errors.append(
                FieldError.at(path.child("matchLabels").key(key), f"invalid label key: {key_error}")
            )
        value_error = label_value_error(value)
        if value_error:
            errors.append(
                FieldError.at(path.child("matchLabels").key(key), f"invalid label value: {value_error}")
            )
    for position, requirement in enumerate(selector.match_expressions):
        requirement_path = path.child("matchExpressions").index(position)
        key_error = qualified_name_error(requirement.key)
        if key_error:
            errors.append(FieldError.at(requirement_path.child("key"), f"invalid label key: {key_error}"))
        if requirement.operator not in SELECTOR_OPERATORS:
            errors.append(
                FieldError.at(
                    requirement_path.child("operator"), f"must be one of: {', '.join(SELECTOR_OPERATORS)}"
                )
            )
        elif requirement.operator in ("In", "NotIn") and not requirement.values:
            errors.append(
                FieldError.at(
                    requirement_path.child("values"), f"must be non-empty for {requirement.operator}"
                )
            )
        elif requirement.operator in ("Exists", "DoesNotExist") and requirement.values:
            errors.append(
                FieldError.at(requirement_path.child("values"), f"must be empty for {requirement.operator}")
            )
        for value_position, value in enumerate(requirement.values):
            value_error = label_value_error(value)
            if value_error:
                errors.append(
                    FieldError.at(
                        requirement_path.child("values").index(value_position),
                        f"invalid label value: {value_error}",
                    )
                )
    return errors


# --- §5.4 injectionStrategy -------------------------------------------------------------


def _injection_strategy_errors(
    sidecarset: SidecarSet, revision_exists: RevisionExists | None
) -> list[FieldError]:
    revision = sidecarset.injection_strategy.revision
    if revision is None:
        return []
    path = FieldPath().child("spec").child("injectionStrategy").child("revision")
    errors: list[FieldError] = []
    if revision.revision_name is None and revision.custom_version is None:
        errors.append(FieldError.at(path, "revisionName or customVersion is required"))
    elif revision_exists is not None and not revision_exists(sidecarset, revision):
        wanted = revision.revision_name if revision.revision_name is not None else revision.custom_version
        field_name = "revisionName" if revision.revision_name is not None else "customVersion"
        errors.append(FieldError.at(path.child(field_name), f"cannot find a revision matching {wanted!r}"))
    if revision.policy not in ("", *INJECT_REVISION_POLICIES):
        errors.append(
            FieldError.at(path.child("policy"), f"must be one of: {', '.join(INJECT_REVISION_POLICIES)}")
        )
    return errors


# --- §5.5 containers --------------------------------------------------------------------


def _transfer_env_errors(container: SidecarContainer, path: FieldPath) -> list[FieldError]:
    errors: list[FieldError] = []
    for position, transfer in enumerate(container.transfer_env):
        if not isinstance(transfer, Mapping):  # a malformed item is reported by the schema check
            continue
        field_ref = (transfer.get("sourceContainerNameFrom") or {}).get("fieldRef")
        if field_ref is None:
            continue
        ref_path = (
            path.child("transferEnv").index(position).child("sourceContainerNameFrom").child("fieldRef")
        )
        api_version = field_ref.get("apiVersion") or ""
        field_path = field_ref.get("fieldPath") or ""
        if not api_version:
            errors.append(FieldError.at(ref_path.child("apiVersion"), "required"))
        elif api_version != "v1":
            errors.append(FieldError.at(ref_path.child("apiVersion"), "must be v1"))
        if not field_path:
            errors.append(FieldError.at(ref_path.child("fieldPath"), "required"))
            continue
        match = _FIELD_PATH_SUBSCRIPT.match(field_path)
        if match is None:
            # Kruise rejects metadata.name too, although its API comment advertises it.
            errors.append(
                FieldError.at(
                    ref_path.child("fieldPath"),
                    "must be metadata.labels['<key>'] or metadata.annotations['<key>']",
                )
            )
            continue
        key = match[2].lower() if match[1] == "annotations" else match[2]
        key_error = qualified_name_error(key)
        if key_error:
            errors.append(
                FieldError.at(ref_path.child("fieldPath"), f"invalid key {match[2]!r}: {key_error}")
            )
    return errors


def _resources_policy_errors(container: SidecarContainer, path: FieldPath) -> list[FieldError]:
    policy = container.resources_policy
    if policy is None:
        return []
    policy_path = path.child("resourcesPolicy")
    resources = container.data.get("resources") or {}
    if resources.get("limits") or resources.get("requests"):
        return _errors(policy_path, "resourcesPolicy and resources cannot be configured together")
    errors: list[FieldError] = []
    regex = policy.get("targetContainersNameRegex") or ""
    if not regex:
        errors.append(FieldError.at(policy_path.child("targetContainersNameRegex"), "required"))
    else:
        try:
            re.compile(regex)
        except re.error as exc:
            errors.append(
                FieldError.at(
                    policy_path.child("targetContainersNameRegex"), f"invalid regular expression: {exc}"
                )
            )
    expressions = policy.get("resourcesExpr") or {}
    if not expressions.get("limits") and not expressions.get("requests"):
        errors.append(FieldError.at(policy_path.child("resourcesExpr"), "limits or requests is required"))
    for list_name in ("limits", "requests"):
        for resource_name in ("cpu", "memory"):
            expression = (expressions.get(list_name) or {}).get(resource_name) or ""
            if not expression:
                continue
            try:
                check_expression(expression)
            except ExpressionError as exc:
                errors.append(
                    FieldError.at(
                        policy_path.child("resourcesExpr").child(list_name).child(resource_name),
                        f"invalid expression {expression!r}: {exc}",
                    )
                )
    return errors


def _upgrade_strategy_errors(container: SidecarContainer, path: FieldPath) -> list[FieldError]:
    """Decision 2: Kruise leaves upgradeType and hotUpgradeEmptyImage unchecked; we do not."""
    strategy_path = path.child("upgradeStrategy")
    if container.upgrade_type not in UPGRADE_TYPES:
        return _errors(strategy_path.child("upgradeType"), f"must be one of: {', '.join(UPGRADE_TYPES)}")
    if container.is_hot_upgrade and not container.hot_upgrade_empty_image:
        return _errors(strategy_path.child("hotUpgradeEmptyImage"), "required when upgradeType is HotUpgrade")
    if container.is_hot_upgrade:
        return _hot_upgrade_container_errors(container, path)
    return []


def _hot_upgrade_container_errors(container: SidecarContainer, path: FieldPath) -> list[FieldError]:
    """Decision 2: what makes a HotUpgrade sidecar unusable, which Kruise leaves to pod creation."""
    errors: list[FieldError] = []
    if container.hot_upgrade_empty_image == container.image:
        errors.append(
            FieldError.at(
                path.child("upgradeStrategy").child("hotUpgradeEmptyImage"),
                "must differ from image: the idle twin would run the real sidecar",
            )
        )
    twin_length = len(container.name) + 2  # the twins are named <name>-1 and <name>-2
    if twin_length > 63:
        errors.append(
            FieldError.at(
                path.child("name"),
                f"must be at most 61 characters with HotUpgrade: the twin {container.name}-1 "
                f"would have {twin_length} (container names are at most 63)",
            )
        )
    ports = container.data.get("ports")
    for position, port in enumerate(
        ports if isinstance(ports, Sequence) and not isinstance(ports, str) else ()
    ):
        if isinstance(port, Mapping) and port.get("hostPort"):
            errors.append(
                FieldError.at(
                    path.child("ports").index(position).child("hostPort"),
                    "not allowed with HotUpgrade: both twins would claim the same host port",
                )
            )
    return errors


def _container_extra_errors(sidecarset: SidecarSet) -> list[FieldError]:
    spec_path = FieldPath().child("spec")
    errors: list[FieldError] = []
    for position, container in enumerate(sidecarset.init_containers):
        path = spec_path.child("initContainers").index(position)
        if container.resources_policy is not None and not container.is_native_sidecar:
            errors.append(
                FieldError.at(
                    path.child("resourcesPolicy"), "only allowed on native sidecars (restartPolicy: Always)"
                )
            )
        else:
            errors.extend(_resources_policy_errors(container, path))
        errors.extend(_upgrade_strategy_errors(container, path))
    for position, container in enumerate(sidecarset.containers):
        path = spec_path.child("containers").index(position)
        if container.pod_inject_policy not in POD_INJECT_POLICIES:
            errors.append(
                FieldError.at(
                    path.child("podInjectPolicy"), f"must be one of: {', '.join(POD_INJECT_POLICIES)}"
                )
            )
        if container.share_volume_policy not in SHARE_VOLUME_POLICIES:
            errors.append(
                FieldError.at(
                    path.child("shareVolumePolicy").child("type"),
                    f"must be one of: {', '.join(SHARE_VOLUME_POLICIES)}",
                )
            )
        errors.extend(_transfer_env_errors(container, path))
        errors.extend(_resources_policy_errors(container, path))
        errors.extend(_upgrade_strategy_errors(container, path))
    return errors


def _hot_upgrade_name_errors(sidecarset: SidecarSet) -> list[FieldError]:
    """Decision 2: twin names ``x-1``/``x-2`` must not collide with another container of this SidecarSet."""
    spec_path = FieldPath().child("spec")
    containers = list(sidecarset.all_containers)
    errors: list[FieldError] = []
    for list_name, position, container in containers:
        for twin in container.hot_upgrade_names or ():
            clashing = [
                f"spec.{other_list}[{other_position}]"
                for other_list, other_position, other in containers
                if (other_list, other_position) != (list_name, position)
                and twin in (other.hot_upgrade_names or (other.name,))
            ]
            if clashing:
                errors.append(
                    FieldError.at(
                        spec_path.child(list_name).index(position).child("name"),
                        f"hot upgrade runs this container as {twin!r}, "
                        f"which collides with {', '.join(clashing)}",
                    )
                )
    return errors


# --- §5.2, §5.6 updateStrategy ------------------------------------------------------------


def _int_or_percent_error(value: int | str) -> str | None:
    if isinstance(value, int):
        return None if value >= 0 else "must be greater than or equal to 0"
    return None if _PERCENT.match(value) else "must be a non-negative integer or a percentage such as '10%'"


def _update_strategy_errors(sidecarset: SidecarSet) -> list[FieldError]:
    spec_path = FieldPath().child("spec")
    strategy = sidecarset.update_strategy
    path = spec_path.child("updateStrategy")
    errors: list[FieldError] = []
    if strategy.type == "RollingUpdate":
        for position, container in enumerate(sidecarset.init_containers):
            if container.is_native_sidecar:
                errors.append(
                    FieldError.at(
                        spec_path.child("initContainers").index(position),
                        "in-place upgrade of native-sidecar init containers is not supported; "
                        "set spec.updateStrategy.type to NotUpdate",
                    )
                )
    if strategy.type != "RollingUpdate":
        # As in Kruise, the remaining checks apply to RollingUpdate only.
        return errors
    partition_is_set = strategy.partition != 0
    if strategy.selector is not None and partition_is_set:
        errors.append(
            FieldError.at(path.child("partition"), "may not be set together with updateStrategy.selector")
        )
    errors.extend(_selector_errors(strategy.selector, path.child("selector"), required=False))
    for field_name, value in (
        ("partition", strategy.partition),
        ("maxUnavailable", strategy.max_unavailable),
    ):
        value_error = _int_or_percent_error(value)
        if value_error:
            errors.append(FieldError.at(path.child(field_name), value_error))
    priority = strategy.priority_strategy
    if priority is not None:
        priority_path = path.child("priorityStrategy")
        if priority.weight_priority and priority.order_priority:
            errors.append(
                FieldError.at(priority_path, "weightPriority and orderPriority may not both be set")
            )
        for position, term in enumerate(priority.weight_priority):
            term_path = priority_path.child("weightPriority").index(position)
            if not 0 <= term.weight <= 100:
                errors.append(FieldError.at(term_path.child("weight"), "must be between 0 and 100"))
            errors.extend(
                _selector_errors(term.match_selector, term_path.child("matchSelector"), required=True)
            )
        for position, key in enumerate(priority.order_priority):
            if not key:
                errors.append(
                    FieldError.at(
                        priority_path.child("orderPriority").index(position).child("orderedKey"), "required"
                    )
                )
    seen_terms: set[tuple[str, str]] = set()
    for position, scatter_term in enumerate(strategy.scatter_strategy):
        term_path = path.child("scatterStrategy").index(position)
        key, value = scatter_term.key, scatter_term.value
        if not key:
            errors.append(FieldError.at(term_path.child("key"), "required"))
        if (key, value) in seen_terms:
            errors.append(FieldError.at(term_path, f"duplicate scatter term {key}:{value}"))
        seen_terms.add((key, value))
    return errors


# --- §5.7 patchPodMetadata ------------------------------------------------------------------


def _allowed_key_patterns(
    sidecarset: SidecarSet, allowlist: Sequence[PatchMetadataAllowRule] | None, defaults_allowed: bool
) -> list[re.Pattern[str]] | None:
    """Kruise's §5.7 decision: the patterns every patched key must match, or ``None`` (any key).

    The patterns of the rules whose selector is absent or matches the SidecarSet's labels. When
    there is no allow-list, or no rule (with patterns) applies, any key is allowed if
    ``defaults_allowed`` (Kruise's gate ``SidecarSetPatchPodMetadataDefaultsAllowed``) and no key
    otherwise (an empty list).
    """
    if not sidecarset.patch_pod_metadata:
        return None
    patterns = [
        re.compile(pattern)
        for rule in allowlist or ()
        if rule.selector is None or rule.selector.matches(sidecarset.labels)
        for pattern in rule.allowed_key_patterns
    ]
    if not patterns and defaults_allowed:
        return None
    return patterns


def _patch_metadata_errors(
    sidecarset: SidecarSet, allowlist: Sequence[PatchMetadataAllowRule] | None, defaults_allowed: bool
) -> list[FieldError]:
    path = FieldPath().child("spec").child("patchPodMetadata")
    errors: list[FieldError] = []
    patterns = _allowed_key_patterns(sidecarset, allowlist, defaults_allowed)
    key_owner: dict[str, int] = {}
    for position, patch in enumerate(sidecarset.patch_pod_metadata):
        patch_path = path.index(position)
        if not patch.annotations:
            errors.append(
                FieldError.at(patch_path.child("annotations"), "at least one annotation is required")
            )
        errors.extend(_annotations_errors(patch.annotations, patch_path.child("annotations")))
        if not patch.patch_policy:
            errors.append(FieldError.at(patch_path.child("patchPolicy"), "required"))
        elif patch.patch_policy not in PATCH_POLICIES:
            # Decision 2: Kruise accepts any string and then silently does nothing.
            errors.append(
                FieldError.at(patch_path.child("patchPolicy"), f"must be one of: {', '.join(PATCH_POLICIES)}")
            )
        for key in patch.annotations:
            annotation_path = patch_path.child("annotations").key(key)
            if key in key_owner:
                errors.append(
                    FieldError.at(
                        annotation_path, f"already patched by spec.patchPodMetadata[{key_owner[key]}]"
                    )
                )
            key_owner.setdefault(key, position)
            if patterns is not None and not any(pattern.search(key) for pattern in patterns):
                errors.append(
                    FieldError.at(annotation_path, "annotation key is not in the patchPodMetadata allow-list")
                )
    return errors


# --- §5.8, §5.9 update-only and canary ------------------------------------------------------


def _update_errors(sidecarset: SidecarSet, old: SidecarSet) -> list[FieldError]:
    path = FieldPath().child("spec").child("containers")
    old_containers = {container.name: container for container in old.containers}
    errors: list[FieldError] = []
    for position, container in enumerate(sidecarset.containers):
        previous = old_containers.get(container.name)
        if previous is None:
            errors.append(
                FieldError.at(
                    path.index(position).child("name"),
                    f"container {container.name!r} is not in the current SidecarSet; "
                    "containers cannot be added or renamed on update",
                )
            )
        elif previous.upgrade_type and previous.upgrade_type != container.upgrade_type:
            errors.append(
                FieldError.at(
                    path.index(position).child("upgradeStrategy").child("upgradeType"),
                    f"may not change (was {previous.upgrade_type})",
                )
            )
    return errors


def _canary_errors(
    sidecarset: SidecarSet, old: SidecarSet | None, find_sidecarset: FindSidecarSet | None
) -> list[FieldError]:
    base = sidecarset.canary_base
    if base is None:
        return []
    base_path = FieldPath().child("metadata").child("annotations").key(CANARY_BASE_ANNOTATION)
    errors: list[FieldError] = []
    if base == sidecarset.name:
        errors.append(FieldError.at(base_path, "a canary SidecarSet cannot be its own base"))
    if old is not None and old.annotations.get(CANARY_BASE_ANNOTATION) != base:
        errors.append(FieldError.at(base_path, "is immutable"))
    if find_sidecarset is not None and base != sidecarset.name:
        base_sidecarset = find_sidecarset(base)
        if base_sidecarset is None:
            errors.append(FieldError.at(base_path, f"base SidecarSet {base!r} not found"))
        elif base_sidecarset.is_canary:
            errors.append(FieldError.at(base_path, f"base SidecarSet {base!r} is itself a canary"))
    if sidecarset.update_strategy.type != "NotUpdate":
        errors.append(
            FieldError.at(
                FieldPath().child("spec").child("updateStrategy").child("type"),
                "must be NotUpdate for a canary",
            )
        )
    return errors


# --- entry points ---------------------------------------------------------------------------


def _sidecarset_errors(
    sidecarset: SidecarSet,
    *,
    old: SidecarSet | None,
    find_sidecarset: FindSidecarSet | None,
    revision_exists: RevisionExists | None,
    patch_metadata_allowlist: Sequence[PatchMetadataAllowRule] | None,
    patch_metadata_defaults_allowed: bool,
) -> list[FieldError]:
    spec_path = FieldPath().child("spec")
    errors = _metadata_errors(sidecarset)
    errors.extend(_canary_errors(sidecarset, old, find_sidecarset))
    errors.extend(_selector_errors(sidecarset.selector, spec_path.child("selector"), required=True))
    errors.extend(
        _selector_errors(sidecarset.namespace_selector, spec_path.child("namespaceSelector"), required=False)
    )
    if not sidecarset.containers and not sidecarset.init_containers:
        errors.append(
            FieldError.at(spec_path.child("containers"), "containers or initContainers must be non-empty")
        )
    errors.extend(_injection_strategy_errors(sidecarset, revision_exists))
    errors.extend(pod_errors(sidecarset))
    errors.extend(_container_extra_errors(sidecarset))
    errors.extend(_hot_upgrade_name_errors(sidecarset))
    errors.extend(_update_strategy_errors(sidecarset))
    errors.extend(
        _patch_metadata_errors(sidecarset, patch_metadata_allowlist, patch_metadata_defaults_allowed)
    )
    if old is not None:
        errors.extend(_update_errors(sidecarset, old))
    return errors


def validate_sidecarset(
    source: SidecarSet | str | bytes | Mapping[str, Any] | Any,
    *,
    old: SidecarSet | None = None,
    find_sidecarset: FindSidecarSet | None = None,
    revision_exists: RevisionExists | None = None,
    patch_metadata_allowlist: Sequence[PatchMetadataAllowRule] | None = None,
    patch_metadata_defaults_allowed: bool = True,
) -> list[FieldError]:
    """Every problem with a SidecarSet, as field errors; an empty list means it is valid.

    Args:
        source: a parsed :class:`SidecarSet`, or YAML/JSON text or data in either Kruise version.
        old: the stored SidecarSet when this is an update (containers may not be added or
            renamed, ``upgradeType`` may not change, a canary's base may not change).
        find_sidecarset: looks up another SidecarSet by name (canary base must exist and not be
            a canary itself).
        revision_exists: whether ``injectionStrategy.revision`` resolves to a stored revision.
        patch_metadata_allowlist: the patchPodMetadata allow-list (§5.7); ``None``: none configured.
        patch_metadata_defaults_allowed: Kruise's gate ``SidecarSetPatchPodMetadataDefaultsAllowed``:
            when no allow-list rule applies to the SidecarSet (or there is no allow-list), every
            key is allowed if true, none if false (Kruise's default). Where a rule applies, its
            patterns decide either way.
    """
    sidecarset = source if isinstance(source, SidecarSet) else None
    if sidecarset is None:
        sidecarset, parse_errors = read_sidecarset(source)
        if sidecarset is None:
            return parse_errors
    return _sidecarset_errors(
        sidecarset,
        old=old,
        find_sidecarset=find_sidecarset,
        revision_exists=revision_exists,
        patch_metadata_allowlist=patch_metadata_allowlist,
        patch_metadata_defaults_allowed=patch_metadata_defaults_allowed,
    )


def check_sidecarset(
    source: SidecarSet | str | bytes | Mapping[str, Any] | Any,
    *,
    old: SidecarSet | None = None,
    find_sidecarset: FindSidecarSet | None = None,
    revision_exists: RevisionExists | None = None,
    patch_metadata_allowlist: Sequence[PatchMetadataAllowRule] | None = None,
    patch_metadata_defaults_allowed: bool = True,
) -> SidecarSet:
    """Parse and validate; return the SidecarSet or raise :class:`SidecarSetInvalid` with all errors."""
    sidecarset = source if isinstance(source, SidecarSet) else None
    if sidecarset is None:
        sidecarset, parse_errors = read_sidecarset(source)
        if sidecarset is None:
            raise SidecarSetInvalid(parse_errors)
    errors = _sidecarset_errors(
        sidecarset,
        old=old,
        find_sidecarset=find_sidecarset,
        revision_exists=revision_exists,
        patch_metadata_allowlist=patch_metadata_allowlist,
        patch_metadata_defaults_allowed=patch_metadata_defaults_allowed,
    )
    if errors:
        raise SidecarSetInvalid(errors)
    return sidecarset
