"""Reading SidecarSet documents: YAML or JSON text, bounded in size, one or many per stream.

Guarantees: nothing here raises on bad input. Every problem (malformed YAML, oversized input,
duplicate keys, values JSON cannot carry, integers longer than Python converts, NUL characters)
comes back as :class:`FieldError` values, so an importer can report a broken document and carry
on with the next one.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from sidecarhub.sidecarset.errors import FieldError

__all__ = [
    "DOCUMENT_PATH",
    "MAX_DOCUMENT_BYTES",
    "MAX_NESTING_DEPTH",
    "MAX_STREAM_BYTES",
    "Document",
    "load_document",
    "split_documents",
]

# One SidecarSet is a few KiB; 1 MiB matches etcd's default object limit (1.5 MiB) with room.
MAX_DOCUMENT_BYTES = 1024 * 1024
# A multi-document import (a whole directory of manifests) may be larger, but stays bounded.
MAX_STREAM_BYTES = 16 * MAX_DOCUMENT_BYTES
# Real SidecarSets nest about 12 levels deep; the bound keeps recursive code safe.
MAX_NESTING_DEPTH = 64
# YAML aliases can expand exponentially ("billion laughs"); count nodes after expansion.
MAX_EXPANDED_NODES = 200_000

# Path used for errors that concern the document as a whole rather than one field.
DOCUMENT_PATH = "<document>"
# PostgreSQL cannot store U+0000 in text or jsonb; refused here so every database agrees.
_NUL_MESSAGE = "must not contain the NUL character (U+0000)"

_DOCUMENT_SEPARATOR = re.compile(r"^---(?:[ \t].*)?$|^\.\.\.[ \t]*$")


class _KubernetesYamlLoader(yaml.SafeLoader):
    """SafeLoader that, like Kubernetes' decoding, keeps timestamps as strings and refuses duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _value_node in node.value:
                key = self.construct_object(key_node, deep=deep)
                if isinstance(key, str | int | float | bool) or key is None:
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {key!r}", key_node.start_mark
                        )
                    seen.add(key)
        return super().construct_mapping(node, deep=deep)


# Kubernetes treats 2024-01-01T00:00:00Z as a string; PyYAML would build a datetime.
_KubernetesYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class Document:
    """One document of a stream: ``index`` counts non-empty documents from 0; ``line`` is where it starts."""

    index: int
    line: int
    data: Any
    errors: tuple[FieldError, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.errors


def _document_error(message: str) -> FieldError:
    return FieldError(path=DOCUMENT_PATH, message=message)


def _json_compatibility_errors(data: Any) -> list[FieldError]:
    """Check that ``data`` is plain JSON (string keys, finite numbers) and bounded in depth and size."""
    errors: list[FieldError] = []
    nodes = 0
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        nodes += 1
        if nodes > MAX_EXPANDED_NODES:
            return [_document_error(f"document expands to more than {MAX_EXPANDED_NODES} values")]
        if depth > MAX_NESTING_DEPTH:
            return [_document_error(f"document nests deeper than {MAX_NESTING_DEPTH} levels")]
        if isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str):
                    errors.append(FieldError(path or DOCUMENT_PATH, f"key {key!r} is not a string"))
                    continue
                if "\x00" in key:
                    errors.append(FieldError(path or DOCUMENT_PATH, _NUL_MESSAGE))
                    continue
                stack.append((item, f"{path}.{key}" if path else key, depth + 1))
        elif isinstance(value, list | tuple):
            for position, item in enumerate(value):
                stack.append((item, f"{path}[{position}]", depth + 1))
        elif isinstance(value, float) and not math.isfinite(value):
            errors.append(FieldError(path or DOCUMENT_PATH, "not a finite number"))
        elif isinstance(value, str) and "\x00" in value:
            errors.append(FieldError(path or DOCUMENT_PATH, _NUL_MESSAGE))
        elif not (value is None or isinstance(value, str | int | float | bool)):
            errors.append(
                FieldError(path or DOCUMENT_PATH, f"unsupported value of type {type(value).__name__}")
            )
    return errors


def _decode_text(source: str | bytes, limit_bytes: int) -> tuple[str | None, list[FieldError]]:
    size = len(source) if isinstance(source, bytes) else len(source.encode("utf-8", errors="replace"))
    if size > limit_bytes:
        return None, [_document_error(f"document is {size} bytes; the limit is {limit_bytes} bytes")]
    if isinstance(source, bytes):
        try:
            return source.decode("utf-8"), []
        except UnicodeDecodeError as exc:
            return None, [_document_error(f"not UTF-8 text: {exc.reason} at byte {exc.start}")]
    return source, []


def _parse_text(text: str) -> tuple[Any, list[FieldError]]:
    """Parse one document's text as JSON (when it looks like JSON) or YAML."""
    try:
        if text.lstrip().startswith(("{", "[")):
            return json.loads(text, object_pairs_hook=_reject_duplicate_json_keys), []
        documents = list(yaml.load_all(text, Loader=_KubernetesYamlLoader))  # a SafeLoader subclass
    except json.JSONDecodeError as exc:
        return None, [_document_error(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")]
    except _DuplicateJsonKey as exc:
        return None, [_document_error(str(exc))]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return None, [_document_error(f"malformed YAML{where}: {problem}")]
    except RecursionError:
        return None, [_document_error(f"document nests deeper than {MAX_NESTING_DEPTH} levels")]
    except ValueError as exc:  # after its subclasses above: e.g. an integer of over 4,300 digits
        return None, [_document_error(_value_problem(exc))]
    documents = [document for document in documents if document is not None]
    if len(documents) > 1:
        return None, [
            _document_error(
                f"expected one document, found {len(documents)}; import streams with split_documents"
            )
        ]
    return (documents[0] if documents else None), []


def _value_problem(exc: ValueError) -> str:
    if "integer string conversion" in str(exc):
        return f"an integer has more than {sys.get_int_max_str_digits()} digits"
    return f"unreadable value: {exc}"


class _DuplicateJsonKey(ValueError):
    pass


def _reject_duplicate_json_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateJsonKey(f"malformed JSON: duplicate key {key!r}")
        result[key] = value
    return result


def load_document(source: str | bytes | Mapping[str, Any] | Any) -> tuple[Any, list[FieldError]]:
    """Turn YAML text, JSON text or an already-parsed value into plain JSON-compatible data.

    Returns ``(data, errors)``; when ``errors`` is non-empty ``data`` is ``None``. Text over
    :data:`MAX_DOCUMENT_BYTES` is refused before parsing. Already-parsed input is checked for
    JSON compatibility and serialized size, so a dict from an API body obeys the same limit.
    """
    if isinstance(source, str | bytes):
        text, errors = _decode_text(source, MAX_DOCUMENT_BYTES)
        if text is None:
            return None, errors
        data, errors = _parse_text(text)
        if errors:
            return None, errors
    else:
        data = source
    if data is None:
        return None, [_document_error("empty document")]
    errors = _json_compatibility_errors(data)
    if errors:
        return None, errors
    if not isinstance(source, str | bytes):
        size = len(json.dumps(data, separators=(",", ":")).encode("utf-8"))
        if size > MAX_DOCUMENT_BYTES:
            return None, [
                _document_error(f"document is {size} bytes; the limit is {MAX_DOCUMENT_BYTES} bytes")
            ]
    return data, []


def split_documents(stream: str | bytes) -> list[Document]:
    """Split a multi-document YAML stream into documents, each parsed (or failed) on its own.

    ``index`` is the position of the document among the non-empty documents of the stream
    (0-based) and ``line`` the line it starts on, so an importer can say "document 3 (line 41):
    spec.selector: required". Chunks holding only comments or whitespace are skipped. A syntax
    error in one document does not affect the others. A stream over :data:`MAX_STREAM_BYTES`
    yields one failed document.
    """
    text, errors = _decode_text(stream, MAX_STREAM_BYTES)
    if text is None:
        return [Document(index=0, line=1, data=None, errors=tuple(errors))]
    chunks: list[tuple[int, list[str]]] = [(1, [])]
    for line_number, line in enumerate(text.splitlines(keepends=True), start=1):
        if _DOCUMENT_SEPARATOR.match(line.rstrip("\r\n")):
            # "--- {inline: doc}" keeps content after the marker on the same line.
            remainder = line[3:] if line.startswith("---") else ""
            chunks.append((line_number, [remainder] if remainder.strip() else []))
        else:
            chunks[-1][1].append(line)
    documents: list[Document] = []
    for line_number, lines in chunks:
        chunk_text = "".join(lines)
        if not _has_content(chunk_text):
            continue
        data, errors = load_document(chunk_text)
        documents.append(Document(index=len(documents), line=line_number, data=data, errors=tuple(errors)))
    return documents


def _has_content(chunk_text: str) -> bool:
    return any(line.strip() and not line.lstrip().startswith("#") for line in chunk_text.splitlines())
