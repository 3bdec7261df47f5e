"""Benchmark: import 1,000 SidecarSet documents in one stream (issue 15; target: <= 3x parsing them).

Builds a multi-document Kruise YAML stream of N SidecarSets (each with its own app selector,
sidecar, volume, patchPodMetadata annotation and update strategy: what a directory of a platform
team's manifests looks like), then times, in the same run on the same text:

- **parse alone (baseline)**: ``split_documents`` and ``read_sidecarset`` for every document: the
  least any import must do with the text;
- **import into an empty store**: ``services.import_documents`` creating all N (validation,
  conflict check against every stored and earlier document, one row and one change-log row
  each), in a transaction rolled back afterwards. **The target applies to this row**;
- **re-import (all unchanged)**: the same stream again over the N stored ones (extra information);
- **import of N/4** into an empty store, to show the growth: linear means N takes about 4x as
  long as N/4 (before issue 15 every document re-parsed every stored SidecarSet: 4x the
  documents took about 16x as long).

Exits 1 when the median import is over ``TARGET_RATIO`` times the median parse baseline. Why 3x:
an import necessarily parses each document (1x), validates it (Kruise's webhook rules, a
synthetic pod included: about as much work again) and writes two rows per document; 3x leaves
the writes about one parse's worth of time, so any per-document work that grows with the store
(a re-parse, a query per other SidecarSet) misses it at this size.

    .venv/bin/python benchmarks/import_documents.py [--documents 1000] [--repetitions 3] [--shared-volume]

``--shared-volume`` gives every SidecarSet the same volume name: then every document must be
compared with every other one (Kruise's conflict rules: a volume name used by two SidecarSets
that may share pods must be defined the same way), which stays quadratic in the number of
SidecarSets sharing a name; the comparison itself is cheap, but it dominates at 1,000.

Needs a migrated database (``DATABASE_URL``...): ``BENCH=import_documents bash scripts/bench.sh``
sets one up (PostgreSQL), or any SQLite file after ``manage.py migrate``.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sidecarhub.settings")

import django  # noqa: E402

django.setup()

import yaml  # noqa: E402
from django.db import transaction  # noqa: E402

from sidecarhub.models import SidecarSet  # noqa: E402
from sidecarhub.services import import_documents  # noqa: E402
from sidecarhub.sidecarset import read_sidecarset, split_documents  # noqa: E402

TARGET_RATIO = 3.0


def build_stream(count: int, *, shared_volume: bool = False) -> str:
    """N valid, mutually compatible SidecarSets as one multi-document YAML stream."""
    documents = []
    for index in range(count):
        volume = "shared-config" if shared_volume else f"config-{index}"
        documents.append(
            {
                "apiVersion": "apps.kruise.io/v1beta1",
                "kind": "SidecarSet",
                "metadata": {"name": f"team-{index:04d}", "labels": {"team": f"t{index % 50}"}},
                "spec": {
                    "selector": {"matchLabels": {"app": f"app-{index}"}},
                    "namespaceSelector": {"matchLabels": {"env": "prod"}},
                    "containers": [
                        {
                            "name": f"agent-{index}",
                            "image": f"registry.example.com/agent:{index}.0",
                            "env": [{"name": "MODE", "value": "sidecar"}],
                            "volumeMounts": [{"name": volume, "mountPath": "/etc/agent"}],
                            "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}},
                        }
                    ],
                    "volumes": [{"name": volume, "configMap": {"name": "agent-config"}}],
                    "patchPodMetadata": [
                        {"annotations": {f"agent-{index}.example.com/on": "true"}, "patchPolicy": "Retain"}
                    ],
                    "updateStrategy": {"type": "RollingUpdate", "maxUnavailable": "10%"},
                },
            }
        )
    return "".join("---\n" + yaml.safe_dump(document, sort_keys=False) for document in documents)


def parse_alone(text: str) -> int:
    parsed = 0
    for document in split_documents(text):
        core, errors = read_sidecarset(document.data)
        assert core is not None and not errors, errors
        parsed += 1
    return parsed


def import_rolled_back(text: str, *, twice: bool = False) -> float:
    """Seconds of one import (the second one when ``twice``); nothing stays in the database."""
    with transaction.atomic():
        if twice:
            import_documents(text, actor=None)
        started = time.perf_counter()
        results = import_documents(text, actor=None)
        elapsed = time.perf_counter() - started
        assert all(result.name for result in results)
        transaction.set_rollback(True)
    return elapsed


def timed(run: Callable[[], object], repetitions: int) -> list[float]:
    samples = []
    for _ in range(repetitions):
        gc.collect()
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--shared-volume", action="store_true", help="every SidecarSet uses one volume name")
    args = parser.parse_args()
    if SidecarSet.objects.exists():
        print("the database already holds SidecarSets; run on an empty (benchmark) database")
        return 1

    text = build_stream(args.documents, shared_volume=args.shared_volume)
    quarter = build_stream(args.documents // 4, shared_volume=args.shared_volume)
    parse: list[float] = []
    imports: list[float] = []
    reimports: list[float] = []
    quarters: list[float] = []
    for _ in range(args.repetitions):  # interleaved, so drift hits every row
        parse.extend(timed(lambda: parse_alone(text), 1))
        gc.collect()
        imports.append(import_rolled_back(text))
        gc.collect()
        reimports.append(import_rolled_back(text, twice=True))
        gc.collect()
        quarters.append(import_rolled_back(quarter))

    print(
        f"{args.documents} documents ({len(text) // 1024} KiB of YAML), {args.repetitions} repetitions, "
        f"database {django.db.connection.vendor}, shared volume name {'on' if args.shared_volume else 'off'}"
    )
    rows = {
        "parse alone (baseline)": parse,
        "import into an empty store": imports,
        "re-import (all unchanged)": reimports,
        f"import of {args.documents // 4} (growth check)": quarters,
    }
    for label, samples in rows.items():
        print(f"  {label:34s} median {statistics.median(samples):7.3f} s   max {max(samples):7.3f} s")
    ratio = statistics.median(imports) / statistics.median(parse)
    growth = statistics.median(imports) / statistics.median(quarters)
    print(
        f"  import / parse: {ratio:.2f}x; {args.documents} / {args.documents // 4} documents: {growth:.2f}x"
    )
    verdict = "OK" if ratio <= TARGET_RATIO else "OVER TARGET"
    print(f"  target: import <= {TARGET_RATIO:.0f}x parse alone (medians) -> {verdict}")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
