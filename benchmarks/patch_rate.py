"""Benchmark: patch rate of an approved 1,000-pod step, maxUnavailable 100% (issue 6; target >= 0.9x).

Starts one sandbox cluster (etcd + kube-apiserver + kube-controller-manager) and the pod
simulator in-process, registers the cluster with the hub, publishes a SidecarSet (revision 1:
``log-agent:1``) and creates N pods the way the admission webhook injects them (the core's
``inject()``: the sidecar container plus the hub's hash annotations). Then, for each repetition,
on the same pods and the same apiserver:

1. **raw loop (baseline)**: one list of the pods, then a sequential loop of
   ``CoreV1Api.patch_namespaced_pod`` calls (``_preload_content=False``, the body read), one per
   pod, with the body the engine sends: the sidecar image (``log-agent:raw-<i>``), the hub's
   hash annotation and in-place update state, and the pod's ``resourceVersion`` as precondition;
2. **the hub**: a new revision (images only, ``log-agent:<i+2>``) is published; the hub creates
   the rollout (SidecarSet annotations: steps ``100%``, maxUnavailable ``100%``); the reconciler
   prepares the step; a second user approves it; then the reconciler (``reconcile_cluster``,
   called in this process, default pass budget and patches per pass; with ``--worker`` a real
   Celery worker) drives the step to the end.

Rates are pods per second of PATCHES: from the start of the loop (raw) or of the approval (hub)
to the response of the last patch (the hub's ``PodUpdate.patched_at``). The time until every pod
is observed running the new image and ready is printed as extra information. Each repetition
runs both, alternately, so drift hits both. Exits 1 when the median ratio hub / raw is under 0.9.

    .venv/bin/python benchmarks/patch_rate.py [--pods 1000] [--repetitions 3] [--worker]
        [--profile FILE]

Needs the environment ``scripts/bench.sh`` sets up (PostgreSQL, Redis, the sandbox binaries,
``DATABASE_URL``...). Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sidecarhub.settings")

import django  # noqa: E402

django.setup()

from django.db.models import Max, Min  # noqa: E402
from django.utils import timezone  # noqa: E402

from benchmarks.support.hub_sandbox import (  # noqa: E402
    SIDECAR,
    Bench,
    Json,
    SimulatorProcess,
    describe,
    document,
    pod_list,
    say,
    set_up,
    wait_all_ready,
    wait_for,
)
from clusters.models import Cluster  # noqa: E402
from rollouts.choices import TERMINAL_ROLLOUT_STATES, PodUpdateOutcome, RolloutState, StepState  # noqa: E402
from rollouts.models import PodUpdate, Rollout, RolloutStep  # noqa: E402
from rollouts.reconciler import reconcile_cluster  # noqa: E402
from rollouts.services import approve_step  # noqa: E402
from sandbox.cluster import SandboxCluster  # noqa: E402
from sandbox.simulator import PodSimulator  # noqa: E402
from sidecarhub.celery import app as celery_app  # noqa: E402
from sidecarhub.models import SidecarSet as SidecarSetRow  # noqa: E402
from sidecarhub.services import publish_sidecarset, update_sidecarset  # noqa: E402
from sidecarhub.sidecarset import ANNOTATION_INPLACE_UPDATE_STATE  # noqa: E402
from sidecarhub.sidecarset.annotations import ANNOTATION_HASH  # noqa: E402

TARGET_RATIO = 0.9
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


# --- baseline: the raw client loop -------------------------------------------------------------


def raw_body(pod: Json, image: str, sidecarset: str, now: datetime) -> Json:
    """The engine's patch shape (``sidecarhub.sidecarset.inplace.build_patch``), written out by hand: the
    sidecar image, this SidecarSet's entries of the hash annotation (its hash values kept, the
    timestamp refreshed) and of the in-place update state, and the resourceVersion precondition."""
    metadata = pod["metadata"]
    annotations = metadata.get("annotations") or {}
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    hashes = json.loads(annotations.get(ANNOTATION_HASH) or "{}")
    hashes[sidecarset] = {**hashes.get(sidecarset, {}), "updateTimestamp": stamp}
    image_id = next(
        (s.get("imageID", "") for s in pod["status"].get("containerStatuses") or [] if s["name"] == SIDECAR),
        "",
    )
    states = json.loads(annotations.get(ANNOTATION_INPLACE_UPDATE_STATE) or "{}")
    entry = states.get(sidecarset) or {"revision": "raw", "updateTimestamp": stamp}
    entry["lastContainerStatuses"] = {SIDECAR: {"imageID": image_id}}
    states[sidecarset] = entry
    return {
        "metadata": {
            "resourceVersion": metadata["resourceVersion"],
            "annotations": {
                ANNOTATION_HASH: json.dumps(hashes, sort_keys=True, separators=(",", ":")),
                ANNOTATION_INPLACE_UPDATE_STATE: json.dumps(states, sort_keys=True, separators=(",", ":")),
            },
        },
        "spec": {"containers": [{"name": SIDECAR, "image": image}]},
    }


@dataclass
class Run:
    patch_seconds: float  # start → response of the last patch
    ready_seconds: float  # start → every pod seen running the new image, ready
    pods: int
    conflicts: int = 0

    @property
    def rate(self) -> float:
        return self.pods / self.patch_seconds


def run_raw(bench: Bench, image: str) -> Run:
    started = time.monotonic()
    pods = pod_list(bench.core, bench.name)
    for pod in pods:
        body = raw_body(pod, image, bench.name, datetime.now(UTC))
        response = bench.core.patch_namespaced_pod(
            pod["metadata"]["name"],
            pod["metadata"]["namespace"],
            body,
            _content_type=STRATEGIC_MERGE_PATCH,
            _preload_content=False,
            _request_timeout=(5.0, 10.0),
        )
        response.data  # type: ignore[attr-defined]  # noqa: B018 -- read the reply: the connection goes back to the pool
    patched = time.monotonic()
    ready = wait_all_ready(bench, image, timeout=60 + bench.pods * 0.1)
    return Run(patched - started, ready - started, len(pods))


# --- the hub ------------------------------------------------------------------------------------


@contextlib.contextmanager
def celery_worker() -> Iterator[subprocess.Popen[bytes]]:
    """A real Celery worker (its own session) on the same database and Redis as this process."""
    log_path = ROOT / "var" / "bench-worker.log"
    log_path.parent.mkdir(exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "sidecarhub.celery", "worker", "--pool=prefork",
             "--concurrency=2", "--loglevel=WARNING", "--without-heartbeat", "--without-gossip",
             "--without-mingle"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        from sidecarhub.tasks import ping

        result = ping.apply_async(args=["ready"], ignore_result=False)
        wait_for(lambda: proc.poll() is not None or result.ready(), timeout=60, what="the Celery worker")
        if proc.poll() is not None:
            raise SystemExit(f"the Celery worker exited with {proc.returncode}; see {log_path}")
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


def drive(bench: Bench, done: Callable[[], bool], *, worker: bool, timeout: float, what: str) -> None:
    """Until ``done()``: call the reconciler here (its default budget), or let the worker do it."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        if worker:
            time.sleep(0.05)
        else:
            report = reconcile_cluster(bench.cluster.pk)
            if report.error:
                say(f"reconcile: {report.error}")


def run_hub(bench: Bench, image: str, *, worker: bool, profile: cProfile.Profile | None) -> Run:
    row = SidecarSetRow.objects.get(name=bench.name)
    update_sidecarset(
        bench.name, source=document(bench.name, image), actor=bench.author, expected_version=row.version
    )
    revision = publish_sidecarset(bench.name, actor=bench.author)  # after commit: the rollout is created
    rollout = wait_for(
        lambda: Rollout.objects.filter(to_revision=revision).first(), timeout=30, what="the rollout"
    )
    assert rollout.steps == ["100%"] and rollout.max_unavailable == "100%", (
        rollout.steps,
        rollout.max_unavailable,
    )

    def awaiting() -> RolloutStep | None:
        return RolloutStep.objects.filter(rollout=rollout, state=StepState.AWAITING_APPROVAL).first()

    drive(bench, lambda: awaiting() is not None, worker=worker, timeout=120, what="the step prepared")
    step = awaiting()
    assert step is not None and step.pod_count == bench.pods, step

    def finished() -> bool:
        ended = [*TERMINAL_ROLLOUT_STATES, RolloutState.PAUSED]  # paused: a failure (reported below)
        return Rollout.objects.filter(pk=rollout.pk, state__in=ended).exists()

    approved_at = timezone.now()
    started = time.monotonic()
    approve_step(step.pk, actor=bench.approver, comment="benchmark")
    if profile is not None:
        profile.enable()
    try:
        drive(bench, finished, worker=worker, timeout=300 + bench.pods * 0.3, what="the rollout to finish")
    finally:
        if profile is not None:
            profile.disable()
    observed = time.monotonic()
    rollout.refresh_from_db()
    rows = PodUpdate.objects.filter(rollout=rollout)
    outcomes = set(rows.values_list("outcome", "patch_attempts"))
    if rollout.state != RolloutState.COMPLETED or outcomes != {(PodUpdateOutcome.SUCCEEDED, 1)}:
        raise SystemExit(f"rollout {rollout.pk} ended {rollout.state}: {rollout.reason}; rows {outcomes}")
    times = rows.aggregate(first=Min("patching_at"), last=Max("patched_at"), conflicts=Max("conflicts"))
    step = RolloutStep.objects.get(pk=step.pk)
    ready_seconds = (
        (step.finished_at - approved_at).total_seconds() if step.finished_at else observed - started
    )
    return Run(
        (times["last"] - approved_at).total_seconds(), ready_seconds, rows.count(), times["conflicts"] or 0
    )


# --- set-up, report ---------------------------------------------------------------------------


def print_profile(profile: cProfile.Profile, path: str) -> None:
    profile.dump_stats(path)
    stats = pstats.Stats(profile, stream=sys.stdout)
    print(f"\nprofile of the hub's drive loops (all repetitions), saved to {path}:")
    stats.sort_stats("cumulative").print_stats(30)
    stats.sort_stats("tottime").print_stats(20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help="drive the hub through a real Celery worker")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the in-process hub runs into FILE")
    parser.add_argument(
        "--simulator",
        choices=("process", "inprocess"),
        default="process",
        help="run the pod simulator in a child process (default) or as threads of this process",
    )
    parser.add_argument("--keep", action="store_true", help="keep the sandbox's directory (logs)")
    args = parser.parse_args()
    if args.worker and args.profile:
        parser.error("--profile profiles this process: not with --worker")

    name = f"bench-{uuid.uuid4().hex[:6]}"
    workdir = Path(tempfile.mkdtemp(prefix="sidecarhub-bench-"))
    sandbox: SandboxCluster | None = None
    simulator: PodSimulator | SimulatorProcess | None = None
    cluster_id: int | None = None
    profile = cProfile.Profile() if args.profile else None
    raw_runs: list[Run] = []
    hub_runs: list[Run] = []
    try:
        sandbox, simulator, bench, api = set_up(
            name, workdir, args.pods, separate_simulator=args.simulator == "process"
        )
        cluster_id = bench.cluster.pk
        with celery_worker() if args.worker else contextlib.nullcontext():
            for index in range(args.repetitions):
                raw = run_raw(bench, f"{SIDECAR}:raw-{index + 1}")
                say(f"repetition {index + 1}: raw loop {raw.rate:.1f} pods/s")
                hub = run_hub(bench, f"{SIDECAR}:{index + 2}", worker=args.worker, profile=profile)
                say(f"repetition {index + 1}: hub {hub.rate:.1f} pods/s ({hub.rate / raw.rate:.2f}x)")
                raw_runs.append(raw)
                hub_runs.append(hub)
        if simulator.errors:
            say(f"simulator errors (last 5): {simulator.errors[-5:]}")
        api.close()
    finally:
        if simulator is not None:
            simulator.stop()
        if sandbox is not None:
            sandbox.stop()
        if cluster_id is not None:
            Cluster.objects.filter(pk=cluster_id).delete()  # its rollouts and rows go with it
        with contextlib.suppress(Exception):
            celery_app.control.purge()  # tasks queued for this run's cluster (no worker ran them)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    ratios = [hub.rate / raw.rate for hub, raw in zip(hub_runs, raw_runs, strict=True)]
    how = "a Celery worker" if args.worker else "reconcile_cluster in this process"
    print(
        f"{args.pods} pods, {args.repetitions} repetitions, one sandbox apiserver, simulator "
        f"{'in a child process' if args.simulator == 'process' else 'in this process'}; "
        f"the hub through {how}"
    )
    print(f"  raw client loop (baseline)   patches {describe([r.rate for r in raw_runs])} pods/s")
    print(f"  hub, approved step           patches {describe([r.rate for r in hub_runs])} pods/s")
    print(f"  ratio hub / raw (per repetition: {', '.join(f'{r:.2f}' for r in ratios)})")
    print(f"    median {statistics.median(ratios):.2f}x, min {min(ratios):.2f}x, max {max(ratios):.2f}x")
    print(
        "  extra: all pods seen ready on the new image after: raw "
        + describe([r.ready_seconds for r in raw_runs]).strip()
        + " s, hub (step succeeded) "
        + describe([r.ready_seconds for r in hub_runs]).strip()
        + " s"
    )
    if profile is not None:
        print_profile(profile, args.profile)
    ok = statistics.median(ratios) >= TARGET_RATIO
    print(f"  target: median ratio >= {TARGET_RATIO}x -> {'OK' if ok else 'UNDER TARGET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
