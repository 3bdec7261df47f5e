"""The admission listener as it is deployed: ``python -m sidecarhub.admission_server`` (granian)
in its own process, over TLS, against the test database. What the in-process tests cannot show:
workers warm before they serve, connections are kept alive, a renewed certificate is served after
``kill -HUP``, and bad settings stop the server with the setting named."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.cluster import free_port
from sandbox.pki import ServingCertificate, make_serving_certificate
from sandbox.testing import wait_for
from tests.conftest import ROOT, child_process_environment

pytestmark = pytest.mark.django_db(transaction=True)  # the server reads with its own connections


class Listener:
    def __init__(self, certs: ServingCertificate, log: Path) -> None:
        self.port = free_port()
        self.certs = certs
        env = child_process_environment()
        env.update(
            SIDECARHUB_WEBHOOK_CERT_FILE=str(certs.cert),
            SIDECARHUB_WEBHOOK_KEY_FILE=str(certs.key),
            SIDECARHUB_ADMISSION_WORKERS="1",
            SIDECARHUB_ADMISSION_THREADS="2",
        )
        self.log = log
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sidecarhub.admission_server", "--bind", f"127.0.0.1:{self.port}"],
                cwd=ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def connection(self, ca: Path) -> http.client.HTTPSConnection:
        context = ssl.create_default_context(cafile=str(ca))
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=context, timeout=10)

    def healthy(self, ca: Path) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(
                f"the admission server exited; see {self.log}:\n{self.log.read_text()[-2000:]}"
            )
        connection = self.connection(ca)
        try:
            connection.request("GET", "/healthz")
            return connection.getresponse().status in (200, 503)
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def served_certificate(port: int) -> bytes:
    """The DER certificate the listener presents now (not verified: it may be a new CA's)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, context.wrap_socket(raw) as tls:
        certificate = tls.getpeercert(binary_form=True)
    assert certificate is not None
    return certificate


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    certs = make_serving_certificate(tmp_path / "tls", hosts=("127.0.0.1",))
    server = Listener(certs, tmp_path / "admission-server.log")
    try:
        wait_for(
            lambda: server.healthy(certs.ca_cert) or None, timeout_seconds=60, what="the admission server"
        )
        yield server
    finally:
        server.stop()


def test_the_deployed_listener_warms_keeps_alive_and_answers_in_the_api_shape(listener: Listener) -> None:
    # The worker warmed up before it accepted the probe above.
    assert "admission worker" in listener.log.read_text() and "warm" in listener.log.read_text()
    connection = listener.connection(listener.certs.ca_cert)
    try:
        connection.request("GET", "/healthz")
        first = connection.getresponse()
        assert first.status == 200, first.read()
        assert json.loads(first.read())["database"] == "ok"
        kept = connection.sock
        # An unknown cluster is the single 401 (no hint whether it exists), on the same connection.
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u"}}
        connection.request(
            "POST",
            "/admission/v1/clusters/nowhere/pods",
            body=json.dumps(review).encode(),
            headers={"Content-Type": "application/json", "Authorization": "Bearer not-a-token"},
        )
        refused = connection.getresponse()
        body = refused.read()
        assert refused.status == 401 and refused.getheader("WWW-Authenticate", "").startswith("Bearer")
        assert b"nowhere" not in body and json.loads(body)["errors"]
        connection.request("GET", "/api/v1/clusters/")
        missing = connection.getresponse()
        assert missing.status == 404 and json.loads(missing.read())["errors"]
        assert connection.sock is kept  # one TLS connection for all three (keep-alive)
    finally:
        connection.close()


def test_a_renewed_certificate_is_served_after_sighup(listener: Listener, tmp_path: Path) -> None:
    before = served_certificate(listener.port)
    renewed = make_serving_certificate(tmp_path / "renewed", hosts=("127.0.0.1",))
    listener.certs.cert.write_bytes(renewed.cert.read_bytes())
    listener.certs.key.write_bytes(renewed.key.read_bytes())
    listener.process.send_signal(signal.SIGHUP)
    # Workers are replaced one by one (the old one drains): poll until the new CA verifies.
    wait_for(
        lambda: listener.healthy(renewed.ca_cert) or None, timeout_seconds=60, what="the renewed certificate"
    )
    wait_for(  # and, once the old worker is gone, every connection gets it
        lambda: all(served_certificate(listener.port) != before for _ in range(3)) or None,
        timeout_seconds=60,
        what="the old worker to stop",
    )


def test_bad_settings_stop_the_server_with_the_setting_named(tmp_path: Path) -> None:
    env = child_process_environment()
    env.update(SIDECARHUB_WEBHOOK_CERT_FILE=str(tmp_path / "missing.crt"), SIDECARHUB_WEBHOOK_KEY_FILE="")
    finished = subprocess.run(
        [sys.executable, "-m", "sidecarhub.admission_server", "--bind", "127.0.0.1:1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 2
    assert "SIDECARHUB_WEBHOOK_KEY_FILE" in finished.stderr
