"""The planner's fast paths give exactly the answers of the reference code (issue 6 benchmark).

- ``PreparedFacts.evaluate`` (flat path for well-formed matched pods) equals ``evaluate_general``
  (the ``_Pod`` code) on pods mutated in every field the predicates read;
- the planner's default order (key heads, full keys only for ties) equals sorting by
  ``default_order_key``;
- the lazy budget walk (no partition, no scatter: only the pods the walk reaches are
  classified) patches exactly what the walk over the fully classified candidates patches.
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from planning_pods import make_pod, make_sidecarset, set_ready

from sidecarhub.sidecarset import ANNOTATION_INPLACE_UPDATE_STATE, PlanningCache, plan_round
from sidecarhub.sidecarset.annotations import ANNOTATION_HASH, ANNOTATION_INJECTED_LIST
from sidecarhub.sidecarset.evaluation import PreparedFacts
from sidecarhub.sidecarset.ordering import default_order_key
from sidecarhub.sidecarset.planning import _default_order, _rank_of
from sidecarhub.sidecarset.predicates import SidecarSetFacts, evaluate_general

V1 = make_sidecarset("envoy:1")
V2 = make_sidecarset("envoy:2")
DIGEST = "registry.example/envoy@sha256:" + "a" * 64
V_DIGEST = make_sidecarset(DIGEST)


def _mutations(rng: random.Random) -> list[Any]:
    """Small edits of a pod, each touching a field some predicate reads."""

    def annotations(pod: dict[str, Any]) -> dict[str, Any]:
        return pod["metadata"].setdefault("annotations", {})

    def container(pod: dict[str, Any]) -> dict[str, Any]:
        return next(c for c in pod["spec"]["containers"] if c.get("name") == "envoy")

    def status_of(pod: dict[str, Any]) -> dict[str, Any]:
        return next(s for s in pod["status"]["containerStatuses"] if s.get("name") == "envoy")

    return [
        lambda pod: pod["status"].update(phase=rng.choice(["Pending", "Unknown", "Succeeded", "Failed"])),
        lambda pod: pod["metadata"].update(deletionTimestamp="2024-01-01T00:00:00Z"),
        lambda pod: pod["metadata"].update(labels={"app": "other"}),
        lambda pod: pod["metadata"].pop("labels"),
        lambda pod: pod["metadata"].update(labels="app=web"),
        lambda pod: annotations(pod).update({ANNOTATION_INJECTED_LIST: "other,mesh"}),
        lambda pod: annotations(pod).update({ANNOTATION_INJECTED_LIST: "other"}),
        lambda pod: annotations(pod).update({ANNOTATION_INJECTED_LIST: 7}),
        lambda pod: pod["metadata"].pop("annotations"),
        lambda pod: annotations(pod).update({ANNOTATION_HASH: "not json"}),
        lambda pod: annotations(pod).update({ANNOTATION_HASH: json.dumps({"mesh": V2.name})}),
        lambda pod: annotations(pod).update(
            {ANNOTATION_HASH: annotations(pod).get(ANNOTATION_HASH, "{}").replace('"hash"', '"h\\u0061sh"')}
        ),
        lambda pod: annotations(pod).update({ANNOTATION_INPLACE_UPDATE_STATE: "{broken"}),
        lambda pod: annotations(pod).update({ANNOTATION_INPLACE_UPDATE_STATE: json.dumps({"mesh": 3})}),
        lambda pod: annotations(pod).update({ANNOTATION_INPLACE_UPDATE_STATE: json.dumps({"other": {}})}),
        lambda pod: annotations(pod).update(
            {
                ANNOTATION_INPLACE_UPDATE_STATE: json.dumps(
                    {"mesh": {"lastContainerStatuses": {"envoy": {"imageID": status_of(pod).get("imageID")}}}}
                )
            }
        ),
        lambda pod: container(pod).update(image=DIGEST),
        lambda pod: container(pod).update(image=None),
        lambda pod: status_of(pod).update(imageID="docker-pullable://" + DIGEST),
        lambda pod: status_of(pod).update(image="something:else"),
        lambda pod: status_of(pod).update(ready=not status_of(pod).get("ready")),
        lambda pod: status_of(pod).update(restartCount=rng.randrange(5)),
        lambda pod: pod["status"]["containerStatuses"].pop(),
        lambda pod: pod["status"].pop("containerStatuses"),
        lambda pod: pod["status"].update(containerStatuses=tuple(pod["status"]["containerStatuses"])),
        lambda pod: pod["spec"]["containers"].append("not a container"),
        lambda pod: pod["spec"]["containers"].append({"name": "log", "image": "log:1"}),
        lambda pod: pod["spec"].update(
            containers=[c for c in pod["spec"]["containers"] if c["name"] != "envoy"]
        ),
        lambda pod: pod["status"].update(conditions=[{"type": "PodScheduled", "status": "True"}]),
        lambda pod: pod["status"].update(conditions=None),
        lambda pod: pod["status"]["conditions"].insert(0, {"type": "Initialized", "status": "True"}),
        lambda pod: pod["status"]["conditions"].insert(0, "junk"),
        lambda pod: pod["spec"].pop("nodeName", None),
        lambda pod: pod["metadata"].update(namespace=None, uid=5),
        lambda pod: pod.update(status=None),
        # shapes the flat path reads by subscript (anything that raises goes the general way)
        lambda pod: pod["status"].pop("phase"),
        lambda pod: pod["status"].pop("conditions"),
        lambda pod: pod["status"].update(conditions={"type": "Ready", "status": "True"}),
        lambda pod: pod["status"]["conditions"].insert(0, {"status": "True"}),
        lambda pod: pod["status"].update(containerStatuses="ab"),
        lambda pod: container(pod).pop("name"),
        lambda pod: container(pod).pop("image"),
        lambda pod: pod["spec"].update(containers={c["name"]: c for c in pod["spec"]["containers"]}),
        lambda pod: pod["spec"].update(containers="envoy"),
        lambda pod: pod["spec"].update(containers=tuple(pod["spec"]["containers"])),
        lambda pod: pod["metadata"].update(annotations=list(annotations(pod).items())),
        lambda pod: pod["metadata"].update(labels=None),
        lambda pod: pod.update(metadata=list(pod["metadata"].items())),
        lambda pod: pod.pop("spec"),
    ]


_SIDECARSETS = [
    V2,
    V_DIGEST,
    make_sidecarset("envoy:2", env=[{"name": "A", "value": "1"}]),
    make_sidecarset(
        "envoy:2",
        init_containers=[{"name": "init-proxy", "image": "proxy:1", "restartPolicy": "Always"}],
    ),
    make_sidecarset("envoy:2", hot=True),
]


def _pod(rng: random.Random, index: int, target: Any) -> dict[str, Any]:
    kind = rng.choice(["old", "updated", "restarting", "recreate"])
    common: dict[str, Any] = {
        "created": rng.randrange(4),
        "ready_since": rng.choice([None, 1, 2]),
        "restarts": rng.randrange(3),
    }
    if kind == "old":
        pod = make_pod(f"p-{index}", injected=V1, **common)
    elif kind == "updated":
        pod = make_pod(f"p-{index}", injected=V1, updated_to=target, **common)
    elif kind == "restarting":
        pod = make_pod(f"p-{index}", injected=V1, updated_to=target, kubelet_done=False, **common)
    else:
        pod = make_pod(f"p-{index}", injected=_SIDECARSETS[2], **common)
    if rng.random() < 0.3:
        pod = set_ready(pod, False)
    pod = copy.deepcopy(pod)
    mutations = _mutations(rng)
    for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
        with contextlib.suppress(KeyError, StopIteration, TypeError, AttributeError, IndexError):
            rng.choice(mutations)(pod)  # a mutation that does not apply to this shape is skipped
    return pod


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), which=st.integers(0, len(_SIDECARSETS) - 1))
def test_fast_evaluation_equals_the_general_code(seed: int, which: int) -> None:
    rng = random.Random(seed)
    facts = SidecarSetFacts.of(_SIDECARSETS[which])
    prepared = PreparedFacts(facts)
    for index in range(8):
        pod = _pod(rng, index, _SIDECARSETS[which])
        try:
            expected: Any = evaluate_general(facts, pod)
        except Exception as error:
            expected = type(error)
        try:
            actual: Any = prepared.evaluate(pod)
        except Exception as error:
            actual = type(error)
        assert actual == expected, pod
        if not isinstance(expected, type) and expected.matched and not expected.updated:
            evaluation, head = prepared.evaluate_deferred(pod)
            assert evaluation is not None  # brief=False: only a brief evaluation may come back as None
            assert prepared.classify(pod, evaluation) == expected
            if head is not None:
                assert _rank_of(pod) == head
            # a bare evaluation (shared, without ref and labels) classifies to the same answer
            bare, bare_head = prepared.evaluate_deferred(pod, brief=True, bare=True)
            assert bare is not None and bare_head == head
            assert prepared.classify(pod, bare) == expected
        if not isinstance(expected, type) and expected.matched and expected.updated:
            brief, available = prepared.evaluate_deferred(pod, brief=True, bare=True)
            if brief is None:  # brief: only whether it is ready and consistent
                assert available == (expected.ready and expected.consistent)
            else:
                assert brief == expected


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_default_order_with_tied_heads_equals_sorting_by_the_full_key(seed: int) -> None:
    rng = random.Random(seed)
    pods = [
        _pod(rng, index, V2)
        if rng.random() < 0.2
        else make_pod(
            f"p-{index}",
            injected=V1,
            created=rng.randrange(3),
            ready_since=rng.choice([None, 1, 2]),
            restarts=rng.randrange(2),
            namespace=rng.choice(["a", "b"]),
        )
        for index in range(rng.randrange(1, 30))
    ]
    plan = plan_round(V2, pods, cache=PlanningCache())
    pending = [(decision.ref, None, decision.pod, _rank_of(decision.pod), None) for decision in plan.ordered]
    rng.shuffle(pending)
    got = [item[2] for item in _default_order(pending)]  # type: ignore[arg-type]  # None evaluations: not read
    assert got == sorted((item[2] for item in pending), key=default_order_key)


_amounts = st.one_of(st.integers(0, 6), st.integers(0, 100).map(lambda value: f"{value}%"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), max_unavailable=_amounts, restrict=st.booleans())
def test_lazy_budget_walk_patches_what_the_full_walk_patches(
    seed: int, max_unavailable: int | str, restrict: bool
) -> None:
    rng = random.Random(seed)
    sidecarset = make_sidecarset("envoy:2", strategy={"maxUnavailable": max_unavailable})
    pods = [_pod(rng, index, sidecarset) for index in range(rng.randrange(0, 25))]
    only = None
    if restrict:
        refs = [plan_decision.ref for plan_decision in plan_round(sidecarset, pods).ordered]
        only = frozenset(rng.sample(refs, len(refs) // 2))
    plan = plan_round(sidecarset, pods, only=only)
    # the reference walk (update.md §1.7 step 4) over every candidate, fully classified
    expected = []
    unavailable = plan.unavailable_before
    for decision in plan.ordered:
        if only is not None and decision.ref not in only:
            continue
        if not decision.ready:
            expected.append(decision.ref)
            continue
        if unavailable >= plan.max_unavailable:
            break
        unavailable += 1
        expected.append(decision.ref)
    assert [decision.ref for decision in plan.to_patch] == expected
    # a cached round and an uncached round agree on everything
    cache = PlanningCache()
    plan_round(sidecarset, pods, only=only, cache=cache)
    again = plan_round(sidecarset, pods, only=only, cache=cache)
    assert again.decisions == plan.decisions
    assert again.to_patch == plan.to_patch


@settings(max_examples=100, deadline=None)
@given(
    seconds=st.lists(
        st.one_of(st.none(), st.integers(-62_000_000_000, 253_000_000_000)), min_size=2, max_size=6
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_order_rank_never_contradicts_the_default_order_key(seconds: list[int | None], seed: int) -> None:
    # the planner pre-sorts by the rank and sorts only equal ranks by the full key
    rng = random.Random(seed)
    pods = []
    for index, second in enumerate(seconds):
        pod = make_pod(
            f"p-{index}", injected=V1, node=rng.choice([None, "n"]), phase=rng.choice(["Running", "Pending"])
        )
        condition = pod["status"]["conditions"][0]
        condition["status"] = rng.choice(["True", "True", "False"])
        if second is None:
            condition.pop("lastTransitionTime", None)
        else:
            moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=second)
            condition["lastTransitionTime"] = moment.isoformat()
        pods.append(pod)
    for a in pods:
        for b in pods:
            if _rank_of(a) < _rank_of(b):
                assert default_order_key(a) < default_order_key(b)
