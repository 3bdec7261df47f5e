"""The other side of the lock tests: a process that tries one single-flight lock and holds it.

``python -m tests.locks.holder KEY`` prints ``acquired`` or ``refused``; a holder keeps the lock
until a line arrives on its standard input (or it is killed), then prints ``released``. The
database and the lease time come from the environment, as for any hub process.
"""

from __future__ import annotations

import os
import sys

import django


def main() -> None:
    key = int(sys.argv[1])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sidecarhub.settings")
    django.setup()
    # After django.setup(): the lock reads settings and the database connection.
    from sidecarhub.locks import try_advisory_lock

    with try_advisory_lock(key) as acquired:
        print("acquired" if acquired else "refused", flush=True)
        if acquired:
            sys.stdin.readline()
    print("released", flush=True)


if __name__ == "__main__":
    main()
