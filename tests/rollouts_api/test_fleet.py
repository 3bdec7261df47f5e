"""The fleet view's queries (``rollouts.fleet``): every column of ``fleet_of``, the stages of
``releases_of``, and a fixed number of queries however many clusters there are. Rows are
written directly (``fleet_rows``): no services, no Kubernetes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from clusters.models import SidecarSetPlacement, SidecarSetTarget
from rollouts.choices import ReleaseStage, RolloutKind, RolloutState, StepState
from rollouts.fleet import (
    ReleaseCluster,
    RolloutSummary,
    fleet_of,
    release_stage,
    releases_of,
    releases_of_many,
)
from rollouts.transitions import RolloutNotFound
from sidecarhub.models import SidecarSet
from tests.rollouts_api.fleet_rows import add_drift, add_rollout, make_sidecarset, place

pytestmark = pytest.mark.django_db

S = StepState
R = RolloutState


@pytest.fixture
def web() -> SidecarSet:
    """``web`` at revision 3, in three target clusters and one former one:

    - prod-eu (wave 0) serves 3: its rollout to 3 runs, step 2 awaits approval (an older,
      completed rollout to 2 is not the latest); 10 pods matched, 4 updated, 9 ready;
    - prod-us (wave 1) serves 2 and is held: its rollout to 3 waits; 3 drifted pods lack web;
    - staging (wave 2) is a new target with no placement yet;
    - gone: a placement the hub no longer wants (left out).
    """
    web = make_sidecarset("web", 3)
    eu = place(web, "prod-eu", wave=0, serving=3, pods=(10, 4, 9))
    add_rollout(web, eu, to=2, state=R.COMPLETED, steps=((S.SUCCEEDED, 0),), minutes_ago=60)
    add_rollout(
        web,
        eu,
        to=3,
        state=R.RUNNING,
        steps=((S.SUCCEEDED, 2), (S.AWAITING_APPROVAL, 3)),
        reason="step 2 prepared",
    )
    us = place(web, "prod-us", wave=1, serving=2, held=True, held_reason="freeze", held_by="ops")
    add_rollout(
        web,
        us,
        to=3,
        wave=1,
        steps=((S.PENDING, 0), (S.PENDING, 0)),
        reason="held: cluster prod-us is held by ops: freeze",
    )
    add_drift(us, "web", count=2)
    add_drift(us, "other", "web")
    add_drift(us, "web-2")  # another SidecarSet whose name starts with web
    add_drift(us, "Web")  # names are case-sensitive
    add_drift(eu, "other")
    place(web, "staging", wave=2, placed=False)
    gone = place(web, "gone", serving=1, target=False)
    SidecarSetPlacement.objects.filter(cluster=gone).update(should_exist=False)
    other = make_sidecarset("other", 1)
    place(other, "prod-eu", serving=1, target=False)
    return web


def test_fleet_lists_every_target_cluster_by_wave(web: SidecarSet) -> None:
    fleet = fleet_of(web.pk)
    assert (fleet.sidecarset, fleet.current_revision) == ("web", 3)
    assert [(row.cluster, row.wave, row.targeted, row.placed) for row in fleet.clusters] == [
        ("prod-eu", 0, True, True),
        ("prod-us", 1, True, True),
        ("staging", 2, True, False),
    ]


def test_fleet_columns_of_a_cluster_mid_rollout(web: SidecarSet) -> None:
    eu = fleet_of(web.pk).clusters[0]
    assert (eu.serving_revision, eu.current_revision, eu.behind) == (3, 3, False)
    assert eu.serving_since is not None
    assert (eu.held, eu.held_reason) == (False, "")
    assert (eu.matched_pods, eu.updated_pods, eu.ready_pods) == (10, 4, 9)
    assert eu.placement_state == "pending"
    rollout = eu.latest_rollout
    assert rollout is not None
    assert (rollout.kind, rollout.from_revision, rollout.to_revision, rollout.state) == (
        RolloutKind.UPDATE,
        2,
        3,
        R.RUNNING,
    )
    assert (rollout.step_ordinal, rollout.step_state, rollout.steps_total) == (2, S.AWAITING_APPROVAL, 2)
    assert rollout.awaiting_approval and rollout.in_place and rollout.reason == "step 2 prepared"
    assert eu.needs_recreate == 3  # the largest count of its steps
    assert eu.drift == 0  # its drifted pod lacks another SidecarSet


def test_fleet_columns_of_a_held_cluster_behind(web: SidecarSet) -> None:
    us = fleet_of(web.pk).clusters[1]
    assert (us.serving_revision, us.behind) == (2, True)
    assert (us.held, us.held_reason, us.held_by) == (True, "freeze", "ops")
    assert us.latest_rollout is not None
    assert (us.latest_rollout.state, us.latest_rollout.step_ordinal, us.latest_rollout.step_state) == (
        R.PENDING,
        1,
        S.PENDING,
    )
    assert us.latest_rollout.reason.startswith("held: cluster prod-us")
    assert us.drift == 3  # two lack web alone, one lacks other and web; web-2 and Web do not count
    assert (us.matched_pods, us.needs_recreate) == (None, 0)


def test_fleet_columns_of_a_new_target_without_placement(web: SidecarSet) -> None:
    staging = fleet_of(web.pk).clusters[2]
    assert (staging.placed, staging.placement_state, staging.serving_revision) == (False, None, None)
    assert staging.behind and staging.latest_rollout is None
    assert (staging.matched_pods, staging.updated_pods, staging.ready_pods) == (None, None, None)
    assert (staging.needs_recreate, staging.drift) == (0, 0)


def test_clusters_selected_by_labels_are_targets_in_the_lowest_wave() -> None:
    api = make_sidecarset("api", 1)
    place(api, "prod-eu", wave=2, serving=1, target=False, labels={"env": "prod"})
    place(api, "prod-us", placed=False, target=False, labels={"env": "prod"})
    place(api, "dev", placed=False, target=False, labels={"env": "dev"})
    SidecarSetTarget.objects.create(sidecarset=api, cluster_selector={"matchLabels": {"env": "prod"}}, wave=1)
    fleet = fleet_of(api.pk)
    assert [(row.cluster, row.wave, row.placed, row.behind) for row in fleet.clusters] == [
        ("prod-eu", 1, True, False),
        ("prod-us", 1, False, True),
    ]
    assert count_queries(lambda: fleet_of(api.pk)) <= 8


def test_a_finished_rollout_shows_its_last_step() -> None:
    api = make_sidecarset("api", 2)
    cluster = place(api, "prod-eu", serving=2)
    add_rollout(api, cluster, to=2, state=R.ABORTED, steps=((S.SUCCEEDED, 1), (S.CANCELLED, 0)))
    [row] = fleet_of(api.pk).clusters
    assert row.latest_rollout is not None
    assert (row.latest_rollout.step_ordinal, row.latest_rollout.step_state) == (2, S.CANCELLED)
    assert row.needs_recreate == 1


def test_a_rollback_is_the_latest_rollout_of_its_cluster() -> None:
    api = make_sidecarset("api", 2)
    cluster = place(api, "prod-eu", serving=1)
    bad = add_rollout(api, cluster, to=2, state=R.ABORTED, steps=((S.FAILED, 0),), minutes_ago=5)
    back = add_rollout(
        api, cluster, to=1, source=2, kind=RolloutKind.ROLLBACK, rollback_of=bad, state=R.RUNNING
    )
    [row] = fleet_of(api.pk).clusters
    assert row.latest_rollout is not None
    assert (row.latest_rollout.id, row.latest_rollout.kind) == (back.pk, RolloutKind.ROLLBACK)
    assert (row.serving_revision, row.behind) == (1, True)


def test_fleet_of_a_sidecarset_without_targets_or_revisions() -> None:
    draft = SidecarSet.objects.create(name="draft", spec={})
    fleet = fleet_of(draft.pk)
    assert (fleet.current_revision, fleet.clusters) == (None, ())
    assert releases_of(draft.pk).releases == ()


def test_unknown_sidecarset_is_not_found() -> None:
    with pytest.raises(RolloutNotFound):
        fleet_of(999_999)
    with pytest.raises(RolloutNotFound):
        releases_of(999_999)


# --- a fixed number of queries -----------------------------------------------------------------


def grow(sidecarset: SidecarSet, count: int) -> None:
    """``count`` more clusters, each with a placement, a rollout with two steps and drift."""
    for index in range(count):
        cluster = place(sidecarset, f"extra-{index}", wave=index % 3, serving=2, pods=(5, 1, 5))
        add_rollout(sidecarset, cluster, to=3, wave=index % 3, steps=((S.SUCCEEDED, 1), (S.PENDING, 0)))
        add_drift(cluster, sidecarset.name)


def count_queries(call: Callable[[], object]) -> int:
    with CaptureQueriesContext(connection) as captured:
        call()
    return len(captured.captured_queries)


def test_fleet_costs_a_fixed_number_of_queries(web: SidecarSet) -> None:
    few = count_queries(lambda: fleet_of(web.pk))
    grow(web, 12)
    many = count_queries(lambda: fleet_of(web.pk))
    assert len(fleet_of(web.pk).clusters) == 15
    assert few == many <= 7


def test_releases_cost_a_fixed_number_of_queries(web: SidecarSet) -> None:
    few = count_queries(lambda: releases_of(web.pk))
    grow(web, 12)
    many = count_queries(lambda: releases_of(web.pk))
    assert sum(len(release.clusters) for release in releases_of(web.pk).releases) == 15
    assert few == many <= 4


def test_releases_of_many_sidecarsets_cost_the_queries_of_one(web: SidecarSet) -> None:
    """The dashboard's batch: each SidecarSet's own newest ``limit`` releases, in the order asked
    (missing ids left out), the same as ``releases_of`` one by one, in as many queries as one."""
    one = count_queries(lambda: releases_of_many([web.pk]))
    others = []
    for index in range(6):
        api = make_sidecarset(f"api-{index}", 4)
        cluster = place(api, f"api-cluster-{index}", serving=4)
        for number in range(2, 5):
            add_rollout(api, cluster, to=number, state=R.COMPLETED, steps=((S.SUCCEEDED, 0),))
        others.append(api)
    ids = [others[3].pk, 10**9, web.pk, *(api.pk for api in others)]
    assert count_queries(lambda: releases_of_many(ids, limit=2)) == one <= 4
    found = releases_of_many(ids, limit=2)
    assert [releases.sidecarset for releases in found][:3] == ["api-3", "web", "api-0"]
    assert len(found) == 8
    # The limit is per SidecarSet (a rank per SidecarSet, not over all of them).
    assert [[release.revision for release in releases.releases] for releases in found[:3]] == [
        [4, 3],
        [3, 2],
        [4, 3],
    ]
    for releases in found:
        assert releases == releases_of(releases.sidecarset_id, limit=2)
    assert releases_of_many([10**9]) == []
    [only] = releases_of_many([others[0].pk], revision=3)
    assert [release.revision for release in only.releases] == [3]


# --- releases ----------------------------------------------------------------------------------


def test_releases_group_rollouts_by_wave_newest_first(web: SidecarSet) -> None:
    releases = releases_of(web.pk)
    assert [(release.revision, release.current) for release in releases.releases] == [(3, True), (2, False)]
    latest = releases.releases[0]
    assert [(wave.wave, [c.cluster for c in wave.clusters]) for wave in latest.waves] == [
        (0, ["prod-eu"]),
        (1, ["prod-us"]),
    ]
    us = latest.waves[1].clusters[0]
    assert (us.held, us.held_reason, us.rollout.state, us.rolled_back) == (True, "freeze", R.PENDING, False)
    assert (latest.stage, latest.stage_text) == (
        ReleaseStage.AWAITING_APPROVAL,
        "wave 0 awaiting approval in cluster prod-eu",
    )
    assert latest.needs_recreate == 3
    # revision 2 completed everywhere it went before 3 was published: not superseded
    older = releases.releases[1]
    assert (older.stage, older.stage_text) == (ReleaseStage.COMPLETED, "completed")


def test_releases_are_bounded_by_limit() -> None:
    api = make_sidecarset("api", 5)
    cluster = place(api, "prod-eu", serving=5)
    for number in range(2, 6):
        add_rollout(api, cluster, to=number, state=R.COMPLETED, steps=((S.SUCCEEDED, 0),))
    assert [release.revision for release in releases_of(api.pk, limit=2).releases] == [5, 4]
    assert len(releases_of(api.pk, limit=500).releases) == 4


def test_a_rolled_back_cluster_marks_its_release_and_makes_no_release_of_its_own() -> None:
    api = make_sidecarset("api", 2)
    eu = place(api, "prod-eu", serving=1)
    us = place(api, "prod-us", wave=1, serving=1)
    bad = add_rollout(api, eu, to=2, state=R.ABORTED, steps=((S.FAILED, 0), (S.CANCELLED, 0)))
    add_rollout(api, us, to=2, wave=1, state=R.PENDING, reason="waiting for wave 0")
    back = add_rollout(api, eu, to=1, source=2, kind=RolloutKind.ROLLBACK, rollback_of=bad, state=R.PENDING)
    [release] = releases_of(api.pk).releases
    assert release.revision == 2
    assert (release.stage, release.stage_text) == (ReleaseStage.ROLLED_BACK, "rolled back in cluster prod-eu")
    eu_row = release.waves[0].clusters[0]
    assert eu_row.rolled_back and eu_row.rollback is not None and eu_row.rollback.id == back.pk


def test_a_release_stopped_by_a_newer_publish_is_superseded() -> None:
    api = make_sidecarset("api", 3)
    eu = place(api, "prod-eu", serving=2)
    us = place(api, "prod-us", wave=1, serving=1)
    add_rollout(api, eu, to=2, state=R.COMPLETED, steps=((S.SUCCEEDED, 0),), minutes_ago=30)
    add_rollout(api, us, to=2, wave=1, state=R.ABORTED, reason="superseded by revision 3", minutes_ago=30)
    add_rollout(api, eu, to=3, state=R.PENDING)
    add_rollout(api, us, to=3, source=1, wave=1, state=R.PENDING)
    newest, older = releases_of(api.pk).releases
    assert (newest.stage, newest.stage_text) == (ReleaseStage.WAITING, "waiting for wave 0")
    assert (older.stage, older.stage_text) == (ReleaseStage.SUPERSEDED, "superseded by revision 3")


def test_a_completed_gate_only_release_counts_the_pods_that_need_recreate() -> None:
    api = make_sidecarset("api", 2)
    for name, wave, needs in (("prod-eu", 0, 4), ("prod-us", 1, 1)):
        cluster = place(api, name, wave=wave, serving=2)
        add_rollout(
            api, cluster, to=2, wave=wave, in_place=False, state=R.COMPLETED, steps=((S.SUCCEEDED, needs),)
        )
    [release] = releases_of(api.pk).releases
    assert (release.stage, release.stage_text, release.needs_recreate) == (
        ReleaseStage.NEEDS_RECREATE,
        "completed, 5 pods need recreate",
        5,
    )
    assert all(not cluster.rollout.in_place for cluster in release.clusters)


# --- the stage rule, case by case (pure) --------------------------------------------------------

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def member(
    cluster: str,
    wave: int,
    state: str,
    step_state: str | None = None,
    *,
    held: bool = False,
    needs_recreate: int = 0,
    rolled_back: bool = False,
) -> ReleaseCluster:
    summary = RolloutSummary(
        id=abs(hash(cluster)) % 1000,
        kind=RolloutKind.UPDATE,
        from_revision=1,
        to_revision=2,
        wave=wave,
        state=state,
        reason="",
        in_place=True,
        step_ordinal=1 if step_state else None,
        step_state=step_state,
        steps_total=1,
        needs_recreate=needs_recreate,
        state_changed_at=NOW,
        created_at=NOW,
    )
    rollback = dataclasses.replace(summary, kind=RolloutKind.ROLLBACK) if rolled_back else None
    return ReleaseCluster(0, cluster, held, "", summary, rollback)


@pytest.mark.parametrize(
    ("members", "superseded_by", "expected"),
    [
        (
            [member("a", 0, R.PENDING, S.PENDING), member("b", 1, R.PENDING, S.PENDING)],
            None,
            (ReleaseStage.WAITING, "waiting for wave 0"),
        ),
        (
            [member("a", 0, R.RUNNING, S.AWAITING_APPROVAL), member("b", 1, R.PENDING, S.PENDING)],
            None,
            (ReleaseStage.AWAITING_APPROVAL, "wave 0 awaiting approval in cluster a"),
        ),
        (
            [member("a", 0, R.COMPLETED, S.SUCCEEDED), member("b", 1, R.PENDING, S.PENDING)],
            None,
            (ReleaseStage.WAITING, "waiting for wave 1"),
        ),
        (
            [member("a", 0, R.COMPLETED, S.SUCCEEDED), member("b", 1, R.RUNNING, S.RUNNING)],
            None,
            (ReleaseStage.RUNNING, "wave 1 running"),
        ),
        (
            [member("a", 0, R.PAUSED, S.PAUSED), member("c", 0, R.RUNNING, S.RUNNING)],
            None,
            (ReleaseStage.PAUSED, "wave 0 paused in cluster a"),
        ),
        (  # a held cluster of wave 0 is skipped: wave 1 goes on
            [member("a", 0, R.PENDING, S.PENDING, held=True), member("b", 1, R.RUNNING, S.AWAITING_APPROVAL)],
            None,
            (ReleaseStage.AWAITING_APPROVAL, "wave 1 awaiting approval in cluster b"),
        ),
        (
            [member("a", 0, R.COMPLETED, S.SUCCEEDED), member("b", 1, R.PENDING, S.PENDING, held=True)],
            None,
            (ReleaseStage.HELD, "held in cluster b"),
        ),
        (
            [member("a", 0, R.COMPLETED, S.SUCCEEDED), member("b", 1, R.COMPLETED, S.SUCCEEDED)],
            None,
            (ReleaseStage.COMPLETED, "completed"),
        ),
        (
            [member("a", 0, R.COMPLETED, S.SUCCEEDED, needs_recreate=1)],
            None,
            (ReleaseStage.NEEDS_RECREATE, "completed, 1 pod needs recreate"),
        ),
        (
            [member("a", 0, R.COMPLETED, S.SUCCEEDED), member("b", 1, R.FAILED, S.FAILED)],
            None,
            (ReleaseStage.FAILED, "failed in cluster b"),
        ),
        (
            [member("a", 0, R.ABORTED, S.CANCELLED), member("b", 0, R.ABORTED, S.CANCELLED)],
            None,
            (ReleaseStage.ABORTED, "aborted in clusters a, b"),
        ),
        (
            [member("a", 0, R.ABORTED, S.CANCELLED), member("b", 1, R.ABORTED, S.CANCELLED)],
            4,
            (ReleaseStage.SUPERSEDED, "superseded by revision 4"),
        ),
        (  # finished everywhere before the newer publish: not superseded
            [member("a", 0, R.COMPLETED, S.SUCCEEDED)],
            4,
            (ReleaseStage.COMPLETED, "completed"),
        ),
        (  # a rollback says more than anything else
            [member("a", 0, R.ABORTED, S.FAILED, rolled_back=True), member("b", 1, R.PENDING, S.PENDING)],
            4,
            (ReleaseStage.ROLLED_BACK, "rolled back in cluster a"),
        ),
    ],
)
def test_release_stage(
    members: list[ReleaseCluster], superseded_by: int | None, expected: tuple[str, str]
) -> None:
    assert release_stage(members, superseded_by=superseded_by) == expected
