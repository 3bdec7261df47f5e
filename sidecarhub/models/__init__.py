"""Models of the sidecarhub app: SidecarSet definitions, revisions, and the config change log."""

from sidecarhub.models.changes import ChangeRecord
from sidecarhub.models.sidecarsets import SidecarSet, SidecarSetRevision, build_document

__all__ = ["ChangeRecord", "SidecarSet", "SidecarSetRevision", "build_document"]
