"""Request parsers with a size cap, and the YAML parser/renderer for Kruise documents.

DRF parsers read the raw request stream, so Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` does not
protect them; every parser here reads at most its ``max_body_bytes`` and refuses more with 413.
JSON nested too deeply for the decoder (``[[[[...``) is a 400, not a ``RecursionError``, and a
string holding U+0000 is a 400 naming its field: PostgreSQL can store it in no text or jsonb
column, so the API refuses it the same way on every database.
``DocumentJSONParser`` is the API's default JSON parser (settings ``DEFAULT_PARSER_CLASSES``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError, ValidationError
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer

from sidecarhub.sidecarset import MAX_DOCUMENT_BYTES
from sidecarhub.sidecarset.documents import MAX_STREAM_BYTES

__all__ = [
    "DOCUMENT_BODY_LIMIT_BYTES",
    "IMPORT_BODY_LIMIT_BYTES",
    "DocumentJSONParser",
    "DocumentYAMLParser",
    "ImportJSONParser",
    "ImportYAMLParser",
    "RequestBodyTooLarge",
    "YAMLRenderer",
]

# Room for the JSON envelope (owner team, message, escaping) around one maximal document.
DOCUMENT_BODY_LIMIT_BYTES = 2 * MAX_DOCUMENT_BYTES
IMPORT_BODY_LIMIT_BYTES = MAX_STREAM_BYTES + MAX_DOCUMENT_BYTES


class RequestBodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "request body too large"
    default_code = "request_too_large"


def _read_bounded(stream: Any, parser_context: Mapping[str, Any] | None, limit_bytes: int) -> bytes:
    request = (parser_context or {}).get("request")
    declared = request.META.get("CONTENT_LENGTH") if request is not None else None
    if declared and str(declared).isdigit() and int(declared) > limit_bytes:
        raise RequestBodyTooLarge(f"request body is {declared} bytes; the limit is {limit_bytes} bytes")
    data = stream.read(limit_bytes + 1) if stream is not None else b""
    if len(data) > limit_bytes:
        raise RequestBodyTooLarge(f"request body is over the limit of {limit_bytes} bytes")
    return data


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _nul_character_path(data: Any) -> str | None:
    """The dotted path of the first key or string holding U+0000 (``""`` for the body itself)."""
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return path
        elif isinstance(value, dict):
            for key, item in value.items():
                child = f"{path}.{key}" if path else str(key)
                if "\x00" in key:
                    return child
                stack.append((item, child))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{position}]") for position, item in enumerate(value))
    return None


def _loads(body: bytes) -> Any:
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParseError(f"JSON parse error: {exc}") from exc
    except RecursionError:
        raise ParseError("JSON parse error: the body is nested too deeply") from None
    path = _nul_character_path(data)
    if path is not None:
        raise ValidationError({path or "non_field_errors": ["must not contain the NUL character (U+0000)"]})
    return data


class DocumentJSONParser(BaseParser):
    """JSON bodies up to :data:`DOCUMENT_BODY_LIMIT_BYTES`.

    Not a subclass of DRF's ``JSONParser`` on purpose: DRF reads those through
    ``request.body``, which Django caps at ``DATA_UPLOAD_MAX_MEMORY_SIZE`` with a bare 400.
    """

    media_type = "application/json"
    max_body_bytes = DOCUMENT_BODY_LIMIT_BYTES

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        return _loads(_read_bounded(stream, parser_context, self.max_body_bytes))


class DocumentYAMLParser(BaseParser):
    """A raw Kruise YAML (or JSON) document as the body: parsed as ``{"document": <text>}``.

    The text is handed to the core unparsed, so its errors carry the core's field paths.
    """

    media_type = "application/yaml"
    max_body_bytes = DOCUMENT_BODY_LIMIT_BYTES

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        body = _read_bounded(stream, parser_context, self.max_body_bytes)
        try:
            return {"document": body.decode("utf-8")}
        except UnicodeDecodeError as exc:
            raise ParseError(f"request body is not UTF-8 text: {exc.reason} at byte {exc.start}") from exc


class ImportJSONParser(DocumentJSONParser):
    """JSON import bodies: a whole multi-document stream may be large."""

    max_body_bytes = IMPORT_BODY_LIMIT_BYTES


class ImportYAMLParser(DocumentYAMLParser):
    """A raw multi-document YAML stream as the body."""

    max_body_bytes = IMPORT_BODY_LIMIT_BYTES


class YAMLRenderer(BaseRenderer):
    """Text is sent as is (an exported document); anything else (an error body) is dumped as YAML."""

    media_type = "application/yaml"
    format = "yaml"
    charset = "utf-8"

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        if data is None:
            return b""
        if isinstance(data, str):
            return data.encode("utf-8")
        return yaml.safe_dump(_plain(data), sort_keys=False, allow_unicode=True).encode("utf-8")


def _plain(value: Any) -> Any:
    """DRF's ReturnDict / ErrorDetail → plain dicts and strings that ``safe_dump`` accepts."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)
