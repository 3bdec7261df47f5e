"""Error bodies of the rollouts API: the project's ``{"errors": [{"path", "message"}]}``.

Domain exceptions of ``rollouts.services`` map to statuses here, so the views stay thin:

- ``InvalidTransition`` → 409 with the current state: ``{"errors": [...], "state": "paused",
  "object": "rollout", "object_id": 7}`` (``object`` says whose state it is: a step can be
  refused because its rollout is paused);
- ``NotPermitted`` (a missing permission or the four-eyes rule) → 403;
- ``RolloutNotFound`` → 404; any other ``RolloutError`` (e.g. a rollback without an earlier
  revision) → 409;
- ``KubeError`` (the live preview could not read the cluster) → 503.

Everything else (validation, authentication) goes through the API's handler
(``sidecarhub.api.errors.api_exception_handler``), which gives the same body.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers, status
from rest_framework.response import Response

from clusters.kube import KubeError
from rollouts.services import NotPermitted, RolloutNotFound
from rollouts.transitions import InvalidTransition, RolloutError
from sidecarhub.api.errors import api_exception_handler
from sidecarhub.api.serializers import ErrorSerializer

__all__ = ["ConflictSerializer", "rollouts_exception_handler"]


class ConflictSerializer(serializers.Serializer):
    """409: the object is not in a state the verb accepts."""

    errors = ErrorSerializer(many=True)  # type: ignore[assignment]  # a response schema: never validated, so .errors is unused
    state = serializers.CharField(help_text="The current state of the object named by `object`")
    object = serializers.CharField(help_text="`rollout` or `step`")
    object_id = serializers.IntegerField()


def _single(code: int, message: str, path: str | None = None) -> Response:
    return Response({"errors": [{"path": path, "message": message}]}, status=code)


def rollouts_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler of the rollouts views (see the module docstring)."""
    if isinstance(exc, InvalidTransition):
        body = {
            "errors": [{"path": "state", "message": str(exc)}],
            "state": exc.current_state,
            "object": exc.what,
            "object_id": exc.object_id,
        }
        return Response(body, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, NotPermitted):
        return _single(status.HTTP_403_FORBIDDEN, str(exc))
    if isinstance(exc, RolloutNotFound):
        return _single(status.HTTP_404_NOT_FOUND, str(exc))
    if isinstance(exc, RolloutError):
        return _single(status.HTTP_409_CONFLICT, str(exc))
    if isinstance(exc, KubeError):
        cluster = f"cluster {exc.cluster_name}" if exc.cluster_name else "the cluster"
        return _single(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"cannot read the pods of {cluster} now: {exc}; try again"
        )
    return api_exception_handler(exc, context)
