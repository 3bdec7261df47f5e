"""The plan_round benchmark's floor baseline does the work it claims, on the benchmark's own pods.

``benchmarks/plan_round.py`` compares the cold round with ``unavoidable_reads``: a bare loop
that must find the same updated pods and build a ref for every other pod, or the ratio it
prints would compare against less work than a round does.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from sidecarhub.sidecarset import SidecarSetFacts, plan_round

BENCHMARK = Path(__file__).resolve().parents[3] / "benchmarks" / "plan_round.py"


@pytest.fixture(scope="module")
def benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("plan_round_benchmark", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("layout", ["built", "fetched"])
def test_floor_finds_the_rounds_updated_pods_and_refs_every_other_pod(
    benchmark: ModuleType, layout: str
) -> None:
    sidecarset = benchmark.build_sidecarset(scatter=False)
    facts = SidecarSetFacts.of(sidecarset)
    pods = benchmark.build_pods(400, facts, seed=3)
    if layout == "fetched":
        pods = benchmark.as_fetched(pods)

    updated, refs = benchmark.unavoidable_reads(facts, pods)

    status = plan_round(sidecarset, pods).status
    assert status.matched_pods == 400
    assert 0 < updated < 400
    assert updated == status.updated_pods
    assert refs == status.matched_pods - status.updated_pods
