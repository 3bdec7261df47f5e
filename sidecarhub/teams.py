"""Who may act on a team's objects (STYLE P4: a policy module; issue 16 item 5).

Roles and teams are two separate questions:

- *what* a user may do is their model permissions, which come from the ready-made roles
  (Django groups ``viewer``, ``author``, ``approver``, ``operator``, ``admin``: ``sidecarhub.roles``)
  and are checked by the API views, the admin and ``rollouts.permissions``;
- *where* they may do it is this module: an object owned by a team (``SidecarSet.owner_team``,
  ``Cluster.owner_team``) is changed, published, targeted, approved or operated only by members
  of that team (``Team.members``), or by an organisation admin.

The rules, applied by the service functions (so the API, the admin and the CLI agree):

1. the system (``actor`` ``None``: periodic tasks, the publish receiver) acts everywhere;
2. an organisation admin (permission ``sidecarhub.act_for_all_teams``: the ``admin`` role, and
   every superuser) acts everywhere;
3. an object with owning teams is acted on by members of any of them (a rollout step has two
   possible owners: see ``rollouts.permissions``);
4. an object without a team is acted on by anyone holding the model permission, as before teams
   existed: a hub that does not use teams works unchanged, and an org admin gives the object to a
   team to protect it;
5. giving an object to a team (create with a team, or change its team) needs membership of that
   team; taking its team away (making it everyone's) needs an organisation admin;
6. a label-selector target of a team's SidecarSet selects only clusters without a team or of
   that same team (``clusters.targeting``: it is served at once, with no one of the other team
   to agree); crossing teams takes an explicit target naming the cluster, which rule 3 checks
   when it is written.

Reading is not scoped: viewers see every team's objects (lists and details), so a fleet-wide
view stays possible.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import PermissionDenied

from sidecarhub.changes import Actor, actor_name
from sidecarhub.models import Team

__all__ = [
    "ORG_ADMIN_PERMISSION",
    "NotTeamMember",
    "TeamNotFound",
    "assignment_refusal",
    "find_team",
    "is_org_admin",
    "require_team_access",
    "require_team_assignment",
    "team_refusal",
]

ORG_ADMIN_PERMISSION = "sidecarhub.act_for_all_teams"


class NotTeamMember(PermissionDenied):
    """The actor is not a member of the team that owns the object (HTTP 403; the admin shows
    Django's 403 page). The message names the object and the team, for people."""


class TeamNotFound(ValueError):
    """No team with that name (a 400 naming the ``owner_team`` field)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no team named {name!r} (teams are created in the admin, under Teams)")


def _is_person(actor: Actor) -> bool:
    return actor is not None and bool(getattr(actor, "is_authenticated", False))


def is_org_admin(actor: Actor) -> bool:
    """True for an active user holding ``sidecarhub.act_for_all_teams`` (superusers do)."""
    return bool(
        _is_person(actor) and getattr(actor, "is_active", False) and actor.has_perm(ORG_ADMIN_PERMISSION)  # type: ignore[union-attr]
    )


def _member_team_ids(actor: Actor) -> set[int]:
    cached = getattr(actor, "_sidecarhub_team_ids", None)
    if cached is None:
        user_id = int(getattr(actor, "pk", 0) or 0)
        cached = set(Team.objects.filter(members__pk=user_id).values_list("pk", flat=True))
        # one query per user object and request: a page checks many objects
        actor._sidecarhub_team_ids = cached  # type: ignore[union-attr]
    return set(cached)


def team_refusal(actor: Actor, owners: Iterable[Team | None], what: str) -> str | None:
    """Why ``actor`` may not act on ``what`` owned by ``owners`` (rules 1-4), or ``None``.

    ``owners``: the owning teams (``None`` entries are ignored; none at all: rule 4).
    """
    teams = {team.pk: team for team in owners if team is not None}
    if actor is None or not teams or is_org_admin(actor):
        return None
    if not _is_person(actor):
        return f"{what} belongs to team {_names(teams.values())}; sign in as one of its members"
    if teams.keys() & _member_team_ids(actor):
        return None
    return f"{actor_name(actor)} is not a member of team {_names(teams.values())}, which owns {what}"


def _names(teams: Iterable[Team]) -> str:
    return " or ".join(sorted(repr(team.name) for team in teams))


def require_team_access(actor: Actor, owners: Iterable[Team | None], what: str) -> None:
    """``NotTeamMember`` unless :func:`team_refusal` allows."""
    refusal = team_refusal(actor, owners, what)
    if refusal is not None:
        raise NotTeamMember(refusal)


def assignment_refusal(actor: Actor, new_team: Team | None, current: Team | None) -> str | None:
    """Why ``actor`` may not give an object owned by ``current`` to ``new_team`` (rule 5)."""
    if actor is None or is_org_admin(actor) or new_team == current:
        return None
    if new_team is None:
        return "only an organisation admin can take an object away from its team"
    if not _is_person(actor) or new_team.pk not in _member_team_ids(actor):
        return f"{actor_name(actor)} is not a member of team {new_team.name!r} and cannot give it objects"
    return None


def require_team_assignment(actor: Actor, new_team: Team | None, current: Team | None = None) -> None:
    """``NotTeamMember`` unless :func:`assignment_refusal` allows."""
    refusal = assignment_refusal(actor, new_team, current)
    if refusal is not None:
        raise NotTeamMember(refusal)


def find_team(name: str | None) -> Team | None:
    """The team named ``name`` (surrounding blanks ignored); ``None`` for no name; else
    ``TeamNotFound``."""
    name = (name or "").strip()
    if not name:
        return None
    team = Team.objects.filter(name=name).first()
    if team is None:
        raise TeamNotFound(name)
    return team
