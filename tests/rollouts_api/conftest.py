"""Fixtures of the rollouts API / admin / CLI tests: rollouts created through the domain's
services on a registered-but-never-contacted cluster (no Kubernetes needed), users with each
permission, and a quiet queue (the reconciler wake-ups and pushes are recorded, not sent)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from clusters.choices import CredentialKind
from clusters.models import Cluster
from clusters.push import create_target, sync_placements
from rollouts.choices import PodUpdateOutcome, PodUpdateState
from rollouts.models import PodUpdate, Rollout, RolloutStep
from rollouts.services import create_rollouts_for_revision
from rollouts.transitions import mark_step_awaiting_approval, start_rollout_row
from sidecarhub.models import Team
from sidecarhub.services import create_sidecarset, publish_sidecarset, update_sidecarset
from tests.clusters.conftest import make_user

VIEW = ("rollouts.view_rollout",)
VIEW_PODS = ("rollouts.view_rollout", "rollouts.view_podupdate")
APPROVE = ("rollouts.view_rollout", "rollouts.approve_rolloutstep")
OPERATE = ("rollouts.view_rollout", "rollouts.operate_rollout")


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    """The test users' passwords are never checked: skip the slow production hasher."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def quiet_queue(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the reconciler wake-ups instead of queueing them; pushes are not queued either
    (the cluster is never contacted)."""
    woken: list[int] = []
    monkeypatch.setattr("rollouts.services.wake_cluster", woken.append)
    monkeypatch.setattr("clusters.enqueue.push", lambda *args, **kwargs: None)
    return woken


def person(username: str, *roles: str, teams: tuple[Team, ...] = ()) -> User:
    """A user in the given role groups and teams (nothing else)."""
    user = User.objects.create_user(username, password="pw-" + username)
    user.groups.set(Group.objects.filter(name__in=roles))
    for team in teams:
        team.members.add(user)
    return User.objects.get(pk=user.pk)  # fresh permission cache


def make_cluster(name: str = "prod-eu", **fields: Any) -> Cluster:
    return Cluster.objects.create(
        name=name,
        api_server_url="https://127.0.0.1:9",
        credential_kind=CredentialKind.TOKEN,
        credentials_ciphertext="unused",
        **fields,
    )


def document(name: str, image: str, steps: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if steps:
        metadata["annotations"] = {"rollouts.sidecarhub.io/steps": steps}
    return {
        "apiVersion": "apps.kruise.io/v1beta1",
        "kind": "SidecarSet",
        "metadata": metadata,
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "containers": [{"name": "log-agent", "image": image}],
        },
    }


def make_rollout(
    author: User | None, cluster: Cluster, *, steps: str = "1,100%", wave: int = 0, name: str | None = None
) -> Rollout:
    """Publish revisions 1 and 2 (images only) of a fresh SidecarSet targeting ``cluster`` and
    return the rollout the services create for revision 2 (pending, its steps not prepared)."""
    name = name or f"api-{uuid.uuid4().hex[:6]}"
    sidecarset = create_sidecarset(document(name, "log-agent:1", steps), actor=author)
    create_target(sidecarset_id=sidecarset.pk, cluster_id=cluster.pk, wave=wave)
    first = publish_sidecarset(name, actor=author)
    sync_placements(sidecarset.pk)  # the publish's on-commit receiver: the cluster serves revision 1
    update_sidecarset(name, source=document(name, "log-agent:2", steps), actor=author, expected_version=None)
    revision = publish_sidecarset(name, actor=author)
    # With real commits (transaction=True) the publish signal already created it.
    existing = Rollout.objects.filter(to_revision=revision, cluster=cluster).first()
    if existing is not None:
        return existing
    [rollout] = create_rollouts_for_revision(revision.pk, actor=author, previous_revision_id=first.pk)
    return rollout


PODS = [{"namespace": "shop", "name": f"web-{i}", "uid": f"uid-{i}"} for i in range(3)]


def start_and_prepare(rollout: Rollout, pods: list[dict[str, str]] | None = None) -> RolloutStep:
    """pending → running, and step 1 prepared (awaiting approval) with ``pods``."""
    start_rollout_row(rollout.pk, actor=None, reason="wave 0 started")
    step = rollout.rollout_steps.get(ordinal=1)
    pods = PODS if pods is None else pods
    now = timezone.now()
    return mark_step_awaiting_approval(
        step.pk,
        actor=None,
        reason=f"step 1 prepared: {len(pods)} pods",
        pods=pods,
        pod_count=len(pods),
        target_updated=len(pods),
        needs_recreate=[{"namespace": "shop", "name": "legacy-0", "uid": "uid-l", "reason": "env changed"}],
        prepared_at=now,
        expires_at=now + timedelta(hours=1),
        preparation=1,
    )


def make_pod_update(
    step: RolloutStep,
    pod: dict[str, str],
    *,
    outcome: str = PodUpdateOutcome.SUCCEEDED,
    error: str = "",
    claimed_minutes_ago: int = 0,
) -> PodUpdate:
    """One PodUpdate row as the engine writes it (``outcome`` "" = still open, claimed)."""
    rollout = step.rollout
    done = bool(outcome)
    update = PodUpdate.objects.create(
        rollout=rollout,
        step=step,
        cluster_id=rollout.cluster_id,
        cluster_name=rollout.cluster_name,
        namespace=pod["namespace"],
        pod_name=pod["name"],
        pod_uid=pod["uid"],
        container="log-agent",
        from_image="log-agent:1",
        to_image="log-agent:2",
        from_revision_number=rollout.from_revision_number,
        to_revision_number=rollout.to_revision_number,
        state=PodUpdateState.DONE if done else PodUpdateState.CLAIMED,
        outcome=outcome,
        error=error,
        patch_attempts=1 if done else 0,
        done_at=timezone.now() if done else None,
    )
    if claimed_minutes_ago:
        claimed = timezone.now() - timedelta(minutes=claimed_minutes_ago)
        PodUpdate.objects.filter(pk=update.pk).update(claimed_at=claimed)
        update.refresh_from_db()
    return update


@dataclass
class World:
    """One running rollout (author ``author``) whose step 1 awaits approval, with three pod rows
    from an earlier run of it: one succeeded, one failed, one still open."""

    cluster: Cluster
    rollout: Rollout
    step: RolloutStep
    pod_updates: list[PodUpdate]
    author: User


@pytest.fixture
def author(db: None) -> User:
    return make_user("author", *APPROVE, "rollouts.operate_rollout", "rollouts.view_podupdate")


@pytest.fixture
def world(author: User) -> World:
    cluster = make_cluster()
    rollout = make_rollout(author, cluster)
    step = start_and_prepare(rollout)
    updates = [
        make_pod_update(step, PODS[0], claimed_minutes_ago=30),
        make_pod_update(step, PODS[1], outcome=PodUpdateOutcome.FAILED, error="ErrImagePull: log-agent:2"),
        make_pod_update(step, PODS[2], outcome=""),
    ]
    return World(cluster, Rollout.objects.get(pk=rollout.pk), step, updates, author)


@pytest.fixture
def users(db: None) -> dict[str, User]:
    return {
        "nobody": make_user("nobody"),
        "viewer": make_user("viewer", *VIEW_PODS),
        "rollout_viewer": make_user("rollout-viewer", *VIEW),
        "approver": make_user("approver", *APPROVE),
        "operator": make_user("operator", *OPERATE),
    }


# --- admin change forms ---------------------------------------------------------------------------


def change_form_data(response: Any) -> dict[str, Any]:
    """The change form as the browser would post it unchanged (main form and every inline)."""
    data: dict[str, Any] = {}
    form = response.context["adminform"].form
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        data[name] = "" if value is None else value
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        for key, value in formset.management_form.initial.items():
            data[f"{formset.prefix}-{key}"] = value
        data[f"{formset.prefix}-TOTAL_FORMS"] = len(formset.initial_forms)  # no blank extra rows
        for position, inline_form in enumerate(formset.initial_forms):
            for name in inline_form.fields:
                value = inline_form.initial.get(name)
                if value is None and name == "id":
                    value = inline_form.instance.pk
                if name == "sidecarset":
                    value = inline_form.instance.sidecarset_id
                data[f"{formset.prefix}-{position}-{name}"] = "" if value is None else value
    return data


def form_errors(response: Any) -> Any:
    """The errors of a change form the admin showed again (the response itself if it did not)."""
    if not response.context:
        return response
    return [response.context["adminform"].form.errors] + [
        (inline.formset.prefix, inline.formset.errors, inline.formset.non_form_errors())
        for inline in response.context["inline_admin_formsets"]
    ]
