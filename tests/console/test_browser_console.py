"""The console in a real Chromium (issue 16, "What must show it"): sign in and see the fleet
matrix; a second user approves from "waiting for my approval" while the author cannot; progress
appears without reloading the page; the per-pod history opens; the API docs render offline; and
the whole workflow of two teams in one scenario (``test_a_teams_author_publishes_...``)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Request, Route, expect

from clusters.models import SidecarSetTarget
from clusters.push import create_target, sync_placements
from rollouts.choices import PodUpdateOutcome, StepState
from rollouts.models import Approval, Rollout, RolloutStep
from rollouts.transitions import pause_rollout_row
from sidecarhub.models import SidecarSet, Team
from sidecarhub.services import create_sidecarset, publish_sidecarset
from tests.console.conftest import (
    Console,
    save_failure_artifacts,
    sign_in_through_form,
    team_member,
    watcher,
)
from tests.rollouts_api.conftest import (
    PODS,
    document,
    make_cluster,
    make_pod_update,
    make_rollout,
    start_and_prepare,
)

pytestmark = pytest.mark.django_db(transaction=True)


def mark_page(page: Page) -> None:
    """A value in the page's JavaScript state: gone if the page is ever reloaded."""
    page.evaluate("window.__sameDocument = 'yes'")


def same_document(page: Page) -> bool:
    return bool(page.evaluate("window.__sameDocument === 'yes'"))


def test_sign_in_lands_on_the_dashboard_with_the_fleet_matrix(console: Console) -> None:
    author = watcher("author")
    watcher("viewer")
    rollout = make_rollout(author, make_cluster("prod-eu"), name="log-agent")
    page = console.new_page()

    sign_in_through_form(page, console.url("/admin/login/?next=/admin/"), "viewer", "pw-viewer")

    expect(page.locator("h1")).to_have_text("Home")
    cell = page.locator('.sh-matrix-row[data-sidecarset="log-agent"] .sh-matrix-cell[data-cluster="prod-eu"]')
    # Revision 1 is served; revision 2 waits in its rollout (pending: its wave has not started).
    expect(cell.locator(".sh-serving")).to_have_text("serving #1 behind #2")
    expect(cell).to_contain_text(f"rollout {rollout.pk}")
    expect(cell).to_contain_text("pending")
    cell.get_by_role("link", name=f"rollout {rollout.pk}").click()
    expect(page.locator("h1")).to_contain_text(f"Rollout {rollout.pk}: log-agent in prod-eu")
    # The stock list of every model is still one click away.
    page.get_by_role("link", name="All models").first.click()
    expect(page.locator("#content-main")).to_contain_text("SidecarSets")


def test_a_second_user_approves_from_the_dashboard_and_the_author_cannot(console: Console) -> None:
    author = watcher("author")
    approver = watcher("approver")
    rollout = make_rollout(author, make_cluster("prod-eu"), name="log-agent")
    step = start_and_prepare(rollout)

    # Four eyes: the step does not wait for its own author.
    author_page = console.page_for(author)
    expect(author_page.locator("#sh-awaiting")).to_contain_text("Nothing waits for your approval.")

    page = console.page_for(approver)
    row = page.locator(f'.sh-awaiting-row[data-step="{step.pk}"]')
    expect(row).to_contain_text("log-agent")
    expect(row).to_contain_text("prod-eu")
    expect(row).to_contain_text("#1 → #2")
    expect(row).to_contain_text("3 in place")
    row.get_by_role("button", name="Approve step 1").click()

    # The approval went through the rollout page's own view: its page and message follow.
    expect(page.locator("ul.messagelist")).to_contain_text("step 1 approved", ignore_case=True)
    expect(page.locator(f"#step-{step.pk}")).to_contain_text("Approved by approver")
    assert RolloutStep.objects.get(pk=step.pk).state == StepState.APPROVED
    assert Approval.objects.get(step=step).actor_name == "approver"
    page.goto(console.url("/admin/"))
    expect(page.locator("#sh-awaiting")).to_contain_text("Nothing waits for your approval.")


def test_rollout_page_shows_progress_without_reloading(console: Console, fast_refresh: int) -> None:
    author = watcher("author")
    rollout = make_rollout(author, make_cluster("prod-eu"), name="log-agent")
    step = start_and_prepare(rollout)
    page = console.page_for(watcher("viewer"), f"/admin/rollouts/rollout/{rollout.pk}/change/")
    live = page.locator("#sh-rollout-live")
    expect(live).to_contain_text("rollout: 0 / 3 pods done")
    mark_page(page)

    make_pod_update(step, PODS[0])  # the engine's row for one pod updated
    expect(live.locator(".sh-progress").first).to_contain_text("rollout: 1 / 3 pods done")
    make_pod_update(step, PODS[1], outcome=PodUpdateOutcome.FAILED, error="ErrImagePull")
    expect(live.locator(".sh-progress").first).to_contain_text("1 failed")
    pause_rollout_row(rollout.pk, actor=None, reason="step 1: 1 pod failed (threshold 0)")
    expect(live.locator("#sh-status")).to_have_text("Paused: step 1: 1 pod failed (threshold 0)")
    assert same_document(page)


def test_a_refresh_waits_while_someone_types_in_the_region(console: Console, fast_refresh: int) -> None:
    rollout = make_rollout(watcher("author"), make_cluster("prod-eu"), name="log-agent")
    step = start_and_prepare(rollout)
    page = console.page_for(watcher("approver"), f"/admin/rollouts/rollout/{rollout.pk}/change/")
    progress = page.locator("#sh-rollout-live .sh-progress").first
    expect(progress).to_contain_text("rollout: 0 / 3 pods done")
    comment = page.locator(f"#step-{step.pk} input[name=comment]")

    comment.fill("canary looks fine")
    make_pod_update(step, PODS[0])
    page.wait_for_timeout(3_000)  # three refresh periods
    expect(progress).to_contain_text("rollout: 0 / 3 pods done")  # not swapped: the comment would be lost
    expect(comment).to_have_value("canary looks fine")

    comment.fill("")
    comment.blur()
    expect(progress).to_contain_text("rollout: 1 / 3 pods done")


def test_a_page_whose_session_ended_shows_the_login_form_not_inside_its_region(
    console: Console, fast_refresh: int
) -> None:
    page = console.page_for(watcher("viewer"))
    expect(page.locator("#sh-dashboard")).to_be_visible()

    page.context.clear_cookies()  # signed out (e.g. in another tab, or the session expired)

    expect(page).to_have_url(re.compile(r"/admin/login/"))
    expect(page.locator("#id_username")).to_be_visible()
    expect(page.locator("#sh-dashboard")).to_have_count(0)


def test_dashboard_shows_releases_and_stops_without_reloading(console: Console, fast_refresh: int) -> None:
    author = watcher("author")
    rollout = make_rollout(author, make_cluster("prod-eu"), name="log-agent")
    step = start_and_prepare(rollout)
    page = console.page_for(watcher("viewer"))
    release = page.locator('.sh-release-row[data-sidecarset="log-agent"][data-revision="2"]')
    expect(release).to_contain_text("wave 0 awaiting approval in cluster prod-eu")
    expect(release).to_contain_text("rollouts: 0 / 3 pods done")
    expect(page.locator("#sh-stopped")).to_contain_text("No rollout is paused or failed.")
    mark_page(page)

    make_pod_update(step, PODS[0])
    expect(release).to_contain_text("rollouts: 1 / 3 pods done")
    pause_rollout_row(rollout.pk, actor=None, reason="paused by a person: checking the canary")
    stopped = page.locator(f'.sh-stopped-row[data-rollout="{rollout.pk}"]')
    expect(stopped.locator(".sh-reason")).to_have_text("paused by a person: checking the canary")
    expect(release).to_contain_text("prod-eu paused")
    assert same_document(page)
    assert Rollout.objects.get(pk=rollout.pk).reason == "paused by a person: checking the canary"


def test_per_pod_history_opens_from_the_rollout_page(console: Console) -> None:
    author = watcher("author")
    rollout = make_rollout(author, make_cluster("prod-eu"), name="log-agent")
    step = start_and_prepare(rollout)
    make_pod_update(step, PODS[0])
    make_pod_update(step, PODS[1], outcome=PodUpdateOutcome.FAILED, error="ErrImagePull: log-agent:2")
    page = console.page_for(watcher("viewer"), f"/admin/rollouts/rollout/{rollout.pk}/change/")

    page.get_by_role("link", name="per-pod history", exact=True).click()

    expect(page.locator("h1")).to_contain_text("pod update")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("#result_list")).to_contain_text("web-0")
    expect(page.locator("#result_list")).to_contain_text("Succeeded")
    expect(page.locator("#result_list")).to_contain_text("Failed")


@pytest.mark.parametrize("path", ["/api/v1/docs/", "/api/v1/redoc/"])
def test_api_docs_render_without_internet(console: Console, path: str) -> None:
    """Every request to another host fails, as on a machine without internet; the page still
    renders the schema. ReDoc's standalone bundle asks for one decorative image (its maker's
    logo) of its own accord; nothing else may leave the hub."""
    page = console.new_page()
    own_host = urlsplit(console.base_url).netloc
    elsewhere: list[tuple[str, str]] = []

    def only_the_hub(route: Route, request: Request) -> None:
        if urlsplit(request.url).netloc == own_host:
            route.continue_()
        else:
            elsewhere.append((request.resource_type, request.url))
            route.abort()

    page.route("**/*", only_the_hub)
    page.goto(console.url(path))

    # ReDoc lays out the whole schema before it shows anything: seconds on a busy machine.
    expect(page.get_by_text("sidecarhub API").first).to_be_visible(timeout=60_000)
    if path.endswith("docs/"):
        expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
        assert elsewhere == []
    else:
        expect(page.get_by_text("/api/v1/rollouts/").first).to_be_attached()
        assert [kind for kind, _ in elsewhere if kind != "image"] == []


def test_failure_artifacts_are_a_screenshot_and_the_html_of_each_open_page(
    console: Console, tmp_path: Path
) -> None:
    first = console.page_for(watcher("viewer"))
    second = console.new_page()
    second.goto(console.url("/admin/login/"))
    second.close()

    written = save_failure_artifacts([first, second], "a-test", tmp_path)

    assert written == [tmp_path / "a-test-1.png", tmp_path / "a-test-1.html"]  # a closed page has none
    assert written[0].read_bytes().startswith(b"\x89PNG")
    assert 'id="sh-dashboard"' in written[1].read_text()


@pytest.mark.usefixtures("roles")
def test_a_teams_author_publishes_and_only_the_teams_approver_approves(
    console: Console, fast_refresh: int
) -> None:
    """Issue 16's browser scenario, as people with ready-made roles in two teams live it: the
    payments author publishes an image change through the publish page (preview first, then a
    link to the release); the search approver neither sees nor may decide the step (not even by
    a forced POST); the payments approver approves from the dashboard; the rollout page follows
    the pods without reloading; the per-pod history shows each pod's image and outcome.

    The engine is not running (``quiet_queue``): its work is simulated the way the other tests
    here do it, by the transitions it makes (step 1 prepared) and the PodUpdate rows it writes."""
    payments, search = Team.objects.create(name="payments"), Team.objects.create(name="search")
    author = team_member("pay-author", "author", teams=(payments,))
    team_member("search-approver", "approver", teams=(search,))
    pay_approver = team_member("pay-approver", "approver", teams=(payments,))
    # pay-mesh serves revision 1 in two payments clusters, one per wave; a canary pod first.
    sidecarset = create_sidecarset(document("pay-mesh", "log-agent:1", "1,100%"), actor=author)
    SidecarSet.objects.filter(pk=sidecarset.pk).update(owner_team=payments)
    for wave, cluster in enumerate(("pay-eu", "pay-us")):
        target = make_cluster(cluster, owner_team=payments)
        create_target(sidecarset_id=sidecarset.pk, cluster_id=target.pk, wave=wave)
    publish_sidecarset("pay-mesh", actor=author)
    sync_placements(sidecarset.pk)

    # 1. The author signs in, changes the image and publishes, seeing what it will do first.
    page = console.new_page()
    sign_in_through_form(page, console.url("/admin/login/?next=/admin/"), "pay-author", "pw-pay-author")
    expect(page.locator("#sh-dashboard")).to_be_visible()
    page.goto(console.url(f"/admin/sidecarhub/sidecarset/{sidecarset.pk}/change/"))
    definition = page.locator("#id_document_yaml")
    definition.fill(definition.input_value().replace("log-agent:1", "log-agent:2"))
    page.click("input[name=_continue]")
    expect(page.locator("ul.messagelist")).to_contain_text("was changed successfully")
    page.get_by_role("link", name="Publish (unpublished changes)").click()
    preview = page.locator("#sh-publish-preview")
    expect(preview).to_contain_text("It becomes revision 2 (after revision 1)")
    expect(preview).to_contain_text("images_only")
    expect(preview).to_contain_text("2 rollouts in 2 waves, steps 1, 100% (2 steps, each approved)")
    for wave, cluster in enumerate(("pay-eu", "pay-us")):
        row = preview.locator(f'#sh-preview-clusters tr[data-cluster="{cluster}"]')
        expect(row.locator("td").first).to_have_text(str(wave))
        expect(row).to_contain_text("#1")  # serves revision 1 now
        expect(row).to_contain_text("in place")
        # The test clusters cannot be reached: the pods are unknown and the page says why.
        expect(row.locator(".sh-recreate")).to_contain_text(f"cannot read the pods of cluster {cluster}")
    assert not Rollout.objects.exists()  # a preview writes nothing
    page.fill("#id_message", "log-agent 2")
    page.click("input[type=submit][value=Publish]")
    success = page.locator("ul.messagelist .success")
    expect(success).to_contain_text("Published pay-mesh")
    expect(success).to_contain_text("Release of revision 2: 2 rollouts (pay-eu, pay-us).")
    success.get_by_role("link", name="Release of revision 2").click()
    expect(page.locator("#content")).to_contain_text("pay-eu")
    expect(page.locator("#content")).to_contain_text("pay-us")
    rollout = Rollout.objects.get(sidecarset=sidecarset, to_revision_number=2, wave=0)
    assert (rollout.cluster_name, rollout.author_id) == ("pay-eu", author.pk)
    step = start_and_prepare(rollout)  # the engine starts wave 0 and prepares its step 1
    rollout_path = f"/admin/rollouts/rollout/{rollout.pk}/change/"

    # 2. An approver of another team: not in their list, refused on the page and by a POST.
    stranger = console.new_page()
    sign_in_through_form(
        stranger, console.url("/admin/login/?next=/admin/"), "search-approver", "pw-search-approver"
    )
    expect(stranger.locator("#sh-awaiting")).to_contain_text("Nothing waits for your approval.")
    stranger.goto(console.url(rollout_path))
    expect(stranger.locator(f"#step-{step.pk} .sh-refusal")).to_have_text(
        "You cannot decide on this step: search-approver is not a member of team 'payments', "
        "which owns the approval of steps in cluster 'pay-eu'."
    )
    expect(stranger.get_by_role("button", name=re.compile("^Approve"))).to_have_count(0)
    csrf = next(c["value"] for c in stranger.context.cookies() if c["name"] == "csrftoken")
    forced = stranger.request.post(
        console.url(f"/admin/rollouts/rollout/{rollout.pk}/steps/{step.pk}/approve/"),
        form={"csrfmiddlewaretoken": csrf, "comment": "let me"},
    )
    assert forced.ok  # the refusal is a message on the rollout page it redirects to
    assert "is not a member of team" in forced.text()
    assert RolloutStep.objects.get(pk=step.pk).state == StepState.AWAITING_APPROVAL
    assert not Approval.objects.exists()

    # 3. The payments approver (not the author) approves from the dashboard.
    approver = console.new_page()
    sign_in_through_form(
        approver, console.url("/admin/login/?next=/admin/"), "pay-approver", "pw-pay-approver"
    )
    row = approver.locator(f'.sh-awaiting-row[data-step="{step.pk}"]')
    expect(row).to_contain_text("pay-mesh")
    expect(row).to_contain_text("pay-eu")
    expect(row).to_contain_text("#1 → #2")
    row.get_by_role("button", name="Approve step 1").click()
    expect(approver.locator("ul.messagelist")).to_contain_text("step 1 approved", ignore_case=True)
    expect(approver.locator(f"#step-{step.pk}")).to_contain_text("Approved by pay-approver")
    assert Approval.objects.get(step=step).actor_name == pay_approver.username

    # 4. The engine updates the pods; the rollout page follows without reloading.
    expect(approver).to_have_url(re.compile(re.escape(rollout_path) + "$"))
    live = approver.locator("#sh-rollout-live")
    expect(live.locator(".sh-progress").first).to_contain_text("rollout: 0 / 3 pods done")
    mark_page(approver)
    make_pod_update(step, PODS[0])
    expect(live.locator(".sh-progress").first).to_contain_text("rollout: 1 / 3 pods done")
    make_pod_update(step, PODS[1], outcome=PodUpdateOutcome.FAILED, error="ErrImagePull: log-agent:2")
    expect(live.locator(".sh-progress").first).to_contain_text("1 failed")
    assert same_document(approver)

    # 5. The per-pod history: each pod with its image and outcome, on screen at 1400 px.
    approver.get_by_role("link", name="per-pod history", exact=True).click()
    rows = approver.locator("#result_list tbody tr")
    expect(rows).to_have_count(2)
    for pod, outcome in (("web-0", "Succeeded"), ("web-1", "FailedErrImagePull: log-agent:2")):
        pod_row = rows.filter(has_text=pod)
        image, result = pod_row.locator("td.field-image_change"), pod_row.locator("td.field-outcome_display")
        expect(image).to_have_text("log-agent: 1 → 2")
        expect(image.locator(".sh-image")).to_have_attribute("title", "log-agent: log-agent:1 → log-agent:2")
        expect(result).to_have_text(outcome)
        expect(image).to_be_in_viewport()
        expect(result).to_be_in_viewport()


@pytest.mark.usefixtures("roles")
def test_a_refused_target_edit_keeps_what_was_typed_and_shows_only_the_error(console: Console) -> None:
    """Payments' author changes the image and adds a target row with a bad selector, then one
    naming search's cluster: each time the page comes back with the refusal on that row only (no
    green "changed successfully"), the edited YAML and the row as typed still there, nothing
    saved; choosing payments' cluster instead saves both, with the success alone."""
    payments, search = Team.objects.create(name="payments"), Team.objects.create(name="search")
    author = team_member("pay-author", "author", teams=(payments,))
    sidecarset = create_sidecarset(document("pay-mesh", "log-agent:1"), actor=author, owner_team="payments")
    create_target(sidecarset_id=sidecarset.pk, cluster_id=make_cluster("pay-eu", owner_team=payments).pk)
    pay_us = make_cluster("pay-us", owner_team=payments)
    search_prod = make_cluster("prod-search", owner_team=search)
    page = console.page_for(author, f"/admin/sidecarhub/sidecarset/{sidecarset.pk}/change/")

    definition = page.locator("#id_document_yaml")
    definition.fill(definition.input_value().replace("log-agent:1", "log-agent:2"))
    selector = page.locator("#id_cluster_targets-1-cluster_selector")  # the blank row below pay-eu's
    selector.fill('{"matchLabels": {"env": 5}}')
    page.click("input[name=_continue]")

    errors = page.locator("#cluster_targets-group .errorlist")
    expect(errors).to_have_text("matchLabels must map strings to strings")
    expect(page.locator("ul.messagelist")).to_have_count(0)  # no "was changed successfully"
    expect(selector).to_have_value('{"matchLabels": {"env": 5}}')
    expect(definition).to_have_value(re.compile("log-agent:2"))

    selector.fill("")
    new_row = page.locator("#id_cluster_targets-1-cluster")
    new_row.select_option(str(search_prod.pk))
    page.fill("#id_cluster_targets-1-wave", "1")
    page.click("input[name=_continue]")

    expect(page.locator(".errornote")).to_be_visible()
    refusal = "pay-author is not a member of team 'search', which owns cluster 'prod-search'"
    expect(errors).to_have_text(refusal)
    expect(page.locator("ul.messagelist")).to_have_count(0)  # no "was changed successfully"
    expect(definition).to_have_value(re.compile("log-agent:2"))
    expect(new_row).to_have_value(str(search_prod.pk))
    expect(page.locator("#id_cluster_targets-1-wave")).to_have_value("1")
    assert SidecarSet.objects.get(pk=sidecarset.pk).spec["containers"][0]["image"] == "log-agent:1"
    assert not SidecarSetTarget.objects.filter(cluster=search_prod).exists()

    new_row.select_option(str(pay_us.pk))
    page.click("input[name=_continue]")

    expect(page.locator("ul.messagelist .success")).to_contain_text("was changed successfully")
    expect(page.locator("ul.messagelist .error")).to_have_count(0)
    expect(page.locator(".errornote")).to_have_count(0)
    assert SidecarSet.objects.get(pk=sidecarset.pk).spec["containers"][0]["image"] == "log-agent:2"
    assert SidecarSetTarget.objects.get(cluster=pay_us).wave == 1
