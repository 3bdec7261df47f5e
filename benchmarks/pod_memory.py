"""Benchmark: memory of a worker reconciling a 10,000-pod cluster (issue 17 target 4: <= 80 MiB).

Builds N pods as a kube-apiserver serves them (``support/served_pods.py``: a ReplicaSet's pods
with an injected sidecar, managedFields, volumes, probes, five conditions..., ≈ 9 KB of JSON
each; the rollout state of ``plan_round.py``: 40% updated), and serves them from a local
HTTP server paged by 500 as the apiserver pages (in this process). Each measurement then runs
in a fresh child process, the worker: Django set up, the engine and the status write-back
imported, a ``KubeClient`` bound to the server, one warm-up call made (an empty pod list: the
kubernetes client builds a method's pydantic validators on its first call, ≈ 20 MiB once per
process, printed as "first call"); its RSS is read (``idle``); then it does, three times, what a
worker does with a cluster's pods:

- the engine's pass: ``PassInputs(kube).pods(sidecarset)`` (one paged list) and ``plan_round``
  with the engine's per-rollout ``PlanningCache`` (``rollouts.engine.planning_caches``), the
  plan's patches and status read;
- the status refresh: ``kube.list_pods()`` (as ``clusters.kube.PodListing``), the counters with
  the write-back's per-placement cache (``clusters.push._status_of``), the
  ``SidecarSetUpgradable`` plan (``plan_round(..., apply_canary_selector=False)``, the
  conditions it would write) and the drift check (``clusters.drift.find_drift``).

Printed per child: peak RSS (``VmHWM``) and RSS after the rounds, each minus idle. Two decodes
are measured in the same run on the same pods: **compact** (the hub: ``pod_records``) and
**whole** (the same worker with the pod lists decoded whole by ``orjson.loads``, as the hub did
before issue 17: the baseline). **Target: the compact worker's peak growth <= 80 MiB at 10,000
pods.** ``--long`` adds a 50,000-pod run of the compact worker and checks the growth is linear
(growth at 50,000 <= 5 x growth at 10,000 x 1.25).

    .venv/bin/python benchmarks/pod_memory.py [--pods 10000] [--long] [--quick]

Needs Django settings (``BENCH=pod_memory bash scripts/bench.sh`` provides them); the worker
uses no database. ``--quick``: the compact worker only (no baseline).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sidecarhub.settings")

TARGET_MIB = 80.0
LINEAR_SLACK = 1.25
ROUNDS = 3


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def worker(url: str, decode: str) -> dict[str, Any]:
    """The child: a worker-like process (see the module docstring). Returns its figures."""
    import gc

    import django

    django.setup()
    import orjson

    import clusters.kube
    from benchmarks.plan_round import build_sidecarset
    from benchmarks.support.served_pods import WARM_UP_SELECTOR
    from clusters.crypto import ClusterCredentials
    from clusters.drift import find_drift
    from clusters.kube import KubeClient
    from clusters.push import _status_of
    from rollouts.engine import planning_caches
    from rollouts.pass_inputs import PassInputs
    from sidecarhub.sidecarset import PodClass, plan_round

    if decode == "whole":  # the baseline: the pod lists decoded whole, as before issue 17
        clusters.kube.decode_pod_list = orjson.loads  # type: ignore[assignment]
    sidecarset = build_sidecarset(scatter=False)
    kube = KubeClient(
        cluster_name="bench",
        api_server_url=url,
        ca_bundle="",
        credentials=ClusterCredentials(token="bench"),
        timeout_seconds=120,
    )
    # A worker that has started has made API calls: the kubernetes client builds each method's
    # pydantic validators on its first call (≈ 20 MiB, once per process). Warm up with an empty
    # list, then read idle.
    gc.collect()
    before_warm_up = _rss_kib("VmRSS")
    kube.list_pods(label_selector=WARM_UP_SELECTOR)
    gc.collect()
    idle = _rss_kib("VmRSS")
    started = time.perf_counter()
    counts: dict[str, int] = {}
    for _ in range(ROUNDS):
        inputs = PassInputs(kube)  # the engine's pass
        listing = inputs.pods(sidecarset)
        with planning_caches.borrow(1) as cache:
            plan = plan_round(sidecarset, listing.pods, cache=cache)
        counts["to_patch"] = len(plan.to_patch)
        counts["matched"] = plan.status.matched_pods
        del plan, listing, inputs
        pods = kube.list_pods()  # the status refresh (clusters.kube.PodListing.pods)
        counts["status_updated"] = _status_of(1, sidecarset, pods, {})["updatedPods"]
        conditions = plan_round(sidecarset, pods, apply_canary_selector=False)
        counts["needs_recreate"] = len(conditions.of_class(PodClass.NEEDS_RECREATE))
        counts["drifted"] = len(find_drift(pods, {}, [sidecarset]))
        counts["pods"] = len(pods)
        del conditions, pods
        gc.collect()
    return {
        "idle_mib": idle / 1024,
        "warm_up_mib": (idle - before_warm_up) / 1024,
        "peak_growth_mib": (_rss_kib("VmHWM") - idle) / 1024,
        "after_growth_mib": (_rss_kib("VmRSS") - idle) / 1024,
        "seconds": time.perf_counter() - started,
        **counts,
    }


def run_worker(url: str, decode: str) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, __file__, "--worker", url, "--decode", decode],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def serve(count: int) -> Any:
    from benchmarks.plan_round import build_pods, build_sidecarset
    from benchmarks.support.served_pods import PodListServer, as_served
    from sidecarhub.sidecarset import SidecarSetFacts

    facts = SidecarSetFacts.of(build_sidecarset(scatter=False))
    pods = [as_served(pod, index) for index, pod in enumerate(build_pods(count, facts))]
    return PodListServer(pods)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--long", action="store_true", help="also 50,000 pods: growth must be linear")
    parser.add_argument("--quick", action="store_true", help="the compact worker only, no baseline")
    parser.add_argument("--repetitions", type=int, default=1, help="children per decode (max is kept)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--decode", default="compact", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.decode)))
        return 0

    sizes = [args.pods] + ([50_000] if args.long and args.pods != 50_000 else [])
    decodes = ["compact"] if args.quick else ["whole", "compact"]
    results: dict[tuple[int, str], dict[str, Any]] = {}
    for size in sizes:
        server = serve(size)
        try:
            print(
                f"{size} pods served as the apiserver lists them: {server.body_bytes / 2**20:.1f} MiB of "
                f"JSON in {len(server.pages)} pages; {ROUNDS} rounds (engine pass + status refresh) a worker"
            )
            for decode in decodes if size == args.pods else ["compact"]:
                runs = [run_worker(server.url, decode) for _ in range(max(1, args.repetitions))]
                worst = max(runs, key=lambda run: run["peak_growth_mib"])
                results[(size, decode)] = worst
                print(
                    f"  {decode:8s} idle {worst['idle_mib']:6.1f} MiB "
                    f"(first call +{worst['warm_up_mib']:.1f})   "
                    f"peak +{worst['peak_growth_mib']:6.1f} MiB   "
                    f"after +{worst['after_growth_mib']:6.1f} MiB   {worst['seconds']:5.1f} s   "
                    f"(pods {worst['pods']}, matched {worst['matched']}, to patch {worst['to_patch']}, "
                    f"needs recreate {worst['needs_recreate']}, drifted {worst['drifted']})"
                )
        finally:
            server.close()

    compact = results[(args.pods, "compact")]
    ok = compact["peak_growth_mib"] <= TARGET_MIB * args.pods / 10_000
    if (args.pods, "whole") in results:
        whole = results[(args.pods, "whole")]
        print(
            f"  compact / whole peak growth: {compact['peak_growth_mib'] / whole['peak_growth_mib']:.2f}x "
            f"({whole['peak_growth_mib'] / args.pods * 1024:.1f} KiB -> "
            f"{compact['peak_growth_mib'] / args.pods * 1024:.1f} KiB a pod)"
        )
    print(
        f"  target: compact peak growth <= {TARGET_MIB * args.pods / 10_000:.0f} MiB at {args.pods} pods -> "
        f"{'OK' if ok else 'OVER TARGET'}"
    )
    if (50_000, "compact") in results and args.pods != 50_000:
        big = results[(50_000, "compact")]["peak_growth_mib"]
        limit = compact["peak_growth_mib"] * 50_000 / args.pods * LINEAR_SLACK
        linear = big <= limit
        print(
            f"  50000 pods: peak +{big:.1f} MiB, {big / (compact['peak_growth_mib'] or 1):.2f}x the growth "
            f"at {args.pods} (linear: <= {limit:.0f} MiB) -> {'OK' if linear else 'NOT LINEAR'}"
        )
        ok = ok and linear
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
