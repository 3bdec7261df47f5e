"""A release across two clusters in waves (decisions 16 and 17), end to end: the real worker, two
sandbox apiservers, their webhooks calling the hub over TLS, and only the services a person
uses (publish, approve, roll back) driving it.

Checked at each point: which image the pods a cluster creates get (its webhook injects what the
cluster serves), what its custom resource names, and that no step succeeds without approval.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from kubernetes import client
from kubernetes.client.rest import ApiException

from clusters.models import Cluster, SidecarSetPlacement
from clusters.push import create_target
from clusters.resources import REVISION_NAME_ANNOTATION
from clusters.services import import_kubeconfig, update_cluster
from clusters.webhooks import WEBHOOK_CONFIGURATION_NAME, register_webhook
from rollouts.choices import PodUpdateOutcome, RolloutKind, RolloutState, StepState
from rollouts.models import PodUpdate, Rollout, RolloutStep
from rollouts.services import approve_step, rollback_rollout
from sandbox.testing import RunningCluster, wait_for
from sidecarhub.models import SidecarSetRevision
from sidecarhub.services import create_sidecarset, publish_sidecarset, update_sidecarset
from tests.clusters.conftest import make_user, read_resource
from tests.injection.conftest import HubServer, make_pod, sidecarset, trust_sandbox_apiserver

pytestmark = [pytest.mark.k8s, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

NAME = "rel"
OLD, NEW = "rel-agent:1.0", "rel-agent:2.0"


def _document(image: str) -> dict[str, Any]:
    """The SidecarSet, in two steps per cluster: one pod, then the rest (the annotation)."""
    document = sidecarset(NAME)
    document["metadata"]["annotations"] = {"rollouts.sidecarhub.io/steps": "1,100%"}
    document["spec"]["containers"][0]["image"] = image
    return document


def _namespace(running: RunningCluster) -> str:
    name = f"rel-{uuid.uuid4().hex[:8]}"
    running.core.create_namespace({"metadata": {"name": name}}, _preload_content=False)  # type: ignore[arg-type]  # a dict is sent as is
    return name


def _new_pod_image(running: RunningCluster, namespace: str, *, dry_run: bool = True) -> str:
    """The sidecar image the cluster's webhook gives a pod created now."""
    pod = make_pod(f"p-{uuid.uuid4().hex[:6]}")
    kwargs: dict[str, Any] = {"dry_run": "All"} if dry_run else {}
    created = json.loads(
        running.core.create_namespaced_pod(namespace, pod, _preload_content=False, **kwargs).data  # type: ignore[arg-type, attr-defined]  # a dict is sent as is; raw urllib3 response
    )
    images = [c["image"] for c in created["spec"]["containers"] if c["name"] == f"{NAME}-agent"]
    return images[0] if images else ""


def _wait_image(running: RunningCluster, namespace: str, image: str, what: str) -> float:
    """Seconds until new pods of the cluster get ``image`` (the admission cache's refresh)."""
    started = time.monotonic()
    wait_for(
        lambda: _new_pod_image(running, namespace) == image,
        timeout_seconds=10,
        interval_seconds=0.1,
        what=what,
    )
    return time.monotonic() - started


def _served(running: RunningCluster) -> str:
    resource = read_resource(running, NAME) or {}
    return str(
        ((resource.get("metadata") or {}).get("annotations") or {}).get(REVISION_NAME_ANNOTATION) or ""
    )


def _rollout(cluster: Cluster, revision: SidecarSetRevision) -> Rollout:
    found: Any = wait_for(
        lambda: Rollout.objects.filter(cluster=cluster, to_revision=revision).first(),
        timeout_seconds=30,
        what=f"the release's rollout in {cluster.name}",
    )
    return found


def _awaiting(rollout: Rollout, ordinal: int) -> RolloutStep:
    step: Any = wait_for(
        lambda: RolloutStep.objects.filter(
            rollout=rollout, ordinal=ordinal, state=StepState.AWAITING_APPROVAL
        ).first(),
        timeout_seconds=60,
        what=f"step {ordinal} of rollout {rollout.pk} awaiting approval",
    )
    return step


def _state(rollout: Rollout) -> str:
    return Rollout.objects.get(pk=rollout.pk).state


@pytest.fixture
def two_clusters(
    k8s_pair: tuple[RunningCluster, RunningCluster], hub_server: HubServer, settings: Any
) -> Iterator[tuple[Cluster, Cluster]]:
    """``alpha`` and ``beta`` registered, each with its webhook calling the hub's TLS server."""
    settings.SIDECARHUB_WEBHOOK_CA_FILE = str(hub_server.certs.ca_cert)
    settings.SIDECARHUB_WEBHOOK_AUTO_REGISTER = False
    clusters = []
    for running in k8s_pair:
        cluster, _ = import_kubeconfig(
            name=running.name, kubeconfig_path=running.kubeconfig, context=running.name
        )
        cluster = update_cluster(cluster.pk, changes={"webhook_url": hub_server.url})
        cluster = trust_sandbox_apiserver(cluster, running)
        register_webhook(cluster.pk)
        clusters.append(cluster)
    try:
        yield clusters[0], clusters[1]
    finally:
        for running in k8s_pair:
            with contextlib.suppress(ApiException):
                client.AdmissionregistrationV1Api(running.api_client).delete_mutating_webhook_configuration(
                    WEBHOOK_CONFIGURATION_NAME, _preload_content=False
                )


def test_each_cluster_serves_what_its_wave_and_approvals_allow_and_rollback_is_immediate(
    k8s_pair: tuple[RunningCluster, RunningCluster],
    two_clusters: tuple[Cluster, Cluster],
    celery_worker_process: subprocess.Popen[bytes],
) -> None:
    alpha_k8s, beta_k8s = k8s_pair
    alpha, beta = two_clusters
    author: User = make_user("author", "rollouts.operate_rollout")
    approver: User = make_user("approver", "rollouts.approve_rolloutstep", "rollouts.operate_rollout")
    document = _document(OLD)
    row = create_sidecarset(document, actor=author)
    create_target(row.pk, cluster_id=alpha.pk, wave=0)
    create_target(row.pk, cluster_id=beta.pk, wave=1)
    first = publish_sidecarset(NAME, actor=author)
    # A first revision is served at once in every target cluster.
    namespaces = {cluster: _namespace(running) for cluster, running in ((alpha, alpha_k8s), (beta, beta_k8s))}
    for cluster, running in ((alpha, alpha_k8s), (beta, beta_k8s)):
        _wait_image(running, namespaces[cluster], OLD, f"revision 1 in {cluster.name}")
        for _ in range(2):
            assert _new_pod_image(running, namespaces[cluster], dry_run=False) == OLD
        wait_for(lambda r=running: _served(r) == first.name, timeout_seconds=30, what="revision 1 pushed")  # type: ignore[misc]  # a lambda with a default argument

    # Publish revision 2: no cluster serves it before its gate opens.
    update_sidecarset(NAME, source=_document(NEW), actor=author, expected_version=None)
    second = publish_sidecarset(NAME, actor=author)
    wave0, wave1 = _rollout(alpha, second), _rollout(beta, second)
    started = time.monotonic()
    gate = _awaiting(wave0, 1)
    print(f"\npublish → wave 0 awaiting approval: {time.monotonic() - started:.2f}s")
    assert time.monotonic() - started < 10  # woken by the publish, not by a periodic tick
    for cluster, running in ((alpha, alpha_k8s), (beta, beta_k8s)):
        assert (
            _new_pod_image(running, namespaces[cluster], dry_run=False) == OLD
        )  # created between publish and approval
        assert _served(running) == first.name
    assert _state(wave1) == RolloutState.PENDING

    # Wave 0's first step approved: alpha serves revision 2; beta still revision 1.
    approve_step(gate.pk, actor=approver, comment="canary")
    seconds = _wait_image(alpha_k8s, namespaces[alpha], NEW, "revision 2 in alpha after its gate")
    print(f"approval → alpha's new pods on revision 2: {seconds:.2f}s")
    assert seconds < 2.0
    assert _new_pod_image(beta_k8s, namespaces[beta]) == OLD
    wait_for(lambda: _served(alpha_k8s) == second.name, timeout_seconds=30, what="revision 2 pushed to alpha")
    assert _served(beta_k8s) == first.name
    approve_step(_awaiting(wave0, 2).pk, actor=approver)
    wait_for(lambda: _state(wave0) == RolloutState.COMPLETED, timeout_seconds=90, what="wave 0 completed")

    # Wave 1 starts; its first step waits for approval although beta created pods meanwhile.
    beta_gate = _awaiting(wave1, 1)
    assert beta_gate.pod_count == 1
    assert _new_pod_image(beta_k8s, namespaces[beta], dry_run=False) == OLD
    approve_step(beta_gate.pk, actor=approver)
    _wait_image(beta_k8s, namespaces[beta], NEW, "revision 2 in beta after its gate")
    wait_for(lambda: _served(beta_k8s) == second.name, timeout_seconds=30, what="revision 2 pushed to beta")
    wait_for(
        lambda: PodUpdate.objects.filter(rollout=wave1, outcome=PodUpdateOutcome.SUCCEEDED).count() == 1,
        timeout_seconds=60,
        what="beta's first pod updated",
    )

    # Roll beta back mid-rollout: its new pods get revision 1 at once; its updated pod returns.
    rolled_back_at = time.monotonic()
    rollback = rollback_rollout(wave1.pk, actor=author, reason="errors up")
    seconds = _wait_image(beta_k8s, namespaces[beta], OLD, "revision 1 in beta after the rollback")
    print(f"rollback → beta's new pods on revision 1: {time.monotonic() - rolled_back_at:.2f}s")
    assert seconds < 2.0
    assert _new_pod_image(alpha_k8s, namespaces[alpha]) == NEW  # alpha is not rolled back
    placement = SidecarSetPlacement.objects.get(sidecarset_name=NAME, cluster=beta)
    assert placement.serving_revision_id == first.pk
    wait_for(
        lambda: _served(beta_k8s) == first.name, timeout_seconds=30, what="revision 1 pushed back to beta"
    )
    assert rollback.kind == RolloutKind.ROLLBACK

    def approve_what_waits() -> bool:
        # The rollback's steps (1, then 100%) wait for approval when they have pods to return.
        for step in RolloutStep.objects.filter(rollout=rollback, state=StepState.AWAITING_APPROVAL):
            approve_step(step.pk, actor=approver)
        return _state(rollback) == RolloutState.COMPLETED

    wait_for(approve_what_waits, timeout_seconds=90, interval_seconds=0.5, what="the rollback completed")
    assert _state(wave1) == RolloutState.ABORTED
    # Every pod was patched at most once per rollout; the one updated pod went back.
    for rollout in (wave0, wave1, rollback):
        attempts = PodUpdate.objects.filter(rollout=rollout).values_list("patch_attempts", flat=True)
        assert all(value <= 1 for value in attempts), (rollout.pk, list(attempts))
    returned = PodUpdate.objects.filter(rollout=rollback, outcome=PodUpdateOutcome.SUCCEEDED)
    assert returned.count() == 1
