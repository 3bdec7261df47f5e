"""Fidelity with Kruise found by comparing generated pods (issue 15): imagePullSecrets
de-duplication (§7.9 step 4), MergePatchJson's canonical form (§7.6), and decision 5's order."""

from __future__ import annotations

import itertools

from injection_builders import container, make_pod, make_sidecarset, names, pod_containers, run_injection

from sidecarhub.sidecarset import SidecarSet, parse_sidecarset
from sidecarhub.sidecarset.matching import matching_sidecarsets


def test_the_pods_own_duplicate_secrets_are_removed_even_when_no_secret_is_added() -> None:
    pod = make_pod(imagePullSecrets=[{"name": "a"}, {"name": "b"}, {"name": "a"}])
    result = run_injection(pod, make_sidecarset("mesh", containers=[container("envoy")]))
    assert result.pod["spec"]["imagePullSecrets"] == [{"name": "a"}, {"name": "b"}]


def test_secrets_are_deduplicated_before_the_sidecarsets_new_ones_are_appended() -> None:
    pod = make_pod(imagePullSecrets=[{"name": "b"}, {"name": "b"}])
    sidecarset = make_sidecarset(
        "mesh", containers=[container("envoy")], imagePullSecrets=[{"name": "a"}, {"name": "b"}]
    )
    result = run_injection(pod, sidecarset)
    assert result.pod["spec"]["imagePullSecrets"] == [{"name": "b"}, {"name": "a"}]


def test_a_pod_without_secrets_gets_no_empty_list() -> None:
    result = run_injection(make_pod(), make_sidecarset("mesh", containers=[container("envoy")]))
    assert "imagePullSecrets" not in result.pod["spec"]


def test_nothing_injected_leaves_duplicate_secrets_alone() -> None:
    # §7.8: the merge (and its de-duplication) only runs once something is injected.
    pod = make_pod(labels={"app": "other"}, imagePullSecrets=[{"name": "a"}, {"name": "a"}])
    result = run_injection(pod, make_sidecarset("mesh", containers=[container("envoy")]))
    assert result.pod == pod and not result.changed


def _merge_patch_sidecarset(patch: str) -> SidecarSet:
    return make_sidecarset(
        "mesh",
        containers=[container("envoy")],
        patchPodMetadata=[{"annotations": {"cfg": patch}, "patchPolicy": "MergePatchJson"}],
    )


def test_merge_patch_json_writes_the_canonical_form_even_when_nothing_changes() -> None:
    pod = make_pod(annotations={"cfg": '{ "b": 1,  "a": {"y": 2, "x": 1} }'})
    result = run_injection(pod, _merge_patch_sidecarset('{"a": {"x": 1}}'))
    assert result.pod["metadata"]["annotations"]["cfg"] == '{"a":{"x":1,"y":2},"b":1}'


def test_merge_patch_json_escapes_as_gos_encoder_does() -> None:
    pod = make_pod(annotations={"cfg": '{"html": "<a & b>", "line": "\\u2028", "name": "ü"}'})
    result = run_injection(pod, _merge_patch_sidecarset("{}"))
    assert (
        result.pod["metadata"]["annotations"]["cfg"]
        == '{"html":"\\u003ca \\u0026 b\\u003e","line":"\\u2028","name":"ü"}'
    )


def test_merge_patch_json_on_an_absent_or_empty_annotation_writes_the_patch_verbatim() -> None:
    for existing in ({}, {"cfg": ""}):
        result = run_injection(make_pod(annotations=existing), _merge_patch_sidecarset('{ "z": 1 }'))
        assert result.pod["metadata"]["annotations"]["cfg"] == '{ "z": 1 }'


def test_decision_5_namespace_scoped_sidecarsets_first_then_cluster_wide_each_by_name() -> None:
    scoped = {"matchLabels": {"kubernetes.io/metadata.name": "default"}}
    by_label = {"matchLabels": {"team": "web"}}
    sidecarsets = [
        make_sidecarset("a-wide", containers=[container("a-wide")]),
        make_sidecarset("z-scoped", containers=[container("z-scoped")], namespaceSelector=scoped),
        make_sidecarset("m-labelled", containers=[container("m-labelled")], namespaceSelector=by_label),
        make_sidecarset("b-wide", containers=[container("b-wide")]),
    ]
    labels = {"kubernetes.io/metadata.name": "default", "team": "web"}
    outputs = []
    for order in itertools.permutations(sidecarsets):
        result = run_injection(make_pod(), *order, namespace_labels=labels)
        assert names(pod_containers(result)) == ["m-labelled", "z-scoped", "a-wide", "b-wide", "nginx"]
        assert result.injected == ("m-labelled", "z-scoped", "a-wide", "b-wide")
        outputs.append(result.pod)
        matched = matching_sidecarsets(make_pod(), labels, order)  # drift detection: the same order
        assert [item.name for item in matched] == ["m-labelled", "z-scoped", "a-wide", "b-wide"]
    assert all(output == outputs[0] for output in outputs)


def test_decision_5_a_v1alpha1_namespace_counts_as_namespace_scoped() -> None:
    alpha = parse_sidecarset(
        {
            "apiVersion": "apps.kruise.io/v1alpha1",
            "kind": "SidecarSet",
            "metadata": {"name": "z-alpha"},
            "spec": {
                "namespace": "default",
                "selector": {"matchLabels": {"app": "nginx"}},
                "containers": [container("z-alpha")],
            },
        }
    )
    wide = make_sidecarset("a-wide", containers=[container("a-wide")])
    result = run_injection(
        make_pod(), wide, alpha, namespace_labels={"kubernetes.io/metadata.name": "default"}
    )
    assert names(pod_containers(result)) == ["z-alpha", "a-wide", "nginx"]
