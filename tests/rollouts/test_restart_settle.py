"""A completed restart lowers the count of pods its source rollout left needing recreate
(decision 18), at the database level: the rollout, its outcome and the releases view."""

from __future__ import annotations

import pytest

from clusters.choices import CredentialKind
from clusters.models import Cluster
from rollouts.choices import ReleaseStage, RolloutKind, RolloutOutcome, RolloutState
from rollouts.fleet import releases_of
from rollouts.models import Rollout
from rollouts.reconciler import settle_restarted_source
from sidecarhub.services import create_sidecarset, publish_sidecarset
from tests.rollouts.helpers import document

pytestmark = pytest.mark.django_db


def _rollout(**fields: object) -> Rollout:
    return Rollout.objects.create(
        author_name="system", steps=["100%"], max_unavailable="1", to_revision_hash="h", **fields
    )


@pytest.mark.parametrize(("left", "stage"), [(0, ReleaseStage.COMPLETED), (2, ReleaseStage.NEEDS_RECREATE)])
def test_a_completed_restart_leaves_its_source_counting_only_what_is_left(left: int, stage: str) -> None:
    cluster = Cluster.objects.create(
        name="c1",
        api_server_url="https://127.0.0.1:9",
        credential_kind=CredentialKind.TOKEN,
        credentials_ciphertext="unused",
    )
    row = create_sidecarset(document("st", "agent:1"), actor=None)
    revision = publish_sidecarset("st", actor=None)
    common = {
        "sidecarset_id": row.pk,
        "sidecarset_name": row.name,
        "cluster": cluster,
        "to_revision": revision,
        "to_revision_number": revision.number,
        "state": RolloutState.COMPLETED,
    }
    source = _rollout(**common, in_place=False, needs_recreate=7, reason="completed; 7 pods need recreate")
    [release] = releases_of(row.pk).releases
    assert release.needs_recreate == 7 and release.stage == ReleaseStage.NEEDS_RECREATE
    restart = _rollout(**common, kind=RolloutKind.RESTART, restart_of=source)

    settle_restarted_source(restart, left)
    source.refresh_from_db()
    assert source.needs_recreate == left
    assert source.outcome == (RolloutOutcome.NEEDS_RECREATE if left else RolloutOutcome.SUCCEEDED)
    assert f"restart {restart.pk}" in source.reason and f"restart {restart.pk}" in source.explanation
    [release] = releases_of(row.pk).releases
    assert release.needs_recreate == left and release.stage == stage
    settle_restarted_source(restart, 5)  # never raised again
    source.refresh_from_db()
    assert source.needs_recreate == left
