"""Fixtures of the clusters tests: clusters registered from the sandbox kubeconfigs, publishing
helpers, eager Celery for synchronous tests, users with and without permissions."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User

from clusters.models import Cluster
from clusters.services import import_kubeconfig
from sandbox.testing import RunningCluster
from sidecarhub.models import SidecarSetRevision
from sidecarhub.services import create_sidecarset, publish_sidecarset, update_sidecarset


def sidecarset_document(name: str, image: str = "fluentbit:2.0", app_label: str = "web") -> dict[str, Any]:
    return {
        "apiVersion": "apps.kruise.io/v1beta1",
        "kind": "SidecarSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": app_label}},
            "containers": [{"name": "log-agent", "image": image}],
        },
    }


def register(
    running: RunningCluster, name: str, context: str, labels: dict[str, str] | None = None
) -> Cluster:
    cluster, _ = import_kubeconfig(
        name=name, kubeconfig_path=running.kubeconfig, context=context, labels=labels, actor=None
    )
    return cluster


@pytest.fixture
def registered_pair(
    k8s_pair: tuple[RunningCluster, RunningCluster], django_capture_on_commit_callbacks: Any
) -> tuple[Cluster, Cluster]:
    """alpha by bearer token, beta by client certificate (the ``-cert`` context)."""
    alpha, beta = k8s_pair
    with django_capture_on_commit_callbacks(execute=False):  # skip the queued health checks
        first = register(alpha, "alpha", "alpha", {"env": "prod", "region": "eu"})
        second = register(beta, "beta", "beta-cert", {"env": "prod", "region": "us"})
    return first, second


def publish(name: str, image: str = "fluentbit:2.0", *, callbacks: Any) -> SidecarSetRevision:
    """Create (or update) and publish a SidecarSet, running the after-commit hooks."""
    from sidecarhub.models import SidecarSet

    document = sidecarset_document(name, image)
    with callbacks(execute=True):
        existing = SidecarSet.objects.filter(name=name).first()
        if existing is None:
            create_sidecarset(document, actor=None)
        else:
            update_sidecarset(name, source=document, actor=None, expected_version=existing.version)
        return publish_sidecarset(name, actor=None)


def read_resource(running: RunningCluster, name: str) -> dict[str, Any] | None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    try:
        response = client.CustomObjectsApi(running.api_client).get_cluster_custom_object(
            "sidecarhub.io", "v1beta1", "sidecarsets", name, _preload_content=False
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return json.loads(response.data)  # type: ignore[attr-defined]  # _preload_content=False: a raw urllib3 response


def kubectl(running: RunningCluster, *args: str) -> str:
    binary = Path(os.environ["SIDECARHUB_K8S_BIN"]) / "kubectl"
    return subprocess.run(
        [str(binary), "--kubeconfig", str(running.kubeconfig), "--context", running.name, *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout


def make_user(username: str, *perms: str) -> User:
    user = User.objects.create_user(username, password="pw-" + username)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return User.objects.get(pk=user.pk)  # fresh permission cache
