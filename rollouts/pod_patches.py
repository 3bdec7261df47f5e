"""The one way the hub patches and re-reads a pod (cold and hot upgrades alike).

No database access here (patches run on pool threads). A patch body always carries the pod's
resourceVersion (``sidecarhub.sidecarset.inplace.with_precondition``); the reply is sorted into
what the executor must do:

- ``LANDED``: the apiserver accepted it (the patched pod comes back);
- ``GONE``: 404, the pod was deleted;
- ``CONFLICT``: 409, the pod changed since it was read. Never retried blindly: the executor
  re-reads the pod (``read_pod``) and re-checks whether its update is still due, a bounded
  number of times (``MAX_CONFLICTS`` per pod update);
- ``REFUSED``: any other answer (the apiserver's message is kept);
- ``UNREACHABLE``: no answer; nothing is known, so the pod is read on the next pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from django.utils import timezone
from kubernetes import client

from clusters.kube import ClusterApiError, ClusterUnreachable, KubeClient
from sidecarhub.sidecarset.inplace import pod_uid
from sidecarhub.sidecarset.pod_records import decode_pod

__all__ = [
    "MAX_CONFLICTS",
    "PATCH_CONCURRENCY",
    "PatchReply",
    "PatchResult",
    "PodRead",
    "patch_concurrency",
    "read_pod",
    "send_patch",
]

STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
# 409s one pod update may meet before it fails ("the pod kept changing").
MAX_CONFLICTS = 5
# Requests in flight at once (bounded again by the client's urllib3 pool, so no connection is
# thrown away; see ``patch_concurrency``).
PATCH_CONCURRENCY = 8


class PatchResult(StrEnum):
    LANDED = "landed"
    GONE = "gone"
    CONFLICT = "conflict"
    REFUSED = "refused"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class PatchReply:
    """What became of one patch, and when its reply came."""

    result: PatchResult
    at: datetime
    pod: dict[str, Any] | None = None  # the patched pod (LANDED)
    error: str = ""  # the apiserver's or the connection's words (REFUSED, UNREACHABLE)


def send_patch(
    kube: KubeClient, namespace: str, name: str, body: Mapping[str, Any], *, what: str
) -> PatchReply:
    """Send one strategic-merge patch (safe on a pool thread: no database access)."""
    try:
        patched = kube.call(
            client.CoreV1Api(kube.api_client).patch_namespaced_pod,
            name,
            namespace,
            body,
            _content_type=STRATEGIC_MERGE_PATCH,
            what=f"{what} pod {namespace}/{name}",
            decode=decode_pod,
        )
    except ClusterUnreachable as exc:
        return PatchReply(PatchResult.UNREACHABLE, timezone.now(), error=str(exc))
    except ClusterApiError as exc:
        if exc.status == 404:
            return PatchReply(PatchResult.GONE, timezone.now(), error=str(exc))
        if exc.status == 409:
            return PatchReply(PatchResult.CONFLICT, timezone.now(), error=str(exc))
        return PatchReply(PatchResult.REFUSED, timezone.now(), error=str(exc))
    return PatchReply(PatchResult.LANDED, timezone.now(), pod=patched if isinstance(patched, dict) else None)


@dataclass(frozen=True)
class PodRead:
    """A pod read again by name: ``pod`` is ``None`` when it is gone (or is another pod with the
    same name: a new uid); ``unreachable`` holds the error when the apiserver did not answer."""

    pod: dict[str, Any] | None
    unreachable: str = ""


def read_pod(kube: KubeClient, namespace: str, name: str, uid: str) -> PodRead:
    """Read the pod ``uid`` by name (after a 409, or to resolve a row after a crash)."""
    try:
        pod = kube.call(
            client.CoreV1Api(kube.api_client).read_namespaced_pod,
            name,
            namespace,
            what=f"read pod {namespace}/{name}",
            decode=decode_pod,
        )
    except ClusterUnreachable as exc:
        return PodRead(None, unreachable=str(exc))
    except ClusterApiError as exc:
        if exc.not_found:
            return PodRead(None)
        return PodRead(None, unreachable=str(exc))
    if not isinstance(pod, dict) or pod_uid(pod) != uid:
        return PodRead(None)
    return PodRead(pod)


def patch_concurrency(kube: KubeClient) -> int:
    """Patches in flight at once: ``PATCH_CONCURRENCY``, never more than the client's urllib3
    pool keeps connections for (so every request reuses a kept-alive connection)."""
    configuration = getattr(getattr(kube, "api_client", None), "configuration", None)
    pool = int(getattr(configuration, "connection_pool_maxsize", 0) or PATCH_CONCURRENCY)
    return max(1, min(PATCH_CONCURRENCY, pool))
