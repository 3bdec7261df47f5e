"""Helpers the test suite uses to run sandbox clusters: a pool that starts each named cluster
once (with its simulator) and stops them all at the end. Every pooled apiserver presents its own
webhook token to any admission webhook (``RunningCluster.webhook_token``), as a cluster configured
for the hub's authenticated webhook does."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from kubernetes import client, config

from sandbox.cluster import SandboxCluster, find_binaries
from sandbox.simulator import PodSimulator, SimulatorKnobs

__all__ = ["RunningCluster", "SandboxPool", "wait_for"]

T = TypeVar("T")


@dataclass
class RunningCluster:
    """A started cluster, a client bound to it (never the process-global config) and its simulator."""

    name: str
    cluster: SandboxCluster
    api_client: client.ApiClient
    simulator: PodSimulator

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api_client)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api_client)

    @property
    def kubeconfig(self) -> Path:
        return self.cluster.kubeconfig

    @property
    def webhook_token(self) -> str:
        """The token this apiserver presents when it calls an admission webhook."""
        return self.cluster.webhook_token

    @property
    def knobs(self) -> SimulatorKnobs:
        return self.simulator.knobs

    def reset_knobs(self) -> None:
        self.simulator.knobs = SimulatorKnobs()


class SandboxPool:
    """Starts clusters on first use (one after another: 2 cores), stops every one in ``close()``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin_dir = find_binaries()
        self.clusters: dict[str, RunningCluster] = {}

    def get(self, name: str) -> RunningCluster:
        if name not in self.clusters:
            cluster = SandboxCluster(
                name=name,
                workdir=self.root / name,
                bin_dir=self.bin_dir,
                webhook_token=secrets.token_urlsafe(32),
            )
            cluster.start()
            api = config.new_client_from_config(config_file=str(cluster.kubeconfig), context=name)
            simulator = PodSimulator(api, node_name=f"sim-{name}-0")
            simulator.start()
            self.clusters[name] = RunningCluster(
                name=name, cluster=cluster, api_client=api, simulator=simulator
            )
        return self.clusters[name]

    def close(self) -> None:
        for running in self.clusters.values():
            running.simulator.request_stop()
        for running in self.clusters.values():
            running.simulator.stop()
            running.api_client.close()
            running.cluster.stop()
        self.clusters.clear()


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout_seconds: float = 30.0,
    interval_seconds: float = 0.1,
    what: str = "condition",
) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after the timeout."""
    deadline = time.monotonic() + timeout_seconds
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval_seconds)
    raise AssertionError(f"timed out after {timeout_seconds:.0f}s waiting for {what}; last value: {last!r}")
