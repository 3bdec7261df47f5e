"""Durable releases (issue 15) on PostgreSQL, no cluster needed: a release the publish signal
lost (its receiver failed, or never ran) is created by the periodic rollouts reconcile, exactly
once, also when the repair runs twice, concurrently with itself or with the receiver; a late
release supersedes what its publish would have superseded, and nothing newer."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction

from clusters.choices import CredentialKind
from clusters.models import Cluster, SidecarSetPlacement
from clusters.push import create_target, sync_placements
from rollouts import services as rollout_services
from rollouts.choices import RolloutKind, RolloutState
from rollouts.models import Rollout
from rollouts.services import create_missing_releases, create_rollouts_for_revision, rollback_rollout
from rollouts.tasks import reconcile_all_rollouts_task
from rollouts.transitions import start_rollout_row
from sidecarhub.models import SidecarSet, SidecarSetRevision
from sidecarhub.services import create_sidecarset, publish_sidecarset, update_sidecarset
from sidecarhub.signals import revision_published
from tests.rollouts.helpers import document

RECEIVER_UID = "rollouts.on_revision_published"  # RolloutsConfig.ready


@pytest.fixture(autouse=True)
def _no_queueing(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Nothing is sent to the broker: wake-ups are recorded, pushes dropped."""
    woken: list[int] = []
    monkeypatch.setattr("rollouts.services.wake_cluster", woken.append)
    monkeypatch.setattr("clusters.enqueue.push", lambda *args, **kwargs: None)
    return woken


def _cluster(name: str) -> Cluster:
    return Cluster.objects.create(
        name=f"{name}-{uuid.uuid4().hex[:4]}",
        api_server_url="https://127.0.0.1:9",
        credential_kind=CredentialKind.TOKEN,
        credentials_ciphertext="unused",
    )


def _first(clusters: list[Cluster]) -> tuple[str, SidecarSetRevision]:
    """A SidecarSet targeting ``clusters`` (wave = position) with revision 1 served everywhere."""
    name = f"dr-{uuid.uuid4().hex[:6]}"
    sidecarset = create_sidecarset(document(name, "log-agent:1"), actor=None)
    for wave, cluster in enumerate(clusters):
        create_target(sidecarset_id=sidecarset.pk, cluster_id=cluster.pk, wave=wave)
    first = publish_sidecarset(name, actor=None)
    sync_placements(sidecarset.pk)  # the publish's clusters receiver: every cluster serves revision 1
    return name, first


def _publish(name: str, image: str) -> SidecarSetRevision:
    """Publish a new image. In these non-transactional tests on-commit hooks never run: the
    publish's signal is lost, exactly as when its receiver fails after commit."""
    update_sidecarset(name, source=document(name, image), actor=None, expected_version=None)
    return publish_sidecarset(name, actor=None)


def _releases(revision: SidecarSetRevision) -> list[tuple[int, int | None, str]]:
    return sorted(
        Rollout.objects.filter(to_revision=revision).values_list("cluster_id", "from_revision_number", "kind")
    )


@pytest.mark.django_db
def test_a_lost_release_is_created_by_the_periodic_reconcile_once(monkeypatch: pytest.MonkeyPatch) -> None:
    queued: list[int] = []

    class FakeReconcile:
        @staticmethod
        def delay(cluster_id: int, woken: bool) -> None:
            queued.append(cluster_id)

    monkeypatch.setattr("rollouts.tasks.reconcile_rollouts_task", FakeReconcile)
    alpha, beta = _cluster("alpha"), _cluster("beta")
    name, _ = _first([alpha, beta])
    second = _publish(name, "log-agent:2")
    assert _releases(second) == []  # the signal was lost: no release
    reconcile_all_rollouts_task()
    expected = sorted([(alpha.pk, 1, RolloutKind.UPDATE), (beta.pk, 1, RolloutKind.UPDATE)])
    assert _releases(second) == expected
    assert sorted(queued) == sorted([alpha.pk, beta.pk])  # then reconciled in the same tick
    waves = dict(Rollout.objects.filter(to_revision=second).values_list("cluster_id", "wave"))
    assert waves == {alpha.pk: 0, beta.pk: 1}
    reconcile_all_rollouts_task()
    assert create_missing_releases() == []
    assert _releases(second) == expected


@pytest.mark.django_db
def test_the_repair_leaves_a_release_the_receiver_made() -> None:
    alpha = _cluster("alpha")
    name, first = _first([alpha])
    second = _publish(name, "log-agent:2")
    [made] = create_rollouts_for_revision(second.pk, actor=None, previous_revision_id=first.pk)
    assert create_missing_releases() == []
    assert create_rollouts_for_revision(second.pk, actor=None, previous_revision_id=first.pk) == []
    # Also once the rollout has ended (aborted here): any rollout to the revision counts.
    Rollout.objects.filter(pk=made.pk).update(state=RolloutState.ABORTED)
    assert create_missing_releases() == []
    assert [r.pk for r in Rollout.objects.filter(to_revision=second)] == [made.pk]


@pytest.mark.django_db
def test_one_update_rollout_per_revision_and_cluster_is_a_constraint() -> None:
    alpha = _cluster("alpha")
    name, _ = _first([alpha])
    second = _publish(name, "log-agent:2")
    [rollout] = create_missing_releases()
    rollout.pk = None
    rollout._state.adding = True
    with pytest.raises(IntegrityError), transaction.atomic():
        rollout.save()
    assert Rollout.objects.filter(to_revision=second).count() == 1


@pytest.mark.django_db
def test_nothing_to_repair_for_changes_pods_do_not_see_or_new_targets() -> None:
    alpha = _cluster("alpha")
    name, _ = _first([alpha])
    row = SidecarSet.objects.get(name=name)
    update_sidecarset(
        name,
        source={**document(name, "log-agent:1"), "metadata": {"name": name, "annotations": {"a": "b"}}},
        actor=None,
        expected_version=row.version,
    )
    publish_sidecarset(name, actor=None)  # revision 2: same revision hash, served at once
    create_target(sidecarset_id=row.pk, cluster_id=_cluster("fresh").pk, wave=0)
    sync_placements(row.pk)
    assert create_missing_releases() == []


@pytest.mark.django_db
def test_a_revision_superseded_before_its_release_gets_none() -> None:
    alpha = _cluster("alpha")
    name, first = _first([alpha])
    second = _publish(name, "log-agent:2")
    third = _publish(name, "log-agent:3")
    # The receiver of revision 2 running late, after revision 3 is current: it creates nothing
    # (it would otherwise abort revision 3's release as "superseded by revision 2").
    assert create_rollouts_for_revision(second.pk, actor=None, previous_revision_id=first.pk) == []
    assert [(r.to_revision_number, r.from_revision_number) for r in create_missing_releases()] == [(3, 1)]
    assert _releases(second) == [] and len(_releases(third)) == 1


@pytest.mark.django_db
def test_a_late_release_supersedes_only_what_its_publish_would_have() -> None:
    """The release of revision 3 is lost; meanwhile the operator rolls back revision 2's rollout
    (created after revision 3 was published). The repair's release of revision 3 aborts nothing
    that was made after its publish: the rollback goes on, as it would had the release been
    created at publish."""
    alpha = _cluster("alpha")
    name, first = _first([alpha])
    second = _publish(name, "log-agent:2")
    [to_second] = create_rollouts_for_revision(second.pk, actor=None, previous_revision_id=first.pk)
    start_rollout_row(to_second.pk, actor=None, reason="test")
    third = _publish(name, "log-agent:3")  # its release is lost
    rollback = rollback_rollout(to_second.pk, actor=None)
    assert rollback.created_at > third.created_at
    [late] = create_missing_releases()
    assert (late.from_revision_number, late.to_revision_number) == (1, 3)  # from what alpha serves
    rollback.refresh_from_db()
    to_second.refresh_from_db()
    assert rollback.state == RolloutState.PENDING and to_second.state == RolloutState.ABORTED


@pytest.mark.django_db
def test_the_receivers_release_supersedes_older_rollouts() -> None:
    alpha = _cluster("alpha")
    name, _ = _first([alpha])
    second = _publish(name, "log-agent:2")
    [to_second] = create_missing_releases()
    third = _publish(name, "log-agent:3")
    create_rollouts_for_revision(third.pk, actor=None, previous_revision_id=second.pk)
    to_second.refresh_from_db()
    assert to_second.state == RolloutState.ABORTED and to_second.reason == "superseded by revision 3"


@pytest.mark.django_db
def test_one_broken_release_does_not_stop_the_others(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A revision published before its rollout policy was validated cannot be released (logged
    each pass); the other SidecarSets' lost releases are still created."""
    alpha = _cluster("alpha")
    broken, _ = _first([alpha])
    with monkeypatch.context() as before_the_rule:
        before_the_rule.setattr(
            "sidecarhub.services.check_rollout_policy", lambda policy, **kwargs: (dict(policy or {}), [])
        )
        update_sidecarset(
            broken,
            source=document(broken, "log-agent:2"),
            rollout_policy={"failure_threshold": "x"},
            actor=None,
            expected_version=None,
        )
        bad = publish_sidecarset(broken, actor=None)
    fine, _ = _first([alpha])
    good = _publish(fine, "log-agent:2")
    created = create_missing_releases()
    assert [r.to_revision_id for r in created] == [good.pk]
    assert _releases(bad) == []
    assert "cannot be created" in caplog.text and "rollout_policy.failure_threshold" in caplog.text


# --- real commits: the receiver itself, and races -----------------------------------------------


def _in_threads(*calls: Callable[[], Any]) -> list[BaseException]:
    """Run ``calls`` at once (a barrier), each in its own thread and database connection."""
    barrier = threading.Barrier(len(calls))
    failures: list[BaseException] = []

    def run(call: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            call()
        except BaseException as exc:  # reported to the test
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return failures


@pytest.mark.django_db(transaction=True)
def test_a_failing_receiver_loses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rollouts receiver raises after the publish committed (logged by ``send_robust``);
    publish still succeeds, and the periodic repair creates the release."""
    alpha = _cluster("alpha")
    name, _ = _first([alpha])

    def broken(*args: Any, **kwargs: Any) -> list[Rollout]:
        raise RuntimeError("database hiccup")

    working = rollout_services.create_rollouts_for_revision
    monkeypatch.setattr(rollout_services, "create_rollouts_for_revision", broken)
    second = _publish(name, "log-agent:2")  # the receivers run on commit here
    placement = SidecarSetPlacement.objects.select_related("serving_revision").get(cluster=alpha)
    assert placement.serving_revision is not None and placement.serving_revision.number == 1
    assert _releases(second) == []
    monkeypatch.setattr(rollout_services, "create_rollouts_for_revision", working)
    assert [r.cluster_id for r in create_missing_releases()] == [alpha.pk]
    assert _releases(second) == [(alpha.pk, 1, RolloutKind.UPDATE)]


@pytest.mark.django_db(transaction=True)
def test_the_working_receiver_makes_the_release_and_the_repair_adds_nothing() -> None:
    alpha = _cluster("alpha")
    name, _ = _first([alpha])
    second = _publish(name, "log-agent:2")  # the receiver runs on commit here
    assert _releases(second) == [(alpha.pk, 1, RolloutKind.UPDATE)]
    assert create_missing_releases() == []


@pytest.fixture
def receiver_disconnected() -> Iterator[None]:
    """The rollouts receiver of ``revision_published`` disconnected: every release is lost."""
    revision_published.disconnect(dispatch_uid=RECEIVER_UID)
    try:
        yield
    finally:
        revision_published.connect(rollout_services.on_revision_published, dispatch_uid=RECEIVER_UID)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("rival", ["receiver", "repair"])
@pytest.mark.usefixtures("receiver_disconnected")
def test_concurrent_creations_make_one_release(rival: str) -> None:
    """The repair races the receiver (or a second repair, e.g. two beat ticks): each cluster
    gets exactly one rollout to the revision, and neither side fails."""
    clusters = [_cluster(f"c{i}") for i in range(3)]
    for _ in range(3):
        name, first = _first(clusters)
        second = _publish(name, "log-agent:2")  # the disconnected receiver made none
        assert _releases(second) == []

        def receiver(second: SidecarSetRevision = second, first: SidecarSetRevision = first) -> None:
            create_rollouts_for_revision(
                second.pk, actor=None, previous_revision_id=first.pk, change_kind="images_only"
            )

        failures = _in_threads(
            create_missing_releases, receiver if rival == "receiver" else create_missing_releases
        )
        assert failures == []
        assert _releases(second) == sorted((c.pk, 1, RolloutKind.UPDATE) for c in clusters)
