"""End to end with a real Celery worker: publish → one push task per (revision, cluster) →
both sandbox clusters get the resource; a crashed apiserver → failed with a readable error,
retried with backoff by the worker, applied once the apiserver is back."""

from __future__ import annotations

import subprocess
import time
import uuid
from typing import Any

import pytest

from clusters.choices import PlacementState
from clusters.models import Cluster, SidecarSetPlacement
from clusters.push import create_target
from clusters.services import import_kubeconfig
from sandbox.testing import RunningCluster, wait_for
from sidecarhub.services import create_sidecarset, publish_sidecarset, update_sidecarset
from tests.clusters.conftest import read_resource, sidecarset_document

pytestmark = [pytest.mark.k8s, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _state(name: str, cluster: str) -> tuple[str, int | None, str] | None:
    row = (
        SidecarSetPlacement.objects.filter(sidecarset_name=name, cluster__name=cluster)
        .values_list("state", "applied_revision_number", "last_error")
        .first()
    )
    return row


def test_publish_through_worker_with_an_outage(
    k8s_pair: tuple[RunningCluster, RunningCluster], celery_worker_process: subprocess.Popen[bytes]
) -> None:
    alpha_k8s, beta_k8s = k8s_pair
    import_kubeconfig(
        name="alpha", kubeconfig_path=alpha_k8s.kubeconfig, context="alpha", labels={"tier": "1"}
    )
    import_kubeconfig(
        name="beta", kubeconfig_path=beta_k8s.kubeconfig, context="beta-cert", labels={"tier": "2"}
    )
    # The worker runs the queued health checks.
    wait_for(
        lambda: Cluster.objects.filter(reachable=True).count() == 2,
        timeout_seconds=60,
        what="health checks by the worker",
    )
    assert Cluster.objects.get(name="beta").kubernetes_version.startswith("v1.")

    name = f"e2e-{uuid.uuid4().hex[:6]}"
    sidecarset = create_sidecarset(sidecarset_document(name), actor=None)
    create_target(
        sidecarset_id=sidecarset.pk,
        cluster_selector={"matchExpressions": [{"key": "tier", "operator": "Exists"}]},
    )
    started = time.monotonic()
    publish_sidecarset(name, actor=None)
    for cluster in ("alpha", "beta"):
        wait_for(
            lambda c=cluster: (_state(name, c) or ("",))[0] == PlacementState.APPLIED,  # type: ignore[misc]  # mypy cannot infer a lambda with a default argument
            timeout_seconds=60,
            what=f"push to {cluster}",
        )
    print(f"\npublish → applied in both clusters through the worker: {time.monotonic() - started:.2f}s")
    assert read_resource(alpha_k8s, name) is not None and read_resource(beta_k8s, name) is not None

    alpha_k8s.cluster.stop_apiserver()
    try:
        current = type(sidecarset).objects.get(pk=sidecarset.pk)
        # A change no pod sees (the selector): every cluster serves it at once (decision 17), so
        # the push is what is tested here, not a release's gates.
        update_sidecarset(
            name,
            source=sidecarset_document(name, app_label="api"),
            actor=None,
            expected_version=current.version,
        )
        publish_sidecarset(name, actor=None)
        failed: Any = wait_for(
            lambda: (row := _state(name, "alpha")) and row[0] == PlacementState.FAILED and row,
            timeout_seconds=60,
            what="alpha push failed",
        )
        assert "cluster alpha" in failed[2] and "connection refused" in failed[2]
        wait_for(
            lambda: (_state(name, "beta") or ("", 0))[1] == 2, timeout_seconds=60, what="beta on revision 2"
        )
    finally:
        alpha_k8s.cluster.start_apiserver()
    started = time.monotonic()
    wait_for(
        lambda: (_state(name, "alpha") or ("", 0))[:2] == (PlacementState.APPLIED, 2),
        timeout_seconds=120,
        interval_seconds=0.5,
        what="alpha push retried after the outage",
    )
    print(f"alpha applied {time.monotonic() - started:.2f}s after its apiserver came back")
    resource = read_resource(alpha_k8s, name)
    assert resource is not None
    assert resource["spec"]["selector"] == {"matchLabels": {"app": "api"}}
    placement = SidecarSetPlacement.objects.get(sidecarset_name=name, cluster__name="alpha")
    assert placement.last_error == "" and placement.failed_attempts == 0
