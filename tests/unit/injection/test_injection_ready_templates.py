"""What the admission fast path keeps per SidecarSet instead of recomputing per pod (issue 17):
ready sidecar containers and volumes (``PlainTemplate``), the pod selector's validation and the
latest version in the ``CandidateIndex``, and the handler's ``copy_pod=False``. None of them may
change an answer: same pod, same JSON text, same refusals, and nothing shared between pods.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from injection_builders import NOW, container, make_pod, make_sidecarset

from sidecarhub.sidecarset import CandidateIndex, InjectionCandidate, InjectionError, inject, sidecar_building
from sidecarhub.sidecarset.model import PlainTemplate, freeze, thaw

RESOURCES_POLICY = {
    "targetContainersMode": "sum",
    "targetContainersNameRegex": ".*",
    "resourcesExpr": {"limits": {"cpu": "cpu*50%"}},
}
HOT: dict[str, Any] = {"upgradeStrategy": {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "empty:1"}}
MOUNT = {"name": "cfg", "mountPath": "/etc/cfg"}
VOLUMES = [{"name": "cfg", "configMap": {"name": "cfg", "items": [{"key": "a", "path": "a"}]}}]
# Sidecars of every shape: ready-made (nothing from the pod, or only resources) and built per pod.
SIDECARS: dict[str, dict[str, Any]] = {
    "plain": container("proxy", env=[{"name": "A", "value": "1"}], volumeMounts=[MOUNT]),
    "bare": container("proxy"),
    "resources-policy": container("proxy", resourcesPolicy=RESOURCES_POLICY),
    "resources-policy-with-env": container(
        "proxy",
        env=[{"name": "A", "value": "1"}],
        resources={"limits": {"cpu": "1"}},
        resourcesPolicy=RESOURCES_POLICY,
    ),
    "hot-upgrade": container("proxy", volumeMounts=[MOUNT], **HOT),
    "shares-volumes": container("proxy", shareVolumePolicy={"type": "enabled"}),
    "shares-devices": container("proxy", shareVolumeDevicePolicy={"type": "enabled"}),
    "transfers-env": container("proxy", transferEnv=[{"sourceContainerName": "app", "envName": "TZ"}]),
    "empty-lists": container("proxy", volumeMounts=[], env=[], resourcesPolicy=RESOURCES_POLICY),
}


def _pod(name: str = "web-1") -> dict[str, Any]:
    app = container(
        "app",
        env=[{"name": "TZ", "value": "UTC"}],
        volumeMounts=[{"name": "data", "mountPath": "/data"}],
        volumeDevices=[{"name": "disk", "devicePath": "/dev/xvda"}],
        resources={"limits": {"cpu": "2"}},
    )
    return make_pod(name=name, containers=[app], volumes=[{"name": "data", "emptyDir": {}}])


def _sidecarset(shape: str) -> Any:
    return make_sidecarset(
        "mesh",
        containers=[SIDECARS[shape]],
        initContainers=[container("setup", volumeMounts=[MOUNT])],
        volumes=VOLUMES,
    )


def _scribble(value: Any) -> None:
    """Change every mutable part of ``value`` in place."""
    if isinstance(value, dict):
        for item in list(value.values()):
            _scribble(item)
        value["scribbled"] = True
    elif isinstance(value, list):
        for item in value:
            _scribble(item)
        value.append("scribbled")


@pytest.mark.parametrize("shape", sorted(SIDECARS))
def test_mutating_an_injected_pod_never_changes_the_next_pods_sidecars(shape: str) -> None:
    index = CandidateIndex([InjectionCandidate.of(_sidecarset(shape))])
    first = inject(_pod(), {}, index, now=NOW)
    assert first.injected == ("mesh",)
    _scribble(first.pod["spec"])
    _scribble(first.pod["metadata"])
    again = inject(_pod(), {}, index, now=NOW)
    fresh = inject(_pod(), {}, [InjectionCandidate.of(_sidecarset(shape))], now=NOW)  # nothing cached yet
    assert json.dumps(again.pod) == json.dumps(fresh.pod)
    assert "scribbled" not in json.dumps(again.pod)


@pytest.mark.parametrize("shape", sorted(SIDECARS))
def test_a_ready_container_is_the_container_built_per_pod_to_the_byte(
    shape: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ready = inject(_pod(), {}, [InjectionCandidate.of(_sidecarset(shape))], now=NOW)
    monkeypatch.setattr(sidecar_building, "_ready_sidecar", lambda sidecar, sidecarset: None)
    built = inject(_pod(), {}, [InjectionCandidate.of(_sidecarset(shape))], now=NOW)
    assert json.dumps(ready.pod) == json.dumps(built.pod)  # key order included
    assert json.dumps(ready.json_patch()) == json.dumps(built.json_patch())


def test_a_plain_template_hands_out_private_copies_equal_to_thaw() -> None:
    class Text(str):
        pass

    for data in (
        {"a": [1, 2.5, None, True, {"b": "c"}], "d": {"e": []}},
        {"a": [Text("x")]},  # marshal cannot write a str subclass: thawed per copy instead
    ):
        template = PlainTemplate(freeze(data))
        first, second = template.copy(), template.copy()
        assert first == second == thaw(freeze(data))
        first["a"].append("changed")
        assert second == thaw(freeze(data)) and template.copy() == thaw(freeze(data))


@pytest.mark.parametrize(
    "selector",
    [
        {"matchLabels": {"app": "nginx"}, "matchExpressions": [{"key": "tier", "operator": "Bogus"}]},
        {"matchExpressions": [{"key": "app", "operator": "In"}]},  # In without values
        {"matchLabels": {"app": "nginx", "bad key!": "x"}},
    ],
)
def test_the_cached_selector_validation_still_refuses_every_pod(selector: dict[str, Any]) -> None:
    bad = InjectionCandidate.of(make_sidecarset("bad", selector=selector, containers=[container("proxy")]))
    good = InjectionCandidate.of(make_sidecarset("good", containers=[container("envoy")]))
    index = CandidateIndex([bad, good])
    pod = make_pod(labels={"app": "nginx", "tier": "web", "bad key!": "x"})
    for _ in range(3):  # the first pod computes the validation, the others reuse it
        with pytest.raises(InjectionError, match="SidecarSet bad: selector"):
            inject(pod, {}, index, now=NOW)
    assert inject(make_pod(labels={"app": "other"}), {}, CandidateIndex([good]), now=NOW).injected == ()


def test_the_latest_version_is_shared_but_each_pod_gets_its_own_records() -> None:
    index = CandidateIndex([InjectionCandidate.of(make_sidecarset("mesh", containers=[container("envoy")]))])
    one = inject(make_pod(name="a"), {}, index, now=NOW)
    two = inject(make_pod(name="b"), {}, index, now=NOW.replace(year=2025))
    hashes = [
        json.loads(result.pod["metadata"]["annotations"]["sidecarhub.io/sidecarset-hash"])
        for result in (one, two)
    ]
    assert hashes[0]["mesh"]["updateTimestamp"] != hashes[1]["mesh"]["updateTimestamp"]


def test_a_pod_handed_over_is_used_as_is_and_gives_the_same_answer() -> None:
    candidates = [InjectionCandidate.of(_sidecarset("plain"))]
    pod = _pod()
    before = copy.deepcopy(pod)
    copied = inject(pod, {}, candidates, now=NOW)
    handed = inject(pod, {}, candidates, now=NOW, copy_pod=False)
    assert json.dumps(handed.pod) == json.dumps(copied.pod)
    assert handed.json_patch() == copied.json_patch()
    assert pod == before  # not mutated either way
    assert handed.original["spec"] is pod["spec"]  # not copied
    assert copied.original["spec"] is not pod["spec"]
