"""``manage.py sidecarhub apply|export``: kubectl-like output, exit codes, all or nothing."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from sidecarhub.management.commands.sidecarhub import cli_modules
from sidecarhub.models import ChangeRecord, SidecarSet
from sidecarhub.sidecarset import split_documents

from .conftest import as_yaml, make_document

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("sidecarhub", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_apply_creates_configures_and_reports_unchanged(tmp_path: Path, author: User) -> None:
    manifest = tmp_path / "mesh.yaml"
    manifest.write_text(as_yaml(make_document(), make_document(name="logs", container="fluent", app="logs")))
    out, _ = run("apply", "-f", str(manifest), "--actor", "alice", "--owner-team", "platform")
    assert out == "sidecarset/mesh created\nsidecarset/logs created\n"
    assert SidecarSet.objects.get(name="mesh").created_by == author
    manifest.write_text(
        as_yaml(make_document(image="envoy:2"), make_document(name="logs", container="fluent", app="logs"))
    )
    out, _ = run("apply", "-f", str(manifest))
    assert out == "sidecarset/mesh configured\n  ~ spec.containers[0].image\nsidecarset/logs unchanged\n"
    assert ChangeRecord.objects.filter(action="update").get().actor_name == "system"


def test_apply_errors_exit_non_zero_and_apply_nothing(tmp_path: Path) -> None:
    broken = make_document(name="broken", container="b")
    del broken["spec"]["selector"]
    manifest = tmp_path / "mixed.yaml"
    stream = as_yaml(make_document(), broken)
    manifest.write_text(stream)
    line = split_documents(stream)[1].line
    with pytest.raises(CommandError) as caught:
        run("apply", "-f", str(manifest))
    assert caught.value.returncode == 1
    message = str(caught.value)
    assert "1 error(s); nothing was applied" in message
    assert f"document 1 (line {line}): spec.selector: required" in message
    assert SidecarSet.objects.count() == 0


def test_apply_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="cannot read"):
        run("apply", "-f", str(tmp_path / "missing.yaml"))
    manifest = tmp_path / "ok.yaml"
    manifest.write_text(as_yaml(make_document()))
    with pytest.raises(CommandError, match="no user named 'ghost'"):
        run("apply", "-f", str(manifest), "--actor", "ghost")
    assert SidecarSet.objects.count() == 0


def test_export(published_mesh: SidecarSet) -> None:
    out, _ = run("export", "mesh", "--version", "v1alpha1")
    assert out.startswith("apiVersion: apps.kruise.io/v1alpha1\n") and "image: envoy:1.2" in out
    out, _ = run("export", "mesh", "--revision", "1")
    assert out.startswith("apiVersion: apps.kruise.io/v1beta1\n") and "image: envoy:1.0" in out
    with pytest.raises(CommandError, match="not found") as caught:
        run("export", "nope")
    assert caught.value.returncode == 1


def test_subcommands_come_from_each_apps_cli_module() -> None:
    names = [module.__name__ for module in cli_modules()]
    assert "sidecarhub.cli" in names
    assert all(hasattr(module, "register") for module in cli_modules())


def test_apply_names_an_unknown_owner_team_and_writes_nothing(tmp_path: Path) -> None:
    manifest = tmp_path / "mesh.yaml"
    manifest.write_text(as_yaml(make_document()))
    with pytest.raises(CommandError, match="owner_team: no team named 'nope'"):
        run("apply", "-f", str(manifest), "--owner-team", "nope")
    assert not SidecarSet.objects.exists()
