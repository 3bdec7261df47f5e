"""``sidecarhub sidecarset list|get|apply|diff|publish`` and ``sidecarhub token create``:
kubectl-like output, exit codes, all or nothing, and who is acting (the API token's user, with
the API's permissions)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.authtoken.models import Token

from sidecarhub.clitools import EXIT_CONFLICT, EXIT_NOT_FOUND, EXIT_NOT_PERMITTED
from sidecarhub.management.commands.sidecarhub import cli_modules
from sidecarhub.models import ChangeRecord, SidecarSet
from sidecarhub.sidecarset import split_documents

from .conftest import as_yaml, make_document, make_user

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("sidecarhub", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def fails(*args: str) -> CommandError:
    with pytest.raises(CommandError) as caught:
        run(*args)
    return caught.value


def test_apply_creates_configures_and_reports_unchanged(
    tmp_path: Path, author: User, reviewer: User, cli_as: Any
) -> None:
    cli_as(author)
    manifest = tmp_path / "mesh.yaml"
    manifest.write_text(as_yaml(make_document(), make_document(name="logs", container="fluent", app="logs")))
    out, _ = run("sidecarset", "apply", "-f", str(manifest), "--owner-team", "platform")
    assert out == "sidecarset/mesh created\nsidecarset/logs created\n"
    assert SidecarSet.objects.get(name="mesh").created_by == author
    manifest.write_text(
        as_yaml(make_document(image="envoy:2"), make_document(name="logs", container="fluent", app="logs"))
    )
    cli_as(reviewer)
    out, _ = run("sidecarset", "apply", "-f", str(manifest))
    assert out == "sidecarset/mesh configured\n  ~ spec.containers[0].image\nsidecarset/logs unchanged\n"
    # The change log names the token's user, never "system".
    assert ChangeRecord.objects.filter(action="update").get().actor_name == "bob"


def test_apply_errors_exit_non_zero_and_apply_nothing(tmp_path: Path, author: User, cli_as: Any) -> None:
    cli_as(author)
    broken = make_document(name="broken", container="b")
    del broken["spec"]["selector"]
    manifest = tmp_path / "mixed.yaml"
    stream = as_yaml(make_document(), broken)
    manifest.write_text(stream)
    line = split_documents(stream)[1].line
    error = fails("sidecarset", "apply", "-f", str(manifest))
    assert error.returncode == 1
    assert "1 error(s); nothing was applied" in str(error)
    assert f"document 1 (line {line}): spec.selector: required" in str(error)
    assert SidecarSet.objects.count() == 0
    assert "cannot read" in str(fails("sidecarset", "apply", "-f", str(tmp_path / "missing.yaml")))


def test_every_verb_needs_a_valid_token_and_the_apis_permissions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli_as: Any
) -> None:
    manifest = tmp_path / "ok.yaml"
    manifest.write_text(as_yaml(make_document()))
    monkeypatch.delenv("SIDECARHUB_TOKEN", raising=False)
    error = fails("sidecarset", "list")
    assert error.returncode == EXIT_NOT_PERMITTED and "no API token" in str(error)
    monkeypatch.setenv("SIDECARHUB_TOKEN", "not-a-token")
    error = fails("sidecarset", "list")
    assert error.returncode == EXIT_NOT_PERMITTED and "not valid" in str(error)
    assert "not-a-token" not in str(error)

    viewer = cli_as(make_user("viewer", "view_sidecarset"))
    assert "no SidecarSets yet" in run("sidecarset", "list")[0]
    error = fails("sidecarset", "apply", "-f", str(manifest))
    assert error.returncode == EXIT_NOT_PERMITTED
    assert "viewer lacks sidecarhub.add_sidecarset, sidecarhub.change_sidecarset" in str(error)
    assert SidecarSet.objects.count() == 0
    viewer.is_active = False
    viewer.save()
    assert fails("sidecarset", "list").returncode == EXIT_NOT_PERMITTED  # inactive: as the API's 401


def test_list_get_diff_publish(published_mesh: SidecarSet, author: User, cli_as: Any) -> None:
    cli_as(author)
    header, row = run("sidecarset", "list")[0].splitlines()
    assert header.split() == ["NAME", "REVISION", "VERSION", "UNPUBLISHED", "OWNER", "UPDATED"]
    assert row.split()[:5] == ["mesh", "#2", "3", "yes", "platform"]

    out, _ = run("sidecarset", "get", "mesh", "--version", "v1alpha1")
    assert out.startswith("apiVersion: apps.kruise.io/v1alpha1\n") and "image: envoy:1.2" in out
    out, _ = run("sidecarset", "get", "mesh", "--revision", "1")
    assert out.startswith("apiVersion: apps.kruise.io/v1beta1\n") and "image: envoy:1.0" in out
    assert fails("sidecarset", "get", "nope").returncode == EXIT_NOT_FOUND

    out, _ = run("sidecarset", "diff", "mesh")
    assert "--- mesh@2\n+++ mesh@(unpublished)\n" in out
    assert "-    image: envoy:1.1\n+    image: envoy:1.2\n" in out and "change kind: images_only" in out
    out, _ = run("sidecarset", "diff", "mesh", "--from", "1", "--to", "2")
    assert "+    image: envoy:1.1" in out
    assert "go together" in str(fails("sidecarset", "diff", "mesh", "--from", "1"))

    out, _ = run("sidecarset", "publish", "mesh", "-m", "third")
    assert out.startswith("sidecarset/mesh published as revision 3;")
    assert "sidecarhub release status mesh --watch" in out
    assert SidecarSet.objects.get(name="mesh").current_revision.author == author  # type: ignore[union-attr]
    assert run("sidecarset", "diff", "mesh")[0] == "no differences\n"
    again = fails("sidecarset", "publish", "mesh")
    assert again.returncode == EXIT_CONFLICT and "revision 3" in str(again)


def test_token_create_prints_the_token_once_for_admins_only(cli_admin: User, cli_as: Any) -> None:
    alice = make_user("alice", "view_sidecarset")
    out, _ = run("token", "create", "alice")
    key = out.strip()
    assert key == Token.objects.get(user=alice).key and len(key) == 40
    # Issued, not shown again: asking twice refuses, --rotate replaces (the old one stops working).
    error = fails("token", "create", "alice")
    assert error.returncode == EXIT_NOT_FOUND and "--rotate" in str(error) and key not in str(error)
    rotated = run("token", "create", "alice", "--rotate")[0].strip()
    assert rotated != key and Token.objects.get(user=alice).key == rotated
    records = ChangeRecord.objects.filter(object_repr="alice").order_by("id")
    assert [record.message for record in records] == ["API token issued", "API token replaced"]
    assert all(record.actor_name == "cli-admin" for record in records)
    assert not any(key in str(record.before) + str(record.after) + record.message for record in records)
    assert fails("token", "create", "ghost").returncode == EXIT_NOT_FOUND

    cli_as(alice)  # alice's own token works, but she may not issue tokens
    assert run("sidecarset", "list")[0]
    error = fails("token", "create", "alice", "--rotate")
    assert error.returncode == EXIT_NOT_PERMITTED and "authtoken.add_token" in str(error)
    assert Token.objects.get(user=alice).key == rotated


def test_subcommands_come_from_each_apps_cli_module() -> None:
    names = [module.__name__ for module in cli_modules()]
    assert "sidecarhub.cli" in names
    assert all(hasattr(module, "register") for module in cli_modules())


def test_every_verb_names_its_permissions() -> None:
    """Deny by default: a verb without ``permissions`` is refused by the dispatcher; this finds one
    before a person does."""
    from sidecarhub.management.commands.sidecarhub import Command

    parser = Command().create_parser("", "sidecarhub")
    missing = []

    def walk(current: Any, path: tuple[str, ...]) -> None:
        actions = [action for action in current._actions if action.__class__.__name__ == "_SubParsersAction"]
        if not actions:
            if current.get_default("permissions") is None or current.get_default("handler") is None:
                missing.append(" ".join(path))
            return
        for name, child in actions[0].choices.items():
            walk(child, (*path, name))

    walk(parser, ())
    assert missing == []
