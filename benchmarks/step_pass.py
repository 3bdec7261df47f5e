"""Benchmark: the apiserver calls and revision parses of one auto-approved 1,000-pod step (issue 12).

It records figures; it has no target (exits 0 whenever every rollout completed).

Set-up as ``patch_rate.py`` (``benchmarks/support/hub_sandbox.py``): one sandbox cluster and the pod
simulator (child process), the cluster registered with the hub and switched to
``rollout_auto_approve``, a SidecarSet published (revision 1, ``log-agent:1``; annotations: one step
``100%``, maxUnavailable ``100%``) and N pods created already injected, all Ready. Then, for each
repetition, on the same pods and the same apiserver:

1. an images-only revision (``log-agent:<i+2>``) is published (``sidecarhub.services``): the hub
   creates the rollout;
2. ``rollouts.reconciler.reconcile_cluster(cluster_id)`` is called in this process (default pass
   budget and patches per pass), in a loop, until the rollout is completed: it starts the rollout,
   prepares the step (auto-approved), starts it, patches and observes the pods to the end.

Counted from the publish to the completion, per reconcile call and in total:

- every apiserver request this process sends, at the HTTP level (the ``kubernetes`` client's
  ``RESTClientObject.request``: method and path), by Kubernetes verb and resource. A **pod list**
  is a GET of a pod collection; its first page (no ``continue`` parameter) starts a list, so
  "pod lists" counts lists and "pod LIST requests" counts pages (``list_pods`` pages by 500);
- ``SidecarSetRevision.to_core`` calls (a revision document parsed into the core's SidecarSet).

Each counted event is tagged with the stage that caused it: the innermost function of the
``rollouts`` package on the call stack found in ``STAGES`` (``prepare_step`` → prepare, ...). A pod
list of the run stage is tagged "observe" when no pod was patched before the next pod list (or the
end of the reconcile call). Code that names its stages differently shows them as "other"; the
totals do not depend on the tags. Requests sent from pool threads (the batched patches) have no
caller on their stack: "pool".

Wall time runs from the publish to the reconcile call after which the rollout is completed;
"in reconcile" sums the reconcile calls' own durations. Between two calls the loop sleeps 50 ms
only when the previous call reported no more work.

    .venv/bin/python benchmarks/step_pass.py [--pods 1000] [--repetitions 3] [--json]
    SIDECARHUB_PG_DB=... BENCH=step_pass bash scripts/bench.sh --pods 1000 --repetitions 3

Needs the environment ``scripts/bench.sh`` sets up (PostgreSQL, Redis, the sandbox binaries,
``DATABASE_URL``...).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import inspect
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sidecarhub.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from kubernetes.client import rest  # noqa: E402

from benchmarks.support.hub_sandbox import (  # noqa: E402
    SIDECAR,
    Bench,
    SimulatorProcess,
    document,
    say,
    set_up,
    wait_for,
)
from clusters.models import Cluster  # noqa: E402
from rollouts.choices import TERMINAL_ROLLOUT_STATES, PodUpdateOutcome, RolloutState  # noqa: E402
from rollouts.models import Approval, PodUpdate, Rollout, RolloutStep  # noqa: E402
from rollouts.reconciler import reconcile_cluster  # noqa: E402
from sandbox.cluster import SandboxCluster  # noqa: E402
from sandbox.simulator import PodSimulator  # noqa: E402
from sidecarhub.celery import app as celery_app  # noqa: E402
from sidecarhub.models import SidecarSet as SidecarSetRow  # noqa: E402
from sidecarhub.models import SidecarSetRevision  # noqa: E402
from sidecarhub.services import publish_sidecarset, update_sidecarset  # noqa: E402
from sidecarhub.sidecarset import SidecarSet as CoreSidecarSet  # noqa: E402

# The innermost function of the ``rollouts`` package on the stack names the stage of an event.
STAGES: dict[str, str] = {
    "maybe_start": "start rollout",
    "start_blocker": "start rollout",
    "prepare_step": "prepare",
    "start_step": "start",
    "claim_step_pods": "start",
    "run_step": "run",
    "run_step_pass": "run",
    "finalize": "finalize",
}
STAGE_ORDER = ["start rollout", "prepare", "start", "run", "observe", "finalize", "other", "pool"]
POD_LIST = "list pods"
Json = dict[str, Any]
TO_CORE = "to_core"


# --- counting ---------------------------------------------------------------------------------


def request_label(method: str, url: str) -> tuple[str, bool]:
    """``("list pods", first_page)``, ``("patch pods", False)``...: the Kubernetes verb and resource
    of one HTTP request (collection GET = list, or watch; item GET = get; POST = create...)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    segments = [s for s in parts.path.split("/") if s]
    if segments[:1] == ["api"]:
        rest_of = segments[2:]
    elif segments[:1] == ["apis"]:
        rest_of = segments[3:]
    else:  # /version, /healthz...
        return f"{method.lower()} /{'/'.join(segments)}", False
    if len(rest_of) >= 3 and rest_of[0] == "namespaces":
        rest_of = rest_of[2:]  # a namespaced resource
    resource = rest_of[0] if rest_of else "(root)"
    named = len(rest_of) >= 2
    if len(rest_of) >= 3:
        resource += "/" + rest_of[2]  # a subresource (status, eviction...)
    method = method.upper()
    if method == "GET":
        verb = "get" if named else ("watch" if query.get("watch") == ["true"] else "list")
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())
        if method == "DELETE" and not named:
            verb = "deletecollection"
    label = f"{verb} {resource}"
    return label, label == POD_LIST and "continue" not in query


def caller_stage() -> str:
    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code.co_name in STAGES and str(frame.f_globals.get("__name__", "")).startswith(
            "rollouts."
        ):
            return STAGES[frame.f_code.co_name]
        frame = frame.f_back
    return "other" if threading.current_thread() is threading.main_thread() else "pool"


@dataclass
class Event:
    label: str  # "list pods", "patch pods", ..., "to_core"
    stage: str
    first_page: bool = False  # a pod list's first page: one list


@dataclass
class Call:
    """One reconcile call (or the publish: ``index`` 0) and what it caused."""

    index: int
    seconds: float = 0.0
    patched: int = 0
    transitions: list[str] = field(default_factory=list)
    error: str = ""
    events: list[Event] = field(default_factory=list)

    def requests(self) -> list[Event]:
        return [e for e in self.events if e.label != TO_CORE]

    def pod_lists(self) -> list[Event]:
        return [e for e in self.events if e.first_page]

    def pod_list_requests(self) -> int:
        return sum(1 for e in self.events if e.label == POD_LIST)

    def to_core(self) -> list[Event]:
        return [e for e in self.events if e.label == TO_CORE]

    def count(self, label: str) -> int:
        return sum(1 for e in self.events if e.label == label)

    def tag_observe_turns(self) -> None:
        """A run-stage pod list followed by no pod patch before the next pod list: observe."""
        for index, event in enumerate(self.events):
            if not event.first_page or event.stage != "run":
                continue
            rest_of = self.events[index + 1 :]
            turn_end = next((i for i, e in enumerate(rest_of) if e.first_page), len(rest_of))
            if not any(e.label == "patch pods" for e in rest_of[:turn_end]):
                event.stage = "observe"


class Recorder:
    """Counts HTTP requests and ``to_core`` calls into the current ``Call`` (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.call: Call | None = None

    def record(self, label: str, *, first_page: bool = False) -> None:
        stage = caller_stage()
        with self.lock:
            if self.call is not None:
                self.call.events.append(Event(label, stage, first_page))

    @contextlib.contextmanager
    def into(self, call: Call) -> Iterator[Call]:
        with self.lock:
            self.call = call
        try:
            yield call
        finally:
            with self.lock:
                self.call = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[Recorder]:
        """Wrap ``RESTClientObject.request`` and ``SidecarSetRevision.to_core`` while inside."""
        original_request = rest.RESTClientObject.request
        original_to_core = SidecarSetRevision.to_core

        def request(
            client: rest.RESTClientObject,
            method: Any,
            url: Any,
            headers: Any = None,
            body: Any = None,
            post_params: Any = None,
            _request_timeout: Any = None,
        ) -> Any:
            label, first_page = request_label(str(method), str(url))
            self.record(label, first_page=first_page)
            return original_request(client, method, url, headers, body, post_params, _request_timeout)

        def to_core(revision: SidecarSetRevision) -> CoreSidecarSet:
            self.record(TO_CORE)
            return original_to_core(revision)

        rest.RESTClientObject.request = request  # type: ignore[method-assign]
        SidecarSetRevision.to_core = to_core  # type: ignore[method-assign,assignment]
        try:
            yield self
        finally:
            rest.RESTClientObject.request = original_request  # type: ignore[method-assign]
            SidecarSetRevision.to_core = original_to_core  # type: ignore[method-assign]


# --- one rollout ------------------------------------------------------------------------------


@dataclass
class Run:
    wall_seconds: float  # publish → the rollout seen completed
    publish: Call
    calls: list[Call]
    rollout_id: int

    @property
    def reconcile_seconds(self) -> float:
        return sum(c.seconds for c in self.calls)

    def total(self, measure: Callable[[Call], int]) -> int:
        return sum(measure(c) for c in self.calls)


def run_step(bench: Bench, recorder: Recorder, image: str, *, timeout: float) -> Run:
    row = SidecarSetRow.objects.get(name=bench.name)
    update_sidecarset(
        bench.name, source=document(bench.name, image), actor=bench.author, expected_version=row.version
    )
    publish = Call(0)
    started = time.monotonic()
    with recorder.into(publish):
        revision = publish_sidecarset(bench.name, actor=bench.author)  # after commit: the rollout
    rollout = wait_for(
        lambda: Rollout.objects.filter(to_revision=revision).first(), timeout=30, what="the rollout"
    )
    assert rollout.steps == ["100%"] and rollout.max_unavailable == "100%", (
        rollout.steps,
        rollout.max_unavailable,
    )
    deadline = started + timeout
    calls: list[Call] = []
    ended = [*TERMINAL_ROLLOUT_STATES, RolloutState.PAUSED]  # paused: a failure (reported below)
    while not Rollout.objects.filter(pk=rollout.pk, state__in=ended).exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for rollout {rollout.pk} to complete")
        call = Call(len(calls) + 1)
        with recorder.into(call):
            began = time.monotonic()
            report = reconcile_cluster(bench.cluster.pk)
            call.seconds = time.monotonic() - began
        call.patched, call.transitions, call.error = report.patched, list(report.transitions), report.error
        call.tag_observe_turns()
        calls.append(call)
        if report.error:
            say(f"reconcile: {report.error}")
        if not report.more_work:
            time.sleep(0.05)
    wall = time.monotonic() - started
    rollout.refresh_from_db()
    rows = PodUpdate.objects.filter(rollout=rollout)
    outcomes = set(rows.values_list("outcome", "patch_attempts"))
    if rollout.state != RolloutState.COMPLETED or outcomes != {(PodUpdateOutcome.SUCCEEDED, 1)}:
        raise SystemExit(f"rollout {rollout.pk} ended {rollout.state}: {rollout.reason}; rows {outcomes}")
    steps = list(RolloutStep.objects.filter(rollout=rollout))
    if rows.count() != bench.pods or [s.pod_count for s in steps] != [bench.pods]:
        raise SystemExit(f"rollout {rollout.pk}: {rows.count()} rows, steps {[s.pod_count for s in steps]}")
    if not Approval.objects.filter(step__rollout=rollout, automatic=True).exists():
        raise SystemExit(f"rollout {rollout.pk}: its step was not auto-approved")
    return Run(wall, publish, calls, rollout.pk)


# --- report -----------------------------------------------------------------------------------


def by_stage(events: list[Event]) -> str:
    counts = Counter(e.stage for e in events)
    order = [s for s in STAGE_ORDER if s in counts] + sorted(set(counts) - set(STAGE_ORDER))
    return ", ".join(f"{stage} {counts[stage]}" for stage in order) or "-"


def by_label(events: list[Event]) -> str:
    counts = Counter(e.label for e in events)
    return ", ".join(f"{label} {count}" for label, count in sorted(counts.items())) or "-"


def call_line(call: Call) -> str:
    lists = call.pod_lists()
    sequence = [e.stage for e in lists]
    compact: list[str] = []
    for stage in sequence:  # run, observe, observe, observe -> run, observe x3
        if compact and compact[-1].split(" x")[0] == stage:
            head, _, times = compact[-1].partition(" x")
            compact[-1] = f"{head} x{int(times or 1) + 1}"
        else:
            compact.append(stage)
    return (
        f"    call {call.index:2d}: {call.seconds:5.2f} s, patched {call.patched:4d}; "
        f"pod lists {len(lists)} ({', '.join(compact) or '-'}; {call.pod_list_requests()} requests); "
        f"to_core {len(call.to_core())} ({by_stage(call.to_core())}); "
        f"requests {len(call.requests())}: {by_label(call.requests())}"
        + (f"; error: {call.error}" if call.error else "")
    )


def stats_row(name: str, samples: list[float], unit: str = "") -> str:
    fmt = (lambda v: f"{v:8.2f}") if unit == "s" else (lambda v: f"{v:8.0f}")
    return (
        f"  {name:<44}{fmt(statistics.median(samples))}{fmt(min(samples))}{fmt(max(samples))}"
        f"   ({', '.join(fmt(v).strip() for v in samples)})"
    )


def code_version() -> str:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return head + ("-dirty" if dirty else "")
    return "unknown"


def count_label(run: Run, *, label: str) -> int:
    return run.total(lambda c: c.count(label))


def summary(runs: list[Run], args: argparse.Namespace, loads: list[tuple[float, float, float]]) -> Json:
    def figures(measure: Callable[[Run], float]) -> dict[str, Any]:
        samples = [measure(r) for r in runs]
        return {
            "median": statistics.median(samples),
            "min": min(samples),
            "max": max(samples),
            "samples": samples,
        }

    labels = sorted({e.label for r in runs for c in r.calls for e in c.requests()})
    return {
        "benchmark": "step_pass",
        "code": code_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "pods": args.pods,
        "repetitions": args.repetitions,
        "load_average": {"start": loads[0], "end": loads[-1]},
        "wall_seconds": figures(lambda r: r.wall_seconds),
        "reconcile_seconds": figures(lambda r: r.reconcile_seconds),
        "reconcile_calls": figures(lambda r: len(r.calls)),
        "pod_lists": figures(lambda r: r.total(lambda c: len(c.pod_lists()))),
        "pod_list_requests": figures(lambda r: r.total(lambda c: c.pod_list_requests())),
        "apiserver_requests": figures(lambda r: r.total(lambda c: len(c.requests()))),
        "requests_by_label": {
            label: figures(functools.partial(count_label, label=label)) for label in labels
        },
        "to_core": figures(lambda r: r.total(lambda c: len(c.to_core()))),
        "publish": {
            "to_core": figures(lambda r: len(r.publish.to_core())),
            "apiserver_requests": figures(lambda r: len(r.publish.requests())),
        },
        "runs": [
            {
                "rollout": r.rollout_id,
                "wall_seconds": r.wall_seconds,
                "calls": [
                    {
                        "seconds": c.seconds,
                        "patched": c.patched,
                        "pod_lists": [e.stage for e in c.pod_lists()],
                        "pod_list_requests": c.pod_list_requests(),
                        "to_core": dict(Counter(e.stage for e in c.to_core())),
                        "requests": dict(Counter(e.label for e in c.requests())),
                        "transitions": c.transitions,
                    }
                    for c in r.calls
                ],
            }
            for r in runs
        ],
    }


def print_report(runs: list[Run], args: argparse.Namespace, data: Json) -> None:
    load = data["load_average"]
    budget = float(getattr(settings, "SIDECARHUB_ROLLOUT_PASS_SECONDS", 5.0))
    print(
        f"one auto-approved step of {args.pods} pods (steps 100%, maxUnavailable 100%), "
        f"{len(runs)} repetitions; reconcile_cluster in this process (pass budget {budget:g} s), "
        f"simulator in {'a child process' if args.simulator == 'process' else 'this process'}; "
        f"code {data['code']}, {data['date']}, load average at start {load['start'][0]:.2f} "
        f"{load['start'][1]:.2f} {load['start'][2]:.2f}, at end {load['end'][0]:.2f} "
        f"{load['end'][1]:.2f} {load['end'][2]:.2f}"
    )
    print(f"  {'per rollout (publish → completed)':<44}{'median':>8}{'min':>8}{'max':>8}   (each run)")
    print(stats_row("wall time, publish → completed (s)", [r.wall_seconds for r in runs], "s"))
    print(stats_row("time inside reconcile calls (s)", [r.reconcile_seconds for r in runs], "s"))
    print(stats_row("reconcile calls", [len(r.calls) for r in runs]))
    print(stats_row("pod lists (first pages)", [r.total(lambda c: len(c.pod_lists())) for r in runs]))
    print(
        stats_row("pod LIST requests (all pages)", [r.total(lambda c: c.pod_list_requests()) for r in runs])
    )
    print(stats_row("apiserver requests, total", [r.total(lambda c: len(c.requests())) for r in runs]))
    for label, figures in data["requests_by_label"].items():
        print(stats_row(f"  {label}", figures["samples"]))
    print(stats_row("to_core calls (revision parses)", [r.total(lambda c: len(c.to_core())) for r in runs]))
    print(
        f"  extra, in the publish call itself: to_core {[len(r.publish.to_core()) for r in runs]}, "
        f"apiserver requests {[len(r.publish.requests()) for r in runs]}"
    )
    for number, run in enumerate(runs, 1):
        lists = [e for c in run.calls for e in c.pod_lists()]
        cores = [e for c in run.calls for e in c.to_core()]
        print(
            f"  repetition {number} (rollout {run.rollout_id}): {run.wall_seconds:.2f} s; "
            f"pod lists by stage: {by_stage(lists)}; to_core by stage: {by_stage(cores)}"
        )
        for call in run.calls:
            print(call_line(call))


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    parser.add_argument(
        "--simulator",
        choices=("process", "inprocess"),
        default="process",
        help="run the pod simulator in a child process (default) or as threads of this process",
    )
    parser.add_argument("--keep", action="store_true", help="keep the sandbox's directory (logs)")
    args = parser.parse_args()

    name = f"bench-{uuid.uuid4().hex[:6]}"
    workdir = Path(tempfile.mkdtemp(prefix="sidecarhub-bench-"))
    sandbox: SandboxCluster | None = None
    simulator: PodSimulator | SimulatorProcess | None = None
    cluster_id: int | None = None
    runs: list[Run] = []
    loads = [os.getloadavg()]
    try:
        sandbox, simulator, bench, api = set_up(
            name, workdir, args.pods, separate_simulator=args.simulator == "process"
        )
        cluster_id = bench.cluster.pk
        Cluster.objects.filter(pk=cluster_id).update(rollout_auto_approve=True)
        recorder = Recorder()
        loads = [os.getloadavg()]
        with recorder.installed():
            for index in range(args.repetitions):
                run = run_step(bench, recorder, f"{SIDECAR}:{index + 2}", timeout=300 + args.pods * 0.3)
                say(
                    f"repetition {index + 1}: {run.wall_seconds:.2f} s, {len(run.calls)} reconcile calls, "
                    f"{run.total(lambda c: len(c.pod_lists()))} pod lists, "
                    f"{run.total(lambda c: len(c.to_core()))} to_core"
                )
                runs.append(run)
        loads.append(os.getloadavg())
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
            celery_app.control.purge()  # the wake-ups queued for this run's cluster (no worker ran them)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    data = summary(runs, args, loads)
    print_report(runs, args, data)
    if args.json:
        print(json.dumps(data, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
