"""Use cases of the SidecarSet definitions: create, update, delete, publish, import, export, diff.

Every function takes the acting user explicitly (``actor``; ``None`` means the system, e.g.
``make run`` or a Celery task), runs in one transaction, writes its change-log rows
(``sidecarhub.changes.record_change``) in that transaction, and reports problems as exceptions:

- ``SidecarSetInvalid`` (from the core): the definition is invalid; ``errors`` holds every
  problem with its field path, conflicts with other SidecarSets included.
- ``ImportInvalid``: some documents of an import are invalid; nothing was written.
- ``SidecarSetNotFound``, ``SidecarSetAlreadyExists``, ``RevisionNotFound``.
- ``StaleVersion``: the caller edited an outdated version (lost-update protection).
- ``NothingToPublish``: the definition equals the current revision.
- ``NotTeamMember`` (``sidecarhub.teams``, a ``PermissionDenied``): the SidecarSet belongs to a
  team the actor is not a member of, or the actor may not give it to the team named. Model
  permissions are the callers' (API views, admin); the team rules are checked here so every
  caller agrees. ``owner_team`` arguments name a ``Team``; an unknown name is a
  ``SidecarSetInvalid`` on the ``owner_team`` field.

Parsing, validation, conversion and hashing are the pure core's (``sidecarhub.sidecarset``);
this module only adds what needs the database: the stored SidecarSet an update is checked
against, canary bases, pinned revisions and cross-SidecarSet conflicts.

Writes that check conflicts take one PostgreSQL advisory lock, so two concurrent writes cannot
both pass the check against each other (Kruise's check races; ours does not).

Rollout policy (``SidecarSet.rollout_policy``: steps, failure threshold, deadlines; validated by
``sidecarhub.sidecarset.rollout_settings``, errors at ``rollout_policy.<key>``). A write sets it
from, in this order:

1. an explicit ``rollout_policy`` (API field, admin fields): the whole policy (keys it omits are
   unset); if the document also carries ``rollouts.sidecarhub.io/*`` annotations that say
   something else, the write is refused (400 at ``rollout_policy``) rather than guessing;
2. the document's ``rollouts.sidecarhub.io/*`` annotations (the import format, e.g. a Kruise
   file applied with ``apply -f``): they set the whole policy (keys they omit or leave empty are
   unset) and are removed from the stored annotations, errors at the annotation's path;
3. neither: a creation has no policy (the hub's defaults); an update keeps the stored one, which
   is checked again against the new spec (a ``canary`` step needs ``updateStrategy.selector``).

Publish re-validates it and freezes it into the revision (a policy change alone is a new
revision that pods do not see); export writes it back as the annotations, so export → import
round-trips.
"""

from __future__ import annotations

import difflib
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import yaml
from django.conf import settings
from django.db import connection, transaction
from django.db.models import CharField, Max
from django.db.models.functions import Cast

from sidecarhub.changes import Actor, record_change
from sidecarhub.choices import ApplyOutcome, ChangeAction, KruiseVersion
from sidecarhub.models import SidecarSet, SidecarSetRevision, Team, build_document
from sidecarhub.sidecarset import (
    ChangeKind,
    ConflictIndex,
    FieldError,
    InjectRevision,
    SidecarSetInvalid,
    check_rollout_policy,
    classify_change,
    hash_without_images,
    read_sidecarset,
    revision_hash,
    rollout_policy_annotations,
    split_documents,
    split_rollout_annotations,
    to_kruise,
    validate_sidecarset,
)
from sidecarhub.sidecarset import SidecarSet as CoreSidecarSet
from sidecarhub.sidecarset.conversion import KruiseVersion as CoreKruiseVersion
from sidecarhub.sidecarset.documents import DOCUMENT_PATH
from sidecarhub.sidecarset.errors import FieldPath
from sidecarhub.sidecarset.rollout_settings import POLICY_PATH
from sidecarhub.signals import revision_published, sidecarset_deleted, sidecarset_team_changed
from sidecarhub.teams import TeamNotFound, find_team, require_team_access, require_team_assignment

__all__ = [
    "AppliedDocument",
    "CheckedDefinition",
    "DefinitionError",
    "DocumentError",
    "ImportInvalid",
    "NothingToPublish",
    "RevisionDiff",
    "RevisionNotFound",
    "SidecarSetAlreadyExists",
    "SidecarSetInvalid",
    "SidecarSetNotFound",
    "StaleVersion",
    "check_definition",
    "create_sidecarset",
    "delete_sidecarset",
    "diff_revisions",
    "diff_unpublished",
    "dump_yaml",
    "export_sidecarset",
    "import_documents",
    "publish_sidecarset",
    "update_sidecarset",
    "validate_definition",
]

logger = logging.getLogger(__name__)

# One key for every write that checks cross-SidecarSet conflicts (see the module docstring).
_DEFINITIONS_LOCK_KEY = 0x51DECA75E7


# --- errors ------------------------------------------------------------------------------------


class DefinitionError(Exception):
    """Base of the expected failures of these services (besides the core's ``SidecarSetInvalid``)."""


class SidecarSetNotFound(DefinitionError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"SidecarSet {name!r} not found")


class SidecarSetAlreadyExists(DefinitionError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"SidecarSet {name!r} already exists")


class RevisionNotFound(DefinitionError):
    def __init__(self, name: str, number: int) -> None:
        self.name, self.number = name, number
        super().__init__(f"SidecarSet {name!r} has no revision {number}")


class StaleVersion(DefinitionError):
    """The caller's copy is outdated: someone else changed the SidecarSet since it was read."""

    def __init__(self, name: str, expected_version: int, current_version: int) -> None:
        self.name, self.expected_version, self.current_version = name, expected_version, current_version
        super().__init__(
            f"SidecarSet {name!r} is at version {current_version}, not {expected_version}: it was changed "
            "since you read it; reload and apply your change again"
        )


class NothingToPublish(DefinitionError):
    def __init__(self, name: str, number: int) -> None:
        self.name, self.number = name, number
        super().__init__(f"SidecarSet {name!r} has not changed since revision {number}; nothing to publish")


@dataclass(frozen=True)
class DocumentError:
    """One problem with one document of an import: ``index`` counts documents from 0."""

    index: int
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"document {self.index} (line {self.line}): {self.path}: {self.message}"


class ImportInvalid(DefinitionError):
    """Some documents of an import are invalid; ``errors`` lists them all. Nothing was written."""

    def __init__(self, errors: Sequence[DocumentError]) -> None:
        self.errors: tuple[DocumentError, ...] = tuple(errors)
        super().__init__("; ".join(str(error) for error in self.errors))


# --- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AppliedDocument:
    """What importing one document did: ``changed_paths`` lists the fields that changed."""

    index: int
    name: str
    outcome: ApplyOutcome
    changed_paths: tuple[str, ...]
    sidecarset: SidecarSet


@dataclass(frozen=True)
class RevisionDiff:
    """Two versions of one SidecarSet compared: a unified YAML diff plus Kruise's classification.

    ``to_number`` is ``None`` when the newer side is the unpublished definition.
    """

    name: str
    from_number: int | None
    to_number: int | None
    unified_diff: str
    change_kind: ChangeKind
    changed_paths: tuple[str, ...]


@dataclass(frozen=True)
class CheckedDefinition:
    """A definition that may be stored: the canonical SidecarSet (without the
    ``rollouts.sidecarhub.io/*`` annotations) and the rollout policy to store with it."""

    sidecarset: CoreSidecarSet
    rollout_policy: dict[str, Any]


# --- helpers -----------------------------------------------------------------------------------


def dump_yaml(document: Mapping[str, Any]) -> str:
    """A document as block-style YAML, keys in the order Kruise writes them."""
    return yaml.safe_dump(dict(document), sort_keys=False, default_flow_style=False, allow_unicode=True)


def _lock_definitions() -> None:
    """Serialize conflict-checked writes until the transaction ends (no-op outside PostgreSQL,
    whose quick-start substitute SQLite serializes all writes anyway)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_DEFINITIONS_LOCK_KEY])


def _get_for_update(name: str) -> SidecarSet:
    found = SidecarSet.objects.select_for_update().filter(name=name).first()
    if found is None:
        raise SidecarSetNotFound(name)
    return found


def _find_core(name: str) -> CoreSidecarSet | None:
    found = SidecarSet.objects.filter(name=name).first()
    return found.to_core() if found is not None else None


def _revision_exists(sidecarset: CoreSidecarSet, revision: InjectRevision) -> bool:
    """Kruise's lookup of a pinned revision: by name (any SidecarSet's, as in Kruise) or by
    ``customVersion`` among this SidecarSet's revisions."""
    if revision.revision_name is not None:
        return SidecarSetRevision.objects.filter(name=revision.revision_name).exists()
    return SidecarSetRevision.objects.filter(
        sidecarset__name=sidecarset.name, custom_version=revision.custom_version or ""
    ).exists()


def _changed_paths(old: Any, new: Any, path: FieldPath | None = None) -> list[str]:
    """Field paths (core notation, ``spec.containers[0].image``) where ``old`` and ``new`` differ."""
    path = path if path is not None else FieldPath()
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        changed: list[str] = []
        for key in [*old.keys(), *(key for key in new if key not in old)]:
            changed.extend(_changed_paths(old.get(key), new.get(key), path.segment(str(key))))
        return changed
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        changed = []
        for position, (old_item, new_item) in enumerate(zip(old, new, strict=True)):
            changed.extend(_changed_paths(old_item, new_item, path.index(position)))
        return changed
    return [] if old == new else [str(path)]


def _snapshot(sidecarset: SidecarSet) -> dict[str, Any]:
    return {
        "name": sidecarset.name,
        "owner_team": sidecarset.owner_team.name if sidecarset.owner_team is not None else "",
        "version": sidecarset.version,
        "document": sidecarset.to_document(),
        "rollout_policy": dict(sidecarset.rollout_policy),
    }


def _revision_snapshot(revision: SidecarSetRevision) -> dict[str, Any]:
    return {
        "name": revision.name,
        "number": revision.number,
        "revision_hash": revision.revision_hash,
        "hash_without_images": revision.hash_without_images,
        "message": revision.message,
        "rollout_policy": dict(revision.rollout_policy),
    }


def _owner_team(name: str) -> Team | None:
    """The team ``name`` names ("" = none), or ``SidecarSetInvalid`` on the ``owner_team`` field."""
    try:
        return find_team(name)
    except TeamNotFound as exc:
        raise SidecarSetInvalid([FieldError("owner_team", str(exc))]) from None


def _require_access(actor: Actor, sidecarset: SidecarSet) -> None:
    require_team_access(actor, [sidecarset.owner_team], f"SidecarSet {sidecarset.name!r}")


def _user_or_none(actor: Actor) -> Any:
    return actor if actor is not None and getattr(actor, "is_authenticated", False) else None


def _split_policy(
    core: CoreSidecarSet, *, rollout_policy: Any, current: Any
) -> tuple[CoreSidecarSet, dict[str, Any], list[FieldError]]:
    """``core`` without its ``rollouts.sidecarhub.io/*`` annotations, the rollout policy to store
    (the precedence of the module docstring; ``current``: the stored policy, ``None`` on
    creation), and every problem with it. The policy follows the rules a release is created with:
    a bad one would otherwise pass publish and fail the release after commit, where nobody sees it.
    """
    core, annotated, errors = split_rollout_annotations(core)
    has_selector = core.update_strategy.selector is not None
    if rollout_policy is not None:
        policy, problems = check_rollout_policy(rollout_policy, has_canary_selector=has_selector)
        errors = [*errors, *problems]
        if annotated is not None and not errors and annotated != policy:
            conflict = (
                "differs from the document's rollouts.sidecarhub.io/* annotations (an import "
                "format for this field); give the policy one way"
            )
            errors.append(FieldError.at(POLICY_PATH, conflict))
        return core, policy, errors
    if annotated is not None:
        return core, annotated, errors
    policy, problems = check_rollout_policy(current or {}, has_canary_selector=has_selector)
    return core, policy, problems


class _StoredDefinitions:
    """Every stored SidecarSet, parsed and indexed for conflict checks (a ``ConflictIndex``, as an
    import builds one), kept by this process between calls.

    Each use brings it up to date from one narrow query (name, pk, version, updated_at of every
    row: no documents) and parses only the rows that changed since, so a create or a publish with
    1,000 stored SidecarSets does not parse 1,000 documents (issue 17: ≈ 220 ms a call before).
    ``updated_at`` is in the key because ``version`` alone can repeat: a rolled-back edit and a
    later committed one reach the same number. Callers hold the definitions lock
    (``_lock_definitions``), so no row changes between the two queries.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._index = ConflictIndex()
        self._keys: dict[str, tuple[Any, ...]] = {}

    def _refresh(self) -> None:
        # updated_at as text: parsing 1,000 timestamps into datetimes was half of a refresh
        stamped = SidecarSet.objects.annotate(stamp=Cast("updated_at", output_field=CharField()))
        rows = {
            name: (pk, version, stamp)
            for name, pk, version, stamp in stamped.values_list("name", "pk", "version", "stamp")
        }
        for name in self._keys.keys() - rows.keys():
            self._index.remove(name)
            del self._keys[name]
        changed = [name for name, key in rows.items() if self._keys.get(name) != key]
        if changed:
            for row in stamped.filter(name__in=changed):
                self._index.put(row.to_core())
                self._keys[row.name] = (row.pk, row.version, row.stamp)

    def find_conflicts(self, core: CoreSidecarSet) -> list[FieldError]:
        """Conflicts of ``core`` with every stored SidecarSet (its own stored version ignored)."""
        with self._lock:
            self._refresh()
            return self._index.find_conflicts(core)

    def copy(self) -> ConflictIndex:
        """An index of every stored SidecarSet that the caller may change (an import adds to it)."""
        with self._lock:
            self._refresh()
            return ConflictIndex(self._index)


_stored_definitions = _StoredDefinitions()


def _check(
    core: CoreSidecarSet,
    existing: SidecarSet | None,
    stored: ConflictIndex | None = None,
    policy_errors: Sequence[FieldError] = (),
) -> None:
    """Raise ``SidecarSetInvalid`` unless ``core`` may be stored (as an update of ``existing``).

    ``policy_errors``: the problems :func:`_split_policy` found, reported with Kruise's.
    As in Kruise, cross-SidecarSet conflicts are looked for only when everything else is valid.
    ``stored``: every stored SidecarSet, already parsed (an import checks many documents against
    its own copy, which grows as it writes); without it, this process's ``_stored_definitions``.
    """
    old = None
    if existing is not None:
        old = stored.get(existing.name) if stored is not None else None
        old = old if old is not None else existing.to_core()
    errors = validate_sidecarset(
        core,
        old=old,
        find_sidecarset=stored.get if stored is not None else _find_core,
        revision_exists=_revision_exists,
        patch_metadata_allowlist=settings.SIDECARHUB_PATCH_POD_METADATA_ALLOWLIST,
        patch_metadata_defaults_allowed=settings.SIDECARHUB_PATCH_POD_METADATA_DEFAULTS_ALLOWED,
    )
    errors = [*errors, *policy_errors]
    if not errors:
        errors = (stored if stored is not None else _stored_definitions).find_conflicts(core)
    if errors:
        raise SidecarSetInvalid(errors)


def _parse(source: Any) -> CoreSidecarSet:
    if isinstance(source, CoreSidecarSet):
        return source
    core, errors = read_sidecarset(source)
    if core is None:
        raise SidecarSetInvalid(errors)
    return core


def _name_mismatch(core: CoreSidecarSet, name: str) -> SidecarSetInvalid:
    return SidecarSetInvalid(
        [
            FieldError(
                "metadata.name",
                f"must be {name!r}, the SidecarSet being changed (a SidecarSet cannot be renamed)",
            )
        ]
    )


# --- validation (dry run) ----------------------------------------------------------------------


def check_definition(
    source: Any, *, name: str | None = None, create: bool = False, rollout_policy: Any = None
) -> CheckedDefinition:
    """Parse and fully validate ``source`` (and ``rollout_policy``, see the module docstring)
    without writing anything; return the canonical form and the policy a write would store.

    ``name`` given: check it as an update of that stored SidecarSet (the document's name must
    match). ``create``: check it as a creation (its name must be free). Neither: an update of
    the stored SidecarSet with the document's name if there is one, a creation otherwise.
    Raises ``SidecarSetInvalid`` with every error, ``SidecarSetNotFound`` when ``name`` is not
    stored, ``SidecarSetAlreadyExists`` when creating a name that is taken.
    """
    core = _parse(source)
    if name is not None and core.name != name:
        raise _name_mismatch(core, name)
    existing = SidecarSet.objects.filter(name=core.name).first()
    if name is not None and existing is None:
        raise SidecarSetNotFound(name)
    if create and existing is not None:
        raise SidecarSetAlreadyExists(core.name)
    current = existing.rollout_policy if existing is not None else None
    core, policy, policy_errors = _split_policy(core, rollout_policy=rollout_policy, current=current)
    _check(core, existing, policy_errors=policy_errors)
    return CheckedDefinition(core, policy)


def validate_definition(source: Any, *, rollout_policy: Any = None) -> list[FieldError]:
    """Every problem with ``source`` (see :func:`check_definition`); an empty list means valid."""
    try:
        check_definition(source, rollout_policy=rollout_policy)
    except SidecarSetInvalid as exc:
        return list(exc.errors)
    return []


# --- create, update, delete --------------------------------------------------------------------


def _create(
    core: CoreSidecarSet,
    policy: dict[str, Any],
    *,
    actor: Actor,
    owner_team: Team | None,
    request_id: str,
    message: str,
) -> SidecarSet:
    user = _user_or_none(actor)
    document = core.to_document()
    sidecarset = SidecarSet.objects.create(
        name=core.name,
        owner_team=owner_team,
        labels=document["metadata"].get("labels", {}),
        annotations=document["metadata"].get("annotations", {}),
        spec=document["spec"],
        rollout_policy=policy,
        created_by=user,
        updated_by=user,
    )
    record_change(
        sidecarset,
        ChangeAction.CREATE,
        actor=actor,
        request_id=request_id,
        message=message,
        after=_snapshot(sidecarset),
    )
    return sidecarset


def _update(
    sidecarset: SidecarSet,
    core: CoreSidecarSet | None,
    policy: dict[str, Any] | None,
    *,
    actor: Actor,
    owner_team: str | None,
    request_id: str,
    message: str,
) -> list[str]:
    """Store the new definition, rollout policy and/or owner team (a team name, "" = none);
    return the changed paths ([] = unchanged). Checks the team rules (``sidecarhub.teams``)."""
    _require_access(actor, sidecarset)
    before = _snapshot(sidecarset)
    if core is not None:
        document = core.to_document()
        sidecarset.labels = document["metadata"].get("labels", {})
        sidecarset.annotations = document["metadata"].get("annotations", {})
        sidecarset.spec = document["spec"]
    if policy is not None:
        sidecarset.rollout_policy = policy
    if owner_team is not None:
        team = _owner_team(owner_team)
        require_team_assignment(actor, team, sidecarset.owner_team)
        sidecarset.owner_team = team
    changed = _changed_paths(before["document"], sidecarset.to_document())
    changed += _changed_paths(before["rollout_policy"], sidecarset.rollout_policy, POLICY_PATH)
    if _snapshot(sidecarset)["owner_team"] != before["owner_team"]:
        changed.append("owner_team")
        sidecarset_id = sidecarset.pk
        transaction.on_commit(lambda: _send(sidecarset_team_changed, SidecarSet, sidecarset_id=sidecarset_id))
    if not changed:
        return []
    sidecarset.version += 1
    sidecarset.updated_by = _user_or_none(actor)
    sidecarset.save()
    record_change(
        sidecarset,
        ChangeAction.UPDATE,
        actor=actor,
        request_id=request_id,
        message=message,
        before=before,
        after=_snapshot(sidecarset),
    )
    return changed


def create_sidecarset(
    source: Any,
    *,
    actor: Actor,
    request_id: str = "",
    owner_team: str = "",
    message: str = "",
    rollout_policy: Any = None,
) -> SidecarSet:
    """Create a SidecarSet from a Kruise document (YAML/JSON text, data, or a core SidecarSet).

    Guarantees: validated like Kruise's webhook plus decision 2, conflicts with every stored
    SidecarSet checked under the definitions lock; the rollout policy from ``rollout_policy`` or
    the document's annotations (module docstring); one ``create`` change-log row. Not
    published: call :func:`publish_sidecarset` to make a revision.
    """
    core = _parse(source)
    team = _owner_team(owner_team)
    require_team_assignment(actor, team)
    with transaction.atomic():
        _lock_definitions()
        if SidecarSet.objects.filter(name=core.name).exists():
            raise SidecarSetAlreadyExists(core.name)
        core, policy, policy_errors = _split_policy(core, rollout_policy=rollout_policy, current=None)
        _check(core, None, policy_errors=policy_errors)
        return _create(core, policy, actor=actor, owner_team=team, request_id=request_id, message=message)


def update_sidecarset(
    name: str,
    *,
    actor: Actor,
    request_id: str = "",
    source: Any = None,
    expected_version: int | None,
    owner_team: str | None = None,
    message: str = "",
    rollout_policy: Any = None,
) -> SidecarSet:
    """Replace the definition of ``name`` (``source`` omitted: change only ``owner_team`` and/or
    ``rollout_policy``; the policy's precedence is in the module docstring).

    ``expected_version`` is the version the caller edited; a different stored version raises
    ``StaleVersion`` and changes nothing (``None`` skips the check: last writer wins). Kruise's
    UPDATE rules apply (no new container names, ``upgradeType`` fixed, canary base fixed). An
    identical definition is a no-op: version unchanged, no change-log row.
    """
    core = _parse(source) if source is not None else None
    if core is not None and core.name != name:
        raise _name_mismatch(core, name)
    with transaction.atomic():
        _lock_definitions()
        sidecarset = _get_for_update(name)
        if expected_version is not None and sidecarset.version != expected_version:
            raise StaleVersion(name, expected_version, sidecarset.version)
        policy: dict[str, Any] | None = None
        if core is not None:
            core, policy, policy_errors = _split_policy(
                core, rollout_policy=rollout_policy, current=sidecarset.rollout_policy
            )
            _check(core, sidecarset, policy_errors=policy_errors)
        elif rollout_policy is not None:
            # The stored definition is valid; only the policy is new (checked against its spec).
            _, policy, policy_errors = _split_policy(
                sidecarset.to_core(), rollout_policy=rollout_policy, current=None
            )
            if policy_errors:
                raise SidecarSetInvalid(policy_errors)
        _update(
            sidecarset,
            core,
            policy,
            actor=actor,
            owner_team=owner_team,
            request_id=request_id,
            message=message,
        )
        return sidecarset


def delete_sidecarset(
    name: str, *, actor: Actor, request_id: str = "", expected_version: int | None, message: str = ""
) -> None:
    """Delete ``name`` and its revisions; one ``delete`` change-log row keeps the last definition.

    ``expected_version`` as in :func:`update_sidecarset`. After commit, ``sidecarset_deleted``
    is sent so clusters can remove the resource.
    """
    with transaction.atomic():
        sidecarset = _get_for_update(name)
        _require_access(actor, sidecarset)
        if expected_version is not None and sidecarset.version != expected_version:
            raise StaleVersion(name, expected_version, sidecarset.version)
        sidecarset_id = sidecarset.pk
        record_change(
            sidecarset,
            ChangeAction.DELETE,
            actor=actor,
            request_id=request_id,
            message=message,
            before=_snapshot(sidecarset),
        )
        # The revision pointer first, so deleting revisions does not touch a row being deleted.
        SidecarSet.objects.filter(pk=sidecarset_id).update(current_revision=None)
        sidecarset.delete()
        actor_id = getattr(_user_or_none(actor), "pk", None)
        transaction.on_commit(
            lambda: _send(
                sidecarset_deleted, SidecarSet, sidecarset_id=sidecarset_id, name=name, actor_id=actor_id
            )
        )


# --- publish -----------------------------------------------------------------------------------


def _send(signal: Any, sender: type, **kwargs: Any) -> None:
    """Send ``signal`` robustly: a failing receiver is logged, never raised to the publisher."""
    for receiver, response in signal.send_robust(sender=sender, **kwargs):
        if isinstance(response, Exception):
            logger.error("receiver %r of %s failed", receiver, kwargs, exc_info=response)


def _prune_history(
    sidecarset: SidecarSet, core: CoreSidecarSet, *, actor: Actor, request_id: str
) -> list[int]:
    """Apply ``revisionHistoryLimit`` (``max(1, limit)``, update.md §4.3); return pruned numbers.

    The oldest go first; never pruned: the current revision, the revisions clusters serve, the
    revisions of unfinished rollouts, the one pinned by
    ``injectionStrategy.revision.revisionName``, and the newest carrying the pinned
    ``customVersion``. When protection makes the limit unreachable, the excess stays.
    """
    limit = max(1, core.revision_history_limit)
    revisions = list(sidecarset.revisions.order_by("number"))
    excess = len(revisions) - limit
    if excess <= 0:
        return []
    protected = {sidecarset.current_revision_id}
    # A revision an unfinished rollout moves pods from or to stays (rollouts app, decision 16),
    # and so does every revision a cluster serves (decision 17: its webhook injects it).
    from clusters.models import SidecarSetPlacement
    from rollouts.choices import ACTIVE_ROLLOUT_STATES
    from rollouts.models import Rollout

    protected.update(
        SidecarSetPlacement.objects.filter(sidecarset=sidecarset, serving_revision__isnull=False).values_list(
            "serving_revision_id", flat=True
        )
    )

    for pair in Rollout.objects.filter(sidecarset=sidecarset, state__in=ACTIVE_ROLLOUT_STATES).values_list(
        "from_revision_id", "to_revision_id"
    ):
        protected.update(pk for pk in pair if pk is not None)
    pinned = core.injection_strategy.revision
    if pinned is not None and pinned.revision_name is not None:
        protected.update(r.pk for r in revisions if r.name == pinned.revision_name)
    elif pinned is not None and pinned.custom_version is not None:
        carrying = [r for r in revisions if r.custom_version == pinned.custom_version]
        if carrying:
            protected.add(carrying[-1].pk)
    pruned: list[int] = []
    for revision in revisions:
        if excess <= 0:
            break
        if revision.pk in protected:
            continue
        record_change(
            revision,
            ChangeAction.PRUNE,
            actor=actor,
            request_id=request_id,
            message=f"revisionHistoryLimit is {core.revision_history_limit}",
            before=_revision_snapshot(revision),
            parent=sidecarset,
        )
        pruned.append(revision.number)
        revision.delete()
        excess -= 1
    return pruned


def publish_sidecarset(
    name: str,
    *,
    actor: Actor,
    request_id: str = "",
    message: str = "",
    expected_version: int | None = None,
) -> SidecarSetRevision:
    """Freeze the current definition of ``name`` into a new immutable revision and make it current.

    Guarantees: the definition is re-validated (canary base, pinned revision and conflicts may
    have changed since it was saved; the rollout policy too, so a release never fails on it) and
    the rollout policy is frozen into the revision; ``NothingToPublish`` when both equal the
    current revision's; the new number is one more than the highest ever stored for this
    SidecarSet; history beyond ``revisionHistoryLimit`` is pruned (never the current revision);
    change-log rows for the publish and each pruned revision; ``revision_published`` is sent
    after commit (see ``sidecarhub.signals`` for its arguments: the release starts from it at
    once, and the periodic rollouts reconcile creates it if that fails,
    ``rollouts.services.create_missing_releases``).
    """
    with transaction.atomic():
        _lock_definitions()
        sidecarset = _get_for_update(name)
        _require_access(actor, sidecarset)
        if expected_version is not None and sidecarset.version != expected_version:
            raise StaleVersion(name, expected_version, sidecarset.version)
        core = sidecarset.to_core()
        _, policy, policy_errors = _split_policy(core, rollout_policy=None, current=sidecarset.rollout_policy)
        _check(core, None, policy_errors=policy_errors)
        previous = sidecarset.current_revision
        document = sidecarset.to_document()
        if previous is not None and previous.document == document and previous.rollout_policy == policy:
            raise NothingToPublish(name, previous.number)
        number = (sidecarset.revisions.aggregate(highest=Max("number"))["highest"] or 0) + 1
        user = _user_or_none(actor)
        revision = SidecarSetRevision.objects.create(
            sidecarset=sidecarset,
            number=number,
            name=f"{sidecarset.name}-{number}",
            revision_hash=revision_hash(core),
            hash_without_images=hash_without_images(core),
            custom_version=core.custom_version,
            document=document,
            rollout_policy=policy,
            message=message,
            author=user,
            author_name=user.get_username() if user is not None else "system",
        )
        SidecarSet.objects.filter(pk=sidecarset.pk).update(current_revision=revision)
        sidecarset.current_revision = revision
        change_kind = classify_change(previous.to_core(), core) if previous is not None else ChangeKind.OTHER
        record_change(
            revision,
            ChangeAction.PUBLISH,
            actor=actor,
            request_id=request_id,
            message=message,
            before=_revision_snapshot(previous) if previous is not None else None,
            after={**_revision_snapshot(revision), "change_kind": str(change_kind)},
            parent=sidecarset,
        )
        _prune_history(sidecarset, core, actor=actor, request_id=request_id)
        signal_arguments = {
            "sidecarset_id": sidecarset.pk,
            "revision_id": revision.pk,
            "revision_number": revision.number,
            "previous_revision_id": previous.pk if previous is not None else None,
            "change_kind": str(change_kind),
            "actor_id": getattr(user, "pk", None),
            "request_id": request_id,
        }
        transaction.on_commit(lambda: _send(revision_published, SidecarSetRevision, **signal_arguments))
        return revision


# --- import (kubectl apply) --------------------------------------------------------------------


def import_documents(
    text: str | bytes, *, actor: Actor, request_id: str = "", owner_team: str = "", message: str = ""
) -> list[AppliedDocument]:
    """Create or update one SidecarSet per document of a (multi-document) Kruise YAML stream.

    All-or-nothing: every document is checked (those before it in the stream count as stored,
    so later documents are checked for conflicts against earlier ones); if any document has a
    problem, ``ImportInvalid`` lists every problem with its document index and line, and nothing
    is written. Updates follow Kruise's UPDATE rules; ``owner_team`` applies to created
    SidecarSets only. A document's ``rollouts.sidecarhub.io/*`` annotations set the rollout
    policy; a document without them keeps the stored one (module docstring). A name may appear
    once per stream. Nothing is published.
    """
    team = _owner_team(owner_team)
    require_team_assignment(actor, team)
    documents = split_documents(text)
    if not documents:
        raise ImportInvalid([DocumentError(0, 1, DOCUMENT_PATH, "no SidecarSet documents found")])
    errors: list[DocumentError] = []
    results: list[AppliedDocument] = []
    seen: dict[str, int] = {}
    with transaction.atomic():
        _lock_definitions()
        # The store parsed once (not once per document: that was quadratic; rows this process
        # parsed before are not parsed again); each document written joins this copy, so later
        # documents are checked against it.
        rows = {row.name: row for row in SidecarSet.objects.select_for_update()}
        stored = _stored_definitions.copy()
        for document in documents:

            def fail(problems: Sequence[FieldError], document: Any = document) -> None:
                errors.extend(
                    DocumentError(document.index, document.line, e.path, e.message) for e in problems
                )

            if not document.ok:
                fail(document.errors)
                continue
            core, parse_errors = read_sidecarset(document.data)
            if core is None:
                fail(parse_errors)
                continue
            if core.name in seen:
                # Still report the document's own problems, so one round of fixes suffices.
                first = seen[core.name]
                duplicate = FieldError("metadata.name", f"{core.name!r} is also defined by document {first}")
                fail([duplicate, *validate_sidecarset(core), *split_rollout_annotations(core)[2]])
                continue
            seen[core.name] = document.index
            existing = rows.get(core.name)
            current = existing.rollout_policy if existing is not None else None
            core, policy, policy_errors = _split_policy(core, rollout_policy=None, current=current)
            try:
                _check(core, existing, stored, policy_errors)
            except SidecarSetInvalid as exc:
                fail(exc.errors)
                continue
            stored.put(core)
            if existing is None:
                created = _create(
                    core, policy, actor=actor, owner_team=team, request_id=request_id, message=message
                )
                results.append(AppliedDocument(document.index, core.name, ApplyOutcome.CREATED, (), created))
                continue
            changed = _update(
                existing, core, policy, actor=actor, owner_team=None, request_id=request_id, message=message
            )
            outcome = ApplyOutcome.CONFIGURED if changed else ApplyOutcome.UNCHANGED
            results.append(AppliedDocument(document.index, core.name, outcome, tuple(changed), existing))
        if errors:
            # Raising inside the atomic block rolls back what the valid documents wrote.
            raise ImportInvalid(errors)
    return results


# --- export and diff ---------------------------------------------------------------------------


def _get(name: str) -> SidecarSet:
    found = SidecarSet.objects.filter(name=name).first()
    if found is None:
        raise SidecarSetNotFound(name)
    return found


def _get_revision(sidecarset: SidecarSet, number: int) -> SidecarSetRevision:
    found = sidecarset.revisions.filter(number=number).first()
    if found is None:
        raise RevisionNotFound(sidecarset.name, number)
    return found


def export_sidecarset(
    name: str, version: KruiseVersion | str = KruiseVersion.V1BETA1, *, revision_number: int | None = None
) -> str:
    """The definition of ``name`` (or of one of its revisions) as Kruise YAML of ``version``,
    its rollout policy written as ``rollouts.sidecarhub.io/*`` annotations (the import format).

    Round trip: importing the output yields the same canonical definition and policy.
    """
    sidecarset = _get(name)
    source = _get_revision(sidecarset, revision_number) if revision_number is not None else sidecarset
    kruise_version = cast(CoreKruiseVersion, KruiseVersion(version).value)  # validated by the enum
    return dump_yaml(_with_policy(to_kruise(source.to_core(), kruise_version), source.rollout_policy))


def _with_policy(document: Mapping[str, Any], policy: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``document`` carrying ``policy`` as its annotations (export's form)."""
    annotations = rollout_policy_annotations(policy)
    if not annotations or not document:
        return dict(document)
    metadata = dict(document.get("metadata") or {})
    metadata["annotations"] = {**(metadata.get("annotations") or {}), **annotations}
    return {**document, "metadata": metadata}


def _in_kruise_order(document: Mapping[str, Any]) -> dict[str, Any]:
    """A stored document with its top-level and metadata keys in Kruise's order. PostgreSQL's
    jsonb keeps keys in an order of its own, which a diff against the draft must not show."""
    metadata = document.get("metadata") or {}
    return build_document(
        metadata.get("name", ""),
        metadata.get("labels") or {},
        metadata.get("annotations") or {},
        document.get("spec") or {},
    )


def _diff(
    name: str,
    old_document: Mapping[str, Any],
    new_document: Mapping[str, Any],
    *,
    from_number: int | None,
    to_number: int | None,
) -> RevisionDiff:
    """The two sides are compared in export's form, so a rollout policy change shows as its
    ``rollouts.sidecarhub.io/*`` annotations."""
    from_label = f"{name}@{from_number}" if from_number is not None else f"{name}@(none)"
    to_label = f"{name}@{to_number}" if to_number is not None else f"{name}@(unpublished)"
    old_yaml = dump_yaml(_in_kruise_order(old_document)).splitlines(keepends=True) if old_document else []
    new_yaml = dump_yaml(_in_kruise_order(new_document)).splitlines(keepends=True)
    old_core = CoreSidecarSet.from_document(old_document) if old_document else None
    new_core = CoreSidecarSet.from_document(new_document)
    return RevisionDiff(
        name=name,
        from_number=from_number,
        to_number=to_number,
        unified_diff="".join(difflib.unified_diff(old_yaml, new_yaml, fromfile=from_label, tofile=to_label)),
        change_kind=classify_change(old_core, new_core) if old_core is not None else ChangeKind.OTHER,
        changed_paths=tuple(_changed_paths(dict(old_document), dict(new_document))),
    )


def diff_revisions(name: str, from_number: int, to_number: int) -> RevisionDiff:
    """Compare two revisions of ``name``: unified YAML diff, changed paths, ``classify_change``."""
    sidecarset = _get(name)
    old = _get_revision(sidecarset, from_number)
    new = _get_revision(sidecarset, to_number)
    return _diff(
        name,
        _with_policy(old.document, old.rollout_policy),
        _with_policy(new.document, new.rollout_policy),
        from_number=from_number,
        to_number=to_number,
    )


def diff_unpublished(name: str) -> RevisionDiff:
    """Compare the current revision of ``name`` (if any) with its unpublished definition."""
    sidecarset = _get(name)
    current = sidecarset.current_revision
    return _diff(
        name,
        _with_policy(current.document, current.rollout_policy) if current is not None else {},
        _with_policy(sidecarset.to_document(), sidecarset.rollout_policy),
        from_number=current.number if current is not None else None,
        to_number=None,
    )
