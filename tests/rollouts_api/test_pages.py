"""The console's rollout, release, publish and SidecarSet pages (issue 16 items 2-4) and the per-pod
history's columns, through Django's test client: what changes (from → to images, the revision
diff), where (SidecarSet, cluster, release links), what a rollout waits for, progress totals over
all steps, the publish preview (also from the API) and targets edited on the SidecarSet's page
through the clusters services (change log, placements)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from clusters.models import SidecarSetPlacement, SidecarSetTarget
from clusters.push import create_target, sync_placements
from rollouts.models import Rollout
from rollouts.services import create_rollouts_for_revision, resume_rollout
from rollouts.transitions import pause_rollout_row
from sidecarhub.models import ChangeRecord, SidecarSet
from sidecarhub.services import create_sidecarset, publish_sidecarset, update_sidecarset
from tests.clusters.conftest import make_user
from tests.rollouts_api.conftest import (
    OPERATE,
    VIEW_PODS,
    World,
    change_form_data,
    document,
    form_errors,
    make_cluster,
    make_rollout,
)

pytestmark = pytest.mark.django_db

FLEET = ("sidecarhub.view_sidecarset", "clusters.view_cluster", "rollouts.view_rollout")


def staff(username: str, *perms: str) -> User:
    user = make_user(username, *perms)
    User.objects.filter(pk=user.pk).update(is_staff=True)
    return User.objects.get(pk=user.pk)


def login(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def detail_url(rollout_id: int) -> str:
    return reverse("admin:rollouts_rollout_change", args=[rollout_id])


def progress_region(html: str) -> str:
    """The page's progress partial (``_progress.html``): what a live refresh re-renders."""
    start = html.index('<div id="sh-rollout-progress"')
    return html[start : html.index("<h2>Steps</h2>", start)]


# --- rollout page ----------------------------------------------------------------------------------


def test_rollout_page_shows_the_image_change_its_links_and_what_it_waits_for(world: World, db: None) -> None:
    viewer = staff("page-viewer", *VIEW_PODS, *FLEET)
    rollout = world.rollout
    response = login(viewer).get(detail_url(rollout.pk))
    assert response.status_code == 200
    html = response.content.decode()
    change = html[html.index('class="sh-change"') :]
    assert re.search(
        r"log-agent</code>: <span[^>]*>log-agent:1</span> → <strong[^>]*>log-agent:2</strong>", change
    )
    diff = reverse("admin:sidecarhub_sidecarset_diff", args=[rollout.sidecarset_id]) + "?from=1&amp;to=2"
    assert f'href="{diff}"' in html
    assert f'href="{reverse("admin:sidecarhub_sidecarset_change", args=[rollout.sidecarset_id])}"' in html
    assert f'href="{reverse("admin:clusters_cluster_change", args=[rollout.cluster_id])}"' in html
    release = reverse("admin:rollouts_rollout_release", args=[rollout.sidecarset_id, 2])
    assert f'href="{release}"' in html
    # Running, but what it does is wait for an approver.
    assert "Waiting for approval of step 1" in progress_region(html)
    assert response.context["status"] == "Waiting for approval of step 1"


def test_the_pause_reason_shows_while_paused_and_not_after_resume(world: World, db: None) -> None:
    operator = staff("page-operator", *OPERATE)
    pause_rollout_row(world.rollout.pk, actor=operator, reason="paused by page-operator: maintenance window")
    client = login(operator)
    paused = client.get(detail_url(world.rollout.pk))
    assert paused.context["status"] == "Paused by page-operator: maintenance window"
    assert "maintenance window" in progress_region(paused.content.decode())

    resume_rollout(world.rollout.pk, actor=operator, reason="window over")
    html = client.get(detail_url(world.rollout.pk)).content.decode()
    region = progress_region(html)
    assert "maintenance window" not in region and "Paused" not in region
    assert "Waiting for approval of step 1" in region
    assert "maintenance window" in html  # still in the history table, as history


def test_progress_totals_count_every_step_not_only_the_prepared_ones(world: World, db: None) -> None:
    viewer = staff("totals-viewer", *VIEW_PODS)
    client = login(viewer)
    # Step 1 is prepared with 3 pods, step 2 (100%) is not: before any count of the whole
    # rollout, the total is what is prepared.
    page = client.get(detail_url(world.rollout.pk)).content.decode()
    assert "rollout: 1 / 3 pods done" in progress_region(page)
    # What ``lifecycle.prepare_step`` writes: 6 pods to update over all steps.
    Rollout.objects.filter(pk=world.rollout.pk).update(planned_pods=6)
    page = client.get(detail_url(world.rollout.pk)).content.decode()
    assert "rollout: 1 / 6 pods done" in progress_region(page)
    listing = client.get(reverse("admin:rollouts_rollout_changelist")).content.decode()
    assert "rollout: 1 / 6 pods done" in listing and "Waiting for approval of step 1" in listing


def test_a_pending_rollout_says_what_it_waits_for(author: User) -> None:
    viewer = staff("pending-viewer", *VIEW_PODS)
    rollout = make_rollout(author, make_cluster("prod-us"), wave=1)
    client = login(viewer)
    assert client.get(detail_url(rollout.pk)).context["status"].startswith("Waiting to start (wave 1)")
    # What the reconciler writes while an earlier wave runs (``start_blocker``).
    reason = "waiting for wave 0: the rollout in cluster prod-eu is running"
    Rollout.objects.filter(pk=rollout.pk).update(reason=reason)
    html = client.get(detail_url(rollout.pk)).content.decode()
    assert "Waiting for wave 0: the rollout in cluster prod-eu is running" in progress_region(html)


# --- release page ----------------------------------------------------------------------------------


def _release_in_two_waves(author: User) -> tuple[SidecarSet, list[Rollout]]:
    """Revision 2 (images only) of a SidecarSet that targets prod-eu (wave 0) and prod-us (wave 1)."""
    sidecarset = create_sidecarset(document("rel", "log-agent:1", "1,50%,100%"), actor=author)
    for name, wave in (("prod-eu", 0), ("prod-us", 1)):
        create_target(sidecarset_id=sidecarset.pk, cluster_id=make_cluster(name).pk, wave=wave)
    first = publish_sidecarset("rel", actor=author)
    sync_placements(sidecarset.pk)
    update_sidecarset(
        "rel", source=document("rel", "log-agent:2", "1,50%,100%"), actor=author, expected_version=None
    )
    revision = publish_sidecarset("rel", actor=author)
    rollouts = create_rollouts_for_revision(revision.pk, actor=author, previous_revision_id=first.pk)
    return sidecarset, rollouts


def test_release_page_lists_its_clusters_by_wave_with_what_each_waits_for(author: User) -> None:
    sidecarset, rollouts = _release_in_two_waves(author)
    assert [rollout.wave for rollout in rollouts] == [0, 1]
    Rollout.objects.filter(pk=rollouts[1].pk).update(
        reason="waiting for wave 0: the rollout in cluster prod-eu is pending"
    )
    viewer = staff("release-viewer", *VIEW_PODS, *FLEET)
    response = login(viewer).get(reverse("admin:rollouts_rollout_release", args=[sidecarset.pk, 2]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "log-agent:1</span> → <strong" in html and "log-agent:2</strong>" in html
    diff = reverse("admin:sidecarhub_sidecarset_diff", args=[sidecarset.pk]) + "?from=1&amp;to=2"
    assert f'href="{diff}"' in html
    rows = re.findall(r'<tr data-cluster="([^"]+)">\s*<td>(\d)</td>', html)
    assert rows == [("prod-eu", "0"), ("prod-us", "1")]
    assert "Waiting for wave 0: the rollout in cluster prod-eu is pending" in html
    for rollout in rollouts:
        assert f'href="{detail_url(rollout.pk)}"' in html
    assert "waiting for wave 0" in response.context["release"].stage_text
    # No release for a revision without rollouts.
    assert (
        login(viewer).get(reverse("admin:rollouts_rollout_release", args=[sidecarset.pk, 1])).status_code
        == 404
    )


# --- publish preview -------------------------------------------------------------------------------


def _draft(author: User, *, steps: str = "1,100%") -> SidecarSet:
    """A SidecarSet serving revision 1 in prod-eu (wave 0) and prod-us (wave 2), with an
    unpublished images-only change."""
    sidecarset = create_sidecarset(document("pre", "log-agent:1", steps), actor=author)
    create_target(sidecarset_id=sidecarset.pk, cluster_id=make_cluster("prod-eu").pk, wave=0)
    create_target(sidecarset_id=sidecarset.pk, cluster_id=make_cluster("prod-us").pk, wave=2)
    publish_sidecarset("pre", actor=author)
    sync_placements(sidecarset.pk)
    update_sidecarset(
        "pre", source=document("pre", "log-agent:2", steps), actor=author, expected_version=None
    )
    return SidecarSet.objects.get(pk=sidecarset.pk)


@pytest.mark.django_db(transaction=True)  # the publish's receiver runs on commit, as in production
def test_publish_page_previews_clusters_waves_steps_then_links_the_release(author: User) -> None:
    sidecarset = _draft(author, steps="1,50%,100%")
    publisher = staff("publisher", *FLEET, "sidecarhub.publish_sidecarset", "sidecarhub.change_sidecarset")
    client = login(publisher)
    url = reverse("admin:sidecarhub_sidecarset_publish", args=[sidecarset.pk])
    response = client.get(url)
    html = response.content.decode()
    assert response.status_code == 200
    preview = html[
        html.index('id="sh-publish-preview"') : html.index("</fieldset>", html.index("sh-publish-preview"))
    ]
    assert "revision 2" in preview and "images_only" in preview
    assert "2 rollouts" in preview and "2 waves" in preview and "1, 50%, 100%" in preview
    rows = re.findall(r'<tr data-cluster="([^"]+)">\s*<td>(\d)</td>', preview)
    assert rows == [("prod-eu", "0"), ("prod-us", "2")]
    # The test clusters cannot be reached: their pods are unknown, and the page says why.
    assert "cannot read the pods of cluster prod-eu" in preview
    assert not Rollout.objects.exists()  # a preview writes nothing

    done = client.post(url, {"message": "bump"}, follow=True)
    messages = [str(message) for message in done.context["messages"]]
    release = reverse("admin:rollouts_rollout_release", args=[sidecarset.pk, 2])
    assert any(
        f'href="{release}"' in text and "2 rollouts (prod-eu, prod-us)" in text for text in messages
    ), messages
    assert Rollout.objects.filter(sidecarset=sidecarset, to_revision_number=2).count() == 2
    # The preview's steps are the created rollouts' steps.
    for steps in Rollout.objects.filter(sidecarset=sidecarset).values_list("steps", flat=True):
        assert [str(step) for step in steps] == ["1", "50%", "100%"]


def test_publish_preview_api(author: User) -> None:
    sidecarset = _draft(author)
    reader = make_user("preview-reader", *FLEET)
    client = Client()
    client.force_login(reader)
    url = f"/api/v1/sidecarsets/{sidecarset.name}/publish-preview/"
    body = client.get(url + "?pods=false").json()
    assert body["to_revision"] == 2 and body["change_kind"] == "images_only" and body["rollouts"] == 2
    assert [
        (c["cluster"], c["wave"], c["creates_rollout"], c["in_place"], c["steps"]) for c in body["clusters"]
    ] == [
        ("prod-eu", 0, True, True, ["1", "100%"]),
        ("prod-us", 2, True, True, ["1", "100%"]),
    ]
    assert body["clusters"][0]["pods_in_place"] is None and body["clusters"][0]["serving_revision"] == 1
    # Reading the pods of an unreachable cluster: an error per cluster, never a 5xx.
    live = client.get(url).json()
    assert live["clusters"][0]["pods_error"].startswith("cannot read the pods of cluster prod-eu")
    bad = client.get(url + "?pods=maybe")
    assert bad.status_code == 400 and "pods" in str(bad.json()["errors"])
    assert client.get("/api/v1/sidecarsets/nope/publish-preview/").status_code == 404
    stranger = Client()
    stranger.force_login(make_user("stranger"))
    assert stranger.get(url).status_code == 403


def test_publish_preview_of_a_change_beyond_images_is_a_gate_only(author: User) -> None:
    sidecarset = _draft(author)
    changed = document("pre", "log-agent:2")
    changed["spec"]["containers"][0]["env"] = [{"name": "LEVEL", "value": "debug"}]
    update_sidecarset("pre", source=changed, actor=author, expected_version=None)
    client = Client()
    client.force_login(make_user("preview-reader", *FLEET))
    body = client.get(f"/api/v1/sidecarsets/{sidecarset.name}/publish-preview/?pods=false").json()
    assert body["change_kind"] == "other"
    assert {(c["in_place"], tuple(c["steps"])) for c in body["clusters"]} == {(False, ("serve",))}


# --- SidecarSet page -------------------------------------------------------------------------------


def test_sidecarset_page_shows_targets_placements_rollouts_and_edits_targets_through_services(
    world: World, db: None
) -> None:
    sidecarset = world.rollout.live_sidecarset
    other = make_cluster("prod-ap")
    editor = staff(
        "target-editor",
        *VIEW_PODS,
        *FLEET,
        "sidecarhub.change_sidecarset",
        "clusters.view_sidecarsettarget",
        "clusters.add_sidecarsettarget",
        "clusters.change_sidecarsettarget",
        "clusters.delete_sidecarsettarget",
    )
    client = login(editor)
    url = reverse("admin:sidecarhub_sidecarset_change", args=[sidecarset.pk])
    page = client.get(url)
    html = page.content.decode()
    assert "Targets (clusters and waves; saved with the page)" in html
    assert '<td class="sh-push">' in html  # the placement's push state per cluster
    assert 'id="sh-rollouts-table"' in html and f'href="{detail_url(world.rollout.pk)}"' in html
    assert "Waiting for approval of step 1" in html
    assert f'href="{reverse("admin:rollouts_rollout_release", args=[sidecarset.pk, 2])}"' in html

    data = change_form_data(page)
    prefix = next(
        inline.formset.prefix
        for inline in page.context["inline_admin_formsets"]
        if inline.formset.model is SidecarSetTarget
    )
    index = int(data[f"{prefix}-INITIAL_FORMS"])  # the first extra (blank) row
    data[f"{prefix}-TOTAL_FORMS"] = index + 1
    data.update({f"{prefix}-{index}-cluster": other.pk, f"{prefix}-{index}-wave": 3})
    saved = client.post(url, data)
    assert saved.status_code == 302, form_errors(saved)
    target = SidecarSetTarget.objects.get(sidecarset=sidecarset, cluster=other)
    assert target.wave == 3
    # The service did the write: a change-log row, and the placement re-resolved.
    assert ChangeRecord.objects.filter(object_id=str(target.pk), action="create").exists()
    assert SidecarSetPlacement.objects.filter(
        sidecarset=sidecarset, cluster=other, should_exist=True
    ).exists()
    assert sidecarset.version == SidecarSet.objects.get(pk=sidecarset.pk).version  # definition untouched

    # Delete it from the same page: through the service, placement marked for removal.
    page = client.get(url)
    data = change_form_data(page)
    position = next(
        i
        for i, form in enumerate(
            next(
                inline.formset
                for inline in page.context["inline_admin_formsets"]
                if inline.formset.model is SidecarSetTarget
            ).initial_forms
        )
        if form.instance.pk == target.pk
    )
    data[f"{prefix}-{position}-DELETE"] = "on"
    assert client.post(url, data).status_code == 302
    assert not SidecarSetTarget.objects.filter(pk=target.pk).exists()
    assert ChangeRecord.objects.filter(object_id=str(target.pk), action="delete").exists()
    assert not SidecarSetPlacement.objects.filter(
        sidecarset=sidecarset, cluster=other, should_exist=True
    ).exists()


# --- per-pod history ----------------------------------------------------------------------------------


def test_pod_history_has_few_columns_with_image_and_outcome_and_full_values_as_tooltips(
    world: World, db: None
) -> None:
    viewer = staff("history-viewer", *VIEW_PODS)
    html = login(viewer).get(reverse("admin:rollouts_podupdate_changelist")).content.decode()
    headers = re.findall(r'<th scope="col" class="[^"]*column-([a-z_]+)', html)
    assert headers == ["when", "pod_display", "rollout_link", "outcome_display", "image_change", "duration"]
    assert 'title="log-agent: log-agent:1 → log-agent:2">log-agent: 1 → <strong>2</strong>' in html
    assert 'title="shop/web-1">prod-eu · shop</span>' in html
    assert 'title="ErrImagePull: log-agent:2">ErrImagePull: log-agent:2</span>' in html
    assert "Succeeded" in html and "Failed" in html and "Claimed…" in html


def test_publish_preview_names_the_active_rollouts_it_supersedes(author: User) -> None:
    sidecarset, rollouts = _release_in_two_waves(author)
    update_sidecarset(
        "rel", source=document("rel", "log-agent:3", "1,50%,100%"), actor=author, expected_version=None
    )
    client = Client()
    client.force_login(make_user("preview-reader", *FLEET))
    body = client.get(f"/api/v1/sidecarsets/{sidecarset.name}/publish-preview/?pods=false").json()
    assert body["to_revision"] == 3
    assert [(s["id"], s["cluster"], s["to_revision"]) for s in body["supersedes"]] == [
        (rollouts[0].pk, "prod-eu", 2),
        (rollouts[1].pk, "prod-us", 2),
    ]
    staff_user = staff("preview-staff", *FLEET, "sidecarhub.publish_sidecarset")
    html = login(staff_user).get(reverse("admin:sidecarhub_sidecarset_publish", args=[sidecarset.pk]))
    assert (
        f'It supersedes: <a href="{detail_url(rollouts[0].pk)}">rollout {rollouts[0].pk}</a>'
        in html.content.decode()
    )


def test_a_target_by_cluster_labels_is_added_inline_and_a_bad_selector_is_refused_by_the_service(
    world: World, db: None
) -> None:
    sidecarset = world.rollout.live_sidecarset
    labelled = make_cluster("prod-labelled", labels={"env": "prod"})
    editor = staff("selector-editor", *FLEET, "sidecarhub.change_sidecarset", "clusters.add_sidecarsettarget")
    client = login(editor)
    url = reverse("admin:sidecarhub_sidecarset_change", args=[sidecarset.pk])

    def add_row(selector: str) -> Any:
        page = client.get(url)
        data = change_form_data(page)
        prefix = next(
            inline.formset.prefix
            for inline in page.context["inline_admin_formsets"]
            if inline.formset.model is SidecarSetTarget
        )
        index = int(data[f"{prefix}-INITIAL_FORMS"])
        data[f"{prefix}-TOTAL_FORMS"] = index + 1
        data.update({f"{prefix}-{index}-cluster_selector": selector, f"{prefix}-{index}-wave": 1})
        return client.post(url, data, follow=True)

    add_row('{"matchLabels": {"env": "prod"}}')
    target = SidecarSetTarget.objects.get(sidecarset=sidecarset, cluster__isnull=True)
    assert target.cluster_selector == {"matchLabels": {"env": "prod"}} and target.wave == 1
    assert SidecarSetPlacement.objects.filter(sidecarset=sidecarset, cluster=labelled).exists()

    refused = add_row('{"matchLabels": {"env": 5}}')
    # Checked by the service's own rule before anything is saved: shown under the field, the
    # page shown again (not a redirect), no success message.
    assert refused.redirect_chain == []
    targets = next(
        inline.formset
        for inline in refused.context["inline_admin_formsets"]
        if inline.formset.model is SidecarSetTarget
    )
    [row] = [form for form in targets.forms if form.errors]
    assert row.errors["cluster_selector"] == ["matchLabels must map strings to strings"]
    assert not [str(message) for message in refused.context["messages"]]
    assert SidecarSetTarget.objects.filter(sidecarset=sidecarset, cluster__isnull=True).count() == 1
