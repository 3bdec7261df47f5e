"""Fixtures shared by the whole suite: sandbox Kubernetes clusters, namespaces, a Celery worker.

Kubernetes tests FAIL (never skip) when the sandbox binaries are missing or do not start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from kubernetes.client.rest import ApiException

from sandbox.testing import RunningCluster, SandboxPool, wait_for

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def sandbox_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxPool]:
    pool = SandboxPool(tmp_path_factory.mktemp("sandbox"))
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def k8s(sandbox_pool: SandboxPool) -> Iterator[RunningCluster]:
    """The default sandbox cluster (`alpha`), with the simulator's knobs reset after the test."""
    running = sandbox_pool.get("alpha")
    yield running
    running.reset_knobs()


@pytest.fixture
def k8s_pair(sandbox_pool: SandboxPool) -> Iterator[tuple[RunningCluster, RunningCluster]]:
    """Two independent sandbox clusters (`alpha`, `beta`), each with its own apiserver."""
    pair = (sandbox_pool.get("alpha"), sandbox_pool.get("beta"))
    yield pair
    for running in pair:
        running.reset_knobs()


def _make_namespace(running: RunningCluster, labels: dict[str, str] | None = None) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    running.core.create_namespace(
        {"metadata": {"name": name, "labels": labels or {}}},  # type: ignore[arg-type]  # stubs want a model object; a dict is sent as is
        _preload_content=False,
    )
    return name


def _delete_namespace(running: RunningCluster, name: str) -> None:
    try:
        running.core.delete_namespace(name, _preload_content=False)
    except ApiException as exc:
        if exc.status != 404:
            raise


@pytest.fixture
def k8s_namespace(k8s: RunningCluster) -> Iterator[str]:
    """A fresh namespace in the default sandbox cluster, deleted after the test."""
    name = _make_namespace(k8s)
    yield name
    _delete_namespace(k8s, name)


_WORKERS: list[subprocess.Popen[bytes]] = []  # every worker start_worker started (for suspend_workers)
# Every process a worker starts inherits this marker in its environment: stopping a worker (and
# the session's end) kills whatever still carries it, even a child that left the worker's process
# group or outlived its parent (an embedded beat, a pool process), so nothing keeps consuming
# the test queue after the tests.
_MARKER = "SIDECARHUB_TEST_PROCESS"
_SESSION = uuid.uuid4().hex[:12]
_MARKERS: dict[int, str] = {}  # worker pid → its marker


def _kill_marked(prefix: str) -> int:
    """SIGKILL every process whose environment has ``_MARKER`` starting with ``prefix``."""
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue  # gone, or not ours to read
        if any(item.startswith(f"{_MARKER}={prefix}".encode()) for item in environ):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
    return killed


def own_redis_database(url: str) -> str:
    """The test Redis with another database number, emptied, for processes a test starts with
    their own Celery worker: their messages must not reach this run's (suspended) workers, whose
    pending BRPOP would take one and freeze it."""
    parts = urlsplit(url)
    number = (int(parts.path.strip("/") or 0) + 8) % 16
    child_url = urlunsplit(parts._replace(path=f"/{number}"))
    redis.Redis.from_url(child_url).flushdb()
    return child_url


@contextlib.contextmanager
def suspend_workers() -> Iterator[None]:
    """SIGSTOP every live worker started so far (e.g. the session worker) and SIGCONT them on
    exit, so a test can run its own workers without competition for the queue."""
    stopped = [proc for proc in _WORKERS if proc.poll() is None]
    for proc in stopped:
        os.killpg(proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for proc in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGCONT)


def child_process_environment() -> dict[str, str]:
    """This process's environment with ``DATABASE_URL`` naming pytest-django's test database: a
    process a test starts (a worker, a server) must see the rows the test commits."""
    from django.db import connection

    env = dict(os.environ)
    if connection.vendor == "sqlite":  # the test database is a file (sidecarhub.envconfig)
        env["DATABASE_URL"] = f"sqlite:///{os.path.abspath(connection.settings_dict['NAME'])}"
    else:
        url = urlsplit(os.environ["DATABASE_URL"])
        env["DATABASE_URL"] = urlunsplit(url._replace(path="/" + connection.settings_dict["NAME"]))
    return env


def start_worker(
    log_name: str = "test-worker.log",
    *,
    concurrency: int = 2,
    extra_env: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
    wait_ready: bool = True,
) -> subprocess.Popen[bytes]:
    """Start a real Celery worker process (its own session) against the test Redis and the test
    database; with ``wait_ready``, return once it answered a ping. Stop it with ``stop_worker``."""
    from sidecarhub.tasks import ping

    env = child_process_environment()
    env.update(extra_env or {})
    marker = f"{_SESSION}:{uuid.uuid4().hex[:8]}"
    env[_MARKER] = marker
    log_path = ROOT / "var" / log_name
    log_path.parent.mkdir(exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "sidecarhub.celery",
                "worker",
                "--pool=prefork",
                f"--concurrency={concurrency}",
                "--loglevel=INFO",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                *(extra_args or []),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _WORKERS.append(proc)
    _MARKERS[proc.pid] = marker
    if wait_ready:
        try:
            # Ready when it answers a task; a dead worker fails here with its log path.
            result = ping.apply_async(args=["ready"], ignore_result=False)
            wait_for(lambda: proc.poll() is not None or result.ready(), timeout_seconds=60, what="the worker")
            if proc.poll() is not None:
                raise RuntimeError(f"the Celery worker exited with {proc.returncode}; see {log_path}")
        except BaseException:
            stop_worker(proc, sig=signal.SIGKILL)
            raise
    return proc


def stop_worker(proc: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM) -> None:
    """Signal the worker's whole process group (SIGKILL: no clean-up at all) and reap it; then
    kill anything it started that is still alive (marked through its environment)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    else:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
    marker = _MARKERS.get(proc.pid)
    if marker is not None:
        _kill_marked(marker)


@pytest.fixture(scope="session")
def celery_worker_process(
    django_db_setup: None, django_db_blocker: object
) -> Iterator[subprocess.Popen[bytes]]:
    """A real Celery worker process against the test Redis and the test database."""
    proc = start_worker()
    try:
        yield proc
    finally:
        stop_worker(proc)


def pytest_configure(config: pytest.Config) -> None:
    # WhiteNoise warns (an error here) when STATIC_ROOT is missing; `make run` fills it with
    # collectstatic, tests only need it to exist.
    from django.conf import settings

    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)
    _retry_flush_on_deadlock()


def _retry_flush_on_deadlock() -> None:
    """Transactional tests end with a TRUNCATE of every table. Real background parts of the
    end-to-end tests (the admission server thread answering the apiserver, a Celery worker
    finishing a task) may still hold row locks at that moment, and PostgreSQL then aborts one
    side with "deadlock detected". The flush is one transaction, so trying it again is safe;
    without this an unlucky interleaving leaves the next test with the last one's rows."""
    from django.core.management.base import CommandError
    from django.db import OperationalError
    from django.test import testcases

    original = testcases.TransactionTestCase._fixture_teardown  # type: ignore[attr-defined]  # private, not in django-stubs

    def teardown_with_retry(self: testcases.TransactionTestCase) -> None:
        for attempt in range(5):
            try:
                original(self)
                return
            except CommandError as exc:
                cause = exc.__cause__
                if attempt == 4 or not (isinstance(cause, OperationalError) and "deadlock" in str(cause)):
                    raise
                time.sleep(0.2 * (attempt + 1))

    testcases.TransactionTestCase._fixture_teardown = teardown_with_retry  # type: ignore[attr-defined]  # private, not in django-stubs


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # A worker a failed test could not stop must not outlive the run (it would keep consuming
    # from the test Redis database and writing to a test database that is about to go away).
    for proc in _WORKERS:
        if proc.poll() is None:
            stop_worker(proc, sig=signal.SIGKILL)
    _kill_marked(_SESSION)  # and whatever they started that outlived them (an embedded beat...)


@pytest.fixture
def eager_tasks() -> Iterator[None]:
    """Run ``.delay()`` in-process (synchronous tests; the e2e tests use a real worker)."""
    from sidecarhub.celery import app as celery_app

    previous = (celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates)
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    try:
        yield
    finally:
        celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = previous


@pytest.fixture(autouse=True)
def _no_webhook_auto_registration(settings: Any) -> None:
    """Tests share the sandbox clusters, and each injection test serves the webhook from its own
    short-lived TLS server, whose CA only that test process knows: a registration queued by one
    test and run later by a worker would point a shared cluster at a dead or untrusted URL. The
    tests that need it turn it back on."""
    settings.SIDECARHUB_WEBHOOK_AUTO_REGISTER = False


@pytest.fixture
def cli_as(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``cli_as(user)``: from now on the ``sidecarhub`` CLI (``call_command("sidecarhub", ...)``)
    runs as ``user``, authenticated by its API token as in a shell (``SIDECARHUB_TOKEN``)."""
    from rest_framework.authtoken.models import Token

    def use(user: Any) -> Any:
        monkeypatch.setenv("SIDECARHUB_TOKEN", Token.objects.get_or_create(user=user)[0].key)
        return user

    return use


@pytest.fixture
def cli_admin(cli_as: Any) -> Any:
    """An org admin (superuser ``cli-admin``) the CLI runs as (the test has database access)."""
    from django.contrib.auth.models import User

    return cli_as(User.objects.create_superuser("cli-admin", password="unused-cli-admin"))
