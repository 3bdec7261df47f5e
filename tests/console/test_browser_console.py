"""The console in a real Chromium (issue 16, "What must show it"): sign in and see the fleet
matrix; a second user approves from "waiting for my approval" while the author cannot; progress
appears without reloading the page; the per-pod history opens; the API docs render offline."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Request, Route, expect

from rollouts.choices import PodUpdateOutcome, StepState
from rollouts.models import Approval, Rollout, RolloutStep
from rollouts.transitions import pause_rollout_row
from tests.console.conftest import Console, save_failure_artifacts, sign_in_through_form, watcher
from tests.rollouts_api.conftest import (
    PODS,
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
    expect(live).to_contain_text("0 / 3 updated")
    mark_page(page)

    make_pod_update(step, PODS[0])  # the engine's row for one pod updated
    expect(live.locator(".sh-progress").first).to_contain_text("1 / 3 updated")
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
    expect(progress).to_contain_text("0 / 3 updated")
    comment = page.locator(f"#step-{step.pk} input[name=comment]")

    comment.fill("canary looks fine")
    make_pod_update(step, PODS[0])
    page.wait_for_timeout(3_000)  # three refresh periods
    expect(progress).to_contain_text("0 / 3 updated")  # not swapped: the comment would be lost
    expect(comment).to_have_value("canary looks fine")

    comment.fill("")
    comment.blur()
    expect(progress).to_contain_text("1 / 3 updated")


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
    expect(release).to_contain_text("0 / 3 updated")
    expect(page.locator("#sh-stopped")).to_contain_text("No rollout is paused or failed.")
    mark_page(page)

    make_pod_update(step, PODS[0])
    expect(release).to_contain_text("1 / 3 updated")
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
