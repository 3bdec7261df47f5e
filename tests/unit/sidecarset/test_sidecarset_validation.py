"""One case per validation rule (injection.md §5 and decision 2), each with a passing and a failing input.

Every case starts from the valid minimal document in conftest.py, applies one change, and
checks the exact list of error paths, so a rule that fires too often fails its test as well.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from sidecarhub.sidecarset import (
    LabelSelector,
    PatchMetadataAllowRule,
    SidecarSet,
    SidecarSetInvalid,
    check_sidecarset,
    parse_sidecarset,
    validate_sidecarset,
)

Mutation = Callable[[dict[str, Any]], None]


def spec_set(**values: Any) -> Mutation:
    return lambda document: document["spec"].update(copy.deepcopy(values))


def container_set(index: int = 0, **values: Any) -> Mutation:
    return lambda document: document["spec"]["containers"][index].update(copy.deepcopy(values))


def metadata_set(**values: Any) -> Mutation:
    return lambda document: document["metadata"].update(copy.deepcopy(values))


def both(*mutations: Mutation) -> Mutation:
    def apply(document: dict[str, Any]) -> None:
        for mutation in mutations:
            mutation(document)

    return apply


NATIVE_INIT = {"name": "native", "image": "n:1", "restartPolicy": "Always"}
NOT_UPDATE = {"type": "NotUpdate"}
POLICY = {
    "targetContainersMode": "sum",
    "targetContainersNameRegex": ".*",
    "resourcesExpr": {"limits": {"cpu": "cpu*50%"}},
}
PVC = {"name": "disk", "persistentVolumeClaim": {"claimName": "data"}}


@dataclass(frozen=True)
class Rule:
    """A rule, the change that breaks it, and the change that satisfies it."""

    rule: str
    invalid: Mutation
    invalid_paths: list[str]
    valid: Mutation = field(default=lambda document: None)
    message: str = ""


RULES = [
    # §5.1 metadata
    Rule(
        "5.1 name pattern",
        metadata_set(name="mesh_1"),
        ["metadata.name"],
        metadata_set(name="mesh-1"),
        "RFC 1123 label",
    ),
    Rule("5.1 name length", metadata_set(name="a" * 64), ["metadata.name"], metadata_set(name="a" * 63)),
    Rule(
        "5.1 annotation key",
        metadata_set(annotations={"bad key": "x"}),
        ["metadata.annotations[bad key]"],
        metadata_set(annotations={"example.com/key": "x"}),
    ),
    Rule(
        "5.1 annotation size",
        metadata_set(annotations={"a": "x" * 300_000}),
        ["metadata.annotations"],
        metadata_set(annotations={"a": "x" * 1000}),
        "bytes",
    ),
    Rule(
        "5.1 label",
        metadata_set(labels={"app": "-bad"}),
        ["metadata.labels[app]"],
        metadata_set(labels={"app": "ok"}),
    ),
    # §5.2 native sidecar init containers need NotUpdate
    Rule(
        "5.2 native init with RollingUpdate",
        spec_set(initContainers=[NATIVE_INIT]),
        ["spec.initContainers[0]"],
        spec_set(initContainers=[NATIVE_INIT], updateStrategy=NOT_UPDATE),
        "NotUpdate",
    ),
    # §5.3 selectors (scenarios 37 and 39)
    Rule("5.3 selector required", lambda d: d["spec"].pop("selector"), ["spec.selector"], message="required"),
    Rule("5.3 selector non-empty", spec_set(selector={}), ["spec.selector"], message="empty"),
    Rule(
        "5.3 selector label value",
        spec_set(selector={"matchLabels": {"app": "app-risk-"}}),
        ["spec.selector.matchLabels[app]"],
        spec_set(selector={"matchLabels": {"app": "app-risk"}}),
    ),
    Rule(
        "5.3 selector operator",
        spec_set(selector={"matchExpressions": [{"key": "a", "operator": "Has"}]}),
        ["spec.selector.matchExpressions[0].operator"],
        spec_set(selector={"matchExpressions": [{"key": "a", "operator": "Exists"}]}),
    ),
    Rule(
        "5.3 selector In needs values",
        spec_set(selector={"matchExpressions": [{"key": "a", "operator": "In"}]}),
        ["spec.selector.matchExpressions[0].values"],
        spec_set(selector={"matchExpressions": [{"key": "a", "operator": "In", "values": ["b"]}]}),
    ),
    Rule(
        "5.3 namespaceSelector",
        spec_set(namespaceSelector={"matchLabels": {"team": "a-"}}),
        ["spec.namespaceSelector.matchLabels[team]"],
        spec_set(namespaceSelector={"matchLabels": {"team": "a"}}),
    ),
    Rule("5.3 namespaceSelector non-empty", spec_set(namespaceSelector={}), ["spec.namespaceSelector"]),
    # §2.2 at least one container (scenario 41)
    Rule(
        "2.2 containers required",
        spec_set(containers=[]),
        ["spec.containers"],
        spec_set(containers=[], initContainers=[{"name": "init", "image": "i:1"}]),
    ),
    # §5.4 injectionStrategy
    Rule(
        "5.4 revision needs a reference",
        spec_set(injectionStrategy={"revision": {"policy": "Always"}}),
        ["spec.injectionStrategy.revision"],
        spec_set(injectionStrategy={"revision": {"revisionName": "mesh-1"}}),
    ),
    Rule(
        "5.4 revision policy",
        spec_set(injectionStrategy={"revision": {"customVersion": "v1", "policy": "Some"}}),
        ["spec.injectionStrategy.revision.policy"],
        spec_set(injectionStrategy={"revision": {"customVersion": "v1", "policy": "Partial"}}),
    ),
    # §5.5.1 init containers: resourcesPolicy only on native sidecars (scenario 51)
    Rule(
        "5.5.1 resourcesPolicy on plain init",
        spec_set(initContainers=[{"name": "i", "image": "i:1", "resourcesPolicy": POLICY}]),
        ["spec.initContainers[0].resourcesPolicy"],
        spec_set(initContainers=[dict(NATIVE_INIT, resourcesPolicy=POLICY)], updateStrategy=NOT_UPDATE),
    ),
    # §5.5.2 containers
    Rule(
        "5.5.2 podInjectPolicy",
        container_set(podInjectPolicy="Middle"),
        ["spec.containers[0].podInjectPolicy"],
        container_set(podInjectPolicy="AfterAppContainer"),
    ),
    Rule(
        "5.5.2 shareVolumePolicy",
        container_set(shareVolumePolicy={"type": "on"}),
        ["spec.containers[0].shareVolumePolicy.type"],
        container_set(shareVolumePolicy={"type": "enabled"}),
    ),
    Rule(
        "5.5.2 transferEnv apiVersion",
        container_set(
            transferEnv=[
                {
                    "sourceContainerNameFrom": {
                        "fieldRef": {"apiVersion": "v2", "fieldPath": "metadata.labels['c']"}
                    }
                }
            ]
        ),
        ["spec.containers[0].transferEnv[0].sourceContainerNameFrom.fieldRef.apiVersion"],
        container_set(
            transferEnv=[{"sourceContainerNameFrom": {"fieldRef": {"fieldPath": "metadata.labels['c']"}}}]
        ),
    ),
    Rule(
        "5.5.2 transferEnv metadata.name rejected",
        container_set(
            transferEnv=[{"sourceContainerNameFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
        ),
        ["spec.containers[0].transferEnv[0].sourceContainerNameFrom.fieldRef.fieldPath"],
        container_set(
            transferEnv=[
                {"sourceContainerNameFrom": {"fieldRef": {"fieldPath": "metadata.annotations['Main/C']"}}}
            ]
        ),
    ),
    Rule(
        "5.5.2 transferEnv key",
        container_set(
            transferEnv=[{"sourceContainerNameFrom": {"fieldRef": {"fieldPath": "metadata.labels['-x']"}}}]
        ),
        ["spec.containers[0].transferEnv[0].sourceContainerNameFrom.fieldRef.fieldPath"],
    ),
    # §5.5.3 Kubernetes pod rules (scenarios 40, 43, 44, 45)
    Rule(
        "5.5.3 image required",
        spec_set(initContainers=[{"name": "init"}]),
        ["spec.initContainers[0].image"],
        spec_set(initContainers=[{"name": "init", "image": "busybox"}]),
        "required",
    ),
    Rule(
        "5.5.3 container name format",
        container_set(name="Envoy"),
        ["spec.containers[0].name"],
        container_set(name="envoy-2"),
    ),
    Rule(
        "5.5.3 container names unique",
        spec_set(initContainers=[{"name": "envoy", "image": "i:1"}]),
        ["spec.containers[0].name"],
        spec_set(initContainers=[{"name": "init", "image": "i:1"}]),
        "duplicate",
    ),
    Rule(
        "5.5.3 imagePullPolicy",
        container_set(imagePullPolicy="Sometimes"),
        ["spec.containers[0].imagePullPolicy"],
        container_set(imagePullPolicy="Never"),
    ),
    Rule(
        "5.5.3 terminationMessagePolicy",
        container_set(terminationMessagePolicy="Log"),
        ["spec.containers[0].terminationMessagePolicy"],
        container_set(terminationMessagePolicy="FallbackToLogsOnError"),
    ),
    Rule(
        "5.5.3 mount needs a SidecarSet volume",
        container_set(volumeMounts=[{"name": "logs", "mountPath": "/logs"}]),
        ["spec.containers[0].volumeMounts[0].name"],
        both(
            container_set(volumeMounts=[{"name": "logs", "mountPath": "/logs"}]),
            spec_set(volumes=[{"name": "logs"}]),
        ),
    ),
    Rule(
        "5.5.3 device needs a PVC volume",
        container_set(volumeDevices=[{"name": "disk", "devicePath": "/dev/x"}]),
        ["spec.containers[0].volumeDevices[0].name"],
        both(
            container_set(volumeDevices=[{"name": "disk", "devicePath": "/dev/x"}]), spec_set(volumes=[PVC])
        ),
    ),
    Rule(
        "5.5.3 device path equals mount path",
        both(
            container_set(
                volumeDevices=[{"name": "disk", "devicePath": "/data"}],
                volumeMounts=[{"name": "disk", "mountPath": "/data"}],
            ),
            spec_set(volumes=[PVC]),
        ),
        ["spec.containers[0].volumeMounts[0].mountPath", "spec.containers[0].volumeDevices[0].devicePath"],
    ),
    Rule(
        "5.5.3 duplicate mount path",
        both(
            container_set(volumeMounts=[{"name": "v", "mountPath": "/a"}, {"name": "v", "mountPath": "/a"}]),
            spec_set(volumes=[{"name": "v"}]),
        ),
        ["spec.containers[0].volumeMounts[1].mountPath"],
    ),
    Rule(
        "5.5.3 one volume source",
        spec_set(volumes=[{"name": "v", "emptyDir": {}, "hostPath": {"path": "/x"}}]),
        ["spec.volumes[0].hostPath"],
        spec_set(
            volumes=[
                {"name": "v"},
                {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}},
            ]
        ),
    ),
    Rule(
        "5.5.3 volume names",
        spec_set(volumes=[{"name": "v"}, {"name": "v"}, {"name": "a.b"}]),
        ["spec.volumes[1].name", "spec.volumes[2].name"],
    ),
    Rule(
        "5.5.3 container port",
        container_set(ports=[{"containerPort": 0}]),
        ["spec.containers[0].ports[0].containerPort"],
        container_set(ports=[{"containerPort": 8080, "name": "http"}]),
    ),
    Rule(
        "5.5.3 port protocol and name",
        container_set(ports=[{"containerPort": 80, "protocol": "HTTP", "name": "web--1"}]),
        ["spec.containers[0].ports[0].protocol", "spec.containers[0].ports[0].name"],
    ),
    Rule(
        "5.5.3 duplicate host ports",
        both(
            container_set(ports=[{"containerPort": 80, "hostPort": 8080}]),
            spec_set(
                initContainers=[dict(NATIVE_INIT, ports=[{"containerPort": 81, "hostPort": 8080}])],
                updateStrategy=NOT_UPDATE,
            ),
        ),
        ["spec.containers[0].ports[0].hostPort"],
        both(
            container_set(ports=[{"containerPort": 80, "hostPort": 8080}]),
            spec_set(
                initContainers=[dict(NATIVE_INIT, ports=[{"containerPort": 81, "hostPort": 8081}])],
                updateStrategy=NOT_UPDATE,
            ),
        ),
    ),
    Rule(
        "5.5.3 requests within limits",
        container_set(resources={"limits": {"cpu": "100m"}, "requests": {"cpu": "0.2"}}),
        ["spec.containers[0].resources.requests[cpu]"],
        container_set(resources={"limits": {"cpu": "1"}, "requests": {"cpu": "1000m"}}),
    ),
    Rule(
        "5.5.3 quantity format",
        container_set(resources={"limits": {"memory": "lots"}}),
        ["spec.containers[0].resources.limits[memory]"],
        container_set(resources={"limits": {"memory": "1.5Gi"}}),
    ),
    Rule(
        "5.5.3 probe handler",
        container_set(readinessProbe={"periodSeconds": 5}),
        ["spec.containers[0].readinessProbe"],
        container_set(readinessProbe={"tcpSocket": {"port": 80}}),
    ),
    Rule(
        "5.5.3 liveness successThreshold",
        container_set(livenessProbe={"exec": {"command": ["true"]}, "successThreshold": 2}),
        ["spec.containers[0].livenessProbe.successThreshold"],
        container_set(readinessProbe={"exec": {"command": ["true"]}, "successThreshold": 2}),
    ),
    Rule(
        "5.5.3 lifecycle handler",
        container_set(lifecycle={"preStop": {"exec": {"command": ["x"]}, "sleep": {"seconds": 1}}}),
        ["spec.containers[0].lifecycle.preStop.sleep"],
        container_set(lifecycle={"preStop": {"sleep": {"seconds": 1}}}),
    ),
    Rule(
        "5.5.3 restartPolicy only on init",
        container_set(restartPolicy="Always"),
        ["spec.containers[0].restartPolicy"],
    ),
    Rule(
        "5.5.3 init restartPolicy value",
        spec_set(initContainers=[{"name": "i", "image": "i:1", "restartPolicy": "OnFailure"}]),
        ["spec.initContainers[0].restartPolicy"],
    ),
    Rule(
        "5.5.3 probes on plain init containers",
        spec_set(
            initContainers=[{"name": "i", "image": "i:1", "readinessProbe": {"tcpSocket": {"port": 1}}}]
        ),
        ["spec.initContainers[0].readinessProbe"],
        spec_set(
            initContainers=[dict(NATIVE_INIT, readinessProbe={"tcpSocket": {"port": 1}})],
            updateStrategy=NOT_UPDATE,
        ),
    ),
    Rule(
        "5.5.3 env",
        container_set(
            env=[
                {"name": "A=B"},
                {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "x"}, "secretKeyRef": {"key": "k"}}},
            ]
        ),
        ["spec.containers[0].env[0].name", "spec.containers[0].env[1].valueFrom"],
        container_set(env=[{"name": "a.b-c", "value": "1"}]),
    ),
    # §5.5.4 resourcesPolicy (scenarios 49, 50, 58)
    Rule(
        "5.5.4 policy and resources exclusive",
        container_set(resourcesPolicy=POLICY, resources={"limits": {"cpu": "1"}}),
        ["spec.containers[0].resourcesPolicy"],
        container_set(resourcesPolicy=POLICY),
        "together",
    ),
    Rule(
        "5.5.4 regex required",
        container_set(resourcesPolicy=dict(POLICY, targetContainersNameRegex="")),
        ["spec.containers[0].resourcesPolicy.targetContainersNameRegex"],
    ),
    Rule(
        "5.5.4 regex compiles",
        container_set(resourcesPolicy=dict(POLICY, targetContainersNameRegex="app[")),
        ["spec.containers[0].resourcesPolicy.targetContainersNameRegex"],
    ),
    Rule(
        "5.5.4 limits or requests",
        container_set(resourcesPolicy=dict(POLICY, resourcesExpr={})),
        ["spec.containers[0].resourcesPolicy.resourcesExpr"],
    ),
    Rule(
        "5.5.4 expressions parse",
        container_set(
            resourcesPolicy=dict(
                POLICY, resourcesExpr={"limits": {"cpu": "cpu - 2"}, "requests": {"memory": "mem*2"}}
            )
        ),
        [
            "spec.containers[0].resourcesPolicy.resourcesExpr.limits.cpu",
            "spec.containers[0].resourcesPolicy.resourcesExpr.requests.memory",
        ],
        container_set(
            resourcesPolicy=dict(
                POLICY, resourcesExpr={"requests": {"memory": "max(memory*20% + 100Mi, 200Mi)"}}
            )
        ),
    ),
    # §5.6 updateStrategy (scenario 38)
    Rule(
        "5.6 partition with selector",
        spec_set(updateStrategy={"selector": {"matchLabels": {"c": "t"}}, "partition": "10%"}),
        ["spec.updateStrategy.partition"],
        spec_set(updateStrategy={"selector": {"matchLabels": {"c": "t"}}}),
    ),
    Rule(
        "5.6 update selector non-empty",
        spec_set(updateStrategy={"selector": {}}),
        ["spec.updateStrategy.selector"],
    ),
    Rule(
        "5.6 partition and maxUnavailable format",
        spec_set(updateStrategy={"partition": "abc%", "maxUnavailable": -1}),
        ["spec.updateStrategy.partition", "spec.updateStrategy.maxUnavailable"],
        spec_set(updateStrategy={"partition": "150%", "maxUnavailable": 0}),
    ),
    Rule(
        "5.6 checks only for RollingUpdate",
        spec_set(updateStrategy={"type": "NotUpdate", "partition": "abc%"}),
        [],
        message="(valid by Kruise's rule)",
    ),
    Rule(
        "5.6 one priority kind",
        spec_set(
            updateStrategy={
                "priorityStrategy": {
                    "orderPriority": [{"orderedKey": "k"}],
                    "weightPriority": [{"weight": 1, "matchSelector": {"matchLabels": {"a": "b"}}}],
                }
            }
        ),
        ["spec.updateStrategy.priorityStrategy"],
        spec_set(updateStrategy={"priorityStrategy": {"orderPriority": [{"orderedKey": "k"}]}}),
    ),
    Rule(
        "5.6 weight range and selector",
        spec_set(
            updateStrategy={"priorityStrategy": {"weightPriority": [{"weight": 101, "matchSelector": {}}]}}
        ),
        [
            "spec.updateStrategy.priorityStrategy.weightPriority[0].weight",
            "spec.updateStrategy.priorityStrategy.weightPriority[0].matchSelector",
        ],
        spec_set(
            updateStrategy={
                "priorityStrategy": {
                    "weightPriority": [{"weight": 0, "matchSelector": {"matchLabels": {"a": "b"}}}]
                }
            }
        ),
    ),
    Rule(
        "5.6 orderedKey required",
        spec_set(updateStrategy={"priorityStrategy": {"orderPriority": [{"orderedKey": ""}]}}),
        ["spec.updateStrategy.priorityStrategy.orderPriority[0].orderedKey"],
    ),
    Rule(
        "5.6 scatter terms",
        spec_set(
            updateStrategy={
                "scatterStrategy": [{"key": "z", "value": "1"}, {"key": "z", "value": "1"}, {"value": "2"}]
            }
        ),
        ["spec.updateStrategy.scatterStrategy[1]", "spec.updateStrategy.scatterStrategy[2].key"],
        spec_set(
            updateStrategy={"scatterStrategy": [{"key": "z", "value": "1"}, {"key": "z", "value": "*"}]}
        ),
    ),
    # §5.7 patchPodMetadata (scenario 46)
    Rule(
        "5.7 annotations required",
        spec_set(patchPodMetadata=[{"patchPolicy": "Overwrite"}]),
        ["spec.patchPodMetadata[0].annotations"],
        spec_set(patchPodMetadata=[{"annotations": {"a": "1"}}]),
    ),
    Rule(
        "5.7 key used once",
        spec_set(patchPodMetadata=[{"annotations": {"a": "1"}}, {"annotations": {"a": "2"}}]),
        ["spec.patchPodMetadata[1].annotations[a]"],
        spec_set(patchPodMetadata=[{"annotations": {"a": "1", "b": "2"}}]),
    ),
    Rule(
        "5.7 annotation key format",
        spec_set(patchPodMetadata=[{"annotations": {"a b": "1"}}]),
        ["spec.patchPodMetadata[0].annotations[a b]"],
    ),
    # Decision 2 (Kruise leaves these unchecked)
    # The apiserver refuses these names for the hub's custom resource; Kruise's webhook regex
    # (^[a-zA-Z0-9\-]+$) lets them through (issue 15).
    Rule(
        "D2 name lowercase",
        metadata_set(name="Mesh-1"),
        ["metadata.name"],
        metadata_set(name="mesh-1"),
        "lowercase RFC 1123 label",
    ),
    Rule(
        "D2 name starts and ends with a letter or digit",
        metadata_set(name="-mesh-"),
        ["metadata.name"],
        metadata_set(name="0mesh9"),
        "starting and ending with a letter or digit",
    ),
    Rule(
        "D2 patchPolicy enum",
        spec_set(patchPodMetadata=[{"annotations": {"a": "1"}, "patchPolicy": "Replace"}]),
        ["spec.patchPodMetadata[0].patchPolicy"],
        spec_set(patchPodMetadata=[{"annotations": {"a": "{}"}, "patchPolicy": "MergePatchJson"}]),
    ),
    Rule(
        "D2 upgradeType enum",
        container_set(upgradeStrategy={"upgradeType": "hotupgrade"}),
        ["spec.containers[0].upgradeStrategy.upgradeType"],
        container_set(upgradeStrategy={"upgradeType": "ColdUpgrade"}),
    ),
    Rule(
        "D2 hotUpgradeEmptyImage required",
        container_set(upgradeStrategy={"upgradeType": "HotUpgrade"}),
        ["spec.containers[0].upgradeStrategy.hotUpgradeEmptyImage"],
        container_set(upgradeStrategy={"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "empty:1"}),
    ),
    Rule(
        "D2 hot-upgrade twin names",
        both(
            container_set(upgradeStrategy={"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "e:1"}),
            lambda d: d["spec"]["containers"].append({"name": "envoy-1", "image": "x:1"}),
            spec_set(initContainers=[{"name": "envoy-2", "image": "i:1"}]),
        ),
        ["spec.containers[0].name", "spec.containers[0].name"],
        both(
            container_set(upgradeStrategy={"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "e:1"}),
            lambda d: d["spec"]["containers"].append({"name": "envoy-3", "image": "x:1"}),
        ),
        "collides",
    ),
]


def paths(errors: list[Any]) -> list[str]:
    return [error.path for error in errors]


def test_the_base_document_is_valid(document: dict[str, Any]) -> None:
    assert validate_sidecarset(document) == []


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.rule)
def test_rule_rejects_the_invalid_input(document: dict[str, Any], rule: Rule) -> None:
    rule.invalid(document)
    errors = validate_sidecarset(document)
    assert sorted(paths(errors)) == sorted(rule.invalid_paths)
    if rule.invalid_paths and rule.message and not rule.message.startswith("("):
        assert any(rule.message in error.message for error in errors), errors


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.rule)
def test_rule_accepts_the_valid_input(document: dict[str, Any], rule: Rule) -> None:
    rule.valid(document)
    assert validate_sidecarset(document) == []


# --- rules that need the outside world --------------------------------------------------------------


def test_5_4_pinned_revision_must_resolve(make_document: Callable[..., dict[str, Any]]) -> None:
    sidecarset = parse_sidecarset(make_document(injectionStrategy={"revision": {"customVersion": "v9"}}))
    seen: list[str | None] = []

    def revision_exists(owner: SidecarSet, revision: Any) -> bool:
        seen.append(revision.custom_version)
        return revision.custom_version == "v1"

    errors = validate_sidecarset(sidecarset, revision_exists=revision_exists)
    assert paths(errors) == ["spec.injectionStrategy.revision.customVersion"] and seen == ["v9"]
    ok = parse_sidecarset(make_document(injectionStrategy={"revision": {"customVersion": "v1"}}))
    assert validate_sidecarset(ok, revision_exists=revision_exists) == []


def test_5_7_allow_list(make_document: Callable[..., dict[str, Any]]) -> None:
    document = make_document(patchPodMetadata=[{"annotations": {"key1": "v"}}])
    document["metadata"]["labels"] = {"team": "mesh"}
    sidecarset = parse_sidecarset(document)
    allowed = [PatchMetadataAllowRule(allowed_key_patterns=("key.*",))]
    other_key = [PatchMetadataAllowRule(allowed_key_patterns=("key2",))]
    other_team = [
        PatchMetadataAllowRule(("key.*",), selector=LabelSelector.from_dict({"matchLabels": {"team": "db"}}))
    ]
    same_team = [
        PatchMetadataAllowRule(
            ("key.*",), selector=LabelSelector.from_dict({"matchLabels": {"team": "mesh"}})
        )
    ]

    key1 = ["spec.patchPodMetadata[0].annotations[key1]"]
    # Kruise's default (gate SidecarSetPatchPodMetadataDefaultsAllowed off): without an
    # applicable rule nothing may be patched.
    for rules in (None, other_key, other_team, []):
        errors = validate_sidecarset(
            sidecarset, patch_metadata_allowlist=rules, patch_metadata_defaults_allowed=False
        )
        assert paths(errors) == key1
    # The hub's default (the gate on): without an applicable rule every key is allowed; a rule
    # that applies still decides.
    for rules in (None, other_team, []):
        assert validate_sidecarset(sidecarset, patch_metadata_allowlist=rules) == []
    assert paths(validate_sidecarset(sidecarset, patch_metadata_allowlist=other_key)) == key1
    for defaults_allowed in (True, False):
        for rules in (allowed, same_team):
            errors = validate_sidecarset(
                sidecarset, patch_metadata_allowlist=rules, patch_metadata_defaults_allowed=defaults_allowed
            )
            assert errors == []


def test_5_8_update_rules(make_document: Callable[..., dict[str, Any]]) -> None:
    old = parse_sidecarset(
        make_document(containers=[{"name": "envoy", "image": "e:1"}, {"name": "log", "image": "l:1"}])
    )
    image_change = parse_sidecarset(make_document(containers=[{"name": "envoy", "image": "e:2"}]))
    added = parse_sidecarset(
        make_document(containers=[{"name": "envoy", "image": "e:1"}, {"name": "new", "image": "n:1"}])
    )
    hot = parse_sidecarset(
        make_document(
            containers=[
                {
                    "name": "envoy",
                    "image": "e:1",
                    "upgradeStrategy": {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "x:1"},
                }
            ]
        )
    )

    assert validate_sidecarset(image_change, old=old) == []  # removing "log" is allowed
    assert paths(validate_sidecarset(added, old=old)) == ["spec.containers[1].name"]
    assert paths(validate_sidecarset(hot, old=old)) == ["spec.containers[0].upgradeStrategy.upgradeType"]
    assert paths(validate_sidecarset(added)) == []  # without old, the update rules do not apply


def _canary(
    name: str, base: str, update_type: str = "NotUpdate", canary_value: str = "true"
) -> dict[str, Any]:
    return {
        "apiVersion": "apps.kruise.io/v1beta1",
        "kind": "SidecarSet",
        "metadata": {
            "name": name,
            "annotations": {
                "apps.kruise.io/sidecarset-canary": canary_value,
                "apps.kruise.io/sidecarset-base": base,
            },
        },
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "containers": [{"name": "envoy", "image": "envoy:2"}],
            "updateStrategy": {"type": update_type},
        },
    }


def test_5_9_canary_rules(make_document: Callable[..., dict[str, Any]]) -> None:
    base = parse_sidecarset(make_document(name="base"))
    other_canary = parse_sidecarset(_canary("other", "base"))
    stored = {"base": base, "other": other_canary}
    base_path = "metadata.annotations[apps.kruise.io/sidecarset-base]"

    assert validate_sidecarset(_canary("canary", "base"), find_sidecarset=stored.get) == []
    assert paths(validate_sidecarset(_canary("canary", "canary"), find_sidecarset=stored.get)) == [base_path]
    assert paths(validate_sidecarset(_canary("canary", "missing"), find_sidecarset=stored.get)) == [base_path]
    assert paths(validate_sidecarset(_canary("canary", "other"), find_sidecarset=stored.get)) == [base_path]
    assert paths(validate_sidecarset(_canary("canary", "base", "RollingUpdate"))) == [
        "spec.updateStrategy.type"
    ]
    old = parse_sidecarset(_canary("canary", "base"))
    assert validate_sidecarset(_canary("canary", "base"), old=old) == []
    assert paths(validate_sidecarset(_canary("canary", "base2"), old=old)) == [base_path]
    # Only the exact value "true" makes a canary (scenario 59).
    assert parse_sidecarset(_canary("c", "base", canary_value="TRUE")).is_canary is False
    assert validate_sidecarset(_canary("c", "c", "RollingUpdate", canary_value="1")) == []


def test_all_errors_are_returned_together(document: dict[str, Any]) -> None:
    document["metadata"]["name"] = "bad_name"
    document["spec"]["containers"][0].pop("image")
    document["spec"]["containers"][0]["podInjectPolicy"] = "Middle"
    document["spec"]["updateStrategy"] = {"maxUnavailable": "x"}
    assert sorted(paths(validate_sidecarset(document))) == [
        "metadata.name",
        "spec.containers[0].image",
        "spec.containers[0].podInjectPolicy",
        "spec.updateStrategy.maxUnavailable",
    ]


def test_check_sidecarset_raises_with_every_error(document: dict[str, Any]) -> None:
    assert check_sidecarset(document).name == "mesh"
    document["spec"]["containers"][0].pop("image")
    document["metadata"]["name"] = "bad_name"
    with pytest.raises(SidecarSetInvalid) as caught:
        check_sidecarset(document)
    assert sorted(paths(list(caught.value.errors))) == ["metadata.name", "spec.containers[0].image"]
    assert "spec.containers[0].image: required" in str(caught.value)
