"""The web console's admin site: the home dashboard as its first page.

``ConsoleSite`` is the project's admin site (``sidecarhub.apps.ConsoleAdminConfig`` makes it
``django.contrib.admin.site``, so every ``@admin.register`` lands on it). Its index
(``/admin/``, ``admin:index``) is the home dashboard; the stock list of models stays reachable
at ``/admin/models/`` (``admin:models``). The dashboard itself is the rollouts app's, named by
its dotted path (``HOME_VIEW``, as Django names ``default_site``) and imported when first
called: the site is built before any app's admin module is loaded, and depends on none of them.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path
from django.utils.module_loading import import_string

__all__ = ["ConsoleSite"]


class ConsoleSite(admin.AdminSite):
    """The admin site with the home dashboard as its index (see the module docstring)."""

    site_header = "sidecarhub"
    site_title = "sidecarhub"
    index_title = "Home"
    site_url = None  # no "View site" link: the console is the site
    # The home dashboard: ``(request) -> HttpResponse``, imported on first use.
    HOME_VIEW = "rollouts.console.dashboard_view"

    def get_urls(self) -> list[URLResolver | URLPattern]:
        own: list[URLResolver | URLPattern] = [
            path("models/", self.admin_view(self.models_index), name="models"),
        ]
        return own + super().get_urls()

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        """The home dashboard (the console's first page)."""
        view = import_string(self.HOME_VIEW)
        response: TemplateResponse = view(request)
        return response

    def models_index(self, request: HttpRequest) -> TemplateResponse:
        """The stock admin index: every app and model the user may see."""
        return super().index(request, extra_context={"title": "All models"})
