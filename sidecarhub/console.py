"""The web console's admin site: the home dashboard as its first page, and live regions.

``ConsoleSite`` is the project's admin site (``sidecarhub.apps.ConsoleAdminConfig`` makes it
``django.contrib.admin.site``, so every ``@admin.register`` lands on it). Its index
(``/admin/``, ``admin:index``) is the home dashboard; the stock list of models stays reachable
at ``/admin/models/`` (``admin:models``). The dashboard itself is the rollouts app's
(``HOME_VIEW``, imported when first called): this module never imports an app's admin, since it
is loaded before any of them register.

Live regions (issue 16 item 1): a page that shows progress wraps that part in an element that
htmx (vendored in ``sidecarhub/static/sidecarhub/vendor/htmx/``) polls every
``SIDECARHUB_CONSOLE_REFRESH_SECONDS`` and swaps with the server's new rendering of the same
region: the page's own URL asked with htmx's ``HX-Request`` header renders only its
``live_region`` block (``page_context``: the page extends ``base_template``, which is then
``LIVE_REGION_TEMPLATE`` instead of the admin's base). A region is not swapped while someone
types in a field inside it (``sidecarhub/static/sidecarhub/live.js``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path
from django.utils.module_loading import import_string

__all__ = [
    "LIVE_REGION_TEMPLATE",
    "PAGE_TEMPLATE",
    "ConsoleSite",
    "is_live_refresh",
    "live_response",
    "page_context",
]

PAGE_TEMPLATE = "admin/base_site.html"
# Renders nothing but the page's ``live_region`` block (a page extends ``base_template``).
LIVE_REGION_TEMPLATE = "admin/sidecarhub/live_region.html"


def is_live_refresh(request: HttpRequest) -> bool:
    """True for htmx's own requests (the poll of a live region), which send ``HX-Request``."""
    return request.headers.get("HX-Request") == "true"


def page_context(request: HttpRequest, *, live: bool = True) -> dict[str, Any]:
    """What a page with a live region adds to its context: the template it extends (the admin's
    base, or only the region for a poll), the URL polled (the page's own), the poll interval,
    and whether to poll at all
    (``live=False``: what it shows can no longer change, e.g. a finished rollout)."""
    return {
        "base_template": LIVE_REGION_TEMPLATE if is_live_refresh(request) else PAGE_TEMPLATE,
        "live": live,
        "live_url": request.get_full_path(),
        "live_refresh_seconds": settings.SIDECARHUB_CONSOLE_REFRESH_SECONDS,
    }


def live_response(response: HttpResponse) -> HttpResponse:
    """Mark a page that answers polls with its region: caches must keep the two apart, and a
    poll's answer is never reused."""
    response.headers["Vary"] = "HX-Request"
    response.headers["Cache-Control"] = "no-store"
    return response


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
