"""Validation of HotUpgrade sidecars (decision 2). Already covered elsewhere and only re-checked
here as a whole: ``hotUpgradeEmptyImage`` required, the ``upgradeType`` enum, twin names
colliding with other containers (``tests/unit/sidecarset/test_sidecarset_validation.py``) and
``upgradeType`` immutable on update. Added here: the empty image must differ from the image,
twin names must fit in 63 characters, and no ``hostPort`` (both twins would claim it)."""

from __future__ import annotations

from typing import Any

import pytest

from sidecarhub.sidecarset import parse_sidecarset, validate_sidecarset


def document(**container: Any) -> dict[str, Any]:
    sidecar = {
        "name": "sidecar",
        "image": "sample:v1",
        "upgradeStrategy": {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "sample:empty"},
        **container,
    }
    return {
        "apiVersion": "apps.kruise.io/v1beta1",
        "kind": "SidecarSet",
        "metadata": {"name": "hot"},
        "spec": {"selector": {"matchLabels": {"app": "hot"}}, "containers": [sidecar]},
    }


def paths(document: dict[str, Any], **kwargs: Any) -> list[str]:
    return [str(error.path) for error in validate_sidecarset(document, **kwargs)]


def test_the_seed_like_document_is_valid() -> None:
    assert paths(document()) == []


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        (
            {"upgradeStrategy": {"upgradeType": "HotUpgrade"}},
            "upgradeStrategy.hotUpgradeEmptyImage",
            "required",
        ),
        (
            {"upgradeStrategy": {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "sample:v1"}},
            "upgradeStrategy.hotUpgradeEmptyImage",
            "must differ from image",
        ),
        ({"name": "s" * 62}, "name", "at most 61 characters"),
        (
            {"ports": [{"containerPort": 80}, {"containerPort": 90, "hostPort": 9090}]},
            "ports[1].hostPort",
            "host port",
        ),
    ],
)
def test_rejected_with_a_field_path(change: dict[str, Any], path: str, words: str) -> None:
    errors = validate_sidecarset(document(**change))
    assert [str(e.path) for e in errors] == [f"spec.containers[0].{path}"]
    assert words in errors[0].message


def test_accepted_neighbours_of_the_rejected_cases() -> None:
    assert paths(document(name="s" * 61)) == []
    assert paths(document(ports=[{"containerPort": 80}])) == []
    cold = document(
        upgradeStrategy={"upgradeType": "ColdUpgrade"}, ports=[{"containerPort": 80, "hostPort": 80}]
    )
    assert paths(cold) == []  # one container, one host port: fine for a cold sidecar


def test_twin_names_colliding_with_other_containers_are_rejected() -> None:
    body = document()
    body["spec"]["containers"].append({"name": "sidecar-2", "image": "other:1"})
    errors = validate_sidecarset(body)
    assert [str(e.path) for e in errors] == ["spec.containers[0].name"]
    assert "collides" in errors[0].message


def test_upgrade_type_cannot_change_on_update() -> None:
    old = parse_sidecarset(document())
    cold = document(upgradeStrategy={"upgradeType": "ColdUpgrade"})
    assert paths(cold, old=old) == ["spec.containers[0].upgradeStrategy.upgradeType"]
