"""Reading documents: YAML/JSON text, multi-document streams, size and shape limits."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sidecarhub.sidecarset import MAX_DOCUMENT_BYTES, load_document, read_sidecarset, split_documents
from sidecarhub.sidecarset.documents import DOCUMENT_PATH, MAX_STREAM_BYTES

STREAM = """\
# leading comment only: not a document
---
apiVersion: apps.kruise.io/v1beta1
kind: SidecarSet
metadata: {name: first}
spec: {selector: {matchLabels: {a: b}}, containers: [{name: c, image: i}]}
---
key: [unclosed
---
# only a comment
---
apiVersion: apps.kruise.io/v1alpha1
kind: SidecarSet
metadata: {name: third}
"""


def test_split_documents_reports_errors_per_document_and_keeps_going() -> None:
    documents = split_documents(STREAM)

    assert [(d.index, d.line) for d in documents] == [(0, 2), (1, 7), (2, 11)]
    assert documents[0].ok and documents[0].data["metadata"]["name"] == "first"
    assert not documents[1].ok
    assert documents[1].errors[0].path == DOCUMENT_PATH
    assert "malformed YAML" in documents[1].errors[0].message
    assert documents[2].ok and documents[2].data["metadata"]["name"] == "third"


def test_split_documents_accepts_bytes_and_a_single_document() -> None:
    documents = split_documents(b"a: 1\n")
    assert [(d.index, d.data) for d in documents] == [(0, {"a": 1})]


def test_split_documents_refuses_an_oversized_stream() -> None:
    documents = split_documents("a: 1\n" * (MAX_STREAM_BYTES // 5 + 1))
    assert len(documents) == 1
    assert "limit" in documents[0].errors[0].message


def test_malformed_yaml_is_an_error_with_its_position() -> None:
    data, errors = load_document("metadata:\n  name: [x\n")
    assert data is None
    assert errors[0].path == DOCUMENT_PATH
    assert "line" in errors[0].message


def test_malformed_json_is_an_error() -> None:
    data, errors = load_document('{"kind": "SidecarSet",}')
    assert data is None and "malformed JSON" in errors[0].message


def test_json_text_is_accepted() -> None:
    data, errors = load_document(json.dumps({"kind": "SidecarSet"}))
    assert errors == [] and data == {"kind": "SidecarSet"}


def test_duplicate_keys_are_refused_in_yaml_and_json() -> None:
    _, yaml_errors = load_document("a: 1\na: 2\n")
    _, json_errors = load_document('{"a": 1, "a": 2}')
    assert "duplicate key 'a'" in yaml_errors[0].message
    assert "duplicate key 'a'" in json_errors[0].message


def test_oversized_document_is_refused_before_parsing() -> None:
    text = "metadata:\n  annotations:\n    big: " + "x" * MAX_DOCUMENT_BYTES + "\n"
    sidecarset, errors = read_sidecarset(text)
    assert sidecarset is None
    assert errors[0].path == DOCUMENT_PATH
    assert f"the limit is {MAX_DOCUMENT_BYTES} bytes" in errors[0].message


def test_oversized_parsed_data_is_refused_too() -> None:
    _, errors = load_document({"metadata": {"annotations": {"big": "x" * MAX_DOCUMENT_BYTES}}})
    assert "limit" in errors[0].message


def test_alias_expansion_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 12)]
    _, errors = load_document("\n".join(lines) + "\n")
    assert "expands to more than" in errors[0].message


def test_deep_nesting_is_refused() -> None:
    _, errors = load_document("[" * 500 + "]" * 500)
    assert "nests deeper" in errors[0].message


def test_timestamps_stay_strings_and_non_string_keys_are_errors() -> None:
    data, errors = load_document("created: 2024-01-01T00:00:00Z\n")
    assert errors == [] and data == {"created": "2024-01-01T00:00:00Z"}
    _, key_errors = load_document("spec:\n  1: one\n")
    assert key_errors[0].path == "spec" and "not a string" in key_errors[0].message


def test_more_than_one_document_needs_split_documents() -> None:
    _, errors = load_document("a: 1\n---\nb: 2\n")
    assert "split_documents" in errors[0].message


def test_empty_and_invalid_utf8_input() -> None:
    assert load_document("")[1][0].message == "empty document"
    assert "UTF-8" in load_document(b"a: \xff\n")[1][0].message


@pytest.mark.parametrize("text", ["a: " + "1" * 5000, '{"a": ' + "1" * 5000 + "}"])
def test_an_integer_of_more_than_4300_digits_is_an_error_not_an_exception(text: str) -> None:
    # Issue 15 item 4: Python refuses to convert such an integer (ValueError, not a YAML error).
    data, errors = load_document(text)
    assert data is None
    assert [(error.path, error.message) for error in errors] == [
        (DOCUMENT_PATH, "an integer has more than 4300 digits")
    ]


@pytest.mark.parametrize(
    ("source", "path"),
    [
        ({"metadata": {"annotations": {"example.com/a": "x\x00y"}}}, "metadata.annotations.example.com/a"),
        ({"metadata": {"labels": {"a\x00": "x"}}}, "metadata.labels"),
        ('metadata: {annotations: {example.com/a: "x\\0y"}}', "metadata.annotations.example.com/a"),
    ],
)
def test_a_nul_character_is_a_field_error(source: Any, path: str) -> None:
    # Issue 15 item 6: PostgreSQL cannot store U+0000; every database gets the same error.
    data, errors = load_document(source)
    assert data is None
    assert [(error.path, error.message) for error in errors] == [
        (path, "must not contain the NUL character (U+0000)")
    ]
