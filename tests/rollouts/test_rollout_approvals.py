"""Approval rules and state transitions on PostgreSQL (no cluster needed): the permission, the
four-eyes rule and its per-cluster switch, auto-approve, expiry, two concurrent approvals (exactly
one wins, on SQLite too), guarded transitions with their history rows, intents, waves, and the
pruning guard."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from clusters.choices import CredentialKind
from clusters.models import Cluster, SidecarSetPlacement
from clusters.push import create_target, serve_revision, sync_placements
from clusters.services import hold_cluster
from rollouts.choices import ROLLOUT_TRANSITIONS, STEP_TRANSITIONS, RolloutState, StepState
from rollouts.models import Approval, Rollout, RolloutStep, StepTransition
from rollouts.permissions import can_approve
from rollouts.reconciler import ReconcileReport, _expire_approvals, _Pass
from rollouts.services import (
    InvalidTransition,
    NotPermitted,
    abort_rollout,
    approve_step,
    create_rollouts_for_revision,
    deny_step,
    pause_rollout,
    resume_rollout,
)
from rollouts.transitions import mark_step_awaiting_approval, start_rollout_row
from sidecarhub.models import SidecarSetRevision
from sidecarhub.services import create_sidecarset, publish_sidecarset, update_sidecarset
from tests.rollouts.helpers import document, make_user

PODS = [{"namespace": "ns", "name": f"p{i}", "uid": f"u{i}"} for i in range(3)]


def _cluster(name: str = "c1", **fields: Any) -> Cluster:
    return Cluster.objects.create(
        name=name,
        api_server_url="https://127.0.0.1:9",
        credential_kind=CredentialKind.TOKEN,
        credentials_ciphertext="unused",
        **fields,
    )


def _doc(name: str, image: str, limit: int | None = None, **doc: Any) -> dict[str, Any]:
    result = document(name, image, **doc)
    if limit is not None:
        result["spec"]["revisionHistoryLimit"] = limit
    return result


def _rollouts(
    actor: Any,
    clusters: list[tuple[Cluster, int]],
    *,
    image: str = "log-agent:2",
    second: dict[str, Any] | None = None,
    **doc: Any,
) -> list[Rollout]:
    """Publish revision 1 (``doc``), then revision 2 (``image`` plus ``second`` changes)."""
    name = f"ap-{uuid.uuid4().hex[:6]}"
    sidecarset = create_sidecarset(_doc(name, "log-agent:1", **doc), actor=actor)
    for cluster, wave in clusters:
        create_target(sidecarset_id=sidecarset.pk, cluster_id=cluster.pk, wave=wave)
    first = publish_sidecarset(name, actor=actor)
    sync_placements(sidecarset.pk)  # the publish's on-commit receiver: the clusters serve revision 1
    update_sidecarset(
        name, source=_doc(name, image, **{**doc, **(second or {})}), actor=actor, expected_version=None
    )
    revision = publish_sidecarset(name, actor=actor)
    created = create_rollouts_for_revision(revision.pk, actor=actor, previous_revision_id=first.pk)
    # With real commits (transaction=True) the publish's receiver already made them (and a
    # release is made once: the call above then creates none).
    return created or list(Rollout.objects.filter(to_revision=revision).order_by("wave", "cluster_id"))


def _awaiting(rollout: Rollout, *, ttl_seconds: int = 3600) -> RolloutStep:
    start_rollout_row(rollout.pk, actor=None, reason="test")
    step = rollout.rollout_steps.get(ordinal=1)
    now = timezone.now()
    return mark_step_awaiting_approval(
        step.pk,
        actor=None,
        reason="prepared",
        pods=PODS,
        pod_count=3,
        prepared_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
        preparation=1,
    )


def test_transition_tables_are_closed() -> None:
    for table, states in ((ROLLOUT_TRANSITIONS, RolloutState), (STEP_TRANSITIONS, StepState)):
        assert set(table) == set(states.values)
        for targets in table.values():
            assert targets <= set(states.values)


@pytest.mark.django_db
def test_approval_needs_permission_and_a_second_person() -> None:
    author = make_user("author", "rollouts.approve_rolloutstep")
    nobody = make_user("nobody")
    approver = make_user("approver", "rollouts.approve_rolloutstep")
    [rollout] = _rollouts(author, [(_cluster(), 0)])
    step = _awaiting(rollout)
    with pytest.raises(NotPermitted, match="lacks the permission"):
        approve_step(step.pk, actor=nobody)
    with pytest.raises(NotPermitted, match="requires someone else"):
        approve_step(step.pk, actor=author)
    assert not can_approve(author, step) and can_approve(approver, step)
    approval = approve_step(step.pk, actor=approver, comment="ok")
    assert (approval.actor_name, approval.decision, approval.preparation) == ("approver", "approve", 1)
    step.refresh_from_db()
    assert step.state == StepState.APPROVED and step.approved_at is not None
    last = StepTransition.objects.filter(step=step).last()
    assert last is not None
    assert (last.from_state, last.to_state, last.actor_name, last.reason) == (
        "awaiting_approval", "approved", "approver", "ok"
    )  # fmt: skip
    with pytest.raises(InvalidTransition) as raised:
        approve_step(step.pk, actor=approver)
    assert raised.value.current_state == StepState.APPROVED


@pytest.mark.django_db
def test_cluster_may_allow_the_author_or_approve_automatically() -> None:
    author = make_user("author", "rollouts.approve_rolloutstep")
    [rollout] = _rollouts(author, [(_cluster(rollout_requires_second_person=False), 0)])
    step = _awaiting(rollout)
    approve_step(step.pk, actor=author)
    assert RolloutStep.objects.get(pk=step.pk).state == StepState.APPROVED


@pytest.mark.django_db
def test_approval_expires_and_pauses_the_rollout() -> None:
    author = make_user("author")
    approver = make_user("approver", "rollouts.approve_rolloutstep", "rollouts.operate_rollout")
    [rollout] = _rollouts(author, [(_cluster(), 0)])
    step = _awaiting(rollout, ttl_seconds=-1)
    with pytest.raises(InvalidTransition) as raised:
        approve_step(step.pk, actor=approver)
    assert raised.value.current_state == StepState.EXPIRED
    step.refresh_from_db()
    rollout.refresh_from_db()
    assert step.state == StepState.EXPIRED and rollout.state == RolloutState.PAUSED
    assert "was not approved before" in rollout.reason
    # Resuming prepares the step again (fresh list, fresh approval needed).
    resume_rollout(rollout.pk, actor=approver)
    assert RolloutStep.objects.get(pk=step.pk).state == StepState.PENDING
    assert Rollout.objects.get(pk=rollout.pk).state == RolloutState.RUNNING


@pytest.mark.django_db
def test_reconciler_expires_steps_by_expires_at() -> None:
    [rollout] = _rollouts(None, [(_cluster(), 0)])
    step = _awaiting(rollout, ttl_seconds=-5)
    report = ReconcileReport(rollout.live_cluster_id)
    _expire_approvals(rollout.live_cluster_id, report)
    assert RolloutStep.objects.get(pk=step.pk).state == StepState.EXPIRED
    assert report.transitions == [f"step {step.pk} expired"]


@pytest.mark.django_db
def test_deny_pauses_and_resume_prepares_again() -> None:
    approver = make_user("approver", "rollouts.approve_rolloutstep", "rollouts.operate_rollout")
    [rollout] = _rollouts(None, [(_cluster(), 0)])
    step = _awaiting(rollout)
    deny_step(step.pk, actor=approver, comment="not on a Friday")
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.PAUSED and "denied by approver: not on a Friday" in rollout.reason
    assert list(Approval.objects.filter(step=step).values_list("decision", flat=True)) == ["deny"]
    resume_rollout(rollout.pk, actor=approver)
    assert RolloutStep.objects.get(pk=step.pk).state == StepState.PENDING


@pytest.mark.django_db
def test_pause_and_abort_are_intents_while_a_step_runs() -> None:
    operator = make_user("operator", "rollouts.operate_rollout")
    viewer = make_user("viewer")
    [rollout] = _rollouts(None, [(_cluster(), 0)])
    step = _awaiting(rollout)
    RolloutStep.objects.filter(pk=step.pk).update(state=StepState.RUNNING)
    with pytest.raises(NotPermitted):
        pause_rollout(rollout.pk, actor=viewer)
    paused = pause_rollout(rollout.pk, actor=operator, reason="lunch")
    assert paused.state == RolloutState.RUNNING and paused.pause_requested and paused.intent_by == "operator"
    aborted = abort_rollout(rollout.pk, actor=operator, reason="wrong image")
    assert aborted.state == RolloutState.RUNNING and aborted.abort_requested


@pytest.mark.django_db
def test_waves_start_in_order_and_new_revision_supersedes() -> None:
    first, second = _cluster("c1"), _cluster("c2")
    rollouts = _rollouts(None, [(first, 0), (second, 1)])
    by_cluster = {r.cluster_id: r for r in rollouts}
    assert {r.wave for r in rollouts} == {0, 1} and all(r.state == RolloutState.PENDING for r in rollouts)
    later = by_cluster[second.pk]
    blocker = _Pass(second, None, ReconcileReport(second.pk), 0, 1).start_blocker(later)  # type: ignore[arg-type]  # no KubeClient: start_blocker only reads the database
    assert blocker.startswith("waiting for wave 0: the rollout in cluster c1 is pending")
    Rollout.objects.filter(pk=by_cluster[first.pk].pk).update(state=RolloutState.COMPLETED)
    assert _Pass(second, None, ReconcileReport(second.pk), 0, 1).start_blocker(later) == ""  # type: ignore[arg-type]  # no KubeClient: start_blocker only reads the database


@pytest.mark.django_db
def test_a_held_cluster_is_skipped_visibly_and_its_release_goes_on_once_lifted() -> None:
    """Decision 17: a held cluster's rollout stays pending saying why; later waves do not wait
    for it; once the hold is lifted the rollout may start."""
    first, second = _cluster("c1"), _cluster("c2")
    rollouts = _rollouts(None, [(first, 0), (second, 1)])
    by_cluster = {r.cluster_id: r for r in rollouts}

    def blocker(cluster: Cluster) -> str:
        cluster.refresh_from_db()
        reconcile = _Pass(cluster, None, ReconcileReport(cluster.pk), 0, 1)  # type: ignore[arg-type]  # no KubeClient: start_blocker only reads the database
        return reconcile.start_blocker(by_cluster[cluster.pk])

    assert blocker(second).startswith("waiting for wave 0")
    operator = make_user("holder", "clusters.hold_cluster")
    hold_cluster(first.pk, held=True, reason="freeze until Monday", actor=operator)
    assert blocker(first) == "held: cluster c1 is held by holder: freeze until Monday"
    assert blocker(second) == ""  # the held cluster is skipped: wave 1 goes on
    hold_cluster(first.pk, held=False, actor=operator)
    assert blocker(first) == ""
    first.refresh_from_db()
    assert (first.held, first.held_reason, first.held_by) == (False, "", "")


@pytest.mark.django_db
def test_not_update_and_non_image_changes_have_a_gate_and_no_in_place_step() -> None:
    """Decision 17: every change is a release; one that cannot be applied in place (NotUpdate, or
    more than images) has one gate step per cluster and patches nothing."""
    [not_update] = _rollouts(None, [(_cluster(), 0)], strategy={"type": "NotUpdate"})
    env_change = {"env": [{"name": "A", "value": "1"}]}
    [env] = _rollouts(None, [(_cluster("c2"), 0)], image="log-agent:1", second=env_change)
    for rollout in (not_update, env):
        assert (rollout.in_place, rollout.steps, rollout.state) == (False, ["serve"], RolloutState.PENDING)
        assert list(rollout.rollout_steps.values_list("target", flat=True)) == ["serve"]
    assert "NotUpdate" in not_update.reason and "more than sidecar images" in env.reason


@pytest.mark.django_db
def test_a_change_pods_do_not_see_and_a_new_target_need_no_release() -> None:
    """A change nothing pods see is served at once; a cluster targeted for the first time
    serves the current revision at once (nothing earlier to protect there)."""
    assert _rollouts(None, [(_cluster(), 0)], image="log-agent:1", second={"annotations": {"a": "b"}}) == []
    fresh = _cluster("c3")
    rollouts = _rollouts(None, [(_cluster("c4"), 0)])
    create_target(sidecarset_id=rollouts[0].live_sidecarset_id, cluster_id=fresh.pk, wave=0)
    assert [r.cluster_id for r in Rollout.objects.filter(sidecarset_id=rollouts[0].live_sidecarset_id)] == [
        rollouts[0].cluster_id
    ]


@pytest.mark.django_db
def test_pruning_keeps_revisions_of_unfinished_rollouts() -> None:
    [rollout] = _rollouts(None, [(_cluster(), 0)], limit=2)
    name = rollout.sidecarset_name
    update_sidecarset(name, source=_doc(name, "log-agent:3", limit=2), actor=None, expected_version=None)
    third = publish_sidecarset(name, actor=None)
    create_rollouts_for_revision(third.pk, actor=None, previous_revision_id=rollout.to_revision_id)
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.ABORTED and rollout.reason == "superseded by revision 3"
    update_sidecarset(
        name,
        source=_doc(name, "log-agent:3", limit=2, strategy={"paused": True}),
        actor=None,
        expected_version=None,
    )
    publish_sidecarset(name, actor=None)
    # Revision 1 stays: the cluster still serves it (no gate opened); revisions 2 and 3 stay too:
    # the active rollout 1→3 references 3, and 4 is current. Only 2 could go.
    numbers = set(SidecarSetRevision.objects.filter(sidecarset__name=name).values_list("number", flat=True))
    assert numbers == {1, 3, 4}


@pytest.mark.sqlite
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_approvals_exactly_one_wins() -> None:
    approvers = [make_user(f"approver{i}", "rollouts.approve_rolloutstep") for i in range(2)]
    [rollout] = _rollouts(None, [(_cluster(), 0)])
    step = _awaiting(rollout)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def approve(user: Any) -> None:
        try:
            barrier.wait()
            approve_step(step.pk, actor=user)
            outcomes.append("won")
        except InvalidTransition:
            outcomes.append("409")
        finally:
            connection.close()

    threads = [threading.Thread(target=approve, args=(user,)) for user in approvers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["409", "won"]
    assert Approval.objects.filter(step=step, decision="approve").count() == 1
    assert StepTransition.objects.filter(step=step, to_state=StepState.APPROVED).count() == 1


@pytest.mark.django_db
def test_a_change_pods_do_not_see_follows_only_clusters_serving_the_replaced_revision() -> None:
    """A cluster rolled back (or held back) keeps its revision when a later publish changes
    nothing pods see; the clusters serving the replaced revision take the new one at once."""
    rolled_back, following = _cluster("c1"), _cluster("c2")
    [rollout, _other] = _rollouts(None, [(rolled_back, 0), (following, 0)])
    first_id, second_id = rollout.from_revision_id, rollout.to_revision_id
    assert first_id is not None and second_id is not None
    for cluster in (rolled_back, following):
        serve_revision(rollout.live_sidecarset_id, cluster.pk, second_id)  # both gates opened
    serve_revision(rollout.live_sidecarset_id, rolled_back.pk, first_id)  # c1 rolled back
    name = rollout.sidecarset_name
    document = _doc(name, "log-agent:2")
    document["spec"]["selector"] = {"matchLabels": {"app": name, "tier": "web"}}  # nothing pods see
    update_sidecarset(name, source=document, actor=None, expected_version=None)
    third = publish_sidecarset(name, actor=None)
    sync_placements(rollout.live_sidecarset_id, serve_from=second_id)  # the publish's receiver
    serving = dict(
        SidecarSetPlacement.objects.filter(sidecarset_id=rollout.live_sidecarset_id).values_list(
            "cluster_id", "serving_revision_id"
        )
    )
    assert serving == {rolled_back.pk: first_id, following.pk: third.pk}
