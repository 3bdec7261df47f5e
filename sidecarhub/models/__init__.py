"""Models of the sidecarhub app: SidecarSet definitions, revisions, teams and the config change log."""

from sidecarhub.models.changes import ChangeRecord
from sidecarhub.models.sidecarsets import SidecarSet, SidecarSetRevision, build_document
from sidecarhub.models.teams import Team

__all__ = ["ChangeRecord", "SidecarSet", "SidecarSetRevision", "Team", "build_document"]
