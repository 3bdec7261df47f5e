"""Pods as a kube-apiserver serves them, and a local server that lists them the way it does.

``as_served`` dresses a planner-shaped pod (``plan_round.build_pods``: the fields the predicates
read) in everything else a real apiserver returns for a ReplicaSet's pod with an injected sidecar:
``managedFields`` of the controller and the kubelet, generateName and ownerReferences, volumes,
env, resources, probes, tolerations, IPs, five conditions and full container states. The shape
and the sizes follow ``kubectl get pod -o json`` of such a pod on Kubernetes 1.31 (≈ 9 KB of
JSON each with two containers); only the values differ per pod, as in a real list.

``PodListServer`` answers ``GET /api/v1/pods?limit=N&continue=T`` with pre-rendered pages
(``PodList`` JSON, ``metadata.continue`` as the apiserver pages; an empty list for the
``WARM_UP_SELECTOR`` label selector), on a thread, over plain HTTP,
so a ``KubeClient`` lists them through its usual call path. It is the cheapest possible
apiserver (the bytes are ready), so a list call timed against it is a lower bound of a real one.
"""

from __future__ import annotations

import http.server
import threading
import urllib.parse
from typing import Any

import orjson

__all__ = ["WARM_UP_SELECTOR", "PodListServer", "as_served"]

# A list with this label selector is answered with no pods (a worker's warm-up call).
WARM_UP_SELECTOR = "bench-warm-up=1"

Json = dict[str, Any]


def _managed_fields(stamp: str, containers: list[str]) -> list[Json]:
    spec_containers: Json = {
        f'k:{{"name":"{name}"}}': {
            ".": {},
            "f:env": {'k:{"name":"LOG_LEVEL"}': {".": {}, "f:name": {}, "f:value": {}}},
            "f:image": {},
            "f:imagePullPolicy": {},
            "f:name": {},
            "f:ports": {'k:{"containerPort":8080,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}},
            "f:readinessProbe": {".": {}, "f:httpGet": {".": {}, "f:path": {}, "f:port": {}}},
            "f:resources": {".": {}, "f:limits": {".": {}, "f:memory": {}}, "f:requests": {}},
            "f:terminationMessagePath": {},
            "f:terminationMessagePolicy": {},
            "f:volumeMounts": {},
        }
        for name in containers
    }
    return [
        {
            "manager": "kube-controller-manager",
            "operation": "Update",
            "apiVersion": "v1",
            "time": stamp,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {
                    "f:generateName": {},
                    "f:labels": {".": {}, "f:app": {}, "f:pod-template-hash": {}, "f:zone": {}},
                    "f:ownerReferences": {".": {}, 'k:{"uid":"7d1c"}': {}},
                },
                "f:spec": {
                    "f:containers": spec_containers,
                    "f:dnsPolicy": {},
                    "f:enableServiceLinks": {},
                    "f:restartPolicy": {},
                    "f:schedulerName": {},
                    "f:securityContext": {},
                    "f:terminationGracePeriodSeconds": {},
                },
            },
        },
        {
            "manager": "kubelet",
            "operation": "Update",
            "apiVersion": "v1",
            "time": stamp,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:status": {
                    "f:conditions": {
                        f'k:{{"type":"{kind}"}}': {
                            ".": {},
                            "f:lastProbeTime": {},
                            "f:lastTransitionTime": {},
                            "f:status": {},
                            "f:type": {},
                        }
                        for kind in ("ContainersReady", "Initialized", "PodReadyToStartContainers", "Ready")
                    },
                    "f:containerStatuses": {},
                    "f:hostIP": {},
                    "f:hostIPs": {},
                    "f:phase": {},
                    "f:podIP": {},
                    "f:podIPs": {".": {}, 'k:{"ip":"10.244.1.7"}': {".": {}, "f:ip": {}}},
                    "f:startTime": {},
                }
            },
            "subresource": "status",
        },
    ]


def _container(container: Json, index: int) -> Json:
    name = container["name"]
    return {
        **container,
        "env": [
            {"name": "LOG_LEVEL", "value": "info"},
            {
                "name": "POD_NAME",
                "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
            },
        ],
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "resources": {"limits": {"memory": "256Mi"}, "requests": {"cpu": "50m", "memory": "128Mi"}},
        "readinessProbe": {
            "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
            "timeoutSeconds": 1,
            "periodSeconds": 10,
            "successThreshold": 1,
            "failureThreshold": 3,
        },
        "volumeMounts": [
            {
                "name": f"kube-api-access-{index % 99991:05d}",
                "readOnly": True,
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
            },
            {"name": "data", "mountPath": f"/var/lib/{name}"},
        ],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
    }


def _container_status(status: Json, stamp: str, index: int) -> Json:
    return {
        **status,
        "state": {"running": {"startedAt": stamp}},
        "lastState": {},
        "started": bool(status.get("ready")),
        "containerID": f"containerd://{index:08x}{'f' * 56}",
        "volumeMounts": [
            {
                "name": f"kube-api-access-{index % 99991:05d}",
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                "readOnly": True,
                "recursiveReadOnly": "Disabled",
            },
        ],
    }


def as_served(pod: Json, index: int) -> Json:
    """``pod`` with every field a kube-apiserver adds to a ReplicaSet's pod (see the module)."""
    metadata, spec, status = pod["metadata"], pod["spec"], pod["status"]
    stamp = metadata["creationTimestamp"]
    ready = next((c for c in status["conditions"] if c["type"] == "Ready"), {"status": "True"})
    conditions = [
        {"type": kind, "status": "True", "lastProbeTime": None, "lastTransitionTime": stamp}
        for kind in ("PodReadyToStartContainers", "Initialized")
    ] + [
        {**ready, "lastProbeTime": None},
        {
            "type": "ContainersReady",
            "status": ready["status"],
            "lastProbeTime": None,
            "lastTransitionTime": stamp,
        },
        {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": stamp},
    ]
    ip = f"10.{index // 65536 % 256}.{index // 256 % 256}.{index % 256}"
    host_ip = f"172.18.{index % 300 // 256}.{index % 256}"
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            **metadata,
            "generateName": metadata["name"].rsplit("-", 1)[0] + "-7d9f8b6c4-",
            "labels": {**metadata["labels"], "pod-template-hash": "7d9f8b6c4"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": metadata["name"].rsplit("-", 1)[0] + "-7d9f8b6c4",
                    "uid": f"7d1c{index % 7:04d}-0000-4000-8000-000000000000",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            "managedFields": _managed_fields(stamp, [c["name"] for c in spec["containers"]]),
        },
        "spec": {
            **spec,
            "containers": [_container(c, index) for c in spec["containers"]],
            "volumes": [
                {"name": "data", "emptyDir": {}},
                {
                    "name": f"kube-api-access-{index % 99991:05d}",
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
                                        {
                                            "path": "namespace",
                                            "fieldRef": {
                                                "apiVersion": "v1",
                                                "fieldPath": "metadata.namespace",
                                            },
                                        }
                                    ]
                                }
                            },
                        ],
                        "defaultMode": 420,
                    },
                },
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "serviceAccount": "default",
            "securityContext": {},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
            ],
            "priority": 0,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": {
            **status,
            "conditions": conditions,
            "containerStatuses": [_container_status(s, stamp, index) for s in status["containerStatuses"]],
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": stamp,
            "qosClass": "Burstable",
        },
    }


class PodListServer:
    """Serves ``pods`` as the apiserver lists them, paged (see the module docstring)."""

    def __init__(self, pods: list[Json], *, page_size: int = 500) -> None:
        self.pages: list[bytes] = []
        for start in range(0, len(pods), page_size):
            list_metadata = {"resourceVersion": "99999"}
            if start + page_size < len(pods):
                list_metadata["continue"] = str(start + page_size)
            body = {
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": list_metadata,
                "items": pods[start : start + page_size],
            }
            self.pages.append(orjson.dumps(body))
        self._serve(page_size)

    @classmethod
    def of_pages(cls, pages: list[bytes], *, page_size: int = 500) -> PodListServer:
        """A server of pages already rendered (each ``page_size`` pods; ``continue`` not set)."""
        server = cls.__new__(cls)
        server.pages = pages
        server._serve(page_size)
        return server

    def _serve(self, page_size: int) -> None:
        self.page_size = page_size
        self.body_bytes = sum(len(page) for page in self.pages)
        server = self
        self.requests = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                start = int((query.get("continue") or ["0"])[0])
                if WARM_UP_SELECTOR in (query.get("labelSelector") or [""])[0]:
                    body = b'{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[]}'
                else:
                    body = server.pages[start // server.page_size]
                server.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
