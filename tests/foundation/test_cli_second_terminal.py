"""Issue 16's CLI claim, end to end: ``scripts/run.sh`` (what ``make run`` runs: gunicorn on HTTP
and TLS, a Celery worker, beat, the sandbox cluster, SQLite) starts in its own state directory;
then, from a fresh environment holding nothing but ``SIDECARHUB_ENV_FILE`` (the env file run.sh
wrote), the ``sidecarhub`` console script does apply → publish → target → release status →
approve, the second person approving with the token the admin issued, and ``release status
--watch`` exits 0 once the pods in the cluster run the new image.

Nothing here touches the test database: every step goes through the CLI against run.sh's own
SQLite file, its own worker and its own apiserver.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kubernetes import client, config

from sandbox.cluster import free_port
from sandbox.testing import wait_for
from tests.conftest import _MARKER, _kill_marked, own_redis_database, suspend_workers

pytestmark = [pytest.mark.k8s, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parent.parent.parent
CLI = Path(sys.executable).parent / "sidecarhub"
NAME = "cli-flow"


class Hub:
    """run.sh's services, and the CLI as a fresh terminal sees them."""

    def __init__(self, var: Path, process: subprocess.Popen[bytes], log: Path) -> None:
        self.var, self.process, self.log = var, process, log
        self.env_file = var / "sidecarhub.env"
        self.workdir = var / "terminal"
        self.workdir.mkdir(exist_ok=True)

    def fresh_environment(self, **extra: str) -> dict[str, str]:
        """What a new terminal has: a PATH, a HOME, and the env file's location."""
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.workdir),
            "SIDECARHUB_ENV_FILE": str(self.env_file),
            **extra,
        }

    def cli(
        self, *argv: str, token: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        extra = {"SIDECARHUB_TOKEN": token} if token else {}
        done = subprocess.run(
            [str(CLI), *argv],
            cwd=self.workdir,  # not the checkout: nothing is found by accident
            env=self.fresh_environment(**extra),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"sidecarhub {' '.join(argv)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
            )
        return done

    def kube(self) -> client.CoreV1Api:
        api = config.new_client_from_config(str(self.var / "sandbox" / "kubeconfig.yaml"), context="sandbox")
        return client.CoreV1Api(api)


def _stop(process: subprocess.Popen[bytes], marker: str) -> None:
    """Ctrl-C as a person would (run.sh stops its services), then make sure nothing is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=20)
    _kill_marked(marker)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    var = tmp_path / "var"
    log = tmp_path / "run.log"
    marker = f"cli-e2e-{uuid.uuid4().hex[:8]}"
    # Its own broker database: a suspended session worker's pending BRPOP would otherwise take
    # one of run.sh's tasks and hold it while stopped (the release would never be created).
    broker = own_redis_database(os.environ["REDIS_URL"])
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "SIDECARHUB_VAR_DIR": str(var),
        "SIDECARHUB_PORT": str(free_port()),
        "SIDECARHUB_WEBHOOK_PORT": str(free_port()),
        "REDIS_URL": broker,
        _MARKER: marker,  # everything run.sh starts inherits it: nothing can outlive the test
    }
    for name in ("SIDECARHUB_K8S_BIN", "SIDECARHUB_REDIS_PORT"):
        if name in os.environ:
            env[name] = os.environ[name]
    # The session's workers are stopped meanwhile: nothing of theirs competes for the CPU.
    queue = redis.Redis.from_url(broker)
    with suspend_workers():
        queue.flushdb()
        with open(log, "wb") as output:
            process = subprocess.Popen(
                ["bash", str(ROOT / "scripts" / "run.sh")],
                cwd=ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for(
                lambda: process.poll() is not None or "sidecarhub is running" in log.read_text(),
                timeout_seconds=300,
                interval_seconds=1,
                what="run.sh to start everything",
            )
            assert process.poll() is None, f"run.sh exited {process.returncode}:\n{log.read_text()}"
            yield Hub(var, process, log)
        finally:
            _stop(process, marker)
            queue.flushdb()


def _document(image: str) -> str:
    return json.dumps(
        {
            "apiVersion": "apps.kruise.io/v1beta1",
            "kind": "SidecarSet",
            "metadata": {"name": NAME, "annotations": {"rollouts.sidecarhub.io/steps": "100%"}},
            "spec": {
                "selector": {"matchLabels": {"app": NAME}},
                "containers": [{"name": "agent", "image": image}],
            },
        }
    )


def _pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": NAME}},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
    }


def _agent_images(kube: client.CoreV1Api, namespace: str) -> list[str]:
    response: Any = kube.list_namespaced_pod(namespace, _preload_content=False)  # raw urllib3 response
    pods = json.loads(response.data)["items"]
    return sorted(c["image"] for pod in pods for c in pod["spec"]["containers"] if c["name"] == "agent")


def test_a_fresh_terminal_runs_the_whole_flow_with_only_the_env_file(hub: Hub, tmp_path: Path) -> None:
    # The env file: private, and what it says is enough (no secret printed on the way).
    assert hub.env_file.stat().st_mode & 0o777 == 0o600
    secrets = [
        line.split("=", 1)[1].strip("'")
        for line in hub.env_file.read_text().splitlines()
        if line.startswith(("SECRET_KEY=", "SIDECARHUB_ENCRYPTION_KEY=", "SIDECARHUB_TOKEN="))
    ]
    assert len(secrets) == 3 and all(len(secret) > 20 for secret in secrets)
    password = (hub.var / "admin-login").read_text().split()[1]
    printed = hub.log.read_text()
    assert not any(secret in printed for secret in [*secrets, password])

    # run.sh registered the sandbox with the same CLI.
    listed = hub.cli("cluster", "list").stdout
    assert re.search(r"^sandbox\s+https://127\.0\.0\.1:\d+", listed, re.M), listed

    # apply → publish → target: the webhook injects revision 1 into new pods.
    manifest = tmp_path / "sidecarset.yaml"
    manifest.write_text(_document("cli-agent:1.0"))
    assert hub.cli("sidecarset", "apply", "-f", str(manifest)).stdout == f"sidecarset/{NAME} created\n"
    assert "published as revision 1" in hub.cli("sidecarset", "publish", NAME).stdout
    added = hub.cli("target", "add", NAME, "--cluster", "sandbox").stdout
    assert re.match(rf"target \d+: sidecarset/{NAME} -> cluster sandbox, wave 0\n", added), added
    assert "cluster sandbox" in hub.cli("target", "list").stdout

    kube = hub.kube()
    namespace = f"cli-{uuid.uuid4().hex[:6]}"
    kube.create_namespace({"metadata": {"name": namespace}}, _preload_content=False)  # type: ignore[arg-type]  # a dict is sent as is

    def injected_image() -> str:
        response: Any = kube.create_namespaced_pod(
            namespace,
            _pod(f"probe-{uuid.uuid4().hex[:6]}"),  # type: ignore[arg-type]  # a dict is sent as is
            dry_run="All",
            _preload_content=False,
        )  # a raw urllib3 response
        created = json.loads(response.data)
        return next((c["image"] for c in created["spec"]["containers"] if c["name"] == "agent"), "")

    wait_for(lambda: injected_image() == "cli-agent:1.0", timeout_seconds=120, what="revision 1 injected")
    for index in range(2):
        kube.create_namespaced_pod(namespace, _pod(f"web-{index}"), _preload_content=False)  # type: ignore[arg-type]  # a dict is sent as is
    assert _agent_images(kube, namespace) == ["cli-agent:1.0", "cli-agent:1.0"]

    # A new image: diff, publish, and the release waits for an approval.
    manifest.write_text(_document("cli-agent:2.0"))
    assert "configured" in hub.cli("sidecarset", "apply", "-f", str(manifest)).stdout
    diff = hub.cli("sidecarset", "diff", NAME).stdout
    assert "-    image: cli-agent:1.0\n+    image: cli-agent:2.0\n" in diff and "images_only" in diff
    assert "published as revision 2" in hub.cli("sidecarset", "publish", NAME).stdout

    def awaiting() -> re.Match[str] | None:
        return re.search(r"sidecarhub rollout approve (\d+)", hub.cli("release", "status", NAME).stdout)

    found = wait_for(awaiting, timeout_seconds=120, what="the release's step awaiting approval")
    status = hub.cli("release", "status", NAME).stdout
    assert status.startswith("revision 2 (current): wave 0 awaiting approval in cluster sandbox"), status
    step = found.group(1)

    # Four eyes: the admin published, so the admin may not approve.
    refused = hub.cli("rollout", "approve", step, check=False)
    assert refused.returncode == 3 and "requires someone else" in refused.stderr

    # A second person: a user added from a shell with the env file, and the token the admin issues.
    made = subprocess.run(
        ["bash", "-c", 'set -a; . "$SIDECARHUB_ENV_FILE"; set +a; exec "$0" manage.py createsuperuser '
         "--noinput --username bob --email bob@example.com", sys.executable],
        cwd=ROOT,
        env=hub.fresh_environment(DJANGO_SUPERUSER_PASSWORD=uuid.uuid4().hex),
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    bob = hub.cli("token", "create", "bob").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{40}", bob)
    approved = hub.cli("rollout", "approve", step, "-m", "canary fine", token=bob).stdout
    assert "approved by bob" in approved

    # --watch in a script: the history of changes, then exit 0 once the release completed.
    watched = hub.cli("release", "status", NAME, "--watch", "--interval", "1", "--timeout", "240")
    assert watched.stdout.startswith("--- ") and "revision 2 (current): completed" in watched.stdout
    assert _agent_images(kube, namespace) == ["cli-agent:2.0", "cli-agent:2.0"]
    rollout = re.search(r"(\d+): #1->#2", watched.stdout)
    assert rollout is not None
    done = hub.cli("rollout", "status", rollout.group(1), "--watch").stdout
    assert "state:    completed" in done and "approved by bob" in done
