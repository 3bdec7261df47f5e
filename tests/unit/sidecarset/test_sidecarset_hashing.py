"""Revision hashes and change classification (injection.md §4, §14.4 scenario 62; update.md §2.2)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from sidecarhub.sidecarset import (
    ChangeKind,
    classify_change,
    hash_without_images,
    parse_sidecarset,
    revision_hash,
)

BASE: dict[str, Any] = {
    "apiVersion": "apps.kruise.io/v1beta1",
    "kind": "SidecarSet",
    "metadata": {"name": "mesh"},
    "spec": {
        "selector": {"matchLabels": {"app": "web"}},
        "containers": [
            {"name": "envoy", "image": "envoy:1.0", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
            {"name": "log", "image": "log:1.0", "args": ["-v"]},
        ],
        "initContainers": [{"name": "init", "image": "init:1.0"}],
        "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}],
    },
}


def changed(mutate: Callable[[dict[str, Any]], None]) -> ChangeKind:
    new = copy.deepcopy(BASE)
    mutate(new)
    return classify_change(parse_sidecarset(BASE), parse_sidecarset(new))


def containers(document: dict[str, Any]) -> list[dict[str, Any]]:
    return document["spec"]["containers"]


def test_hashes_are_hex_sha256_and_differ_from_each_other() -> None:
    sidecarset = parse_sidecarset(BASE)
    assert len(revision_hash(sidecarset)) == 64 and int(revision_hash(sidecarset), 16) >= 0
    assert revision_hash(sidecarset) != hash_without_images(sidecarset)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        # Only sidecar images: in place.
        (lambda d: containers(d)[0].update(image="envoy:1.1"), ChangeKind.IMAGES_ONLY),
        (lambda d: [c.update(image=c["image"] + "-fix") for c in containers(d)], ChangeKind.IMAGES_ONLY),
        # Anything else in a container, even together with an image: recreate.
        (lambda d: containers(d)[0].update(image="envoy:2", command=["/envoy"]), ChangeKind.OTHER),
        (lambda d: containers(d)[0].update(name="proxy"), ChangeKind.OTHER),
        (lambda d: containers(d)[1].update(args=["-vv"]), ChangeKind.OTHER),
        (lambda d: containers(d)[0].update(env=[{"name": "A", "value": "1"}]), ChangeKind.OTHER),
        (lambda d: containers(d)[0].update(podInjectPolicy="AfterAppContainer"), ChangeKind.OTHER),
        (lambda d: containers(d)[0].update(shareVolumePolicy={"type": "enabled"}), ChangeKind.OTHER),
        (lambda d: containers(d).pop(), ChangeKind.OTHER),
        (lambda d: containers(d).reverse(), ChangeKind.OTHER),
        (lambda d: containers(d).append({"name": "new", "image": "n:1"}), ChangeKind.OTHER),
        (
            lambda d: containers(d)[0].update(
                upgradeStrategy={"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "empty:1"}
            ),
            ChangeKind.OTHER,
        ),
        # Moving a tag to latest changes the defaulted imagePullPolicy (update.md §2.2 trap).
        (lambda d: containers(d)[0].update(image="envoy:latest"), ChangeKind.OTHER),
        # Outside the hash: nothing for pods to do.
        (
            lambda d: d["spec"].update(volumes=[{"name": "cfg", "configMap": {"name": "other"}}]),
            ChangeKind.NONE,
        ),
        (lambda d: d["spec"].update(selector={"matchLabels": {"app": "api"}}), ChangeKind.NONE),
        (lambda d: d["spec"].update(updateStrategy={"type": "NotUpdate"}), ChangeKind.NONE),
        (lambda d: d["spec"].update(patchPodMetadata=[{"annotations": {"a": "b"}}]), ChangeKind.NONE),
        (lambda d: d["spec"].update(imagePullSecrets=[{"name": "s"}]), ChangeKind.NONE),
        (lambda d: d["metadata"].update(labels={"team": "mesh"}), ChangeKind.NONE),
        # Plain init containers are not hashed (Kruise's quirk) ...
        (lambda d: d["spec"]["initContainers"][0].update(image="init:2", command=["x"]), ChangeKind.NONE),
        # ... but a native-sidecar init container brings the whole list in.
        (
            lambda d: d["spec"]["initContainers"].append(
                {"name": "native", "image": "n:1", "restartPolicy": "Always"}
            ),
            ChangeKind.OTHER,
        ),
        # Spellings Kruise's serialization makes identical.
        (
            lambda d: containers(d)[0]["resources"]["limits"].update(cpu="1000m", memory="1024Mi"),
            ChangeKind.NONE,
        ),
        (lambda d: containers(d)[1].update(stdin=False, command=[], workingDir=""), ChangeKind.NONE),
        (
            lambda d: containers(d)[1].update(
                imagePullPolicy="IfNotPresent", terminationMessagePath="/dev/termination-log"
            ),
            ChangeKind.NONE,
        ),
        # Same value, other serialized format: Kruise's hash changes.
        (lambda d: containers(d)[0]["resources"]["limits"].update(memory="1073741824"), ChangeKind.OTHER),
    ],
)
def test_classify_change(mutate: Callable[[dict[str, Any]], None], expected: ChangeKind) -> None:
    assert changed(mutate) == expected


def test_no_change_is_none_and_version_does_not_matter() -> None:
    alpha = copy.deepcopy(BASE)
    alpha["apiVersion"] = "apps.kruise.io/v1alpha1"
    assert classify_change(parse_sidecarset(BASE), parse_sidecarset(alpha)) == ChangeKind.NONE == "none"


def test_native_init_container_images_are_covered_and_classified() -> None:
    document = copy.deepcopy(BASE)
    document["spec"]["initContainers"] = [
        {"name": "native", "image": "n:1", "restartPolicy": "Always"},
        {"name": "plain", "image": "p:1"},
    ]
    document["spec"]["updateStrategy"] = {"type": "NotUpdate"}
    old = parse_sidecarset(document)
    document["spec"]["initContainers"][1]["image"] = "p:2"
    assert classify_change(old, parse_sidecarset(document)) == ChangeKind.IMAGES_ONLY
    document["spec"]["initContainers"][1]["command"] = ["x"]
    assert classify_change(old, parse_sidecarset(document)) == ChangeKind.OTHER


def test_hot_upgrade_empty_image_is_not_an_image_for_the_without_image_hash() -> None:
    document = copy.deepcopy(BASE)
    containers(document)[0]["upgradeStrategy"] = {
        "upgradeType": "HotUpgrade",
        "hotUpgradeEmptyImage": "empty:1",
    }
    old = parse_sidecarset(document)
    containers(document)[0]["upgradeStrategy"]["hotUpgradeEmptyImage"] = "empty:2"
    assert classify_change(old, parse_sidecarset(document)) == ChangeKind.OTHER
