"""Kruise's in-place rules in the core (``sidecarhub.sidecarset.inplace``): the patch body, which
images change, the update's targets, and how an update ends, checked with the planner's own
pods and, for random pods and images, as properties (hypothesis)."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from planning_pods import EPOCH, NAME, kubelet_restart, make_pod, make_sidecarset, set_ready

from sidecarhub.sidecarset import ANNOTATION_INPLACE_UPDATE_STATE, PodClass, plan_round, revision_hash
from sidecarhub.sidecarset.annotations import ANNOTATION_HASH
from sidecarhub.sidecarset.inplace import (
    UpdateTargets,
    UpdateVerdict,
    build_patch,
    carries_update,
    image_changes,
    new_image_failure,
    observe_update,
    update_targets,
)

V1 = make_sidecarset("envoy:1")
V2 = make_sidecarset("envoy:2")
TIMEOUT = 300


def apply_patch(pod: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    """What the apiserver makes of the hub's strategic-merge patch: annotations merged by key,
    containers merged by name (only ``image`` given), a new resourceVersion. Refuses a stale
    precondition as the apiserver does (409)."""
    patched = copy.deepcopy(dict(pod))
    metadata = patched["metadata"]
    assert body["metadata"]["resourceVersion"] == metadata["resourceVersion"], "409: stale precondition"
    metadata.setdefault("annotations", {}).update(body["metadata"].get("annotations") or {})
    for change in (body.get("spec") or {}).get("containers") or []:
        [container] = [c for c in patched["spec"]["containers"] if c["name"] == change["name"]]
        container["image"] = change["image"]
    metadata["resourceVersion"] = str(int(metadata["resourceVersion"]) + 1)
    return patched


def _patch(pod: Mapping[str, Any], sidecarset: Any = V2, seconds: int = 0) -> dict[str, Any]:
    return build_patch(
        sidecarset,
        pod,
        revision_name=f"{NAME}-rev",
        revision_hash=_hash_of(sidecarset),
        now=EPOCH + timedelta(seconds=seconds),
    )


def _hash_of(sidecarset: Any) -> str:
    return revision_hash(sidecarset)


def restart(pod: Mapping[str, Any], *, ready: bool = True) -> dict[str, Any]:
    """The kubelet restarted the sidecar on its spec image, and it runs."""
    restarted = kubelet_restart(pod, ready=ready)
    for status in restarted["status"]["containerStatuses"]:
        status["state"] = {"running": {}}
    return restarted


def _status_pod(image: str, reason: str | None) -> dict[str, Any]:
    state: dict[str, Any] = {"running": {}} if reason is None else {"waiting": {"reason": reason}}
    return {"status": {"containerStatuses": [{"name": "envoy", "image": image, "state": state}]}}


# --- worked examples -------------------------------------------------------------------------------


def test_the_patch_changes_only_the_sidecar_image_and_the_hubs_annotations() -> None:
    pod = make_pod("web-0", injected=V1, resource_version="7")
    body = _patch(pod)
    assert body["spec"] == {"containers": [{"name": "envoy", "image": "envoy:2"}]}
    assert set(body) == {"metadata", "spec"}
    assert set(body["metadata"]) == {"annotations", "resourceVersion"}
    assert body["metadata"]["resourceVersion"] == "7"  # the precondition
    assert set(body["metadata"]["annotations"]) == {ANNOTATION_HASH, ANNOTATION_INPLACE_UPDATE_STATE}
    state = json.loads(body["metadata"]["annotations"][ANNOTATION_INPLACE_UPDATE_STATE])[NAME]
    # the imageID the kubelet reported before the patch: consistent(P) waits until it changes
    assert (
        state["lastContainerStatuses"]["envoy"]["imageID"] == pod["status"]["containerStatuses"][1]["imageID"]
    )


def test_a_second_patch_keeps_the_first_revision_and_timestamp() -> None:
    """Kruise's quirk (update.md §2.3): the in-place record's revision/updateTimestamp stay."""
    first = apply_patch(make_pod("web-0", injected=V1), _patch(make_pod("web-0", injected=V1), seconds=1))
    again = _patch(kubelet_restart(first), make_sidecarset("envoy:3"), seconds=99)
    entry = json.loads(again["metadata"]["annotations"][ANNOTATION_INPLACE_UPDATE_STATE])[NAME]
    assert (entry["revision"], entry["updateTimestamp"]) == (f"{NAME}-rev", "2024-01-01T00:00:01Z")


def test_targets_name_each_changed_sidecar_in_order() -> None:
    pod = make_pod("web-0", injected=V1)
    assert image_changes(V2, pod) == [("envoy", "envoy:1", "envoy:2")]
    assert update_targets(V2, pod) == UpdateTargets("envoy", "envoy:1", "envoy:2")
    # a pod that is gone, or needs nothing: the SidecarSet's sidecars at its image
    assert update_targets(V2, None) == UpdateTargets("envoy", "", "envoy:2")
    assert update_targets(V1, pod) == UpdateTargets("envoy", "", "envoy:1")


def test_a_failing_status_counts_only_for_the_new_image() -> None:
    """Until the kubelet reacts to the patch the status describes the old container, which may
    itself have been failing (rolling back a bad image): no verdict on the new one."""
    targets = UpdateTargets("envoy", "envoy:bad-1", "envoy:1")
    assert new_image_failure(_status_pod("envoy:bad-1", "ImagePullBackOff"), targets) is None
    assert (
        new_image_failure(_status_pod("envoy:1", "ImagePullBackOff"), targets)
        == "container envoy: ImagePullBackOff"
    )
    assert (
        new_image_failure(_status_pod("envoy:1", "CrashLoopBackOff"), targets)
        == "container envoy: CrashLoopBackOff"
    )
    assert new_image_failure(_status_pod("envoy:1", "ContainerCreating"), targets) is None
    assert new_image_failure(_status_pod("envoy:1", None), targets) is None


def test_observe_update_verdicts() -> None:
    pod = make_pod("web-0", injected=V1)
    targets = update_targets(V2, pod)
    patched = apply_patch(pod, _patch(pod))
    at = EPOCH

    def verdict(candidate: Mapping[str, Any] | None, seconds: int = 0) -> Any:
        return observe_update(
            V2,
            candidate,
            targets,
            patched_at=at,
            timeout_seconds=TIMEOUT,
            now=at + timedelta(seconds=seconds),
        )

    assert verdict(None) == (UpdateVerdict.POD_GONE, "the pod was deleted while its new sidecar started")
    assert verdict(pod)[0] is UpdateVerdict.SKIPPED  # someone put the old sidecar back
    assert verdict(patched) is None  # the kubelet has not restarted the sidecar yet
    assert verdict(patched, TIMEOUT)[0] is UpdateVerdict.TIMED_OUT
    assert verdict(restart(patched)) == (UpdateVerdict.SUCCEEDED, "")
    assert verdict(restart(patched, ready=False)) is None
    failing = restart(patched, ready=False)
    failing["status"]["containerStatuses"][1]["state"] = {"waiting": {"reason": "ErrImagePull"}}
    assert verdict(failing) == (UpdateVerdict.FAILED, "container envoy: ErrImagePull")


# --- properties ------------------------------------------------------------------------------------

_images = st.sampled_from(["envoy:1", "envoy:2", "envoy:3", "registry.local/envoy:9"])


@settings(max_examples=150, deadline=None)
@given(
    injected=_images,
    target=_images,
    ready=st.booleans(),
    resource_version=st.integers(1, 10**6),
    created=st.integers(0, 100),
)
def test_patched_then_restarted_pods_are_updated_for_the_planner(
    injected: str, target: str, ready: bool, resource_version: int, created: int
) -> None:
    """For any pod injected from one image and any target image: the body patches exactly the
    sidecars whose image differs, carries the precondition; once the apiserver applied it the
    pod carries the update; once the kubelet restarted the sidecar and the pod is ready, the
    update succeeded AND the planner counts the pod as updated (never patched again)."""
    source, goal = make_sidecarset(injected), make_sidecarset(target)
    version = str(resource_version)
    pod = make_pod("web-0", injected=source, ready=ready, created=created, resource_version=version)
    body = _patch(pod, goal)
    changed = [(c["name"], c["image"]) for c in (body.get("spec") or {}).get("containers") or []]
    assert changed == ([] if injected == target else [("envoy", target)])
    assert body["metadata"]["resourceVersion"] == version

    patched = apply_patch(pod, body)
    targets = update_targets(goal, pod)
    assert carries_update(goal, patched, targets)
    done = set_ready(restart(patched), True)
    verdict = observe_update(goal, done, targets, patched_at=EPOCH, timeout_seconds=TIMEOUT, now=EPOCH)
    assert verdict == (UpdateVerdict.SUCCEEDED, "")
    plan = plan_round(goal, [done])
    assert [d.pod_class for d in plan.decisions] == [PodClass.UPDATED]
    assert not plan.to_patch


@settings(max_examples=100, deadline=None)
@given(injected=_images, target=_images, other=_images)
def test_a_pod_changed_by_someone_else_never_counts_as_carrying_the_update(
    injected: str, target: str, other: str
) -> None:
    """After the patch, if someone else sets another image, the update is not carried (the
    executor skips the row instead of calling it a success)."""
    goal = make_sidecarset(target)
    pod = make_pod("web-0", injected=make_sidecarset(injected))
    patched = apply_patch(pod, _patch(pod, goal))
    meddled = copy.deepcopy(patched)
    meddled["spec"]["containers"][1]["image"] = other
    assert carries_update(goal, meddled, update_targets(goal, pod)) == (other == target)
