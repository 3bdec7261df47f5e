"""The API's list pagination: ``?limit=`` and ``?offset=``, with a ceiling on ``limit``."""

from __future__ import annotations

from rest_framework.pagination import LimitOffsetPagination

__all__ = ["MAX_PAGE_SIZE", "ApiPagination"]

# The largest page a client may ask for; larger limits are cut to it (DRF's max_limit), so
# ?limit=99999999999999999999 neither reaches the database as an out-of-range LIMIT nor loads
# a whole table.
MAX_PAGE_SIZE = 1000


class ApiPagination(LimitOffsetPagination):
    """``LimitOffsetPagination`` (default page 50, settings ``PAGE_SIZE``) with ``max_limit``."""

    max_limit = MAX_PAGE_SIZE
