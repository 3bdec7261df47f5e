"""An approved, stepped restart of the workloads whose pods need recreate (decision 18), end to
end: the real worker, a sandbox apiserver whose webhook calls the hub over TLS, its
controller-manager running the Deployment, ReplicaSet and StatefulSet controllers, and only the
services a person uses (publish, approve, start a restart) driving it.

Unlike tests/rollouts/test_rollout_restarts.py, the workloads' pod templates carry no sidecar:
every pod, before and after the restart, gets its sidecar from the webhook, i.e. from the
revision the cluster serves.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from kubernetes import client
from kubernetes.client.rest import ApiException

from clusters.models import Cluster, SidecarSetPlacement
from clusters.push import create_target
from clusters.services import import_kubeconfig, update_cluster
from clusters.webhooks import WEBHOOK_CONFIGURATION_NAME, register_webhook
from rollouts.choices import (
    PodUpdateOutcome,
    ReleaseStage,
    RolloutKind,
    RolloutOutcome,
    RolloutState,
    StepState,
)
from rollouts.fleet import fleet_of, releases_of
from rollouts.models import PodUpdate, Rollout, RolloutStep
from rollouts.restarts import start_restart
from rollouts.services import approve_step
from sandbox.testing import RunningCluster, wait_for
from sidecarhub.services import create_sidecarset, publish_sidecarset, update_sidecarset
from tests.clusters.conftest import make_user
from tests.injection.conftest import HubServer, make_pod, sidecarset, trust_sandbox_apiserver

pytestmark = [pytest.mark.k8s, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

NAME = "rst"
AGENT = f"{NAME}-agent"
ENV = {"name": "LOG_LEVEL", "value": "debug"}
OLD_IMAGE, NEW_IMAGE = f"{AGENT}:1.0", f"{AGENT}:2.0"


def _labels(namespace: str) -> dict[str, str]:
    """app=web, and this test's namespace: pods of an earlier test still terminating elsewhere
    are not selected."""
    return {"app": "web", "run": namespace}


def _document(variant: str, namespace: str, *, new: bool) -> dict[str, Any]:
    """``env``: revision 2 adds an env var to the sidecar container; ``native``: the sidecar is a
    native sidecar (an init container with ``restartPolicy: Always``, which requires the
    ``NotUpdate`` strategy) whose image revision 2 changes. Neither is applied in place: the pods
    need recreate."""
    document = sidecarset(NAME, selector=_labels(namespace))
    if variant == "native":
        agent = document["spec"].pop("containers")[0]
        agent.update(image=NEW_IMAGE if new else OLD_IMAGE, restartPolicy="Always")
        document["spec"]["initContainers"] = [agent]
        document["spec"]["updateStrategy"] = {"type": "NotUpdate"}  # required for native sidecars
    elif new:
        document["spec"]["containers"][0]["env"] = [dict(ENV)]
    return document


@pytest.fixture
def alpha(k8s: RunningCluster, hub_server: HubServer, settings: Any) -> Iterator[Cluster]:
    """``alpha`` registered with its webhook calling the hub's TLS server (removed afterwards)."""
    settings.SIDECARHUB_WEBHOOK_CA_FILE = str(hub_server.certs.ca_cert)
    settings.SIDECARHUB_WEBHOOK_AUTO_REGISTER = False
    cluster, _ = import_kubeconfig(name=k8s.name, kubeconfig_path=k8s.kubeconfig, context=k8s.name)
    cluster = update_cluster(cluster.pk, changes={"webhook_url": hub_server.url})
    cluster = trust_sandbox_apiserver(cluster, k8s)
    register_webhook(cluster.pk)
    try:
        yield cluster
    finally:
        with contextlib.suppress(ApiException):
            client.AdmissionregistrationV1Api(k8s.api_client).delete_mutating_webhook_configuration(
                WEBHOOK_CONFIGURATION_NAME, _preload_content=False
            )


def _agent(pod: dict[str, Any]) -> dict[str, Any] | None:
    spec = pod.get("spec") or {}
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    return next((c for c in containers if c["name"] == AGENT), None)


def _is_new(variant: str, pod: dict[str, Any]) -> bool:
    """The pod carries revision 2's sidecar."""
    agent = _agent(pod)
    if agent is None:
        return False
    if variant == "native":
        return bool(agent.get("image") == NEW_IMAGE and agent.get("restartPolicy") == "Always")
    return ENV in (agent.get("env") or [])


def _dry_run_pod(running: RunningCluster, namespace: str) -> dict[str, Any]:
    """What the cluster's webhook does to a pod created now."""
    created: Any = running.core.create_namespaced_pod(
        namespace,
        make_pod(f"probe-{time.monotonic_ns() % 10**8}", _labels(namespace)),  # type: ignore[arg-type]  # a dict is sent as is
        _preload_content=False,
        dry_run="All",
    )
    return dict(json.loads(created.data))


def _create_workload(running: RunningCluster, namespace: str, kind: str, name: str, replicas: int) -> None:
    labels = {**_labels(namespace), "workload": name}
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
        },
    }
    body = {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}
    if kind == "StatefulSet":
        spec["serviceName"] = name
        running.apps.create_namespaced_stateful_set(namespace, body, _preload_content=False)  # type: ignore[arg-type]  # a dict is sent as is
    else:
        running.apps.create_namespaced_deployment(namespace, body, _preload_content=False)  # type: ignore[arg-type]  # a dict is sent as is


def _pods(running: RunningCluster, namespace: str) -> list[dict[str, Any]]:
    response: Any = running.core.list_namespaced_pod(namespace, _preload_content=False)
    return [
        pod
        for pod in json.loads(response.data)["items"]
        if not (pod.get("metadata") or {}).get("deletionTimestamp")
    ]


def _ready(pod: dict[str, Any]) -> bool:
    conditions = {c["type"]: c["status"] for c in (pod.get("status") or {}).get("conditions") or []}
    return conditions.get("Ready") == "True"


def _wait_pods(
    running: RunningCluster, namespace: str, count: int, variant: str, *, new: bool, what: str
) -> float:
    """Seconds until exactly ``count`` ready pods run, each with (or without) revision 2's sidecar."""
    started = time.monotonic()

    def done() -> bool:
        pods = _pods(running, namespace)
        return len(pods) == count and all(
            _ready(pod) and _agent(pod) is not None and _is_new(variant, pod) == new for pod in pods
        )

    wait_for(done, timeout_seconds=120, interval_seconds=0.25, what=what)
    return time.monotonic() - started


def _reload(rollout: Rollout) -> Rollout:
    return Rollout.objects.get(pk=rollout.pk)


@pytest.mark.parametrize("variant", ["env", "native"])
def test_an_approved_restart_replaces_every_pod_with_the_webhooks_new_revision(
    variant: str,
    k8s: RunningCluster,
    k8s_namespace: str,
    alpha: Cluster,
    celery_worker_process: subprocess.Popen[bytes],
) -> None:
    namespace = k8s_namespace
    author: User = make_user("author", "rollouts.operate_rollout")
    approver: User = make_user("approver", "rollouts.approve_rolloutstep", "rollouts.operate_rollout")

    # Revision 1 (no env) is served at once; the workloads' pods get it from the webhook.
    row = create_sidecarset(_document(variant, namespace, new=False), actor=author)
    create_target(row.pk, cluster_id=alpha.pk)
    first = publish_sidecarset(NAME, actor=author)
    wait_for(
        lambda: _agent(_dry_run_pod(k8s, namespace)) is not None,
        timeout_seconds=30,
        interval_seconds=0.2,
        what="the webhook injecting revision 1",
    )
    _create_workload(k8s, namespace, "Deployment", "web", 3)
    _create_workload(k8s, namespace, "StatefulSet", "db", 2)
    seconds = _wait_pods(k8s, namespace, 5, variant, new=False, what="5 ready pods on revision 1")
    print(f"\n[{variant}] workloads created → 5 ready pods injected with revision 1: {seconds:.2f}s")
    before = {pod["metadata"]["uid"]: pod["metadata"]["name"] for pod in _pods(k8s, namespace)}

    # Revision 2 changes the sidecar's env (or the native sidecar's image): not in place; its
    # gate opens on approval.
    update_sidecarset(
        NAME, source=_document(variant, namespace, new=True), actor=author, expected_version=None
    )
    second = publish_sidecarset(NAME, actor=author)
    source: Any = wait_for(
        lambda: Rollout.objects.filter(cluster=alpha, to_revision=second, kind=RolloutKind.UPDATE).first(),
        timeout_seconds=30,
        what="the release's rollout",
    )
    assert not source.in_place
    gate: Any = wait_for(
        lambda: RolloutStep.objects.filter(rollout=source, state=StepState.AWAITING_APPROVAL).first(),
        timeout_seconds=60,
        what="the release's gate awaiting approval",
    )
    assert not _is_new(variant, _dry_run_pod(k8s, namespace))  # revision 1 until the gate opens
    approve_step(gate.pk, actor=approver, comment="env change")
    started = time.monotonic()
    wait_for(
        lambda: _reload(source).state == RolloutState.COMPLETED,
        timeout_seconds=60,
        what="the release completed",
    )
    print(f"gate approved → release completed: {time.monotonic() - started:.2f}s")
    source = _reload(source)
    assert source.outcome == RolloutOutcome.NEEDS_RECREATE and source.needs_recreate == 5, source.reason
    placement = SidecarSetPlacement.objects.get(sidecarset_name=NAME, cluster=alpha)
    assert placement.serving_revision_id == second.pk != first.pk
    wait_for(
        lambda: _is_new(variant, _dry_run_pod(k8s, namespace)),
        timeout_seconds=10,
        interval_seconds=0.1,
        what="the webhook injecting revision 2",
    )
    [release] = [item for item in releases_of(row.pk).releases if item.revision == second.number]
    assert release.stage == ReleaseStage.NEEDS_RECREATE and release.needs_recreate == 5
    assert all(not _is_new(variant, pod) for pod in _pods(k8s, namespace))  # nothing recreated by itself

    # The restart: two steps, each approved by someone other than its author.
    started = time.monotonic()
    restart = start_restart(source.pk, actor=author, steps=[1, "100%"], reason="new env")
    approvals: list[float] = []

    def approve_what_waits() -> bool:
        for step in RolloutStep.objects.filter(rollout=restart, state=StepState.AWAITING_APPROVAL):
            approve_step(step.pk, actor=approver)
            approvals.append(time.monotonic() - started)
        return _reload(restart).state == RolloutState.COMPLETED

    wait_for(approve_what_waits, timeout_seconds=240, interval_seconds=0.25, what="the restart completed")
    print(
        f"restart started → completed: {time.monotonic() - started:.2f}s "
        f"(steps approved at {', '.join(f'{value:.2f}s' for value in approvals)})"
    )
    assert len(approvals) == 2
    assert _reload(restart).outcome == RolloutOutcome.SUCCEEDED

    # Every new pod carries revision 2's sidecar, injected by the webhook (the templates have none).
    seconds = _wait_pods(k8s, namespace, 5, variant, new=True, what="5 ready pods on revision 2")
    print(f"restart completed → 5 ready pods on revision 2: {seconds:.2f}s")
    after = _pods(k8s, namespace)
    assert not ({pod["metadata"]["uid"] for pod in after} & set(before))
    rows = list(PodUpdate.objects.filter(rollout=restart))
    assert len(rows) == 5 and {row.outcome for row in rows} == {PodUpdateOutcome.RECREATED}
    assert {row.pod_uid for row in rows} == set(before)
    assert (
        sorted((row.workload_kind, row.workload_name) for row in rows)
        == [("Deployment", "web")] * 3 + [("StatefulSet", "db")] * 2
    )

    # The release no longer says pods need recreate: in the rollout, the fleet view, the releases.
    source = _reload(source)
    assert source.needs_recreate == 0 and source.outcome == RolloutOutcome.SUCCEEDED, source.reason
    [cluster_row] = fleet_of(row.pk).clusters
    assert cluster_row.needs_recreate == 0
    [release] = [item for item in releases_of(row.pk).releases if item.revision == second.number]
    assert release.needs_recreate == 0 and release.stage == ReleaseStage.COMPLETED, release.stage_text
