"""Owning workloads and restart rules (``rollouts.workloads``), pure: pods and ReplicaSets as
plain JSON, no cluster, no database (decision 18)."""

from __future__ import annotations

from typing import Any

import pytest

from rollouts.workloads import (
    RESTARTED_AT_ANNOTATION,
    WorkloadKind,
    group_by_workload,
    plan_restart_steps,
    replicaset_owners,
    restart_marker_of,
    restart_patch,
    restart_status,
)


def _owner(kind: str, name: str, *, controller: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "name": name,
        "uid": f"uid-{name}",
        "controller": controller,
    }


def _pod(name: str, owner: dict[str, Any] | None = None, namespace: str = "ns") -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "uid": f"uid-{name}"}
    if owner is not None:
        metadata["ownerReferences"] = [owner]
    return {"metadata": metadata}


def _replicaset(name: str, owner: dict[str, Any] | None, namespace: str = "ns") -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if owner is not None:
        metadata["ownerReferences"] = [owner]
    return {"metadata": metadata}


def test_pods_are_grouped_by_their_owning_workload() -> None:
    pods = [
        _pod("web-7d9-a", _owner("ReplicaSet", "web-7d9")),
        _pod("web-7d9-b", _owner("ReplicaSet", "web-7d9")),
        _pod("web-5c1-c", _owner("ReplicaSet", "web-5c1")),  # an older ReplicaSet of the same Deployment
        _pod("db-0", _owner("StatefulSet", "db")),
        _pod("agent-x", _owner("DaemonSet", "agent")),
        _pod("bare"),
        _pod("loose-q", _owner("ReplicaSet", "loose")),  # a ReplicaSet no Deployment owns
        _pod("gone-q", _owner("ReplicaSet", "gone")),  # its ReplicaSet was not found
        _pod("job-1", _owner("Job", "nightly")),
        _pod("weak", _owner("StatefulSet", "db", controller=False)),  # not a controller reference
    ]
    owners = replicaset_owners(
        [
            _replicaset("web-7d9", _owner("Deployment", "web")),
            _replicaset("web-5c1", _owner("Deployment", "web")),
            _replicaset("loose", None),
        ]
    )
    grouping = group_by_workload(pods, owners)

    assert [(g.workload.kind, g.workload.name, [p.name for p in g.pods]) for g in grouping.workloads] == [
        (WorkloadKind.DAEMONSET, "agent", ["agent-x"]),
        (WorkloadKind.STATEFULSET, "db", ["db-0"]),
        (WorkloadKind.DEPLOYMENT, "web", ["web-5c1-c", "web-7d9-a", "web-7d9-b"]),
    ]
    assert grouping.workloads[2].workload.uid == "uid-web" and grouping.pod_count == 5
    refused = {item.pod.name: item.reason for item in grouping.not_restartable}
    assert set(refused) == {"bare", "loose-q", "gone-q", "job-1", "weak"}
    assert "bare pod" in refused["bare"] and "weak" in refused and "bare pod" in refused["weak"]
    assert "ReplicaSet loose (no Deployment)" in refused["loose-q"]
    assert "not found" in refused["gone-q"] and "Job nightly" in refused["job-1"]


def test_same_names_in_other_namespaces_are_other_workloads() -> None:
    pods = [
        _pod("a", _owner("ReplicaSet", "web-1"), namespace="one"),
        _pod("b", _owner("ReplicaSet", "web-1"), namespace="two"),
    ]
    owners = replicaset_owners(
        [
            _replicaset("web-1", _owner("Deployment", "web"), namespace="one"),
            _replicaset("web-1", None, namespace="two"),
        ]
    )
    grouping = group_by_workload(pods, owners)
    assert [(g.workload.namespace, g.workload.name) for g in grouping.workloads] == [("one", "web")]
    assert [item.pod.namespace for item in grouping.not_restartable] == ["two"]


def test_steps_cut_workloads_by_cumulative_targets() -> None:
    pods = [_pod(f"p{i}", _owner("StatefulSet", f"s{i}")) for i in range(5)]
    workloads = group_by_workload(pods, {}).workloads
    steps = plan_restart_steps(workloads, [1, "50%", "100%"])
    assert [(target, [g.workload.name for g in groups]) for target, groups in steps] == [
        ("1", ["s0"]),
        ("50%", ["s1", "s2"]),
        ("100%", ["s3", "s4"]),
    ]
    # a step that adds nothing is left out; the last step takes what is left
    assert [t for t, _ in plan_restart_steps(workloads[:1], [1, "50%", "100%"])] == ["1"]
    assert [len(g) for _, g in plan_restart_steps(workloads, [2, 3])] == [2, 3]
    with pytest.raises(ValueError):
        plan_restart_steps(workloads, ["half"])


def test_restart_patch_is_kubectl_rollout_restart_and_reads_back() -> None:
    patch = restart_patch("2025-01-01T00:00:00.000001Z")
    assert patch == {
        "spec": {
            "template": {
                "metadata": {"annotations": {RESTARTED_AT_ANNOTATION: "2025-01-01T00:00:00.000001Z"}}
            }
        }
    }
    assert restart_marker_of(patch) == "2025-01-01T00:00:00.000001Z"
    assert restart_marker_of({"spec": {"template": {}}}) is None


@pytest.mark.parametrize(
    ("kind", "spec", "status", "complete"),
    [
        (
            WorkloadKind.DEPLOYMENT,
            {"replicas": 6},
            {
                "observedGeneration": 2,
                "replicas": 6,
                "updatedReplicas": 6,
                "readyReplicas": 6,
                "availableReplicas": 6,
            },
            True,
        ),
        (
            WorkloadKind.DEPLOYMENT,
            {"replicas": 6},
            {
                "observedGeneration": 1,
                "replicas": 6,
                "updatedReplicas": 6,
                "readyReplicas": 6,
                "availableReplicas": 6,
            },
            False,
        ),
        (
            WorkloadKind.DEPLOYMENT,
            {"replicas": 6},
            {
                "observedGeneration": 2,
                "replicas": 8,
                "updatedReplicas": 6,
                "readyReplicas": 6,
                "availableReplicas": 6,
            },
            False,
        ),
        (
            WorkloadKind.DEPLOYMENT,
            {"replicas": 6},
            {
                "observedGeneration": 2,
                "replicas": 6,
                "updatedReplicas": 6,
                "readyReplicas": 4,
                "availableReplicas": 4,
            },
            False,
        ),
        (
            WorkloadKind.STATEFULSET,
            {"replicas": 3},
            {
                "observedGeneration": 2,
                "updatedReplicas": 3,
                "readyReplicas": 3,
                "availableReplicas": 3,
                "currentRevision": "db-2",
                "updateRevision": "db-2",
            },
            True,
        ),
        (
            WorkloadKind.STATEFULSET,
            {"replicas": 3},
            {
                "observedGeneration": 2,
                "updatedReplicas": 3,
                "readyReplicas": 3,
                "availableReplicas": 3,
                "currentRevision": "db-1",
                "updateRevision": "db-2",
            },
            False,
        ),
        (
            WorkloadKind.DAEMONSET,
            {},
            {
                "observedGeneration": 2,
                "desiredNumberScheduled": 2,
                "updatedNumberScheduled": 2,
                "numberAvailable": 2,
            },
            True,
        ),
        (
            WorkloadKind.DAEMONSET,
            {},
            {
                "observedGeneration": 2,
                "desiredNumberScheduled": 2,
                "updatedNumberScheduled": 1,
                "numberAvailable": 2,
            },
            False,
        ),
    ],
)
def test_restart_status_follows_kubectl_rollout_status(
    kind: str, spec: dict[str, Any], status: dict[str, Any], complete: bool
) -> None:
    workload = {"metadata": {"generation": 2}, "spec": spec, "status": status}
    assert restart_status(kind, workload).complete is complete


def test_restart_status_says_how_far_it_got() -> None:
    workload = {
        "metadata": {"generation": 3},
        "spec": {"replicas": 6},
        "status": {"observedGeneration": 3, "replicas": 8, "updatedReplicas": 2, "readyReplicas": 4},
    }
    status = restart_status(WorkloadKind.DEPLOYMENT, workload)
    assert not status.complete and (status.ready, status.desired) == (4, 6)
    assert status.summary == "ready 4/6, updated 2/6"
