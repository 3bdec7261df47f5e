"""Determinism, purity, the JSON patch, matching rules and drift helpers of the injection core."""

from __future__ import annotations

import copy
import itertools
import json

import jsonpatch
import pytest
from injection_builders import (
    NOW,
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
    inject,
    matching_sidecarsets,
    missing_injections,
    parse_sidecarset,
)
from sidecarhub.sidecarset.annotations import ANNOTATION_HASH, ANNOTATION_INJECTED_LIST


def _rich_sidecarsets() -> list:
    return [
        make_sidecarset(
            "mesh",
            initContainers=[container("init-net")],
            containers=[
                container(
                    "envoy", upgradeStrategy={"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "e:1"}
                ),
                container(
                    "logtail",
                    podInjectPolicy="AfterAppContainer",
                    shareVolumePolicy={"type": "enabled"},
                    transferEnv=[{"sourceContainerName": "app", "envNames": ["B", "A"]}],
                ),
            ],
            imagePullSecrets=[{"name": "mesh-secret"}],
            patchPodMetadata=[{"annotations": {"cfg": '{"mesh":1}'}, "patchPolicy": "MergePatchJson"}],
        ),
        make_sidecarset(
            "dns",
            containers=[container("dns", volumeMounts=[{"name": "dns-cfg", "mountPath": "/etc/dns"}])],
            volumes=[{"name": "dns-cfg", "configMap": {"name": "dns"}}],
            patchPodMetadata=[{"annotations": {"cfg": '{"dns":2}'}, "patchPolicy": "MergePatchJson"}],
        ),
        make_sidecarset("other", selector={"matchLabels": {"app": "redis"}}, containers=[container("x")]),
    ]


def _rich_pod() -> dict:
    return make_pod(
        containers=[
            container(
                "app",
                env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                volumeMounts=[{"name": "data", "mountPath": "/data"}],
            )
        ],
        volumes=[{"name": "data", "emptyDir": {}}],
        imagePullSecrets=[{"name": "own"}],
    )


def test_same_inputs_give_byte_identical_output_in_any_candidate_order() -> None:
    serialized = set()
    for order in itertools.permutations(_rich_sidecarsets()):
        result = run_injection(_rich_pod(), *order)
        serialized.add(json.dumps(result.pod, sort_keys=False))
        serialized.add(json.dumps(result.pod, sort_keys=False))
    assert len(serialized) == 1
    pod = json.loads(serialized.pop())
    assert names(pod["spec"]["containers"]) == ["dns", "envoy-1", "envoy-2", "app", "logtail"]


def test_input_pod_is_never_mutated() -> None:
    pod = _rich_pod()
    before = copy.deepcopy(pod)
    result = run_injection(pod, *_rich_sidecarsets())
    assert pod == before
    result.pod["spec"]["containers"].clear()
    assert result.original == before


def test_json_patch_applied_to_the_old_pod_gives_the_new_pod() -> None:
    pod = _rich_pod()
    result = run_injection(pod, *_rich_sidecarsets())
    patch = result.json_patch()
    assert patch  # something was injected
    assert all(operation["op"] in {"add", "remove", "replace", "move", "copy", "test"} for operation in patch)
    assert jsonpatch.apply_patch(pod, patch) == result.pod
    # The patch survives the JSON round trip of an AdmissionReview response.
    assert jsonpatch.apply_patch(pod, json.loads(json.dumps(patch))) == result.pod


def test_transfer_env_names_are_copied_in_sorted_order_and_own_env_wins() -> None:
    # §7.7.5 and §14.6 scenario 74: the sidecar's own env var is never overwritten.
    sidecarset = make_sidecarset(
        containers=[
            container(
                "proxy",
                env=[{"name": "OD_NAME", "value": "sidecar_name"}],
                transferEnv=[{"sourceContainerName": "app", "envNames": ["POD_NAME", "OD_NAME", "PROXY_IP"]}],
            )
        ]
    )
    pod = make_pod(
        containers=[
            container(
                "app",
                env=[
                    {"name": "POD_NAME", "value": "bar"},
                    {"name": "OD_NAME", "value": "app_name"},
                    {"name": "PROXY_IP", "value": "127.0.0.1"},
                ],
            )
        ]
    )
    result = run_injection(pod, sidecarset)
    assert env_pairs(by_name(result, "proxy")) == [
        ("OD_NAME", "sidecar_name"),
        ("IS_INJECTED", "true"),
        ("POD_NAME", "bar"),
        ("PROXY_IP", "127.0.0.1"),
    ]


@pytest.mark.parametrize(
    ("field_path", "pod_metadata"),
    [
        pytest.param(
            "metadata.labels['sidecar.source']", {"labels": {"app": "nginx", "sidecar.source": "main"}}
        ),
        pytest.param("metadata.annotations['sidecar.source']", {"annotations": {"sidecar.source": "main"}}),
        pytest.param("metadata.name", {"name": "main"}),
    ],
)
def test_transfer_env_source_container_name_from_field_ref(field_path: str, pod_metadata: dict) -> None:
    # §14.5 scenario 66, §14.6 scenario 75; metadata.name is the hub's addition (Kruise rejects it).
    sidecarset = make_sidecarset(
        containers=[
            container(
                "proxy",
                transferEnv=[
                    {
                        "sourceContainerName": "ignored",
                        "sourceContainerNameFrom": {
                            "fieldRef": {"apiVersion": "v1", "fieldPath": field_path}
                        },
                        "envName": "TOKEN",
                    }
                ],
            )
        ]
    )
    pod = make_pod(
        containers=[container("main", env=[{"name": "TOKEN", "value": "t"}]), container("ignored")]
    )
    pod["metadata"].update(pod_metadata)
    result = run_injection(pod, sidecarset)
    assert ("TOKEN", "t") in env_pairs(by_name(result, "proxy"))


def test_transfer_env_reads_annotations_written_by_patch_pod_metadata() -> None:
    # §7.6: metadata is patched before the sidecars are built.
    sidecarset = make_sidecarset(
        patchPodMetadata=[{"annotations": {"source": "main"}, "patchPolicy": "Overwrite"}],
        containers=[
            container(
                "proxy",
                transferEnv=[
                    {
                        "sourceContainerNameFrom": {
                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.annotations['source']"}
                        },
                        "envName": "TOKEN",
                    }
                ],
            )
        ],
    )
    pod = make_pod(containers=[container("main", env=[{"name": "TOKEN", "value": "t"}])])
    assert ("TOKEN", "t") in env_pairs(by_name(run_injection(pod, sidecarset), "proxy"))


def test_patch_policies_retain_and_overwrite_on_existing_values() -> None:
    # §14.5 scenario 67.
    sidecarset = make_sidecarset(
        containers=[container("envoy")],
        patchPodMetadata=[
            {"annotations": {"kept": "new"}, "patchPolicy": "Retain"},
            {"annotations": {"replaced": "new"}, "patchPolicy": "Overwrite"},
            {"annotations": {"merged": '{"b":2,"gone":null}'}, "patchPolicy": "MergePatchJson"},
        ],
    )
    pod = make_pod(annotations={"kept": "old", "replaced": "old", "merged": '{"a":1,"gone":true}'})
    annotations = run_injection(pod, sidecarset).pod["metadata"]["annotations"]
    assert (annotations["kept"], annotations["replaced"], annotations["merged"]) == (
        "old",
        "new",
        '{"a":1,"b":2}',
    )


def test_merge_patch_json_on_an_invalid_existing_value_refuses_the_pod() -> None:
    sidecarset = make_sidecarset(
        containers=[container("envoy")],
        patchPodMetadata=[{"annotations": {"cfg": '{"b":2}'}, "patchPolicy": "MergePatchJson"}],
    )
    with pytest.raises(InjectionError, match="MergePatchJson"):
        run_injection(make_pod(annotations={"cfg": "not json"}), sidecarset)


def test_hash_records_of_other_sidecarsets_are_kept() -> None:
    existing = {
        "old": {
            "updateTimestamp": "2020-01-01T00:00:00Z",
            "hash": "h",
            "sidecarSetName": "old",
            "sidecarList": ["x"],
        }
    }
    pod = make_pod(annotations={ANNOTATION_HASH: json.dumps(existing), ANNOTATION_INJECTED_LIST: "old"})
    result = run_injection(pod, make_sidecarset("new", containers=[container("envoy")]))
    records = annotation_json(result, ANNOTATION_HASH)
    assert list(records) == ["new", "old"]
    assert records["old"] == existing["old"]
    assert result.pod["metadata"]["annotations"][ANNOTATION_INJECTED_LIST] == "new,old"


def test_garbage_hash_annotation_refuses_the_pod() -> None:
    # §7.7 prelude: neither the current nor the legacy format.
    pod = make_pod(annotations={ANNOTATION_HASH: "[1, 2]"})
    with pytest.raises(InjectionError, match="JSON object"):
        run_injection(pod, make_sidecarset(containers=[container("envoy")]))


def test_canary_replaces_its_base_and_the_base_stays_when_the_canary_does_not_match() -> None:
    # §7.3 and §14.6 scenario 79.
    base = make_sidecarset(
        "base", containers=[container("envoy", "envoy:base")], updateStrategy={"type": "NotUpdate"}
    )
    canary = make_sidecarset(
        "canary",
        selector={"matchLabels": {"app": "nginx", "track": "canary"}},
        annotations={"apps.kruise.io/sidecarset-canary": "true", "apps.kruise.io/sidecarset-base": "base"},
        containers=[container("envoy", "envoy:canary")],
        updateStrategy={"type": "NotUpdate"},
    )
    on_canary = run_injection(make_pod(labels={"app": "nginx", "track": "canary"}), base, canary)
    assert on_canary.injected == ("canary",)
    assert by_name(on_canary, "envoy")["image"] == "envoy:canary"
    on_stable = run_injection(make_pod(), base, canary)
    assert on_stable.injected == ("base",)


def test_namespace_selector_and_v1alpha1_namespace() -> None:
    # §14.5 scenario 69; decision 1 turns the v1alpha1 namespace into a namespaceSelector.
    by_label = make_sidecarset(
        "by-label", namespaceSelector={"matchLabels": {"team": "a"}}, containers=[container("c1")]
    )
    v1alpha1 = parse_sidecarset(
        {
            "apiVersion": "apps.kruise.io/v1alpha1",
            "kind": "SidecarSet",
            "metadata": {"name": "by-name"},
            "spec": {
                "namespace": "apps",
                "selector": {"matchLabels": {"app": "nginx"}},
                "containers": [container("c2")],
            },
        }
    )
    pod = make_pod(namespace="apps")
    assert run_injection(pod, by_label, v1alpha1, namespace_labels={"team": "a"}).injected == (
        "by-label",
        "by-name",
    )
    assert run_injection(pod, by_label, v1alpha1, namespace_labels={"team": "b"}).injected == ("by-name",)
    # Namespace unknown (could not be read): namespace-scoped SidecarSets do not match.
    unknown = inject(pod, None, [InjectionCandidate.of(by_label), InjectionCandidate.of(v1alpha1)], now=NOW)
    assert unknown.injected == ()


def test_empty_pod_selector_matches_nothing_and_an_invalid_one_refuses_the_pod() -> None:
    empty = make_sidecarset(selector={"matchLabels": {}}, containers=[container("c1")])
    assert run_injection(make_pod(), empty).injected == ()
    invalid = make_sidecarset(
        selector={"matchExpressions": [{"key": "app", "operator": "In", "values": []}]},
        containers=[container("c1")],
    )
    with pytest.raises(InjectionError, match="values required"):
        run_injection(make_pod(), invalid)


def test_inactive_pods_are_skipped() -> None:
    pod = make_pod()
    pod["status"] = {"phase": "Succeeded"}
    assert (
        run_injection(pod, make_sidecarset(containers=[container("c1")])).excluded_reason
        == "pod is not active"
    )


def test_partial_percent_partition_is_a_deterministic_draw_per_seed() -> None:
    historical = make_sidecarset(containers=[container("envoy", "envoy:old")], customVersion="old")
    latest = make_sidecarset(
        containers=[container("envoy", "envoy:new")],
        injectionStrategy={"revision": {"customVersion": "old", "policy": "Partial"}},
        updateStrategy={"type": "NotUpdate", "partition": "30%"},
    )
    candidate = InjectionCandidate(latest=revision(latest, "r2", 2), history=(revision(historical, "r1", 1),))

    def image(seed: str) -> str:
        return by_name(run_injection(make_pod(), candidate, seed=seed), "envoy")["image"]

    images = [image(f"request-{n}") for n in range(400)]
    assert images == [image(f"request-{n}") for n in range(400)]
    pinned = images.count("envoy:old")
    assert 80 <= pinned <= 160  # about 30% of 400


def test_duplicate_candidate_names_are_a_caller_error() -> None:
    sidecarset = make_sidecarset(containers=[container("c1")])
    with pytest.raises(ValueError, match="only once"):
        run_injection(make_pod(), sidecarset, sidecarset)


def test_matching_sidecarsets_in_name_order_without_paused_or_excluded() -> None:
    sidecarsets = [
        make_sidecarset("zeta", containers=[container("z")]),
        make_sidecarset("alpha", containers=[container("a")]),
        make_sidecarset("paused", containers=[container("p")], injectionStrategy={"paused": True}),
        make_sidecarset("elsewhere", selector={"matchLabels": {"app": "redis"}}, containers=[container("e")]),
    ]
    assert [item.name for item in matching_sidecarsets(make_pod(), {}, sidecarsets)] == ["alpha", "zeta"]
    assert matching_sidecarsets(make_pod(namespace="kube-system"), {}, sidecarsets) == []


def test_missing_injections_reports_matching_sidecarsets_the_pod_lacks() -> None:
    mesh = make_sidecarset(
        "mesh",
        containers=[
            container("envoy", upgradeStrategy={"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "e"})
        ],
    )
    dns = make_sidecarset("dns", containers=[container("dns")])
    bare = make_pod()
    assert missing_injections(bare, {}, [mesh, dns]) == ["dns", "mesh"]
    injected = run_injection(bare, mesh, dns).pod
    assert missing_injections(injected, {}, [mesh, dns]) == []
    only_mesh = run_injection(bare, mesh).pod
    assert missing_injections(only_mesh, {}, [mesh, dns]) == ["dns"]
    # Listed but its container was removed from the pod: still missing.
    tampered = copy.deepcopy(injected)
    tampered["spec"]["containers"] = [c for c in tampered["spec"]["containers"] if c["name"] != "envoy-2"]
    assert missing_injections(tampered, {}, [mesh, dns]) == ["mesh"]
    assert names(pod_containers(run_injection(bare, dns))) == ["dns", "nginx"]
