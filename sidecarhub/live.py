"""Live regions of the web console (issue 16 item 1): parts of a page that refresh by themselves.

A page that shows progress wraps that part in an element that htmx (vendored in
``sidecarhub/static/sidecarhub/vendor/htmx/``) polls every ``SIDECARHUB_CONSOLE_REFRESH_SECONDS``
and swaps with the server's new rendering of the same region: the page's own URL asked with
htmx's ``HX-Request`` header renders only its ``live_region`` block (``page_context``: the page
extends ``base_template``, which is then ``LIVE_REGION_TEMPLATE`` instead of the admin's base).
The element's attributes come from ``admin/sidecarhub/live_attrs.html``. A region is not swapped
while someone types in a field inside it, and a poll answered by another page (the login form)
reloads the whole page (``sidecarhub/static/sidecarhub/live.js``).
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.conf import settings
from django.http import HttpRequest, HttpResponse

__all__ = [
    "LIVE_REGION_TEMPLATE",
    "PAGE_TEMPLATE",
    "is_live_refresh",
    "live_response",
    "page_context",
]

Response = TypeVar("Response", bound=HttpResponse)

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


def live_response(response: Response) -> Response:
    """Mark a page that answers polls with its region: caches must keep the two apart, and a
    poll's answer is never reused."""
    response.headers["Vary"] = "HX-Request"
    response.headers["Cache-Control"] = "no-store"
    return response
