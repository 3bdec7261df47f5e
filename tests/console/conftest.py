"""Browser tests of the web console: a real Chromium (Debian's ``chromium`` package, installed by
``scripts/services.sh``; never a downloaded browser) driven by Playwright against pytest-django's
``live_server`` on the test database.

Reusable fixtures:

- ``browser``: a Chromium for the test.
- ``console``: opens pages as a given user (``console.page_for(user)``: already signed in, its
  own browser context, so two users are two sessions side by side); ``console.url(path)``.
  Every page it opened is photographed into ``var/test-artifacts/`` when the test fails.
- ``sign_in_through_form(page, url, username, password)``: the real login form.
- ``fast_refresh``: live regions poll every second.
- ``make_staff_user(name, *perms)`` and ``watcher(name)`` (sees and approves rollouts).
- ``roles``: the ready-made role groups (``sidecarhub.roles``), and ``team_member(name, *roles,
  teams=...)``: a console user who holds only those roles, in those teams.

The server runs in a thread of the test process, so tests change rows directly (or through the
services) and watch the page pick the change up.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from sidecarhub.models import Team
from sidecarhub.roles import install_roles
from tests.clusters.conftest import make_user
from tests.rollouts_api.conftest import APPROVE, fast_passwords, person, quiet_queue  # noqa: F401  (autouse here too)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "var" / "test-artifacts"
CHROMIUM = os.environ.get("SIDECARHUB_CHROMIUM", "/usr/bin/chromium")
# Headless, offline and quiet: no sandbox (root in CI), no GPU, no calls home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1400, "height": 1000}  # the width issue 16 measures the console at
WAIT_MS = 15_000

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test item, so fixtures can tell a failed test at teardown."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


def failed(item: pytest.Item) -> bool:
    reports = item.stash.get(_REPORTS, {})
    return any(report.failed for report in reports.values())


def artifact_stem(nodeid: str) -> str:
    """A file name for a test: ``tests/console/test_x.py::test_y[a]`` -> ``test_x-py-test_y-a``."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", nodeid.split("/")[-1]).strip("-")


def save_failure_artifacts(pages: list[Page], stem: str, directory: Path = ARTIFACTS) -> list[Path]:
    """A full-page PNG (or what the window shows, when the whole page cannot be taken in time)
    and the HTML of each page still open; returns the files written. Never raises for a page
    that cannot be photographed: the test's own failure is what the report must show."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for number, page in enumerate(pages, start=1):
        if page.is_closed():
            continue
        picture, html = directory / f"{stem}-{number}.png", directory / f"{stem}-{number}.html"
        for whole in (True, False):
            try:
                page.screenshot(path=str(picture), full_page=whole, timeout=10_000)
            except PlaywrightError:
                continue
            written.append(picture)
            break
        try:
            html.write_text(page.content())
        except PlaywrightError:
            continue
        written.append(html)
    return written


@pytest.fixture
def browser(live_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    """Debian's Chromium, for one test; fails (never skips) when it is missing (``services.sh``
    installs it).

    One per test, started after the test database and the live server: Playwright's sync API
    keeps an asyncio loop running in the test thread while it is open, and Django refuses
    database calls from a thread with a running loop. The tests' own ORM calls between browser
    steps are synchronous and safe, so the check is off for the test only.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/services.sh's ensure_browser installs Debian's chromium")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
            # Connections the test opened while the loop ran belong to the loop's context
            # (asgiref.Local): closed here, or they would keep the test database from being dropped.
            connections.close_all()


@pytest.fixture
def fast_refresh(settings: Any) -> int:
    """Live regions poll every second (the default is ``SIDECARHUB_CONSOLE_REFRESH_SECONDS``)."""
    settings.SIDECARHUB_CONSOLE_REFRESH_SECONDS = 1
    return 1


@dataclass
class Console:
    """Opens console pages in the browser as given users (see the module docstring)."""

    browser: Browser
    base_url: str
    contexts: list[BrowserContext] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    def new_page(self) -> Page:
        """A page in a fresh context with nobody signed in."""
        context = self.browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]  # a dict is what Playwright takes
        context.set_default_timeout(WAIT_MS)
        self.contexts.append(context)
        return context.new_page()

    def page_for(self, user: User, path: str = "/admin/") -> Page:
        """A page signed in as ``user`` (a session made by Django's test client, handed to the
        browser as its cookie) and opened at ``path``."""
        client = Client()
        client.force_login(user)
        session = client.cookies[django_settings.SESSION_COOKIE_NAME].value
        page = self.new_page()
        page.context.add_cookies(
            [{"name": django_settings.SESSION_COOKIE_NAME, "value": session, "url": self.base_url}]
        )
        page.goto(self.url(path))
        return page

    def pages(self) -> list[Page]:
        return [page for context in self.contexts for page in context.pages]


@pytest.fixture
def console(browser: Browser, live_server: Any, request: pytest.FixtureRequest) -> Iterator[Console]:
    """Pages of the console served by ``live_server``; screenshots of all of them on failure."""
    opened = Console(browser, live_server.url)
    try:
        yield opened
    finally:
        if failed(request.node):
            save_failure_artifacts(opened.pages(), artifact_stem(request.node.nodeid))
        for context in opened.contexts:
            context.close()


def sign_in_through_form(page: Page, url: str, username: str, password: str) -> None:
    """Sign in on the console's login page, as a person would."""
    page.goto(url)
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")


def make_staff_user(username: str, *perms: str) -> User:
    """A user who may sign in to the console (``is_staff``), with ``perms``; password ``pw-NAME``."""
    user = make_user(username, *perms)
    User.objects.filter(pk=user.pk).update(is_staff=True)
    return User.objects.get(pk=user.pk)


@pytest.fixture
def roles(db: None) -> None:
    """The role groups. Their data migration made them, but a transactional test's flush empties
    every table, so they are installed again (idempotent)."""
    install_roles(apps)


def team_member(username: str, *roles: str, teams: tuple[Team, ...] = ()) -> User:
    """A console user (``is_staff``) in the role groups ``roles`` and ``teams``; password ``pw-NAME``."""
    user = person(username, *roles, teams=teams)
    User.objects.filter(pk=user.pk).update(is_staff=True)
    return User.objects.get(pk=user.pk)


# What a platform engineer who watches and approves rollouts holds.
WATCHER = (
    *APPROVE,
    "rollouts.view_podupdate",
    "clusters.view_cluster",
    "sidecarhub.view_sidecarset",
)


def watcher(username: str) -> User:
    """A console user with ``WATCHER``'s permissions (password ``pw-NAME``)."""
    return make_staff_user(username, *WATCHER)
