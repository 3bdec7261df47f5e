"""The apiserver side of the admission webhook's credential: the two files a cluster admin gives
kube-apiserver so that it presents the cluster's webhook token when it calls the hub.

- an ``AdmissionConfiguration`` (``--admission-control-config-file``) whose
  ``MutatingAdmissionWebhook`` plugin names a kubeconfig (``kubeConfigFile``);
- that kubeconfig: one ``users`` entry named as the apiserver looks it up, the ``host:port`` of the
  webhook URL (the host alone when the URL has no port), holding the ``token``. The apiserver
  sends it as ``Authorization: Bearer <token>`` on every call to that host.

Pure (no Django, no database): ``make run`` writes the sandbox's files with it before the
sandbox starts, and ``cluster webhook-token`` prints the same text for a real cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

__all__ = [
    "DEFAULT_KUBECONFIG_PATH",
    "AdmissionConfigFiles",
    "admission_config_files",
    "webhook_user_name",
]

# Where the printed snippet says to put the kubeconfig on a control-plane node (any path works).
DEFAULT_KUBECONFIG_PATH = "/etc/kubernetes/sidecarhub-webhook-kubeconfig.yaml"


def webhook_user_name(url: str) -> str:
    """The kubeconfig user name the apiserver matches for a webhook at ``url``: its host and port
    as written in the URL (``hub.example.com:8443``; ``hub.example.com`` when no port is given)."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"not a URL with a host: {url!r}")
    return parts.netloc.rpartition("@")[2]


@dataclass(frozen=True)
class AdmissionConfigFiles:
    """The two files' text (YAML). ``kubeconfig`` holds the token: ``repr`` never shows it."""

    admission_configuration: str
    kubeconfig: str = field(repr=False)
    kubeconfig_path: str


def _dump(document: dict[str, Any]) -> str:
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


def admission_config_files(
    webhook_url: str | None, token: str, *, kubeconfig_path: str = DEFAULT_KUBECONFIG_PATH
) -> AdmissionConfigFiles:
    """The AdmissionConfiguration (pointing at ``kubeconfig_path``) and the kubeconfig for a
    webhook at ``webhook_url`` (any URL on the hub's admission listener) presenting ``token``.
    ``webhook_url`` None: the user entry is ``*``, the apiserver's default for every webhook host
    (a sandbox whose hub port is not known yet; a real cluster should name the host)."""
    configuration = {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AdmissionConfiguration",
        "plugins": [
            {
                "name": "MutatingAdmissionWebhook",
                "configuration": {
                    "apiVersion": "apiserver.config.k8s.io/v1",
                    "kind": "WebhookAdmissionConfiguration",
                    "kubeConfigFile": kubeconfig_path,
                },
            }
        ],
    }
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "users": [{"name": webhook_user_name(webhook_url) if webhook_url else "*", "user": {"token": token}}],
    }
    return AdmissionConfigFiles(_dump(configuration), _dump(kubeconfig), kubeconfig_path)
