"""API permission: each viewset action names the model permissions it needs; anything unnamed is denied.

Unlike DRF's ``DjangoModelPermissions`` (which lets any authenticated user read), reads need
``view_*`` too, and custom verbs (publish) name their own permission.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

__all__ = ["ActionPermissions"]


class ActionPermissions(BasePermission):
    """Allow a request when the user is authenticated and has every permission listed for the
    view's action in ``view.required_permissions`` (a dict: action name → permission names).

    Anonymous requests get 401 (DRF turns a refusal without credentials into NotAuthenticated);
    authenticated users without the permissions, or actions not listed, get 403.
    """

    message = "You do not have the permission this action needs."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if user is None or not user.is_authenticated:
            return False
        required = getattr(view, "required_permissions", {}).get(getattr(view, "action", None))
        if required is None:
            return False
        return bool(user.has_perms(required))
