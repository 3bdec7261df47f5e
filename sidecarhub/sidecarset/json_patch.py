"""RFC 6902 JSON patches between two JSON documents that share their unchanged parts.

:func:`inject` builds the injected pod by copying only what it changes (the pod's top level,
``metadata``, ``spec`` and the lists it merges into); everything else is the *same object* in the
original and in the result. :func:`patch_between` walks both documents and skips identical
objects at once, so its cost follows what changed, not the size of the pod (a general diff such
as ``jsonpatch.make_patch`` compares and copies every container of the pod).

The patch is exact for any two JSON documents, shared or not: applied to ``old`` it gives a
document equal to ``new`` (scalars compared with their JSON type, so ``1``, ``1.0`` and ``true``
differ). Lists are aligned on their first element shared by identity: the new elements before it
are inserted, the old elements are patched in place, the new elements after them appended; a list
that lost elements is replaced whole. The operations' values are ``new``'s own objects, not
copies: serialize the patch before changing ``new``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["patch_between"]

_SCALARS = (str, int, float, bool, type(None))


def patch_between(old: Any, new: Any) -> list[dict[str, Any]]:
    """The operations that turn ``old`` into ``new`` (see the module docstring)."""
    operations: list[dict[str, Any]] = []
    _diff(old, new, "", operations)
    return operations


def _pointer_token(key: Any) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def _diff(old: Any, new: Any, path: str, operations: list[dict[str, Any]]) -> None:
    if old is new:
        return
    old_type, new_type = type(old), type(new)
    if old_type is dict and new_type is dict:
        for key in old:
            if key not in new:
                operations.append({"op": "remove", "path": f"{path}/{_pointer_token(key)}"})
        for key, value in new.items():
            if key not in old:
                operations.append({"op": "add", "path": f"{path}/{_pointer_token(key)}", "value": value})
            elif old[key] is not value:  # shared parts (most of a pod) are skipped before any path is built
                _diff(old[key], value, f"{path}/{_pointer_token(key)}", operations)
        return
    if old_type is list and new_type is list:
        offset = _alignment(old, new)
        if offset is not None:
            for index in range(offset):
                operations.append({"op": "add", "path": f"{path}/{index}", "value": new[index]})
            for index, item in enumerate(old, start=offset):
                if item is not new[index]:
                    _diff(item, new[index], f"{path}/{index}", operations)
            for index in range(offset + len(old), len(new)):
                operations.append({"op": "add", "path": f"{path}/{index}", "value": new[index]})
            return
    elif old_type is new_type and old_type in _SCALARS and old == new:
        return
    operations.append({"op": "replace", "path": path, "value": new})


def _alignment(old: list[Any], new: list[Any]) -> int | None:
    """How many elements were inserted before ``old``'s in ``new``; None: replace the list whole."""
    spare = len(new) - len(old)
    if spare < 0:
        return None
    positions = {id(item): index for index, item in reversed(list(enumerate(new)))}
    for index, item in enumerate(old):
        found = positions.get(id(item))
        if found is not None and new[found] is item:
            offset = found - index
            return offset if 0 <= offset <= spare else 0
    return 0
