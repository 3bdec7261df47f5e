"""A worker killed with SIGKILL at random moments (50 trials, one rollout each): no pod is
patched twice, no PodUpdate is lost, and every rollout finishes after a new worker starts.

Each trial publishes a new image (auto-approve cluster, one step, maxUnavailable 50% of 4 pods,
a short readiness delay so pods spend time in flight), kills the worker (its whole process
group, beat included) after a random delay, starts a fresh worker with embedded beat (the
periodic reconcile is what resumes the work: a killed worker's unacknowledged message is only
redelivered after the broker's visibility timeout), and waits for the rollout to complete.
An independent watch counts, per pod, how often its sidecar image and the hub's hash
annotation changed: exactly once per trial. Also runs on SQLite (a few trials), where the killed
worker's reconcile lock is a Redis lease that must expire before the new worker takes over.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter

import pytest

from rollouts.choices import PodUpdateOutcome, PodUpdateState, RolloutState
from rollouts.models import PodUpdate, Rollout
from sandbox.testing import RunningCluster, wait_for
from tests.conftest import ROOT, start_worker, stop_worker, suspend_workers
from tests.rollouts.helpers import PodWatcher, make_fleet, pods_by_name, sidecar_image

pytestmark = [pytest.mark.k8s, pytest.mark.e2e, pytest.mark.sqlite, pytest.mark.django_db(transaction=True)]

# tests/locks/test_on_sqlite.py runs a few trials on SQLite.
TRIALS = int(os.environ.get("SIDECARHUB_KILL_TRIALS", "50"))
PODS = 4


def _phase(rollout: Rollout | None) -> str:
    """Where the rollout stood when the worker was killed (for the report)."""
    if rollout is None:
        return "before the rollout existed"
    rollout.refresh_from_db()
    if rollout.state != RolloutState.RUNNING:
        return f"rollout {rollout.state}"
    states = Counter(PodUpdate.objects.filter(rollout=rollout).values_list("state", flat=True))
    if states.get(PodUpdateState.PATCHING):
        return "a pod in patching"
    if states.get(PodUpdateState.OBSERVING):
        return "pods observing"
    if states.get(PodUpdateState.CLAIMED):
        return "pods claimed"
    return "step not started"


def test_sigkill_worker_at_random_moments(k8s: RunningCluster, k8s_namespace: str) -> None:
    seed = int(os.environ.get("SIDECARHUB_KILL_SEED", str(time.time_ns() % 100_000)))
    rng = random.Random(seed)
    fleet = make_fleet(
        k8s,
        k8s_namespace,
        strategy={"maxUnavailable": "50%"},
        annotations={"rollouts.sidecarhub.io/steps": "100%"},
        cluster_settings={"rollout_auto_approve": True},
    )
    fleet.create_pods(PODS)
    fleet.wait_ready(PODS)
    k8s.knobs.ready_delay_seconds["log-agent:*"] = 0.5
    worker_env = {
        "SIDECARHUB_ROLLOUT_RECONCILE_SECONDS": "1",
        "SIDECARHUB_ROLLOUT_PASS_SECONDS": "2",
    }
    beat_args = ["-B", "--schedule", str(ROOT / "var" / f"test-beat-kill-{seed}")]
    phases: Counter[str] = Counter()
    durations: list[float] = []
    with suspend_workers():
        worker = start_worker("test-worker-kill.log", extra_env=worker_env, extra_args=beat_args)
        try:
            with PodWatcher(k8s, k8s_namespace, "unused") as watcher:
                for trial in range(TRIALS):
                    image = f"log-agent:{trial + 2}"
                    started = time.monotonic()
                    fleet.publish(image)
                    time.sleep(rng.uniform(0.1, 2.0))
                    stop_worker(worker, sig=signal.SIGKILL)
                    phases[
                        _phase(Rollout.objects.filter(sidecarset_name=fleet.name).order_by("-pk").first())
                    ] += 1
                    worker = start_worker("test-worker-kill.log", extra_env=worker_env, extra_args=beat_args)
                    completed = Rollout.objects.filter(
                        sidecarset_name=fleet.name, to_revision_number=trial + 2, state=RolloutState.COMPLETED
                    )
                    rollout = wait_for(
                        completed.first,
                        timeout_seconds=45,
                        interval_seconds=0.2,
                        what=f"trial {trial}: rollout to {image} completed after the restart",
                    )
                    durations.append(time.monotonic() - started)
                    assert {sidecar_image(p) for p in fleet.live_pods()} == {image}
                    rows = PodUpdate.objects.filter(rollout=rollout)
                    assert rows.count() == PODS, f"trial {trial}: PodUpdate rows lost"
                    assert set(rows.values_list("state", "outcome")) == {
                        (PodUpdateState.DONE, PodUpdateOutcome.SUCCEEDED)
                    }, f"trial {trial}"
                    wait_for(
                        lambda image=image: all(spec == image for spec, _, _ in watcher.pods.values()),  # type: ignore[misc]  # mypy cannot infer a lambda with a default argument
                        timeout_seconds=10,
                        what="the watch to catch up",
                    )
        finally:
            stop_worker(worker)
    # Exactly one sidecar image change and one hash-annotation change per pod per trial.
    assert dict(watcher.spec_changes) == {name: TRIALS for name in fleet.pods}
    assert dict(watcher.hash_changes) == {name: TRIALS for name in fleet.pods}
    for pod in pods_by_name(fleet.live_pods()).values():
        [status] = [s for s in pod["status"]["containerStatuses"] if s["name"] == "log-agent"]
        assert status["restartCount"] == TRIALS
    rows = PodUpdate.objects.filter(rollout__sidecarset_name=fleet.name)
    assert rows.count() == TRIALS * PODS
    retried = rows.filter(patch_attempts=2).count()
    print(
        f"\nSIGKILL seed {seed}: {TRIALS} trials, killed at: {dict(phases)}; "
        f"{retried} patches re-sent after a kill (the first had not landed); "
        f"trial durations {min(durations):.1f}-{max(durations):.1f}s"
    )
