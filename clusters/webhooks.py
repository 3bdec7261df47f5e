"""Registration of the hub's pod admission webhook in a cluster (issue 5 §3).

``register_webhook(cluster_id)`` server-side applies (field manager ``sidecarhub``) one
MutatingWebhookConfiguration, ``sidecarhub-injection``, whose single webhook
``inject.sidecarhub.io`` points at ``<webhook url>/admission/v1/clusters/<name>/pods``:

- the URL base is the cluster's ``webhook_url``, else ``SIDECARHUB_WEBHOOK_URL``;
- ``caBundle`` is the PEM of ``SIDECARHUB_WEBHOOK_CA_FILE`` (omitted when unset: system roots);
- ``failurePolicy`` and ``timeoutSeconds`` from the cluster (default Ignore: pods created while
  the hub is down get no sidecars and are reported as drift), ``sideEffects: None``,
  ``admissionReviewVersions: [v1]``, ``reinvocationPolicy: Never``;
- rules: CREATE of ``pods`` only (decision 10);
- decision 6 in the apiserver itself, so those pods never reach the hub: a ``namespaceSelector``
  excluding ``kube-system``, ``kube-public`` and namespaces labelled ``sidecarhub.io/inject=disabled``,
  and a CEL ``matchCondition`` skipping pods annotated ``sidecarhub.io/inject: "false"``.

Idempotent (apply with ``force``); ``delete_webhook_configuration`` deletes it. Errors are the kube
client's ``ClusterUnreachable`` / ``ClusterApiError`` and ``WebhookNotConfigured``.

The webhook configuration cannot carry a credential: the apiserver's own admission configuration
does (``clusters.admission_config``); ``apiserver_admission_config`` gives a cluster's files.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from kubernetes import client

from clusters.admission_config import DEFAULT_KUBECONFIG_PATH, AdmissionConfigFiles, admission_config_files
from clusters.kube import (
    APPLY_PATCH_CONTENT_TYPE,
    FIELD_MANAGER,
    ClusterApiError,
    KubeClient,
    open_kube_client,
)
from clusters.models import Cluster
from clusters.resources import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from sidecarhub.sidecarset.annotations import (
    ANNOTATION_INJECT_OPT_OUT,
    EXCLUDED_NAMESPACES,
    NAMESPACE_INJECT_DISABLED,
    NAMESPACE_INJECT_LABEL,
)
from sidecarhub.sidecarset.model import NAMESPACE_NAME_LABEL

__all__ = [
    "WEBHOOK_CONFIGURATION_NAME",
    "WEBHOOK_NAME",
    "WebhookNotConfigured",
    "WebhookRegistration",
    "admission_url",
    "apiserver_admission_config",
    "delete_webhook_configuration",
    "register_webhook",
    "webhook_configuration",
]

WEBHOOK_CONFIGURATION_NAME = "sidecarhub-injection"
WEBHOOK_NAME = "inject.sidecarhub.io"


class WebhookNotConfigured(ValueError):
    """The hub cannot say where or how the cluster reaches it (no URL, unreadable CA file)."""


@dataclass(frozen=True)
class WebhookRegistration:
    """What one registration applied."""

    cluster_name: str
    configuration_name: str
    url: str
    failure_policy: str
    timeout_seconds: int


def admission_url(cluster: Cluster) -> str:
    """``<base>/admission/v1/clusters/<name>/pods`` (base: the cluster's, else the hub's)."""
    base = (cluster.webhook_url or str(getattr(settings, "SIDECARHUB_WEBHOOK_URL", "") or "")).rstrip("/")
    if not base:
        raise WebhookNotConfigured(
            f"cluster {cluster.name} has no webhook_url and SIDECARHUB_WEBHOOK_URL is not set"
        )
    if not base.startswith("https://"):
        raise WebhookNotConfigured(f"cluster {cluster.name}: the webhook URL must be https:// (got {base})")
    return f"{base}/admission/v1/clusters/{cluster.name}/pods"


def apiserver_admission_config(
    cluster: Cluster, token: str, *, kubeconfig_path: str = DEFAULT_KUBECONFIG_PATH
) -> AdmissionConfigFiles:
    """The AdmissionConfiguration and webhook kubeconfig that make ``cluster``'s apiserver present
    ``token`` to the hub's webhook (its user entry names the webhook URL's host:port).
    ``WebhookNotConfigured`` when the cluster has no webhook URL."""
    return admission_config_files(admission_url(cluster), token, kubeconfig_path=kubeconfig_path)


def _ca_bundle() -> str:
    path = str(getattr(settings, "SIDECARHUB_WEBHOOK_CA_FILE", "") or "")
    if not path:
        return ""
    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise WebhookNotConfigured(f"SIDECARHUB_WEBHOOK_CA_FILE cannot be read: {exc.strerror}") from None
    return base64.b64encode(pem).decode()


def webhook_configuration(cluster: Cluster) -> dict[str, Any]:
    """The MutatingWebhookConfiguration for ``cluster`` (plain data, as applied)."""
    client_config: dict[str, Any] = {"url": admission_url(cluster)}
    ca_bundle = _ca_bundle()
    if ca_bundle:
        client_config["caBundle"] = ca_bundle
    opt_out = ANNOTATION_INJECT_OPT_OUT
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {
            "name": WEBHOOK_CONFIGURATION_NAME,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE},
        },
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": cluster.webhook_failure_policy,
                "timeoutSeconds": int(cluster.webhook_timeout_seconds),
                "reinvocationPolicy": "Never",
                "matchPolicy": "Equivalent",
                "clientConfig": client_config,
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
                "namespaceSelector": {
                    "matchExpressions": [
                        {
                            "key": NAMESPACE_NAME_LABEL,
                            "operator": "NotIn",
                            "values": sorted(EXCLUDED_NAMESPACES),
                        },
                        {
                            "key": NAMESPACE_INJECT_LABEL,
                            "operator": "NotIn",
                            "values": [NAMESPACE_INJECT_DISABLED],
                        },
                    ]
                },
                "matchConditions": [
                    {
                        "name": "pod-not-opted-out",
                        "expression": (
                            "!has(object.metadata.annotations) || "
                            f"!('{opt_out}' in object.metadata.annotations) || "
                            f"object.metadata.annotations['{opt_out}'] != 'false'"
                        ),
                    }
                ],
            }
        ],
    }


def _apply(kube: KubeClient, body: dict[str, Any]) -> dict[str, Any]:
    return kube.call(
        client.AdmissionregistrationV1Api(kube.api_client).patch_mutating_webhook_configuration,
        body["metadata"]["name"],
        body,
        field_manager=FIELD_MANAGER,
        force=True,
        _content_type=APPLY_PATCH_CONTENT_TYPE,
        what=f"apply MutatingWebhookConfiguration {body['metadata']['name']}",
    )


def register_webhook(cluster_id: int) -> WebhookRegistration:
    """Apply the webhook configuration to one cluster (see the module docstring). Idempotent."""
    cluster = Cluster.objects.get(pk=cluster_id)
    body = webhook_configuration(cluster)
    with open_kube_client(cluster) as kube:
        _apply(kube, body)
    webhook = body["webhooks"][0]
    return WebhookRegistration(
        cluster_name=cluster.name,
        configuration_name=WEBHOOK_CONFIGURATION_NAME,
        url=webhook["clientConfig"]["url"],
        failure_policy=webhook["failurePolicy"],
        timeout_seconds=webhook["timeoutSeconds"],
    )


def delete_webhook_configuration(kube: KubeClient) -> bool:
    """Delete the hub's webhook configuration from ``kube``'s cluster; False when it was already
    gone (idempotent). Used when a cluster is deleted from the hub (``services.delete_cluster``)."""
    try:
        kube.call(
            client.AdmissionregistrationV1Api(kube.api_client).delete_mutating_webhook_configuration,
            WEBHOOK_CONFIGURATION_NAME,
            what=f"delete MutatingWebhookConfiguration {WEBHOOK_CONFIGURATION_NAME}",
        )
    except ClusterApiError as exc:
        if exc.not_found:
            return False
        raise
    return True
