"""What one reconcile pass reads, read once: revisions parsed once per pass, the cluster's pods
listed once per turn and handed to every stage (prepare, start, run, observe).

A pass runs in turns (``rollouts.reconciler``): each turn looks at every unfinished rollout of
the cluster once. Within a turn every stage of every rollout works from the same pod list (per
server-side label selector: SidecarSets with different ``matchLabels`` list different pods);
a stage that patched pods ends the turn's list (``forget_pods``), so nothing later plans from
resourceVersions it knows are stale. Revisions are immutable, so a pass parses each one once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from clusters.kube import KubeClient
from rollouts.models import Rollout
from sidecarhub.models import SidecarSetRevision
from sidecarhub.sidecarset import SidecarSet
from sidecarhub.sidecarset.inplace import pod_uid

__all__ = ["PassInputs", "PodListing", "fetch_pods", "int_or_percent"]

NamespaceLabels = Mapping[str, Mapping[str, str]]


def int_or_percent(value: str) -> int | str:
    """A stored maxUnavailable as the core takes it: a count or ``"N%"``."""
    return int(value) if value.isdigit() else value


def fetch_pods(
    kube: KubeClient, sidecarset: SidecarSet
) -> tuple[list[dict[str, Any]], NamespaceLabels | None]:
    """The cluster's pods that may match (plain JSON) and, when the SidecarSet has a
    namespaceSelector, every namespace's labels. ``matchLabels`` filter on the server."""
    pods = kube.list_pods(label_selector=_label_selector(sidecarset))
    namespace_labels = kube.namespace_labels() if sidecarset.namespace_selector is not None else None
    return pods, namespace_labels


def _label_selector(sidecarset: SidecarSet) -> str | None:
    selector = sidecarset.selector
    if selector is None or not selector.match_labels:
        return None
    return ",".join(f"{key}={value}" for key, value in sorted(selector.match_labels.items()))


@dataclasses.dataclass(frozen=True)
class PodListing:
    """One turn's pods for one label selector, and the namespaces' labels when needed."""

    pods: list[dict[str, Any]]
    namespace_labels: NamespaceLabels | None
    by_uid: dict[str, dict[str, Any]]


class PassInputs:
    """The reads of one pass over one cluster (see the module docstring)."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube
        self._cores: dict[int, SidecarSet] = {}
        self._listings: dict[tuple[str | None, bool], PodListing] = {}
        self.pod_lists = 0  # LIST calls this pass made (reported, and asserted by tests)

    def revision_core(self, revision: SidecarSetRevision) -> SidecarSet:
        """The revision's parsed definition (parsed once per pass)."""
        core = self._cores.get(revision.pk)
        if core is None:
            core = self._cores[revision.pk] = revision.to_core()
        return core

    def planning_sidecarset(self, rollout: Rollout) -> SidecarSet:
        """The SidecarSet the planner sees for this rollout: the target revision's containers (so
        its hashes), the rollout's maxUnavailable, and ``type``/``paused`` from the SidecarSet's
        CURRENT revision (so ``updateStrategy.paused`` published later holds the rollout)."""
        to_revision = rollout.to_revision
        if to_revision is None:
            raise LookupError(f"rollout {rollout.pk}: its target revision no longer exists")
        core = self.revision_core(to_revision)
        strategy = core.update_strategy
        current = rollout.live_sidecarset.current_revision
        if current is not None and current.pk != to_revision.pk:
            current_strategy = self.revision_core(current).update_strategy
            strategy = dataclasses.replace(
                strategy, type=current_strategy.type, paused=current_strategy.paused
            )
        strategy = dataclasses.replace(strategy, max_unavailable=int_or_percent(rollout.max_unavailable))
        return dataclasses.replace(core, update_strategy=strategy)

    def pods(self, sidecarset: SidecarSet) -> PodListing:
        """This turn's pods for the SidecarSet's selector (listed on first use in the turn)."""
        key = (_label_selector(sidecarset), sidecarset.namespace_selector is not None)
        listing = self._listings.get(key)
        if listing is None:
            pods, namespace_labels = fetch_pods(self.kube, sidecarset)
            self.pod_lists += 1
            listing = PodListing(pods, namespace_labels, {pod_uid(pod): pod for pod in pods})
            self._listings[key] = listing
        return listing

    def forget_pods(self) -> None:
        """List again on next use: at each new turn (pods move on between turns), and after a
        stage patched pods (later stages must not plan from resourceVersions known stale)."""
        self._listings.clear()
