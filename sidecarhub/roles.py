"""The ready-made roles: Django groups a data migration creates (issue 16 item 5).

Give a person a role by adding them to its group (admin: Users → Groups), and a team by adding
them to the team (admin: Teams → Members). Roles say *what* a user may do; teams say *where*
(``sidecarhub.teams``). Each role includes the ones before it where listed:

- ``viewer``: see everything — ``view_*`` of every model of the hub's apps (sidecarhub, clusters,
  rollouts): SidecarSets, revisions, the change log, teams, clusters, their audit, targets,
  placements, drift, rollouts, steps, approvals, pod updates, transitions;
- ``author``: viewer + create, change, delete and publish SidecarSets
  (``sidecarhub.add/change/delete/publish_sidecarset``) and edit their cluster targets
  (``clusters.add/change/delete_sidecarsettarget``);
- ``approver``: viewer + approve or deny rollout steps (``rollouts.approve_rolloutstep``); four
  eyes still applies (``rollouts.permissions``);
- ``operator``: viewer + pause, resume, abort and roll back rollouts
  (``rollouts.operate_rollout``), hold clusters (``clusters.hold_cluster``) and retry failed
  pushes (``clusters.change_sidecarsetplacement``);
- ``admin``: the organisation admin — every permission of the hub's apps, which includes
  registering and changing clusters and their credentials, changing a cluster's rollout policy
  (``clusters.change_rollout_policy``), managing teams, and acting for every team
  (``sidecarhub.act_for_all_teams``); and issuing API tokens (``authtoken.add/change/delete/
  view_token``: ``sidecarhub token create``, ``sidecarhub.tokens``). Only the admin: token rows
  hold the keys, so ``viewer``'s "see everything" covers the hub's apps, not tokens.

Roles combine: an author who also approves is in both groups. :func:`install_roles` makes the
groups hold exactly these permissions (migrations call it with their historical app registry);
a later change of a role is a new migration that calls it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["HUB_APPS", "ROLES", "ROLE_APPS", "TOKEN_PERMISSIONS", "install_roles", "role_permissions"]

# The apps whose permissions "*" and the viewer's ``view_*`` are made of.
HUB_APPS: Final = ("sidecarhub", "clusters", "rollouts")
# Issuing API tokens (DRF's ``authtoken``): named one by one, never part of "*" or ``view_*``.
TOKEN_PERMISSIONS: Final = (
    "authtoken.add_token",
    "authtoken.change_token",
    "authtoken.delete_token",
    "authtoken.view_token",
)
# Every app a role takes permissions from.
ROLE_APPS: Final = (*HUB_APPS, "authtoken")

# Role -> (includes viewer?, extra "app_label.codename" permissions). "*" is every permission.
ROLES: Final[Mapping[str, tuple[bool, tuple[str, ...]]]] = {
    "viewer": (True, ()),
    "author": (
        True,
        (
            "sidecarhub.add_sidecarset",
            "sidecarhub.change_sidecarset",
            "sidecarhub.delete_sidecarset",
            "sidecarhub.publish_sidecarset",
            "clusters.add_sidecarsettarget",
            "clusters.change_sidecarsettarget",
            "clusters.delete_sidecarsettarget",
        ),
    ),
    "approver": (True, ("rollouts.approve_rolloutstep",)),
    "operator": (
        True,
        ("rollouts.operate_rollout", "clusters.hold_cluster", "clusters.change_sidecarsetplacement"),
    ),
    "admin": (True, ("*", *TOKEN_PERMISSIONS)),
}


def role_permissions(role: str, available: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The ``(app_label, codename)`` pairs of ``role``, chosen among ``available`` (the
    permissions of ``ROLE_APPS``). Pure, so the definition above is testable without a database."""
    with_viewer, extra = ROLES[role]
    hub = {(app, codename) for app, codename in available if app in HUB_APPS}
    chosen: set[tuple[str, str]] = set()
    if with_viewer:
        chosen |= {(app, codename) for app, codename in hub if codename.startswith("view_")}
    for name in extra:
        if name == "*":
            chosen |= hub
            continue
        app, codename = name.split(".", 1)
        if (app, codename) not in available:
            raise LookupError(f"role {role}: permission {name} does not exist")
        chosen.add((app, codename))
    return chosen


def install_roles(apps: Any) -> None:
    """Create (or reset) the role groups with exactly their permissions.

    ``apps``: the app registry (a migration's historical one, or ``django.apps.apps``). The
    permissions are created first: on a fresh database Django creates them only after all
    migrations ran.
    """
    from django.apps import apps as installed_apps
    from django.contrib.auth.management import create_permissions

    for app_label in ("contenttypes", "auth", *ROLE_APPS):
        # the installed app's config (it says the app has models); its models come from ``apps``
        create_permissions(installed_apps.get_app_config(app_label), apps=apps, verbosity=0)
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    rows = {
        (app, codename): pk
        for pk, app, codename in permission_model.objects.filter(
            content_type__app_label__in=ROLE_APPS
        ).values_list("pk", "content_type__app_label", "codename")
    }
    for role in ROLES:
        group, _ = group_model.objects.get_or_create(name=role)
        group.permissions.set([rows[pair] for pair in role_permissions(role, set(rows))])
