"""Services: every write validates through the core, guards lost updates, and writes its history."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.db import transaction

from sidecarhub import services
from sidecarhub.choices import ApplyOutcome, ChangeAction
from sidecarhub.models import ChangeRecord, SidecarSet, SidecarSetRevision, Team
from sidecarhub.services import (
    ImportInvalid,
    NothingToPublish,
    SidecarSetAlreadyExists,
    SidecarSetInvalid,
    StaleVersion,
)
from sidecarhub.sidecarset import (
    ChangeKind,
    hash_without_images,
    parse_sidecarset,
    read_sidecarset,
    revision_hash,
)
from sidecarhub.signals import revision_published, sidecarset_deleted

from .conftest import as_yaml, make_document

pytestmark = pytest.mark.django_db


def counts() -> tuple[int, int, int]:
    return SidecarSet.objects.count(), SidecarSetRevision.objects.count(), ChangeRecord.objects.count()


@pytest.fixture
def received() -> Any:
    """Collect (signal name, kwargs) of revision_published and sidecarset_deleted."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def on_published(sender: Any, **kwargs: Any) -> None:
        calls.append(("published", kwargs))

    def on_deleted(sender: Any, **kwargs: Any) -> None:
        calls.append(("deleted", kwargs))

    revision_published.connect(on_published, dispatch_uid="test-published")
    sidecarset_deleted.connect(on_deleted, dispatch_uid="test-deleted")
    yield calls
    revision_published.disconnect(dispatch_uid="test-published")
    sidecarset_deleted.disconnect(dispatch_uid="test-deleted")


# --- create / update / delete --------------------------------------------------------------------


def test_create_stores_canonical_form_and_logs_the_change(author: User) -> None:
    created = services.create_sidecarset(
        make_document(), actor=author, owner_team="platform", request_id="req-1"
    )
    assert created.owner_team is not None
    assert (created.name, created.owner_team.name, created.version, created.created_by) == (
        "mesh",
        "platform",
        1,
        author,
    )
    record = ChangeRecord.objects.get()
    assert (record.action, record.actor, record.actor_name, record.request_id) == (
        ChangeAction.CREATE,
        author,
        "alice",
        "req-1",
    )
    assert record.changed_object == created and record.before is None
    assert record.after is not None
    assert record.after["document"] == created.to_document()


def test_create_invalid_raises_every_error_and_saves_nothing(author: User) -> None:
    document = make_document()
    del document["spec"]["selector"]
    document["spec"]["containers"][0]["image"] = ""
    with pytest.raises(SidecarSetInvalid) as caught:
        services.create_sidecarset(document, actor=author)
    assert [error.path for error in caught.value.errors] == ["spec.selector", "spec.containers[0].image"]
    assert counts() == (0, 0, 0)


def test_create_twice_is_refused(author: User) -> None:
    services.create_sidecarset(make_document(), actor=author)
    with pytest.raises(SidecarSetAlreadyExists):
        services.create_sidecarset(make_document(image="other:1"), actor=author)
    assert counts() == (1, 0, 1)


def test_update_bumps_version_and_logs_before_and_after(author: User, reviewer: User) -> None:
    services.create_sidecarset(make_document(), actor=author)
    updated = services.update_sidecarset(
        "mesh", source=make_document(image="envoy:2.0"), actor=reviewer, expected_version=1, message="bump"
    )
    assert updated.version == 2 and updated.updated_by == reviewer
    record = ChangeRecord.objects.filter(action=ChangeAction.UPDATE).get()
    assert record.before is not None and record.after is not None
    assert record.before["document"]["spec"]["containers"][0]["image"] == "envoy:1.0"
    assert record.after["document"]["spec"]["containers"][0]["image"] == "envoy:2.0"
    assert (record.actor_name, record.message) == ("bob", "bump")


def test_update_with_stale_version_changes_nothing(author: User) -> None:
    services.create_sidecarset(make_document(), actor=author)
    services.update_sidecarset(
        "mesh", source=make_document(image="envoy:2.0"), actor=author, expected_version=1
    )
    with pytest.raises(StaleVersion) as caught:
        services.update_sidecarset(
            "mesh", source=make_document(image="envoy:3.0"), actor=author, expected_version=1
        )
    assert (caught.value.expected_version, caught.value.current_version) == (1, 2)
    stored = SidecarSet.objects.get()
    assert stored.version == 2 and stored.spec["containers"][0]["image"] == "envoy:2.0"


def test_identical_update_is_a_no_op(author: User) -> None:
    services.create_sidecarset(make_document(), actor=author)
    services.update_sidecarset("mesh", source=as_yaml(make_document()), actor=author, expected_version=1)
    assert SidecarSet.objects.get().version == 1
    assert ChangeRecord.objects.count() == 1


def test_update_follows_kruise_update_rules(author: User) -> None:
    services.create_sidecarset(make_document(), actor=author)
    document = make_document()
    document["spec"]["containers"].append({"name": "extra", "image": "extra:1"})
    with pytest.raises(SidecarSetInvalid) as caught:
        services.update_sidecarset("mesh", source=document, actor=author, expected_version=1)
    assert [error.path for error in caught.value.errors] == ["spec.containers[1].name"]


def test_update_cannot_rename(author: User) -> None:
    services.create_sidecarset(make_document(), actor=author)
    with pytest.raises(SidecarSetInvalid) as caught:
        services.update_sidecarset(
            "mesh", source=make_document(name="other"), actor=author, expected_version=1
        )
    assert caught.value.errors[0].path == "metadata.name"


def test_conflicting_sidecarsets_are_refused(author: User) -> None:
    services.create_sidecarset(make_document(name="first"), actor=author)
    with pytest.raises(SidecarSetInvalid) as caught:
        services.create_sidecarset(make_document(name="second"), actor=author)
    assert [error.path for error in caught.value.errors] == ["spec.containers[0].name"]
    assert "first" in caught.value.errors[0].message
    # Disjoint pod selectors may reuse the container name.
    services.create_sidecarset(make_document(name="second", app="other"), actor=author)
    assert SidecarSet.objects.count() == 2


def test_conflict_checks_follow_every_change_to_the_store(author: User) -> None:
    """The process keeps the stored SidecarSets parsed between calls (issue 17): edits, deletes
    and rolled-back edits, in this process or behind it, must all be seen by the next check.
    Every SidecarSet here uses the container "log": they conflict when their selectors overlap."""

    def create(name: str, app: str) -> None:
        services.create_sidecarset(make_document(name=name, container="log", app=app), actor=author)

    def move_first(app: str, version: int) -> SidecarSet:
        document = make_document(name="first", container="log", app=app)
        return services.update_sidecarset("first", source=document, actor=author, expected_version=version)

    create("first", "web")
    with pytest.raises(SidecarSetInvalid):
        create("second", "web")
    move_first("a1", 1)
    create("second", "web")
    # A rolled-back edit, seen by a check before the rollback, must not linger in the process's
    # copy, even when a later committed edit reaches the same version number.
    with pytest.raises(RuntimeError), transaction.atomic():
        move_first("a2", 2)
        create("probe", "p")
        raise RuntimeError("roll back")
    # ... here by another process (the same number as the rolled-back edit; no check between)
    SidecarSet.objects.filter(name="first").update(
        version=3, spec=make_document(container="log", app="a3")["spec"]
    )
    with pytest.raises(SidecarSetInvalid) as caught:
        create("third", "a3")
    assert "first" in caught.value.errors[0].message
    create("fourth", "a2")
    # A row changed behind the services (another process, a data migration): seen too.
    SidecarSet.objects.filter(name="fourth").update(
        version=99, spec=make_document(container="log", app="a4")["spec"]
    )
    create("fifth", "a2")
    with pytest.raises(SidecarSetInvalid):
        create("sixth", "a4")
    # A deleted one no longer conflicts.
    services.delete_sidecarset("first", actor=author, expected_version=None)
    create("third", "a3")


def test_delete_logs_and_signals_after_commit(
    published_mesh: SidecarSet,
    author: User,
    received: list[Any],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    with pytest.raises(StaleVersion):
        services.delete_sidecarset("mesh", actor=author, expected_version=1)
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_sidecarset("mesh", actor=author, expected_version=published_mesh.version)
    assert SidecarSet.objects.count() == 0 and SidecarSetRevision.objects.count() == 0
    record = ChangeRecord.objects.filter(action=ChangeAction.DELETE).get()
    assert record.object_id == str(published_mesh.pk) and record.object_repr == "mesh"
    assert record.before is not None
    assert record.before["document"]["spec"]["containers"][0]["image"] == "envoy:1.2"
    assert received == [
        (
            "deleted",
            {
                "signal": sidecarset_deleted,
                "sidecarset_id": published_mesh.pk,
                "name": "mesh",
                "actor_id": author.pk,
            },
        )
    ]


# --- publish -------------------------------------------------------------------------------------


def test_publish_creates_an_immutable_revision_with_the_cores_hashes(
    author: User, received: list[Any], django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    created = services.create_sidecarset(make_document(), actor=author)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        revision = services.publish_sidecarset("mesh", actor=author, message="go", request_id="req-9")
    assert len(callbacks) == 1
    core = parse_sidecarset(make_document())
    assert (revision.number, revision.name, revision.author_name, revision.message) == (
        1,
        "mesh-1",
        "alice",
        "go",
    )
    assert revision.revision_hash == revision_hash(core)
    assert revision.hash_without_images == hash_without_images(core)
    assert revision.document == created.to_document()
    assert SidecarSet.objects.get().current_revision == revision
    record = ChangeRecord.objects.filter(action=ChangeAction.PUBLISH).get()
    assert record.changed_object == revision and record.parent_object == created
    assert record.after is not None
    assert (record.request_id, record.after["revision_hash"]) == ("req-9", revision.revision_hash)
    assert received == [
        (
            "published",
            {
                "signal": revision_published,
                "sidecarset_id": created.pk,
                "revision_id": revision.pk,
                "revision_number": 1,
                "previous_revision_id": None,
                "change_kind": "other",
                "actor_id": author.pk,
                "request_id": "req-9",
            },
        )
    ]


def test_publish_reports_the_kind_of_change(
    published_mesh: SidecarSet, received: list[Any], django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        revision = services.publish_sidecarset("mesh", actor=None)
    assert revision.number == 3 and revision.author_name == "system"
    assert received[0][1]["change_kind"] == ChangeKind.IMAGES_ONLY
    assert received[0][1]["previous_revision_id"] == published_mesh.revisions.get(number=2).pk


def test_publish_without_changes_is_refused(published_mesh: SidecarSet) -> None:
    services.publish_sidecarset("mesh", actor=None)
    before = counts()
    with pytest.raises(NothingToPublish):
        services.publish_sidecarset("mesh", actor=None)
    assert counts() == before


def test_signal_is_not_sent_when_the_transaction_rolls_back(author: User, received: list[Any]) -> None:
    services.create_sidecarset(make_document(), actor=author)
    services.publish_sidecarset("mesh", actor=author)  # on_commit never runs inside the test transaction
    assert received == []


def test_failing_receiver_does_not_fail_the_publish(
    author: User, django_capture_on_commit_callbacks: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("subscriber down")

    revision_published.connect(broken, dispatch_uid="test-broken")
    try:
        services.create_sidecarset(make_document(), actor=author)
        with (
            caplog.at_level(logging.ERROR, logger="sidecarhub.services"),
            django_capture_on_commit_callbacks(execute=True),
        ):
            services.publish_sidecarset("mesh", actor=author)
    finally:
        revision_published.disconnect(dispatch_uid="test-broken")
    assert SidecarSetRevision.objects.count() == 1
    assert "subscriber down" in caplog.text


def _publish_images(author: User, *images: str, **spec: Any) -> None:
    for image in images:
        services.update_sidecarset(
            "mesh", source=make_document(image=image, **spec), actor=author, expected_version=None
        )
        services.publish_sidecarset("mesh", actor=author)


def test_history_limit_prunes_the_oldest_and_logs_it(author: User) -> None:
    services.create_sidecarset(make_document(revisionHistoryLimit=2), actor=author)
    services.publish_sidecarset("mesh", actor=author)
    _publish_images(author, "envoy:2", "envoy:3", "envoy:4", revisionHistoryLimit=2)
    assert list(SidecarSetRevision.objects.order_by("number").values_list("number", flat=True)) == [3, 4]
    pruned = ChangeRecord.objects.filter(action=ChangeAction.PRUNE).order_by("id")
    assert [(record.before or {}).get("number") for record in pruned] == [1, 2]
    assert all(record.parent_object_id == str(SidecarSet.objects.get().pk) for record in pruned)
    assert pruned[0].content_type == ContentType.objects.get_for_model(SidecarSetRevision)


def test_history_limit_keeps_the_current_and_the_pinned_revision(author: User) -> None:
    services.create_sidecarset(make_document(revisionHistoryLimit=1), actor=author)
    services.publish_sidecarset("mesh", actor=author)
    pinned = {"revision": {"revisionName": "mesh-1", "policy": "Always"}}
    _publish_images(author, "envoy:2", "envoy:3", revisionHistoryLimit=1, injectionStrategy=pinned)
    assert list(SidecarSetRevision.objects.order_by("number").values_list("number", flat=True)) == [1, 3]


def test_pinned_revision_must_exist(author: User) -> None:
    pinned = {"revision": {"revisionName": "mesh-7", "policy": "Always"}}
    with pytest.raises(SidecarSetInvalid) as caught:
        services.create_sidecarset(make_document(injectionStrategy=pinned), actor=author)
    assert [error.path for error in caught.value.errors] == ["spec.injectionStrategy.revision.revisionName"]


# --- import, export, diff ------------------------------------------------------------------------


def test_import_creates_updates_and_reports_unchanged(author: User) -> None:
    services.create_sidecarset(make_document(name="old", container="old"), actor=author)
    stream = as_yaml(
        make_document(name="new", container="new"),
        make_document(name="old", container="old", image="envoy:9"),
    )
    results = services.import_documents(stream, actor=author, owner_team="mesh-team")
    assert [(r.index, r.name, r.outcome) for r in results] == [
        (0, "new", ApplyOutcome.CREATED),
        (1, "old", ApplyOutcome.CONFIGURED),
    ]
    assert results[1].changed_paths == ("spec.containers[0].image",)
    assert SidecarSet.objects.get(name="new").owner_team == Team.objects.get(name="mesh-team")
    again = services.import_documents(stream, actor=author)
    assert [r.outcome for r in again] == [ApplyOutcome.UNCHANGED, ApplyOutcome.UNCHANGED]


def test_import_is_all_or_nothing(author: User) -> None:
    broken = make_document(name="broken", container="broken")
    broken["spec"]["containers"][0]["image"] = ""
    stream = as_yaml(make_document(name="good", container="good"), broken) + "---\nkind: [unclosed\n"
    with pytest.raises(ImportInvalid) as caught:
        services.import_documents(stream, actor=author)
    assert [(e.index, e.path) for e in caught.value.errors] == [
        (1, "spec.containers[0].image"),
        (2, "<document>"),
    ]
    assert "malformed YAML" in caught.value.errors[1].message
    assert counts() == (0, 0, 0)


def test_import_checks_documents_against_each_other(author: User) -> None:
    stream = as_yaml(
        make_document(name="one"), make_document(name="two"), make_document(name="one", container="x")
    )
    with pytest.raises(ImportInvalid) as caught:
        services.import_documents(stream, actor=author)
    assert [(e.index, e.path) for e in caught.value.errors] == [
        (1, "spec.containers[0].name"),
        (2, "metadata.name"),
    ]
    assert counts() == (0, 0, 0)


def test_import_of_nothing_is_an_error(author: User) -> None:
    with pytest.raises(ImportInvalid):
        services.import_documents("# only a comment\n", actor=author)


@pytest.mark.parametrize("version", ["v1alpha1", "v1beta1"])
def test_export_round_trips(published_mesh: SidecarSet, version: str) -> None:
    text = services.export_sidecarset("mesh", version)
    assert f"apiVersion: apps.kruise.io/{version}" in text
    exported, errors = read_sidecarset(text)
    assert errors == [] and exported == published_mesh.to_core()
    revision_text = services.export_sidecarset("mesh", version, revision_number=1)
    assert read_sidecarset(revision_text)[0] == published_mesh.revisions.get(number=1).to_core()


def test_export_v1alpha1_writes_custom_version_as_a_label(author: User) -> None:
    services.create_sidecarset(make_document(customVersion="v7"), actor=author)
    text = services.export_sidecarset("mesh", "v1alpha1")
    assert "apps.kruise.io/sidecarset-custom-version: v7" in text
    assert read_sidecarset(text)[0] == SidecarSet.objects.get().to_core()


def test_diff_revisions(published_mesh: SidecarSet) -> None:
    diff = services.diff_revisions("mesh", 1, 2)
    assert diff.change_kind == ChangeKind.IMAGES_ONLY
    assert diff.changed_paths == ("spec.containers[0].image",)
    assert "-  - name: envoy\n-    image: envoy:1.0" not in diff.unified_diff  # only the image line changes
    assert "-    image: envoy:1.0\n" in diff.unified_diff and "+    image: envoy:1.1\n" in diff.unified_diff
    assert diff.unified_diff.startswith("--- mesh@1\n+++ mesh@2\n")
    assert services.diff_revisions("mesh", 2, 2).change_kind == ChangeKind.NONE
    with pytest.raises(services.RevisionNotFound):
        services.diff_revisions("mesh", 1, 9)


def test_validate_definition_returns_every_error(author: User) -> None:
    document = make_document()
    document["spec"]["containers"][0]["upgradeStrategy"] = {"upgradeType": "Sideways"}
    del document["spec"]["selector"]
    paths = [error.path for error in services.validate_definition(document)]
    assert paths == ["spec.selector", "spec.containers[0].upgradeStrategy.upgradeType"]
    assert services.validate_definition(make_document()) == []
