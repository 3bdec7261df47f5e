"""Set-up shared by the benchmarks that drive the hub against a sandbox cluster.

One sandbox cluster (etcd + kube-apiserver + kube-controller-manager) and the pod simulator (in
a child process by default), the cluster registered with the hub (``import_kubeconfig``, the
bearer-token context), a SidecarSet published whose annotations ask for one ``100%`` step and
maxUnavailable ``100%``, and N pods created as the admission webhook injects them (the core's
``inject()``), all Ready: ``set_up``. Used by ``patch_rate.py`` and ``step_pass.py``.

Django must be set up before this module is imported (it imports the hub's models).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.contrib.auth.models import Permission, User
from kubernetes import client, config

from clusters.models import Cluster
from clusters.push import create_target
from clusters.services import import_kubeconfig
from sandbox.cluster import SandboxCluster, find_binaries
from sandbox.simulator import PodSimulator
from sidecarhub.services import create_sidecarset, publish_sidecarset
from sidecarhub.sidecarset import InjectionCandidate, inject

ROOT = Path(__file__).resolve().parent.parent.parent
SIDECAR = "log-agent"
NAMESPACE = "bench"
Json = dict[str, Any]

__all__ = [
    "NAMESPACE",
    "ROOT",
    "SIDECAR",
    "Bench",
    "Json",
    "SimulatorProcess",
    "create_pods",
    "describe",
    "document",
    "make_user",
    "pod_list",
    "say",
    "set_up",
    "sidecar_of",
    "wait_all_ready",
    "wait_for",
]


def say(message: str) -> None:
    """A progress line on stderr, prefixed with the running script's name (``[patch_rate]``)."""
    print(f"[{Path(sys.argv[0]).stem}] {message}", file=sys.stderr, flush=True)


def wait_for(probe: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def document(name: str, image: str) -> Json:
    return {
        "apiVersion": "apps.kruise.io/v1beta1",
        "kind": "SidecarSet",
        "metadata": {
            "name": name,
            "annotations": {
                "rollouts.sidecarhub.io/steps": "100%",
                "rollouts.sidecarhub.io/max-unavailable": "100%",
            },
        },
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "containers": [{"name": SIDECAR, "image": image}],
        },
    }


def make_user(username: str) -> User:
    user = User.objects.create_user(username, password=uuid.uuid4().hex)
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="rollouts", codename="approve_rolloutstep")
    )
    return User.objects.get(pk=user.pk)


# --- the cluster and its pods ------------------------------------------------------------------


@dataclass
class Bench:
    name: str  # sandbox cluster, hub Cluster and SidecarSet
    core: client.CoreV1Api  # the raw loop's client (same context, token, as the hub's)
    cluster: Cluster
    author: User
    approver: User
    pods: int


def pod_list(core: client.CoreV1Api, name: str) -> list[Json]:
    """The bench's pods as the hub lists them (every namespace, label selector, plain JSON)."""
    response: Any = core.list_pod_for_all_namespaces(label_selector=f"app={name}", _preload_content=False)
    return list(json.loads(response.data)["items"])


def sidecar_of(pod: Json, *, status: bool) -> tuple[str | None, bool]:
    """The sidecar's spec image (``status``: status image) and whether the pod is Ready."""
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )
    if status:
        for item in (pod.get("status") or {}).get("containerStatuses") or []:
            if item["name"] == SIDECAR:
                return item.get("image"), ready and bool(item.get("ready"))
        return None, False
    for container in pod["spec"]["containers"]:
        if container["name"] == SIDECAR:
            return container["image"], ready
    return None, False


def wait_all_ready(bench: Bench, image: str, *, timeout: float) -> float:
    """Wait until every pod runs ``image`` ready; return when that was first seen (monotonic)."""

    def done() -> bool:
        pods = pod_list(bench.core, bench.name)
        return len(pods) == bench.pods and all(sidecar_of(p, status=True) == (image, True) for p in pods)

    wait_for(done, timeout=timeout, what=f"{bench.pods} pods ready on {image}", interval=0.25)
    return time.monotonic()


def create_pods(bench: Bench, revision: Any) -> None:
    candidate = InjectionCandidate.of(
        revision.to_core(), revision_name=revision.name, revision_number=revision.number
    )
    for index in range(bench.pods):
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"pod-{index:05d}", "namespace": NAMESPACE, "labels": {"app": bench.name}},
            "spec": {"containers": [{"name": "app", "image": "app:1"}]},
        }
        injected = inject(pod, {"kubernetes.io/metadata.name": NAMESPACE}, [candidate], now=datetime.now(UTC))
        bench.core.create_namespaced_pod(NAMESPACE, injected.pod, _preload_content=False)  # type: ignore[arg-type]


# --- set-up -----------------------------------------------------------------------------------


# The simulator in a process of its own (``--simulator process``, the default): in this process
# its threads would compete with the code being measured for the GIL, and every request of the
# hub (a patch and its database round trips) or of the raw loop would wait for them.
SIMULATOR_CHILD = """
import signal, sys, threading
from kubernetes import config
from sandbox.simulator import PodSimulator
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
api = config.new_client_from_config(config_file=sys.argv[1], context=sys.argv[2])
simulator = PodSimulator(api, node_name=sys.argv[3])
simulator.start()
print("ready", flush=True)
while not stop.wait(1.0):
    pass
simulator.stop()
for error in simulator.errors[-5:]:
    print("simulator error:", error, file=sys.stderr)
"""


class SimulatorProcess:
    """``PodSimulator`` run in a child process (same code, same knobs: the defaults)."""

    def __init__(self, kubeconfig: Path, context: str, node_name: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SIMULATOR_CHILD, str(kubeconfig), context, node_name],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != b"ready":
            raise SystemExit(f"the simulator process exited with {self.proc.wait()}")
        self.errors: list[str] = []

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=20)


def set_up(
    name: str, workdir: Path, pods: int, *, separate_simulator: bool
) -> tuple[SandboxCluster, PodSimulator | SimulatorProcess, Bench, Any]:
    started = time.monotonic()
    sandbox = SandboxCluster(name=name, workdir=workdir, bin_dir=find_binaries())
    sandbox.start()
    api = config.new_client_from_config(config_file=str(sandbox.kubeconfig), context=name)
    simulator: PodSimulator | SimulatorProcess
    if separate_simulator:
        simulator = SimulatorProcess(sandbox.kubeconfig, name, f"sim-{name}-0")
    else:
        simulator = PodSimulator(api, node_name=f"sim-{name}-0")
        simulator.start()
    say(f"sandbox {name} up in {time.monotonic() - started:.0f}s")
    cluster, _ = import_kubeconfig(name=name, kubeconfig_path=sandbox.kubeconfig, context=name, actor=None)
    suffix = uuid.uuid4().hex[:6]
    bench = Bench(
        name=name,
        core=client.CoreV1Api(api),
        cluster=cluster,
        author=make_user(f"bench-author-{suffix}"),
        approver=make_user(f"bench-approver-{suffix}"),
        pods=pods,
    )
    sidecarset = create_sidecarset(document(name, f"{SIDECAR}:1"), actor=bench.author)
    create_target(sidecarset_id=sidecarset.pk, cluster_id=cluster.pk, wave=0)
    revision = publish_sidecarset(name, actor=bench.author)
    bench.core.create_namespace({"metadata": {"name": NAMESPACE}}, _preload_content=False)  # type: ignore[arg-type]
    created = time.monotonic()
    create_pods(bench, revision)
    wait_all_ready(bench, f"{SIDECAR}:1", timeout=120 + pods * 0.2)
    say(f"{pods} injected pods created and ready in {time.monotonic() - created:.0f}s")
    return sandbox, simulator, bench, api


def describe(samples: list[float]) -> str:
    if len(samples) == 1:
        return f"{samples[0]:7.1f}"
    return f"{statistics.median(samples):7.1f} (min {min(samples):.1f}, max {max(samples):.1f})"
