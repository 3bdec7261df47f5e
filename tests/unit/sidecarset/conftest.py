"""Shared builders for the SidecarSet core tests: a small valid document that each test mutates."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

V1BETA1_DOCUMENT: dict[str, Any] = {
    "apiVersion": "apps.kruise.io/v1beta1",
    "kind": "SidecarSet",
    "metadata": {"name": "mesh"},
    "spec": {
        "selector": {"matchLabels": {"app": "web"}},
        "containers": [{"name": "envoy", "image": "envoy:1.0"}],
    },
}


@pytest.fixture
def document() -> dict[str, Any]:
    """A fresh, valid, minimal v1beta1 SidecarSet document."""
    return copy.deepcopy(V1BETA1_DOCUMENT)


@pytest.fixture
def make_document() -> Callable[..., dict[str, Any]]:
    """Build a valid v1beta1 document with ``spec`` keys replaced (and an optional name)."""

    def make(name: str = "mesh", **spec: Any) -> dict[str, Any]:
        built = copy.deepcopy(V1BETA1_DOCUMENT)
        built["metadata"]["name"] = name
        built["spec"].update(copy.deepcopy(spec))
        return built

    return make
