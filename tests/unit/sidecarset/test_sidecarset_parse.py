"""Parsing into the canonical form: shapes, decision 1, Kruise's defaults and version conversion."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecarhub.sidecarset import (
    FieldError,
    LabelSelector,
    SidecarSet,
    SidecarSetInvalid,
    parse_sidecarset,
    read_sidecarset,
    to_kruise,
    validate_sidecarset,
)

V1ALPHA1 = "apps.kruise.io/v1alpha1"


def errors_of(source: Any) -> list[str]:
    sidecarset, errors = read_sidecarset(source)
    assert sidecarset is None, "expected the document to be refused"
    return [str(error) for error in errors]


# --- wrong kind, version, types, unknown fields -------------------------------------------------


def test_wrong_kind_and_api_version_name_the_fields(document: dict[str, Any]) -> None:
    document["kind"] = "Deployment"
    document["apiVersion"] = "apps/v1"
    assert errors_of(document) == [
        "apiVersion: must be apps.kruise.io/v1alpha1 or apps.kruise.io/v1beta1, not 'apps/v1'",
        "kind: must be SidecarSet, not 'Deployment'",
    ]


def test_unknown_fields_are_rejected_with_their_paths(document: dict[str, Any]) -> None:
    document["spec"]["containers"][0]["imagee"] = "typo:1"
    document["spec"]["containers"][0]["upgradeStrategy"] = {"upgradeTyp": "HotUpgrade"}
    document["spec"]["updateStrategy"] = {"partitions": 1}
    document["spec"]["volumes"] = [{"name": "v", "emptyDir": {"medium": "Memory", "sizeLimt": "1Gi"}}]
    document["metadata"]["labelz"] = {}
    document["extra"] = True

    assert sorted(errors_of(document)) == sorted(
        [
            "spec.containers[0].imagee: unknown field",
            "spec.containers[0].upgradeStrategy.upgradeTyp: unknown field",
            "spec.updateStrategy.partitions: unknown field",
            "spec.volumes[0].emptyDir.sizeLimt: unknown field",
            "metadata.labelz: unknown field",
            "extra: unknown field",
        ]
    )


def test_version_specific_fields_are_unknown_in_the_other_version(document: dict[str, Any]) -> None:
    beta = dict(document, spec=dict(document["spec"], namespace="ns-1"))
    alpha = dict(document, apiVersion=V1ALPHA1, spec=dict(document["spec"], customVersion="v1"))
    assert errors_of(beta) == ["spec.namespace: unknown field"]
    assert errors_of(alpha) == ["spec.customVersion: unknown field"]


def test_wrong_types_name_the_field(document: dict[str, Any]) -> None:
    document["spec"]["containers"][0]["ports"] = [{"containerPort": "80"}]
    document["spec"]["containers"][0]["resources"] = {"limits": {"cpu": ["1"]}}
    document["spec"]["revisionHistoryLimit"] = "ten"
    document["spec"]["updateStrategy"] = {"partition": 1.5}
    assert sorted(errors_of(document)) == [
        "spec.containers[0].ports[0].containerPort: must be integer, not string",
        "spec.containers[0].resources.limits[cpu]: must be string or number, not array",
        "spec.revisionHistoryLimit: must be integer, not string",
        "spec.updateStrategy.partition: must be integer or string, not number",
    ]


def test_missing_required_fields(document: dict[str, Any]) -> None:
    del document["metadata"]["name"]
    document["spec"]["containers"][0].pop("name")
    assert sorted(errors_of(document)) == ["metadata.name: required", "spec.containers[0].name: required"]


@pytest.mark.parametrize(
    "garbage",
    [None, [], [1, 2], "just a string", 42, "", b"\x00\x01", {"spec": "x"}, {"apiVersion": None}],
    ids=repr,
)
def test_garbage_gives_errors_never_exceptions(garbage: Any) -> None:
    errors = validate_sidecarset(garbage)
    assert errors and all(isinstance(error, FieldError) for error in errors)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.update(spec="nope"), "spec: must be object, not string"),
        (lambda d: d["spec"].update(containers={"name": "x"}), "spec.containers: must be array, not object"),
        (
            lambda d: d["spec"]["containers"].append("sidecar"),
            "spec.containers[1]: must be object, not string",
        ),
        (lambda d: d["spec"].update(volumes=[None]), "spec.volumes[0]: must be object, not null"),
        (lambda d: d["spec"].update(selector=[]), "spec.selector: must be object, not array"),
        (lambda d: d.update(metadata=None), "metadata: must be object, not null"),
    ],
)
def test_wrong_shapes_name_the_field(
    document: dict[str, Any], mutate: Callable[[dict[str, Any]], None], expected: str
) -> None:
    mutate(document)
    assert expected in errors_of(document)


def test_parse_sidecarset_raises_with_all_errors(document: dict[str, Any]) -> None:
    document["kind"] = "Pod"
    document["apiVersion"] = "v1"
    with pytest.raises(SidecarSetInvalid) as caught:
        parse_sidecarset(document)
    assert [error.path for error in caught.value.errors] == ["apiVersion", "kind"]


# --- decision 1 ----------------------------------------------------------------------------------


def test_decision_1_v1alpha1_with_namespace_and_namespace_selector_is_rejected(
    document: dict[str, Any],
) -> None:
    document["apiVersion"] = V1ALPHA1
    document["spec"]["namespace"] = "ns-1"
    document["spec"]["namespaceSelector"] = {"matchLabels": {"team": "a"}}
    errors = errors_of(document)
    assert len(errors) == 1
    assert errors[0].startswith("spec.namespaceSelector: may not be set together with spec.namespace")


def test_decision_1_v1alpha1_namespace_becomes_a_namespace_selector(document: dict[str, Any]) -> None:
    document["apiVersion"] = V1ALPHA1
    document["spec"]["namespace"] = "ns-1"
    sidecarset = parse_sidecarset(document)
    assert sidecarset.namespace_selector == LabelSelector.from_dict(
        {"matchLabels": {"kubernetes.io/metadata.name": "ns-1"}}
    )
    # Kruise's v1beta1 -> v1alpha1 conversion never restores spec.namespace.
    exported = to_kruise(sidecarset, "v1alpha1")
    assert "namespace" not in exported["spec"]
    assert exported["spec"]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "ns-1"}}


def test_v1alpha1_and_v1beta1_forms_of_one_definition_are_equal(document: dict[str, Any]) -> None:
    beta = dict(document, spec=dict(document["spec"], customVersion="v7"))
    beta["spec"]["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": "ns-1"}}
    alpha = dict(document, apiVersion=V1ALPHA1, spec=dict(document["spec"], namespace="ns-1"))
    alpha["metadata"] = {"name": "mesh", "labels": {"apps.kruise.io/sidecarset-custom-version": "v7"}}
    assert parse_sidecarset(alpha) == parse_sidecarset(beta)
    assert parse_sidecarset(alpha).custom_version == "v7"
    assert parse_sidecarset(alpha).labels == {}


def test_custom_version_becomes_a_label_in_v1alpha1(make_document: Callable[..., dict[str, Any]]) -> None:
    exported = to_kruise(parse_sidecarset(make_document(customVersion="v7")), "v1alpha1")
    assert exported["metadata"]["labels"] == {"apps.kruise.io/sidecarset-custom-version": "v7"}
    assert "customVersion" not in exported["spec"]


def test_to_kruise_refuses_an_unknown_version(document: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="unknown Kruise version"):
        to_kruise(parse_sidecarset(document), "v2")  # type: ignore[arg-type]  # deliberately not a KruiseVersion


def test_server_metadata_status_and_kruise_hash_annotations_are_not_part_of_the_definition(
    document: dict[str, Any],
) -> None:
    plain = parse_sidecarset(document)
    document["metadata"].update(
        uid="0b7a",
        resourceVersion="12",
        generation=3,
        creationTimestamp="2024-01-01T00:00:00Z",
        annotations={"kruise.io/sidecarset-hash": "abc", "kruise.io/sidecarset-hash-without-image": "def"},
    )
    document["status"] = {"matchedPods": 3, "updatedPods": 1, "readyPods": 3, "latestRevision": "mesh-1"}
    assert parse_sidecarset(document) == plain


# --- defaults (injection.md §3; scenario 60 of §14.4) ------------------------------------------


def test_kruise_defaults_on_a_bare_sidecarset(document: dict[str, Any]) -> None:
    document["spec"]["initContainers"] = [{"name": "init", "image": "busybox"}]
    document["spec"]["patchPodMetadata"] = [{"annotations": {"a": "b"}}]
    document["spec"]["injectionStrategy"] = {"revision": {"customVersion": "v1"}}
    spec = parse_sidecarset(document).to_spec_dict()

    assert spec["updateStrategy"] == {"type": "RollingUpdate", "partition": 0, "maxUnavailable": 1}
    assert spec["containers"][0] == {
        "name": "envoy",
        "image": "envoy:1.0",
        "podInjectPolicy": "BeforeAppContainer",
        "upgradeStrategy": {"upgradeType": "ColdUpgrade"},
        "shareVolumePolicy": {"type": "disabled"},
        "imagePullPolicy": "IfNotPresent",
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }
    assert spec["initContainers"][0]["podInjectPolicy"] == "AfterAppContainer"
    assert spec["initContainers"][0]["imagePullPolicy"] == "Always"  # no tag means latest
    assert spec["patchPodMetadata"] == [{"annotations": {"a": "b"}, "patchPolicy": "Retain"}]
    assert spec["injectionStrategy"] == {"revision": {"customVersion": "v1", "policy": "Always"}}
    assert spec["revisionHistoryLimit"] == 10


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("registry:5000/nginx", "Always"),
        ("nginx:1.25", "IfNotPresent"),
        ("registry:5000/nginx:1.25", "IfNotPresent"),
        ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
    ],
)
def test_image_pull_policy_default_follows_the_tag(document: dict[str, Any], image: str, policy: str) -> None:
    document["spec"]["containers"][0]["image"] = image
    assert parse_sidecarset(document).containers[0].data["imagePullPolicy"] == policy


def test_container_and_volume_defaults(document: dict[str, Any]) -> None:
    container = document["spec"]["containers"][0]
    container.update(
        ports=[{"containerPort": 80}],
        env=[{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
        resources={"limits": {"cpu": "0.0001", "memory": "64Mi"}},
        livenessProbe={"httpGet": {"port": 80}},
        startupProbe={"httpGet": {"port": 80}},
        lifecycle={"preStop": {"httpGet": {"port": 80}}},
        transferEnv=[
            {"sourceContainerNameFrom": {"fieldRef": {"fieldPath": "metadata.labels['c']"}}, "envName": "X"}
        ],
        imagePullPolicy="Never",
    )
    document["spec"]["volumes"] = [
        {"name": "scratch"},
        {"name": "host", "hostPath": {"path": "/var/log"}},
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
    ]
    spec = parse_sidecarset(document).to_spec_dict()
    defaulted = spec["containers"][0]

    assert defaulted["imagePullPolicy"] == "Never"  # set values are kept
    assert defaulted["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert defaulted["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"
    assert defaulted["transferEnv"][0]["sourceContainerNameFrom"]["fieldRef"]["apiVersion"] == "v1"
    assert defaulted["resources"]["limits"] == {"cpu": "1m", "memory": "64Mi"}
    assert defaulted["livenessProbe"] == {
        "httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    assert defaulted["startupProbe"] == {"httpGet": {"port": 80}}  # Kruise does not default startupProbe
    assert defaulted["lifecycle"]["preStop"]["httpGet"] == {"port": 80, "path": "/", "scheme": "HTTP"}
    assert spec["volumes"] == [
        {"name": "scratch", "emptyDir": {}},
        {"name": "host", "hostPath": {"path": "/var/log", "type": ""}},
        {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 420}},
        {
            "name": "token",
            "projected": {
                "sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}],
                "defaultMode": 420,
            },
        },
    ]


def test_defaulting_is_idempotent(make_document: Callable[..., dict[str, Any]]) -> None:
    first = parse_sidecarset(make_document(volumes=[{"name": "v"}]))
    assert parse_sidecarset(to_kruise(first)) == first


# --- canonical object conveniences ------------------------------------------------------------


def test_canonical_object_views(make_document: Callable[..., dict[str, Any]]) -> None:
    sidecarset = parse_sidecarset(
        make_document(
            initContainers=[{"name": "native", "image": "n:1", "restartPolicy": "Always"}],
            containers=[
                {
                    "name": "envoy",
                    "image": "envoy:1",
                    "upgradeStrategy": {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "empty:1"},
                    "volumeMounts": [{"name": "cfg", "mountPath": "/etc"}],
                },
            ],
            volumes=[{"name": "cfg", "emptyDir": {}}],
            imagePullSecrets=[{"name": "pull"}],
        )
    )
    assert isinstance(sidecarset, SidecarSet)
    assert sidecarset.name == "mesh"
    assert sidecarset.container_names == ("envoy",)
    assert sidecarset.init_container_names == ("native",)
    assert sidecarset.volume_names == ("cfg",)
    assert sidecarset.image_pull_secrets == ("pull",)
    assert sidecarset.init_containers[0].is_native_sidecar
    assert sidecarset.containers[0].hot_upgrade_names == ("envoy-1", "envoy-2")
    assert sidecarset.containers[0].volume_names == ("cfg",)
    assert "upgradeStrategy" not in sidecarset.containers[0].core_container()
    assert sidecarset.selector is not None and sidecarset.selector.matches({"app": "web", "x": "y"})
    assert not sidecarset.selector.matches({"app": "db"})
    with pytest.raises(TypeError):
        sidecarset.containers[0].data["image"] = "other"  # type: ignore[index]  # deliberately writing a read-only mapping


# --- garbage anywhere: errors, never exceptions (property) ---------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 70000) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
_spec_keys = st.sampled_from(
    [
        "selector",
        "namespaceSelector",
        "containers",
        "initContainers",
        "volumes",
        "updateStrategy",
        "injectionStrategy",
        "imagePullSecrets",
        "revisionHistoryLimit",
        "patchPodMetadata",
        "customVersion",
    ]
)
_container_keys = st.sampled_from(
    [
        "name",
        "image",
        "ports",
        "env",
        "resources",
        "volumeMounts",
        "livenessProbe",
        "lifecycle",
        "restartPolicy",
        "upgradeStrategy",
        "shareVolumePolicy",
        "transferEnv",
        "resourcesPolicy",
        "podInjectPolicy",
    ]
)


@settings(max_examples=150, deadline=None)
@given(
    spec_key=_spec_keys, container_key=_container_keys, spec_value=_json_values, container_value=_json_values
)
def test_any_value_in_any_field_gives_errors_or_a_result_never_an_exception(
    spec_key: str, container_key: str, spec_value: Any, container_value: Any
) -> None:
    document: dict[str, Any] = {
        "apiVersion": "apps.kruise.io/v1beta1",
        "kind": "SidecarSet",
        "metadata": {"name": "mesh"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "containers": [{"name": "envoy", "image": "e:1"}],
        },
    }
    document["spec"]["containers"][0][container_key] = container_value
    document["spec"][spec_key] = spec_value
    errors = validate_sidecarset(document)
    assert all(isinstance(error, FieldError) and error.path and error.message for error in errors)
