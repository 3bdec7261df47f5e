"""Targets edited inline on a SidecarSet's page, through Django's test client (the browser test
``test_a_refused_target_edit_keeps_what_was_typed_and_shows_only_the_error`` lives it in
Chromium): a refusal by the services' rules shows only that refusal, on its row, with everything
typed kept and nothing saved; a success shows only the success."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from clusters.models import Cluster, SidecarSetTarget
from clusters.push import create_target
from sidecarhub.models import ChangeRecord, SidecarSet, Team
from sidecarhub.services import create_sidecarset
from tests.console.conftest import team_member
from tests.rollouts_api.conftest import change_form_data, document, form_errors, make_cluster

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("roles")]

SUCCESS = "was changed successfully"


@dataclass
class Page:
    sidecarset: SidecarSet
    target: SidecarSetTarget  # names prod-pay, wave 0
    search_prod: Cluster  # another team's cluster
    author: User  # payments' author
    client: Client
    url: str


@pytest.fixture
def page() -> Page:
    payments, search = Team.objects.create(name="payments"), Team.objects.create(name="search")
    author = team_member("pay-author", "author", teams=(payments,))
    sidecarset = create_sidecarset(document("pay-mesh", "log-agent:1"), actor=author, owner_team="payments")
    target = create_target(sidecarset.pk, cluster_id=make_cluster("prod-pay", owner_team=payments).pk)
    client = Client()
    client.force_login(author)
    url = reverse("admin:sidecarhub_sidecarset_change", args=[sidecarset.pk])
    return Page(sidecarset, target, make_cluster("prod-search", owner_team=search), author, client, url)


def edit(page: Page, **rows: dict[int, dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """The page's form as shown, with the image changed to log-agent:2 and the policy's steps
    typed; and the targets formset's prefix."""
    shown = page.client.get(page.url)
    data = change_form_data(shown)
    data["document_yaml"] = data["document_yaml"].replace("log-agent:1", "log-agent:2")
    data["rollout_steps"] = "1, 100%"
    prefix = next(
        inline.formset.prefix
        for inline in shown.context["inline_admin_formsets"]
        if inline.formset.model is SidecarSetTarget
    )
    return data, prefix


def add_row(data: dict[str, Any], prefix: str, **fields: Any) -> int:
    index = int(data[f"{prefix}-TOTAL_FORMS"])
    data[f"{prefix}-TOTAL_FORMS"] = index + 1
    data.update({f"{prefix}-{index}-{name}": value for name, value in fields.items()})
    return index


def messages_of(response: Any) -> list[tuple[str, str]]:
    return [(message.tags, str(message)) for message in response.context["messages"]]


def target_row(response: Any, index: int) -> Any:
    formset = next(
        inline.formset
        for inline in response.context["inline_admin_formsets"]
        if inline.formset.model is SidecarSetTarget
    )
    return formset.forms[index]


def assert_nothing_saved(page: Page, changes_before: int) -> None:
    sidecarset = SidecarSet.objects.get(pk=page.sidecarset.pk)
    assert sidecarset.spec["containers"][0]["image"] == "log-agent:1"
    assert sidecarset.rollout_policy.get("steps") is None
    assert [(t.cluster_id, t.cluster_selector, t.wave) for t in sidecarset.cluster_targets.all()] == [
        (page.target.cluster_id, None, 0)
    ]
    assert ChangeRecord.objects.count() == changes_before


def test_a_refused_selector_shows_only_the_error_under_it_and_keeps_every_typed_value(page: Page) -> None:
    data, prefix = edit(page)
    data[f"{prefix}-0-wave"] = 2  # an edit of the existing row, kept too
    index = add_row(data, prefix, cluster_selector='{"matchLabels": {"env": 5}}', wave=1)
    changes_before = ChangeRecord.objects.count()

    refused = page.client.post(page.url, data)

    assert refused.status_code == 200  # the page again, not a redirect to a "saved" page
    assert messages_of(refused) == [] and SUCCESS not in refused.content.decode()
    refusal = "matchLabels must map strings to strings"
    assert target_row(refused, index).errors == {"cluster_selector": [refusal]}
    html = refused.content.decode()
    assert refusal in html and "Please correct the error below." in html
    # Everything typed is still in the form: the YAML, the policy, both rows.
    form = refused.context["adminform"].form
    assert "log-agent:2" in form["document_yaml"].value() and form["rollout_steps"].value() == "1, 100%"
    assert target_row(refused, 0)["wave"].value() == "2"
    assert target_row(refused, index)["cluster_selector"].value() == '{"matchLabels": {"env": 5}}'
    assert_nothing_saved(page, changes_before)


def test_another_teams_cluster_is_refused_on_its_row_and_nothing_is_saved(page: Page) -> None:
    data, prefix = edit(page)
    index = add_row(data, prefix, cluster=page.search_prod.pk, wave=1)
    changes_before = ChangeRecord.objects.count()

    refused = page.client.post(page.url, data)

    assert refused.status_code == 200 and messages_of(refused) == []
    assert target_row(refused, index).non_field_errors() == [
        "pay-author is not a member of team 'search', which owns cluster 'prod-search'"
    ]
    assert target_row(refused, index)["cluster"].value() == str(page.search_prod.pk)
    assert_nothing_saved(page, changes_before)


def test_a_refused_deletion_is_shown_above_the_targets_and_nothing_is_saved(page: Page) -> None:
    # An organisation admin named search's cluster; payments' author may not remove it.
    create_target(page.sidecarset.pk, cluster_id=page.search_prod.pk, wave=1)
    data, prefix = edit(page)
    position = next(
        position
        for position in range(int(data[f"{prefix}-TOTAL_FORMS"]))
        if data[f"{prefix}-{position}-cluster"] == page.search_prod.pk
    )
    data[f"{prefix}-{position}-DELETE"] = "on"

    refused = page.client.post(page.url, data)

    assert refused.status_code == 200 and messages_of(refused) == []
    assert [errors for prefix_, _, errors in form_errors(refused)[1:] if prefix_ == prefix] == [
        ["target not deleted: pay-author is not a member of team 'search', which owns cluster 'prod-search'"]
    ]
    assert SidecarSetTarget.objects.filter(cluster=page.search_prod).exists()
    assert SidecarSet.objects.get(pk=page.sidecarset.pk).spec["containers"][0]["image"] == "log-agent:1"


def test_a_refusal_while_saving_leaves_the_page_unsaved_and_shows_only_the_error(
    page: Page, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone changed the targets between the page's checks and its save (the checks are
    skipped here to stand for that): the service's refusal rolls the whole page back."""
    monkeypatch.setattr("clusters.admin.check_target", lambda *args, **kwargs: None)
    data, prefix = edit(page)
    add_row(data, prefix, cluster=page.target.cluster_id, wave=1)  # already an explicit target
    changes_before = ChangeRecord.objects.count()

    refused = page.client.post(page.url, data, follow=True)

    why = "cluster: this cluster is already an explicit target of the SidecarSet"
    assert messages_of(refused) == [("error", f"Not saved: a target was refused ({why})")]
    assert_nothing_saved(page, changes_before)


def test_a_saved_edit_shows_only_the_success(page: Page) -> None:
    data, prefix = edit(page)
    add_row(data, prefix, cluster_selector='{"matchLabels": {"env": "prod"}}', wave=1)

    saved = page.client.post(page.url, data, follow=True)

    assert saved.redirect_chain, form_errors(saved)
    [(tags, text)] = messages_of(saved)
    assert tags == "success" and SUCCESS in text
    sidecarset = SidecarSet.objects.get(pk=page.sidecarset.pk)
    assert sidecarset.spec["containers"][0]["image"] == "log-agent:2"
    assert sorted((t.cluster_id is None, t.wave) for t in sidecarset.cluster_targets.all()) == [
        (False, 0),
        (True, 1),
    ]


def test_the_targets_own_admin_page_checks_the_same_rules_before_saving(page: Page) -> None:
    add = reverse("admin:clusters_sidecarsettarget_add")
    data = {"sidecarset": page.sidecarset.pk, "cluster": page.search_prod.pk, "cluster_selector": ""}
    data["wave"] = 0

    refused = page.client.post(add, data)

    assert refused.status_code == 200 and messages_of(refused) == []
    assert refused.context["adminform"].form.non_field_errors() == [
        "pay-author is not a member of team 'search', which owns cluster 'prod-search'"
    ]
    assert not SidecarSetTarget.objects.filter(cluster=page.search_prod).exists()

    data.update(cluster="", cluster_selector='{"matchLabels": {"env": "prod"}}')
    saved = page.client.post(add, data, follow=True)
    [(tags, text)] = messages_of(saved)
    assert tags == "success" and "was added successfully" in text
    assert SidecarSetTarget.objects.filter(sidecarset=page.sidecarset, cluster__isnull=True).exists()
