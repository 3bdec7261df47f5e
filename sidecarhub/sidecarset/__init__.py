"""The pure core of SidecarSet definitions: parse, validate, convert and hash Kruise SidecarSets.

No Django, no network, no Kubernetes client. Typical use::

    sidecarset = parse_sidecarset(yaml_text)           # canonical, defaulted, or SidecarSetInvalid
    errors = validate_sidecarset(sidecarset, old=stored)  # [FieldError(path, message), ...]
    errors += find_conflicts(sidecarset, other_sidecarsets)
    kind = classify_change(stored, sidecarset)          # none / images_only / other
    to_kruise(sidecarset, "v1alpha1")                   # plain dict for export
"""

from sidecarhub.sidecarset.caches import PlanningCaches
from sidecarhub.sidecarset.conflicts import ConflictIndex, find_conflicts, selectors_may_overlap
from sidecarhub.sidecarset.conversion import parse_sidecarset, read_sidecarset, to_kruise
from sidecarhub.sidecarset.documents import MAX_DOCUMENT_BYTES, Document, load_document, split_documents
from sidecarhub.sidecarset.errors import FieldError, SidecarSetInvalid
from sidecarhub.sidecarset.evaluation import evaluate_pod
from sidecarhub.sidecarset.hashing import ChangeKind, classify_change, hash_without_images, revision_hash
from sidecarhub.sidecarset.injection import (
    CandidateIndex,
    InjectionCandidate,
    InjectionError,
    InjectionResult,
    InjectionRevision,
    inject,
)
from sidecarhub.sidecarset.matching import matching_sidecarsets, missing_injections
from sidecarhub.sidecarset.model import (
    InjectionStrategy,
    InjectRevision,
    LabelSelector,
    LabelSelectorRequirement,
    PatchPodMetadata,
    PriorityStrategy,
    ScatterTerm,
    SidecarContainer,
    SidecarSet,
    UpdateStrategy,
    WeightPriority,
)
from sidecarhub.sidecarset.planning import (
    PlanningCache,
    PodClass,
    PodDecision,
    RoundPlan,
    SidecarSetStatusCounts,
    compute_status,
    plan_round,
)
from sidecarhub.sidecarset.predicates import (
    ANNOTATION_INPLACE_UPDATE_STATE,
    PodEvaluation,
    PodRef,
    SidecarSetFacts,
    Upgradability,
)
from sidecarhub.sidecarset.rollout_settings import (
    RolloutSettings,
    check_rollout_policy,
    rollout_policy_annotations,
    split_rollout_annotations,
)
from sidecarhub.sidecarset.steps import CANARY_STEP, StepPlan, plan_step
from sidecarhub.sidecarset.validation import (
    PatchMetadataAllowRule,
    check_sidecarset,
    parse_patch_metadata_allowlist,
    validate_sidecarset,
)

__all__ = [
    "ANNOTATION_INPLACE_UPDATE_STATE",
    "CANARY_STEP",
    "MAX_DOCUMENT_BYTES",
    "CandidateIndex",
    "ChangeKind",
    "ConflictIndex",
    "Document",
    "FieldError",
    "InjectRevision",
    "InjectionCandidate",
    "InjectionError",
    "InjectionResult",
    "InjectionRevision",
    "InjectionStrategy",
    "LabelSelector",
    "LabelSelectorRequirement",
    "PatchMetadataAllowRule",
    "PatchPodMetadata",
    "PlanningCache",
    "PlanningCaches",
    "PodClass",
    "PodDecision",
    "PodEvaluation",
    "PodRef",
    "PriorityStrategy",
    "RolloutSettings",
    "RoundPlan",
    "ScatterTerm",
    "SidecarContainer",
    "SidecarSet",
    "SidecarSetFacts",
    "SidecarSetInvalid",
    "SidecarSetStatusCounts",
    "StepPlan",
    "UpdateStrategy",
    "Upgradability",
    "WeightPriority",
    "check_rollout_policy",
    "check_sidecarset",
    "classify_change",
    "compute_status",
    "evaluate_pod",
    "find_conflicts",
    "hash_without_images",
    "inject",
    "load_document",
    "matching_sidecarsets",
    "missing_injections",
    "parse_patch_metadata_allowlist",
    "parse_sidecarset",
    "plan_round",
    "plan_step",
    "read_sidecarset",
    "revision_hash",
    "rollout_policy_annotations",
    "selectors_may_overlap",
    "split_documents",
    "split_rollout_annotations",
    "to_kruise",
    "validate_sidecarset",
]
