"""The admission listener's server settings (sidecarhub/admission_server.py): what granian is
asked to run, from the command line and the environment; bad settings name themselves."""

from __future__ import annotations

from pathlib import Path

import pytest
from granian.constants import HTTPModes, Interfaces, SSLProtocols

from sidecarhub.admission_server import APP_FACTORY, server_options


def test_defaults_serve_the_warmed_app_with_keep_alive_and_respawned_workers() -> None:
    options = server_options("127.0.0.1:9443", {})
    assert options["target"] == APP_FACTORY and options["factory"] is True
    assert options["interface"] == Interfaces.WSGI
    assert (options["address"], options["port"]) == ("127.0.0.1", 9443)
    assert (options["workers"], options["blocking_threads"]) == (2, 4)
    assert options["http"] == HTTPModes.http1
    assert options["respawn_failed_workers"] is True
    assert "ssl_cert" not in options  # plain HTTP without both files (a TLS proxy in front)


def test_tls_files_and_counts_come_from_the_environment(tmp_path: Path) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_text("cert")
    key.write_text("key")
    environ = {
        "SIDECARHUB_WEBHOOK_CERT_FILE": str(cert),
        "SIDECARHUB_WEBHOOK_KEY_FILE": str(key),
        "SIDECARHUB_ADMISSION_WORKERS": "3",
        "SIDECARHUB_ADMISSION_THREADS": "8",
    }
    options = server_options("[::]:8443", environ)
    assert (options["ssl_cert"], options["ssl_key"]) == (cert, key)
    assert options["ssl_protocol_min"] == SSLProtocols.tls12
    assert (options["address"], options["workers"], options["blocking_threads"]) == ("::", 3, 8)


@pytest.mark.parametrize(
    ("bind", "environ", "named"),
    [
        ("localhost", {}, "--bind"),
        ("localhost:http", {}, "--bind"),
        ("localhost:70000", {}, "--bind"),
        ("0.0.0.0:8443", {"SIDECARHUB_ADMISSION_WORKERS": "0"}, "SIDECARHUB_ADMISSION_WORKERS"),
        ("0.0.0.0:8443", {"SIDECARHUB_ADMISSION_THREADS": "many"}, "SIDECARHUB_ADMISSION_THREADS"),
        ("0.0.0.0:8443", {"SIDECARHUB_WEBHOOK_CERT_FILE": "/etc/tls.crt"}, "SIDECARHUB_WEBHOOK_KEY_FILE"),
        (
            "0.0.0.0:8443",
            {
                "SIDECARHUB_WEBHOOK_CERT_FILE": "/nonexistent.crt",
                "SIDECARHUB_WEBHOOK_KEY_FILE": "/nonexistent.key",
            },
            "SIDECARHUB_WEBHOOK_CERT_FILE: no such file",
        ),
    ],
)
def test_a_bad_setting_is_refused_by_name(bind: str, environ: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        server_options(bind, environ)
