"""A patched pod is judged failed only on a status about its NEW image: until the kubelet reacts
to the patch, the status still describes the old container, which may itself have been failing
(rolling back a bad image). Found by the bad-image e2e test: the rollback paused on the old
ImagePullBackOff."""

from __future__ import annotations

from typing import Any

from rollouts.engine import _failure
from rollouts.models import PodUpdate


def _pod(image: str, reason: str | None) -> dict[str, Any]:
    state: dict[str, Any] = {"running": {}} if reason is None else {"waiting": {"reason": reason}}
    return {"status": {"containerStatuses": [{"name": "log-agent", "image": image, "state": state}]}}


def test_a_failing_status_counts_only_for_the_new_image() -> None:
    row = PodUpdate(container="log-agent", from_image="log-agent:bad-1", to_image="log-agent:1")
    # The rollback's patch landed; the kubelet still reports the bad image it could not pull.
    assert _failure(_pod("log-agent:bad-1", "ImagePullBackOff"), row) is None
    # Now about the new image: a real failure.
    assert _failure(_pod("log-agent:1", "ImagePullBackOff"), row) == "container log-agent: ImagePullBackOff"
    assert _failure(_pod("log-agent:1", "CrashLoopBackOff"), row) == "container log-agent: CrashLoopBackOff"
    assert _failure(_pod("log-agent:1", "ContainerCreating"), row) is None
    assert _failure(_pod("log-agent:1", None), row) is None
