"""The admin console: pages render, YAML errors show inline with their paths, writes and publish
go through the services."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from sidecarhub.models import ChangeRecord, SidecarSet, SidecarSetRevision

from .conftest import ALL_SIDECARSET_PERMISSIONS, as_yaml, make_document, make_user

pytestmark = pytest.mark.django_db

ADMIN = "/admin/sidecarhub/sidecarset/"


@pytest.fixture
def staff(db: None) -> Client:
    client = Client()
    client.force_login(
        make_user("staffer", *ALL_SIDECARSET_PERMISSIONS, "view_sidecarsetrevision", staff=True)
    )
    return client


def test_pages_render(staff: Client, published_mesh: SidecarSet) -> None:
    pk = published_mesh.pk
    for url in (
        ADMIN,
        ADMIN + "add/",
        f"{ADMIN}{pk}/change/",
        f"{ADMIN}{pk}/diff/",
        f"{ADMIN}{pk}/diff/?from=1&to=2",
        f"{ADMIN}{pk}/publish/",
        "/admin/sidecarhub/sidecarsetrevision/",
    ):
        assert staff.get(url).status_code == 200, url
    change = staff.get(f"{ADMIN}{pk}/change/").content.decode()
    assert "image: envoy:1.2" in change and "mesh-2" in change and "Publish" in change
    diff = staff.get(f"{ADMIN}{pk}/diff/?from=1&to=2").content.decode()
    assert "images_only" in diff and "+    image: envoy:1.1" in diff
    assert "no revision 7" in staff.get(f"{ADMIN}{pk}/diff/?from=1&to=7").content.decode()


def test_add_with_errors_shows_them_inline_and_saves_nothing(staff: Client) -> None:
    document = make_document()
    del document["spec"]["selector"]
    document["spec"]["containers"][0]["image"] = ""
    response = staff.post(ADMIN + "add/", {"document_yaml": as_yaml(document), "owner_team": "t"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "spec.selector: required" in page and "spec.containers[0].image: required" in page
    malformed = staff.post(ADMIN + "add/", {"document_yaml": "kind: [oops", "owner_team": ""})
    assert "&lt;document&gt;: malformed YAML" in malformed.content.decode()
    assert SidecarSet.objects.count() == 0 and ChangeRecord.objects.count() == 0


def test_add_and_change_through_the_services(staff: Client) -> None:
    response = staff.post(ADMIN + "add/", {"document_yaml": as_yaml(make_document()), "owner_team": "t"})
    assert response.status_code == 302
    stored = SidecarSet.objects.get()
    assert stored.created_by is not None
    assert stored.owner_team is not None
    assert (stored.name, stored.owner_team.name, stored.version, stored.created_by.username) == (
        "mesh",
        "t",
        1,
        "staffer",
    )
    change_url = f"{ADMIN}{stored.pk}/change/"
    assert '<option value="t" selected>t</option>' in staff.get(change_url).content.decode()  # its team
    edit = {
        "document_yaml": as_yaml(make_document(image="envoy:2")),
        "owner_team": "t",
        "version": "1",
        # The read-only revisions inline's management form, as the page renders it.
        "revisions-TOTAL_FORMS": "0",
        "revisions-INITIAL_FORMS": "0",
    }
    assert staff.post(change_url, edit | {"change_message": "bump"}).status_code == 302
    assert SidecarSet.objects.get().version == 2
    assert ChangeRecord.objects.filter(action="update").get().message == "bump"
    stale = staff.post(change_url, edit | {"document_yaml": as_yaml(make_document(image="envoy:3"))})
    assert stale.status_code == 200 and "changed by someone else" in stale.content.decode()
    rule = make_document()
    rule["spec"]["containers"].append({"name": "new", "image": "x:1"})
    refused = staff.post(change_url, edit | {"version": "2", "document_yaml": as_yaml(rule)})
    assert "spec.containers[1].name: container" in refused.content.decode()
    assert SidecarSet.objects.get().spec["containers"][0]["image"] == "envoy:2"


def test_publish_button_and_action(staff: Client, published_mesh: SidecarSet) -> None:
    pk = published_mesh.pk
    preview = staff.get(f"{ADMIN}{pk}/publish/").content.decode()
    assert "+    image: envoy:1.2" in preview
    assert staff.post(f"{ADMIN}{pk}/publish/", {"message": "from admin"}).status_code == 302
    revision = SidecarSetRevision.objects.get(number=3)
    assert (revision.message, revision.author_name) == ("from admin", "staffer")
    response = staff.post(ADMIN, {"action": "publish_selected", "_selected_action": [pk]}, follow=True)
    assert "nothing to publish" in response.content.decode()
    assert SidecarSetRevision.objects.count() == 3


def test_publish_needs_the_permission(published_mesh: SidecarSet) -> None:
    client = Client()
    client.force_login(make_user("viewer", "view_sidecarset", "change_sidecarset", staff=True))
    assert client.get(f"{ADMIN}{published_mesh.pk}/publish/").status_code == 403
    assert client.post(f"{ADMIN}{published_mesh.pk}/publish/").status_code == 403
    assert (
        "Publish"
        not in client.get(f"{ADMIN}{published_mesh.pk}/change/")
        .content.decode()
        .split("object-tools")[1][:300]
    )


def test_delete_goes_through_the_service(staff: Client, published_mesh: SidecarSet) -> None:
    response = staff.post(f"{ADMIN}{published_mesh.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert SidecarSet.objects.count() == 0
    assert ChangeRecord.objects.filter(action="delete", actor_name="staffer").count() == 1


def test_anonymous_is_sent_to_login(published_mesh: SidecarSet, author: User) -> None:
    assert Client().get(ADMIN).status_code == 302
