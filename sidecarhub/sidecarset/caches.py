"""Planning caches kept by a process between rounds, one per rollout or per placement.

A :class:`~sidecarhub.sidecarset.planning.PlanningCache` lets a round re-evaluate only the pods
that changed since the previous one; the engine's passes and the status write-back keep one per
rollout and per placement in each worker process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from contextlib import contextmanager

from sidecarhub.sidecarset.planning import PlanningCache

__all__ = ["PlanningCaches"]


class PlanningCaches:
    """:class:`PlanningCache` objects by key (a rollout, a placement), for one process.

    Bounded: beyond ``capacity`` keys the least recently used cache is dropped. Thread-safe: a
    cache is lent to one caller at a time (a ``PlanningCache`` is not thread-safe), and a caller
    that finds its key's cache lent out plans without one (same plan, only slower).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._caches: OrderedDict[Hashable, PlanningCache] = OrderedDict()
        self._lent: set[Hashable] = set()
        self._lock = threading.Lock()

    @contextmanager
    def borrow(self, key: Hashable) -> Iterator[PlanningCache | None]:
        """The cache of ``key`` for the ``with`` block, or ``None`` when another caller has it."""
        with self._lock:
            if key in self._lent:
                cache = None
            else:
                cache = self._caches.pop(key, None)
                if cache is None:  # not ``or``: an empty cache is falsy (it has a length)
                    cache = PlanningCache()
                self._caches[key] = cache  # most recently used last
                self._lent.add(key)
                while len(self._caches) > self.capacity:
                    self._caches.popitem(last=False)
        try:
            yield cache
        finally:
            if cache is not None:
                with self._lock:
                    self._lent.discard(key)

    def __len__(self) -> int:
        return len(self._caches)
