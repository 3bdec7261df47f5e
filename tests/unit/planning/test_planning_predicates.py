"""The predicates of update.md §1.2 on pod dicts, and the completion scenarios of §7.3."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from planning_pods import (
    EMPTY_IMAGE,
    image_id,
    make_hot_pod,
    make_pod,
    make_sidecarset,
    patch_pod,
    set_ready,
)

from sidecarhub.sidecarset import ANNOTATION_INPLACE_UPDATE_STATE, Upgradability, evaluate_pod
from sidecarhub.sidecarset.annotations import ANNOTATION_HASH, ANNOTATION_INJECTED_LIST
from sidecarhub.sidecarset.predicates import (
    hot_upgrade_reset_due,
    is_consistent,
    is_in_flight,
    is_matched,
    is_ready,
    is_unavailable_updated,
    is_updated,
    match_failure,
    needs_recreate_reason,
)

V1 = make_sidecarset("envoy:1")
V2 = make_sidecarset("envoy:2")
HOT_V1 = make_sidecarset("envoy:1", hot=True)
HOT_V2 = make_sidecarset("envoy:2", hot=True)


# --- matched -----------------------------------------------------------------------------------


def test_an_injected_running_pod_is_matched() -> None:
    assert is_matched(V2, make_pod("p", injected=V1))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda pod: pod["status"].update(phase="Succeeded"), "pod phase is Succeeded"),
        (lambda pod: pod["status"].update(phase="Failed"), "pod phase is Failed"),
        (lambda pod: pod["metadata"].update(deletionTimestamp="2024-01-02T00:00:00Z"), "pod is terminating"),
        (lambda pod: pod["metadata"]["labels"].update(app="db"), "labels do not match spec.selector"),
        (lambda pod: pod["metadata"]["annotations"].pop(ANNOTATION_INJECTED_LIST), "not injected"),
        (
            lambda pod: pod["metadata"]["annotations"].update({ANNOTATION_INJECTED_LIST: "other,mesh2"}),
            "not injected",
        ),
        (lambda pod: pod["spec"]["containers"].pop(), "sidecar container envoy is missing"),
    ],
)
def test_pods_that_are_not_matched(change: Callable[[dict[str, Any]], object], reason: str) -> None:
    # §1.2 matched(P): active, selected, injected by this SidecarSet, with all of its containers.
    pod = make_pod("p", injected=V1)
    change(pod)
    failure = match_failure(V2, pod)
    assert failure is not None and failure.startswith(reason)


def test_a_pod_matching_the_selector_but_never_injected_is_invisible() -> None:
    # §1.2 point 3: no retroactive injection.
    pod = make_pod("p", injected=V1)
    pod["metadata"]["annotations"] = {}
    assert not is_matched(V2, pod)


def test_namespace_selector_is_checked_only_with_namespace_labels() -> None:
    v2 = make_sidecarset("envoy:2", namespace_selector={"matchLabels": {"team": "a"}})
    pod = make_pod("p", injected=V1, namespace="ns-b")
    assert is_matched(v2, pod)  # the caller listed pods from selected namespaces only
    assert not is_matched(v2, pod, namespace_labels={"ns-b": {"team": "b"}})
    assert is_matched(v2, pod, namespace_labels={"ns-b": {"team": "a"}})
    by_name = make_sidecarset(
        "envoy:2", namespace_selector={"matchLabels": {"kubernetes.io/metadata.name": "ns-b"}}
    )
    assert is_matched(by_name, pod, namespace_labels={})  # Kubernetes' automatic name label


def test_hot_upgrade_pod_needs_both_twins_and_a_working_entry() -> None:
    pod = make_hot_pod("p", injected=HOT_V1, twin_images=("envoy:1", EMPTY_IMAGE))
    assert is_matched(HOT_V2, pod)
    no_entry = copy.deepcopy(pod)
    no_entry["metadata"]["annotations"]["sidecarhub.io/sidecarset-working-hotupgrade-container"] = "{}"
    assert match_failure(HOT_V2, no_entry) == "no working-container entry for hot-upgrade sidecar envoy"


# --- updated -----------------------------------------------------------------------------------


def test_updated_compares_only_the_hash() -> None:
    # §1.2: the controller does not look at the images in the pod's spec.
    pod = make_pod("p", injected=V1, updated_to=V2)
    assert is_updated(V2, pod)
    assert not is_updated(V1, pod)
    pod["spec"]["containers"][1]["image"] = "envoy:1"
    assert is_updated(V2, pod)


def test_updated_reads_the_legacy_annotation_format() -> None:
    from sidecarhub.sidecarset import revision_hash

    pod = make_pod("p", injected=V1)
    pod["metadata"]["annotations"][ANNOTATION_HASH] = json.dumps({"mesh": revision_hash(V2)})
    assert is_updated(V2, pod)


def test_updated_is_per_sidecarset_entry() -> None:
    from sidecarhub.sidecarset import revision_hash

    pod = make_pod("p", injected=V1)
    # V2's hash recorded under another SidecarSet's name does not make the pod updated for mesh.
    pod["metadata"]["annotations"][ANNOTATION_HASH] = json.dumps(
        {"mesh": {"hash": revision_hash(V1)}, "other": {"hash": revision_hash(V2)}}
    )
    assert not is_updated(V2, pod)
    # and an escaped (but equal) JSON string is still read correctly
    escaped = json.dumps({"mesh": {"hash": revision_hash(V2), "note": "a\\b"}})
    pod["metadata"]["annotations"][ANNOTATION_HASH] = escaped
    assert is_updated(V2, pod)


# --- consistent: update.md §7.3 completion scenarios -------------------------------------------


def test_only_injected_never_updated_is_complete() -> None:
    # §7.3: only injected, never updated → update complete.
    assert is_consistent(V1, make_pod("p", injected=V1))


def test_cold_sidecar_patched_imageid_unchanged_then_changed() -> None:
    # §7.3: cold sidecar patched, imageID unchanged → not complete; imageID changed → complete.
    patched = patch_pod(make_pod("p", injected=V1), V2)
    assert not is_consistent(V2, patched)
    patched["status"]["containerStatuses"][1]["imageID"] = image_id("envoy:2")
    assert is_consistent(V2, patched)


def test_status_image_equal_to_spec_image_counts_as_done() -> None:
    # §2.4: with tag images, the status image string equal to the spec's also means done.
    patched = patch_pod(make_pod("p", injected=V1), V2)
    patched["status"]["containerStatuses"][1]["image"] = "envoy:2"
    assert is_consistent(V2, patched)


def test_hot_sidecar_patched_with_imageid_unchanged_is_not_complete() -> None:
    # §7.3: x-2 patched (empty → v2) with its imageID unchanged → not complete.
    pod = make_hot_pod(
        "p",
        injected=HOT_V1,
        hash_of=HOT_V2,
        working="envoy-2",
        twin_images=("envoy:1", "envoy:2"),
        running=("envoy:1", EMPTY_IMAGE),
        recorded_ids={"envoy-2": image_id(EMPTY_IMAGE)},
    )
    assert not is_consistent(HOT_V2, pod)


def test_hot_sidecar_reset_pending_then_complete() -> None:
    # §7.3: x-2 done and x-1 reset with its imageID unchanged → not complete; both changed → complete.
    recorded = {"envoy-2": image_id(EMPTY_IMAGE), "envoy-1": image_id("envoy:1")}
    pod = make_hot_pod(
        "p",
        injected=HOT_V1,
        hash_of=HOT_V2,
        working="envoy-2",
        twin_images=(EMPTY_IMAGE, "envoy:2"),
        running=("envoy:1", "envoy:2"),
        recorded_ids=recorded,
    )
    assert not is_consistent(HOT_V2, pod)
    done = make_hot_pod(
        "p",
        injected=HOT_V1,
        hash_of=HOT_V2,
        working="envoy-2",
        twin_images=(EMPTY_IMAGE, "envoy:2"),
        recorded_ids=recorded,
    )
    assert is_consistent(HOT_V2, done)


def test_unparsable_inplace_record_counts_as_not_done() -> None:
    # §1.2 consistent, point 4: a missing record is done, an unparsable one is not.
    pod = make_pod("p", injected=V1)
    assert is_consistent(V1, pod)
    pod["metadata"]["annotations"][ANNOTATION_INPLACE_UPDATE_STATE] = "{not json"
    assert not is_consistent(V1, pod)


def test_container_count_mismatch_is_inconsistent() -> None:
    pod = make_pod("p", injected=V1)
    pod["status"]["containerStatuses"].pop(0)
    assert not is_consistent(V1, pod)


def test_digest_images_are_compared_with_the_status_image_id() -> None:
    # §1.2 consistent, point 2: repo and digest must match (no normalisation), after "xxx://".
    digest = "sha256:" + "ab" * 32
    sidecarset = make_sidecarset(f"docker.io/library/envoy@{digest}")
    pod = make_pod("p", injected=sidecarset)
    status = pod["status"]["containerStatuses"][1]
    status["imageID"] = f"docker-pullable://docker.io/library/envoy@{digest}"
    assert is_consistent(sidecarset, pod)
    status["imageID"] = f"docker.io/library/envoy@sha256:{'cd' * 32}"
    assert not is_consistent(sidecarset, pod)
    short = make_sidecarset(f"envoy@{digest}")
    short_pod = make_pod("p", injected=short)
    short_pod["status"]["containerStatuses"][1]["imageID"] = f"docker.io/library/envoy@{digest}"
    assert not is_consistent(short, short_pod)  # update.md §2.4: short names never match


# --- ready and unavailable ---------------------------------------------------------------------


def test_ready_needs_running_ready_and_not_terminating() -> None:
    pod = make_pod("p", injected=V1)
    assert is_ready(V1, pod)
    assert not is_ready(V1, set_ready(pod, False))
    pending = make_pod("p", injected=V1, phase="Pending")
    assert not is_ready(V1, pending)


def test_hot_pod_is_ready_only_when_the_idle_twin_runs_the_empty_image() -> None:
    # §1.2 ready / §5.5: the Ready condition stays True, ready(P) does not.
    steady = make_hot_pod("p", injected=HOT_V1, twin_images=("envoy:1", EMPTY_IMAGE))
    assert is_ready(HOT_V1, steady)
    upgrading = make_hot_pod(
        "p", injected=HOT_V1, hash_of=HOT_V2, working="envoy-2", twin_images=("envoy:1", "envoy:2")
    )
    assert not is_ready(HOT_V2, upgrading)


def test_unavailable_updated_counts_only_updated_pods() -> None:
    # §1.2: a pod that is not ready and not updated does not count.
    assert not is_unavailable_updated(V2, set_ready(make_pod("p", injected=V1), False))
    assert is_unavailable_updated(V2, make_pod("p", injected=V1, updated_to=V2, kubelet_done=False))
    assert is_unavailable_updated(V2, set_ready(make_pod("p", injected=V1, updated_to=V2), False))
    assert not is_unavailable_updated(V2, make_pod("p", injected=V1, updated_to=V2))


# --- upgradable, in flight, needs recreate ----------------------------------------------------


def test_image_only_change_is_upgradable() -> None:
    assert needs_recreate_reason(V2, make_pod("p", injected=V1)) is None
    assert evaluate_pod(V2, make_pod("p", injected=V1)).upgradability is Upgradability.UPGRADABLE


def test_non_image_change_needs_recreate() -> None:
    # decision 15 / §2.5: the without-image hash differs.
    with_env = make_sidecarset("envoy:2", env=[{"name": "A", "value": "1"}])
    assert needs_recreate_reason(with_env, make_pod("p", injected=V1)) is not None


def test_ready_inconsistent_sidecar_is_in_flight_and_not_ready_one_is_a_candidate() -> None:
    # §1.2 upgradable: a ready sidecar still rolling an earlier update skips the pod this round;
    # a not-ready inconsistent one (e.g. a crash-looping image) does not block.
    v3 = make_sidecarset("envoy:3")
    rolling = make_pod("p", injected=V1, updated_to=V2, kubelet_done=False)
    rolling["status"]["containerStatuses"][1]["ready"] = True
    assert is_in_flight(v3, rolling)
    assert evaluate_pod(v3, rolling).upgradability is Upgradability.IN_FLIGHT
    crash_looping = copy.deepcopy(rolling)
    crash_looping["status"]["containerStatuses"][1]["ready"] = False
    assert not is_in_flight(v3, crash_looping)
    assert evaluate_pod(v3, crash_looping).upgradability is Upgradability.UPGRADABLE


def test_hot_upgrade_reset_due() -> None:
    # §5.4: the new twin runs v2 and the pod is ready → the old twin must go back to empty.
    due = make_hot_pod(
        "p", injected=HOT_V1, hash_of=HOT_V2, working="envoy-2", twin_images=("envoy:1", "envoy:2")
    )
    assert hot_upgrade_reset_due(HOT_V2, due)
    not_yet = make_hot_pod(
        "p",
        injected=HOT_V1,
        hash_of=HOT_V2,
        working="envoy-2",
        twin_images=("envoy:1", "envoy:2"),
        running=("envoy:1", EMPTY_IMAGE),
        recorded_ids={"envoy-2": image_id(EMPTY_IMAGE)},
    )
    assert not hot_upgrade_reset_due(HOT_V2, not_yet)
    steady = make_hot_pod("p", injected=HOT_V1, twin_images=("envoy:1", EMPTY_IMAGE))
    assert not hot_upgrade_reset_due(HOT_V1, steady)
    # pod not Ready, but every container except the idle twin is ready → still due
    only_idle_not_ready = make_hot_pod(
        "p",
        injected=HOT_V1,
        hash_of=HOT_V2,
        working="envoy-2",
        twin_images=("envoy:1", "envoy:2"),
        ready=False,
        twin_ready=(False, True),
    )
    only_idle_not_ready["status"]["containerStatuses"][0]["ready"] = True
    assert hot_upgrade_reset_due(HOT_V2, only_idle_not_ready)
