"""Every YAML example of the user's seed document imports.

The examples are copied into data/seed_examples.yaml (source noted there). Importing means
parsing into the canonical form; validation then reports exactly the problems listed here,
which are real problems of the examples (they are illustrations, partly elided with ``# ...``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecarhub.sidecarset import read_sidecarset, split_documents, validate_sidecarset

DATA_FILE = Path(__file__).parent / "data" / "seed_examples.yaml"
SEED_FILE = Path("/work/shared/seed/sidecarset-seed.md")

# Example index -> the validation errors Kruise's rules give for it.
EXPECTED_VALIDATION_ERRORS: dict[int, list[str]] = {
    0: [],
    # "nginx.conf" is not a valid volume name, and "disabled | enabled" lists the choices.
    1: [
        "spec.volumes[0].name: must be a lowercase RFC 1123 label "
        "(a-z, 0-9 and '-', starting and ending with an alphanumeric)",
        "spec.containers[0].shareVolumePolicy.type: must be one of: enabled, disabled",
    ],
    # The partition and canary snippets elide selector and containers ("# ...").
    2: ["spec.selector: required", "spec.containers: containers or initContainers must be non-empty"],
    3: ["spec.selector: required", "spec.containers: containers or initContainers must be non-empty"],
    4: [],
}


def _seed_documents() -> list[Any]:
    return [document.data for document in split_documents(DATA_FILE.read_text(encoding="utf-8"))]


def test_data_file_holds_five_examples() -> None:
    assert len(_seed_documents()) == len(EXPECTED_VALIDATION_ERRORS) == 5


@pytest.mark.parametrize("index", sorted(EXPECTED_VALIDATION_ERRORS))
def test_seed_example_imports(index: int) -> None:
    document = _seed_documents()[index]
    sidecarset, errors = read_sidecarset(document)
    assert errors == []
    assert sidecarset is not None and sidecarset.name == document["metadata"]["name"]
    assert [str(error) for error in validate_sidecarset(sidecarset)] == EXPECTED_VALIDATION_ERRORS[index]


def test_seed_example_specifics() -> None:
    first, second, partition, canary, hot = (read_sidecarset(d)[0] for d in _seed_documents())
    assert first is not None and second is not None and partition is not None
    assert canary is not None and hot is not None
    assert first.namespace_selector is not None
    assert dict(first.namespace_selector.match_labels) == {"kubernetes.io/metadata.name": "ns-1"}
    assert second.containers[0].transfer_env[1]["sourceContainerNameFrom"]["fieldRef"]["apiVersion"] == "v1"
    assert partition.update_strategy.partition == 90
    assert canary.update_strategy.selector is not None
    assert dict(canary.update_strategy.selector.match_labels) == {"canary.release": "true"}
    assert hot.containers[0].hot_upgrade_names == ("sidecar-1", "sidecar-2")


@pytest.mark.skipif(not SEED_FILE.exists(), reason="the shared seed document is not mounted here")
def test_data_file_matches_the_seed_document() -> None:
    blocks = re.findall(r"```\n(.*?)```", SEED_FILE.read_text(encoding="utf-8"), re.DOTALL)
    assert [yaml.safe_load(block) for block in blocks] == _seed_documents()
