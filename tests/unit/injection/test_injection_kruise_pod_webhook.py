"""injection.md §14.1: the scenarios of Kruise's pod-webhook tests, one test (or case) each."""

from __future__ import annotations

import json
from typing import Any

import pytest
from injection_builders import (
    NOW_TEXT,
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

from sidecarhub.sidecarset import (
    InjectionCandidate,
    InjectionError,
    SidecarSet,
    hash_without_images,
    revision_hash,
)
from sidecarhub.sidecarset.annotations import (
    ANNOTATION_HASH,
    ANNOTATION_HASH_WITHOUT_IMAGE,
    ANNOTATION_INJECTED_LIST,
    ANNOTATION_WORKING_HOT_UPGRADE_CONTAINER,
    version_alt_annotation,
    version_annotation,
)

IS_INJECTED = ("IS_INJECTED", "true")


# §14.1 scenario 1
def test_pod_labels_not_matching_the_selector_leave_the_pod_unchanged() -> None:
    pod = make_pod(labels={"app": "redis"})
    result = run_injection(pod, make_sidecarset(containers=[container("dns-f")]))
    assert result.pod == pod
    assert result.injected == ()
    assert result.json_patch() == []


# §14.1 scenarios 2-5
@pytest.mark.parametrize(
    ("pod_secrets", "sidecarset_secrets", "expected"),
    [
        pytest.param(
            ["s2", "s3", "s3"], ["s0", "s1", "s2"], ["s2", "s3", "s0", "s1"], id="2-overlap-and-dup"
        ),
        pytest.param(
            ["s3", "s4", "s5"], ["s0", "s1", "s2"], ["s3", "s4", "s5", "s0", "s1", "s2"], id="3-disjoint"
        ),
        pytest.param([], ["s0", "s1", "s2"], ["s0", "s1", "s2"], id="4-no-pod-secrets"),
        pytest.param(["s0", "s1", "s2"], [], ["s0", "s1", "s2"], id="5-no-sidecarset-secrets"),
    ],
)
def test_image_pull_secrets_are_merged(
    pod_secrets: list[str], sidecarset_secrets: list[str], expected: list[str]
) -> None:
    pod = make_pod(imagePullSecrets=[{"name": name} for name in pod_secrets])
    sidecarset = make_sidecarset(
        containers=[container("dns-f")], imagePullSecrets=[{"name": name} for name in sidecarset_secrets]
    )
    result = run_injection(pod, sidecarset)
    assert [secret["name"] for secret in result.pod["spec"]["imagePullSecrets"]] == expected


# §14.1 scenario 6
def test_paused_injection_strategy_injects_nothing() -> None:
    pod = make_pod()
    sidecarset = make_sidecarset(containers=[container("dns-f")], injectionStrategy={"paused": True})
    result = run_injection(pod, sidecarset)
    assert names(pod_containers(result)) == ["nginx"]
    assert result.pod == pod


# §14.1 scenario 7
def test_patch_pod_metadata_merge_patch_json_from_two_sidecarsets_and_retain() -> None:
    first = make_sidecarset(
        "sidecarset1",
        containers=[container("log-agent")],
        patchPodMetadata=[
            {"annotations": {"key1": '{"log-agent":1}'}, "patchPolicy": "MergePatchJson"},
            {"annotations": {"key": "envoy=1,log=2"}, "patchPolicy": "Retain"},
        ],
    )
    second = make_sidecarset(
        "sidecarset2",
        containers=[container("envoy")],
        patchPodMetadata=[{"annotations": {"key1": '{"envoy":2}'}, "patchPolicy": "MergePatchJson"}],
    )
    result = run_injection(make_pod(), second, first)
    annotations = result.pod["metadata"]["annotations"]
    assert annotations["key1"] == '{"envoy":2,"log-agent":1}'
    assert annotations["key"] == "envoy=1,log=2"


# §14.1 scenario 8
def test_custom_version_pin_injects_the_historical_spec() -> None:
    historical = make_sidecarset(
        customVersion="v1",
        initContainers=[container("init-1")],
        containers=[container("dns-f", "dns:1.0")],
        updateStrategy={"type": "NotUpdate"},
    )
    latest = make_sidecarset(
        customVersion="v2",
        initContainers=[container("init-1"), container("init-2")],
        containers=[container("dns-f", "dns:2.0"), container("log-agent")],
        injectionStrategy={"revision": {"customVersion": "v1"}},
        updateStrategy={"type": "NotUpdate"},
    )
    candidate = InjectionCandidate(
        latest=revision(latest, "sidecarset1-b", 2), history=(revision(historical, "sidecarset1-a", 1),)
    )
    pod = make_pod()
    result = run_injection(pod, candidate)
    added = len(pod_containers(result)) + len(pod_containers(result, "initContainers")) - 1
    assert added == 2
    assert by_name(result, "dns-f")["image"] == "dns:1.0"
    record = annotation_json(result, ANNOTATION_HASH)["sidecarset1"]
    assert record["hash"] == revision_hash(historical)
    assert record["controllerRevision"] == "sidecarset1-a"


def _partial_candidate(
    *, partition: int | str | None = None, selector: dict | None = None, paused: bool = False
) -> InjectionCandidate:
    strategy: dict = {"type": "NotUpdate", "paused": paused}
    if partition is not None:
        strategy["partition"] = partition
    strategy["selector"] = selector if selector is not None else {"matchLabels": {"canary": "true"}}
    historical = make_sidecarset(containers=[container("dns-f", "dns:old")], customVersion="old")
    latest = make_sidecarset(
        containers=[container("dns-f", "dns:new")],
        injectionStrategy={"revision": {"customVersion": "old", "policy": "Partial"}},
        updateStrategy=strategy,
    )
    return InjectionCandidate(latest=revision(latest, "ss-2", 2), history=(revision(historical, "ss-1", 1),))


# §14.1 scenario 9
@pytest.mark.parametrize(
    ("labels", "partition", "paused", "expected_image"),
    [
        pytest.param({"app": "nginx"}, None, False, "dns:old", id="stable-pod-gets-history"),
        pytest.param({"app": "nginx", "canary": "true"}, None, False, "dns:new", id="canary-no-partition"),
        pytest.param({"app": "nginx", "canary": "true"}, "100%", False, "dns:old", id="canary-100%"),
        pytest.param({"app": "nginx", "canary": "true"}, "0%", False, "dns:new", id="canary-0%"),
        pytest.param({"app": "nginx", "canary": "true"}, "0%", True, "dns:old", id="paused-0%"),
    ],
)
def test_partial_policy_chooses_between_history_and_latest(
    labels: dict[str, str], partition: str | None, paused: bool, expected_image: str
) -> None:
    candidate = _partial_candidate(partition=partition, paused=paused)
    result = run_injection(make_pod(labels=labels), candidate, seed="request-1")
    assert by_name(result, "dns-f")["image"] == expected_image


# §14.1 scenario 9 (partition "abc%")
def test_partial_policy_with_unparsable_partition_refuses_the_pod() -> None:
    candidate = _partial_candidate(partition="abc%")
    with pytest.raises(InjectionError, match="partition"):
        run_injection(make_pod(labels={"app": "nginx", "canary": "true"}), candidate)


# §14.1 scenario 9 (invalid updateStrategy.selector operator)
def test_partial_policy_with_invalid_update_selector_refuses_the_pod() -> None:
    candidate = _partial_candidate(
        selector={"matchExpressions": [{"key": "canary", "operator": "Like", "values": ["true"]}]}
    )
    with pytest.raises(InjectionError, match="operator"):
        run_injection(make_pod(), candidate)


# §14.1 scenario 9 (no history revision): Kruise refuses the pod; decision 7 injects the latest.
def test_partial_policy_without_history_revision_falls_back_to_latest_with_warning() -> None:
    candidate = _partial_candidate()
    candidate = InjectionCandidate(latest=candidate.latest)
    result = run_injection(make_pod(), candidate)
    assert by_name(result, "dns-f")["image"] == "dns:new"
    assert len(result.warnings) == 1
    assert "customVersion 'old'" in result.warnings[0]


# §14.1 scenario 10
def test_default_inject_policies_place_containers_and_sort_init_containers() -> None:
    sidecarset = make_sidecarset(
        containers=[container("dns-f"), container("log-agent", podInjectPolicy="AfterAppContainer")],
        initContainers=[container("init-2"), container("init-1")],
    )
    pod = make_pod(init_containers=[container("init-0")])
    result = run_injection(pod, sidecarset)
    assert names(pod_containers(result)) == ["dns-f", "nginx", "log-agent"]
    assert names(pod_containers(result, "initContainers")) == ["init-0", "init-1", "init-2"]
    for name in ("init-1", "init-2"):
        assert IS_INJECTED in env_pairs(by_name(result, name, "initContainers"))
    assert IS_INJECTED not in env_pairs(by_name(result, "init-0", "initContainers"))


# §14.1 scenario 11
def test_only_volumes_mounted_by_sidecars_are_injected_after_the_pods_own() -> None:
    sidecarset = make_sidecarset(
        containers=[container("dns-f", volumeMounts=[{"name": "volume-1", "mountPath": "/v1"}])],
        volumes=[{"name": "volume-1", "emptyDir": {}}, {"name": "volume-2", "emptyDir": {}}],
    )
    pod = make_pod(volumes=[{"name": "volume-a", "emptyDir": {}}, {"name": "volume-b", "emptyDir": {}}])
    result = run_injection(pod, sidecarset)
    assert names(result.pod["spec"]["volumes"]) == ["volume-a", "volume-b", "volume-1"]


# §14.1 scenario 12
def test_legacy_hash_annotation_is_read_and_rewritten_in_the_current_format() -> None:
    pod = make_pod(annotations={ANNOTATION_HASH: json.dumps({"old-sidecarset": "hash-of-old"})})
    sidecarset = make_sidecarset(containers=[container("dns-f")])
    result = run_injection(pod, sidecarset)
    records = annotation_json(result, ANNOTATION_HASH)
    assert records["old-sidecarset"] == {
        "updateTimestamp": None,
        "hash": "hash-of-old",
        "sidecarSetName": "old-sidecarset",
        "sidecarList": None,
    }
    assert records["sidecarset1"]["hash"] == revision_hash(sidecarset)
    assert records["sidecarset1"]["sidecarList"] == ["dns-f"]


def _share_volume_sidecarset() -> SidecarSet:
    return make_sidecarset(
        initContainers=[
            container(
                "init-share",
                shareVolumePolicy={"type": "enabled"},
                volumeMounts=[{"name": "volume-staragent", "mountPath": "/staragent"}],
            )
        ],
        containers=[
            container(
                "dns-f",
                shareVolumePolicy={"type": "enabled"},
                volumeMounts=[
                    {"name": "volume-1", "mountPath": "/a/b/c"},
                    {"name": "volume-2", "mountPath": "/d/e/f"},
                    {"name": "volume-staragent", "mountPath": "/staragent"},
                ],
            )
        ],
        volumes=[
            {"name": "volume-1", "emptyDir": {}},
            {"name": "volume-2", "emptyDir": {}},
            {"name": "volume-staragent", "emptyDir": {}},
        ],
    )


def _share_volume_pod(
    extra_mounts: list[dict[str, Any]] | None = None, env: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    app = container(
        "nginx",
        volumeMounts=[
            {"name": "volume-a", "mountPath": "/a/b"},
            {"name": "volume-b", "mountPath": "/e/f"},
            {"name": "volume-staragent", "mountPath": "/staragent"},
            *(extra_mounts or []),
        ],
    )
    if env is not None:
        app["env"] = env
    volumes: list[dict[str, Any]] = [
        {"name": name, "emptyDir": {}} for name in ("volume-a", "volume-b", "volume-staragent", "volume-c")
    ]
    return make_pod(containers=[app], volumes=volumes)


def _mount_paths(container_dict: dict) -> list[str]:
    return [mount["mountPath"] for mount in container_dict.get("volumeMounts", [])]


# §14.1 scenario 13
def test_share_volume_policy_shares_app_mounts_with_init_containers_and_containers() -> None:
    result = run_injection(_share_volume_pod(), _share_volume_sidecarset())
    assert _mount_paths(by_name(result, "init-share", "initContainers")) == ["/staragent", "/a/b", "/e/f"]
    assert _mount_paths(by_name(result, "dns-f")) == ["/a/b/c", "/d/e/f", "/staragent", "/a/b", "/e/f"]


# §14.1 scenario 14
def test_share_volume_policy_copies_env_vars_used_by_subpath_expr() -> None:
    pod = _share_volume_pod(
        extra_mounts=[
            {
                "name": "volume-c",
                "mountPath": "/e/expansion",
                "subPathExpr": "foo/$(POD_NAME)/$(OD_NAME)/conf",
            }
        ],
        env=[
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "OD_NAME", "value": "od_name"},
            {"name": "UNRELATED", "value": "x"},
        ],
    )
    result = run_injection(pod, _share_volume_sidecarset())
    for sidecar in (by_name(result, "init-share", "initContainers"), by_name(result, "dns-f")):
        assert "/e/expansion" in _mount_paths(sidecar)
        assert env_pairs(sidecar) == [
            IS_INJECTED,
            ("POD_NAME", {"fieldRef": {"fieldPath": "metadata.name"}}),
            ("OD_NAME", "od_name"),
        ]


# §14.1 scenario 15
@pytest.mark.parametrize("sub_path_expr", ["foo", ""])
def test_share_volume_policy_without_variables_in_subpath_expr_copies_no_env(sub_path_expr: str) -> None:
    pod = _share_volume_pod(
        extra_mounts=[{"name": "volume-c", "mountPath": "/e/expansion", "subPathExpr": sub_path_expr}],
        env=[{"name": "POD_NAME", "value": "x"}, {"name": "OD_NAME", "value": "y"}],
    )
    result = run_injection(pod, _share_volume_sidecarset())
    for sidecar in (by_name(result, "init-share", "initContainers"), by_name(result, "dns-f")):
        assert "/e/expansion" in _mount_paths(sidecar)
        assert env_pairs(sidecar) == [IS_INJECTED]


# §14.1 scenario 16
def test_transfer_env_by_source_container_name() -> None:
    transfer = [{"sourceContainerName": "nginx", "envName": "hello2"}]
    sidecarset = make_sidecarset(
        initContainers=[container("init-1", transferEnv=transfer)],
        containers=[container("dns-f", transferEnv=transfer)],
    )
    pod = make_pod(
        containers=[
            container(
                "nginx", env=[{"name": "hello1", "value": "world1"}, {"name": "hello2", "value": "world2"}]
            )
        ]
    )
    result = run_injection(pod, sidecarset)
    for sidecar in (by_name(result, "init-1", "initContainers"), by_name(result, "dns-f")):
        assert env_pairs(sidecar) == [IS_INJECTED, ("hello2", "world2")]


# §14.1 scenario 17
def test_hash_annotation_lists_only_the_matching_sidecarsets() -> None:
    sidecarsets = [
        make_sidecarset("sidecarset1", containers=[container("dns-f")]),
        make_sidecarset(
            "sidecarset2", selector={"matchLabels": {"app": "redis"}}, containers=[container("c2")]
        ),
        make_sidecarset(
            "sidecarset3", containers=[container("log-agent", podInjectPolicy="AfterAppContainer")]
        ),
    ]
    result = run_injection(make_pod(), *sidecarsets)
    records = annotation_json(result, ANNOTATION_HASH)
    assert {name: record["hash"] for name, record in records.items()} == {
        "sidecarset1": revision_hash(sidecarsets[0]),
        "sidecarset3": revision_hash(sidecarsets[2]),
    }
    without_image = annotation_json(result, ANNOTATION_HASH_WITHOUT_IMAGE)
    assert without_image["sidecarset3"]["hash"] == hash_without_images(sidecarsets[2])


# §14.1 scenario 18
def test_injected_list_names_the_matching_sidecarsets_sorted() -> None:
    sidecarsets = [
        make_sidecarset("sidecarset3", containers=[container("c3")]),
        make_sidecarset(
            "sidecarset2", selector={"matchLabels": {"app": "redis"}}, containers=[container("c2")]
        ),
        make_sidecarset("sidecarset1", containers=[container("c1")]),
    ]
    result = run_injection(make_pod(), *sidecarsets)
    assert result.pod["metadata"]["annotations"][ANNOTATION_INJECTED_LIST] == "sidecarset1,sidecarset3"
    assert result.injected == ("sidecarset1", "sidecarset3")


AFTER = {"podInjectPolicy": "AfterAppContainer"}
BEFORE = {"podInjectPolicy": "BeforeAppContainer"}


# §14.1 scenario 19. Kruise's test sorts the injected containers first (feature gate
# EnableSortSidecarContainerByName); with the gate off, as here, spec order is kept, so the
# SidecarSet lists them in the order the sorted test feeds them to the merge.
@pytest.mark.parametrize(
    ("pod_containers_names", "injected", "expected"),
    [
        pytest.param(
            ["app"],
            [("sidecar-1", AFTER), ("sidecar-2", AFTER), ("new-sidecar-1", BEFORE)],
            ["new-sidecar-1", "app", "sidecar-1", "sidecar-2"],
            id="before-and-after",
        ),
        pytest.param(["app"], [("new-sidecar-1", BEFORE)], ["new-sidecar-1", "app"], id="only-before"),
        pytest.param(
            ["app"],
            [("sidecar-1", AFTER), ("sidecar-2", AFTER)],
            ["app", "sidecar-1", "sidecar-2"],
            id="only-after",
        ),
        pytest.param(
            ["sidecar-1", "app", "sidecar-2"],
            [("sidecar-1", AFTER), ("sidecar-2", AFTER)],
            ["sidecar-1", "app", "sidecar-2"],
            id="replaced-in-place",
        ),
        pytest.param(
            ["sidecar-1", "app", "sidecar-2"],
            [("sidecar-1", AFTER), ("sidecar-2", AFTER), ("new-sidecar-1", BEFORE)],
            ["new-sidecar-1", "sidecar-1", "app", "sidecar-2"],
            id="replaced-plus-before",
        ),
        pytest.param(
            [],
            [("sidecar-1", AFTER), ("sidecar-2", AFTER), ("new-sidecar-1", BEFORE)],
            ["new-sidecar-1", "sidecar-1", "sidecar-2"],
            id="pod-without-containers",
        ),
    ],
)
def test_container_merge_algorithm(
    pod_containers_names: list[str], injected: list[tuple[str, dict]], expected: list[str]
) -> None:
    sidecarset = make_sidecarset(containers=[container(name, **policy) for name, policy in injected])
    pod = make_pod(containers=[container(name, "app-image") for name in pod_containers_names])
    result = run_injection(pod, sidecarset)
    assert names(pod_containers(result)) == expected
    for name in expected:
        assert ("IS_INJECTED", "true") in env_pairs(by_name(result, name)) or name == "app"


# §14.1 scenario 20
def test_native_sidecar_and_hot_upgrade_native_sidecar_from_two_sidecarsets() -> None:
    volume = {"name": "volume-1", "emptyDir": {}}
    mount = [{"name": "volume-1", "mountPath": "/v1"}]
    first = make_sidecarset(
        "sidecarset-1",
        initContainers=[container("init-1", restartPolicy="Always", volumeMounts=mount)],
        volumes=[volume],
        updateStrategy={"type": "NotUpdate"},
    )
    second = make_sidecarset(
        "sidecarset-2",
        initContainers=[
            container(
                "hot-init",
                restartPolicy="Always",
                volumeMounts=mount,
                upgradeStrategy={"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "empty:v1"},
            )
        ],
        volumes=[volume],
        updateStrategy={"type": "NotUpdate"},
    )
    result = run_injection(make_pod(init_containers=[container("init-0")]), second, first)
    init = pod_containers(result, "initContainers")
    assert names(init) == ["init-0", "hot-init-1", "hot-init-2", "init-1"]
    assert by_name(result, "hot-init-2", "initContainers")["image"] == "empty:v1"
    annotations = result.pod["metadata"]["annotations"]
    records = annotation_json(result, ANNOTATION_HASH)
    assert records["sidecarset-1"]["sidecarList"] == ["init-1"]
    assert records["sidecarset-2"]["sidecarList"] == ["hot-init"]
    assert annotations[ANNOTATION_INJECTED_LIST] == "sidecarset-1,sidecarset-2"
    assert annotation_json(result, ANNOTATION_WORKING_HOT_UPGRADE_CONTAINER) == {"hot-init": "hot-init-1"}
    assert annotations[version_annotation("hot-init-1")] == "1"
    assert annotations[version_alt_annotation("hot-init-1")] == "0"
    assert annotations[version_annotation("hot-init-2")] == "0"
    assert annotations[version_alt_annotation("hot-init-2")] == "1"
    assert names(result.pod["spec"]["volumes"]) == ["volume-1"]


# §14.1 scenario 21
@pytest.mark.parametrize(
    ("pod_init", "policies", "expected"),
    [
        pytest.param([], {}, ["a-init", "b-init", "c-init"], id="no-pod-init-containers"),
        pytest.param(
            ["app1-init", "app2-init"],
            {},
            ["app1-init", "app2-init", "a-init", "b-init", "c-init"],
            id="after-pod",
        ),
        pytest.param(
            ["app1-init", "app2-init"],
            {"b-init": "BeforeAppContainer", "c-init": "BeforeAppContainer"},
            ["b-init", "c-init", "app1-init", "app2-init", "a-init"],
            id="mixed-policies",
        ),
    ],
)
def test_init_container_merge_sorts_by_name(pod_init: list[str], policies: dict, expected: list[str]) -> None:
    injected = [
        container(name, **({"podInjectPolicy": policies[name]} if name in policies else {}))
        for name in ("a-init", "c-init", "b-init")
    ]
    sidecarset = make_sidecarset(initContainers=injected, containers=[container("dns-f")])
    result = run_injection(make_pod(init_containers=[container(name) for name in pod_init]), sidecarset)
    assert names(pod_containers(result, "initContainers")) == expected


def _device_sidecarset(share_devices: bool) -> SidecarSet:
    extra: dict[str, Any] = {"shareVolumeDevicePolicy": {"type": "enabled"}} if share_devices else {}
    return make_sidecarset(
        containers=[
            container(
                "dns-f",
                volumeMounts=[{"name": "volume-3", "mountPath": "/v3"}],
                volumeDevices=[{"name": "disk0", "devicePath": "/dev/nvme0"}],
                **extra,
            ),
            container(
                "log-agent",
                volumeMounts=[
                    {"name": "volume-4", "mountPath": "/v4"},
                    {"name": "volume-staragent", "mountPath": "/staragent"},
                ],
                volumeDevices=[{"name": "disk0", "devicePath": "/dev/nvme1"}],
                **extra,
            ),
        ],
        volumes=[
            {"name": "volume-3", "emptyDir": {}},
            {"name": "volume-4", "emptyDir": {}},
            {"name": "volume-staragent", "emptyDir": {}},
            {"name": "disk0", "persistentVolumeClaim": {"claimName": "disk0"}},
        ],
    )


def _device_pod() -> dict:
    return make_pod(
        containers=[
            container(
                "nginx",
                volumeMounts=[{"name": "volume-staragent", "mountPath": "/staragent"}],
                volumeDevices=[
                    {"name": "origin", "devicePath": "/origin-1"},
                    {"name": "share", "devicePath": "/share"},
                ],
            )
        ],
        volumes=[
            {"name": "volume-staragent", "hostPath": {"path": "/staragent"}},
            {"name": "origin", "persistentVolumeClaim": {"claimName": "origin"}},
            {"name": "share", "persistentVolumeClaim": {"claimName": "share"}},
        ],
    )


def _device_paths(container_dict: dict) -> list[str]:
    return [device["devicePath"] for device in container_dict.get("volumeDevices", [])]


# §14.1 scenario 22
def test_volume_devices_are_not_shared_when_the_policy_is_unset() -> None:
    result = run_injection(_device_pod(), _device_sidecarset(share_devices=False))
    assert _device_paths(by_name(result, "dns-f")) == ["/dev/nvme0"]
    assert _device_paths(by_name(result, "log-agent")) == ["/dev/nvme1"]
    assert names(result.pod["spec"]["volumes"]) == [
        "volume-staragent",
        "origin",
        "share",
        "volume-3",
        "disk0",
        "volume-4",
    ]


# §14.1 scenario 23
def test_share_volume_device_policy_shares_app_devices() -> None:
    result = run_injection(_device_pod(), _device_sidecarset(share_devices=True))
    assert _device_paths(by_name(result, "dns-f")) == ["/dev/nvme0", "/origin-1", "/share"]
    assert _device_paths(by_name(result, "log-agent")) == ["/dev/nvme1", "/origin-1", "/share"]
    # volume-staragent is the pod's own: the pod's definition wins.
    volumes = result.pod["spec"]["volumes"]
    assert names(volumes) == ["volume-staragent", "origin", "share", "volume-3", "disk0", "volume-4"]
    assert volumes[0] == {"name": "volume-staragent", "hostPath": {"path": "/staragent"}}


# §14.1 scenario 24
def test_mounts_of_volumes_the_sidecarset_does_not_declare_inject_no_volumes() -> None:
    sidecarset = make_sidecarset(
        containers=[container("dns-f", volumeMounts=[{"name": "not-declared", "mountPath": "/x"}])],
        volumes=[{"name": "volume-1", "emptyDir": {}}],
    )
    pod = make_pod()
    result = run_injection(pod, sidecarset)
    assert "volumes" not in result.pod["spec"]
    assert _mount_paths(by_name(result, "dns-f")) == ["/x"]


# §14.1 scenario 25
def test_volume_candidates_follow_init_containers_then_containers_mounts_then_devices() -> None:
    sidecarset = make_sidecarset(
        initContainers=[
            container(
                "init-1",
                volumeMounts=[
                    {"name": "volume-1", "mountPath": "/v1"},
                    {"name": "volume-2", "mountPath": "/v2"},
                ],
                volumeDevices=[{"name": "disk0", "devicePath": "/dev/d0"}],
            )
        ],
        containers=[
            container(
                "dns-f",
                volumeMounts=[
                    {"name": "volume-3", "mountPath": "/v3"},
                    {"name": "volume-4", "mountPath": "/v4"},
                ],
                volumeDevices=[{"name": "disk1", "devicePath": "/dev/d1"}],
            )
        ],
        # Declared in another order, to show the order comes from the mounts.
        volumes=[
            {"name": "disk1", "persistentVolumeClaim": {"claimName": "d1"}},
            {"name": "volume-4", "emptyDir": {}},
            {"name": "volume-3", "emptyDir": {}},
            {"name": "disk0", "persistentVolumeClaim": {"claimName": "d0"}},
            {"name": "volume-2", "emptyDir": {}},
            {"name": "volume-1", "emptyDir": {}},
        ],
    )
    result = run_injection(make_pod(), sidecarset)
    assert names(result.pod["spec"]["volumes"]) == [
        "volume-1",
        "volume-2",
        "disk0",
        "volume-3",
        "volume-4",
        "disk1",
    ]


# §14.1 scenario 26
def test_hot_upgrade_container_becomes_two_twins() -> None:
    sidecarset = make_sidecarset(
        containers=[
            container(
                "dns-f",
                "dns-f-image:1.0",
                upgradeStrategy={
                    "upgradeType": "HotUpgrade",
                    "hotUpgradeEmptyImage": "busy:hotupgrade-empty",
                },
            ),
            container("log-agent", podInjectPolicy="AfterAppContainer"),
        ]
    )
    result = run_injection(make_pod(), sidecarset)
    containers = pod_containers(result)
    assert names(containers) == ["dns-f-1", "dns-f-2", "nginx", "log-agent"]
    assert containers[0]["image"] == "dns-f-image:1.0"
    assert containers[1]["image"] == "busy:hotupgrade-empty"
    annotations = result.pod["metadata"]["annotations"]
    assert annotation_json(result, ANNOTATION_HASH)["sidecarset1"] == {
        "updateTimestamp": NOW_TEXT,
        "hash": revision_hash(sidecarset),
        "sidecarSetName": "sidecarset1",
        "sidecarList": ["dns-f", "log-agent"],
    }
    assert annotation_json(result, ANNOTATION_HASH_WITHOUT_IMAGE)["sidecarset1"][
        "hash"
    ] == hash_without_images(sidecarset)
    assert annotations[ANNOTATION_INJECTED_LIST] == "sidecarset1"
    assert annotation_json(result, ANNOTATION_WORKING_HOT_UPGRADE_CONTAINER) == {"dns-f": "dns-f-1"}
    assert annotations[version_annotation("dns-f-1")] == "1"
    assert annotations[version_annotation("dns-f-2")] == "0"
    twin_env = env_pairs(containers[1])
    assert twin_env[-2:] == [
        (
            "SIDECARSET_VERSION",
            {"fieldRef": {"fieldPath": "metadata.annotations['version.sidecarset.sidecarhub.io/dns-f-2']"}},
        ),
        (
            "SIDECARSET_VERSION_ALT",
            {
                "fieldRef": {
                    "fieldPath": "metadata.annotations['versionalt.sidecarset.sidecarhub.io/dns-f-2']"
                }
            },
        ),
    ]
