"""The admission fast path (issue 17 target 2): the JSON patch built from what ``inject`` changed,
and the candidate index that spares matching the SidecarSets that cannot concern a pod.

Properties, over generated pods and SidecarSets:
- the patch applied to the caller's pod gives exactly ``inject``'s pod (JSON types included),
  also after the JSON round trip of an AdmissionReview answer;
- ``patch_between`` is exact for any two JSON documents, shared parts or not;
- every candidate whose evaluation could match or refuse a pod is ``reachable`` through the index,
  in decision 5's order; and ``inject`` gives the same answer through an index built once as
  through the plain sequence.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from injection_builders import NOW, as_candidate, container, make_pod, make_sidecarset

from sidecarhub.sidecarset import CandidateIndex, InjectionCandidate, InjectionError, inject, parse_sidecarset
from sidecarhub.sidecarset.json_patch import patch_between
from sidecarhub.sidecarset.matching import (
    application_order,
    namespace_labels_for,
    namespace_matches,
    pod_selector_matches,
    selector_error,
)

NAMES = ("a", "b", "c")
KEYS = ("app", "tier", "zone")
VALUES = ("web", "db", "x")


def _exact(value: Any) -> str:
    """JSON text: tells ``1``, ``1.0`` and ``true`` apart, which ``==`` does not."""
    return json.dumps(value, sort_keys=True)


# --- patch_between on any JSON ------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.sampled_from([0.0, 1.0, 2.5])
    | st.sampled_from(["", "a", "~/"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["a", "b", "~", "/x"]), children, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def shared_edit(draw: st.DrawFn, value: Any) -> Any:
    """A new document that shares some of ``value``'s parts by identity and changes others."""
    if isinstance(value, dict) and draw(st.booleans()):
        edited = {key: draw(shared_edit(item)) for key, item in value.items() if draw(st.integers(0, 4))}
        edited.update(draw(st.dictionaries(st.sampled_from(["a", "new"]), json_values, max_size=2)))
        return edited
    if isinstance(value, list) and draw(st.booleans()):
        before = draw(st.lists(json_values, max_size=2))
        after = draw(st.lists(json_values, max_size=2))
        return before + [draw(shared_edit(item)) for item in value] + after
    return value if draw(st.integers(0, 3)) else draw(json_values)


@given(st.data(), json_values)
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_patch_between_turns_any_document_into_any_other(data: st.DataObject, old: Any) -> None:
    new = data.draw(shared_edit(old)) if data.draw(st.booleans()) else data.draw(json_values)
    old_text, new_text = _exact(old), _exact(new)
    patch = patch_between({"doc": old}, {"doc": new})
    patched = jsonpatch.apply_patch({"doc": json.loads(old_text)}, json.loads(json.dumps(patch)))
    assert _exact(patched["doc"]) == new_text
    assert (_exact(old), _exact(new)) == (old_text, new_text)  # neither document was touched


def test_patch_between_skips_shared_parts_and_inserts_before_them() -> None:
    app = {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}]}
    old = {"spec": {"containers": [app], "volumes": [{"name": "v"}]}}
    new = {"spec": {**old["spec"], "containers": [{"name": "sidecar"}, app, {"name": "tail"}]}}
    assert patch_between(old, new) == [
        {"op": "add", "path": "/spec/containers/0", "value": {"name": "sidecar"}},
        {"op": "add", "path": "/spec/containers/2", "value": {"name": "tail"}},
    ]
    assert patch_between({"a": 1}, {"a": True}) == [{"op": "replace", "path": "/a", "value": True}]
    assert patch_between({"a/b~": [1, 2]}, {"a/b~": [2]}) == [
        {"op": "replace", "path": "/a~1b~0", "value": [2]}
    ]


# --- inject's patch -------------------------------------------------------------------------------


def _sidecarset(name: str, options: dict[str, Any]) -> Any:
    spec: dict[str, Any] = {
        "containers": [
            container(
                f"{name}-c",
                podInjectPolicy=options["policy"],
                volumeMounts=[{"name": f"{name}-vol", "mountPath": f"/{name}"}],
                shareVolumePolicy={"type": "enabled" if options["share"] else "disabled"},
            )
        ],
        "volumes": [{"name": f"{name}-vol", "emptyDir": {}}],
    }
    if options["same_name_as_app"]:
        spec["containers"].append(container("app", image=f"{name}-replaces-app:1"))
    if options["init"]:
        spec["initContainers"] = [container(f"{name}-init")]
    if options["secret"]:
        spec["imagePullSecrets"] = [{"name": options["secret"]}]
    if options["hot_upgrade"]:
        spec["containers"][0]["upgradeStrategy"] = {
            "upgradeType": "HotUpgrade",
            "hotUpgradeEmptyImage": "e:1",
        }
    if options["annotation"]:
        spec["patchPodMetadata"] = [
            {"annotations": {"cfg": '{"k":"' + name + '"}'}, "patchPolicy": options["annotation"]}
        ]
    return make_sidecarset(name, selector={"matchLabels": {"app": options["selects"]}}, **spec)


sidecarset_options = st.fixed_dictionaries(
    {
        "policy": st.sampled_from(["BeforeAppContainer", "AfterAppContainer"]),
        "share": st.booleans(),
        "same_name_as_app": st.booleans(),
        "init": st.booleans(),
        "secret": st.sampled_from(["", "own", "shared"]),
        "hot_upgrade": st.booleans(),
        "annotation": st.sampled_from(["", "MergePatchJson", "Retain", "Overwrite"]),
        "selects": st.sampled_from(["nginx", "other"]),
    }
)


@st.composite
def pods(draw: st.DrawFn) -> dict[str, Any]:
    containers: list[Any] = [
        container(
            "app", env=[{"name": "A", "value": "1"}], volumeMounts=[{"name": "data", "mountPath": "/data"}]
        )
    ]
    if draw(st.booleans()):
        containers.append(container("second"))
    fields: dict[str, Any] = {}
    if draw(st.booleans()):
        fields["volumes"] = [{"name": "data", "emptyDir": {}}]
    if draw(st.booleans()):
        fields["imagePullSecrets"] = [{"name": "own"}, {"name": "own"}]
    if draw(st.booleans()):
        fields["initContainers"] = [container("setup")]
    annotations = draw(st.sampled_from([None, {}, {"cfg": '{"own":1}'}, {"other": "x"}]))
    pod = make_pod(containers=containers, annotations=annotations, **fields)
    if draw(st.booleans()):  # junk the core drops from the merged list (the patch must follow)
        pod["spec"]["containers"].insert(draw(st.integers(0, len(containers))), "not a container")
    if draw(st.booleans()):
        del pod["metadata"]["namespace"]
    return pod


@given(pods(), st.lists(sidecarset_options, min_size=0, max_size=3))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_patch_applied_to_the_input_pod_gives_exactly_the_injected_pod(
    pod: dict[str, Any], options: list[dict[str, Any]]
) -> None:
    sidecarsets = [_sidecarset(name, item) for name, item in zip(NAMES, options, strict=False)]
    before = _exact(pod)
    try:
        result = inject(pod, {"team": "t"}, [as_candidate(item) for item in sidecarsets], now=NOW, seed="s")
    except InjectionError:
        return  # a refusal has no patch (e.g. MergePatchJson over an annotation that is not JSON)
    assert _exact(pod) == before  # the caller's pod is never mutated
    patch = result.json_patch()
    assert bool(patch) == result.changed
    assert _exact(jsonpatch.apply_patch(copy.deepcopy(pod), patch)) == _exact(result.pod)
    # The patch survives the JSON round trip of the AdmissionReview answer.
    assert _exact(jsonpatch.apply_patch(json.loads(before), json.loads(json.dumps(patch)))) == _exact(
        result.pod
    )
    # Through an index built once: the same pod, byte for byte.
    again = inject(
        pod, {"team": "t"}, CandidateIndex(as_candidate(item) for item in sidecarsets), now=NOW, seed="s"
    )
    assert _exact(again.pod) == _exact(result.pod)


def test_the_injected_pod_shares_only_what_injection_did_not_change() -> None:
    pod = make_pod(containers=[container("app")], volumes=[{"name": "data", "emptyDir": {}}])
    result = inject(
        pod, {}, [InjectionCandidate.of(make_sidecarset(containers=[container("proxy")]))], now=NOW
    )
    assert result.pod["spec"]["containers"][1] is result.original["spec"]["containers"][0]
    assert result.original["spec"]["containers"][0] is not pod["spec"]["containers"][0]  # a private copy
    assert result.pod["spec"]["containers"] is not result.original["spec"]["containers"]
    assert (
        result.json_patch()
        == [
            {"op": "add", "path": "/spec/containers/0", "value": result.pod["spec"]["containers"][0]},
            {"op": "add", "path": "/metadata/annotations", "value": result.pod["metadata"]["annotations"]},
        ][::-1]
    )


# --- the candidate index --------------------------------------------------------------------------

requirements = st.fixed_dictionaries(
    {
        "key": st.sampled_from(KEYS),
        "operator": st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist", "Bogus"]),
        "values": st.lists(st.sampled_from(VALUES), max_size=2),
    }
)
selectors = st.none() | st.fixed_dictionaries(
    {},
    optional={
        "matchLabels": st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=2),
        "matchExpressions": st.lists(requirements, max_size=2),
    },
)
namespace_selectors = st.none() | st.sampled_from(
    [
        {"matchLabels": {"kubernetes.io/metadata.name": "shop"}},
        {"matchLabels": {"kubernetes.io/metadata.name": "other"}},
        {"matchLabels": {"team": "t"}},
        {"matchExpressions": [{"key": "team", "operator": "Exists", "values": ["bad"]}]},
    ]
)


def _document(name: str, selector: Any, namespace_selector: Any, paused: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [container(f"{name}-c")]}
    if selector is not None:
        spec["selector"] = selector
    if namespace_selector is not None:
        spec["namespaceSelector"] = namespace_selector
    if paused:
        spec["injectionStrategy"] = {"paused": True}
    return {
        "apiVersion": "apps.kruise.io/v1beta1",
        "kind": "SidecarSet",
        "metadata": {"name": name},
        "spec": spec,
    }


@given(
    st.lists(st.tuples(selectors, namespace_selectors, st.booleans()), max_size=8),
    st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=3),
    st.sampled_from(["shop", "other", ""]),
    st.sampled_from([None, {}, {"team": "t"}, {"kubernetes.io/metadata.name": "elsewhere"}]),
)
@settings(max_examples=250, deadline=None)
def test_every_candidate_that_could_match_or_refuse_the_pod_is_reachable(
    definitions: list[tuple[Any, Any, bool]],
    labels: dict[str, str],
    namespace: str,
    namespace_labels: dict[str, str] | None,
) -> None:
    candidates = [
        InjectionCandidate.of(parse_sidecarset(_document(f"s{index}", *item)))
        for index, item in enumerate(definitions)
    ]
    pod = make_pod(labels=labels, namespace=namespace)
    effective = namespace_labels_for(pod, namespace_labels)
    index = CandidateIndex(candidates)
    reachable = index.reachable(labels, effective)
    in_order = sorted(candidates, key=lambda item: application_order(item.latest.sidecarset))
    assert reachable == [item for item in in_order if item in reachable]  # decision 5's order
    for candidate in candidates:
        sidecarset = candidate.latest.sidecarset
        selector = sidecarset.selector
        may_act = (
            not sidecarset.injection_strategy.paused
            and namespace_matches(sidecarset, effective)
            and selector is not None
            and (pod_selector_matches(selector, labels) or selector_error(selector) is not None)
        )
        if may_act:
            assert candidate in reachable, sidecarset.name
    # The same answer (or the same refusal) through the index as through the sequence.
    outcomes = []
    for given_candidates in (candidates, index):
        try:
            outcomes.append(_exact(inject(pod, namespace_labels, given_candidates, now=NOW).pod))
        except InjectionError as error:
            outcomes.append(f"refused: {error}")
    assert outcomes[0] == outcomes[1]


def test_the_index_skips_sidecarsets_keyed_on_other_labels_and_namespaces() -> None:
    def candidate(name: str, selector: dict[str, Any], namespace_selector: Any = None) -> InjectionCandidate:
        return InjectionCandidate.of(parse_sidecarset(_document(name, selector, namespace_selector, False)))

    mine = candidate("mine", {"matchLabels": {"app": "web", "tier": "x"}})
    scoped = candidate(
        "scoped", {"matchLabels": {"app": "web"}}, {"matchLabels": {"kubernetes.io/metadata.name": "shop"}}
    )
    others = [candidate(f"other-{i}", {"matchLabels": {"app": f"svc-{i}"}}) for i in range(50)]
    elsewhere = candidate(
        "elsewhere", {"matchLabels": {"app": "web"}}, {"matchLabels": {"kubernetes.io/metadata.name": "ops"}}
    )
    by_in = candidate(
        "by-in", {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["x", "y"]}]}
    )
    by_exists = candidate("by-exists", {"matchExpressions": [{"key": "zone", "operator": "Exists"}]})
    negative = candidate(
        "negative", {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["db"]}]}
    )
    bad = candidate("bad", {"matchExpressions": [{"key": "app", "operator": "Bogus", "values": ["web"]}]})
    index = CandidateIndex([mine, scoped, *others, elsewhere, by_in, by_exists, negative, bad])
    shop = {"kubernetes.io/metadata.name": "shop"}
    assert [c.name for c in index.reachable({"app": "web", "tier": "x"}, shop)] == [
        "scoped",
        "bad",
        "by-in",
        "mine",
        "negative",
    ]
    assert [c.name for c in index.reachable({"zone": "z"}, None)] == ["bad", "by-exists", "negative"]
    with pytest.raises(ValueError, match="only once"):
        CandidateIndex([mine, mine])
