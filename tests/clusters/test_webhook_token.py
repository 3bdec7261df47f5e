"""The admission webhook token of a cluster (issue 15): set or generated through the API, the
admin and the CLI; stored only encrypted, shown once, never in the cluster's other answers, the
audit or the change log; re-encrypted by key rotation; the apiserver's files printed on demand."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from clusters.admission import invalidate_active_revisions, review_pod_admission
from clusters.admission_auth import webhook_credential
from clusters.admission_config import webhook_user_name
from clusters.choices import AuditAction
from clusters.crypto import ClusterCredentials, decrypt_secret
from clusters.models import Cluster, ClusterAuditEvent
from clusters.services import (
    DEFAULT_WEBHOOK_TOKEN_GRACE_SECONDS,
    register_cluster,
    set_webhook_token,
    webhook_token_of,
)
from sidecarhub.models import ChangeRecord
from tests.clusters.conftest import make_user

pytestmark = pytest.mark.django_db

HUB_URL = "https://hub.example.com:8443"


@pytest.fixture
def cluster(settings: Any) -> Cluster:
    settings.SIDECARHUB_WEBHOOK_URL = HUB_URL
    return register_cluster(
        name="c1", api_server_url="https://127.0.0.1:6443", credentials=ClusterCredentials(token="t0ken-c1")
    )


def _everything_stored_about(cluster: Cluster) -> str:
    """Every column of the cluster, its audit rows and its change log, as text."""
    row = Cluster.objects.filter(pk=cluster.pk).values().get()
    audit = list(ClusterAuditEvent.objects.filter(cluster=cluster).values())
    rows = ChangeRecord.objects.filter(object_id=str(cluster.pk))
    changes = list(rows.values("object_repr", "before", "after", "message"))
    return repr((row, audit, changes))


def _files(kubeconfig: str) -> dict[str, Any]:
    return yaml.safe_load(kubeconfig)


def test_new_clusters_require_the_token_and_the_api_generates_it_once(cluster: Cluster) -> None:
    assert cluster.webhook_auth_required and not cluster.webhook_token_ciphertext
    api = APIClient()
    api.force_authenticate(make_user("ops", "clusters.change_cluster", "clusters.view_cluster"))
    response = api.post("/api/v1/clusters/c1/webhook-token/", format="json")
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    answer = response.json()
    token = answer["token"]
    assert answer["generated"] is True and answer["webhook_auth_required"] is True and len(token) >= 40
    # The apiserver's files: the AdmissionConfiguration names the kubeconfig, whose user entry is
    # the webhook's host:port and holds the token.
    configuration = yaml.safe_load(answer["admission_configuration"])
    plugin = configuration["plugins"][0]
    assert (configuration["kind"], plugin["name"]) == ("AdmissionConfiguration", "MutatingAdmissionWebhook")
    assert plugin["configuration"]["kubeConfigFile"] == answer["kubeconfig_path"]
    assert _files(answer["kubeconfig"])["users"] == [
        {"name": "hub.example.com:8443", "user": {"token": token}}
    ]

    stored = Cluster.objects.get(pk=cluster.pk)
    assert decrypt_secret(stored.webhook_token_ciphertext) == token
    assert token not in _everything_stored_about(cluster)  # only the ciphertext, nowhere in clear
    shown = api.get("/api/v1/clusters/c1/").json()
    assert token not in repr(shown) and shown["webhook_token_updated_at"] is not None
    assert "webhook_token_ciphertext" not in shown
    audit = ClusterAuditEvent.objects.get(cluster=cluster, action=AuditAction.WEBHOOK_TOKEN_SET)
    # The first token replaces none: no previous token is accepted.
    assert audit.actor_name == "ops"
    assert audit.detail == {"generated": True, "previous_token_accepted_until": None}
    assert answer["previous_token_accepted_until"] is None
    assert shown["webhook_previous_token_accepted_until"] is None
    assert ChangeRecord.objects.filter(object_id=str(cluster.pk), message="webhook token generated").exists()

    # A given token replaces it (the answer echoes it, as it is in the kubeconfig); bad ones are 400.
    response = api.post(
        "/api/v1/clusters/c1/webhook-token/", {"token": "given-token-0123456789"}, format="json"
    )
    assert response.status_code == 200 and response.json()["generated"] is False
    assert webhook_token_of(Cluster.objects.get(pk=cluster.pk)) == "given-token-0123456789"
    for bad in ("short", "has space-0123456789", "x" * 513):
        response = api.post("/api/v1/clusters/c1/webhook-token/", {"token": bad}, format="json")
        assert response.status_code == 400, bad
        assert [error["path"] for error in response.json()["errors"]] == ["token"]
        assert bad not in response.content.decode()
    # Not required: a PATCH, recorded in the change log's snapshot.
    response = api.patch("/api/v1/clusters/c1/", {"webhook_auth_required": False}, format="json")
    assert response.status_code == 200 and response.json()["webhook_auth_required"] is False


def test_a_cluster_without_a_webhook_url_gets_the_token_but_no_files(settings: Any) -> None:
    settings.SIDECARHUB_WEBHOOK_URL = ""
    register_cluster(
        name="c2", api_server_url="https://127.0.0.1:6443", credentials=ClusterCredentials(token="t")
    )
    api = APIClient()
    api.force_authenticate(make_user("ops", "clusters.change_cluster"))
    answer = api.post("/api/v1/clusters/c2/webhook-token/", format="json").json()
    assert answer["token"] and answer["kubeconfig"] is None and answer["admission_configuration"] is None


def test_cli_sets_requires_and_prints_the_apiserver_files(
    cluster: Cluster, tmp_path: Path, cli_admin: Any
) -> None:
    out = io.StringIO()
    call_command("sidecarhub", "cluster", "webhook-auth", "c1", "--no-require", stdout=out)
    assert "webhook token not required" in out.getvalue() and "token none" in out.getvalue()
    assert not Cluster.objects.get(pk=cluster.pk).webhook_auth_required

    token_file = tmp_path / "token"
    token_file.write_text("from-a-file-0123456789\n")
    out = io.StringIO()
    call_command(
        "sidecarhub",
        "cluster",
        "webhook-auth",
        "c1",
        "--require",
        "--token-file",
        str(token_file),
        stdout=out,
    )
    assert "from-a-file-0123456789" not in out.getvalue()  # set, never printed
    stored = Cluster.objects.get(pk=cluster.pk)
    assert stored.webhook_auth_required and webhook_token_of(stored) == "from-a-file-0123456789"

    out = io.StringIO()
    call_command(
        "sidecarhub",
        "cluster",
        "webhook-auth",
        "c1",
        "--print-config",
        "--kubeconfig-path",
        "/etc/k/w.yaml",
        stdout=out,
    )
    printed = out.getvalue()
    assert "kubeConfigFile: /etc/k/w.yaml" in printed and "token: from-a-file-0123456789" in printed

    out = io.StringIO()
    call_command("sidecarhub", "cluster", "webhook-auth", "c1", "--generate", stdout=out)
    new = webhook_token_of(Cluster.objects.get(pk=cluster.pk))
    assert new != "from-a-file-0123456789"
    assert f"new webhook token (shown once): {new}" in out.getvalue()
    assert f"- name: {webhook_user_name(HUB_URL)}" in out.getvalue()

    token_file.write_text("bad token")
    with pytest.raises(CommandError, match="token: must be 16 to 512"):
        call_command(
            "sidecarhub",
            "cluster",
            "webhook-auth",
            "c1",
            "--token-file",
            str(token_file),
            stdout=io.StringIO(),
        )
    with pytest.raises(CommandError, match="cannot be read"):
        call_command(
            "sidecarhub",
            "cluster",
            "webhook-auth",
            "c1",
            "--token-file",
            str(tmp_path / "nope"),
            stdout=io.StringIO(),
        )
    register_cluster(
        name="c3", api_server_url="https://127.0.0.1:6443", credentials=ClusterCredentials(token="t")
    )
    with pytest.raises(CommandError, match="no webhook token"):
        call_command("sidecarhub", "cluster", "webhook-auth", "c3", "--print-config", stdout=io.StringIO())


def test_admin_generates_tokens_on_a_page_shown_once_and_sets_a_given_one(
    cluster: Cluster, admin_user: User
) -> None:
    client = Client()
    client.force_login(admin_user)
    response = client.post(
        "/admin/clusters/cluster/",
        {"action": "generate_webhook_tokens", "_selected_action": [str(cluster.pk)]},
    )
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    token = webhook_token_of(Cluster.objects.get(pk=cluster.pk))
    page = response.content.decode()
    assert token in page and "hub.example.com:8443" in page and "MutatingAdmissionWebhook" in page
    # The change form never renders it back; a token typed into it is set (and validated).
    change = f"/admin/clusters/cluster/{cluster.pk}/change/"
    assert token not in client.get(change).content.decode()
    form = {
        "api_server_url": cluster.api_server_url,
        "labels": "{}",
        "webhook_url": "",
        "webhook_failure_policy": "Ignore",
        "webhook_timeout_seconds": "10",
        "webhook_auth_required": "on",
    }
    response = client.post(change, {**form, "webhook_token": "too short"})
    assert response.status_code == 200 and "must be 16 to 512 characters" in response.content.decode()
    assert webhook_token_of(Cluster.objects.get(pk=cluster.pk)) == token
    response = client.post(change, {**form, "webhook_token": "typed-in-admin-0123456789"})
    assert response.status_code == 302
    assert webhook_token_of(Cluster.objects.get(pk=cluster.pk)) == "typed-in-admin-0123456789"


def test_key_rotation_reencrypts_the_webhook_token(settings: Any, cli_admin: Any) -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.SIDECARHUB_ENCRYPTION_KEYS = [old_key]
    cluster = register_cluster(
        name="rot", api_server_url="https://127.0.0.1:6443", credentials=ClusterCredentials(token="t")
    )
    set_webhook_token(cluster.pk, token="replaced-by-rotation-0123456789")
    set_webhook_token(cluster.pk, token="rotate-me-0123456789")  # the first stays accepted a while
    before = Cluster.objects.get(pk=cluster.pk)
    settings.SIDECARHUB_ENCRYPTION_KEYS = [new_key, old_key]
    call_command("sidecarhub", "cluster", "rotate-key", stdout=io.StringIO())
    settings.SIDECARHUB_ENCRYPTION_KEYS = [new_key]  # the old key retired
    after = Cluster.objects.get(pk=cluster.pk)
    assert after.webhook_token_ciphertext != before.webhook_token_ciphertext
    assert webhook_token_of(after) == "rotate-me-0123456789"
    # The replaced token, still accepted until its deadline, is re-encrypted too (its deadline kept).
    assert after.webhook_previous_token_ciphertext != before.webhook_previous_token_ciphertext
    assert decrypt_secret(after.webhook_previous_token_ciphertext) == "replaced-by-rotation-0123456789"
    assert after.webhook_previous_token_expires_at == before.webhook_previous_token_expires_at
    invalidate_active_revisions()
    assert webhook_credential(after).previous_digest is not None  # the admission path reads it


# --- rotation with an overlap: the replaced token stays accepted until its deadline --------------


def _accepts(cluster_name: str, token: str) -> bool:
    """Whether the admission endpoint answers a call presenting ``token`` (not the 401)."""
    invalidate_active_revisions()  # re-read the cluster's row now, not after the check interval
    answer = review_pod_admission(cluster_name, json.dumps(_REVIEW).encode(), f"Bearer {token}")
    return answer.status != 401


_REVIEW = {
    "apiVersion": "admission.k8s.io/v1",
    "kind": "AdmissionReview",
    "request": {
        "uid": "0b7e5c1e-6f55-4a59-8c1a-3a0f6f0e0001",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "default",
        "operation": "DELETE",  # answered without looking at a pod: only the token matters here
    },
}


def test_a_rotation_keeps_the_replaced_token_accepted_until_its_deadline(cluster: Cluster) -> None:
    api = APIClient()
    api.force_authenticate(make_user("ops", "clusters.change_cluster", "clusters.view_cluster"))
    old = "the-old-token-0123456789"
    set_webhook_token(cluster.pk, token=old)
    assert _accepts("c1", old)

    before = timezone.now()
    answer = api.post("/api/v1/clusters/c1/webhook-token/", format="json").json()
    new = answer["token"]
    until = datetime.fromisoformat(answer["previous_token_accepted_until"])
    default = timedelta(seconds=DEFAULT_WEBHOOK_TOKEN_GRACE_SECONDS)
    assert before + default <= until <= timezone.now() + default
    # Both work during the overlap: the apiserver keeps injecting until it has the new files.
    assert _accepts("c1", new) and _accepts("c1", old)
    assert not _accepts("c1", "neither-of-them-0123456789")
    shown = api.get("/api/v1/clusters/c1/").json()
    assert datetime.fromisoformat(shown["webhook_previous_token_accepted_until"]) == until
    # Stored only encrypted; the audit and the change log say until when, never a value.
    stored = Cluster.objects.get(pk=cluster.pk)
    assert decrypt_secret(stored.webhook_previous_token_ciphertext) == old
    everything = _everything_stored_about(cluster)
    assert old not in everything and new not in everything
    assert old not in repr(shown) and old not in repr(answer)
    audit = ClusterAuditEvent.objects.filter(action=AuditAction.WEBHOOK_TOKEN_SET).latest("id")
    assert audit.detail == {"generated": True, "previous_token_accepted_until": until.isoformat()}
    change = ChangeRecord.objects.filter(object_id=str(cluster.pk)).latest("id")
    assert change.before is not None and change.after is not None
    assert change.before["webhook_previous_token_expires_at"] is None
    assert datetime.fromisoformat(change.after["webhook_previous_token_expires_at"]) == until

    # The next rotation: only the token it replaces is accepted besides the new one.
    newest = "the-newest-token-0123456789"
    answer = api.post(
        "/api/v1/clusters/c1/webhook-token/", {"token": newest, "grace_seconds": 600}, format="json"
    ).json()
    until = datetime.fromisoformat(answer["previous_token_accepted_until"])
    assert timedelta(seconds=590) < until - timezone.now() <= timedelta(seconds=600)
    assert _accepts("c1", newest) and _accepts("c1", new) and not _accepts("c1", old)

    # grace_seconds 0: the replaced one (and any earlier) is refused at once.
    api.post("/api/v1/clusters/c1/webhook-token/", {"token": old, "grace_seconds": 0}, format="json")
    assert _accepts("c1", old) and not _accepts("c1", newest) and not _accepts("c1", new)
    assert api.get("/api/v1/clusters/c1/").json()["webhook_previous_token_accepted_until"] is None
    for bad in (-1, DEFAULT_WEBHOOK_TOKEN_GRACE_SECONDS * 31, "soon"):
        response = api.post("/api/v1/clusters/c1/webhook-token/", {"grace_seconds": bad}, format="json")
        assert response.status_code == 400, bad
        assert [error["path"] for error in response.json()["errors"]] == ["grace_seconds"]
    assert webhook_token_of(Cluster.objects.get(pk=cluster.pk)) == old  # nothing changed
    # The same token set again replaces nothing: no previous token appears.
    set_webhook_token(cluster.pk, token=old)
    assert Cluster.objects.get(pk=cluster.pk).webhook_previous_token_ciphertext == ""


def test_the_replaced_token_can_be_revoked_before_its_deadline(cluster: Cluster) -> None:
    api = APIClient()
    api.force_authenticate(make_user("ops", "clusters.change_cluster", "clusters.view_cluster"))
    set_webhook_token(cluster.pk, token="the-old-token-0123456789")
    new = set_webhook_token(cluster.pk)
    assert _accepts("c1", "the-old-token-0123456789")

    response = api.post("/api/v1/clusters/c1/webhook-token/revoke-previous/", format="json")
    assert response.status_code == 200 and response.json() == {"cluster": "c1", "revoked": True}
    assert not _accepts("c1", "the-old-token-0123456789") and _accepts("c1", new)
    stored = Cluster.objects.get(pk=cluster.pk)
    assert stored.webhook_previous_token_ciphertext == "" and stored.webhook_previous_token_expires_at is None
    audit = ClusterAuditEvent.objects.get(action=AuditAction.WEBHOOK_PREVIOUS_TOKEN_REVOKED)
    assert audit.actor_name == "ops" and audit.detail == {}
    assert ChangeRecord.objects.filter(
        object_id=str(cluster.pk), message="previous webhook token revoked"
    ).exists()
    # Nothing left to revoke: said, and nothing recorded.
    response = api.post("/api/v1/clusters/c1/webhook-token/revoke-previous/", format="json")
    assert response.json() == {"cluster": "c1", "revoked": False}
    assert ClusterAuditEvent.objects.filter(action=AuditAction.WEBHOOK_PREVIOUS_TOKEN_REVOKED).count() == 1
    # A replaced token past its deadline is refused already; revoking it changes nothing.
    set_webhook_token(cluster.pk, token="yet-another-token-0123456789")
    Cluster.objects.filter(pk=cluster.pk).update(
        webhook_previous_token_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert not _accepts("c1", new)
    assert api.post("/api/v1/clusters/c1/webhook-token/revoke-previous/").json()["revoked"] is False


def test_cli_rotates_with_a_grace_period_and_revokes_the_previous_token(
    cluster: Cluster, cli_admin: Any
) -> None:
    set_webhook_token(cluster.pk, token="the-old-token-0123456789")
    out = io.StringIO()
    call_command(
        "sidecarhub", "cluster", "webhook-auth", "c1", "--generate", "--grace-seconds", "3600", stdout=out
    )
    until = Cluster.objects.get(pk=cluster.pk).previous_webhook_token_accepted_until(timezone.now())
    assert (
        until is not None and f"previous token accepted until {until:%Y-%m-%d %H:%M:%S} UTC" in out.getvalue()
    )
    assert "the-old-token-0123456789" not in out.getvalue()  # the replaced token is never printed
    out = io.StringIO()
    call_command("sidecarhub", "cluster", "webhook-auth", "c1", "--revoke-previous", stdout=out)
    assert "previous token" not in out.getvalue()
    assert Cluster.objects.get(pk=cluster.pk).webhook_previous_token_ciphertext == ""
    out = io.StringIO()
    call_command("sidecarhub", "cluster", "webhook-auth", "c1", "--revoke-previous", stdout=out)
    assert "no previous webhook token is accepted; nothing revoked" in out.getvalue()
    with pytest.raises(CommandError, match="--grace-seconds applies to a new token"):
        call_command(
            "sidecarhub", "cluster", "webhook-auth", "c1", "--grace-seconds", "5", stdout=io.StringIO()
        )
    with pytest.raises(CommandError, match="grace_seconds: must be 0"):
        call_command(
            "sidecarhub",
            "cluster",
            "webhook-auth",
            "c1",
            "--generate",
            "--grace-seconds",
            "-1",
            stdout=io.StringIO(),
        )


def test_admin_shows_until_when_the_previous_token_works_and_revokes_it(
    cluster: Cluster, admin_user: User
) -> None:
    client = Client()
    client.force_login(admin_user)
    set_webhook_token(cluster.pk, token="the-old-token-0123456789")
    page = client.post(
        "/admin/clusters/cluster/",
        {"action": "generate_webhook_tokens", "_selected_action": [str(cluster.pk)]},
    ).content.decode()
    assert "Previous token accepted until" in page and "the-old-token-0123456789" not in page
    change = client.get(f"/admin/clusters/cluster/{cluster.pk}/change/").content.decode()
    assert "accepted until" in change and "the-old-token-0123456789" not in change
    response = client.post(
        "/admin/clusters/cluster/",
        {"action": "revoke_previous_webhook_tokens", "_selected_action": [str(cluster.pk)]},
        follow=True,
    )
    assert "Previous webhook token revoked: c1" in response.content.decode()
    assert Cluster.objects.get(pk=cluster.pk).webhook_previous_token_ciphertext == ""
    change = client.get(f"/admin/clusters/cluster/{cluster.pk}/change/").content.decode()
    assert "none accepted" in change
    # A token typed into the form, with its own grace period.
    form = {
        "api_server_url": cluster.api_server_url,
        "labels": "{}",
        "webhook_url": "",
        "webhook_failure_policy": "Ignore",
        "webhook_timeout_seconds": "10",
        "webhook_auth_required": "on",
        "webhook_token": "typed-in-admin-0123456789",
        "webhook_token_grace_seconds": "120",
    }
    assert client.post(f"/admin/clusters/cluster/{cluster.pk}/change/", form).status_code == 302
    until = Cluster.objects.get(pk=cluster.pk).previous_webhook_token_accepted_until(timezone.now())
    assert until is not None and until - timezone.now() <= timedelta(seconds=120)
