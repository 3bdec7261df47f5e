"""The home dashboard and the live regions, through Django's test client (the browser tests show
the same in Chromium): the console's first page, what each section lists and for whom, the
regions htmx polls, the API docs' own assets, and the console's names and times."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.staticfiles import finders
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import formats, timezone

from clusters.models import Cluster, SidecarSetPlacement
from rollouts.choices import PodUpdateOutcome, RolloutState
from rollouts.dashboard import (
    fleet_matrix,
    releases_in_flight,
    steps_awaiting_approval_by,
    stopped_rollouts,
)
from rollouts.fleet import fleets_of
from rollouts.models import Rollout
from rollouts.queries import progress_of
from rollouts.transitions import pause_rollout_row
from tests.console.conftest import WATCHER, make_staff_user
from tests.rollouts_api.conftest import PODS, make_cluster, make_pod_update, make_rollout, start_and_prepare

pytestmark = pytest.mark.django_db


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def live(client: Client, url: str) -> str:
    """What htmx's poll of ``url`` gets back."""
    response = client.get(url, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "HX-Request" in response.headers["Vary"] and "no-store" in response.headers["Cache-Control"]
    return response.content.decode()


# --- the first page ------------------------------------------------------------------------------


def test_the_console_opens_on_the_dashboard_and_every_model_is_one_link_away() -> None:
    viewer = make_staff_user("viewer", *WATCHER)
    rollout = make_rollout(viewer, make_cluster("prod-eu"), name="log-agent")
    client = signed_in(viewer)

    home = client.get("/admin/").content.decode()
    assert reverse("admin:index") == "/admin/"
    assert "<h1>Home</h1>" in home
    for section in ("sh-awaiting", "sh-fleet-matrix", "sh-in-flight", "sh-stopped"):
        assert f'id="{section}"' in home
    assert f'href="/admin/rollouts/rollout/{rollout.pk}/change/"' in home
    assert 'href="/admin/models/"' in home

    models = client.get("/admin/models/").content.decode()
    assert "All models" in models and 'href="/admin/rollouts/rollout/"' in models
    # issue 16 item 10: Kruise's spelling everywhere.
    assert "SidecarSets" in models and "Sidecar set" not in models


def test_sections_follow_the_users_permissions() -> None:
    make_rollout(None, make_cluster("prod-eu"), name="log-agent")
    html = signed_in(make_staff_user("nobody")).get("/admin/").content.decode()
    assert 'id="sh-fleet-matrix"' not in html and 'id="sh-in-flight"' not in html
    assert "You cannot approve rollout steps" in html
    assert "log-agent" not in html


# --- the queries ----------------------------------------------------------------------------------


def test_fleet_matrix_puts_each_fleet_row_under_its_cluster() -> None:
    eu, us = make_cluster("prod-eu"), make_cluster("prod-us")
    make_rollout(None, eu, name="log-agent")
    make_rollout(None, us, name="mesh-proxy")

    matrix = fleet_matrix()

    assert [cluster.name for cluster in matrix.clusters] == ["prod-eu", "prod-us"]
    assert [row.sidecarset for row in matrix.rows] == ["log-agent", "mesh-proxy"]
    log_agent, mesh_proxy = matrix.rows
    assert log_agent.cells[1] is None and mesh_proxy.cells[0] is None
    cell = log_agent.cells[0]
    assert cell is not None and cell.cluster == "prod-eu"
    assert (cell.serving_revision, cell.current_revision, cell.behind) == (1, 2, True)
    assert not matrix.truncated
    assert fleet_matrix(limit=1).truncated


def test_fleet_matrix_costs_a_fixed_number_of_queries() -> None:
    clusters = [make_cluster(f"c-{index}") for index in range(3)]
    make_rollout(None, clusters[0], name="s-0")
    with CaptureQueriesContext(connection) as one:
        fleet_matrix()
    for index in range(1, 7):
        make_rollout(None, clusters[index % 3], name=f"s-{index}")
    with CaptureQueriesContext(connection) as seven:
        matrix = fleet_matrix()
    assert len(matrix.rows) == 7 and len(matrix.clusters) == 3
    assert len(one.captured_queries) == len(seven.captured_queries) <= 10
    # The batch keeps the order asked for and leaves out what does not exist.
    last, first = matrix.rows[-1].sidecarset_id, matrix.rows[0].sidecarset_id
    assert [found.sidecarset for found in fleets_of([last, 10**9, first])] == ["s-6", "s-0"]


def test_steps_awaiting_approval_apply_the_approval_rules() -> None:
    author = make_staff_user("author", *WATCHER)
    approver = make_staff_user("approver", *WATCHER)
    cluster = make_cluster("prod-eu")
    step = start_and_prepare(make_rollout(author, cluster, name="log-agent"))

    assert [found.pk for found in steps_awaiting_approval_by(approver)] == [step.pk]
    assert steps_awaiting_approval_by(author) == []  # four eyes
    assert steps_awaiting_approval_by(make_staff_user("viewer", "rollouts.view_rollout")) == []
    Cluster.objects.filter(pk=cluster.pk).update(rollout_requires_second_person=False)
    assert [found.pk for found in steps_awaiting_approval_by(author)] == [step.pk]
    pause_rollout_row(step.rollout_id, actor=None, reason="paused")  # not approvable while paused
    assert steps_awaiting_approval_by(approver) == []


def test_releases_in_flight_sum_their_rollouts_progress_and_stopped_ones_say_why() -> None:
    step = start_and_prepare(make_rollout(None, make_cluster("prod-eu"), name="log-agent"))
    make_pod_update(step, PODS[0])
    make_pod_update(step, PODS[1], outcome=PodUpdateOutcome.FAILED, error="ErrImagePull")

    [item] = releases_in_flight()
    assert (item.sidecarset, item.release.revision) == ("log-agent", 2)
    assert (item.progress.total, item.progress.updated, item.progress.failed) == (3, 1, 1)
    assert stopped_rollouts() == []

    pause_rollout_row(step.rollout_id, actor=None, reason="step 1: 1 pod failed (threshold 0)")
    [stopped] = stopped_rollouts()
    assert stopped.reason == "step 1: 1 pod failed (threshold 0)" and progress_of(stopped).failed == 1

    Rollout.objects.filter(pk=step.rollout_id).update(state=RolloutState.ABORTED)
    assert releases_in_flight() == []


# --- two pod counts, worded apart -----------------------------------------------------------------

# A bar of the console: its class, its tooltip and its words.
BAR = re.compile(
    r'<div class="(sh-observed-pods|sh-progress)" title="([^"]*)".*?'
    r'<span style="font-size:11px;white-space:nowrap">(.*?)</span></div>',
    re.DOTALL,
)


def bars(page: str) -> list[tuple[str, str, str]]:
    """(kind, tooltip, words) of every bar on the page; kind "observed" or "ledger"."""
    return [
        ("observed" if kind == "sh-observed-pods" else "ledger", html.unescape(title), words)
        for kind, title, words in BAR.findall(page)
    ]


def test_a_clusters_observed_pods_and_a_rollouts_own_record_never_read_alike() -> None:
    """The cluster reports 6 pods matched, 2 on its revision (Kruise's counters, pods created
    since included); the rollout's own record says 1 of its 3 planned pods is done. Each page
    showing either says which it is, and no bar says "updated" for both."""
    step = start_and_prepare(make_rollout(None, make_cluster("prod-eu"), name="log-agent"))
    make_pod_update(step, PODS[0])
    SidecarSetPlacement.objects.filter(sidecarset_name="log-agent").update(
        matched_pods=6, updated_pods=2, ready_pods=6, status_observed_at=timezone.now()
    )
    rollout = Rollout.objects.get(pk=step.rollout_id)
    client = signed_in(make_staff_user("viewer", *WATCHER))
    pages = {
        "dashboard": "/admin/",
        "SidecarSet": reverse("admin:sidecarhub_sidecarset_change", args=[rollout.sidecarset_id]),
        "release": reverse("admin:rollouts_rollout_release", args=[rollout.sidecarset_id, 2]),
        "rollout": reverse("admin:rollouts_rollout_change", args=[rollout.pk]),
    }
    shown = {name: bars(client.get(url).content.decode()) for name, url in pages.items()}

    observed = "pods on revision: 2 / 6"
    assert [words for kind, _, words in shown["dashboard"] if kind == "observed"] == [observed]
    assert [words for kind, _, words in shown["SidecarSet"] if kind == "observed"] == [observed]
    assert "rollouts: 1 / 3 pods done" in [words for _, _, words in shown["dashboard"]]
    assert "rollout: 1 / 3 pods done" in [words for _, _, words in shown["SidecarSet"]]
    assert [words for _, _, words in shown["release"]] == [
        "rollouts: 1 / 3 pods done",  # the release, summed over its rollouts
        "rollout: 1 / 3 pods done",  # its one cluster's rollout
    ]
    assert [words for _, _, words in shown["rollout"]] == [
        "rollout: 1 / 3 pods done",
        "step: 1 / 3 pods done",
        "step: 0 / 0 pods done",  # step 2, not prepared yet
    ]
    for name, found in shown.items():
        for kind, tooltip, words in found:
            assert "updated" not in words, (name, words)
            if kind == "observed":
                assert tooltip.startswith("Observed live in cluster prod-eu by its status refresh at ")
                assert "pods created since a rollout began included: not a rollout's own count" in tooltip
            else:
                assert "own record" in tooltip and "not a live count" in tooltip, (name, tooltip)


# --- live regions ---------------------------------------------------------------------------------


def test_the_dashboard_poll_gets_its_region_alone(settings: Any) -> None:
    settings.SIDECARHUB_CONSOLE_REFRESH_SECONDS = 7
    step = start_and_prepare(make_rollout(None, make_cluster("prod-eu"), name="log-agent"))
    client = signed_in(make_staff_user("viewer", *WATCHER))

    page = client.get("/admin/").content.decode()
    region = live(client, "/admin/")

    assert "<html" in page and "htmx.min.js" in page
    assert "<html" not in region and "htmx.min.js" not in region
    assert region.lstrip().startswith('<div id="sh-dashboard"')
    assert 'hx-get="/admin/"' in region and 'hx-trigger="every 7s [sidecarhubLive.idle(this)]"' in region
    assert 'hx-swap="outerHTML"' in region
    assert "rollouts: 0 / 3 pods done" in region
    make_pod_update(step, PODS[0])
    assert "rollouts: 1 / 3 pods done" in live(client, "/admin/")


def test_the_rollout_page_polls_while_the_rollout_can_change() -> None:
    step = start_and_prepare(make_rollout(None, make_cluster("prod-eu"), name="log-agent"))
    client = signed_in(make_staff_user("viewer", *WATCHER))
    url = reverse("admin:rollouts_rollout_change", args=[step.rollout_id])

    region = live(client, url)
    assert region.lstrip().startswith('<div id="sh-rollout-live"') and "<html" not in region
    assert f'hx-get="{url}"' in region and f'id="step-{step.pk}"' in region

    Rollout.objects.filter(pk=step.rollout_id).update(state=RolloutState.ABORTED)
    finished = client.get(url).content.decode()
    assert 'id="sh-rollout-live"' in finished and "hx-get" not in finished


def test_the_fleet_panel_polls_its_own_url_and_needs_the_fleet_permissions() -> None:
    rollout = make_rollout(None, make_cluster("prod-eu"), name="log-agent")
    url = reverse("admin:rollouts_rollout_fleet", args=[rollout.sidecarset_id])
    client = signed_in(make_staff_user("viewer", *WATCHER))

    page = client.get(reverse("admin:sidecarhub_sidecarset_change", args=[rollout.sidecarset_id]))
    assert f'hx-get="{url}"' in page.content.decode()
    region = live(client, url)
    assert 'id="sh-fleet-live"' in region and 'data-cluster="prod-eu"' in region and "<html" not in region

    no_clusters = signed_in(make_staff_user("no-clusters", "rollouts.view_rollout"))
    assert no_clusters.get(url).status_code == 403


# --- API docs offline, names, times ------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/docs/", "/api/v1/redoc/"])
def test_api_docs_load_only_the_hubs_own_assets(path: str) -> None:
    html = Client().get(path).content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets, html
    for asset in assets:
        assert asset.startswith("/"), f"{asset} is not served by the hub"
        if asset.startswith("/static/"):
            assert finders.find(asset.removeprefix("/static/")), f"{asset} is not in any static directory"


def test_times_are_24_hour_utc_everywhere() -> None:
    afternoon = datetime(2026, 12, 5, 13, 5, 9, tzinfo=UTC)
    assert formats.date_format(afternoon, "DATETIME_FORMAT") == "2026-12-05 13:05:09 UTC"
    assert formats.date_format(afternoon, "SHORT_DATETIME_FORMAT") == "2026-12-05 13:05 UTC"
    assert formats.localize(afternoon) == "2026-12-05 13:05:09 UTC"


def test_the_dashboard_poll_costs_the_same_queries_however_many_sidecarsets_are_in_flight() -> None:
    """The poll every few seconds: releases in flight are read for all SidecarSets at once
    (``releases_of_many``), so 20 SidecarSets cost what one does, within a small constant."""
    clusters = [make_cluster(f"c-{index}") for index in range(3)]
    start_and_prepare(make_rollout(None, clusters[0], name="s-0"))
    client = signed_in(make_staff_user("viewer", *WATCHER))

    def poll() -> int:
        with CaptureQueriesContext(connection) as captured:
            live(client, "/admin/")
        return len(captured.captured_queries)

    one = poll()
    for index in range(1, 20):
        start_and_prepare(make_rollout(None, clusters[index % 3], name=f"s-{index}"))
    twenty = poll()
    assert len(releases_in_flight()) == 20  # each SidecarSet's release is on the page
    assert twenty <= one + 2, (one, twenty)
