"""Push to two real sandbox clusters: CRD install, server-side apply, update, removal, a
cluster that is down, status write-back. Tasks run in-process (eager) or as service calls."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from clusters.choices import PlacementState
from clusters.models import Cluster, SidecarSetPlacement
from clusters.push import (
    PushOutcome,
    apply_revision,
    create_target,
    delete_target,
    serve_revision,
    write_back_status,
)
from clusters.resources import MANAGED_BY_LABEL
from rollouts.models import Rollout
from sandbox.testing import RunningCluster, wait_for
from sidecarhub.sidecarset.annotations import ANNOTATION_HASH, ANNOTATION_INJECTED_LIST
from tests.clusters.conftest import kubectl, publish, read_resource

pytestmark = [pytest.mark.k8s, pytest.mark.django_db]


def _placement(name: str, cluster: Cluster) -> SidecarSetPlacement:
    return SidecarSetPlacement.objects.get(sidecarset_name=name, cluster=cluster)


def _target_both(name: str, alpha: Cluster, beta: Cluster, callbacks: Any) -> None:
    from sidecarhub.models import SidecarSet

    sidecarset = SidecarSet.objects.get(name=name)
    with callbacks(execute=True):
        create_target(sidecarset_id=sidecarset.pk, cluster_id=alpha.pk, wave=0)
        create_target(sidecarset_id=sidecarset.pk, cluster_selector={"matchLabels": {"region": "us"}}, wave=1)


def test_publish_pushes_to_both_clusters_then_update_then_remove_one(
    k8s_pair: tuple[RunningCluster, RunningCluster],
    registered_pair: tuple[Cluster, Cluster],
    eager_tasks: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    alpha_k8s, beta_k8s = k8s_pair
    alpha, beta = registered_pair
    name = f"log-{uuid.uuid4().hex[:6]}"

    # Publish first, then target: the targets' creation pushes the current revision.
    started = time.monotonic()
    revision = publish(name, callbacks=django_capture_on_commit_callbacks)
    _target_both(name, alpha, beta, django_capture_on_commit_callbacks)
    push_seconds = time.monotonic() - started

    for running, cluster, wave in ((alpha_k8s, alpha, 0), (beta_k8s, beta, 1)):
        placement = _placement(name, cluster)
        assert placement.state == PlacementState.APPLIED, placement.last_error
        assert placement.wave == wave
        assert placement.applied_revision_number == 1
        resource = read_resource(running, name)
        assert resource is not None
        assert resource["spec"] == revision.document["spec"]
        assert resource["spec"]["containers"][0]["image"] == "fluentbit:2.0"
        assert resource["metadata"]["labels"][MANAGED_BY_LABEL] == "sidecarhub"
        assert resource["metadata"]["annotations"][ANNOTATION_HASH] == revision.revision_hash
        managers = {entry["manager"] for entry in resource["metadata"]["managedFields"]}
        assert managers == {"sidecarhub"}
        header = kubectl(running, "get", "sidecarsets.sidecarhub.io").splitlines()[0].split()
        assert header == ["NAME", "MATCHED", "UPDATED", "READY", "SERVING", "AGE"]
    print(f"\npush of one revision to two clusters (incl. CRD install): {push_seconds:.2f}s")

    # Edit + publish: no cluster serves revision 2 yet (decision 17: its release's gates decide).
    second = publish(name, "fluentbit:2.1", callbacks=django_capture_on_commit_callbacks)
    for running, cluster in ((alpha_k8s, alpha), (beta_k8s, beta)):
        assert _placement(name, cluster).serving_revision_id == revision.pk
        assert _placement(name, cluster).applied_revision_number == 1
        resource = read_resource(running, name)
        assert resource is not None and resource["spec"]["containers"][0]["image"] == "fluentbit:2.0"
    # The gates open (what an approved first step does): both clusters get revision 2.
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        for cluster in (alpha, beta):
            assert serve_revision(second.sidecarset_id, cluster.pk, second.pk)
            assert not serve_revision(second.sidecarset_id, cluster.pk, second.pk)  # already serves it
    print(f"serving a new revision in two clusters: {time.monotonic() - started:.2f}s")
    for running, cluster in ((alpha_k8s, alpha), (beta_k8s, beta)):
        assert _placement(name, cluster).applied_revision_number == 2
        resource = read_resource(running, name)
        assert resource is not None
        assert resource["spec"]["containers"][0]["image"] == "fluentbit:2.1"
        assert resource["metadata"]["annotations"][ANNOTATION_HASH] == second.revision_hash

    # Applying the same revision again is a no-op (idempotent, no error).
    assert apply_revision(second.pk, alpha.pk) == PushOutcome.SKIPPED

    # Remove alpha's target: gone from alpha only.
    target = alpha.targets.get()
    with django_capture_on_commit_callbacks(execute=True):
        delete_target(target.pk)
    assert _placement(name, alpha).state == PlacementState.REMOVED
    assert read_resource(alpha_k8s, name) is None
    assert read_resource(beta_k8s, name) is not None
    assert _placement(name, beta).state == PlacementState.APPLIED

    # Deleting the SidecarSet removes it from the remaining cluster.
    from sidecarhub.services import delete_sidecarset

    with django_capture_on_commit_callbacks(execute=True):
        delete_sidecarset(name, actor=None, expected_version=None)
    assert read_resource(beta_k8s, name) is None
    assert _placement(name, beta).state == PlacementState.REMOVED


def test_cluster_down_marks_failed_then_applies_after_it_comes_back(
    k8s_pair: tuple[RunningCluster, RunningCluster],
    registered_pair: tuple[Cluster, Cluster],
    django_capture_on_commit_callbacks: Any,
) -> None:
    alpha_k8s, _ = k8s_pair
    alpha, _beta = registered_pair
    name = f"down-{uuid.uuid4().hex[:6]}"
    from sidecarhub.models import SidecarSet

    revision = publish(name, callbacks=lambda execute: django_capture_on_commit_callbacks(execute=False))
    with django_capture_on_commit_callbacks(execute=False) as queued:
        create_target(sidecarset_id=SidecarSet.objects.get(name=name).pk, cluster_id=alpha.pk)
    assert len(queued) == 1  # one push task per (revision, cluster), queued after commit

    alpha_k8s.cluster.stop_apiserver()
    try:
        started = time.monotonic()
        assert apply_revision(revision.pk, alpha.pk) == PushOutcome.FAILED
        failed_after = time.monotonic() - started
        placement = _placement(name, alpha)
        assert placement.state == PlacementState.FAILED
        assert placement.failed_attempts == 1
        assert "cluster alpha" in placement.last_error
        assert "cannot reach https://127.0.0.1:" in placement.last_error
        assert "connection refused" in placement.last_error
        # Retried: still down, still failed, attempts counted.
        assert apply_revision(revision.pk, alpha.pk) == PushOutcome.FAILED
        assert _placement(name, alpha).failed_attempts == 2
    finally:
        alpha_k8s.cluster.start_apiserver()
    print(f"\npush to a down cluster failed after {failed_after:.2f}s (4 attempts with backoff)")
    assert apply_revision(revision.pk, alpha.pk) == PushOutcome.APPLIED
    placement = _placement(name, alpha)
    assert (placement.state, placement.last_error, placement.failed_attempts) == (
        PlacementState.APPLIED,
        "",
        0,
    )
    resource = read_resource(alpha_k8s, name)
    assert resource is not None
    assert resource["spec"] == revision.document["spec"]


def _pod(
    name: str, *, labels: dict[str, str], annotations: dict[str, str], sidecar_image: str
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": {
            "containers": [
                {"name": "app", "image": "nginx:1.25"},
                {"name": "log-agent", "image": sidecar_image},
            ]
        },
    }


def _ready(running: RunningCluster, namespace: str, name: str) -> bool:
    pod = json.loads(running.core.read_namespaced_pod(name, namespace, _preload_content=False).data)  # type: ignore[attr-defined]  # _preload_content=False: a raw urllib3 response
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def test_status_counters_written_to_resource_and_database(
    k8s_pair: tuple[RunningCluster, RunningCluster],
    registered_pair: tuple[Cluster, Cluster],
    eager_tasks: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    _, running = k8s_pair  # beta: client-certificate credentials
    _alpha, cluster = registered_pair
    name = f"st-{uuid.uuid4().hex[:6]}"
    from sidecarhub.models import SidecarSet

    revision = publish(name, callbacks=django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        create_target(sidecarset_id=SidecarSet.objects.get(name=name).pk, cluster_id=cluster.pk)
    assert _placement(name, cluster).state == PlacementState.APPLIED

    namespace = f"t-{uuid.uuid4().hex[:8]}"
    running.core.create_namespace({"metadata": {"name": namespace}}, _preload_content=False)  # type: ignore[arg-type]  # stubs want a model object; a dict is sent as is
    running.knobs.pull_failures.add("fluentbit:broken")
    app_label = {"app": "web"}

    def hub(hash_value: str) -> dict[str, str]:
        return {
            ANNOTATION_INJECTED_LIST: name,
            ANNOTATION_HASH: json.dumps({name: {"hash": hash_value, "sidecarSetName": name}}),
        }

    pods = {
        "updated-ready": _pod(
            "updated-ready",
            labels=app_label,
            annotations=hub(revision.revision_hash),
            sidecar_image="fluentbit:2.0",
        ),
        "old-ready": _pod(
            "old-ready", labels=app_label, annotations=hub("0" * 64), sidecar_image="fluentbit:1.9"
        ),
        "updated-broken": _pod(
            "updated-broken",
            labels=app_label,
            annotations=hub(revision.revision_hash),
            sidecar_image="fluentbit:broken",
        ),
        "not-injected": _pod("not-injected", labels=app_label, annotations={}, sidecar_image="fluentbit:2.0"),
        "other-app": _pod(
            "other-app",
            labels={"app": "db"},
            annotations=hub(revision.revision_hash),
            sidecar_image="fluentbit:2.0",
        ),
    }
    try:
        for body in pods.values():
            running.core.create_namespaced_pod(namespace, body, _preload_content=False)  # type: ignore[arg-type]  # stubs want a model object; a dict is sent as is
        for ready_name in ("updated-ready", "old-ready", "not-injected", "other-app"):
            wait_for(
                lambda n=ready_name: _ready(running, namespace, n),  # type: ignore[misc]  # mypy cannot infer a lambda with a default argument
                what=f"pod {ready_name} ready (simulator errors: {running.simulator.errors[-3:]})",
            )

        started = time.monotonic()
        result = write_back_status(cluster.pk)
        print(f"\nstatus write-back of one cluster ({len(pods)} pods): {time.monotonic() - started:.2f}s")
        assert result.error == ""
        expected = {"matchedPods": 3, "updatedPods": 2, "readyPods": 2, "updatedReadyPods": 1}
        assert result.counters[name] == expected

        placement = _placement(name, cluster)
        assert (
            placement.matched_pods,
            placement.updated_pods,
            placement.ready_pods,
            placement.updated_ready_pods,
        ) == (
            3,
            2,
            2,
            1,
        )
        resource = read_resource(running, name)
        assert resource is not None
        status = resource["status"]
        assert {key: status[key] for key in expected} == expected
        assert status["latestRevision"] == revision.name
        row = [
            line.split() for line in kubectl(running, "get", "sidecarsets.sidecarhub.io", name).splitlines()
        ]
        assert row[0][:4] == ["NAME", "MATCHED", "UPDATED", "READY"]
        assert row[1][:4] == [name, "3", "2", "2"]

        # status.hub: nothing while the SidecarSet has no rollout in the cluster; then the
        # latest rollout, as the hub sees it (an images-only revision creates one).
        assert "hub" not in status
        second = publish(name, "fluentbit:2.1", callbacks=django_capture_on_commit_callbacks)
        rollout = Rollout.objects.get(cluster=cluster, to_revision=second)
        assert write_back_status(cluster.pk).error == ""
        rollout.refresh_from_db()
        resource = read_resource(running, name)
        assert resource is not None
        hub_block = resource["status"]["hub"]["rollout"]
        assert hub_block["id"] == rollout.pk and hub_block["kind"] == rollout.kind
        assert (hub_block["fromRevision"], hub_block["toRevision"]) == (revision.number, second.number)
        assert hub_block["state"] == rollout.state and hub_block["steps"] == rollout.rollout_steps.count()
    finally:
        running.core.delete_namespace(namespace, _preload_content=False)
