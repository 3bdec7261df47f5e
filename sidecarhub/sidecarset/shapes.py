"""Reading JSON-shaped values that may not have the shape they should.

Pods and annotations reach the core as decoded JSON; any field may be missing or of another type
(a hand-written pod, a corrupted annotation). These return the shape the caller reads, or an
empty one when the value has another shape, so that the core never raises on a malformed object.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["as_mapping", "as_sequence", "is_mapping", "list_of_dicts"]


def is_mapping(value: Any) -> bool:
    return type(value) is dict or isinstance(value, Mapping)  # dict first: an ABC check is slow


def as_mapping(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a mapping, else an empty one."""
    if type(value) is dict:  # the common case, checked first: the planner calls this per pod
        return value
    return value if isinstance(value, Mapping) else {}


def as_sequence(value: Any) -> list[Any] | tuple[Any, ...]:
    """``value`` when it is a list or tuple, else an empty tuple."""
    if type(value) is list:
        return value
    return value if isinstance(value, list | tuple) else ()


def list_of_dicts(value: Any) -> list[dict[str, Any]]:
    """The dict items of ``value`` when it is a list (others dropped), else an empty list."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
