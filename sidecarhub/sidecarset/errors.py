"""Field errors: the one shape in which every problem with a SidecarSet is reported.

Parsing and validation never raise on bad input; they return lists of :class:`FieldError`,
each naming the offending field with a Kubernetes-style path (``spec.containers[1].image``).
:class:`SidecarSetInvalid` carries such a list for callers that prefer an exception.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["FieldError", "FieldPath", "SidecarSetInvalid"]

# A path segment that can be written after a dot; anything else (label keys, annotation
# keys) is written in brackets, as Kubernetes' field.Path.Key does.
_PLAIN_SEGMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class FieldPath:
    """An immutable field path; ``str()`` renders it as ``spec.containers[0].image``."""

    rendered: str = ""

    def child(self, name: str) -> FieldPath:
        """The path of struct field ``name`` under this path."""
        return FieldPath(f"{self.rendered}.{name}" if self.rendered else name)

    def index(self, position: int) -> FieldPath:
        """The path of list item ``position`` under this path."""
        return FieldPath(f"{self.rendered}[{position}]")

    def key(self, map_key: str) -> FieldPath:
        """The path of map entry ``map_key`` (a label or annotation key) under this path."""
        return FieldPath(f"{self.rendered}[{map_key}]")

    def segment(self, part: str | int) -> FieldPath:
        """Append a raw segment from a JSON path: ints are indexes, plain names fields, others keys."""
        if isinstance(part, int):
            return self.index(part)
        return self.child(part) if _PLAIN_SEGMENT.match(part) else self.key(part)

    def __str__(self) -> str:
        # The empty path is the document itself.
        return self.rendered or "<document>"


@dataclass(frozen=True)
class FieldError:
    """One problem with one field: ``path`` names the field, ``message`` says what is wrong."""

    path: str
    message: str

    @classmethod
    def at(cls, path: FieldPath, message: str) -> FieldError:
        return cls(path=str(path), message=message)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class SidecarSetInvalid(ValueError):
    """Raised by ``parse_sidecarset`` and ``check_sidecarset``; ``errors`` holds every problem found."""

    def __init__(self, errors: Iterable[FieldError]) -> None:
        self.errors: Sequence[FieldError] = tuple(errors)
        super().__init__("; ".join(str(error) for error in self.errors) or "invalid SidecarSet")
