"""The rollout policy as a first-class field (issue 16 item 8): set and changed through the API,
every bad value a 400 naming ``rollout_policy.<key>``; the ``rollouts.sidecarhub.io/*``
annotations of an imported document fill it (and are not kept as annotations); export writes
them back; publish freezes the policy into the revision and the release follows it; the data
migration moves existing annotations into the fields."""

from __future__ import annotations

import importlib
import uuid
from typing import Any

import pytest
import yaml
from django.apps import apps
from django.contrib.auth.models import User
from django.test import Client

from clusters.choices import CredentialKind
from clusters.models import Cluster
from clusters.push import create_target, sync_placements
from rollouts.models import Rollout
from rollouts.services import create_rollouts_for_revision
from sidecarhub import services
from sidecarhub.models import ChangeRecord, SidecarSet, SidecarSetRevision

from .conftest import ALL_SIDECARSET_PERMISSIONS, as_yaml, make_document, make_user

pytestmark = pytest.mark.django_db

BASE = "/api/v1/sidecarsets/"
PREFIX = "rollouts.sidecarhub.io/"
CANARY = {"selector": {"matchLabels": {"track": "canary"}}}


def annotated(annotations: dict[str, str], **spec: Any) -> dict[str, Any]:
    document = make_document(**spec)
    document["metadata"]["annotations"] = {PREFIX + key: value for key, value in annotations.items()}
    return document


def errors_of(response: Any) -> list[tuple[str, str]]:
    return [(error["path"], error["message"]) for error in response.json()["errors"]]


def test_create_and_read_the_policy(author: User, client_for: Any) -> None:
    client = client_for(author)
    policy = {"failure_threshold": "2", "steps": ["canary", 1, "50%", "100%"], "pod_timeout_seconds": 30}
    body = {"document": make_document(updateStrategy=CANARY), "rollout_policy": policy}
    response = client.post(BASE, body, format="json")
    assert response.status_code == 201, response.content
    canonical = {"steps": ["canary", 1, "50%", "100%"], "failure_threshold": 2, "pod_timeout_seconds": 30}
    assert response.json()["rollout_policy"] == canonical
    assert list(SidecarSet.objects.get().rollout_policy) == [
        "steps",
        "failure_threshold",
        "pod_timeout_seconds",
    ]
    assert client.get(BASE + "mesh/").json()["rollout_policy"] == canonical


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ({"failure_threshold": "x"}, [("rollout_policy.failure_threshold", "'x' is not a whole number")]),
        (
            {"steps": ["canary", "100%"]},
            [("rollout_policy.steps", "a canary step needs spec.updateStrategy.selector")],
        ),
        ({"steps": "50%,half"}, [("rollout_policy.steps", "step 2:")]),
        ({"max_unavailable": "lots"}, [("rollout_policy.max_unavailable", "must be a non-negative integer")]),
        ({"approval_ttl_seconds": 2**40}, [("rollout_policy.approval_ttl_seconds", "must be at most")]),
        ({"retries": 3}, [("rollout_policy.retries", "unknown rollout setting")]),
        ("steps: 1", [("rollout_policy", "must be an object")]),
        (None, [("rollout_policy", "This field may not be null.")]),
    ],
)
def test_a_bad_policy_is_a_400_naming_the_field_and_nothing_is_stored(
    author: User, client_for: Any, policy: Any, expected: list[tuple[str, str]]
) -> None:
    client = client_for(author)
    response = client.post(BASE, {"document": make_document(), "rollout_policy": policy}, format="json")
    assert response.status_code == 400, response.content
    found = errors_of(response)
    assert [path for path, _ in found] == [path for path, _ in expected]
    assert all(message in text for (_, message), (_, text) in zip(expected, found, strict=True)), found
    assert SidecarSet.objects.count() == 0 and ChangeRecord.objects.count() == 0
    validated = client.post(
        BASE + "validate/", {"document": make_document(), "rollout_policy": policy}, format="json"
    )
    if policy is not None:
        assert validated.status_code == 200 and [e["path"] for e in validated.json()["errors"]] == [
            path for path, _ in expected
        ]


def test_update_the_policy_alone_keep_it_and_check_it_against_the_spec(author: User, client_for: Any) -> None:
    client = client_for(author)
    assert (
        client.post(BASE, {"document": make_document(updateStrategy=CANARY)}, format="json").status_code
        == 201
    )
    response = client.patch(
        BASE + "mesh/", {"rollout_policy": {"steps": ["canary", "100%"]}}, format="json", HTTP_IF_MATCH='"1"'
    )
    assert response.status_code == 200, response.content
    assert (
        response.json()["rollout_policy"] == {"steps": ["canary", "100%"]} and response.json()["version"] == 2
    )
    change = ChangeRecord.objects.filter(action="update").get()
    assert change.before is not None and change.after is not None
    assert change.before["rollout_policy"] == {}
    assert change.after["rollout_policy"] == {"steps": ["canary", "100%"]}
    # A new spec without a policy keeps the stored policy ...
    new_image = make_document(image="envoy:2", updateStrategy=CANARY)
    response = client.put(BASE + "mesh/", {"spec": new_image["spec"]}, format="json", HTTP_IF_MATCH='"2"')
    assert response.status_code == 200 and response.json()["rollout_policy"] == {"steps": ["canary", "100%"]}
    # ... which must still hold for it: no canary selector, no canary step.
    response = client.put(
        BASE + "mesh/", {"spec": make_document()["spec"]}, format="json", HTTP_IF_MATCH='"3"'
    )
    assert response.status_code == 400
    assert errors_of(response) == [
        ("rollout_policy.steps", "a canary step needs spec.updateStrategy.selector")
    ]
    # {} clears it.
    response = client.patch(BASE + "mesh/", {"rollout_policy": {}}, format="json", HTTP_IF_MATCH='"3"')
    assert response.status_code == 200 and response.json()["rollout_policy"] == {}


def test_annotations_of_an_imported_document_fill_the_fields(author: User, client_for: Any) -> None:
    client = client_for(author)
    document = annotated({"steps": "canary, 2, 100%", "failure-threshold": "3"}, updateStrategy=CANARY)
    document["metadata"]["annotations"]["team"] = "mesh"
    response = client.post(BASE + "import/", data=as_yaml(document), content_type="application/yaml")
    assert response.status_code == 200, response.content
    stored = SidecarSet.objects.get()
    assert stored.rollout_policy == {"steps": ["canary", 2, "100%"], "failure_threshold": 3}
    assert stored.annotations == {"team": "mesh"}  # the import format is not kept twice
    # A document without them keeps the policy (Kruise YAML from elsewhere does not wipe it) ...
    plain = make_document(image="envoy:2", updateStrategy=CANARY)
    assert (
        client.post(BASE + "import/", data=as_yaml(plain), content_type="application/yaml").status_code == 200
    )
    assert SidecarSet.objects.get().rollout_policy == {"steps": ["canary", 2, "100%"], "failure_threshold": 3}
    # ... a document with them replaces the whole policy (an empty value unsets a key).
    again = annotated({"steps": "", "pod-timeout-seconds": "45"}, image="envoy:2", updateStrategy=CANARY)
    assert (
        client.post(BASE + "import/", data=as_yaml(again), content_type="application/yaml").status_code == 200
    )
    assert SidecarSet.objects.get().rollout_policy == {"pod_timeout_seconds": 45}
    # create with a document works the same way
    other = annotated({"max-unavailable": "25%"}, app="other")
    other["metadata"]["name"] = "other"
    assert client.post(BASE, {"document": other}, format="json").json()["rollout_policy"] == {
        "max_unavailable": "25%"
    }


def test_policy_and_different_annotations_together_are_refused(author: User, client_for: Any) -> None:
    client = client_for(author)
    document = annotated({"failure-threshold": "3"})
    response = client.post(
        BASE, {"document": document, "rollout_policy": {"failure_threshold": 4}}, format="json"
    )
    assert response.status_code == 400
    [(path, message)] = errors_of(response)
    assert path == "rollout_policy" and "differs from the document's rollouts.sidecarhub.io/*" in message
    same = client.post(
        BASE, {"document": document, "rollout_policy": {"failure_threshold": 3}}, format="json"
    )
    assert same.status_code == 201 and same.json()["rollout_policy"] == {"failure_threshold": 3}


def test_export_writes_the_annotations_and_round_trips(author: User, client_for: Any) -> None:
    client = client_for(author)
    policy = {"steps": ["canary", "50%", "100%"], "approval_ttl_seconds": 600}
    assert (
        client.post(
            BASE, {"document": make_document(updateStrategy=CANARY), "rollout_policy": policy}, format="json"
        ).status_code
        == 201
    )
    for version in ("v1beta1", "v1alpha1"):
        exported = services.export_sidecarset("mesh", version)
        annotations = yaml.safe_load(exported)["metadata"]["annotations"]
        assert annotations == {PREFIX + "steps": "canary,50%,100%", PREFIX + "approval-ttl-seconds": "600"}
        [applied] = services.import_documents(exported, actor=author)
        assert applied.outcome == "unchanged", (version, applied.changed_paths)
    assert SidecarSet.objects.get().rollout_policy == policy


def test_publish_freezes_the_policy_and_a_policy_change_is_a_revision(author: User, client_for: Any) -> None:
    client = client_for(author)
    assert (
        client.post(
            BASE, {"document": make_document(), "rollout_policy": {"steps": [1, "100%"]}}, format="json"
        ).status_code
        == 201
    )
    first = client.post(BASE + "mesh/publish/", {}, format="json")
    assert first.status_code == 201 and first.json()["rollout_policy"] == {"steps": [1, "100%"]}
    assert client.post(BASE + "mesh/publish/", {}, format="json").status_code == 409  # nothing changed
    patched = client.patch(
        BASE + "mesh/", {"rollout_policy": {"steps": ["100%"]}}, format="json", HTTP_IF_MATCH='"1"'
    )
    assert patched.json()["has_unpublished_changes"] is True
    diff = services.diff_unpublished("mesh")
    assert diff.change_kind == "none" and diff.changed_paths == (f"metadata.annotations[{PREFIX}steps]",)
    second = client.post(BASE + "mesh/publish/", {}, format="json")
    assert second.status_code == 201 and second.json()["rollout_policy"] == {"steps": ["100%"]}
    assert SidecarSetRevision.objects.get(number=1).rollout_policy == {"steps": [1, "100%"]}
    listed = client.get(BASE + "mesh/revisions/").json()["results"]
    assert [row["rollout_policy"] for row in listed] == [{"steps": ["100%"]}, {"steps": [1, "100%"]}]
    publish = ChangeRecord.objects.filter(action="publish").order_by("pk").last()
    assert publish is not None and publish.after is not None
    assert publish.after["rollout_policy"] == {"steps": ["100%"]}


def test_publish_refuses_a_stored_policy_that_is_invalid(author: User, client_for: Any) -> None:
    """A value that only the data migration can store (an old annotation's text) blocks publish
    with a 400 naming the field, and no revision is made."""
    client = client_for(author)
    assert client.post(BASE, {"document": make_document()}, format="json").status_code == 201
    SidecarSet.objects.filter(name="mesh").update(rollout_policy={"failure_threshold": "x"})
    response = client.post(BASE + "mesh/publish/", {}, format="json")
    assert response.status_code == 400
    assert errors_of(response) == [("rollout_policy.failure_threshold", "'x' is not a whole number")]
    assert SidecarSetRevision.objects.count() == 0


def test_a_release_follows_the_published_policy(
    author: User, client_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Publish uses the fields: an image change is released with the configured steps and limits."""
    monkeypatch.setattr("rollouts.services.wake_cluster", lambda cluster_id: None)
    monkeypatch.setattr("clusters.enqueue.push", lambda *args, **kwargs: None)
    client = client_for(author)
    policy = {"steps": ["canary", 2, "50%", "100%"], "max_unavailable": 3, "failure_threshold": 1}
    body = {"document": make_document(updateStrategy=CANARY), "rollout_policy": policy}
    assert client.post(BASE, body, format="json").status_code == 201
    cluster = Cluster.objects.create(
        name=f"c-{uuid.uuid4().hex[:6]}",
        api_server_url="https://127.0.0.1:9",
        credential_kind=CredentialKind.TOKEN,
        credentials_ciphertext="unused",
    )
    stored = SidecarSet.objects.get()
    create_target(sidecarset_id=stored.pk, cluster_id=cluster.pk, wave=0)
    first = services.publish_sidecarset("mesh", actor=author)
    sync_placements(stored.pk)  # the cluster serves revision 1
    new_image = make_document(image="envoy:2", updateStrategy=CANARY)
    assert (
        client.put(
            BASE + "mesh/", {"spec": new_image["spec"]}, format="json", HTTP_IF_MATCH='"1"'
        ).status_code
        == 200
    )
    second = services.publish_sidecarset("mesh", actor=author)
    [rollout] = create_rollouts_for_revision(second.pk, actor=author, previous_revision_id=first.pk)
    assert rollout.in_place
    assert (rollout.steps, rollout.max_unavailable, rollout.failure_threshold) == (
        ["canary", 2, "50%", "100%"],
        "3",
        1,
    )
    assert list(rollout.rollout_steps.order_by("ordinal").values_list("target", "canary")) == [
        ("canary", True),
        ("2", False),
        ("50%", False),
        ("100%", False),
    ]
    assert Rollout.objects.get().pod_timeout_seconds == 300  # unset: the hub's default


def test_the_data_migration_moves_annotations_into_the_fields(author: User) -> None:
    migration = importlib.import_module("sidecarhub.migrations.0002_rollout_policy_fields")
    legacy = {
        PREFIX + "steps": "1, 50%,100%",
        PREFIX + "failure-threshold": "x",
        PREFIX + "later": "1",
        "team": "a",
    }
    services.create_sidecarset(make_document(), actor=author)
    revision = services.publish_sidecarset("mesh", actor=author)
    SidecarSet.objects.filter(name="mesh").update(annotations=legacy)
    document = {**revision.document, "metadata": {"name": "mesh", "annotations": legacy}}
    SidecarSetRevision.objects.filter(pk=revision.pk).delete()
    SidecarSetRevision.objects.create(
        sidecarset_id=revision.sidecarset_id,
        number=1,
        name="mesh-1",
        revision_hash=revision.revision_hash,
        hash_without_images=revision.hash_without_images,
        document=document,
        author_name="alice",
    )
    migration.annotations_to_fields(apps, None)
    stored, frozen = SidecarSet.objects.get(), SidecarSetRevision.objects.get()
    moved = {"steps": [1, "50%", "100%"], "failure_threshold": "x"}  # a bad value stays as its text
    assert (stored.rollout_policy, stored.annotations) == (moved, {PREFIX + "later": "1", "team": "a"})
    assert frozen.rollout_policy == moved
    assert frozen.document["metadata"]["annotations"] == {PREFIX + "later": "1", "team": "a"}
    migration.fields_to_annotations(apps, None)
    assert SidecarSet.objects.get().annotations == {**legacy, PREFIX + "steps": "1,50%,100%"}


def test_the_admin_shows_and_edits_the_policy(published_mesh: SidecarSet) -> None:
    staff = Client()
    staff.force_login(make_user("staffer", *ALL_SIDECARSET_PERMISSIONS, staff=True))
    url = f"/admin/sidecarhub/sidecarset/{published_mesh.pk}/change/"
    page = staff.get(url).content.decode()
    assert "Rollout policy" in page and 'name="rollout_steps"' in page
    form = {
        "document_yaml": as_yaml(make_document(image="envoy:1.2")),
        "owner_team": "platform",
        "version": str(published_mesh.version),
        "revisions-TOTAL_FORMS": "0",
        "revisions-INITIAL_FORMS": "0",
    }
    bad = staff.post(url, form | {"rollout_steps": "10%, lots", "rollout_failure_threshold": "2"})
    assert bad.status_code == 200
    assert "rollout_policy.steps: step 2:" in bad.content.decode()
    assert SidecarSet.objects.get().rollout_policy == {}
    good = staff.post(url, form | {"rollout_steps": "10%, 100%", "rollout_failure_threshold": "2"})
    assert good.status_code == 302
    assert SidecarSet.objects.get().rollout_policy == {"steps": ["10%", "100%"], "failure_threshold": 2}
    assert 'value="10%, 100%"' in staff.get(url).content.decode()
    # Annotations pasted into the YAML fill the fields when the fields are left as they were.
    pasted = annotated({"steps": "1,100%"}, image="envoy:1.2")
    edit = form | {
        "version": "4",
        "document_yaml": as_yaml(pasted),
        "rollout_steps": "10%, 100%",
        "rollout_failure_threshold": "2",
    }
    assert staff.post(url, edit).status_code == 302
    stored = SidecarSet.objects.get()
    assert stored.rollout_policy == {"steps": [1, "100%"]} and stored.annotations == {}


def test_the_schema_documents_the_policy(author: User, client_for: Any) -> None:
    schema = yaml.safe_load(client_for(author).get("/api/v1/schema/").content)
    components = schema["components"]["schemas"]
    policy = components["RolloutPolicy"]["properties"]
    assert set(policy) == {
        "steps",
        "max_unavailable",
        "failure_threshold",
        "progress_deadline_seconds",
        "pod_timeout_seconds",
        "approval_ttl_seconds",
    }
    assert '"canary"' in policy["steps"]["description"]
    assert "pauses" in policy["failure_threshold"]["description"]
    for name in ("SidecarSet", "SidecarSetWrite", "Revision"):
        assert "rollout_policy" in components[name]["properties"], name
