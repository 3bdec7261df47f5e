"""Fixtures of the rollouts tests (helpers live in ``tests/rollouts/helpers.py``).

No ``__init__.py`` here: as a package this directory would be imported as ``rollouts`` and
shadow the app of that name.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from tests.clusters.conftest import make_user


@pytest.fixture
def approver(db: None) -> User:
    return make_user("approver", "rollouts.approve_rolloutstep", "rollouts.operate_rollout")


@pytest.fixture
def author(db: None) -> User:
    return make_user("author", "rollouts.approve_rolloutstep", "rollouts.operate_rollout")
