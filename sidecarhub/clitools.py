"""What every ``sidecarhub`` CLI verb shares: exit codes, who is acting, permission checks,
tables and ``--watch``.

Exit codes (one table for every verb, so a script can act on them):

- 0 done (``--watch``: the rollout or release ended well: completed, even with pods that need
  recreate);
- 1 not found or bad input;
- 2 bad arguments (argparse);
- 3 not authenticated or not permitted (no or a bad token, a missing permission, four eyes);
- 4 conflict: the object is not in a state the verb accepts (the message says which);
- 5 ``--watch``: the rollout or release ended badly (failed, aborted, rolled back, superseded);
- 6 ``--watch --timeout``: it had not ended when the time was up;
- 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import CommandError

from sidecarhub.tokens import TokenError, user_for_token

__all__ = [
    "EXIT_CONFLICT",
    "EXIT_ENDED_BADLY",
    "EXIT_NOT_FOUND",
    "EXIT_NOT_PERMITTED",
    "EXIT_TIMEOUT",
    "TOKEN_VARIABLE",
    "Snapshot",
    "add_watch_arguments",
    "api_permissions",
    "authenticated_user",
    "output",
    "require",
    "watch",
    "write_table",
]

EXIT_NOT_FOUND = 1
EXIT_NOT_PERMITTED = 3
EXIT_CONFLICT = 4
EXIT_ENDED_BADLY = 5
EXIT_TIMEOUT = 6

TOKEN_VARIABLE = "SIDECARHUB_TOKEN"
# Home and clear screen: a terminal shows one snapshot at a time.
_REDRAW = "\x1b[H\x1b[2J"


def output(stdout: Any) -> Any:
    """Where a handler writes: the command's ``stdout``, else the process's."""
    return stdout if stdout is not None else sys.stdout


def write_table(rows: Sequence[Sequence[str]], out: Any) -> None:
    """Left-aligned columns, two spaces apart; the first row is the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write(
            "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip() + "\n"
        )


# --- who is acting -------------------------------------------------------------------------------


def authenticated_user(environ: Mapping[str, str] | None = None) -> Any:
    """The user whose API token is ``SIDECARHUB_TOKEN`` (from the environment or the env file);
    exit 3 when there is none or it is not valid. The token itself is never printed."""
    environ = os.environ if environ is None else environ
    key = environ.get(TOKEN_VARIABLE, "").strip()
    if not key:
        raise CommandError(
            f"no API token: set {TOKEN_VARIABLE} (`sidecarhub token create USER` or the admin console "
            "issues one), or run where `make run`'s env file is (var/sidecarhub.env, or SIDECARHUB_ENV_FILE)",
            returncode=EXIT_NOT_PERMITTED,
        )
    try:
        return user_for_token(key)
    except TokenError as exc:
        raise CommandError(f"{exc}: check {TOKEN_VARIABLE}", returncode=EXIT_NOT_PERMITTED) from None


def api_permissions(viewset: type, action: str) -> tuple[str, ...]:
    """The permissions the API asks for ``action`` of ``viewset`` (its ``required_permissions``),
    so a verb and the API call it mirrors ask for the same."""
    return tuple(viewset.required_permissions[action])  # type: ignore[attr-defined]  # every API viewset has the table


def require(user: Any, permissions: Iterable[str]) -> None:
    """Exit 3 naming what ``user`` lacks, unless it has every one of ``permissions``."""
    missing = [permission for permission in permissions if not user.has_perm(permission)]
    if missing:
        raise CommandError(
            f"not permitted: {user.get_username()} lacks {', '.join(missing)}", returncode=EXIT_NOT_PERMITTED
        )


# --- --watch -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """What ``watch`` shows each time it looks.

    ``signature``: the state the text shows, without clocks (when it differs from the last one,
    a non-terminal output gets the new text); ``exit_code``: ``None`` while it goes on, else
    how the process ends (0, or ``EXIT_ENDED_BADLY`` with ``ending`` as the message).
    """

    text: str
    signature: object
    exit_code: int | None = None
    ending: str = ""


def add_watch_arguments(parser: Any) -> None:
    parser.add_argument(
        "--watch", "-w", action="store_true", help="redraw until it ends (exit code: how it ended)"
    )
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between looks (default 2)")
    parser.add_argument(
        "--timeout", type=float, default=None, help="with --watch: give up after this (exit 6)"
    )


def watch(
    look: Callable[[], Snapshot],
    out: Any,
    *,
    interval: float,
    timeout: float | None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Show ``look()`` until it says it ended; return on a good end, raise ``CommandError`` with
    its exit code otherwise.

    On a terminal each look redraws the screen; elsewhere (a pipe, a log, a CI job) a snapshot
    is written only when its signature changed, under a UTC time line, so a script's output
    is the history of the changes.
    """
    started = clock()
    terminal = bool(getattr(out, "isatty", lambda: False)())
    last: object = object()
    while True:
        snapshot = look()
        if terminal:
            out.write(_REDRAW + snapshot.text)
        elif snapshot.signature != last:
            out.write(f"--- {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC\n{snapshot.text}")
        last = snapshot.signature
        getattr(out, "flush", lambda: None)()
        if snapshot.exit_code is not None:
            if snapshot.exit_code:
                raise CommandError(snapshot.ending, returncode=snapshot.exit_code)
            return
        if timeout is not None and clock() - started >= timeout:
            raise CommandError(f"still going after {timeout:g}s (--timeout)", returncode=EXIT_TIMEOUT)
        sleep(max(0.1, interval))
