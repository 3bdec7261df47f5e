"""The CLI verbs: ``register(subparsers)`` for ``sidecarhub cluster``, and the verbs
against a real sandbox cluster (add from the ``-cert`` context, list, check, --replace)."""

from __future__ import annotations

import argparse
import io
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from pytest_django import DjangoCaptureOnCommitCallbacks

from clusters.cli import handle_add, handle_check, handle_list, handle_rotate_key, register
from clusters.models import Cluster
from sandbox.testing import RunningCluster


def test_register_adds_the_cluster_verbs() -> None:
    parser = argparse.ArgumentParser(prog="sidecarhub")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["cluster", "add", "--name", "n", "--kubeconfig", "f", "--context", "c", "--replace"]
    )
    assert (args.handler, args.name, args.kubeconfig, args.context, args.replace) == (
        handle_add,
        "n",
        "f",
        "c",
        True,
    )
    assert parser.parse_args(["cluster", "list"]).handler is handle_list
    assert parser.parse_args(["cluster", "check", "x"]).name == "x"
    assert parser.parse_args(["cluster", "check"]).handler is handle_check
    assert parser.parse_args(["cluster", "rotate-key"]).handler is handle_rotate_key


@pytest.mark.k8s
@pytest.mark.django_db
def test_add_list_check_replace(
    k8s: RunningCluster, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks, cli_admin: Any
) -> None:
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=False):
        call_command(
            "sidecarhub",
            "cluster",
            "add",
            "--name",
            "alpha",
            "--kubeconfig",
            str(k8s.kubeconfig),
            "--context",
            "alpha-cert",
            stdout=out,
        )
    assert "cluster alpha registered" in out.getvalue() and "Client certificate" in out.getvalue()
    with pytest.raises(CommandError, match="already registered"):
        call_command(
            "sidecarhub",
            "cluster",
            "add",
            "--name",
            "alpha",
            "--kubeconfig",
            str(k8s.kubeconfig),
            stdout=io.StringIO(),
        )
    with django_capture_on_commit_callbacks(execute=False):
        call_command(
            "sidecarhub",
            "cluster",
            "add",
            "--name",
            "alpha",
            "--kubeconfig",
            str(k8s.kubeconfig),
            "--replace",
            "--label",
            "env=dev",
            stdout=out,
        )
    assert "cluster alpha updated" in out.getvalue()
    assert Cluster.objects.get(name="alpha").credential_kind == "token"  # current-context uses the token
    out = io.StringIO()
    call_command("sidecarhub", "cluster", "check", "alpha", stdout=out)
    assert "alpha: reachable, v1." in out.getvalue()
    print("\n" + out.getvalue().strip())
    out = io.StringIO()
    call_command("sidecarhub", "cluster", "list", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].split()[:3] == ["NAME", "SERVER", "CREDENTIALS"]
    assert lines[1].split()[0] == "alpha" and "yes" in lines[1] and "env=dev" in lines[1]
    with pytest.raises(CommandError, match="no cluster named"):
        call_command("sidecarhub", "cluster", "check", "nope", stdout=io.StringIO())
    with pytest.raises(CommandError, match="cannot read"):
        call_command(
            "sidecarhub",
            "cluster",
            "add",
            "--name",
            "x",
            "--kubeconfig",
            "/nonexistent",
            stdout=io.StringIO(),
        )


# --- targets ---------------------------------------------------------------------------------------


def target(*argv: str) -> str:
    out = io.StringIO()
    call_command("sidecarhub", "target", *argv, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_target_add_list_remove_as_the_tokens_user(cli_as: Any) -> None:
    from clusters.crypto import ClusterCredentials
    from clusters.models import SidecarSetTarget
    from clusters.services import register_cluster
    from sidecarhub.clitools import EXIT_NOT_FOUND, EXIT_NOT_PERMITTED
    from sidecarhub.models import ChangeRecord
    from sidecarhub.services import create_sidecarset
    from tests.clusters.conftest import make_user, sidecarset_document

    for name in ("prod-eu", "prod-us"):
        register_cluster(
            name=name,
            api_server_url=f"https://{name}.example:6443",
            credentials=ClusterCredentials(token="t"),
        )
    create_sidecarset(sidecarset_document("log"), actor=None)
    cli_as(make_user("placer", "clusters.add_sidecarsettarget", "clusters.view_sidecarsettarget"))

    added = target("add", "log", "--cluster", "prod-eu")
    one = SidecarSetTarget.objects.get(cluster__name="prod-eu")
    assert added == f"target {one.pk}: sidecarset/log -> cluster prod-eu, wave 0\n"
    added = target("add", "log", "--selector", "env=prod,region=us", "--wave", "2")
    two = SidecarSetTarget.objects.exclude(pk=one.pk).get()
    assert two.cluster_selector == {"matchLabels": {"env": "prod", "region": "us"}} and two.wave == 2
    assert (
        ChangeRecord.objects.get(
            content_type__model="sidecarsettarget", object_id=str(two.pk), action="create"
        ).actor_name
        == "placer"
    )

    header, *rows = target("list", "--sidecarset", "log").splitlines()
    assert header.split() == ["ID", "SIDECARSET", "WAVE", "TARGET"]
    assert rows[0].split()[:3] == [str(one.pk), "log", "0"]
    assert rows[1].endswith('clusters matching {"matchLabels": {"env": "prod", "region": "us"}}')

    with pytest.raises(CommandError) as raised:
        target("add", "log", "--cluster", "prod-eu")
    assert "already an explicit target" in str(raised.value)
    with pytest.raises(CommandError) as raised:
        target("add", "nope", "--cluster", "prod-eu")
    assert raised.value.returncode == EXIT_NOT_FOUND and "no SidecarSet named 'nope'" in str(raised.value)
    with pytest.raises(CommandError) as raised:
        target("remove", str(one.pk))
    assert raised.value.returncode == EXIT_NOT_PERMITTED
    assert "lacks clusters.delete_sidecarsettarget" in str(raised.value)

    cli_as(make_user("remover", "clusters.delete_sidecarsettarget"))
    assert target("remove", str(one.pk)) == f"target {one.pk} removed: sidecarset/log -> cluster prod-eu\n"
    assert not SidecarSetTarget.objects.filter(pk=one.pk).exists()
    with pytest.raises(CommandError) as raised:
        target("remove", str(one.pk))
    assert raised.value.returncode == EXIT_NOT_FOUND
