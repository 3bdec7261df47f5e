"""Cross-SidecarSet conflicts (injection.md §5.10; scenarios 52-55 of §14.3)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecarhub.sidecarset import (
    ConflictIndex,
    LabelSelector,
    SidecarSet,
    find_conflicts,
    parse_sidecarset,
    selectors_may_overlap,
)


def sidecarset(name: str, **spec: Any) -> SidecarSet:
    full_spec = {
        "selector": {"matchLabels": {"app": "web"}},
        "containers": [{"name": "envoy", "image": "e:1"}],
    }
    full_spec.update(spec)
    return parse_sidecarset(
        {
            "apiVersion": "apps.kruise.io/v1beta1",
            "kind": "SidecarSet",
            "metadata": {"name": name},
            "spec": full_spec,
        }
    )


def selector(**match: Any) -> LabelSelector:
    selector_ = LabelSelector.from_dict(match)
    assert selector_ is not None
    return selector_


def expression(key: str, operator: str, *values: str) -> dict[str, Any]:
    return {"key": key, "operator": operator, "values": list(values)}


@pytest.mark.parametrize(
    ("first", "second", "overlap"),
    [
        ({"matchLabels": {"a": "h"}}, {"matchLabels": {"a": "h"}}, True),
        ({"matchLabels": {"a": "h"}}, {"matchLabels": {"a": "i"}}, False),
        ({"matchLabels": {"a": "h"}}, {"matchLabels": {"b": "i"}}, True),
        (
            {"matchLabels": {"a": "h", "b": "i", "c": "j"}},
            {"matchLabels": {"a": "h", "b": "x", "c": "j"}},
            False,
        ),
        ({"matchLabels": {"a": "h"}}, {"matchExpressions": [expression("a", "In", "h", "i", "j")]}, True),
        ({"matchLabels": {"a": "h"}}, {"matchExpressions": [expression("a", "In", "i", "j")]}, False),
        ({"matchExpressions": [expression("a", "NotIn", "h", "i")]}, {"matchLabels": {"a": "h"}}, False),
        ({"matchLabels": {"a": "h"}}, {"matchExpressions": [expression("a", "Exists")]}, True),
        ({"matchExpressions": [expression("a", "DoesNotExist")]}, {"matchLabels": {"a": "h"}}, False),
    ],
)
def test_selector_overlap_truth_table(first: dict[str, Any], second: dict[str, Any], overlap: bool) -> None:
    assert selectors_may_overlap(selector(**first), selector(**second)) is overlap
    assert selectors_may_overlap(selector(**second), selector(**first)) is overlap


def test_a_missing_namespace_selector_overlaps_everything() -> None:
    assert selectors_may_overlap(None, selector(matchLabels={"a": "b"}))


def test_same_container_and_init_container_names_conflict_identical_volumes_do_not() -> None:
    spec = {
        "initContainers": [{"name": "init", "image": "i:1"}],
        "volumes": [{"name": "shared", "hostPath": {"path": "/x"}}],
    }
    errors = find_conflicts(sidecarset("a", **spec), [sidecarset("b", **spec)])
    assert [error.path for error in errors] == ["spec.initContainers[0].name", "spec.containers[0].name"]
    assert "'b'" in errors[0].message


@pytest.mark.parametrize(
    ("candidate_ns", "other_ns", "count"),
    [
        ({"matchLabels": {"app": "nginx"}}, {"matchLabels": {"app": "nginx"}}, 1),
        ({"matchLabels": {"app": "nginx"}}, {"matchLabels": {"app": "redis"}}, 0),
    ],
)
def test_namespace_selectors_decide_overlap(candidate_ns: Any, other_ns: Any, count: int) -> None:
    candidate = sidecarset("a", namespaceSelector=candidate_ns)
    assert len(find_conflicts(candidate, [sidecarset("b", namespaceSelector=other_ns)])) == count


def test_disjoint_pod_selectors_never_conflict() -> None:
    other = sidecarset("b", selector={"matchLabels": {"app": "db"}})
    assert find_conflicts(sidecarset("a"), [other]) == []


@pytest.mark.parametrize(
    ("mine", "theirs", "count"),
    [
        (
            {"annotations": {"k": "v"}, "patchPolicy": "Overwrite"},
            {"annotations": {"k": "{}"}, "patchPolicy": "MergePatchJson"},
            1,
        ),
        (
            {"annotations": {"k": "v"}, "patchPolicy": "Retain"},
            {"annotations": {"j": "v"}, "patchPolicy": "Overwrite"},
            0,
        ),
        (
            {"annotations": {"k": "{}"}, "patchPolicy": "MergePatchJson"},
            {"annotations": {"k": "{}"}, "patchPolicy": "MergePatchJson"},
            0,
        ),
        (
            {"annotations": {"k": "v"}, "patchPolicy": "Retain"},
            {"annotations": {"k": "v"}, "patchPolicy": "Overwrite"},
            0,
        ),
    ],
)
def test_pod_annotation_conflicts(mine: dict[str, Any], theirs: dict[str, Any], count: int) -> None:
    candidate = sidecarset("a", containers=[{"name": "x", "image": "x:1"}], patchPodMetadata=[mine])
    other = sidecarset("b", containers=[{"name": "y", "image": "y:1"}], patchPodMetadata=[theirs])
    errors = find_conflicts(candidate, [other])
    assert len(errors) == count
    if count:
        assert errors[0].path == "spec.patchPodMetadata[0].annotations[k]"


@pytest.mark.parametrize(
    ("other_volume", "count"),
    [
        ({"name": "other", "hostPath": {"path": "/a"}}, 0),
        ({"name": "v", "hostPath": {"path": "/a"}}, 0),
        ({"name": "v", "hostPath": {"path": "/b"}}, 1),
    ],
)
def test_volume_conflicts(other_volume: dict[str, Any], count: int) -> None:
    candidate = sidecarset(
        "a", containers=[{"name": "x", "image": "x:1"}], volumes=[{"name": "v", "hostPath": {"path": "/a"}}]
    )
    other = sidecarset("b", containers=[{"name": "y", "image": "y:1"}], volumes=[other_volume])
    errors = find_conflicts(candidate, [other])
    assert [error.path for error in errors] == ["spec.volumes[0]"] * count


def test_itself_and_its_canary_base_are_not_conflicts() -> None:
    canary = parse_sidecarset(
        {
            "apiVersion": "apps.kruise.io/v1beta1",
            "kind": "SidecarSet",
            "metadata": {
                "name": "canary",
                "annotations": {
                    "apps.kruise.io/sidecarset-canary": "true",
                    "apps.kruise.io/sidecarset-base": "base",
                },
            },
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "containers": [{"name": "envoy", "image": "e:2"}],
                "updateStrategy": {"type": "NotUpdate"},
            },
        }
    )
    assert find_conflicts(canary, [sidecarset("base"), sidecarset("canary")]) == []
    assert len(find_conflicts(canary, [sidecarset("third")])) == 1


def test_cross_list_names_and_hot_upgrade_twins_are_not_checked_like_kruise() -> None:
    candidate = sidecarset(
        "a",
        containers=[
            {
                "name": "x",
                "image": "x:1",
                "upgradeStrategy": {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "e:1"},
            }
        ],
    )
    other = sidecarset(
        "b", containers=[{"name": "x-1", "image": "y:1"}], initContainers=[{"name": "x", "image": "i:1"}]
    )
    assert find_conflicts(candidate, [other]) == []


# --- ConflictIndex: the same answers as find_conflicts over everything (issue 15, linear import) ---

_NAMES = st.sampled_from(["envoy", "log", "dns", "x"])
_APPS = st.sampled_from(["web", "db", "api"])


@st.composite
def _generated(draw: st.DrawFn, name: str) -> SidecarSet:
    return sidecarset(
        name,
        selector={"matchLabels": {"app": draw(_APPS)}},
        containers=[
            {"name": n, "image": "i:1"} for n in draw(st.lists(_NAMES, min_size=1, max_size=2, unique=True))
        ],
        initContainers=[{"name": n, "image": "i:1"} for n in draw(st.lists(_NAMES, max_size=1))],
        volumes=[
            {"name": n, "emptyDir": {"medium": draw(st.sampled_from(["", "Memory"]))}}
            for n in draw(st.lists(_NAMES, max_size=2, unique=True))
        ],
        patchPodMetadata=[
            {"annotations": {key: "{}"}, "patchPolicy": draw(st.sampled_from(["Overwrite", "Retain"]))}
            for key in draw(st.lists(_NAMES, max_size=1))
        ],
    )


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_the_index_finds_exactly_what_find_conflicts_finds(data: st.DataObject) -> None:
    stored = [data.draw(_generated(f"s{position}")) for position in range(data.draw(st.integers(0, 6)))]
    index = ConflictIndex(stored)
    replacement_position = data.draw(st.integers(0, max(0, len(stored) - 1)))
    if stored:  # put replaces the SidecarSet of the same name
        stored[replacement_position] = data.draw(_generated(f"s{replacement_position}"))
        index.put(stored[replacement_position])
    remove_one: bool = data.draw(st.booleans())
    if stored and remove_one:  # remove drops one (and its names from the index)
        index.remove(stored.pop(data.draw(st.integers(0, len(stored) - 1))).name)
    index.remove("never-stored")
    candidate = data.draw(_generated(data.draw(st.sampled_from(["s0", "new"]))))
    assert index.find_conflicts(candidate) == find_conflicts(candidate, stored)
    assert len(index) == len(stored) and sorted(item.name for item in index) == sorted(s.name for s in stored)
