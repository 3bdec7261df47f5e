"""The console's home dashboard page (``sidecarhub.console.ConsoleSite.HOME_VIEW``): the fleet
matrix, releases in flight, the steps waiting for the signed-in user's approval (approved from
the page through the rollout page's own decide view, so the services' checks apply), and the
rollouts that stopped. The queries are ``rollouts.dashboard``'s; this module only turns their
rows into what the template shows, per the user's permissions.

The page is a live region (``sidecarhub.live``): htmx asks the same URL again every few
seconds and swaps in the new rendering.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse

from rollouts import dashboard
from rollouts.admin import (
    FLEET_PERMISSIONS,
    deleted_label,
    observed_pods_html,
    progress_bar_html,
    state_badge,
)
from rollouts.choices import RolloutKind
from rollouts.fleet import FleetCluster, RolloutSummary
from rollouts.models import Rollout
from rollouts.permissions import APPROVE_PERMISSION
from rollouts.queries import progress_of
from sidecarhub.live import live_response, page_context

__all__ = ["DASHBOARD_TEMPLATE", "dashboard_view"]

DASHBOARD_TEMPLATE = "admin/sidecarhub/dashboard.html"
VIEW_ROLLOUTS = "rollouts.view_rollout"


def _revisions(from_revision: int | None, to_revision: int, kind: str) -> str:
    source = f"#{from_revision}" if from_revision is not None else "none"
    arrow = " ↩ " if kind == RolloutKind.ROLLBACK else " → "
    return f"{source}{arrow}#{to_revision}"


def _rollout_url(rollout_id: int) -> str:
    return reverse("admin:rollouts_rollout_change", args=[rollout_id])


def _matrix_cell(row: FleetCluster | None) -> dict[str, Any] | None:
    if row is None:
        return None
    latest: RolloutSummary | None = row.latest_rollout
    return {
        "row": row,
        "rollout_url": _rollout_url(latest.id) if latest is not None else "",
        "rollout_badge": state_badge(latest.state) if latest is not None else "",
        "step_badge": state_badge(latest.step_state) if latest is not None and latest.step_state else "",
        "pods": observed_pods_html(row, 90),
    }


def _fleet_matrix(request: HttpRequest) -> dict[str, Any] | None:
    if not request.user.has_perms(FLEET_PERMISSIONS):
        return None
    matrix = dashboard.fleet_matrix()
    return {
        "clusters": [
            {"cluster": cluster, "url": reverse("admin:clusters_cluster_change", args=[cluster.pk])}
            for cluster in matrix.clusters
        ],
        "rows": [
            {
                "row": row,
                "url": reverse("admin:sidecarhub_sidecarset_change", args=[row.sidecarset_id]),
                "cells": [_matrix_cell(cell) for cell in row.cells],
            }
            for row in matrix.rows
        ],
        "truncated": matrix.truncated,
        "limit": dashboard.MAX_MATRIX_SIDECARSETS,
    }


def _in_flight() -> list[dict[str, Any]]:
    return [
        {
            "item": item,
            "url": reverse("admin:sidecarhub_sidecarset_change", args=[item.sidecarset_id]) + "#releases",
            "badge": state_badge(item.release.stage, item.release.stage_text),
            "progress": progress_bar_html(item.progress, 220, scope="rollouts"),
            "clusters": [
                {
                    "member": member,
                    "url": _rollout_url(member.rollout.id),
                    "badge": state_badge(member.rollout.state),
                }
                for member in item.release.clusters
            ],
        }
        for item in dashboard.releases_in_flight()
    ]


def _awaiting(request: HttpRequest) -> list[dict[str, Any]]:
    rows = []
    for step in dashboard.steps_awaiting_approval_by(request.user):
        rollout: Rollout = step.rollout
        rows.append(
            {
                "step": step,
                "rollout": rollout,
                "revisions": _revisions(
                    rollout.from_revision_number, rollout.to_revision_number, rollout.kind
                ),
                "url": _rollout_url(rollout.pk) + f"#step-{step.pk}",
                "approve_url": reverse(
                    "admin:rollouts_rollout_decide", args=[rollout.pk, step.pk, "approve"]
                ),
            }
        )
    return rows


def _stopped() -> list[dict[str, Any]]:
    return [
        {
            "rollout": rollout,
            "url": _rollout_url(rollout.pk),
            "cluster": deleted_label(rollout.cluster_name, rollout.cluster_id is None),
            "revisions": _revisions(rollout.from_revision_number, rollout.to_revision_number, rollout.kind),
            "badge": state_badge(rollout.state, rollout.get_state_display()),
            "progress": progress_bar_html(progress_of(rollout), 140),
        }
        for rollout in dashboard.stopped_rollouts()
    ]


def dashboard_view(request: HttpRequest) -> TemplateResponse:
    """The home dashboard; sections the user may not see are left out."""
    may_view_rollouts = request.user.has_perm(VIEW_ROLLOUTS)
    context = {
        **admin.site.each_context(request),
        **page_context(request),
        "title": "Home",
        "matrix": _fleet_matrix(request),
        "may_view_rollouts": may_view_rollouts,
        "in_flight": _in_flight() if may_view_rollouts else [],
        "may_approve": request.user.has_perm(APPROVE_PERMISSION),
        "awaiting": _awaiting(request),
        "stopped": _stopped() if may_view_rollouts else [],
        "models_url": reverse("admin:models"),
    }
    return live_response(TemplateResponse(request, DASHBOARD_TEMPLATE, context))
