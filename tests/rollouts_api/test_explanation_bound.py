"""A rollout paused again and again (its explanation gets a note each time) keeps only the newest
notes: the reconciler's pause appends through ``rollouts.models.with_note``."""

from __future__ import annotations

import pytest

from rollouts.choices import RolloutState
from rollouts.models import MAX_EXPLANATION_NOTES, Rollout
from rollouts.reconciler import ReconcileReport, _Pass
from tests.rollouts_api.conftest import make_cluster, make_rollout

pytestmark = pytest.mark.django_db


def test_repeated_pauses_keep_the_newest_notes_and_count_the_rest() -> None:
    cluster = make_cluster("prod-eu")
    rollout = make_rollout(None, cluster, name="log-agent")
    reconcile = _Pass(cluster, None, ReconcileReport(cluster.pk), 0, 1)  # type: ignore[arg-type]  # no KubeClient: pause only writes rows
    pauses = MAX_EXPLANATION_NOTES + 12
    for index in range(pauses):
        # Resumed by someone in between (the state only: a resume's own rules are not the point).
        Rollout.objects.filter(pk=rollout.pk).update(state=RolloutState.RUNNING)
        # A stale in-memory row, as the reconciler's turn holds: the pause reads the stored notes.
        reconcile.pause(rollout, f"pause {index}", None, f"pause {index}: pods not ready")
    stored = Rollout.objects.get(pk=rollout.pk)
    lines = stored.explanation.splitlines()
    assert stored.state == RolloutState.PAUSED
    assert lines[0] == "(12 earlier notes dropped)"
    assert lines[1:] == [f"pause {index}: pods not ready" for index in range(12, pauses)]
