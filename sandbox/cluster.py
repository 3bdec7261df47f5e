"""Start and stop one sandbox cluster: etcd + kube-apiserver + kube-controller-manager.

Each cluster has its own directory (PKI, etcd data, logs, kubeconfig) and its own ports on
127.0.0.1, so several run side by side. Every process starts in its own session and is
stopped by process group.

With a ``webhook_token``, the apiserver starts with an admission configuration
(``--admission-control-config-file``) whose webhook kubeconfig holds that token for the hub's
webhook (``webhook_url``'s host:port; any host, ``*``, when no URL is given), so every admission
call it makes carries ``Authorization: Bearer <token>``, as on a real cluster configured by
``cluster webhook-auth --print-config`` (``clusters.admission_config`` writes both).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from clusters.admission_config import admission_config_files
from sandbox.pki import ClusterPki, make_cluster_pki

__all__ = ["SandboxCluster", "SandboxError", "find_binaries", "free_port"]

REQUIRED_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")
_START_ATTEMPTS = 3


class SandboxError(RuntimeError):
    """The sandbox could not be started; the message says what to look at."""


def find_binaries(bin_dir: str | os.PathLike[str] | None = None) -> Path:
    """The directory holding the three binaries, from the argument or ``SIDECARHUB_K8S_BIN``.

    Raises ``SandboxError`` with the build command when they are missing: tests that need the
    sandbox fail loudly instead of skipping.
    """
    raw = bin_dir or os.environ.get("SIDECARHUB_K8S_BIN")
    if not raw:
        raise SandboxError(
            "SIDECARHUB_K8S_BIN is not set: build the sandbox with `bash sandbox/build.sh` "
            "(it prints the bin directory) or run the tests through `make test`"
        )
    path = Path(raw)
    missing = [name for name in REQUIRED_BINARIES if not os.access(path / name, os.X_OK)]
    if missing:
        raise SandboxError(
            f"sandbox binaries missing in {path}: {', '.join(missing)}; run `bash sandbox/build.sh`"
        )
    return path


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1 (callers retry if the race is lost)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SandboxCluster:
    """One running control plane. Use ``start()`` / ``stop()`` or as a context manager."""

    name: str
    workdir: Path
    bin_dir: Path
    with_controller_manager: bool = True
    webhook_token: str = field(default="", repr=False)
    webhook_url: str = ""
    api_port: int = 0
    pki: ClusterPki | None = None
    _processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig.yaml"

    @property
    def admission_config(self) -> Path:
        return self.workdir / "admission" / "admission-config.yaml"

    @property
    def webhook_token_file(self) -> Path:
        """The token the apiserver presents to the webhook (written only with ``webhook_token``)."""
        return self.workdir / "admission" / "webhook-token"

    def __enter__(self) -> SandboxCluster:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- lifecycle -------------------------------------------------------------------
    def start(self, timeout_seconds: float = 120.0) -> None:
        """Fresh PKI and data, then etcd, apiserver and controller-manager; waits until ready."""
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        (self.workdir / "logs").mkdir(parents=True)
        self.pki = make_cluster_pki(self.workdir / "pki")
        if self.webhook_token:
            self._write_admission_config()
        last_error: Exception | None = None
        for _ in range(_START_ATTEMPTS):
            try:
                self._start_control_plane(timeout_seconds)
                break
            except SandboxError as exc:  # usually a lost port race; retry on fresh ports
                last_error = exc
                self.stop()
        else:
            raise SandboxError(f"cluster {self.name} did not start: {last_error}")
        self._write_kubeconfig()
        self._wait_for_default_namespace(timeout_seconds)
        if self.with_controller_manager:
            self._start_controller_manager()
            # The serviceaccount controller creating `default` proves the controller-manager works.
            self._wait_http(
                f"{self.server}/api/v1/namespaces/default/serviceaccounts/default",
                "kube-controller-manager (default ServiceAccount)",
                timeout_seconds,
                authenticated=True,
            )

    def stop(self) -> None:
        """SIGTERM each process group, then SIGKILL what is left after a grace period."""
        for proc in self._processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        # Throw-away clusters: no point waiting out the apiserver's graceful watch draining.
        deadline = time.monotonic() + 5
        for proc in self._processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self._processes.clear()

    def is_running(self) -> bool:
        return bool(self._processes) and all(p.poll() is None for p in self._processes.values())

    def stop_apiserver(self) -> None:
        """Stop only the apiserver (for "cluster is down" tests); ``start_apiserver`` brings it back.

        SIGKILL, not SIGTERM: a graceful apiserver shutdown drains watches for a minute or more,
        and an outage test wants the endpoint gone now.
        """
        proc = self._processes.pop("kube-apiserver", None)
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)

    def start_apiserver(self, timeout_seconds: float = 90.0) -> None:
        self._spawn("kube-apiserver", self._apiserver_args(self._etcd_port))
        self._wait_ready(timeout_seconds)

    def memory_rss_bytes(self) -> dict[str, int]:
        """Resident memory per process, read from /proc (for the sandbox's own report)."""
        usage: dict[str, int] = {}
        for name, proc in self._processes.items():
            try:
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        usage[name] = int(line.split()[1]) * 1024
            except FileNotFoundError:
                usage[name] = 0
        return usage

    # --- internals -------------------------------------------------------------------
    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.workdir / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        self._processes[name] = subprocess.Popen(
            [str(self.bin_dir / name), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()

    def _start_control_plane(self, timeout_seconds: float) -> None:
        self._etcd_port = free_port()
        peer_port = free_port()
        data = self.workdir / "etcd"
        shutil.rmtree(data, ignore_errors=True)
        self._spawn(
            "etcd",
            [
                f"--name={self.name}",
                f"--data-dir={data}",
                f"--listen-client-urls=http://127.0.0.1:{self._etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{self._etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster={self.name}=http://127.0.0.1:{peer_port}",
                "--initial-cluster-state=new",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
                "--listen-metrics-urls=",
            ],
        )
        self._wait_http(f"http://127.0.0.1:{self._etcd_port}/health", "etcd", timeout_seconds)
        self.api_port = free_port()
        self._spawn("kube-apiserver", self._apiserver_args(self._etcd_port))
        self._wait_ready(timeout_seconds)

    def _apiserver_args(self, etcd_port: int) -> list[str]:
        assert self.pki is not None
        pki = self.pki
        return [
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.api_port}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--client-ca-file={pki.ca_cert}",
            f"--token-auth-file={pki.token_file}",
            "--authorization-mode=RBAC",
            f"--service-account-issuer=https://127.0.0.1:{self.api_port}",
            f"--service-account-key-file={pki.service_account_pub}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            "--service-cluster-ip-range=10.0.0.0/24",
            # No kubelet mounts tokens here; envtest disables the plugin for the same reason.
            "--disable-admission-plugins=ServiceAccount",
            "--allow-privileged=true",
            "--endpoint-reconciler-type=none",
            *([f"--admission-control-config-file={self.admission_config}"] if self.webhook_token else []),
            "--v=0",
        ]

    def _write_admission_config(self) -> None:
        """The apiserver's admission configuration and webhook kubeconfig, and the token file."""
        directory = self.admission_config.parent
        directory.mkdir(mode=0o700)
        kubeconfig = directory / "webhook-kubeconfig.yaml"
        files = admission_config_files(
            self.webhook_url or None, self.webhook_token, kubeconfig_path=str(kubeconfig)
        )
        for path, text in (
            (self.admission_config, files.admission_configuration),
            (kubeconfig, files.kubeconfig),
            (self.webhook_token_file, self.webhook_token),
        ):
            path.write_text(text)
            path.chmod(0o600)

    def _start_controller_manager(self) -> None:
        assert self.pki is not None
        self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                # No kubelets renew node leases, so the node lifecycle controller would taint
                # and evict everything; the simulator owns node and pod status instead.
                "--controllers=*,-node-lifecycle-controller,-node-ipam-controller",
                f"--service-account-private-key-file={self.pki.service_account_key}",
                f"--root-ca-file={self.pki.ca_cert}",
                "--use-service-account-credentials=false",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
                "--v=0",
            ],
        )

    def _ssl_context(self) -> ssl.SSLContext:
        assert self.pki is not None
        return ssl.create_default_context(cafile=str(self.pki.ca_cert))

    def _get(self, url: str, *, authenticated: bool) -> tuple[int, bytes]:
        request = urllib.request.Request(url)
        context = None
        if authenticated:
            assert self.pki is not None
            request.add_header("Authorization", f"Bearer {self.pki.admin_token}")
            context = self._ssl_context()
        try:
            with urllib.request.urlopen(request, timeout=3, context=context) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def _check_alive(self) -> None:
        for name, proc in self._processes.items():
            if proc.poll() is not None:
                tail = (self.workdir / "logs" / f"{name}.log").read_text(errors="replace")[-2000:]
                raise SandboxError(f"{name} exited with code {proc.returncode}; log tail:\n{tail}")

    def _wait_http(
        self, url: str, what: str, timeout_seconds: float, *, authenticated: bool = False
    ) -> bytes:
        deadline = time.monotonic() + timeout_seconds
        last = ""
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                status, body = self._get(url, authenticated=authenticated)
                if status == 200:
                    return body
                last = f"HTTP {status}: {body[:200]!r}"
            except (OSError, urllib.error.URLError) as exc:
                last = str(exc)
            time.sleep(0.2)
        raise SandboxError(f"{what} not ready after {timeout_seconds:.0f}s at {url}: {last}")

    def _wait_ready(self, timeout_seconds: float) -> None:
        self._wait_http(f"{self.server}/readyz", "kube-apiserver", timeout_seconds, authenticated=True)

    def _wait_for_default_namespace(self, timeout_seconds: float) -> None:
        body = self._wait_http(
            f"{self.server}/api/v1/namespaces/default",
            "default namespace",
            timeout_seconds,
            authenticated=True,
        )
        json.loads(body)

    def _write_kubeconfig(self) -> None:
        assert self.pki is not None
        pki = self.pki
        # JSON is valid YAML; kubeconfig readers accept either.
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": self.name,
                    "cluster": {"server": self.server, "certificate-authority": str(pki.ca_cert)},
                }
            ],
            "users": [
                {"name": f"{self.name}-admin", "user": {"token": pki.admin_token}},
                {
                    "name": f"{self.name}-admin-cert",
                    "user": {"client-certificate": str(pki.admin_cert), "client-key": str(pki.admin_key)},
                },
            ],
            "contexts": [
                {
                    "name": self.name,
                    "context": {"cluster": self.name, "user": f"{self.name}-admin", "namespace": "default"},
                },
                {
                    "name": f"{self.name}-cert",
                    "context": {
                        "cluster": self.name,
                        "user": f"{self.name}-admin-cert",
                        "namespace": "default",
                    },
                },
            ],
            "current-context": self.name,
        }
        self.kubeconfig.write_text(json.dumps(config, indent=2))
        self.kubeconfig.chmod(0o600)
