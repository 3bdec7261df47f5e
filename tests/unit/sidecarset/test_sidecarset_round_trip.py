"""Round trips v1alpha1 → canonical → v1alpha1/v1beta1, by example and as a hypothesis property."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecarhub.sidecarset import (
    hash_without_images,
    parse_sidecarset,
    revision_hash,
    to_kruise,
    validate_sidecarset,
)

_names = st.from_regex(r"\A[a-z][a-z0-9]{0,6}\Z")
_label_values = st.from_regex(r"\A[a-z0-9]{1,5}\Z")
_images = st.builds(lambda repo, tag: f"{repo}{tag}", _names, st.sampled_from(["", ":latest", ":1.0", ":2"]))
_selectors = st.fixed_dictionaries(
    {"matchLabels": st.dictionaries(_names, _label_values, min_size=1, max_size=3)},
    optional={
        "matchExpressions": st.lists(
            st.fixed_dictionaries(
                {
                    "key": _names,
                    "operator": st.sampled_from(["In", "NotIn"]),
                    "values": st.lists(_label_values, min_size=1, max_size=2),
                }
            ),
            max_size=2,
        )
    },
)


@st.composite
def _containers(draw: st.DrawFn, names: list[str]) -> list[dict[str, Any]]:
    containers = []
    for name in names:
        container: dict[str, Any] = {"name": name, "image": draw(_images)}
        optional = draw(st.sets(st.sampled_from(["policy", "share", "env", "ports", "args", "hot"])))
        if "policy" in optional:
            container["podInjectPolicy"] = draw(st.sampled_from(["BeforeAppContainer", "AfterAppContainer"]))
        if "share" in optional:
            container["shareVolumePolicy"] = {"type": draw(st.sampled_from(["enabled", "disabled"]))}
        if "env" in optional:
            container["env"] = [{"name": "FOO", "value": draw(_names)}]
        if "ports" in optional:
            container["ports"] = [{"containerPort": draw(st.integers(1, 65535))}]
        if "args" in optional:
            container["args"] = draw(st.lists(_names, max_size=3))
        if "hot" in optional:
            container["upgradeStrategy"] = {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "empty:1"}
        containers.append(container)
    return containers


@st.composite
def v1alpha1_sidecarsets(draw: st.DrawFn) -> dict[str, Any]:
    """Valid v1alpha1 SidecarSets: distinct container names ending in a letter (no x-1 twin clashes)."""
    names = draw(st.lists(_names, min_size=1, max_size=4, unique=True))
    split = draw(st.integers(0, len(names) - 1))
    spec: dict[str, Any] = {
        "selector": draw(_selectors),
        "containers": draw(_containers(names[split:])),
    }
    if split:
        spec["initContainers"] = draw(_containers(names[:split]))
        for container in spec["initContainers"]:
            container.pop("upgradeStrategy", None)
        spec["updateStrategy"] = {"type": "NotUpdate"}
    else:
        spec["updateStrategy"] = draw(
            st.fixed_dictionaries(
                {"type": st.just("RollingUpdate")},
                optional={
                    "maxUnavailable": st.one_of(st.integers(0, 5), st.just("20%")),
                    "paused": st.booleans(),
                },
            )
        )
    if draw(st.booleans()):
        spec["namespace"] = draw(_names)
    elif draw(st.booleans()):
        spec["namespaceSelector"] = draw(_selectors)
    if draw(st.booleans()):
        spec["patchPodMetadata"] = [
            {
                "annotations": {"example.com/" + draw(_names): "v"},
                "patchPolicy": draw(st.sampled_from(["Retain", "Overwrite"])),
            }
        ]
    metadata: dict[str, Any] = {"name": draw(_names)}
    if draw(st.booleans()):
        metadata["labels"] = {"apps.kruise.io/sidecarset-custom-version": draw(_label_values)}
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": metadata, "spec": spec}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(v1alpha1_sidecarsets())
def test_round_trip_through_both_versions_preserves_the_definition(document: dict[str, Any]) -> None:
    canonical = parse_sidecarset(document)
    assert validate_sidecarset(canonical) == []

    for version in ("v1alpha1", "v1beta1"):
        exported = to_kruise(canonical, version)
        assert exported["apiVersion"] == f"apps.kruise.io/{version}"
        again = parse_sidecarset(exported)
        assert again == canonical
        assert revision_hash(again) == revision_hash(canonical)
        assert hash_without_images(again) == hash_without_images(canonical)


def test_round_trip_example_keeps_namespace_and_custom_version_meaning() -> None:
    document = {
        "apiVersion": "apps.kruise.io/v1alpha1",
        "kind": "SidecarSet",
        "metadata": {"name": "mesh", "labels": {"apps.kruise.io/sidecarset-custom-version": "v3"}},
        "spec": {
            "namespace": "ns-1",
            "selector": {"matchLabels": {"app": "web"}},
            "containers": [{"name": "envoy", "image": "envoy:1.0"}],
        },
    }
    canonical = parse_sidecarset(document)
    alpha = to_kruise(canonical, "v1alpha1")
    beta = to_kruise(canonical, "v1beta1")

    assert alpha["metadata"]["labels"] == {"apps.kruise.io/sidecarset-custom-version": "v3"}
    assert beta["spec"]["customVersion"] == "v3" and "labels" not in beta["metadata"]
    assert alpha["spec"]["namespaceSelector"] == beta["spec"]["namespaceSelector"]
    assert parse_sidecarset(alpha) == parse_sidecarset(beta) == canonical
