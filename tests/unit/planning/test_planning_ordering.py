"""Candidate order: §1.6.1 default order, §1.6.2 priority and §1.6.3 scatter (update.md §7.3
scenarios), and the deliberate differences of decisions 11 and 12."""

from __future__ import annotations

import random
from collections.abc import Mapping

import pytest
from planning_pods import make_pod, make_sidecarset, names, set_ready

from sidecarhub.sidecarset import plan_round
from sidecarhub.sidecarset.model import ScatterTerm
from sidecarhub.sidecarset.ordering import default_order_key, scatter_order

V1 = make_sidecarset("envoy:1")


def ordered(strategy: Mapping[str, object], pods: list[dict[str, object]]) -> list[str]:
    return names(plan_round(make_sidecarset("envoy:2", strategy=strategy), pods).ordered)


# --- §1.6.1 default order ------------------------------------------------------------------------


def test_default_order_keys_in_turn() -> None:
    # §1.6.1: unbound < bound; Pending < Unknown < Running; not Ready first; most recently ready
    # first (no transition time first of all); more restarts first; newer first.
    unbound = make_pod("unbound", injected=V1, node=None)
    pending = make_pod("pending", injected=V1, phase="Pending", ready=False)
    unknown = make_pod("unknown", injected=V1, phase="Unknown", ready=False)
    not_ready = set_ready(make_pod("not-ready", injected=V1), False)
    no_ready_time = make_pod("no-ready-time", injected=V1)
    del no_ready_time["status"]["conditions"][0]["lastTransitionTime"]
    recently_ready = make_pod("recently-ready", injected=V1, ready_since=500)
    restarted = make_pod("restarted", injected=V1, ready_since=100, restarts=3)
    newer = make_pod("newer", injected=V1, ready_since=100, created=50)
    older = make_pod("older", injected=V1, ready_since=100, created=10)
    pods = [older, newer, restarted, recently_ready, no_ready_time, not_ready, unknown, pending, unbound]
    expected = [
        "unbound",
        "pending",
        "unknown",
        "not-ready",
        "no-ready-time",
        "recently-ready",
        "restarted",
        "newer",
        "older",
    ]
    assert [pod["metadata"]["name"] for pod in sorted(pods, key=default_order_key)] == expected
    # and the planner uses exactly that order (not-ready pods first, here all free of budget)
    assert ordered({}, pods) == expected


# --- decision 11: deterministic tie-breaks --------------------------------------------------------


def test_decision_11_full_ties_are_broken_by_namespace_then_pod_name() -> None:
    # Kruise: unstable sort over cache order (random). sidecarhub: namespace, then pod name.
    pods = [
        make_pod(name, injected=V1, namespace=namespace)
        for namespace, name in [("b", "x"), ("a", "z"), ("a", "y"), ("b", "a"), ("a", "x2")]
    ]
    expected = ["x2", "y", "z", "a", "x"]  # a/x2, a/y, a/z, b/a, b/x
    for seed in range(5):
        random.Random(seed).shuffle(pods)
        assert ordered({"maxUnavailable": 5}, pods) == expected


def test_decision_11_scatter_wildcards_expand_in_name_order() -> None:
    # Kruise expands value "*" in cache order; sidecarhub in canonical (namespace, name) order,
    # so equal-count terms are applied in an order that does not depend on the listing.
    pods = [
        make_pod(f"p{index}", injected=V1, created=100 - index, labels={"zone": zone})
        for index, zone in enumerate(["b", "b", "a", "a", "c", "c"])
    ]
    strategy = {"scatterStrategy": [{"key": "zone", "value": "*"}]}
    results = set()
    for seed in range(6):
        random.Random(seed).shuffle(pods)
        results.add(tuple(ordered(strategy, pods)))
    assert len(results) == 1


# --- §1.6.2 priority (update.md §7.3 priority compare) ------------------------------------------


def weight_strategy(*terms: tuple[int, dict[str, str]]) -> dict[str, object]:
    return {
        "priorityStrategy": {
            "weightPriority": [
                {"weight": weight, "matchSelector": {"matchLabels": labels}} for weight, labels in terms
            ]
        }
    }


def test_weights_are_summed_over_matching_terms() -> None:
    # §7.3: the higher sum wins (30 + 30 beats 50).
    pods = [
        make_pod("fifty", injected=V1, created=3, labels={"a": "1"}),
        make_pod("sixty", injected=V1, created=1, labels={"b": "1", "c": "1"}),
        make_pod("none", injected=V1, created=2),
    ]
    strategy = weight_strategy((50, {"a": "1"}), (30, {"b": "1"}), (30, {"c": "1"}))
    assert ordered(strategy, pods) == ["sixty", "fifty", "none"]


def test_order_key_with_higher_trailing_number_wins() -> None:
    # §7.3: o-10 beats o-5 (trailing digits compared as integers, not strings).
    pods = [
        make_pod("five", injected=V1, created=2, labels={"key1": "o-5"}),
        make_pod("ten", injected=V1, created=1, labels={"key1": "o-10"}),
        make_pod("none-digits", injected=V1, created=3, labels={"key1": "o"}),
    ]
    strategy = {"priorityStrategy": {"orderPriority": [{"orderedKey": "key1"}]}}
    assert ordered(strategy, pods) == ["ten", "five", "none-digits"]


def test_a_pod_with_key1_beats_a_pod_with_only_key2() -> None:
    # §7.3: the pod with only key2 does not come first.
    pods = [
        make_pod("only-key2", injected=V1, created=2, labels={"key2": "100"}),
        make_pod("key1", injected=V1, created=1, labels={"key1": "1"}),
    ]
    strategy = {"priorityStrategy": {"orderPriority": [{"orderedKey": "key1"}, {"orderedKey": "key2"}]}}
    assert ordered(strategy, pods) == ["key1", "only-key2"]


def test_equal_priority_keeps_the_earlier_order() -> None:
    # §7.3: equal values fall back to the earlier (default) order: newest first here.
    pods = [make_pod(f"p{index}", injected=V1, created=index, labels={"key1": "7"}) for index in range(4)]
    strategy = {"priorityStrategy": {"orderPriority": [{"orderedKey": "key1"}]}}
    assert ordered(strategy, pods) == ["p3", "p2", "p1", "p0"]
    weights = weight_strategy((10, {"key1": "7"}))
    assert ordered(weights, pods) == ["p3", "p2", "p1", "p0"]


def test_decision_12_pods_without_any_order_key_go_last() -> None:
    # Kruise's code gives key-less pods level -1 and puts them FIRST (update.md §1.6.2, E6).
    # sidecarhub follows the API's documented intent: after every keyed pod.
    pods = [
        make_pod("keyless-newest", injected=V1, created=9),
        make_pod("key2", injected=V1, created=1, labels={"key2": "1"}),
        make_pod("key1", injected=V1, created=0, labels={"key1": "20"}),
        make_pod("keyless-older", injected=V1, created=5),
    ]
    strategy = {"priorityStrategy": {"orderPriority": [{"orderedKey": "key1"}, {"orderedKey": "key2"}]}}
    assert ordered(strategy, pods) == ["key1", "key2", "keyless-newest", "keyless-older"]


# --- §1.6.3 scatter (update.md §7.3 TestScatterPodsByRule) --------------------------------------


@pytest.mark.parametrize(
    ("count", "labelled", "expected"),
    [
        (6, [4, 5], [4, 0, 1, 2, 3, 5]),
        (6, [3, 4, 5], [3, 0, 1, 4, 2, 5]),
        (7, [3, 6], [3, 0, 1, 2, 4, 5, 6]),
        (9, [6, 7, 8], [6, 0, 1, 2, 7, 3, 4, 5, 8]),
        (6, [2, 3, 4, 5], [2, 3, 0, 4, 1, 5]),
        (9, [2, 4, 5, 6, 7, 8], [2, 4, 0, 5, 6, 1, 7, 3, 8]),
        (9, [1, 3, 6, 7, 8], [1, 0, 3, 2, 6, 4, 7, 5, 8]),
        (10, [7, 8, 9], [7, 0, 1, 2, 3, 8, 4, 5, 6, 9]),
        (1, [0], [0]),
        (2, [1], [0, 1]),
        (2, [0, 1], [0, 1]),
    ],
)
def test_scatter_one_term(count: int, labelled: list[int], expected: list[int]) -> None:
    # §7.3: one term labelA=AAA; all pods are candidates and the whole matched set.
    labels = [{"labelA": "AAA"} if index in labelled else {} for index in range(count)]
    assert scatter_order(labels, labels, [ScatterTerm("labelA", "AAA")]) == expected


def test_scatter_uses_all_matched_pods_for_densities() -> None:
    # §1.6.3: TM/TU count every matched pod, updated ones included, so the order of the same
    # candidates depends on how many labelled pods are already done.
    candidates = [{"zone": "a"}, {"zone": "a"}, {"zone": "a"}, {}, {}, {}]
    alone = scatter_order(candidates, candidates, [ScatterTerm("zone", "a")])
    # 12 more zone=a pods already updated: zone a is dense overall, so unlabelled pods go first.
    with_updated = scatter_order(candidates, candidates + [{"zone": "a"}] * 12, [ScatterTerm("zone", "a")])
    assert alone == [0, 3, 4, 1, 5, 2]
    assert with_updated == [3, 4, 5, 0, 1, 2]
