"""Models: revisions are immutable and numbered uniquely; the stored definition is the core's."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from sidecarhub import services
from sidecarhub.models import SidecarSet, SidecarSetRevision
from sidecarhub.querysets import ImmutableRevisionError, parse_label_selector
from sidecarhub.sidecarset import parse_sidecarset

from .conftest import make_document

pytestmark = pytest.mark.django_db


def test_revision_save_on_stored_row_is_refused(published_mesh: SidecarSet) -> None:
    revision = published_mesh.revisions.get(number=1)
    revision.message = "rewritten history"
    with pytest.raises(ImmutableRevisionError):
        revision.save()
    assert SidecarSetRevision.objects.get(pk=revision.pk).message == "first"


def test_revision_queryset_update_is_refused(published_mesh: SidecarSet) -> None:
    with pytest.raises(ImmutableRevisionError):
        SidecarSetRevision.objects.filter(sidecarset=published_mesh).update(message="x")
    with pytest.raises(ImmutableRevisionError):
        SidecarSetRevision.objects.bulk_update(list(published_mesh.revisions.all()), ["message"])


def test_revision_number_is_unique_per_sidecarset(published_mesh: SidecarSet) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        SidecarSetRevision.objects.create(
            sidecarset=published_mesh,
            number=1,
            name="mesh-1-duplicate",
            revision_hash="0" * 64,
            hash_without_images="0" * 64,
            document={},
            author_name="x",
        )


def test_stored_definition_is_the_cores_canonical_form(author: User) -> None:
    services.create_sidecarset(make_document(), actor=author)
    stored = SidecarSet.objects.get(name="mesh")
    assert stored.to_core() == parse_sidecarset(make_document())
    assert stored.spec["updateStrategy"]["type"] == "RollingUpdate"  # Kruise's default applied
    assert stored.has_unpublished_changes


def test_unpublished_changes_flag(published_mesh: SidecarSet) -> None:
    assert published_mesh.has_unpublished_changes
    services.publish_sidecarset("mesh", actor=None)
    assert not SidecarSet.objects.get(name="mesh").has_unpublished_changes


def test_user_deletion_keeps_author_name(published_mesh: SidecarSet, author: User) -> None:
    author.delete()
    revision = SidecarSetRevision.objects.get(name="mesh-1")
    assert revision.author is None and revision.author_name == "alice"


def test_label_selector_filter(author: User) -> None:
    services.create_sidecarset(
        make_document(name="a", container="a")
        | {"metadata": {"name": "a", "labels": {"tier": "mesh", "team": "x"}}},
        actor=author,
    )
    services.create_sidecarset(
        make_document(name="b", container="b") | {"metadata": {"name": "b", "labels": {"tier": "log"}}},
        actor=author,
    )
    names = lambda selector: list(SidecarSet.objects.with_labels(selector).values_list("name", flat=True))  # noqa: E731
    assert names("tier=mesh") == ["a"]
    assert names("tier") == ["a", "b"]
    assert names("tier,team") == ["a"]
    assert names("tier=nope") == []
    assert parse_label_selector("a=b, c") == [("a", "b"), ("c", None)]
