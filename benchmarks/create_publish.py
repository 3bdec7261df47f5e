"""Benchmark: create + publish one SidecarSet with 1,000 stored (issue 17 target 6: <= 2x with 10).

Stores N SidecarSets (``import_documents.build_stream``: each with its own app selector, sidecar,
volume and patched annotation, all in the prod namespaces, so every one is a conflict candidate
by selector), then times ``services.create_sidecarset`` followed by ``services.publish_sidecarset``
of a new, compatible SidecarSet, each call committed as the API commits it (the publish's
after-commit work included: the release signal, the admission caches' invalidation). In this
order, on the same database: K calls with 10 stored (the baseline), K with 1,000 stored, K with
10 stored again (so drift during the run shows in the baseline), each preceded by one untimed
call (a process's first check parses every stored SidecarSet once: printed as "first call").

**Target: the median with 1,000 stored <= 2x the median with 10 stored** (both 10-stored phases
together). Before issue 17 every create and every publish re-read and re-parsed every stored
SidecarSet for the conflict check (≈ 30 ms with 100 stored, ≈ 220-250 ms with 1,000).

    .venv/bin/python benchmarks/create_publish.py [--stored 1000] [--calls 20] [--quick]

Needs a migrated database without SidecarSets (``BENCH=create_publish bash scripts/bench.sh``
sets one up); everything it creates is deleted at the end. ``--quick``: 8 calls per phase.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sidecarhub.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

from benchmarks.import_documents import build_stream  # noqa: E402
from sidecarhub.models import SidecarSet  # noqa: E402
from sidecarhub.services import create_sidecarset, import_documents, publish_sidecarset  # noqa: E402

TARGET_RATIO = 2.0
BASELINE_STORED = 10
_serial = itertools.count()


def new_document() -> dict[str, object]:
    """A SidecarSet compatible with every stored one (own names), in the same namespaces."""
    index = next(_serial)
    return {
        "apiVersion": "apps.kruise.io/v1beta1",
        "kind": "SidecarSet",
        "metadata": {"name": f"bench-new-{index:05d}"},
        "spec": {
            "selector": {"matchLabels": {"app": f"new-app-{index}"}},
            "namespaceSelector": {"matchLabels": {"env": "prod"}},
            "containers": [
                {
                    "name": f"new-agent-{index}",
                    "image": "registry.example.com/agent:1.0",
                    "volumeMounts": [{"name": f"new-config-{index}", "mountPath": "/etc/agent"}],
                }
            ],
            "volumes": [{"name": f"new-config-{index}", "configMap": {"name": "agent-config"}}],
            "updateStrategy": {"type": "RollingUpdate", "maxUnavailable": "10%"},
        },
    }


def create_and_publish() -> float:
    """Milliseconds of one create + publish (each committed on its own, as the API does)."""
    document = new_document()
    started = time.perf_counter()
    created = create_sidecarset(document, actor=None)
    publish_sidecarset(created.name, actor=None)
    return (time.perf_counter() - started) * 1000


def phase(calls: int) -> tuple[float, list[float]]:
    """(first call ms, then ``calls`` timed calls in ms)."""
    gc.collect()
    first = create_and_publish()
    samples = []
    for _ in range(calls):
        gc.collect()
        samples.append(create_and_publish())
    return first, samples


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stored", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="8 calls per phase")
    args = parser.parse_args()
    calls = 8 if args.quick else args.calls
    if SidecarSet.objects.exists():
        print("the database already holds SidecarSets; run on an empty (benchmark) database")
        return 1
    try:
        import_documents(build_stream(BASELINE_STORED), actor=None)
        first_small, small = phase(calls)
        # the rest of the store: the same stream's documents BASELINE_STORED.. (names team-NNNN)
        rest = build_stream(args.stored)
        import_documents(rest, actor=None)  # re-imports the first 10 unchanged
        stored_big = SidecarSet.objects.count()
        first_big, big = phase(calls)
        SidecarSet.objects.filter(name__startswith="team-").exclude(
            name__in=[f"team-{index:04d}" for index in range(BASELINE_STORED)]
        ).delete()
        stored_small = SidecarSet.objects.count()
        first_small_again, small_again = phase(calls)
    finally:
        SidecarSet.objects.all().delete()

    baseline = small + small_again
    print(
        f"create + publish of a new SidecarSet, {calls} calls a phase, database {connection.vendor}; "
        f"stored: {BASELINE_STORED}+ then {stored_big} then {stored_small}"
    )
    rows = [
        (f"{BASELINE_STORED} stored (baseline)", first_small, small),
        (f"{args.stored} stored", first_big, big),
        (f"{BASELINE_STORED} stored again (baseline)", first_small_again, small_again),
    ]
    for label, first, samples in rows:
        print(
            f"  {label:28s} median {statistics.median(samples):7.2f} ms   p95 {p95(samples):7.2f} ms   "
            f"first call {first:7.2f} ms"
        )
    ratio = statistics.median(big) / statistics.median(baseline)
    verdict = "OK" if ratio <= TARGET_RATIO else "OVER TARGET"
    print(f"  {args.stored} / {BASELINE_STORED} stored: {ratio:.2f}x (medians)")
    print(f"  target: <= {TARGET_RATIO:.0f}x -> {verdict}")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
