"""Fixtures of the hot-upgrade end-to-end tests: the injection tests' TLS hub and webhook
(``hub``), reused as they are.

No ``__init__.py`` here: as a package this directory would be imported as ``hot_upgrade``.
"""

from __future__ import annotations

from tests.injection.conftest import _webhook_cleanup, hub, hub_server

__all__ = ["_webhook_cleanup", "hub", "hub_server"]
