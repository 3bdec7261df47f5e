"""The admission benchmarks' data: SidecarSets published to a cluster, pods and AdmissionReviews.

Shared by ``admission_handler.py`` (the handler in process) and ``apiserver_create.py`` (pod
CREATE through a sandbox apiserver and the hub's webhook). Django must be set up before this
module is imported (it imports the hub's models and services).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from clusters import enqueue
from clusters.models import Cluster, SidecarSetPlacement, SidecarSetTarget
from clusters.push import create_target, sync_placements
from sidecarhub.models import SidecarSet, SidecarSetRevision
from sidecarhub.services import create_sidecarset, publish_sidecarset
from sidecarhub.sidecarset import hash_without_images, parse_sidecarset, revision_hash

ROOT = Path(__file__).resolve().parent.parent.parent
NAMESPACE = "shop"
NAMESPACE_LABELS = {"kubernetes.io/metadata.name": NAMESPACE, "team": "checkout"}
POD_LABELS = {"app": "checkout", "tier": "web", "pod-template-hash": "7d9f8c6b5"}
APP_CONTAINERS = ("checkout", "cache-warmer")

Json = dict[str, Any]

__all__ = [
    "APP_CONTAINERS",
    "NAMESPACE",
    "NAMESPACE_LABELS",
    "POD_LABELS",
    "ROOT",
    "Json",
    "clean_up",
    "code_commit",
    "figures",
    "load_average",
    "matching_sidecars",
    "percentile",
    "pod_object",
    "publish_sidecarsets",
    "pushes_not_queued",
    "review_body",
    "row",
    "seed_non_matching",
    "sidecarset_document",
]


def sidecarset_document(name: str, index: int, *, matching: bool) -> Json:
    """A realistic SidecarSet: one sidecar with env, resources and a mount of its own volume."""
    selector: Json = (
        {
            "matchLabels": {"app": "checkout"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}],
        }
        if matching
        else {"matchLabels": {"app": f"service-{index:03d}"}}
    )
    volume = f"agent-{index:03d}-config"
    return {
        "apiVersion": "apps.kruise.io/v1beta1",
        "kind": "SidecarSet",
        "metadata": {"name": name, "labels": {"team": f"t{index % 20}"}},
        "spec": {
            "selector": selector,
            "containers": [
                {
                    "name": f"agent-{index:03d}",
                    "image": f"registry.example.com/platform/agent-{index:03d}:1.{index}.0",
                    "args": ["--config", "/etc/agent/config.yaml"],
                    "env": [
                        {"name": "AGENT_MODE", "value": "sidecar"},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    ],
                    "ports": [{"name": "metrics", "containerPort": 9000 + index, "protocol": "TCP"}],
                    "volumeMounts": [{"name": volume, "mountPath": "/etc/agent", "readOnly": True}],
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "32Mi"},
                        "limits": {"cpu": "100m", "memory": "64Mi"},
                    },
                }
            ],
            "volumes": [{"name": volume, "configMap": {"name": f"agent-{index:03d}"}}],
            "updateStrategy": {"type": "RollingUpdate", "maxUnavailable": "10%"},
        },
    }


@contextmanager
def pushes_not_queued() -> Iterator[None]:
    """The cluster is never contacted: drop the push tasks the placements would queue."""
    original = enqueue.push
    enqueue.push = lambda revision_id, cluster_id: None
    try:
        yield
    finally:
        enqueue.push = original


def matching_sidecars(count: int, matching: int) -> set[str]:
    """The sidecar names the pod gets when ``matching`` of ``count`` SidecarSets select it."""
    return {f"agent-{index:03d}" for index in range(0, count, count // matching)}


def publish_sidecarsets(cluster: Cluster, prefix: str, count: int, matching: int) -> None:
    """``count`` SidecarSets named ``<prefix>-NNN``, targeting ``cluster``, published and served
    there; ``matching`` of them (spread evenly) select the benchmark pod. No push is queued."""
    chosen = set(range(0, count, count // matching))
    with pushes_not_queued():
        for index in range(count):
            name = f"{prefix}-{index:03d}"
            document = sidecarset_document(name, index, matching=index in chosen)
            sidecarset = create_sidecarset(document, actor=None)
            create_target(sidecarset_id=sidecarset.pk, cluster_id=cluster.pk)
            publish_sidecarset(name, actor=None)
        serving = set(
            SidecarSetPlacement.objects.filter(
                cluster=cluster, should_exist=True, serving_revision__isnull=False
            ).values_list("sidecarset_id", flat=True)
        )
        for sidecarset_id in SidecarSet.objects.filter(name__startswith=f"{prefix}-").values_list(
            "pk", flat=True
        ):
            if sidecarset_id not in serving:  # the publish's on-commit hooks did not run
                with transaction.atomic():
                    sync_placements(sidecarset_id)
    served = SidecarSetPlacement.objects.filter(
        cluster=cluster, should_exist=True, serving_revision__isnull=False
    ).count()
    assert served == count, f"{served} placements serve a revision, expected {count}"


def seed_non_matching(cluster: Cluster, prefix: str, start: int, count: int) -> None:
    """SidecarSets ``<prefix>-<start>`` … not selecting the pod, written as rows in bulk: each
    with the row, revision 1 (current), target and serving placement that create + target +
    publish leave (no validation, conflict check or change log: those cost ≈ 0.2 s a SidecarSet
    with 1,000 stored, and admission reads only these rows)."""
    now = timezone.now()
    cores = [
        parse_sidecarset(sidecarset_document(f"{prefix}-{index:03d}", index, matching=False))
        for index in range(start, start + count)
    ]
    documents = [core.to_document() for core in cores]
    rows = SidecarSet.objects.bulk_create(
        SidecarSet(
            name=core.name,
            labels=document["metadata"].get("labels", {}),
            annotations=document["metadata"].get("annotations", {}),
            spec=document["spec"],
        )
        for core, document in zip(cores, documents, strict=True)
    )
    revisions = SidecarSetRevision.objects.bulk_create(
        SidecarSetRevision(
            sidecarset=row,
            number=1,
            name=f"{row.name}-1",
            revision_hash=revision_hash(core),
            hash_without_images=hash_without_images(core),
            custom_version=core.custom_version or "",
            document=document,
            author_name="system",
        )
        for row, core, document in zip(rows, cores, documents, strict=True)
    )
    for row, revision in zip(rows, revisions, strict=True):
        row.current_revision = revision
    SidecarSet.objects.bulk_update(rows, ["current_revision"])
    SidecarSetTarget.objects.bulk_create(SidecarSetTarget(sidecarset=row, cluster=cluster) for row in rows)
    SidecarSetPlacement.objects.bulk_create(
        SidecarSetPlacement(
            sidecarset=row,
            sidecarset_name=row.name,
            cluster=cluster,
            serving_revision=revision,
            serving_since=now,
        )
        for row, revision in zip(rows, revisions, strict=True)
    )


def clean_up(prefix: str, cluster_name: str) -> None:
    with pushes_not_queued():
        Cluster.objects.filter(name=cluster_name).delete()
        SidecarSet.objects.filter(name__startswith=f"{prefix}-").delete()


def pod_object(suffix: str) -> Json:
    """A pod as a ReplicaSet creates it, after the ServiceAccount admission plugin."""
    token_volume = f"kube-api-access-{suffix[:5]}"
    token_mount = {
        "name": token_volume,
        "readOnly": True,
        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
    }

    def app_container(name: str, image: str, port: int) -> Json:
        return {
            "name": name,
            "image": image,
            "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
            "env": [
                {"name": "LOG_LEVEL", "value": "info"},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            ],
            "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": port}, "periodSeconds": 5},
            "volumeMounts": [token_mount],
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "imagePullPolicy": "IfNotPresent",
        }

    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "generateName": "checkout-7d9f8c6b5-",
            "labels": dict(POD_LABELS),
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-12-01T10:00:00Z"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "checkout-7d9f8c6b5",
                    "uid": str(uuid.UUID(int=1)),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "volumes": [
                {
                    "name": token_volume,
                    "projected": {
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {
                                "configMap": {
                                    "name": "kube-root-ca.crt",
                                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                }
                            },
                            {
                                "downwardAPI": {
                                    "items": [
                                        {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}
                                    ]
                                }
                            },
                        ],
                        "defaultMode": 420,
                    },
                }
            ],
            "containers": [
                app_container("checkout", "registry.example.com/shop/checkout:4.2.1", 8080),
                app_container("cache-warmer", "registry.example.com/shop/cache-warmer:1.0.3", 8081),
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "checkout",
            "securityContext": {},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
            ],
            "priority": 0,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": {},
    }


def review_body(index: int, namespace: str = NAMESPACE) -> bytes:
    """JSON bytes of an AdmissionReview v1 of a pod CREATE, as the apiserver posts it."""
    uid = str(uuid.UUID(int=index + 1000))
    return json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": uid,
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                "requestResource": {"group": "", "version": "v1", "resource": "pods"},
                "name": "",
                "namespace": namespace,
                "operation": "CREATE",
                "userInfo": {
                    "username": "system:serviceaccount:kube-system:replicaset-controller",
                    "uid": str(uuid.UUID(int=2)),
                    "groups": [
                        "system:serviceaccounts",
                        "system:serviceaccounts:kube-system",
                        "system:authenticated",
                    ],
                },
                "object": pod_object(f"{index:05d}"),
                "oldObject": None,
                "dryRun": False,
                "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
            },
        }
    ).encode()


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def figures(samples: list[float]) -> tuple[float, float, float, float]:
    """Median, p95, p99 and maximum (the columns of every admission benchmark's tables)."""
    return (statistics.median(samples), percentile(samples, 0.95), percentile(samples, 0.99), max(samples))


def row(label: str, samples: list[float]) -> str:
    return f"  {label:<40}" + "".join(f"{value * 1000:>8.3f}" for value in figures(samples))


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def code_commit() -> str:
    try:
        found = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return found.stdout.strip() + ("+changes" if dirty.strip() else "")
