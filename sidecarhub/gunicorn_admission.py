"""gunicorn settings of the admission listener: the TLS port the clusters' apiservers call.

    gunicorn -c python:sidecarhub.gunicorn_admission --bind 0.0.0.0:8443 <wsgi app>

Used by ``scripts/run.sh``, the image (``Dockerfile``) and ``docker-compose.yml``; the WSGI app
and the bind address come from the command line. Every pod CREATE in a cluster waits for this
listener, so it is set up for latency (issue 17; figures in benchmarks/README.md,
``apiserver_create.py``):

- **gthread workers with keep-alive.** The apiserver keeps its connection to a webhook open
  between calls; gunicorn's sync workers close it after every answer, so each pod paid a new
  TCP + TLS handshake. A thread handles one request at a time and idle connections wait in the
  worker's poller, not in a thread. ``keepalive`` (seconds) outlasts the apiserver client's idle
  timeout (90 s), so the server never closes a connection the apiserver is about to reuse (a POST
  on a connection closed under it fails that admission).
- **One TLS context per process.** gunicorn 27 builds a new ``SSLContext`` (certificate chain
  loaded from disk) for every accepted connection; ``ssl_context`` below builds it once per
  worker. A renewed certificate is read by new workers: ``kill -HUP`` the master after renewing.
- **Warm before serving.** ``post_worker_init`` runs ``clusters.admission.warm_up`` (definitions
  snapshots, kube clients, namespace labels, one synthetic review) before the worker accepts
  connections, then moves everything alive into the collector's permanent generation
  (``gc.freeze``): a full collection then walks only what the process allocated since, instead
  of the whole heap (the 90-125 ms pauses issue 17 measured).

Knobs (environment): ``SIDECARHUB_ADMISSION_WORKERS`` (default 2), ``SIDECARHUB_ADMISSION_THREADS``
(default 4), ``SIDECARHUB_WEBHOOK_CERT_FILE`` / ``SIDECARHUB_WEBHOOK_KEY_FILE`` (the serving
certificate; without them the listener is plain HTTP, for a TLS-terminating proxy in front).
"""

from __future__ import annotations

import gc
import logging
import os
import ssl
from collections.abc import Callable
from typing import Any

worker_class = "gthread"
workers = int(os.environ.get("SIDECARHUB_ADMISSION_WORKERS", "2"))
threads = int(os.environ.get("SIDECARHUB_ADMISSION_THREADS", "4"))
keepalive = 120
timeout = 30
graceful_timeout = 20
certfile = os.environ.get("SIDECARHUB_WEBHOOK_CERT_FILE") or None
keyfile = os.environ.get("SIDECARHUB_WEBHOOK_KEY_FILE") or None

_context: ssl.SSLContext | None = None


def ssl_context(config: Any, default_ssl_context_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """gunicorn's factory (certificate, key, ciphers as configured), called once per process."""
    global _context
    if _context is None:
        _context = default_ssl_context_factory()
    return _context


def post_worker_init(worker: Any) -> None:
    """Warm the worker (see the module docstring) before it accepts its first connection."""
    from gunicorn import sock

    if worker.cfg.is_ssl:
        sock.ssl_context(worker.cfg)  # builds and keeps this process's context (the hook above)
    warmed = warm_up_and_freeze()
    logging.getLogger("sidecarhub.admission").info(
        "admission worker %s warm: %d cluster(s), %d frozen", worker.pid, warmed, gc.get_freeze_count()
    )


def warm_up_and_freeze() -> int:
    """What a worker does before serving (benchmarks/admission_handler.py runs it too): the
    admission warm-up, one full collection, then every object alive moved out of the collector's
    reach (``gc.freeze``). Returns how many clusters were warmed."""
    from clusters.admission import warm_up  # the app (and so Django) is loaded by now

    warmed = warm_up()
    gc.collect()
    gc.freeze()
    return warmed
