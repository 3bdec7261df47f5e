"""Decisions 4-9 (spec/README.md): where injection deliberately differs from Kruise."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from injection_builders import (
    annotation_json,
    by_name,
    container,
    env_pairs,
    make_pod,
    make_sidecarset,
    names,
    pod_containers,
    revision,
    run_injection,
)

from sidecarhub.sidecarset import InjectionCandidate
from sidecarhub.sidecarset.annotations import ANNOTATION_HASH, ANNOTATION_INJECTED_LIST

HOT: dict[str, Any] = {"upgradeStrategy": {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "empty:1"}}
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"


def test_decision_4_annotations_use_the_hub_prefix_and_env_keeps_kruise_names() -> None:
    kruise_list = {"kruise.io/sidecarset-injected-list": "someone-elses"}
    pod = make_pod(annotations=kruise_list)
    result = run_injection(pod, make_sidecarset("mesh", containers=[container("envoy", **HOT)]))
    written = set(result.pod["metadata"]["annotations"]) - set(kruise_list)
    assert written == {
        "sidecarhub.io/sidecarset-hash",
        "sidecarhub.io/sidecarset-hash-without-image",
        "sidecarhub.io/sidecarset-injected-list",
        "sidecarhub.io/sidecarset-working-hotupgrade-container",
        "version.sidecarset.sidecarhub.io/envoy-1",
        "versionalt.sidecarset.sidecarhub.io/envoy-1",
        "version.sidecarset.sidecarhub.io/envoy-2",
        "versionalt.sidecarset.sidecarhub.io/envoy-2",
    }
    # Kruise's own annotation is neither read nor changed: the hub's list names only its own.
    assert result.pod["metadata"]["annotations"]["kruise.io/sidecarset-injected-list"] == "someone-elses"
    assert result.pod["metadata"]["annotations"][ANNOTATION_INJECTED_LIST] == "mesh"
    assert [name for name, _ in env_pairs(by_name(result, "envoy-1"))] == [
        "IS_INJECTED",
        "SIDECARSET_VERSION",
        "SIDECARSET_VERSION_ALT",
    ]


def _name_order_sidecarsets() -> list:
    return [
        make_sidecarset(
            "b-mesh",
            containers=[container("envoy", volumeMounts=[{"name": "shared", "mountPath": "/b"}])],
            volumes=[{"name": "shared", "configMap": {"name": "from-b"}}],
            imagePullSecrets=[{"name": "secret-b"}],
            patchPodMetadata=[{"annotations": {"owner": "b-mesh"}, "patchPolicy": "Retain"}],
        ),
        make_sidecarset(
            "a-log",
            containers=[container("logtail", volumeMounts=[{"name": "shared", "mountPath": "/a"}])],
            volumes=[{"name": "shared", "configMap": {"name": "from-a"}}],
            imagePullSecrets=[{"name": "secret-a"}],
            patchPodMetadata=[{"annotations": {"owner": "a-log"}, "patchPolicy": "Retain"}],
        ),
        make_sidecarset("c-dns", containers=[container("dns")], imagePullSecrets=[{"name": "secret-c"}]),
    ]


def test_decision_5_sidecarsets_are_applied_in_name_order() -> None:
    sidecarsets = _name_order_sidecarsets()
    outputs = []
    for order in itertools.permutations(sidecarsets):
        result = run_injection(make_pod(), *order)
        outputs.append(result.pod)
        assert names(pod_containers(result)) == ["logtail", "envoy", "dns", "nginx"]
        assert [secret["name"] for secret in result.pod["spec"]["imagePullSecrets"]] == [
            "secret-a",
            "secret-b",
            "secret-c",
        ]
        # First in name order wins the shared volume name and the Retain race.
        assert result.pod["spec"]["volumes"] == [
            {"name": "shared", "configMap": {"name": "from-a", "defaultMode": 420}}
        ]
        assert result.pod["metadata"]["annotations"]["owner"] == "a-log"
    assert all(output == outputs[0] for output in outputs)


@pytest.mark.parametrize(
    ("namespace", "namespace_labels", "annotations", "extra_metadata", "reason"),
    [
        pytest.param("kube-system", {}, {}, {}, "namespace kube-system", id="kube-system"),
        pytest.param("kube-public", {}, {}, {}, "namespace kube-public", id="kube-public"),
        pytest.param(
            "apps",
            {"sidecarhub.io/inject": "disabled"},
            {},
            {},
            "sidecarhub.io/inject=disabled",
            id="ns-disabled",
        ),
        pytest.param("apps", {}, {"sidecarhub.io/inject": "false"}, {}, "annotated", id="pod-opt-out"),
        pytest.param(
            "apps", {}, {"kubernetes.io/config.mirror": "abc"}, {}, "mirror/static", id="mirror-pod"
        ),
        pytest.param(
            "apps", {}, {"kubernetes.io/config.source": "file"}, {}, "mirror/static", id="static-pod"
        ),
        pytest.param(
            "apps",
            {},
            {},
            {
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "u", "controller": True}
                ]
            },
            "mirror/static",
            id="node-owned",
        ),
    ],
)
def test_decision_6_excluded_pods_are_never_injected(
    namespace: str, namespace_labels: dict, annotations: dict, extra_metadata: dict, reason: str
) -> None:
    pod = make_pod(namespace=namespace, annotations=annotations)
    pod["metadata"].update(extra_metadata)
    sidecarset = make_sidecarset(containers=[container("envoy")])
    result = run_injection(pod, sidecarset, namespace_labels=namespace_labels)
    assert result.pod == pod
    assert result.injected == ()
    assert reason in result.excluded_reason


@pytest.mark.parametrize(
    ("namespace_labels", "annotations"),
    [
        pytest.param({"sidecarhub.io/inject": "enabled"}, {}, id="ns-label-other-value"),
        pytest.param({}, {"sidecarhub.io/inject": "true"}, id="pod-annotation-true"),
        pytest.param({}, {"kubernetes.io/config.source": "api"}, id="api-sourced-pod"),
    ],
)
def test_decision_6_near_misses_are_injected(namespace_labels: dict, annotations: dict) -> None:
    pod = make_pod(namespace="apps", annotations=annotations)
    result = run_injection(
        pod, make_sidecarset(containers=[container("envoy")]), namespace_labels=namespace_labels
    )
    assert result.injected == ("sidecarset1",)
    assert result.excluded_reason == ""


def _pinned(pin: dict, *, history_names: tuple[str, ...] = ()) -> InjectionCandidate:
    latest = make_sidecarset(
        containers=[container("envoy", "envoy:2")], injectionStrategy={"revision": pin}, customVersion="v2"
    )
    history = tuple(
        revision(
            make_sidecarset(containers=[container("envoy", f"envoy:{name}")], customVersion=name), name, n
        )
        for n, name in enumerate(history_names, start=1)
    )
    return InjectionCandidate(latest=revision(latest, "latest-rev", 10), history=history)


@pytest.mark.parametrize(
    ("pin", "described"),
    [
        pytest.param({"revisionName": "gone"}, "revisionName 'gone'", id="revision-name"),
        pytest.param({"customVersion": "gone"}, "customVersion 'gone'", id="custom-version"),
    ],
)
def test_decision_7_missing_pinned_revision_falls_back_to_latest_with_a_warning(
    pin: dict, described: str
) -> None:
    result = run_injection(make_pod(), _pinned(pin, history_names=("v1",)))
    assert by_name(result, "envoy")["image"] == "envoy:2"
    assert annotation_json(result, ANNOTATION_HASH)["sidecarset1"]["controllerRevision"] == "latest-rev"
    assert result.warnings == (
        f"SidecarSet sidecarset1: the pinned revision ({described}) no longer exists; "
        "injected the latest revision latest-rev instead",
    )


def test_decision_7_existing_pinned_revision_is_used_without_warning() -> None:
    result = run_injection(make_pod(), _pinned({"revisionName": "v1"}, history_names=("v1", "v0")))
    assert by_name(result, "envoy")["image"] == "envoy:v1"
    assert annotation_json(result, ANNOTATION_HASH)["sidecarset1"]["controllerRevision"] == "v1"
    assert result.warnings == ()


def test_decision_8_share_volume_policy_never_shares_the_service_account_token_mount() -> None:
    app = container(
        "nginx",
        volumeMounts=[
            {"name": "data", "mountPath": "/data"},
            {"name": "kube-api-access-x", "mountPath": TOKEN_PATH, "readOnly": True},
        ],
    )
    pod = make_pod(containers=[app], volumes=[{"name": "data", "emptyDir": {}}])
    sidecarset = make_sidecarset(containers=[container("logtail", shareVolumePolicy={"type": "enabled"})])
    result = run_injection(pod, sidecarset)
    assert by_name(result, "logtail")["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    # The app container keeps its own token mount.
    assert by_name(result, "nginx")["volumeMounts"] == app["volumeMounts"]


def test_decision_9_same_named_pod_container_is_replaced_with_a_warning() -> None:
    pod = make_pod(
        containers=[container("app"), container("envoy", "users-envoy:0.1")],
        init_containers=[container("init-net", "users-init:0.1")],
    )
    sidecarset = make_sidecarset(
        "mesh",
        containers=[container("envoy", "envoy:1.0")],
        initContainers=[container("init-net", "init:1.0")],
    )
    result = run_injection(pod, sidecarset)
    assert names(pod_containers(result)) == ["app", "envoy"]
    assert by_name(result, "envoy")["image"] == "envoy:1.0"
    assert by_name(result, "init-net", "initContainers")["image"] == "init:1.0"
    assert result.warnings == (
        "SidecarSet mesh: the pod's init container init-net was replaced by the sidecar of the same name",
        "SidecarSet mesh: the pod's container envoy was replaced by the sidecar of the same name",
    )


def test_decision_9_hot_upgrade_twins_do_not_replace_a_pod_container_named_like_the_spec() -> None:
    pod = make_pod(containers=[container("envoy", "users-envoy:0.1")])
    result = run_injection(pod, make_sidecarset("mesh", containers=[container("envoy", **HOT)]))
    assert names(pod_containers(result)) == ["envoy-1", "envoy-2", "envoy"]
    assert result.warnings == ()
