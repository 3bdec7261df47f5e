"""The admission listener's gunicorn settings (sidecarhub/gunicorn_admission.py), as gunicorn loads
them: the worker model, keep-alive, and the TLS context built once per process (issue 17)."""

from __future__ import annotations

import ssl
import sys
from typing import Any

import pytest
from gunicorn import sock
from gunicorn.app.base import Application

from sidecarhub import gunicorn_admission


class _App(Application):
    def init(self, parser: Any, opts: Any, args: Any) -> None:
        return None

    def load(self) -> None:
        return None


@pytest.fixture
def loaded(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    monkeypatch.setattr(sys, "argv", ["gunicorn"])
    monkeypatch.setattr(gunicorn_admission, "_context", None)
    app = _App()
    app.load_config_from_module_name_or_filename("python:sidecarhub.gunicorn_admission")
    return app.cfg


def test_gthread_workers_keep_connections_longer_than_the_apiserver_keeps_them_idle(loaded: Any) -> None:
    assert loaded.worker_class_str == "gthread"
    assert loaded.threads >= 2
    assert loaded.keepalive > 90  # the apiserver's webhook client drops idle connections after 90 s
    assert loaded.post_worker_init is gunicorn_admission.post_worker_init


def test_the_tls_context_is_built_once_per_process(loaded: Any, tmp_path: Any) -> None:
    from sandbox.pki import make_serving_certificate

    certs = make_serving_certificate(tmp_path, hosts=("127.0.0.1",))
    loaded.set("certfile", str(certs.cert))
    loaded.set("keyfile", str(certs.key))
    built: list[ssl.SSLContext] = []
    original = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        context = original(*args, **kwargs)
        built.append(context)
        return context

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ssl, "create_default_context", counting)
        contexts = {id(sock.ssl_context(loaded)) for _ in range(5)}  # what each new connection asks
    assert len(built) == 1 and contexts == {id(built[0])}
