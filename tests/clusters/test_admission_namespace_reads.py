"""A namespace whose labels cannot be read is not read again on every admission: after a failed
read the webhook answers from what it knows (the last labels, or none) for
``SIDECARHUB_ADMISSION_NAMESPACE_RETRY_SECONDS``, so a cluster with broken permissions or a slow
apiserver does not cost every pod creation the read timeout."""

from __future__ import annotations

from typing import Any

import pytest

from clusters import admission
from clusters.choices import CredentialKind
from clusters.models import Cluster

pytestmark = pytest.mark.django_db


@pytest.fixture
def unreachable() -> Cluster:
    # Nothing listens on port 9: every read fails at once (and the credentials cannot be read).
    return Cluster.objects.create(
        name="gone",
        api_server_url="https://127.0.0.1:9",
        credential_kind=CredentialKind.TOKEN,
        credentials_ciphertext="unused",
    )


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    attempts: list[int] = []
    real = admission.cached_kube_client

    def counted(cluster: Cluster) -> Any:
        attempts.append(cluster.pk)
        return real(cluster)

    monkeypatch.setattr(admission, "cached_kube_client", counted)
    return attempts


def test_a_failed_read_is_not_repeated_within_the_retry_window(
    unreachable: Cluster, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.SIDECARHUB_ADMISSION_NAMESPACE_RETRY_SECONDS = 60
    attempts = _counting(monkeypatch)
    namespace = "team-a"
    assert admission.namespace_labels(unreachable, namespace) is None
    assert admission.namespace_labels(unreachable, namespace) is None
    assert len(attempts) == 1  # the second admission did not try again
    assert admission.namespace_labels(unreachable, "team-b") is None
    assert len(attempts) == 2  # another namespace is its own read


def test_it_is_read_again_after_the_window(
    unreachable: Cluster, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.SIDECARHUB_ADMISSION_NAMESPACE_RETRY_SECONDS = 0
    attempts = _counting(monkeypatch)
    for _ in range(3):
        assert admission.namespace_labels(unreachable, "team-c") is None
    assert len(attempts) == 3
