"""The one exception for a refused state change, shared by every app's state machines.

Plain Python (no Django): ``rollouts.transitions`` (rollouts and steps) and ``clusters.push``
(placements) raise it, or a subclass, when a row is not in a state the verb accepts, often
because someone else moved it first. The APIs map it to HTTP 409 with ``current_state``.
"""

from __future__ import annotations

__all__ = ["InvalidTransition"]


class InvalidTransition(Exception):
    """``what`` ``object_id`` is in ``current_state``, from which it cannot become ``to_state``."""

    def __init__(self, what: str, object_id: int, current_state: str, to_state: str) -> None:
        self.what, self.object_id, self.current_state, self.to_state = (
            what,
            object_id,
            current_state,
            to_state,
        )
        super().__init__(f"{what} {object_id} is {current_state}; it cannot become {to_state}")
