"""``json_text`` (issue 17): orjson's speed, but always the stdlib ``json`` module's value, text or error.

Differential properties against ``json`` over generated values and texts, including what orjson
treats differently (NaN, floats written another way, integers beyond 64 bits, lone surrogates,
DEL, non-ASCII, a byte order mark, deep nesting), and every character of Unicode.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecarhub.sidecarset import json_text

NASTY_TEXT = [
    "",
    "null",
    "1.5",
    "1e-07",
    "e",
    ",",
    '":',
    "\x7f",
    "é",
    "\u2028",
    "<&>",
    "\ud800",
    "\x00",
    "0.00001",
]
texts = st.one_of(st.sampled_from(NASTY_TEXT), st.text(max_size=8))
floats = st.one_of(
    st.floats(),  # NaN and infinities included
    st.sampled_from([1e-5, 2.5e-6, 1e-7, 1e-9, 1e16, 1e22, -0.0, 0.1, 5e-324]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**63 - 1, -(2**63), 2**64 - 1, 2**64, -(2**63) - 1]),
    floats,
    texts,
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=20,
)


def _outcome(function: Any, *args: Any, **kwargs: Any) -> tuple[str, Any]:
    try:
        return "value", function(*args, **kwargs)
    except Exception as error:  # the same exception type as the stdlib's is part of the contract
        return "error", type(error)


def _typed(value: Any) -> Any:
    """``value`` with every scalar tagged by its type, NaN made comparable: equal means identical JSON."""
    if isinstance(value, dict):
        return ("dict", [(key, _typed(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("list", [_typed(item) for item in value])
    if isinstance(value, float) and math.isnan(value):
        return ("float", "nan")
    if isinstance(value, float):
        return ("float", repr(value))
    return (type(value).__name__, value)


@given(values, st.booleans(), st.booleans())
@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_dumps_writes_what_json_dumps_writes(value: Any, ensure_ascii: bool, sort_keys: bool) -> None:
    expected = _outcome(
        json.dumps, value, separators=(",", ":"), ensure_ascii=ensure_ascii, sort_keys=sort_keys
    )
    assert _outcome(json_text.dumps, value, ensure_ascii=ensure_ascii, sort_keys=sort_keys) == expected


@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_dumps_escapes_every_character_as_json_does(ensure_ascii: bool) -> None:
    every = "".join(chr(code) for code in range(sys.maxunicode + 1) if not 0xD800 <= code <= 0xDFFF)
    value = {"k": [every[start : start + 4096] for start in range(0, len(every), 4096)]}
    assert json_text.dumps(value, ensure_ascii=ensure_ascii) == json.dumps(
        value, separators=(",", ":"), ensure_ascii=ensure_ascii
    )


@pytest.mark.parametrize(
    "value",
    [
        [1e-05, 1e-07, 2.5e-06],  # orjson writes 0.00001, 1e-7...
        {"a": float("nan")},  # orjson writes null
        {"a": 2**64},  # orjson refuses
        {"a": "\ud800"},  # orjson refuses
        {1: "a"},  # orjson refuses keys that are not str; json writes "1"
        ["\x7f"],  # orjson does not escape DEL
        {"a": "ü<&>"},
    ],
)
def test_dumps_where_orjson_differs(value: Any) -> None:
    for ensure_ascii in (True, False):
        expected = json.dumps(value, separators=(",", ":"), ensure_ascii=ensure_ascii)
        assert json_text.dumps(value, ensure_ascii=ensure_ascii) == expected


def test_dumps_refuses_what_json_refuses() -> None:
    for value in ({"a": {1, 2}}, {(1, 2): 1}, object()):
        with pytest.raises(TypeError):
            json_text.dumps(value)


@given(
    st.one_of(
        values.map(lambda value: json.dumps(value).encode()),  # NaN, Infinity and big integers too
        values.map(
            lambda value: json.dumps(value, ensure_ascii=False, indent=1).encode("utf-8", "surrogatepass")
        ),
        st.binary(max_size=40),
        st.sampled_from(
            [
                b"\xef\xbb\xbf{}",
                '{"a": 1}'.encode("utf-16"),
                b"[" * 400 + b"]" * 400,
                b'{"a":1,"a":2}',
                b'"\\ud800"',
                b"123456789012345678901",
                b"-9223372036854775809",
                b"18446744073709551616",
                b"1e400",
                b"[1.7976931348623157e308, 5e-324, 0.30000000000000004]",
            ]
        ),
    )
)
@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_loads_gives_what_json_loads_gives(data: bytes) -> None:
    expected = _outcome(json.loads, data)
    got = _outcome(json_text.loads, data)
    assert got[0] == expected[0], (data, got, expected)
    if expected[0] == "value":
        assert _typed(got[1]) == _typed(expected[1])
    else:
        assert got[1] is expected[1]


def test_loads_keeps_big_integers_exact() -> None:
    assert json_text.loads(b'{"a": 18446744073709551616}') == {"a": 2**64}
    assert type(json_text.loads(b"[-9223372036854775809]")[0]) is int


def test_loads_leaves_deep_nesting_to_json() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(RecursionError):
        json_text.loads(deep)
    assert json_text.nesting_bound(deep) > json_text.shallow_limit()


def test_names_listed_in_a_string_keep_orjsons_path() -> None:
    """The injected-list annotation (comma-joined SidecarSet names) is in most patches: it must not
    look like an array of floats, or every such patch would take the stdlib's path."""
    names = {"sidecarhub.io/sidecarset-injected-list": "admb-1e5f-000,envoy,nginx,node-exporter-2"}
    assert not json_text._may_hold_float_or_null(orjson.dumps(names))
    for value in ([1, -2.5], {"a": 2e-07}, [float("nan")], {"a": [{"b": 1}, 0.5]}):
        assert json_text._may_hold_float_or_null(orjson.dumps(value))
