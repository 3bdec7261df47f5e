"""The admission listener's server: the TLS port the clusters' apiservers call.

    python -m sidecarhub.admission_server --bind 0.0.0.0:8443

Used by ``scripts/run.sh``, the image (``Dockerfile``) and ``docker-compose.yml``. It serves
``sidecarhub.admission_wsgi`` (the webhook and ``/healthz`` only) with granian, a Rust HTTP server
(hyper, rustls) behind a WSGI interface. Every pod CREATE in a cluster waits for this listener,
so the server model was chosen by measuring pod CREATEs through a real kube-apiserver
(``benchmarks/apiserver_create.py``, figures in benchmarks/README.md), not assumed:

- **granian, not gunicorn.** With the same app, gunicorn's gthread worker spent about 0.5 ms more
  CPU per admission than granian (its main thread polls, hands each request to a thread pool
  through futures and a wake-up pipe, parses HTTP in Python and touches its heartbeat file on
  every loop); its sync workers also close every connection. granian parses HTTP and does TLS
  in Rust and calls the app on a blocking thread.
- **Keep-alive, HTTP/1.1.** The apiserver keeps its connections to a webhook open between
  calls; a connection lives until the client closes it, so the server never closes one the
  apiserver is about to reuse. HTTP/2 measured no faster for one small request at a time.
- **TLS loaded once per worker** from ``SIDECARHUB_WEBHOOK_CERT_FILE`` /
  ``SIDECARHUB_WEBHOOK_KEY_FILE`` (PEM; PKCS#8, PKCS#1 or SEC1 keys). A renewed certificate is
  read by new workers: ``kill -HUP`` the main process after renewing (workers are replaced one by
  one; tested). Without both files the listener is plain HTTP, for a TLS-terminating proxy.
- **Warm before serving.** Each worker builds the app through ``warmed_application`` (granian's
  factory), which runs :func:`warm_up_and_freeze` before the worker accepts a connection:
  definitions snapshots, kube clients and namespace labels loaded, one synthetic review, then
  everything alive moved out of the cyclic collector's reach (``gc.freeze``), so a full
  collection never re-walks the warmed heap (the 90-125 ms pauses issue 17 measured).
- **Failed workers are respawned**; on shutdown a worker gets ``KILL_TIMEOUT_SECONDS`` to finish.

Knobs (environment): ``SIDECARHUB_ADMISSION_WORKERS`` (processes, default 2) and
``SIDECARHUB_ADMISSION_THREADS`` (threads calling the app per process, default 4: an admission
that waits on the database or a namespace read does not hold the others back).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

APP_FACTORY = "sidecarhub.admission_wsgi:warmed_application"
KILL_TIMEOUT_SECONDS = 20
DEFAULT_BIND = "0.0.0.0:8443"


def warm_up_and_freeze() -> int:
    """What a worker does before serving (benchmarks/admission_handler.py runs it too): the
    admission warm-up, one full collection, then every object alive moved out of the collector's
    reach (``gc.freeze``). Returns how many clusters were warmed."""
    from clusters.admission import warm_up  # the app (and so Django) is loaded by now

    started = time.monotonic()
    warmed = warm_up()
    gc.collect()
    gc.freeze()
    logging.getLogger("sidecarhub.admission").info(
        "admission worker %d warm in %.1f s: %d cluster(s), %d objects frozen",
        os.getpid(),
        time.monotonic() - started,
        warmed,
        gc.get_freeze_count(),
    )
    return warmed


def _split_bind(bind: str) -> tuple[str, int]:
    host, separator, port = bind.rpartition(":")
    if not separator or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--bind must be HOST:PORT, got {bind!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def _positive(environ: Mapping[str, str], name: str, default: int) -> int:
    text = environ.get(name, "").strip() or str(default)
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{name} must be a positive whole number, got {text!r}")
    return int(text)


def server_options(bind: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """granian's ``Server`` arguments for ``bind`` and the environment (see the module docstring).

    Raises ValueError naming the setting that is wrong (a bad bind, a count, only one of the two
    TLS files, a TLS file that does not exist)."""
    from granian.constants import HTTPModes, Interfaces, SSLProtocols

    address, port = _split_bind(bind)
    options: dict[str, Any] = {
        "target": APP_FACTORY,
        "factory": True,
        "interface": Interfaces.WSGI,
        "address": address,
        "port": port,
        "workers": _positive(environ, "SIDECARHUB_ADMISSION_WORKERS", 2),
        "blocking_threads": _positive(environ, "SIDECARHUB_ADMISSION_THREADS", 4),
        "http": HTTPModes.http1,
        "websockets": False,
        "respawn_failed_workers": True,
        "workers_kill_timeout": KILL_TIMEOUT_SECONDS,
        "log_access": False,
    }
    cert = environ.get("SIDECARHUB_WEBHOOK_CERT_FILE", "").strip()
    key = environ.get("SIDECARHUB_WEBHOOK_KEY_FILE", "").strip()
    if bool(cert) != bool(key):
        raise ValueError("set both SIDECARHUB_WEBHOOK_CERT_FILE and SIDECARHUB_WEBHOOK_KEY_FILE, or neither")
    if cert:
        for name, value in (("SIDECARHUB_WEBHOOK_CERT_FILE", cert), ("SIDECARHUB_WEBHOOK_KEY_FILE", key)):
            if not Path(value).is_file():
                raise ValueError(f"{name}: no such file: {value}")
        options.update(ssl_cert=Path(cert), ssl_key=Path(key), ssl_protocol_min=SSLProtocols.tls12)
    return options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sidecarhub.admission_server", description="Serve the admission webhook (TLS)."
    )
    parser.add_argument(
        "--bind", default=DEFAULT_BIND, help=f"HOST:PORT to listen on (default {DEFAULT_BIND})"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sidecarhub.settings")
    try:
        options = server_options(args.bind, os.environ)
    except ValueError as error:
        parser.error(str(error))
    from granian.server import Server

    Server(**options).serve()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
