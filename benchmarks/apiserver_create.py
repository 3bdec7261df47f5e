"""Benchmark: pod CREATE through a sandbox apiserver, with and without the hub's webhook (issue 17
targets 1 and 3).

Targets (exit 1 when one is missed):

- **(b) median <= 1.5x (d) median and (b) p99 <= 2.0x (d) p99**, where (b) is a plain pod created
  through the hub's webhook served as ``make run`` and the image serve it
  (``python -m sidecarhub.admission_server``), 200 SidecarSets targeting the cluster, 10 selecting the
  pod; and (d) the same pod submitted already injected, without the webhook: the floor for
  storing the same object;
- **the first admission in a freshly started worker <= 20 ms** (in a new process that loads the
  WSGI app and runs what each server worker runs before it serves, then answers one AdmissionReview for the
  benchmark namespace, against the same database and apiserver).

Set-up: one sandbox control plane (etcd + kube-apiserver, no controller-manager: nothing else
writes to it) whose admission configuration presents a webhook token to every webhook (the
sandbox's ``webhook_token`` without a ``webhook_url``: the listeners below have a port each),
registered with the hub (``import_kubeconfig``) and given that token (``set_webhook_token``: the
hub answers 401 without it, as on any new cluster), 200 SidecarSets published and
served there (``admission_data.publish_sidecarsets``), a serving certificate for 127.0.0.1, and
the hub's admission listeners as subprocesses:

- ``hub``: ``python -m sidecarhub.admission_server`` as ``scripts/run.sh``, the image and
  ``docker-compose.yml`` serve it (granian, the admission WSGI app, keep-alive, TLS loaded once
  per worker, workers warmed before serving);
- ``gthread``: the same app under gunicorn's gthread workers, the server model the listener had
  before (``gunicorn --worker-class gthread --workers 2 --threads 4 --keep-alive 120
  'sidecarhub.admission_wsgi:warmed_application()'``): what choosing granian saves.

Each listener gets the hub's own MutatingWebhookConfiguration (``clusters.webhooks.
webhook_configuration``) under its own name, its URL and CA, with one more ``namespaceSelector``
term (``bench.sidecarhub.io/server In [<model>]``) so that each namespace reaches one listener.
Configurations, interleaved round by round in a shuffled order (same run, same apiserver):

- (a) no webhook, plain pod: namespace ``bench-off``, labelled ``sidecarhub.io/inject=disabled``
  (the webhooks' namespaceSelector skips it in the apiserver);
- (d) no webhook, the same pod already injected (what the hub's core makes of it): the floor;
- (b) the hub's webhook as deployed: namespace ``bench-hub``;
- (g) the hub's webhook under gunicorn gthread: namespace ``bench-gthread`` (b / g is what the
  server model saves);
- (n) the floor for any webhook injecting these sidecars: a no-op server (``FLOOR_WEBHOOK``:
  the standard library's threaded HTTP/1.1 server over TLS, keep-alive) answering every review
  at once with the patch the hub's core makes for this pod: namespace ``bench-floor``. (b) / (n)
  is what the hub itself costs on top of being a webhook at all.

The pod is the admission benchmarks' ReplicaSet-made pod (2 app containers, a projected token
volume; no owner reference, so no garbage collector reacts), created with ``generateName``.
Each CREATE is one POST on a kept-alive HTTPS connection of this process (``http.client``,
bearer token), timed from sending to the whole answer read; every answer is checked afterwards
(201, and 12 containers with exactly the 10 expected sidecars for (b), (s) and (d), 2 for (a)).

    BENCH=apiserver_create bash scripts/bench.sh [--creates 500] [--warmup 50] [--quick]

Everything it creates is deleted at the end (the sandbox is stopped, its rows deleted).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import http.client
import json
import os
import random
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sidecarhub.settings")

import django  # noqa: E402

django.setup()

from django.utils import timezone  # noqa: E402
from kubernetes import client, config  # noqa: E402

from benchmarks.support.admission_data import (  # noqa: E402
    APP_CONTAINERS,
    clean_up,
    code_commit,
    figures,
    load_average,
    matching_sidecars,
    pod_object,
    publish_sidecarsets,
    review_body,
)
from benchmarks.support.hub_sandbox import say  # noqa: E402
from clusters import admission  # noqa: E402
from clusters.services import import_kubeconfig, set_webhook_token  # noqa: E402
from clusters.webhooks import webhook_configuration  # noqa: E402
from sandbox.cluster import SandboxCluster, find_binaries, free_port  # noqa: E402
from sandbox.pki import make_serving_certificate  # noqa: E402
from sidecarhub.sidecarset import inject  # noqa: E402
from sidecarhub.sidecarset.annotations import NAMESPACE_INJECT_DISABLED, NAMESPACE_INJECT_LABEL  # noqa: E402

SIDECARSETS = 200
MATCHING = 10
TARGET_MEDIAN_RATIO = 1.5
TARGET_P99_RATIO = 2.0
TARGET_FIRST_ADMISSION_MS = 20.0
SERVER_LABEL = "bench.sidecarhub.io/server"
GUNICORN = str(Path(sys.executable).parent / "gunicorn")
WARMED_APP = "sidecarhub.admission_wsgi:warmed_application()"  # gunicorn's factory-call syntax


# --- the hub's listeners ---------------------------------------------------------------------


# The floor for any webhook that injects these sidecars: no work, the hub's patch for this pod
# precomputed, HTTP/1.1 keep-alive over TLS, one thread per connection (the standard library).
FLOOR_WEBHOOK = r"""
import json, ssl, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, cert, key, patch = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def log_message(self, *args):
        pass
    def do_GET(self):
        self.answer(b"ok")
    def do_POST(self):
        uid = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["request"]["uid"]
        response = {"uid": uid, "allowed": True, "patchType": "JSONPatch", "patch": patch}
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
        self.answer(json.dumps(review).encode())
    def answer(self, data):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
class Server(ThreadingHTTPServer):
    daemon_threads = True
    def get_request(self):
        connection, address = super().get_request()
        return context.wrap_socket(connection, server_side=True), address
Server(("127.0.0.1", port), Handler).serve_forever()
"""


class Listener:
    """One webhook server over TLS in its own process group: the hub's listener as deployed
    (``hub``: sidecarhub.admission_server), the same app under gunicorn (``gthread``), or the
    ``floor`` webhook above (``patch``: the base64 patch it answers)."""

    def __init__(self, model: str, workdir: Path, cert: Path, key: Path, patch: str = "") -> None:
        self.model = model
        self.port = free_port()
        bind = f"127.0.0.1:{self.port}"
        if model == "hub":
            command = [sys.executable, "-m", "sidecarhub.admission_server", "--bind", bind]
        elif model == "gthread":
            command = [GUNICORN, WARMED_APP, "--worker-class", "gthread", "--workers", "2", "--threads", "4"]
            command += ["--keep-alive", "120", "--certfile", str(cert), "--keyfile", str(key), "--bind", bind]
        else:
            command = [sys.executable, "-c", FLOOR_WEBHOOK, str(self.port), str(cert), str(key), patch]
        environment = {
            **os.environ,
            "SIDECARHUB_WEBHOOK_CERT_FILE": str(cert),
            "SIDECARHUB_WEBHOOK_KEY_FILE": str(key),
        }
        self.log = workdir / f"listener-{model}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, context: ssl.SSLContext, timeout: float = 90.0) -> float:
        """Until /healthz answers over TLS (every worker has warmed up by then); seconds waited."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise SystemExit(f"the {self.model} webhook exited; see {self.log}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                connection = http.client.HTTPSConnection("127.0.0.1", self.port, context=context, timeout=5)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    return time.monotonic() - started
            time.sleep(0.2)
        raise SystemExit(f"the {self.model} webhook is not ready after {timeout:.0f}s; see {self.log}")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by this server and its worker processes."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # exited meanwhile
            pid, parent = int(entry.name), int(fields[1])
            if pid == self.process.pid or parent == self.process.pid:
                total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / ticks

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def apply_webhook(
    admission_api: client.AdmissionregistrationV1Api, cluster: Any, listener: Listener, ca: bytes
) -> None:
    """The hub's configuration for ``cluster``, pointed at ``listener``, for its namespaces only."""
    cluster.webhook_url = f"https://127.0.0.1:{listener.port}"  # not saved: this configuration only
    body = copy.deepcopy(webhook_configuration(cluster))
    body["metadata"]["name"] = f"sidecarhub-injection-{listener.model}"
    webhook = body["webhooks"][0]
    webhook["clientConfig"]["caBundle"] = base64.b64encode(ca).decode()
    webhook["namespaceSelector"]["matchExpressions"].append(
        {"key": SERVER_LABEL, "operator": "In", "values": [listener.model]}
    )
    admission_api.create_mutating_webhook_configuration(body, _preload_content=False)  # type: ignore[arg-type]


# --- pod CREATE ------------------------------------------------------------------------------


class Creator:
    """POSTs pods on one kept-alive HTTPS connection to the apiserver (bearer token)."""

    def __init__(self, sandbox: SandboxCluster) -> None:
        assert sandbox.pki is not None
        self.context = ssl.create_default_context(cafile=str(sandbox.pki.ca_cert))
        self.port = sandbox.api_port
        self.headers = {
            "Authorization": f"Bearer {sandbox.pki.admin_token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self.connection = self._connect()

    def _connect(self) -> http.client.HTTPSConnection:
        connection = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context, timeout=30)
        connection.connect()
        return connection

    def create(self, namespace: str, body: bytes) -> tuple[float, int, bytes]:
        path = f"/api/v1/namespaces/{namespace}/pods"
        started = time.perf_counter()
        self.connection.request("POST", path, body=body, headers=self.headers)
        response = self.connection.getresponse()
        data = response.read()
        elapsed = time.perf_counter() - started
        if response.will_close:
            self.connection.close()
            self.connection = self._connect()
        return elapsed, response.status, data


def check_created(label: str, status: int, data: bytes, expected: set[str] | None) -> None:
    assert status == 201, (label, status, data[:500])
    names = [item["name"] for item in json.loads(data)["spec"]["containers"]]
    sidecars = set(names) - set(APP_CONTAINERS)
    wanted = expected or set()
    assert sidecars == wanted and len(names) == len(APP_CONTAINERS) + len(wanted), (label, names)


# --- the first admission of a fresh worker ----------------------------------------------------

FRESH_WORKER = """
import json, os, sys, time
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sidecarhub.settings")
from sidecarhub.admission_wsgi import AdmissionApp  # what an admission worker loads first
from clusters.admission import review_pod_admission
from sidecarhub.admission_server import warm_up_and_freeze
mode, cluster, authorization = sys.argv[1], sys.argv[2], "Bearer " + os.environ["BENCH_WEBHOOK_TOKEN"]
body = sys.stdin.buffer.read()
if mode == "warm":
    warm_up_and_freeze()  # what warmed_application runs before the worker serves
times = []
for _ in range(2):
    started = time.perf_counter()
    answer = review_pod_admission(cluster, body, authorization)
    times.append(time.perf_counter() - started)
    assert answer.status == 200 and "patch" in answer.body["response"], answer
print(json.dumps(times))
"""


def first_admission(mode: str, cluster_name: str, body: bytes, token: str) -> tuple[float, float]:
    found = subprocess.run(
        [sys.executable, "-c", FRESH_WORKER, mode, cluster_name],
        cwd=ROOT,
        env={**os.environ, "BENCH_WEBHOOK_TOKEN": token},  # not on the command line (ps shows it)
        input=body,
        capture_output=True,
        check=True,
        timeout=120,
    )
    first, second = json.loads(found.stdout.decode().strip().splitlines()[-1])
    return first, second


# --- the run --------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--creates", type=int, default=500, help="timed creates per configuration")
    parser.add_argument("--warmup", type=int, default=50, help="untimed creates per configuration first")
    parser.add_argument("--quick", action="store_true", help="--creates 150 --warmup 20 (a smoke run)")
    parser.add_argument("--repetitions", type=int, default=1, help="ignored (bench.sh passes it to all)")
    args = parser.parse_args()
    if args.quick:
        args.creates, args.warmup = 150, 20

    name = f"bcreate-{uuid.uuid4().hex[:6]}"
    prefix = f"{name}-ss"
    load_at_start = load_average()
    workdir = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    token = secrets.token_urlsafe(32)
    sandbox = SandboxCluster(
        name=name,
        workdir=workdir / "sandbox",
        bin_dir=find_binaries(),
        with_controller_manager=False,
        webhook_token=token,  # no webhook_url: presented to every webhook (one port per listener)
    )
    listeners: list[Listener] = []
    samples: dict[str, list[float]] = {}
    fresh: dict[str, tuple[float, float]] = {}
    cpu_per_admission: dict[str, float] = {}
    ready_seconds: dict[str, float] = {}
    try:
        started = time.monotonic()
        sandbox.start()
        say(f"sandbox up in {time.monotonic() - started:.0f}s")
        api = config.new_client_from_config(config_file=str(sandbox.kubeconfig), context=name)
        core = client.CoreV1Api(api)
        cluster, _ = import_kubeconfig(
            name=name, kubeconfig_path=sandbox.kubeconfig, context=name, actor=None
        )
        set_webhook_token(cluster.pk, token=token)
        cluster.refresh_from_db()
        started = time.monotonic()
        publish_sidecarsets(cluster, prefix, SIDECARSETS, MATCHING)
        say(f"{SIDECARSETS} SidecarSets published in {time.monotonic() - started:.0f}s")
        namespaces = {
            "off": {NAMESPACE_INJECT_LABEL: NAMESPACE_INJECT_DISABLED},
            "hub": {SERVER_LABEL: "hub"},
            "gthread": {SERVER_LABEL: "gthread"},
            "floor": {SERVER_LABEL: "floor"},
        }
        for suffix, labels in namespaces.items():
            namespace_body = {"metadata": {"name": f"bench-{suffix}", "labels": labels}}
            core.create_namespace(namespace_body, _preload_content=False)  # type: ignore[arg-type]

        expected = matching_sidecars(SIDECARSETS, MATCHING)
        pod = pod_object("00000")
        del pod["metadata"]["ownerReferences"]
        plain = json.dumps(pod).encode()
        # What the hub makes of the pod in bench-hub (bench-off itself is excluded from injection).
        result = inject(
            {**pod, "metadata": {**pod["metadata"], "namespace": "bench-hub"}},
            {"kubernetes.io/metadata.name": "bench-hub", **namespaces["hub"]},
            admission.active_candidates(name).index,
            now=timezone.now(),
            seed="floor",
        )
        floor_patch = base64.b64encode(
            json.dumps(result.json_patch(), separators=(",", ":")).encode()
        ).decode()
        injected_pod = result.pod
        metadata = {key: value for key, value in injected_pod["metadata"].items() if key != "namespace"}
        injected = json.dumps({**injected_pod, "metadata": metadata}).encode()
        configurations: dict[str, tuple[str, bytes, set[str] | None]] = {
            "a": ("bench-off", plain, None),
            "d": ("bench-off", injected, expected),
            "b": ("bench-hub", plain, expected),
            "g": ("bench-gthread", plain, expected),
            "n": ("bench-floor", plain, expected),
        }

        certs = make_serving_certificate(workdir / "webhook-tls", hosts=("127.0.0.1", "localhost"))
        ca = certs.ca_cert.read_bytes()
        models = ["hub", "gthread", "floor"]
        listeners = [Listener(model, workdir, certs.cert, certs.key, floor_patch) for model in models]
        client_context = ssl.create_default_context(cafile=str(certs.ca_cert))
        admission_api = client.AdmissionregistrationV1Api(api)
        for listener in listeners:
            ready_seconds[listener.model] = listener.wait_ready(client_context)
            apply_webhook(admission_api, cluster, listener, ca)

        creator = Creator(sandbox)
        # The apiserver sees new webhook configurations through an informer: wait until each injects.
        deadline = time.monotonic() + 60
        for label in ("b", "g", "n"):
            namespace, body, _ = configurations[label]
            while True:
                _, status, data = creator.create(namespace, body)
                if status == 201 and len(json.loads(data)["spec"]["containers"]) > len(APP_CONTAINERS):
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"the webhook of ({label}) never injected: {status} {data[:300]!r}")
                time.sleep(0.5)
        order = list(configurations)
        shuffle = random.Random(17)
        for _ in range(args.warmup):
            for label in order:
                namespace, body, wanted = configurations[label]
                _, status, data = creator.create(namespace, body)
                check_created(label, status, data, wanted)
        say(f"measuring {args.creates} creates of each of {', '.join(order)}")
        answers: list[tuple[str, int, bytes]] = []
        samples = {label: [] for label in order}
        cpu_before = {listener.model: listener.cpu_seconds() for listener in listeners}
        for _ in range(args.creates):
            shuffle.shuffle(order)
            for label in order:
                namespace, body, _ = configurations[label]
                elapsed, status, data = creator.create(namespace, body)
                samples[label].append(elapsed)
                answers.append((label, status, data))
        cpu_per_admission = {
            listener.model: (listener.cpu_seconds() - cpu_before[listener.model]) / args.creates
            for listener in listeners
        }
        for label, status, data in answers:
            check_created(label, status, data, configurations[label][2])
        review = review_body(1, namespace="bench-hub")
        for mode in ("cold", "warm"):
            fresh[mode] = first_admission(mode, name, review, token)
    finally:
        for listener in listeners:
            listener.stop()
        sandbox.stop()
        clean_up(prefix, name)
        shutil.rmtree(workdir, ignore_errors=True)

    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(
        f"pod CREATE through the sandbox apiserver, {args.creates} creates per configuration (after"
        f" {args.warmup} warm-up each), interleaved in shuffled rounds; {SIDECARSETS} SidecarSets target the"
        f" cluster, {MATCHING} select the pod; code {code_commit()}, {when}, load average at start"
        f" {load_at_start}, at end {load_average()}"
    )
    titles = {
        "a": "(a) no webhook, plain pod",
        "d": "(d) no webhook, pre-injected pod (floor)",
        "b": "(b) hub webhook (admission_server, granian)",
        "g": "(g) the same app, gunicorn gthread (before)",
        "n": "(n) no-op webhook, same patch (webhook floor)",
    }
    print(f"  {'per CREATE (ms)':<48}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}")
    table = {label: figures(values) for label, values in samples.items()}
    for label, values in table.items():
        print(f"  {titles[label]:<48}" + "".join(f"{value * 1000:>8.3f}" for value in values))
    pairs = (("b", "d"), ("b", "a"), ("g", "d"), ("b", "g"), ("n", "d"), ("b", "n"))
    for top, bottom in pairs:
        if top in table and bottom in table:
            ratios = [t / b for t, b in zip(table[top], table[bottom], strict=True)]
            print(f"  {top + ' / ' + bottom:<48}" + "".join(f"{value:>7.2f}x" for value in ratios))
    print(
        "  first admission in a fresh process (first, second call, ms): without warm-up"
        f" {fresh['cold'][0] * 1000:.1f}, {fresh['cold'][1] * 1000:.2f}; after the worker's warm-up"
        f" {fresh['warm'][0] * 1000:.1f}, {fresh['warm'][1] * 1000:.2f}"
    )
    print(
        "  CPU time of each webhook server per admission (all its processes and threads, ms): "
        + ", ".join(f"{model} {seconds * 1000:.2f}" for model, seconds in cpu_per_admission.items())
    )
    print(
        "  extra: listener start until /healthz answered (workers warm): "
        + ", ".join(f"{model} {seconds:.1f} s" for model, seconds in ready_seconds.items())
    )
    missed = []
    median_ratio = table["b"][0] / table["d"][0]
    p99_ratio = table["b"][2] / table["d"][2]
    if median_ratio > TARGET_MEDIAN_RATIO:
        missed.append(f"(b) median {median_ratio:.2f}x (d) > {TARGET_MEDIAN_RATIO}x")
    if p99_ratio > TARGET_P99_RATIO:
        missed.append(f"(b) p99 {p99_ratio:.2f}x (d) > {TARGET_P99_RATIO}x")
    if fresh["warm"][0] * 1000 > TARGET_FIRST_ADMISSION_MS:
        missed.append(
            f"first admission after warm-up {fresh['warm'][0] * 1000:.1f} ms > {TARGET_FIRST_ADMISSION_MS} ms"
        )
    for item in missed:
        print(f"MISSED: {item}")
    if missed:
        return 1
    print(
        f"targets met: (b) median {median_ratio:.2f}x and p99 {p99_ratio:.2f}x of (d); first admission"
        f" {fresh['warm'][0] * 1000:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
