"""Benchmark: plan one update round for 10,000 pods (issue 17 target 5).

Builds 10,000 synthetic pods in the middle of a rollout (40% updated, a few still restarting or not
ready, the rest waiting), as the apiserver would return them: every pod has its own timestamps,
so no two annotation values are equal. By default the pods are then decoded from apiserver-shaped
JSON pages into compact records, as a worker holds them right after listing them (``--layout
built`` keeps the shuffled Python-built dicts instead). Times, over several repetitions:

- ``plan_round`` cold: no cache, every pod evaluated from scratch: what a worker pays when it
  plans a round from the pod list it just fetched;
- ``plan_round`` steady state: with a ``PlanningCache`` kept from the previous round, after 5% of
  the pods changed (new resourceVersion, as a watch delivers them): extra information;
- the list call and list -> plan (decoding the listed pages into records + a cold round).

and, in the same run on the same pods, three baselines: sorting the pods by name (the floor for
any ordering), the unavoidable reads (``unavoidable_reads``: what any cold round must read and
parse, nothing more) and evaluating the predicates alone (``evaluate_pod``), so that a slow or
busy machine shows in the baselines too.

Targets (medians, same run): cold ``plan_round`` <= 2.0x the unavoidable reads, and decode + plan
<= the list call. The list call is the real one only with ``--apiserver``: a sandbox kube-apiserver
holding the pods (``support/sandbox_pods.py``; storing 10,000 takes ≈ 80 s), listed paged as
``KubeClient.list_pods`` lists them; it prints the list rows and the cold / floor rows over the
records listed from it. Without it, the list call is a local server sending ready bytes (a lower
bound of any list call): that ratio is printed as information only. Exits 1 when a target is
missed.

    .venv/bin/python benchmarks/plan_round.py [--pods 10000] [--repetitions 15] [--quick]
        [--scatter] [--layout fetched|built] [--apiserver]
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
import urllib3

from benchmarks.support.served_pods import PodListServer, as_served
from sidecarhub.sidecarset import (
    ANNOTATION_INPLACE_UPDATE_STATE,
    PlanningCache,
    SidecarSetFacts,
    evaluate_pod,
    parse_sidecarset,
    plan_round,
)
from sidecarhub.sidecarset.annotations import (
    ANNOTATION_HASH,
    ANNOTATION_HASH_WITHOUT_IMAGE,
    ANNOTATION_INJECTED_LIST,
)
from sidecarhub.sidecarset.pod_records import decode_pod_list

TARGET_RATIO = 2.0  # cold plan_round / unavoidable reads (issue 17 target 5)
COLD = "plan_round cold (no cache)"
FLOOR = "unavoidable reads (floor)"
LIST = "list call (HTTP, bytes only)"
LIST_APISERVER = "list call (kube-apiserver, bytes)"
CONTINUE = re.compile(rb'"continue":"([^"]+)"')
DECODE_PLAN = "list -> plan: decode + cold plan"
ZONES = ("a", "b", "c", "d")


def build_sidecarset(*, scatter: bool) -> Any:
    strategy: dict[str, Any] = {"maxUnavailable": "10%", "partition": 0}
    if scatter:
        strategy["scatterStrategy"] = [{"key": "zone", "value": "*"}]
    return parse_sidecarset(
        {
            "apiVersion": "apps.kruise.io/v1beta1",
            "kind": "SidecarSet",
            "metadata": {"name": "mesh"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "containers": [{"name": "envoy", "image": "envoy:2.0"}],
                "updateStrategy": strategy,
            },
        }
    )


def _record(hash_value: str, stamp: str, revision: str | None) -> str:
    entry: dict[str, Any] = {
        "hash": hash_value,
        "sidecarList": ["envoy"],
        "sidecarSetName": "mesh",
        "updateTimestamp": stamp,
    }
    if revision:
        entry["controllerRevision"] = revision
    return json.dumps({"mesh": entry}, sort_keys=True, separators=(",", ":"))


def build_pods(count: int, facts: SidecarSetFacts, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    base = datetime(2025, 1, 1, tzinfo=UTC)
    old_hash = "0" * 64
    pods = []
    for index in range(count):
        created = base + timedelta(seconds=rng.randrange(10_000_000))
        stamp = created.strftime("%Y-%m-%dT%H:%M:%SZ")
        roll = rng.random()
        updated = roll < 0.40
        restarting = updated and roll > 0.38  # patched, kubelet not done yet
        ready = rng.random() > 0.03
        envoy_image = "envoy:2.0" if updated else "envoy:1.0"
        status_image = "envoy:1.0" if (not updated or restarting) else "envoy:2.0"
        old_id = f"docker.io/library/envoy@sha256:{'1' * 64}"
        new_id = f"docker.io/library/envoy@sha256:{'2' * 64}"
        annotations = {
            ANNOTATION_INJECTED_LIST: "mesh",
            ANNOTATION_HASH: _record(facts.revision_hash if updated else old_hash, stamp, "mesh-abc"),
            ANNOTATION_HASH_WITHOUT_IMAGE: _record(facts.hash_without_images, stamp, None),
        }
        if updated:
            annotations[ANNOTATION_INPLACE_UPDATE_STATE] = json.dumps(
                {
                    "mesh": {
                        "revision": "mesh-abc",
                        "updateTimestamp": stamp,
                        "lastContainerStatuses": {"envoy": {"imageID": old_id}},
                    }
                },
                separators=(",", ":"),
            )
        ready_text = "True" if ready else "False"
        pods.append(
            {
                "metadata": {
                    "name": f"web-{index:05d}",
                    "namespace": f"team-{index % 20}",
                    "uid": f"uid-{index}",
                    "resourceVersion": str(1000 + index),
                    "creationTimestamp": stamp,
                    "labels": {"app": "web", "zone": ZONES[index % len(ZONES)]},
                    "annotations": annotations,
                },
                "spec": {
                    "nodeName": f"node-{index % 300}",
                    "containers": [
                        {"name": "app", "image": "web:1.0"},
                        {"name": "envoy", "image": envoy_image},
                    ],
                },
                "status": {
                    "phase": "Running",
                    "conditions": [
                        {"type": "Ready", "status": ready_text, "lastTransitionTime": stamp},
                    ],
                    "containerStatuses": [
                        {
                            "name": "app",
                            "image": "web:1.0",
                            "imageID": "web@sha256:" + "3" * 64,
                            "ready": ready,
                            "restartCount": rng.randrange(3),
                        },
                        {
                            "name": "envoy",
                            "image": status_image,
                            "imageID": old_id if status_image == "envoy:1.0" else new_id,
                            "ready": ready and not restarting,
                            "restartCount": 0,
                        },
                    ],
                },
            }
        )
    rng.shuffle(pods)
    return pods


def as_fetched(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pods as a worker holds them right after listing them: compact records decoded from
    the apiserver's JSON (every field a real apiserver sends, ``served_pods.as_served``), paged
    by 500 as ``KubeClient.list_pods`` lists them (``pod_records.decode_pod_list``).

    Decoded in list order, the pods lie in memory in list order. Python-built dicts, then
    shuffled, would not: at 10,000 pods, where the data is far larger than the CPU caches, that
    layout alone costs the planner (and the sort baseline) two to three times more.
    """
    fetched: list[dict[str, Any]] = []
    for page in served_pages(pods):
        fetched.extend(decode_pod_list(page)["items"])
    return fetched


def served_pages(pods: list[dict[str, Any]], page_size: int = 500) -> list[bytes]:
    """The PodList pages an apiserver sends for ``pods`` (dressed as ``served_pods.as_served``).

    Built a page at a time: dressed, the 10,000 pods are ≈ 400 MB of dicts, and freeing them all
    at once leaves a heap so fragmented that the records decoded next lie scattered in it (every
    row, the sort baseline included, then measured 4-8x slower)."""
    return [
        orjson.dumps(
            {
                "kind": "PodList",
                "items": [
                    as_served(pods[index], index) for index in range(start, min(start + page_size, len(pods)))
                ],
            }
        )
        for start in range(0, len(pods), page_size)
    ]


def time_ms(
    run: Callable[[], object], repetitions: int, before: Callable[[], None] | None = None
) -> list[float]:
    """Wall time of ``run`` per repetition; ``before`` runs untimed ahead of each one."""
    run()  # warm-up: imports, first-call costs
    samples = []
    for _ in range(repetitions):
        if before is not None:
            before()
        # Collect the harness's own garbage (the pods copied by ``churn``) untimed; collections
        # that the timed code's own allocations trigger still count. (timeit disables GC altogether.)
        gc.collect()
        started = time.perf_counter()
        run()
        # The planner pauses the collector for a round; the young-generation collection it
        # defers (walking what the round kept) would run at the next allocation: count it here.
        gc.collect(0)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def interleaved_ms(runs: dict[str, Callable[[], object]], repetitions: int) -> dict[str, list[float]]:
    """``time_ms`` of each of ``runs``, one repetition of each in turn, so that the host's drift
    during the run hits every row alike (their ratio is a target)."""
    samples: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(repetitions):
        for label, run in runs.items():
            samples[label].extend(time_ms(run, 1))
    return samples


def unavoidable_reads(facts: SidecarSetFacts, pods: list[dict[str, Any]]) -> tuple[int, int]:
    """The floor: only what any cold round must do, with no shape checks and no fallbacks.

    Reads every field the §1.2 predicates need (selector labels, the injected list, the hash
    annotation, sidecar names and images, phase, the Ready condition, the container statuses),
    parses both JSON annotations of each updated pod, parses each candidate's Ready time and
    builds its (namespace, name, uid) ref. Nothing is ordered, classified or counted beyond
    that. Assumes well-formed pods (true of the synthetic ones). Returns how many pods were
    found updated and how many refs were built.
    """
    match_labels = tuple(facts.selector.match_labels.items()) if facts.selector else ()
    name, revision, sidecar_names = facts.name, facts.revision_hash, facts.sidecar_names
    parse_time = datetime.fromisoformat
    refs = []
    updated = 0
    for pod in pods:
        metadata, spec, status = pod["metadata"], pod["spec"], pod["status"]
        labels, annotations = metadata["labels"], metadata["annotations"]
        selected = True
        for key, value in match_labels:
            if labels.get(key) != value:
                selected = False
        if not selected or annotations.get(ANNOTATION_INJECTED_LIST) != name:
            continue
        sidecars = 0
        for container in spec["containers"]:
            if container["name"] in sidecar_names and "@" not in container["image"]:
                sidecars += 1
        ready = None
        for condition in status["conditions"]:
            if condition["type"] == "Ready":
                ready = condition
        statuses = status["containerStatuses"]
        raw = annotations[ANNOTATION_HASH]
        if revision in raw:  # updated: confirm from the parsed entry, then consistency
            entries = orjson.loads(raw)
            record = orjson.loads(annotations.get(ANNOTATION_INPLACE_UPDATE_STATE) or "{}")
            updated += name in entries and name in record and len(statuses) >= sidecars
        else:
            if ready is not None and ready["status"] == "True":
                parse_time(ready["lastTransitionTime"])
            refs.append((metadata["namespace"], metadata["name"], metadata["uid"], spec.get("nodeName")))
    return updated, len(refs)


def churn(pods: list[dict[str, Any]], fraction: float, rng: random.Random) -> None:
    """Replace ``fraction`` of the pods by copies with a new resourceVersion (a watch update)."""
    for index in rng.sample(range(len(pods)), int(len(pods) * fraction)):
        changed = copy.deepcopy(pods[index])
        metadata = changed["metadata"]
        metadata["resourceVersion"] = str(int(metadata["resourceVersion"]) + len(pods))
        pods[index] = changed


def load_average() -> str:
    """The host's 1-minute load average (2 cores shared: the figures follow it)."""
    return f"{os.getloadavg()[0]:.2f}"


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def local_pages(url: str, pages: int) -> Callable[[], list[bytes]]:
    """The paged list call against the local server (bytes only, one kept-alive connection, as
    the kubernetes client's urllib3 pool does)."""
    http = urllib3.PoolManager(maxsize=1)
    return lambda: [
        http.request("GET", f"{url}/api/v1/pods?limit=500&continue={index * 500}").data
        for index in range(pages)
    ]


def list_then_plan(
    sidecarset: Any, list_pages: Callable[[], list[bytes]], repetitions: int
) -> tuple[list[float], list[float], int]:
    """Per repetition: the paged list call (``list_pages``: the bodies of its pages, bytes
    only), then decoding its pages into compact records and a cold ``plan_round`` over them.
    Returns (list ms, decode + plan ms, pods planned)."""
    listed: list[float] = []
    planned: list[float] = []
    count = 0
    for repetition in range(repetitions + 1):  # the first one warms up
        gc.collect()
        started = time.perf_counter()
        bodies = list_pages()
        fetched = time.perf_counter()
        pods: list[Any] = []
        for body in bodies:
            pods.extend(decode_pod_list(body)["items"])
        plan_round(sidecarset, pods)
        gc.collect(0)
        done = time.perf_counter()
        count = len(pods)
        del bodies, pods
        if repetition:
            listed.append((fetched - started) * 1000)
            planned.append((done - fetched) * 1000)
    return listed, planned, count


def kube_pages(kube: Any, page_size: int = 500) -> Callable[[], list[bytes]]:
    """The paged list call as ``KubeClient.list_pods`` makes it (same client, same ``call``, the
    hub's page size), bytes only: the continue token is read from the list's ``metadata``, which
    the apiserver writes before the items."""
    from kubernetes import client

    api = client.CoreV1Api(kube.api_client)

    def list_pages() -> list[bytes]:
        bodies: list[bytes] = []
        token = ""
        while True:
            kwargs: dict[str, Any] = {"limit": page_size}
            if token:
                kwargs["_continue"] = token
            body = kube.call(api.list_pod_for_all_namespaces, what="list pods", decode=bytes, **kwargs)
            bodies.append(body)
            found = CONTINUE.search(body, 0, 4096)
            token = found.group(1).decode() if found else ""
            if not token:
                return bodies

    return list_pages


def against_apiserver(args: argparse.Namespace, repetitions: int) -> int:
    """``--apiserver``: the list call against a sandbox kube-apiserver holding the pods, against
    decode + cold plan of the same pages (target 5's second half)."""
    import tempfile

    from benchmarks.support.sandbox_pods import SandboxPods
    from benchmarks.support.served_pods import as_served
    from clusters.crypto import ClusterCredentials
    from clusters.kube import KubeClient

    sidecarset = build_sidecarset(scatter=args.scatter)
    facts = SidecarSetFacts.of(sidecarset)
    built = build_pods(args.pods, facts)
    load_before = ""
    with tempfile.TemporaryDirectory(prefix="plan-round-") as workdir:
        started = time.perf_counter()
        sandbox = SandboxPods("plan-round", Path(workdir))
        try:
            sandbox.store([as_served(pod, index) for index, pod in enumerate(built)])
            stored_s = time.perf_counter() - started
            del built
            kube = KubeClient(
                cluster_name="plan-round",
                api_server_url=sandbox.server,
                ca_bundle=sandbox.ca_bundle,
                credentials=ClusterCredentials(token=sandbox.token),
                timeout_seconds=120,
                max_attempts=1,
                backoff_base_seconds=0,
            )
            list_pages = kube_pages(kube)
            load_before = load_average()  # once the pods are stored: the timed part starts here
            body_mib = sum(len(page) for page in list_pages()) / 2**20
            rows: dict[str, list[float]] = {}
            rows[LIST_APISERVER], rows[DECODE_PLAN], listed = list_then_plan(
                sidecarset, list_pages, repetitions
            )
            pods = kube.list_pods()  # what a worker holds, for the cold / floor rows
            plan = plan_round(sidecarset, pods)
            rows.update(
                interleaved_ms(
                    {
                        FLOOR: lambda: unavoidable_reads(facts, pods),
                        COLD: lambda: plan_round(sidecarset, pods),
                    },
                    repetitions,
                )
            )
            kube.close()
        finally:
            sandbox.close()
    assert listed == args.pods, listed
    print(
        f"{args.pods} pods, {repetitions} repetitions, scatter={'on' if args.scatter else 'off'}; "
        f"stored in a sandbox kube-apiserver in {stored_s:.0f} s; list: {body_mib:.1f} MiB of pod JSON "
        f"in pages of 500 (KubeClient.list_pods' page size)"
    )
    print(f"status {plan.status.as_status()}; this round patches {len(plan.to_patch)} pods")
    print(f"load average (1 min) {load_before} -> {load_average()}")
    for label, samples in rows.items():
        print(f"  {label:34s} median {statistics.median(samples):7.2f} ms   p95 {p95(samples):7.2f} ms")
    ratio = statistics.median(rows[COLD]) / statistics.median(rows[FLOOR])
    list_ratio = statistics.median(rows[DECODE_PLAN]) / statistics.median(rows[LIST_APISERVER])
    ok = ratio <= TARGET_RATIO and list_ratio <= 1.0
    print(f"  cold plan_round / floor: {ratio:.2f}x (medians, same run; target <= {TARGET_RATIO:.1f}x)")
    print(f"  decode + plan / list call: {list_ratio:.2f}x (medians, same run; target <= 1.0x)")
    print(f"  target -> {'OK' if ok else 'OVER TARGET'}")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--repetitions", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="5 repetitions")
    parser.add_argument("--scatter", action="store_true", help="add scatterStrategy zone=*")
    parser.add_argument(
        "--layout",
        choices=("fetched", "built"),
        default="fetched",
        help="fetched: compact records decoded from the apiserver's JSON pages (what a worker has, "
        "the default); built: the Python-built dicts, shuffled (scattered in memory; for comparison)",
    )
    parser.add_argument(
        "--apiserver",
        action="store_true",
        help="time the list call against a sandbox kube-apiserver holding the pods (creating them "
        "takes minutes) instead of a local server of ready bytes",
    )
    args = parser.parse_args()
    repetitions = 5 if args.quick else args.repetitions
    if args.apiserver:
        return against_apiserver(args, repetitions)

    sidecarset = build_sidecarset(scatter=args.scatter)
    facts = SidecarSetFacts.of(sidecarset)
    built = build_pods(args.pods, facts)
    pods = as_fetched(built) if args.layout == "fetched" else built
    load_before = load_average()

    plan = plan_round(sidecarset, pods)
    cache = PlanningCache()
    steady_pods = list(pods)
    plan_round(sidecarset, steady_pods, cache=cache)
    rng = random.Random(11)
    rows = {
        "sort pods by name (baseline)": time_ms(
            lambda: sorted(pods, key=lambda pod: pod["metadata"]["name"]), repetitions
        ),
        "predicates only (baseline)": time_ms(
            lambda: [evaluate_pod(facts, pod) for pod in pods], repetitions
        ),
        "plan_round steady (5% changed)": time_ms(
            lambda: plan_round(sidecarset, steady_pods, cache=cache),
            repetitions,
            before=lambda: churn(steady_pods, 0.05, rng),
        ),
    }
    # The two rows of the target's ratio, interleaved (see interleaved_ms).
    rows.update(
        interleaved_ms(
            {FLOOR: lambda: unavoidable_reads(facts, pods), COLD: lambda: plan_round(sidecarset, pods)},
            repetitions,
        )
    )
    server = PodListServer.of_pages(served_pages(built))
    try:
        rows[LIST], rows[DECODE_PLAN], listed = list_then_plan(
            sidecarset, local_pages(server.url, len(server.pages)), repetitions
        )
        body_mib = server.body_bytes / 2**20
    finally:
        server.close()
    assert listed == args.pods, listed
    print(
        f"{args.pods} pods, {repetitions} repetitions, scatter={'on' if args.scatter else 'off'}, "
        f"layout={args.layout}; list: {body_mib:.1f} MiB of pod JSON in pages of 500 from a local server"
    )
    print(f"status {plan.status.as_status()}; this round patches {len(plan.to_patch)} pods")
    print(f"load average (1 min) {load_before} -> {load_average()}")
    for label, samples in rows.items():
        print(f"  {label:34s} median {statistics.median(samples):7.2f} ms   p95 {p95(samples):7.2f} ms")
    ratio = statistics.median(rows[COLD]) / statistics.median(rows[FLOOR])
    list_ratio = statistics.median(rows[DECODE_PLAN]) / statistics.median(rows[LIST])
    ok = ratio <= TARGET_RATIO
    print(f"  cold plan_round / floor: {ratio:.2f}x (medians, same run; target <= {TARGET_RATIO:.1f}x)")
    print(
        f"  decode + plan / local list: {list_ratio:.2f}x (information: the target is measured "
        "against a kube-apiserver, --apiserver)"
    )
    print(f"  target -> {'OK' if ok else 'OVER TARGET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
