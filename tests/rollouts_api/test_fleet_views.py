"""The fleet view's adapters: ``GET /api/v1/sidecarsets/{name}/fleet/`` and ``.../releases/``
(permissions, 401, 403, 404 naming the SidecarSet, shapes, the schema), the Fleet and Releases
tables on the SidecarSet's admin page, and ``manage.py sidecarhub fleet | releases``."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from rollouts.choices import RolloutState, StepState
from rollouts.models import RolloutStep
from sidecarhub.clitools import EXIT_NOT_FOUND, EXIT_TIMEOUT
from sidecarhub.models import SidecarSet
from tests.clusters.conftest import make_user
from tests.rollouts_api.fleet_rows import add_drift, add_rollout, make_sidecarset, place

pytestmark = pytest.mark.django_db

FLEET = ("sidecarhub.view_sidecarset", "clusters.view_cluster", "rollouts.view_rollout")
URLS = ("/api/v1/sidecarsets/web/fleet/", "/api/v1/sidecarsets/web/releases/")


@pytest.fixture
def web() -> SidecarSet:
    """``web`` at revision 2: prod-eu (wave 0) serves 2 and its step 1 awaits approval;
    prod-us (wave 1) serves 1, is held, and has 2 drifted pods."""
    web = make_sidecarset("web", 2)
    eu = place(web, "prod-eu", serving=2, pods=(8, 2, 8))
    add_rollout(web, eu, to=2, state=RolloutState.RUNNING, steps=((StepState.AWAITING_APPROVAL, 1),))
    us = place(web, "prod-us", wave=1, serving=1, held=True, held_reason="freeze")
    add_rollout(web, us, to=2, wave=1, reason="held: cluster prod-us is held")
    add_drift(us, "web", count=2)
    return web


def client_for(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


# --- API ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", URLS)
def test_anonymous_gets_401(web: SidecarSet, url: str) -> None:
    response = client_for(None).get(url)
    assert response.status_code == 401
    assert response.json()["errors"][0]["message"]


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("missing", FLEET)
def test_each_permission_is_needed(web: SidecarSet, url: str, missing: str) -> None:
    user = make_user("partial", *(perm for perm in FLEET if perm != missing))
    response = client_for(user).get(url)
    assert response.status_code == 403
    assert "errors" in response.json()


@pytest.mark.parametrize("url", URLS)
def test_unknown_sidecarset_is_404_naming_it(web: SidecarSet, url: str) -> None:
    response = client_for(make_user("viewer", *FLEET)).get(url.replace("/web/", "/nope/"))
    assert response.status_code == 404
    assert response.json() == {"errors": [{"path": None, "message": "SidecarSet 'nope' not found"}]}


def test_fleet_body(web: SidecarSet) -> None:
    response = client_for(make_user("viewer", *FLEET)).get("/api/v1/sidecarsets/web/fleet/")
    assert response.status_code == 200
    body = response.json()
    assert (body["sidecarset"], body["sidecarset_id"], body["current_revision"]) == ("web", web.pk, 2)
    eu, us = body["clusters"]
    assert (eu["cluster"], eu["wave"], eu["serving_revision"], eu["behind"], eu["held"]) == (
        "prod-eu",
        0,
        2,
        False,
        False,
    )
    assert eu["pods"] == {
        "matched": 8,
        "updated": 2,
        "ready": 8,
        "updated_ready": None,
        "observed_at": eu["pods"]["observed_at"],
    }
    rollout = eu["latest_rollout"]
    shown = ("state", "step_ordinal", "step_state", "awaiting_approval")
    assert [rollout[key] for key in shown] == ["running", 1, "awaiting_approval", True]
    assert (eu["needs_recreate"], eu["drift"]) == (1, 0)
    assert (us["cluster"], us["serving_revision"], us["behind"], us["held"], us["held_reason"]) == (
        "prod-us",
        1,
        True,
        True,
        "freeze",
    )
    assert us["pods"]["matched"] is None and us["drift"] == 2
    assert us["latest_rollout"]["reason"] == "held: cluster prod-us is held"


def test_releases_body_and_limit(web: SidecarSet) -> None:
    client = client_for(make_user("viewer", *FLEET))
    body = client.get("/api/v1/sidecarsets/web/releases/").json()
    [release] = body["releases"]
    assert (release["revision"], release["current"], release["stage"], release["stage_text"]) == (
        2,
        True,
        "awaiting_approval",
        "wave 0 awaiting approval in cluster prod-eu",
    )
    assert [
        (wave["wave"], [(c["cluster"], c["held"], c["rollout"]["state"]) for c in wave["clusters"]])
        for wave in release["waves"]
    ] == [(0, [("prod-eu", False, "running")]), (1, [("prod-us", True, "pending")])]
    assert release["waves"][1]["clusters"][0]["rolled_back"] is False
    assert client.get("/api/v1/sidecarsets/web/releases/?limit=1").status_code == 200
    bad = client.get("/api/v1/sidecarsets/web/releases/?limit=0")
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["path"] == "limit"


def test_the_api_root_still_answers(web: SidecarSet) -> None:
    assert client_for(make_user("viewer", *FLEET)).get("/api/v1/").status_code == 200


def test_schema_documents_the_fleet_endpoints(tmp_path: Path) -> None:
    target = tmp_path / "schema.yaml"
    err = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target), stderr=err)
    assert "Warning" not in err.getvalue() and "Error" not in err.getvalue(), err.getvalue()
    paths = yaml.safe_load(target.read_text())["paths"]
    fleet = paths["/api/v1/sidecarsets/{name}/fleet/"]["get"]
    releases = paths["/api/v1/sidecarsets/{name}/releases/"]["get"]
    assert {"200", "401", "403", "404"} <= set(fleet["responses"])
    assert {"200", "400", "401", "403", "404"} <= set(releases["responses"])
    assert {parameter["name"] for parameter in releases["parameters"]} == {"name", "limit"}


# --- admin -------------------------------------------------------------------------------------


def staff(username: str, *perms: str) -> Client:
    user = make_user(username, *perms)
    User.objects.filter(pk=user.pk).update(is_staff=True)
    client = Client()
    client.force_login(User.objects.get(pk=user.pk))
    return client


def test_admin_page_shows_the_fleet_and_releases_tables(web: SidecarSet) -> None:
    response = staff("viewer", *FLEET).get(reverse("admin:sidecarhub_sidecarset_change", args=[web.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="sh-fleet-table"' in html and 'id="sh-releases-table"' in html
    assert html.count('class="sh-fleet-row"') == 2
    eu_rollout = web.rollouts.get(cluster__name="prod-eu")
    assert reverse("admin:rollouts_rollout_change", args=[eu_rollout.pk]) in html
    assert "behind #2" in html and "freeze" in html
    # The pods the cluster reported, worded apart from a rollout's own record (its bar).
    assert "pods on revision: 2 / 8" in html and 'class="sh-observed-pods"' in html
    assert "Pods on revision (live)" in html and "2 / 8 updated" not in html
    assert "wave 0 awaiting approval in cluster prod-eu" in html
    assert reverse("admin:clusters_driftedpod_changelist") in html


def test_admin_page_without_rollout_permissions_has_no_fleet(web: SidecarSet) -> None:
    response = staff("author", "sidecarhub.view_sidecarset").get(
        reverse("admin:sidecarhub_sidecarset_change", args=[web.pk])
    )
    assert response.status_code == 200
    assert "sh-fleet-table" not in response.content.decode()


def test_admin_page_of_a_sidecarset_without_targets() -> None:
    draft = SidecarSet.objects.create(name="draft", spec=make_sidecarset("tmp", 1).spec)
    html = staff("viewer", *FLEET).get(reverse("admin:sidecarhub_sidecarset_change", args=[draft.pk]))
    assert "No target cluster" in html.content.decode() and "No release yet" in html.content.decode()


# --- CLI ---------------------------------------------------------------------------------------


def run(*argv: str) -> str:
    out = io.StringIO()
    call_command("sidecarhub", *argv, stdout=out)
    return out.getvalue()


@pytest.fixture
def cli_viewer(web: SidecarSet, cli_as: Any) -> User:
    """The CLI runs as a user who may see the fleet and its rollouts, nothing more."""
    return cli_as(make_user("cli-viewer", *FLEET))


def test_cli_fleet_table(web: SidecarSet, cli_viewer: User) -> None:
    lines = run("fleet", "web").splitlines()
    assert lines[0] == "SidecarSet web: current revision #2"
    assert lines[1].split() == [
        "CLUSTER", "WAVE", "SERVING", "HELD", "ROLLOUT", "STATE", "STEP", "PODS", "ON", "REVISION",
        "RECREATE", "DRIFT",
    ]  # fmt: skip
    eu = lines[2]
    assert eu.startswith("prod-eu") and "#2 " in eu and "#1->#2" in eu and "running" in eu
    assert "1/1 awaiting_approval" in eu and "2/8, 8 ready" in eu
    us = lines[3]
    assert us.startswith("prod-us") and "#1 (behind)" in us and "held: freeze" in us
    assert "not observed" in us and us.split()[-1] == "2"  # drift
    assert lines[4] == (
        "PODS ON REVISION: observed live in the cluster (pods created since included), not a rollout's count"
    )


def test_cli_fleet_json_is_the_api_body(web: SidecarSet, cli_viewer: User) -> None:
    body = json.loads(run("fleet", "web", "--json"))
    api = client_for(make_user("viewer", *FLEET)).get("/api/v1/sidecarsets/web/fleet/").json()
    assert body == api


def test_cli_release_status(web: SidecarSet, cli_viewer: User) -> None:
    text = run("release", "status", "web")
    lines = text.splitlines()
    assert lines[0] == "revision 2 (current): wave 0 awaiting approval in cluster prod-eu"
    assert lines[1].split() == [
        "WAVE", "CLUSTER", "HELD", "ROLLOUT", "STATE", "STEP", "ROLLOUT", "PROGRESS", "RECREATE", "NOTE",
    ]  # fmt: skip
    assert "prod-us" in text and "held: freeze" in text
    step = RolloutStep.objects.get(rollout__cluster_name="prod-eu", state=StepState.AWAITING_APPROVAL)
    assert (
        f"cluster prod-eu: step 1 of rollout {step.rollout_id} awaits approval ({step.pod_count} pods): "
        f"sidecarhub rollout approve {step.pk} [-m COMMENT]"
    ) in text
    body = json.loads(run("release", "status", "web", "--json", "--limit", "1"))
    assert [release["revision"] for release in body["releases"]] == [2]


def test_cli_release_watch_waits_while_the_release_goes_on(web: SidecarSet, cli_viewer: User) -> None:
    out = io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("sidecarhub", "release", "status", "web", "--watch", "--timeout", "0", stdout=out)
    assert raised.value.returncode == EXIT_TIMEOUT
    assert "revision 2 (current): wave 0 awaiting approval" in out.getvalue()


def test_cli_unknown_sidecarset_exits_1(web: SidecarSet, cli_viewer: User) -> None:
    for verb in (["fleet"], ["release", "status"]):
        with pytest.raises(CommandError) as raised:
            run(*verb, "nope")
        assert raised.value.returncode == EXIT_NOT_FOUND
        assert "SidecarSet 'nope' not found" in str(raised.value)
