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
