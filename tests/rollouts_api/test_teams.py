"""Teams and roles through the API (issue 16 item 5): a team's approvers approve their team's
steps only, org admins everywhere, four eyes still holds; authors and operators act on their
team's objects only; cluster rollout policy editable by those allowed and recorded in the change
log; viewers still list everything. The users get their permissions from the ready-made role
groups the data migration created (``sidecarhub.roles``)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from clusters.models import Cluster, SidecarSetPlacement
from clusters.push import create_target, retry_placement
from clusters.services import update_cluster
from clusters.targeting import (
    SkippedCluster,
    resolve_targets,
    resolve_targets_and_skips_of,
    sidecarset_ids_targeting,
)
from rollouts.choices import StepState
from rollouts.fleet import fleet_of
from rollouts.models import Rollout, RolloutStep
from rollouts.permissions import steps_awaiting_approval_by
from sidecarhub.clitools import EXIT_NOT_PERMITTED
from sidecarhub.models import ChangeRecord, SidecarSet, Team
from sidecarhub.roles import HUB_APPS, ROLE_APPS, ROLES, TOKEN_PERMISSIONS, role_permissions
from sidecarhub.services import create_sidecarset, publish_sidecarset, update_sidecarset
from sidecarhub.teams import NotTeamMember
from sidecarhub.tokens import TokenNotPermitted, issue_token
from tests.rollouts_api.conftest import document, make_cluster, make_rollout, person, start_and_prepare

pytestmark = pytest.mark.django_db


def client_for(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@dataclass
class Teams:
    payments: Team
    search: Team
    cluster: Cluster  # owned by payments
    rollout: Rollout  # of a payments SidecarSet in the payments cluster, by pay_author
    step: RolloutStep  # its step 1, awaiting approval
    pay_author: User  # author + approver, payments
    pay_approver: User
    pay_operator: User
    search_approver: User
    search_author: User
    search_operator: User
    org_admin: User  # the admin role, member of no team
    viewer: User  # the viewer role, member of no team


@pytest.fixture
def teams() -> Teams:
    payments, search = Team.objects.create(name="payments"), Team.objects.create(name="search")
    pay_author = person("pay-author", "author", "approver", teams=(payments,))
    cluster = make_cluster("prod-pay", owner_team=payments)
    rollout = make_rollout(pay_author, cluster, name="pay-mesh")
    SidecarSet.objects.filter(pk=rollout.live_sidecarset_id).update(owner_team=payments)
    step = start_and_prepare(rollout)
    return Teams(
        payments=payments,
        search=search,
        cluster=cluster,
        rollout=rollout,
        step=step,
        pay_author=pay_author,
        pay_approver=person("pay-approver", "approver", teams=(payments,)),
        pay_operator=person("pay-operator", "operator", teams=(payments,)),
        search_approver=person("search-approver", "approver", teams=(search,)),
        search_author=person("search-author", "author", teams=(search,)),
        search_operator=person("search-operator", "operator", teams=(search,)),
        org_admin=person("org-admin", "admin"),
        viewer=person("viewer", "viewer"),
    )


def approve(user: User, step: RolloutStep) -> tuple[int, dict]:
    response = client_for(user).post(f"/api/v1/rollout-steps/{step.pk}/approve/", {}, format="json")
    return response.status_code, response.json()


# --- approvals ---------------------------------------------------------------------------------


def test_another_teams_approver_gets_403_and_the_step_still_waits(teams: Teams) -> None:
    code, body = approve(teams.search_approver, teams.step)
    assert code == 403
    assert "search-approver is not a member of team 'payments'" in body["errors"][0]["message"]
    assert RolloutStep.objects.get(pk=teams.step.pk).state == StepState.AWAITING_APPROVAL


def test_the_same_teams_approver_who_is_not_the_author_approves(teams: Teams) -> None:
    code, body = approve(teams.pay_author, teams.step)
    assert code == 403 and "requires someone else" in body["errors"][0]["message"]  # four eyes
    code, body = approve(teams.pay_approver, teams.step)
    assert (code, body["state"], body["approvals"][0]["actor"]) == (202, "approved", "pay-approver")


def test_an_org_admin_approves_any_teams_step(teams: Teams) -> None:
    code, body = approve(teams.org_admin, teams.step)
    assert (code, body["state"]) == (202, "approved")


def test_the_clusters_team_decides_over_the_sidecarsets_team(teams: Teams) -> None:
    """A search SidecarSet released into the payments cluster: payments approves, search does not;
    in a cluster without a team, the SidecarSet's team decides."""
    search_rollout = make_rollout(teams.search_author, teams.cluster, name="search-mesh")
    SidecarSet.objects.filter(pk=search_rollout.live_sidecarset_id).update(owner_team=teams.search)
    step = start_and_prepare(search_rollout)
    assert approve(teams.search_approver, step)[0] == 403
    assert approve(teams.pay_approver, step)[0] == 202

    shared = make_cluster("shared")
    shared_rollout = make_rollout(teams.search_author, shared, name="search-shared")
    SidecarSet.objects.filter(pk=shared_rollout.live_sidecarset_id).update(owner_team=teams.search)
    shared_step = start_and_prepare(shared_rollout)
    assert approve(teams.pay_approver, shared_step)[0] == 403
    assert approve(teams.search_approver, shared_step)[0] == 202


def test_steps_awaiting_approval_by_lists_what_each_user_may_approve_now(teams: Teams) -> None:
    def ids(user: User) -> list[int]:
        return list(steps_awaiting_approval_by(user).values_list("pk", flat=True))

    assert ids(teams.pay_approver) == [teams.step.pk]
    assert ids(teams.org_admin) == [teams.step.pk]

    def listed(user: User) -> list[int]:
        response = client_for(user).get("/api/v1/rollout-steps/?awaiting_my_approval=true")
        return [row["id"] for row in response.json()["results"]]

    assert listed(teams.pay_approver) == [teams.step.pk] and listed(teams.search_approver) == []
    assert ids(teams.search_approver) == []  # another team's
    assert ids(teams.pay_author) == []  # four eyes: their own rollout
    assert ids(teams.viewer) == []  # no approve permission
    Cluster.objects.filter(pk=teams.cluster.pk).update(rollout_requires_second_person=False)
    assert ids(teams.pay_author) == [teams.step.pk]
    approve(teams.pay_approver, teams.step)
    assert ids(teams.org_admin) == []  # approved: no longer waiting


# --- operating, authoring, cluster changes -----------------------------------------------------


def test_operators_pause_their_teams_rollouts_only(teams: Teams) -> None:
    pause = f"/api/v1/rollouts/{teams.rollout.pk}/pause/"
    refused = client_for(teams.search_operator).post(pause, {"reason": "x"}, format="json")
    assert refused.status_code == 403 and "team 'payments'" in refused.json()["errors"][0]["message"]
    assert client_for(teams.pay_operator).post(pause, {"reason": "x"}, format="json").status_code == 202


def test_authors_change_and_publish_their_teams_sidecarsets_only(teams: Teams) -> None:
    url = "/api/v1/sidecarsets/pay-mesh/"
    version = SidecarSet.objects.get(name="pay-mesh").version
    edit = {"annotations": {"note": "x"}, "version": version}
    refused = client_for(teams.search_author).patch(url, edit, format="json")
    assert refused.status_code == 403 and "team 'payments'" in refused.json()["errors"][0]["message"]
    assert client_for(teams.search_author).post(url + "publish/", {}, format="json").status_code == 403
    assert SidecarSet.objects.get(name="pay-mesh").version == version  # nothing written
    # a payments author (without the approver role) may
    pay_writer = person("pay-writer", "author", teams=(teams.payments,))
    assert (
        client_for(pay_writer)
        .patch(url, {"owner_team": "payments", "version": version}, format="json")
        .status_code
        == 200
    )


def test_giving_a_sidecarset_to_a_team_needs_its_membership(teams: Teams) -> None:
    document = {
        "apiVersion": "apps.kruise.io/v1beta1",
        "kind": "SidecarSet",
        "metadata": {"name": "gift"},
        "spec": {"selector": {"matchLabels": {"app": "gift"}}, "containers": [{"name": "c", "image": "i:1"}]},
    }
    client = client_for(teams.search_author)
    refused = client.post(
        "/api/v1/sidecarsets/", {"document": document, "owner_team": "payments"}, format="json"
    )
    assert refused.status_code == 403 and not SidecarSet.objects.filter(name="gift").exists()
    unknown = client.post("/api/v1/sidecarsets/", {"document": document, "owner_team": "nope"}, format="json")
    assert (unknown.status_code, unknown.json()["errors"][0]["path"]) == (400, "owner_team")
    created = client.post(
        "/api/v1/sidecarsets/", {"document": document, "owner_team": "search"}, format="json"
    )
    assert (created.status_code, created.json()["owner_team"]) == (201, "search")
    # taking it away from its team (making it everyone's) is for org admins
    taken = client.patch("/api/v1/sidecarsets/gift/", {"owner_team": "", "version": 1}, format="json")
    assert taken.status_code == 403
    by_admin = client_for(teams.org_admin).patch(
        "/api/v1/sidecarsets/gift/", {"owner_team": "", "version": 1}, format="json"
    )
    assert (by_admin.status_code, by_admin.json()["owner_team"]) == (200, "")


def test_another_teams_cluster_cannot_be_held_or_targeted(teams: Teams) -> None:
    teams.search_operator.user_permissions.add(Permission.objects.get(codename="hold_cluster"))
    held = client_for(teams.search_operator).post("/api/v1/clusters/prod-pay/hold/", {}, format="json")
    assert held.status_code == 403 and not Cluster.objects.get(pk=teams.cluster.pk).held
    search_set = make_rollout(teams.search_author, make_cluster("search-dev"), name="search-own").sidecarset
    assert search_set is not None
    SidecarSet.objects.filter(pk=search_set.pk).update(owner_team=teams.search)
    target = client_for(teams.search_author).post(
        "/api/v1/sidecarset-targets/", {"sidecarset": "search-own", "cluster": "prod-pay"}, format="json"
    )
    assert target.status_code == 403, target.json()
    assert (
        client_for(teams.pay_operator).post("/api/v1/clusters/prod-pay/hold/", {}, format="json").status_code
        == 200
    )


# --- cluster rollout policy --------------------------------------------------------------------


def test_rollout_policy_is_changed_by_those_allowed_and_logged(teams: Teams) -> None:
    url = "/api/v1/clusters/prod-pay/rollout-policy/"
    change = {"rollout_requires_second_person": False, "rollout_approval_ttl_seconds": 600}
    assert client_for(teams.viewer).get(url).json() == {
        "name": "prod-pay",
        "rollout_requires_second_person": True,
        "rollout_auto_approve": False,
        "rollout_approval_ttl_seconds": None,
    }
    assert (
        client_for(teams.pay_approver).patch(url, change, format="json").status_code == 403
    )  # no permission
    outsider = person("search-admin", "viewer", teams=(teams.search,))
    outsider.user_permissions.add(Permission.objects.get(codename="change_rollout_policy"))
    refused = client_for(User.objects.get(pk=outsider.pk)).patch(url, change, format="json")
    assert refused.status_code == 403 and "team 'payments'" in refused.json()["errors"][0]["message"]
    assert not ChangeRecord.objects.filter(message="rollout policy changed").exists()

    response = client_for(teams.org_admin).patch(url, change, format="json")
    assert response.status_code == 200
    assert response.json()["rollout_approval_ttl_seconds"] == 600
    record = ChangeRecord.objects.get(message="rollout policy changed")
    assert (record.actor_name, record.object_id) == ("org-admin", str(teams.cluster.pk))
    before, after = record.before or {}, record.after or {}
    assert (before["rollout_requires_second_person"], after["rollout_requires_second_person"]) == (
        True,
        False,
    )
    assert (before["rollout_approval_ttl_seconds"], after["rollout_approval_ttl_seconds"]) == (None, 600)
    # four eyes off: the author may now approve their own rollout
    assert approve(teams.pay_author, teams.step)[0] == 202
    # the lifetime applies to rollouts created afterwards
    later = make_rollout(teams.pay_author, teams.cluster, name="pay-later")
    assert later.approval_ttl_seconds == 600


def test_rollout_policy_input_errors_name_the_field(teams: Teams) -> None:
    client = client_for(teams.org_admin)
    url = "/api/v1/clusters/prod-pay/rollout-policy/"
    too_short = client.patch(url, {"rollout_approval_ttl_seconds": 30}, format="json")
    assert (too_short.status_code, too_short.json()["errors"][0]["path"]) == (
        400,
        "rollout_approval_ttl_seconds",
    )
    assert client.patch(url, {}, format="json").status_code == 400
    wrong_place = client.patch("/api/v1/clusters/prod-pay/", {"rollout_auto_approve": True}, format="json")
    assert (wrong_place.status_code, wrong_place.json()["errors"][0]["path"]) == (400, "rollout_auto_approve")
    assert not Cluster.objects.get(pk=teams.cluster.pk).rollout_auto_approve


def test_rollout_policy_from_the_cli_is_logged(teams: Teams, cli_as: Any) -> None:
    cli_as(teams.org_admin)
    out = io.StringIO()
    call_command(
        "sidecarhub", "cluster", "policy", "prod-pay", "--auto-approve", "--approval-ttl", "300", stdout=out
    )
    assert out.getvalue() == "cluster prod-pay: four eyes on, auto-approve on, approval lifetime 300s\n"
    after = ChangeRecord.objects.get(message="rollout policy changed").after or {}
    assert (after["rollout_auto_approve"], after["rollout_approval_ttl_seconds"]) == (True, 300)
    out = io.StringIO()
    call_command("sidecarhub", "cluster", "policy", "prod-pay", "--approval-ttl", "default", stdout=out)
    assert "approval lifetime default" in out.getvalue()
    assert Cluster.objects.get(pk=teams.cluster.pk).rollout_approval_ttl_seconds is None
    change = ChangeRecord.objects.filter(message="rollout policy changed").latest("pk")
    assert change.actor_name == "org-admin"  # the token's user, not "system"


def _cli_fails(*argv: str) -> CommandError:
    with pytest.raises(CommandError) as raised:
        call_command("sidecarhub", *argv, stdout=io.StringIO())
    return raised.value


def test_the_cli_refuses_another_teams_approver_with_exit_3(teams: Teams, cli_as: Any) -> None:
    """The dispatcher checks the model permission (an approver has it); the service checks the
    team of the token's user, as for the API's 403."""
    cli_as(teams.search_approver)
    error = _cli_fails("rollout", "approve", str(teams.step.pk))
    assert error.returncode == EXIT_NOT_PERMITTED
    assert "search-approver is not a member of team 'payments'" in str(error)
    assert RolloutStep.objects.get(pk=teams.step.pk).state == StepState.AWAITING_APPROVAL
    cli_as(teams.pay_approver)
    call_command("sidecarhub", "rollout", "approve", str(teams.step.pk), stdout=io.StringIO())
    assert RolloutStep.objects.get(pk=teams.step.pk).state == StepState.APPROVED


def test_the_cli_changes_a_rollout_policy_only_for_those_allowed(teams: Teams, cli_as: Any) -> None:
    change = ("cluster", "policy", "prod-pay", "--auto-approve")
    cli_as(teams.viewer)  # may see it
    shown = io.StringIO()
    call_command("sidecarhub", "cluster", "policy", "prod-pay", stdout=shown)
    assert "auto-approve off" in shown.getvalue()
    missing = _cli_fails(*change)  # the PATCH's permission
    assert missing.returncode == EXIT_NOT_PERMITTED and "clusters.change_rollout_policy" in str(missing)
    # the permission to change policies, but a member of the search team only
    outsider = person("search-admin", "viewer", teams=(teams.search,))
    outsider.user_permissions.add(Permission.objects.get(codename="change_rollout_policy"))
    cli_as(User.objects.get(pk=outsider.pk))
    other_team = _cli_fails(*change)
    assert other_team.returncode == EXIT_NOT_PERMITTED and "team 'payments'" in str(other_team)
    assert not Cluster.objects.get(pk=teams.cluster.pk).rollout_auto_approve
    assert not ChangeRecord.objects.filter(message="rollout policy changed").exists()


# --- viewers, roles ----------------------------------------------------------------------------


def test_viewers_list_every_teams_objects(teams: Teams) -> None:
    client = client_for(teams.viewer)
    for url in ("/api/v1/rollouts/", "/api/v1/rollout-steps/", "/api/v1/clusters/", "/api/v1/sidecarsets/"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.json()["results"], url
    clusters = {row["name"]: row["owner_team"] for row in client.get("/api/v1/clusters/").json()["results"]}
    assert clusters == {"prod-pay": "payments"}
    assert client.get("/api/v1/sidecarsets/?owner_team=payments").json()["results"][0]["name"] == "pay-mesh"
    assert approve(teams.viewer, teams.step)[0] == 403


def test_the_role_groups_hold_exactly_their_documented_permissions() -> None:
    available = {
        (app, codename)
        for app, codename in Permission.objects.filter(content_type__app_label__in=ROLE_APPS).values_list(
            "content_type__app_label", "codename"
        )
    }
    for role in ROLES:
        held = set(
            Group.objects.get(name=role).permissions.values_list("content_type__app_label", "codename")
        )
        assert held == role_permissions(role, available), role
    approver = {
        codename
        for _, codename in role_permissions("approver", available)
        if not codename.startswith("view_")
    }
    assert approver == {"approve_rolloutstep"}
    assert ("sidecarhub", "act_for_all_teams") in role_permissions("admin", available)
    assert ("sidecarhub", "act_for_all_teams") not in role_permissions("operator", available)
    tokens = {tuple(name.split(".")) for name in TOKEN_PERMISSIONS}
    assert tokens <= role_permissions("admin", available)
    for role in set(ROLES) - {"admin"}:  # the token list shows keys: the viewer's view_* stops short
        assert not tokens & role_permissions(role, available), role
    assert {app for app, _ in role_permissions("viewer", available)} == set(HUB_APPS)


def test_an_org_admin_who_is_not_a_superuser_issues_api_tokens(teams: Teams) -> None:
    """``sidecarhub token create`` needs ``tokens.ISSUE_PERMISSIONS``: the admin role has them,
    the viewer (or any other role) does not."""
    assert not teams.org_admin.is_superuser
    key = issue_token("viewer", actor=teams.org_admin)
    assert Token.objects.get(user=teams.viewer).key == key
    for user in (teams.viewer, teams.pay_operator, teams.pay_author):
        with pytest.raises(TokenNotPermitted):
            issue_token("search-author", actor=user)


# --- the admin: same rules, through the same services ------------------------------------------


def _cluster_form(team: Team, **policy: str) -> dict[str, str]:
    """The cluster change form as the page posts it (checkboxes: present when ticked)."""
    return {
        "owner_team": str(team.pk),
        "api_server_url": "https://127.0.0.1:9",
        "ca_bundle": "",
        "labels": "{}",
        "tls_server_name": "",
        "webhook_url": "",
        "webhook_failure_policy": "Ignore",
        "webhook_timeout_seconds": "10",
        **policy,
    }


def test_admin_edits_the_rollout_policy_for_those_allowed(teams: Teams) -> None:
    from django.test import Client

    url = f"/admin/clusters/cluster/{teams.cluster.pk}/change/"
    staff_admin = teams.org_admin
    User.objects.filter(pk=staff_admin.pk).update(is_staff=True)
    browser = Client()
    browser.force_login(staff_admin)
    assert 'name="rollout_auto_approve"' in browser.get(url).content.decode()
    form = _cluster_form(
        teams.payments, rollout_requires_second_person="on", rollout_approval_ttl_seconds="900"
    )
    response = browser.post(url, form)
    assert response.status_code == 302, response.content.decode()[:3000]
    cluster = Cluster.objects.get(pk=teams.cluster.pk)
    assert (cluster.rollout_requires_second_person, cluster.rollout_approval_ttl_seconds) == (True, 900)
    after = ChangeRecord.objects.get(message="rollout policy changed").after or {}
    assert (
        after["rollout_approval_ttl_seconds"],
        ChangeRecord.objects.get(message="rollout policy changed").actor_name,
    ) == (
        900,
        "org-admin",
    )

    # a payments operator who may change clusters but not rollout policies: read-only policy
    editor = person("pay-editor", "operator", teams=(teams.payments,))
    editor.user_permissions.add(Permission.objects.get(codename="change_cluster"))
    User.objects.filter(pk=editor.pk).update(is_staff=True)
    browser.force_login(editor)
    page = browser.get(url).content.decode()
    assert 'name="rollout_auto_approve"' not in page and 'name="api_server_url"' in page
    assert browser.post(url, _cluster_form(teams.payments, rollout_auto_approve="on")).status_code == 302
    assert not Cluster.objects.get(pk=teams.cluster.pk).rollout_auto_approve

    # another team's member with the same permissions: the cluster is read-only, a POST is refused
    outsider = person("search-editor", "operator", teams=(teams.search,))
    outsider.user_permissions.add(Permission.objects.get(codename="change_cluster"))
    User.objects.filter(pk=outsider.pk).update(is_staff=True)
    browser.force_login(outsider)
    assert 'name="api_server_url"' not in browser.get(url).content.decode()
    assert browser.post(url, _cluster_form(teams.payments) | {"labels": '{"a": "b"}'}).status_code == 403
    assert Cluster.objects.get(pk=teams.cluster.pk).labels == {}


def test_another_teams_member_cannot_issue_a_clusters_webhook_token(teams: Teams) -> None:
    """The webhook token is a credential of the cluster: its team's (API and admin action); the
    admin action issues for all the selected clusters or for none (an issued token not shown
    would lock its cluster out)."""
    from django.test import Client

    outsider = person("search-editor", "operator", teams=(teams.search,))
    outsider.user_permissions.add(Permission.objects.get(codename="change_cluster"))
    User.objects.filter(pk=outsider.pk).update(is_staff=True)
    outsider = User.objects.get(pk=outsider.pk)
    refused = client_for(outsider).post("/api/v1/clusters/prod-pay/webhook-token/", {}, format="json")
    assert refused.status_code == 403 and "team 'payments'" in refused.json()["errors"][0]["message"]

    own = make_cluster("search-own", owner_team=teams.search)
    browser = Client()
    browser.force_login(outsider)
    selected = [str(own.pk), str(teams.cluster.pk)]
    response = browser.post(
        "/admin/clusters/cluster/", {"action": "generate_webhook_tokens", "_selected_action": selected}
    )
    assert response.status_code == 302  # back to the list, with the refusal as a message
    assert not Cluster.objects.filter(webhook_token_updated_at__isnull=False).exists()
    response = browser.post(
        "/admin/clusters/cluster/", {"action": "generate_webhook_tokens", "_selected_action": [str(own.pk)]}
    )
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    assert list(Cluster.objects.filter(webhook_token_updated_at__isnull=False)) == [own]


# --- selector targets and placements across teams ------------------------------------------------


def _selector_sidecarset(name: str, author: User, owner_team: str) -> SidecarSet:
    """A published SidecarSet of ``owner_team`` ("" = none) whose one target selects env=prod."""
    sidecarset = create_sidecarset(document(name, "log-agent:1"), actor=author, owner_team=owner_team)
    publish_sidecarset(name, actor=author)
    create_target(sidecarset.pk, cluster_selector={"matchLabels": {"env": "prod"}}, actor=author)
    return sidecarset


def _placed_on(sidecarset: SidecarSet) -> set[str]:
    return set(
        SidecarSetPlacement.objects.filter(sidecarset=sidecarset, should_exist=True).values_list(
            "cluster__name", flat=True
        )
    )


def test_a_selector_target_selects_only_clusters_its_sidecarsets_team_may_use(teams: Teams) -> None:
    """A payments SidecarSet selecting env=prod is placed on payments' and team-less prod
    clusters, never on search's; every reader of the targets agrees; a SidecarSet without a team
    selects by labels alone; the cluster joins once it leaves its team."""
    Cluster.objects.filter(pk=teams.cluster.pk).update(labels={"env": "prod"})
    search_prod = make_cluster("prod-search", owner_team=teams.search, labels={"env": "prod"})
    shared_prod = make_cluster("prod-shared", labels={"env": "prod"})
    make_cluster("dev-pay", owner_team=teams.payments, labels={"env": "dev"})

    paying = _selector_sidecarset("pay-sel", teams.pay_author, "payments")
    assert _placed_on(paying) == {"prod-pay", "prod-shared"}
    assert set(resolve_targets(paying.pk)) == {teams.cluster.pk, shared_prod.pk}
    skipped = SkippedCluster(search_prod.pk, "prod-search", team="search", sidecarset_team="payments")
    assert resolve_targets_and_skips_of([paying.pk]).skipped == {paying.pk: (skipped,)}
    assert {entry.cluster for entry in fleet_of(paying.pk).clusters} == {"prod-pay", "prod-shared"}
    assert fleet_of(paying.pk).skipped_clusters == (skipped,)
    # admission and drift, from the cluster's side
    assert paying.pk not in sidecarset_ids_targeting(search_prod)
    assert paying.pk in sidecarset_ids_targeting(Cluster.objects.get(pk=teams.cluster.pk))

    everyones = _selector_sidecarset("all-sel", teams.org_admin, "")
    assert _placed_on(everyones) == {"prod-pay", "prod-search", "prod-shared"}
    assert everyones.pk in sidecarset_ids_targeting(search_prod)

    # the search cluster given to no team: the payments selector now reaches it
    update_cluster(search_prod.pk, changes={"owner_team": ""}, actor=teams.org_admin)
    assert _placed_on(paying) == {"prod-pay", "prod-search", "prod-shared"}
    assert resolve_targets_and_skips_of([paying.pk]).skipped == {paying.pk: ()}


def test_a_sidecarsets_team_change_re_resolves_its_selectors(
    teams: Teams, django_capture_on_commit_callbacks: Any
) -> None:
    """Taking the SidecarSet's team away (after commit) lets its selector reach every prod
    cluster; giving it to search moves it off payments' cluster."""
    make_cluster("prod-search", owner_team=teams.search, labels={"env": "prod"})
    Cluster.objects.filter(pk=teams.cluster.pk).update(labels={"env": "prod"})
    paying = _selector_sidecarset("pay-sel", teams.pay_author, "payments")
    assert _placed_on(paying) == {"prod-pay"}
    with django_capture_on_commit_callbacks(execute=True):
        update_sidecarset("pay-sel", owner_team="", actor=teams.org_admin, expected_version=None)
    assert _placed_on(paying) == {"prod-pay", "prod-search"}
    with django_capture_on_commit_callbacks(execute=True):
        update_sidecarset("pay-sel", owner_team="search", actor=teams.org_admin, expected_version=None)
    assert _placed_on(paying) == {"prod-search"}


def test_an_explicit_target_by_an_org_admin_still_crosses_teams(teams: Teams) -> None:
    """Naming another team's cluster is the deliberate way across (checked when written)."""
    search_prod = make_cluster("prod-search", owner_team=teams.search, labels={"env": "prod"})
    paying = _selector_sidecarset("pay-sel", teams.pay_author, "payments")
    assert _placed_on(paying) == set()
    with pytest.raises(NotTeamMember):
        create_target(paying.pk, cluster_id=search_prod.pk, actor=teams.pay_author)
    create_target(paying.pk, cluster_id=search_prod.pk, actor=teams.org_admin)
    assert _placed_on(paying) == {"prod-search"}
    assert resolve_targets_and_skips_of([paying.pk]).skipped == {paying.pk: ()}  # selected after all


def test_retrying_a_placement_needs_the_clusters_team(teams: Teams) -> None:
    """Retry is a cluster write: the API answers 403 to another team's operator and queues
    nothing; the cluster's team's operator and an org admin retry."""
    placement = SidecarSetPlacement.objects.get(sidecarset_name="pay-mesh", cluster=teams.cluster)
    url = f"/api/v1/sidecarset-placements/{placement.pk}/retry/"
    queued: list[tuple[Any, ...]] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("clusters.enqueue.push", lambda *args, **kwargs: queued.append(args))
        refused = client_for(teams.search_operator).post(url, {}, format="json")
        assert refused.status_code == 403, refused.json()
        assert "not a member of team 'payments'" in refused.json()["errors"][0]["message"]
        assert queued == []
        assert client_for(teams.viewer).post(url, {}, format="json").status_code == 403
        assert client_for(teams.pay_operator).post(url, {}, format="json").status_code == 202
        assert client_for(teams.org_admin).post(url, {}, format="json").status_code == 202
    assert len(queued) == 2
    with pytest.raises(NotTeamMember):
        retry_placement(placement.pk, actor=teams.search_operator)


def test_the_admins_retry_action_needs_the_permission_and_the_clusters_team(teams: Teams) -> None:
    """The placement list offers retry to those holding ``change_sidecarsetplacement`` only; a
    member of another team is told why and nothing is queued."""
    from django.test import Client

    placement = SidecarSetPlacement.objects.get(sidecarset_name="pay-mesh", cluster=teams.cluster)
    url = "/admin/clusters/sidecarsetplacement/"
    form = {"action": "retry", "_selected_action": [str(placement.pk)]}
    User.objects.filter(pk__in=[teams.viewer.pk, teams.search_operator.pk, teams.pay_operator.pk]).update(
        is_staff=True
    )
    queued: list[tuple[Any, ...]] = []

    def post(user: User) -> str:
        browser = Client()
        browser.force_login(user)
        return browser.post(url, form, follow=True).content.decode()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("clusters.enqueue.push", lambda *args, **kwargs: queued.append(args))
        browser = Client()
        browser.force_login(teams.viewer)
        assert 'value="retry"' not in browser.get(url).content.decode()
        post(teams.viewer)
        assert queued == []
        assert "not a member of team &#x27;payments&#x27;" in post(teams.search_operator)
        assert queued == []
        assert "1 placement(s) queued again." in post(teams.pay_operator)
    assert len(queued) == 1
