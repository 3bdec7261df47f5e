"""update.md §7.1: the scenarios of Kruise's ``sidecarset_strategy_test.go``, one test each.

"upgraded" pods carry the new hash; "done" ones also run the new image and are ready; the
others upgraded are still restarting (unavailable). All pods are Running/Ready unless stated.
"""

from __future__ import annotations

from typing import Any

import pytest
from planning_pods import make_pod, make_sidecarset, names, set_ready

from sidecarhub.sidecarset import PodClass, SidecarSet, plan_round
from sidecarhub.sidecarset.model import ScatterTerm
from sidecarhub.sidecarset.ordering import expand_scatter_terms

V1 = make_sidecarset("envoy:1")


def population(
    sidecarset: SidecarSet, total: int, upgraded: int, done: int, **pod_options: Any
) -> list[dict[str, Any]]:
    """``total`` pods; the first ``upgraded`` carry the new hash, the first ``done`` of those run it."""
    return [
        make_pod(
            f"pod-{index}",
            injected=V1,
            updated_to=sidecarset if index < upgraded else None,
            kubelet_done=index < done,
            created=index,
            **pod_options,
        )
        for index in range(total)
    ]


@pytest.mark.parametrize(
    ("total", "upgraded", "done", "max_unavailable", "expected"),
    [
        pytest.param(100, 30, 26, 10, 6, id="100 pods, 30 upgraded, 26 done, mU 10 -> 6"),
        pytest.param(1000, 300, 260, "10%", 60, id="1000 pods, 300 upgraded, 260 done, mU 10% -> 60"),
        pytest.param(1000, 300, 250, "5%", 0, id="1000 pods, 300 upgraded, 250 done, mU 5% -> 0"),
        pytest.param(100, 30, 27, 100, 70, id="100 pods, 30 upgraded, 27 done, mU 100 -> all 70"),
    ],
)
def test_budget_scenarios(
    total: int, upgraded: int, done: int, max_unavailable: int | str, expected: int
) -> None:
    # §7.1 bullets 1-4
    v2 = make_sidecarset("envoy:2", strategy={"maxUnavailable": max_unavailable})
    plan = plan_round(v2, population(v2, total, upgraded, done))
    assert len(plan.to_patch) == expected
    assert plan.of_class(PodClass.NEEDS_RECREATE) == ()


@pytest.mark.parametrize(
    ("partition", "expected"),
    [
        pytest.param(180, 20, id="partition 180 -> 20"),
        pytest.param(100, 60, id="partition 100 -> 60"),
        pytest.param("18%", 20, id="partition 18% -> 20"),
        pytest.param("10%", 60, id="partition 10% -> 60"),
    ],
)
def test_partition_scenarios_1000_pods_800_upgraded_760_done(partition: int | str, expected: int) -> None:
    # §7.1 bullets 5-8
    v2 = make_sidecarset("envoy:2", strategy={"partition": partition, "maxUnavailable": 100})
    assert len(plan_round(v2, population(v2, 1000, 800, 760)).to_patch) == expected


def test_canary_selector_30_of_1000() -> None:
    # §7.1 bullet 9: none upgraded, 30 labelled for the canary, selector on that label, mU 100 → 30.
    # (Kruise's test uses app=test; here app=web is the SidecarSet's own selector, so the canary
    # label is another key.)
    canary = {f"pod-{index}" for index in range(0, 1000, 33)[:30]}
    pods = [
        make_pod(
            f"pod-{index}",
            injected=V1,
            created=index,
            labels={"track": "test"} if f"pod-{index}" in canary else None,
        )
        for index in range(1000)
    ]
    v2 = make_sidecarset(
        "envoy:2", strategy={"selector": {"matchLabels": {"track": "test"}}, "maxUnavailable": 100}
    )
    plan = plan_round(v2, pods)
    assert len(canary) == 30
    assert set(names(plan.to_patch)) == canary
    assert len(plan.of_class(PodClass.NOT_SELECTED)) == 970


def test_hash_without_image_differs_100_not_upgradable() -> None:
    # §7.1 bullet 10: 0 to patch, 100 not upgradable ("needs recreate", decision 15).
    v2_with_env = make_sidecarset(
        "envoy:2", env=[{"name": "MODE", "value": "x"}], strategy={"maxUnavailable": 100}
    )
    plan = plan_round(v2_with_env, population(v2_with_env, 100, 0, 0))
    assert plan.to_patch == ()
    assert len(plan.of_class(PodClass.NEEDS_RECREATE)) == 100


def test_five_pods_max_unavailable_5_percent_rounds_up_to_1() -> None:
    # §7.1 bullet 11
    v2 = make_sidecarset("envoy:2", strategy={"maxUnavailable": "5%"})
    assert len(plan_round(v2, population(v2, 5, 0, 0)).to_patch) == 1


@pytest.mark.parametrize(
    ("partition", "expected"),
    [
        pytest.param("99%", 1, id="partition 99% -> 5 adjusted to 4 -> 1"),
        pytest.param("1%", 4, id="partition 1% -> rounded up to 1 -> 4"),
    ],
)
def test_five_pods_max_unavailable_5_with_partition(partition: str, expected: int) -> None:
    # §7.1 bullets 12-13
    v2 = make_sidecarset("envoy:2", strategy={"maxUnavailable": 5, "partition": partition})
    assert len(plan_round(v2, population(v2, 5, 0, 0)).to_patch) == expected


def test_twenty_pods_newest_first() -> None:
    # §7.1 bullet 14: 20 pods (10 upgraded, 5 done), mU 10 → pod-19, 18, 17, 16, 15.
    v2 = make_sidecarset("envoy:2", strategy={"maxUnavailable": 10})
    assert names(plan_round(v2, population(v2, 20, 10, 5)).to_patch) == [
        "pod-19",
        "pod-18",
        "pod-17",
        "pod-16",
        "pod-15",
    ]


def test_twenty_pods_not_ready_first_and_free() -> None:
    # §7.1 bullet 15: pod-10 and pod-13 NotReady → pod-13, pod-10, pod-19…pod-15 (7 pods).
    v2 = make_sidecarset("envoy:2", strategy={"maxUnavailable": 10})
    pods = [
        set_ready(pod, False) if pod["metadata"]["name"] in ("pod-10", "pod-13") else pod
        for pod in population(v2, 20, 10, 5)
    ]
    assert names(plan_round(v2, pods).to_patch) == [
        "pod-13",
        "pod-10",
        "pod-19",
        "pod-18",
        "pod-17",
        "pod-16",
        "pod-15",
    ]


def test_weight_priority() -> None:
    # §7.1 bullet 16: 10 upgraded, 2 done, mU 10 (budget 2); foo=50, bar=30 → pod-16, pod-15.
    v2 = make_sidecarset(
        "envoy:2",
        strategy={
            "maxUnavailable": 10,
            "priorityStrategy": {
                "weightPriority": [
                    {"weight": 50, "matchSelector": {"matchLabels": {"key": "foo"}}},
                    {"weight": 30, "matchSelector": {"matchLabels": {"key": "bar"}}},
                ]
            },
        },
    )
    pods = population(v2, 20, 10, 2)
    pods[16]["metadata"]["labels"]["key"] = "foo"
    pods[15]["metadata"]["labels"]["key"] = "bar"
    assert names(plan_round(v2, pods).to_patch) == ["pod-16", "pod-15"]


def test_order_priority() -> None:
    # §7.1 bullet 17: all key1=5 except pod-17=10 and pod-18=20 → pod-18, pod-17 (budget 2).
    v2 = make_sidecarset(
        "envoy:2",
        strategy={"maxUnavailable": 10, "priorityStrategy": {"orderPriority": [{"orderedKey": "key1"}]}},
    )
    pods = population(v2, 20, 10, 2)
    for index, pod in enumerate(pods):
        pod["metadata"]["labels"]["key1"] = {17: "10", 18: "20"}.get(index, "5")
    assert names(plan_round(v2, pods).to_patch) == ["pod-18", "pod-17"]


def test_scatter_wildcard_expansion() -> None:
    # §7.1 bullet 18: explicit key-1…key-3, then key-4="*" over values 4-0, 4-1, 4-2, 4.
    terms = [ScatterTerm(f"key-{n}", f"value-{n}") for n in (1, 2, 3)] + [ScatterTerm("key-4", "*")]
    pods = [{"key-4": value} for value in ("value-4-0", "value-4-1", "value-4-2", "value-4", "value-4-1")]
    assert expand_scatter_terms(terms, pods) == [
        *terms[:3],
        ScatterTerm("key-4", "value-4-0"),
        ScatterTerm("key-4", "value-4-1"),
        ScatterTerm("key-4", "value-4-2"),
        ScatterTerm("key-4", "value-4"),
    ]
