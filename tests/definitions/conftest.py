"""Builders for the definitions tests: documents, users with exact permissions, API clients."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from django.contrib.auth.models import Permission, User
from rest_framework.test import APIClient

from sidecarhub import services
from sidecarhub.models import SidecarSet, Team

ALL_SIDECARSET_PERMISSIONS = (
    "view_sidecarset",
    "add_sidecarset",
    "change_sidecarset",
    "delete_sidecarset",
    "publish_sidecarset",
)


def make_document(
    name: str = "mesh", image: str = "envoy:1.0", container: str = "envoy", app: str = "web", **spec: Any
) -> dict[str, Any]:
    """A valid v1beta1 SidecarSet document; ``spec`` keys replace the defaults."""
    document: dict[str, Any] = {
        "apiVersion": "apps.kruise.io/v1beta1",
        "kind": "SidecarSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": app}},
            "containers": [{"name": container, "image": image}],
        },
    }
    document["spec"].update(copy.deepcopy(spec))
    return document


def as_yaml(*documents: dict[str, Any]) -> str:
    return "".join("---\n" + yaml.safe_dump(document, sort_keys=False) for document in documents)


# The teams these tests give SidecarSets to; their users are members of all of them (the team
# rules themselves are tested in test_teams.py).
TEST_TEAMS = ("platform", "t", "a", "b", "x", "sre", "mesh-team")


def make_user(username: str, *codenames: str, staff: bool = False) -> User:
    """A user holding exactly the given ``sidecarhub`` permissions, member of ``TEST_TEAMS``."""
    user = User.objects.create_user(username=username, password="pw-not-used-1234", is_staff=staff)
    for name in TEST_TEAMS:
        Team.objects.get_or_create(name=name)[0].members.add(user)
    if codenames:
        user.user_permissions.set(
            Permission.objects.filter(content_type__app_label="sidecarhub", codename__in=codenames)
        )
    return User.objects.get(pk=user.pk)  # fresh permission cache


@pytest.fixture
def author(db: None) -> User:
    return make_user("alice", *ALL_SIDECARSET_PERMISSIONS)


@pytest.fixture
def reviewer(db: None) -> User:
    return make_user("bob", *ALL_SIDECARSET_PERMISSIONS)


@pytest.fixture
def client_for() -> Callable[[User | None], APIClient]:
    def build(user: User | None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        return client

    return build


@pytest.fixture
def published_mesh(author: User) -> SidecarSet:
    """``mesh`` with revisions 1 (envoy:1.0) and 2 (envoy:1.1), and an unpublished envoy:1.2."""
    services.create_sidecarset(make_document(), actor=author, owner_team="platform")
    services.publish_sidecarset("mesh", actor=author, message="first")
    services.update_sidecarset(
        "mesh", source=make_document(image="envoy:1.1"), actor=author, expected_version=1
    )
    services.publish_sidecarset("mesh", actor=author, message="second")
    services.update_sidecarset(
        "mesh", source=make_document(image="envoy:1.2"), actor=author, expected_version=2
    )
    return SidecarSet.objects.get(name="mesh")
