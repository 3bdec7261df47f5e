"""A pod that is not shaped like a pod is an ``InjectionError`` (a clean refusal), never a crash
(issue 15 item 8: an admission request whose pod ``spec`` was a string failed inside inject)."""

from __future__ import annotations

from typing import Any

import pytest
from injection_builders import NOW, container, make_pod, make_sidecarset

from sidecarhub.sidecarset import InjectionCandidate, InjectionError, inject


@pytest.mark.parametrize("part", ["spec", "metadata"])
@pytest.mark.parametrize("value", ["x", 5, ["a"], None, True])
def test_a_pod_part_that_is_not_an_object_is_an_injection_error(part: str, value: Any) -> None:
    pod = make_pod()
    pod[part] = value
    candidate = InjectionCandidate.of(make_sidecarset("mesh", containers=[container("envoy")]))
    with pytest.raises(InjectionError, match=f"the pod's {part} must be an object"):
        inject(pod, {}, [candidate], now=NOW)


def test_a_pod_nested_too_deeply_to_copy_is_an_injection_error() -> None:
    pod = make_pod()
    deep: Any = "leaf"
    for _ in range(5000):
        deep = {"x": deep}
    pod["spec"]["extra"] = deep
    with pytest.raises(InjectionError, match="nested too deeply"):
        inject(pod, {}, [], now=NOW)
