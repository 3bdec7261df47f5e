"""Clusters a team's label selector matches but skips (another team's: ``clusters.targeting``) are
named wherever the SidecarSet's clusters are shown: the fleet API (``skipped_clusters``, typed in
the schema), the fleet panel of the SidecarSet's page, the publish preview (API and page) and
``sidecarhub fleet``; read with the targets, so no query per cluster."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from clusters.models import Cluster
from clusters.push import create_target
from rollouts.fleet import fleet_of
from sidecarhub.models import SidecarSet, Team
from sidecarhub.services import create_sidecarset, publish_sidecarset, update_sidecarset
from tests.clusters.conftest import make_user
from tests.rollouts_api.conftest import document, make_cluster

pytestmark = pytest.mark.django_db

FLEET = ("sidecarhub.view_sidecarset", "clusters.view_cluster", "rollouts.view_rollout")
SKIPPED_LINE = "Not targeted: cluster prod-search (owned by team search; add it as an explicit target)"


@dataclass
class World:
    sidecarset: SidecarSet  # payments' pay-sel, published, one target selecting env=prod
    search_prod: Cluster  # env=prod, owned by search: skipped
    viewer: User  # may see the fleet (and publish, for the publish page)


@pytest.fixture
def world() -> World:
    payments, search = Team.objects.create(name="payments"), Team.objects.create(name="search")
    make_cluster("prod-pay", owner_team=payments, labels={"env": "prod"})
    make_cluster("prod-shared", labels={"env": "prod"})
    search_prod = make_cluster("prod-search", owner_team=search, labels={"env": "prod"})
    make_cluster("dev-search", owner_team=search, labels={"env": "dev"})  # labels do not match
    sidecarset = create_sidecarset(document("pay-sel", "log-agent:1"), actor=None, owner_team="payments")
    publish_sidecarset("pay-sel", actor=None)
    create_target(sidecarset.pk, cluster_selector={"matchLabels": {"env": "prod"}}, actor=None)
    viewer = make_user("viewer", *FLEET, "sidecarhub.publish_sidecarset")
    User.objects.filter(pk=viewer.pk).update(is_staff=True)
    return World(sidecarset, search_prod, User.objects.get(pk=viewer.pk))


def api(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_fleet_api_names_the_skipped_cluster_and_why(world: World) -> None:
    body = api(world.viewer).get("/api/v1/sidecarsets/pay-sel/fleet/").json()
    assert [row["cluster"] for row in body["clusters"]] == ["prod-pay", "prod-shared"]
    assert body["skipped_clusters"] == [
        {
            "cluster": "prod-search",
            "cluster_id": world.search_prod.pk,
            "team": "search",
            "reason": "owned by team search, and this SidecarSet's label selectors select only "
            "clusters of team payments or without a team: add it as an explicit target",
        }
    ]


def test_an_explicit_target_or_a_sidecarset_without_a_team_skips_nothing(world: World) -> None:
    create_target(world.sidecarset.pk, cluster_id=world.search_prod.pk, actor=None)
    assert fleet_of(world.sidecarset.pk).skipped_clusters == ()
    everyones = create_sidecarset(document("all-sel", "log-agent:1"), actor=None)
    create_target(everyones.pk, cluster_selector={"matchLabels": {"env": "prod"}}, actor=None)
    assert fleet_of(everyones.pk).skipped_clusters == ()
    body = api(world.viewer).get("/api/v1/sidecarsets/all-sel/fleet/").json()
    assert body["skipped_clusters"] == []
    assert [row["cluster"] for row in body["clusters"]] == ["prod-pay", "prod-search", "prod-shared"]


def test_the_schema_types_skipped_clusters(tmp_path: Path) -> None:
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target), stderr=io.StringIO())
    schema = yaml.safe_load(target.read_text())
    components = schema["components"]["schemas"]
    for owner in ("Fleet", "PublishPreview"):
        field = components[owner]["properties"]["skipped_clusters"]
        assert field["type"] == "array" and field["items"] == {"$ref": "#/components/schemas/SkippedCluster"}
        assert "skipped_clusters" in components[owner]["required"]
    skipped = components["SkippedCluster"]
    assert {name: spec["type"] for name, spec in skipped["properties"].items()} == {
        "cluster": "string",
        "cluster_id": "integer",
        "team": "string",
        "reason": "string",
    }


def test_the_fleet_panel_shows_a_muted_line_per_skipped_cluster(world: World) -> None:
    html = signed_in(world.viewer).get(
        reverse("admin:sidecarhub_sidecarset_change", args=[world.sidecarset.pk])
    )
    text = html.content.decode()
    assert html.status_code == 200 and text.count('class="sh-fleet-row"') == 2
    assert 'class="sh-quiet sh-skipped" data-cluster="prod-search"' in text
    cluster_url = reverse("admin:clusters_cluster_change", args=[world.search_prod.pk])
    assert SKIPPED_LINE.replace("prod-search", f'<a href="{cluster_url}">prod-search</a>', 1) in text


def test_the_publish_preview_names_the_skipped_cluster(world: World) -> None:
    update_sidecarset("pay-sel", source=document("pay-sel", "log-agent:2"), actor=None, expected_version=None)
    body = api(world.viewer).get("/api/v1/sidecarsets/pay-sel/publish-preview/?pods=false").json()
    assert [row["cluster"] for row in body["clusters"]] == ["prod-pay", "prod-shared"]
    assert [(row["cluster"], row["team"]) for row in body["skipped_clusters"]] == [("prod-search", "search")]

    page = signed_in(world.viewer).get(
        reverse("admin:sidecarhub_sidecarset_publish", args=[world.sidecarset.pk])
    )
    preview = page.content.decode().split('id="sh-publish-preview"', 1)[1]
    assert "prod-search</a> (owned by team search; add it as an explicit target)" in preview


def test_the_cli_fleet_lists_the_skipped_cluster(world: World, cli_as: Any) -> None:
    cli_as(world.viewer)
    out = io.StringIO()
    call_command("sidecarhub", "fleet", "pay-sel", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[-1] == SKIPPED_LINE.replace("Not targeted", "not targeted")
    as_json = io.StringIO()
    call_command("sidecarhub", "fleet", "pay-sel", "--json", stdout=as_json)
    assert [row["cluster"] for row in json.loads(as_json.getvalue())["skipped_clusters"]] == ["prod-search"]


def count_queries(call: Callable[[], object]) -> int:
    with CaptureQueriesContext(connection) as captured:
        call()
    return len(captured.captured_queries)


def test_skipped_clusters_cost_no_query_per_cluster(
    world: World, django_assert_max_num_queries: Callable[..., Any]
) -> None:
    search = Team.objects.get(name="search")
    one = count_queries(lambda: fleet_of(world.sidecarset.pk))
    for index in range(12):
        make_cluster(f"prod-search-{index}", owner_team=search, labels={"env": "prod"})
    twelve_more = count_queries(lambda: fleet_of(world.sidecarset.pk))
    assert len(fleet_of(world.sidecarset.pk).skipped_clusters) == 13
    assert one == twelve_more <= 8
    client = api(world.viewer)
    with django_assert_max_num_queries(11):  # the fleet's 8, the name, the permissions
        body = client.get("/api/v1/sidecarsets/pay-sel/fleet/").json()
    assert len(body["skipped_clusters"]) == 13
