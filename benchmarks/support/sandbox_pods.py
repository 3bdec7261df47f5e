"""A sandbox kube-apiserver holding N pods, for timing the real list call (``plan_round.py
--apiserver``).

No controller-manager and no pod simulator: nothing changes the pods once stored (no garbage
collector deleting pods whose owner or node does not exist, no kubelet), so the list cost is the
apiserver's own (etcd read, conversion, serialization). Each pod is created dressed as
``served_pods.as_served`` dresses it (managedFields, volumes, probes, tolerations...), then its
status is written through the ``status`` subresource (a create resets it to Pending), so the
listed pods carry the rollout of ``plan_round.build_pods``. Writes go concurrently through a
thread pool over one kept-alive connection pool.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import urllib3

from sandbox.cluster import SandboxCluster, find_binaries

Json = dict[str, Any]
WRITERS = 8


class SandboxPods:
    """A started sandbox apiserver and an HTTP pool authenticated as its admin."""

    def __init__(self, name: str, workdir: Path) -> None:
        self.sandbox = SandboxCluster(
            name=name, workdir=workdir, bin_dir=find_binaries(), with_controller_manager=False
        )
        self.sandbox.start()
        assert self.sandbox.pki is not None
        self.token = self.sandbox.pki.admin_token
        self.ca_bundle = self.sandbox.pki.ca_cert.read_text()
        self.http = urllib3.PoolManager(
            maxsize=WRITERS, ca_certs=str(self.sandbox.pki.ca_cert), retries=False
        )

    @property
    def server(self) -> str:
        return self.sandbox.server

    def close(self) -> None:
        self.http.clear()
        self.sandbox.stop()

    def _write(self, method: str, path: str, body: Json, content_type: str = "application/json") -> None:
        response = self.http.request(
            method,
            self.server + path,
            body=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": content_type},
            timeout=60,
        )
        if response.status >= 300 and response.status != 409:  # 409: already there (namespace)
            raise SystemExit(f"{method} {path}: HTTP {response.status} {response.data[:300]!r}")

    def store(self, served: list[Json]) -> None:
        """Create each of ``served`` (pods as ``as_served`` dresses them) and write its status."""
        namespaces = sorted({pod["metadata"]["namespace"] for pod in served})
        for namespace in namespaces:
            self._write("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
            # No controller-manager creates it, and the ServiceAccount admission plugin needs it.
            self._write(
                "POST",
                f"/api/v1/namespaces/{namespace}/serviceaccounts",
                {"metadata": {"name": "default"}},
            )
        with ThreadPoolExecutor(WRITERS) as pool:
            for _ in pool.map(self._store_one, served):
                pass

    def _store_one(self, pod: Json) -> None:
        metadata = {
            key: value
            for key, value in pod["metadata"].items()
            # Set by the apiserver; ownerReferences name a ReplicaSet that does not exist.
            if key not in ("uid", "resourceVersion", "creationTimestamp", "managedFields", "ownerReferences")
        }
        namespace, name = metadata["namespace"], metadata["name"]
        self._write(
            "POST",
            f"/api/v1/namespaces/{namespace}/pods",
            {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod["spec"]},
        )
        self._write(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/{name}/status",
            {"status": pod["status"]},
            "application/merge-patch+json",
        )
