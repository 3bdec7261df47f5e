"""JSON text in and out of the admission path: orjson's speed with the stdlib ``json`` module's output.

The admission handler decodes one AdmissionReview and encodes a JSON patch and two hash
annotations per pod; with the stdlib these took about a fifth of the handler's time (issue 17).
orjson is several times faster but differs from ``json`` on a few inputs, so each function here
takes orjson's answer only where it is provably the one ``json`` gives, and asks ``json`` itself
otherwise (never a different value, text or error):

- :func:`loads` equals ``json.loads(data)``. orjson refuses NaN, Infinity, a byte order mark,
  UTF-16/32 and lone surrogates (``json`` accepts them: the stdlib decodes those bodies), silently
  turns an integer beyond 64 bits into a float, and nests to 1,024 levels where ``json`` stops at
  the recursion limit. So orjson's value is taken only when the text has no run of 19 digits and
  at most :func:`shallow_limit` objects and arrays in all.
- :func:`dumps` equals ``json.dumps(value, separators=(",", ":"), ...)``, for decoded JSON
  values (dict, list, str, int, float, bool, None). orjson writes floats in another
  form (``0.00001`` for ``1e-05``), NaN and Infinity as ``null``, DEL and non-ASCII characters
  unescaped, and refuses integers beyond 64 bits, lone surrogates and keys that are not strings.
  So its text is taken only when it holds no float and no ``null`` (NaN is written as ``null``;
  :func:`_may_hold_float_or_null`), and, when ASCII is asked for, only ASCII without DEL. Every
  other character is escaped exactly as ``json`` escapes it (tested over all of Unicode).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import orjson

__all__ = ["dumps", "loads", "nesting_bound", "shallow_limit"]

_DIGITS = b"0123456789"
# For the 19-digit test: every digit becomes "0", any other byte "x".
_ONLY_DIGITS = bytes(ord("0") if byte in _DIGITS else ord("x") for byte in range(256))
_NINETEEN_DIGITS = b"0" * 19
# For the float test, one pass maps what may start a value (``":`` of an object value, ``[`` and
# ``,`` of an array element: both become ","), turns a number's signs and decimal point into
# ".", deletes digits, "e", "E", braces, "]" and whitespace, and makes every other byte a barrier
# "x". A float token (``-1.5``, ``2e-07``: orjson always writes the exponent's sign) then reads
# ``":.`` or ``,.``. A string can raise only a false alarm (which just takes the stdlib's path):
# a comma-separated list of names, as in the injected-list annotation, does not (letters are
# barriers). A null, which is also how orjson writes NaN and Infinity, is searched for as is.
_DELETED = _DIGITS + b"eE{}] \t\r\n"
_MARKED = {
    ord('"'): '"',
    ord(":"): ":",
    ord("["): ",",
    ord(","): ",",
    ord("."): ".",
    ord("-"): ".",
    ord("+"): ".",
}
_VALUE_MARKS = bytes(ord(_MARKED.get(byte, "x")) for byte in range(256))
# Anything but plain JSON types (subclasses, dataclasses, datetimes) goes to orjson's ``default``,
# which is unset: orjson refuses it, and ``json`` gives its own answer (usually its TypeError).
# (orjson still writes UUIDs and enums itself; decoded JSON and definitions never hold them.)
_UNSORTED = (
    orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
)
_SORTED = _UNSORTED | orjson.OPT_SORT_KEYS


def nesting_bound(data: bytes) -> int:
    """An upper bound of how deeply the JSON text ``data`` nests: its ``{`` and ``[`` bytes."""
    return data.count(b"{") + data.count(b"[")


def shallow_limit() -> int:
    """Up to this many objects and arrays, a decoded value is copied and walked recursively
    (two frames a level, as ``injection._private_copy`` does) within half the recursion limit."""
    return sys.getrecursionlimit() // 4


def loads(data: bytes) -> Any:
    """``json.loads(data)``: the same value, or the same exception (see the module docstring)."""
    if nesting_bound(data) <= shallow_limit() and _NINETEEN_DIGITS not in data.translate(_ONLY_DIGITS):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # maybe NaN, a BOM...: the stdlib accepts some of these, and words its own errors
    return json.loads(data)


def _may_hold_float_or_null(text: bytes) -> bool:
    marks = text.translate(_VALUE_MARKS, _DELETED)
    return b'":.' in marks or b",." in marks or marks[:1] == b"." or b"null" in text


def dumps(value: Any, *, ensure_ascii: bool = True, sort_keys: bool = False) -> str:
    """``json.dumps(value, separators=(",", ":"), ensure_ascii=..., sort_keys=...)``, the same text.

    Raises what ``json.dumps`` raises (``TypeError``, ``ValueError``, ``RecursionError``).
    """
    try:
        text = orjson.dumps(value, option=_SORTED if sort_keys else _UNSORTED)
    except TypeError:  # orjson.JSONEncodeError: big integers, surrogates, keys that are not str...
        pass
    else:
        if not (ensure_ascii and (not text.isascii() or b"\x7f" in text)) and not _may_hold_float_or_null(
            text
        ):
            return text.decode()
    return json.dumps(value, separators=(",", ":"), ensure_ascii=ensure_ascii, sort_keys=sort_keys)
