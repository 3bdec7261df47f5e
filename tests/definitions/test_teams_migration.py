"""The data migrations of issue 16 item 5: free-text owner teams become ``Team`` rows, and the
ready-made role groups exist after migrating."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from sidecarhub.models import SidecarSet, Team
from sidecarhub.roles import ROLES

BEFORE_TEAMS = [
    ("sidecarhub", "0003_console_verbose_names"),
    ("clusters", "0007_console_verbose_names"),
]


def _migrate(targets: list[tuple[str, str]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection)  # a fresh loader sees what is applied now


@pytest.mark.django_db(transaction=True)
def test_owner_team_texts_become_teams_and_the_roles_exist() -> None:
    executor = _migrate(BEFORE_TEAMS)
    old = executor.loader.project_state(BEFORE_TEAMS).apps.get_model("sidecarhub", "SidecarSet")
    for name, text in (("one", "payments"), ("two", " payments "), ("three", "search"), ("four", "")):
        old.objects.create(name=name, owner_team=text, spec={})
    _migrate(executor.loader.graph.leaf_nodes())

    assert set(Team.objects.values_list("name", flat=True)) == {"payments", "search"}
    owners = dict(SidecarSet.objects.values_list("name", "owner_team__name"))
    assert owners == {"one": "payments", "two": "payments", "three": "search", "four": None}
    assert set(Group.objects.values_list("name", flat=True)) >= set(ROLES)
