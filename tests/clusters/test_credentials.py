"""Credentials: encryption at rest, key rotation, kubeconfig import (inline data and file
paths), per-cluster clients (temp files cleaned up), and the leak test: every page, endpoint,
log line, CLI output, exception message and database column is searched for the secrets."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.apps import apps
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.test import APIClient

from clusters.choices import AuditAction, PlacementState
from clusters.crypto import ClusterCredentials, CredentialsUnreadable, decrypt_credentials
from clusters.kube import ClusterApiError, ClusterUnreachable, KubeError, open_kube_client
from clusters.kubeconfig import KubeconfigError, parse_kubeconfig, read_kubeconfig
from clusters.models import Cluster, ClusterAuditEvent, SidecarSetPlacement
from clusters.push import apply_revision, create_target, write_back_status
from clusters.services import check_cluster_health, register_cluster, rotate_encryption_key
from sandbox.testing import RunningCluster
from tests.clusters.conftest import make_user, publish

pytestmark = pytest.mark.django_db


def _kubeconfig(running: RunningCluster) -> dict[str, Any]:
    return json.loads(Path(running.kubeconfig).read_text())


def _user(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(u["user"] for u in config["users"] if u["name"] == name)


# --- kubeconfig parsing (no cluster needed) ----------------------------------------------------

CA = "-----BEGIN CERTIFICATE-----\nMIIBca\n-----END CERTIFICATE-----\n"
CERT = "-----BEGIN CERTIFICATE-----\nMIIBcert\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIKEYSECRET\n-----END EC PRIVATE KEY-----\n"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_kubeconfig_inline_data_and_relative_file_paths(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text(CA)
    (tmp_path / "client.crt").write_text(CERT)
    (tmp_path / "client.key").write_text(KEY)
    (tmp_path / "token").write_text("file-token\n")
    config = {
        "clusters": [
            {
                "name": "inline",
                "cluster": {"server": "https://a.example:6443", "certificate-authority-data": _b64(CA)},
            },
            {
                "name": "files",
                "cluster": {"server": "https://b.example:6443/", "certificate-authority": "ca.crt"},
            },
        ],
        "users": [
            {
                "name": "cert-inline",
                "user": {"client-certificate-data": _b64(CERT), "client-key-data": _b64(KEY)},
            },
            {"name": "cert-files", "user": {"client-certificate": "client.crt", "client-key": "client.key"}},
            {"name": "token-file", "user": {"tokenFile": "token"}},
            {"name": "exec", "user": {"exec": {"command": "aws"}}},
        ],
        "contexts": [
            {"name": "a", "context": {"cluster": "inline", "user": "cert-inline"}},
            {"name": "b", "context": {"cluster": "files", "user": "cert-files"}},
            {"name": "c", "context": {"cluster": "files", "user": "token-file"}},
            {"name": "d", "context": {"cluster": "inline", "user": "exec"}},
        ],
        "current-context": "a",
    }
    path = tmp_path / "config"
    path.write_text(json.dumps(config))
    first = read_kubeconfig(path)
    assert (first.api_server_url, first.ca_bundle) == ("https://a.example:6443", CA)
    assert (first.credentials.client_certificate_pem, first.credentials.client_key_pem) == (CERT, KEY)
    second = read_kubeconfig(path, context="b")
    assert (second.api_server_url, second.ca_bundle, second.credentials.client_key_pem) == (
        "https://b.example:6443",
        CA,
        KEY,
    )
    assert read_kubeconfig(path, context="c").credentials.token == "file-token"
    with pytest.raises(KubeconfigError, match="exec plugins"):
        read_kubeconfig(path, context="d")
    with pytest.raises(KubeconfigError) as missing:
        read_kubeconfig(path, context="zzz")
    assert missing.value.field == "context"
    with pytest.raises(KubeconfigError, match="relative path"):
        parse_kubeconfig(path.read_text(), context="b")  # uploaded text cannot name local files
    assert "KEYSECRET" not in repr(first) and "KEYSECRET" not in repr(first.credentials)


# --- encryption and rotation --------------------------------------------------------------------


def test_credentials_encrypted_at_rest_and_key_rotation(settings: Any, cli_admin: Any) -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.SIDECARHUB_ENCRYPTION_KEYS = [old_key]
    cluster = register_cluster(
        name="rot",
        api_server_url="https://rot.example:6443",
        credentials=ClusterCredentials(token="rot-secret-token"),
    )
    old_ciphertext = Cluster.objects.get(pk=cluster.pk).credentials_ciphertext
    assert "rot-secret-token" not in old_ciphertext
    assert decrypt_credentials(old_ciphertext).token == "rot-secret-token"

    settings.SIDECARHUB_ENCRYPTION_KEYS = [new_key, old_key]
    out = io.StringIO()
    call_command("sidecarhub", "cluster", "rotate-key", stdout=out)
    assert "re-encrypted the credentials of 1 cluster(s)" in out.getvalue()
    new_ciphertext = Cluster.objects.get(pk=cluster.pk).credentials_ciphertext
    assert new_ciphertext != old_ciphertext

    settings.SIDECARHUB_ENCRYPTION_KEYS = [new_key]  # the old key retired
    assert decrypt_credentials(new_ciphertext).token == "rot-secret-token"
    with pytest.raises(CredentialsUnreadable) as unreadable:
        decrypt_credentials(old_ciphertext)
    assert "rot-secret-token" not in str(unreadable.value)
    assert (
        ClusterAuditEvent.objects.filter(cluster=cluster, action=AuditAction.ENCRYPTION_KEY_ROTATED).count()
        == 1
    )
    assert rotate_encryption_key() == 1  # idempotent

    # A row no configured key can read: rotation refuses with a readable, secret-free error.
    settings.SIDECARHUB_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CommandError, match="cannot be decrypted"):
        call_command("sidecarhub", "cluster", "rotate-key", stdout=io.StringIO())


# --- the leak test ------------------------------------------------------------------------------


@pytest.mark.k8s
def test_credentials_never_leak(
    k8s_pair: tuple[RunningCluster, RunningCluster],
    caplog: pytest.LogCaptureFixture,
    django_capture_on_commit_callbacks: Any,
    capsys: pytest.CaptureFixture[str],
    cli_admin: Any,
) -> None:
    caplog.set_level(logging.DEBUG)
    alpha_k8s, beta_k8s = k8s_pair
    alpha_config, beta_config = _kubeconfig(alpha_k8s), _kubeconfig(beta_k8s)
    alpha_token = _user(alpha_config, "alpha-admin")["token"]
    beta_cert_user = _user(beta_config, "beta-admin-cert")
    beta_key = Path(beta_cert_user["client-key"]).read_text()
    beta_cert = Path(beta_cert_user["client-certificate"]).read_text()
    beta_ca = Path(beta_config["clusters"][0]["cluster"]["certificate-authority"]).read_text()
    alpha_ca = Path(alpha_config["clusters"][0]["cluster"]["certificate-authority"]).read_text()
    fake_tokens = ["gone-" + uuid.uuid4().hex, "wrong-" + uuid.uuid4().hex, "replaced-" + uuid.uuid4().hex]
    key_body = "".join(line for line in beta_key.splitlines() if "-----" not in line)
    secrets = [alpha_token, beta_key, key_body, *fake_tokens]
    secrets += [line for line in beta_key.splitlines() if "-----" not in line and len(line) > 20]
    outputs: list[str] = []

    def keep(value: Any) -> Any:
        outputs.append(value if isinstance(value, str) else repr(value))
        return value

    # Register: alpha with the CLI (token from a file), beta through the API (inline *-data),
    # an unreachable cluster, and one with a wrong token.
    out, err = io.StringIO(), io.StringIO()
    with django_capture_on_commit_callbacks(execute=False):
        call_command(
            "sidecarhub",
            "cluster",
            "add",
            "--name",
            "alpha",
            "--kubeconfig",
            str(alpha_k8s.kubeconfig),
            "--context",
            "alpha",
            "--label",
            "leak=yes",
            stdout=out,
            stderr=err,
        )
    keep(out.getvalue() + err.getvalue())
    api = APIClient()
    api.force_authenticate(
        make_user(
            "ops",
            "clusters.add_cluster",
            "clusters.change_cluster",
            "clusters.view_cluster",
            "clusters.view_clusterauditevent",
            "clusters.view_sidecarsetplacement",
        )
    )
    inline = {
        "clusters": [
            {
                "name": "b",
                "cluster": {"server": beta_k8s.cluster.server, "certificate-authority-data": _b64(beta_ca)},
            }
        ],
        "users": [
            {
                "name": "u",
                "user": {"client-certificate-data": _b64(beta_cert), "client-key-data": _b64(beta_key)},
            }
        ],
        "contexts": [{"name": "b", "context": {"cluster": "b", "user": "u"}}],
        "current-context": "b",
    }
    with django_capture_on_commit_callbacks(execute=False):
        response = api.post(
            "/api/v1/clusters/import-kubeconfig/",
            {"name": "beta", "kubeconfig": json.dumps(inline), "labels": {"leak": "yes"}},
            format="json",
        )
        assert response.status_code == 201, response.content
        keep(response.content.decode())
        for name, token, url, ca in (
            ("gone", fake_tokens[0], "https://127.0.0.1:1", beta_ca),
            ("wrong", fake_tokens[1], alpha_k8s.cluster.server, alpha_ca),
        ):
            response = api.post(
                "/api/v1/clusters/",
                {
                    "name": name,
                    "api_server_url": url,
                    "token": token,
                    "ca_bundle": ca,
                    "labels": {"leak": "yes"},
                },
                format="json",
            )
            assert response.status_code == 201, response.content
            keep(response.content.decode())

    # Failure paths with the secrets in the request: bad input echoes nothing.
    for body in (
        {"name": "bad", "api_server_url": "nope", "token": alpha_token},
        {"name": "bad", "api_server_url": "https://kube.example.com", "token": alpha_token + " x"},
        {
            "name": "bad",
            "api_server_url": "https://kube.example.com",
            "client_certificate": beta_cert,
            "client_key": beta_key.replace("-----END", "-----ENX"),
        },
        {"name": "alpha", "api_server_url": "https://kube.example.com", "token": alpha_token},
    ):
        response = api.post("/api/v1/clusters/", body, format="json")
        assert response.status_code in (400, 409), response.content
        keep(response.content.decode())
    for body in (
        {"name": "x", "kubeconfig": json.dumps(inline), "context": "missing"},
        {"name": "x", "kubeconfig": json.dumps(inline).replace(_b64(beta_key), "!!" + beta_key)},
        {"name": "beta", "kubeconfig": json.dumps(inline)},
    ):
        response = api.post("/api/v1/clusters/import-kubeconfig/", body, format="json")
        assert response.status_code in (400, 409), (body.get("context"), response.content)
        keep(response.content.decode())
    response = api.post("/api/v1/clusters/wrong/credentials/", {"token": fake_tokens[2]}, format="json")
    assert response.status_code == 200
    keep(response.content.decode())

    # Health, push and status write-back against reachable, unreachable and unauthorized clusters.
    results = {c.name: check_cluster_health(c.pk) for c in Cluster.objects.all()}
    keep(results)
    health = {name: result for name, result in results.items() if result is not None}
    assert health.keys() == results.keys()  # None only for a cluster that no longer exists
    assert health["alpha"].reachable and health["beta"].reachable
    assert not health["gone"].reachable and "connection refused" in health["gone"].error
    assert not health["wrong"].reachable and "HTTP 401" in health["wrong"].error
    name = f"leak-{uuid.uuid4().hex[:6]}"
    revision = publish(name, callbacks=lambda execute: django_capture_on_commit_callbacks(execute=False))
    from sidecarhub.models import SidecarSet

    with django_capture_on_commit_callbacks(execute=False):
        create_target(
            sidecarset_id=SidecarSet.objects.get(name=name).pk,
            cluster_selector={"matchLabels": {"leak": "yes"}},
        )
    for cluster in Cluster.objects.all():
        apply_revision(revision.pk, cluster.pk)
    states = dict(
        SidecarSetPlacement.objects.filter(sidecarset_name=name).values_list("cluster__name", "state")
    )
    assert states == {"alpha": "applied", "beta": "applied", "gone": "failed", "wrong": "failed"}
    for cluster in Cluster.objects.all():
        keep(write_back_status(cluster.pk))
        try:
            with open_kube_client(cluster) as kube:
                keep(kube)
                keep(kube.version())
                kube.get_cluster_object("sidecarhub.io", "v1beta1", "sidecarsets", "missing-" + name)
                kube.delete_cluster_object("sidecarhub.io", "v1beta1", "nothings", "x")
        except KubeError as exc:
            assert isinstance(exc, ClusterUnreachable | ClusterApiError)
            keep(str(exc))
            keep(repr(exc))

    # Every API page.
    for url in (
        "/api/v1/clusters/",
        "/api/v1/cluster-audit-events/",
        "/api/v1/sidecarset-placements/",
        "/api/v1/schema/",
    ):
        response = api.get(url)
        assert response.status_code == 200
        keep(response.content.decode())
    for cluster in Cluster.objects.all():
        keep(api.get(f"/api/v1/clusters/{cluster.name}/").content.decode())
        keep(api.post(f"/api/v1/clusters/{cluster.name}/check/").content.decode())

    # Every admin page, and an admin credential change.
    from django.contrib.auth.models import User

    browser = Client()
    browser.force_login(User.objects.create_superuser("root", password="pw-root-123"))
    pages = [
        "/admin/clusters/cluster/",
        "/admin/clusters/cluster/add/",
        "/admin/clusters/clusterauditevent/",
        "/admin/clusters/sidecarsetplacement/",
        "/admin/clusters/sidecarsettarget/",
        "/admin/sidecarhub/changerecord/",
    ]
    for cluster in Cluster.objects.all():
        pages += [
            f"/admin/clusters/cluster/{cluster.pk}/change/",
            f"/admin/clusters/cluster/{cluster.pk}/history/",
        ]
    for event in ClusterAuditEvent.objects.all():
        pages.append(f"/admin/clusters/clusterauditevent/{event.pk}/change/")
    for url in pages:
        page = browser.get(url)
        assert page.status_code in (200, 404), (url, page.status_code)
        keep(page.content.decode())
    gone = Cluster.objects.get(name="gone")
    page = browser.post(
        f"/admin/clusters/cluster/{gone.pk}/change/",
        {
            "api_server_url": "https://127.0.0.1:2",
            "ca_bundle": "",
            "labels": "{}",
            "token": fake_tokens[0],
            "webhook_url": "",
            "webhook_failure_policy": "Ignore",
            "webhook_timeout_seconds": "10",
            "tls_server_name": "",
        },
    )
    assert page.status_code == 302, page.content.decode()[:2000]
    keep(browser.get(f"/admin/clusters/cluster/{gone.pk}/change/").content.decode())

    # CLI output, including failures.
    for args in (["list"], ["check", "alpha"], ["check"], ["rotate-key"]):
        out, err = io.StringIO(), io.StringIO()
        try:
            call_command("sidecarhub", "cluster", *args, stdout=out, stderr=err)
        except CommandError as exc:
            keep(str(exc))
        keep(out.getvalue() + err.getvalue())
    with pytest.raises(CommandError) as failed:
        call_command(
            "sidecarhub",
            "cluster",
            "add",
            "--name",
            "alpha",
            "--kubeconfig",
            str(alpha_k8s.kubeconfig),
            stdout=io.StringIO(),
        )
    keep(str(failed.value))
    captured = capsys.readouterr()
    keep(captured.out + captured.err)

    # The logs and the database's other columns.
    keep(
        "\n".join(record.getMessage() + repr(record.args) + str(record.exc_info) for record in caplog.records)
    )
    keep(caplog.text)
    for model in apps.get_models():
        for row in model.objects.all().values():  # type: ignore[attr-defined]  # stubs: Model declares no objects
            row.pop("credentials_ciphertext", None) if model is Cluster else None
            outputs.append(json.dumps(row, default=str))
    assert Cluster.objects.filter(credentials_ciphertext__contains=alpha_token[:12]).count() == 0

    everything = "\n".join(outputs)
    assert "gone" in everything and "HTTP 401" in everything  # we did capture the failures
    for secret in secrets:
        assert secret not in everything, f"a credential ({len(secret)} chars) leaked"


def test_client_certificate_temp_files_are_private_and_removed(tmp_path: Path) -> None:
    from clusters.kube import KubeClient

    kube = KubeClient(
        cluster_name="c",
        api_server_url="https://c.example:6443",
        ca_bundle="",
        credentials=ClusterCredentials(client_certificate_pem=CERT, client_key_pem=KEY),
    )
    key_file = kube.api_client.configuration.key_file
    assert key_file and oct(os.stat(key_file).st_mode & 0o777) == "0o600"
    assert oct(os.stat(os.path.dirname(key_file)).st_mode & 0o777) == "0o700"
    kube.close()
    assert not os.path.exists(os.path.dirname(key_file))
    assert PlacementState.APPLIED  # module imported for the leak test
