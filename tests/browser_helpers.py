"""The back office in a real browser (issue 23): Debian's Chromium through Playwright at
1366×768, the width of a common laptop, against pytest-django's live server on the test
database. Pages are logged in by a session cookie made with Django's test client.

`shoot(page, name)` saves a screenshot to `test-results/`, and also to `docs/screenshots/` when
`UPDATE_SCREENSHOTS=1` (how the committed ones were made). Import the fixtures with
`from tests.browser_helpers import admin_browser, live  # noqa: F401`."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client, override_settings

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WIDTH, HEIGHT = 1366, 768
ROOT = Path(django_settings.BASE_DIR)
OUTPUT = ROOT / "test-results"
SCREENSHOTS = ROOT / "docs" / "screenshots"


def db(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run ORM code in a worker thread: Playwright's sync API keeps an event loop running in
    the test's thread, where Django refuses synchronous queries."""

    def call() -> Any:
        try:
            return func(*args, **kwargs)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call).result(timeout=60)


@pytest.fixture
def live(live_server):
    """The live server over plain HTTP (production settings would send it to HTTPS and keep the
    session cookie off it). The security middleware reads its settings when it is built, so the
    server's handler rebuilds its middleware under them, and again after."""
    handler = live_server.thread.httpd.get_app()
    handler = getattr(handler, "application", handler)  # inside the static-files handler
    plain_http = override_settings(
        SECURE_SSL_REDIRECT=False, SESSION_COOKIE_SECURE=False, CSRF_COOKIE_SECURE=False
    )
    with plain_http:
        handler.load_middleware()
        yield live_server
    handler.load_middleware()


@pytest.fixture
def admin_browser(live) -> Iterator[Callable[..., Any]]:
    """`open(user=None)` → a fresh 1366×768 page, logged in as `user` (a User) when given."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

        def open_page(user: Any = None) -> Any:
            context = chromium.new_context(viewport={"width": WIDTH, "height": HEIGHT})
            if user is not None:
                client = Client()
                db(client.force_login, user)
                cookie = client.cookies[django_settings.SESSION_COOKIE_NAME]
                context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": live.url}])
            return context.new_page()

        yield open_page
        chromium.close()


def shoot(page: Any, name: str) -> Path:
    """A screenshot of the visible 1366×768 page (small PNGs: the viewport, not the full page)."""
    OUTPUT.mkdir(exist_ok=True)
    path = OUTPUT / name
    page.screenshot(path=path)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        page.screenshot(path=SCREENSHOTS / name)
    return path


def overflows(page: Any) -> int:
    """How many pixels of the changelist's table are cut off (0 when it fits): the admin scrolls
    a wide table inside its box, so a column past the box's edge is hidden at first sight."""
    return int(
        page.evaluate(
            """() => {
                const box = document.querySelector("#changelist .results");
                const table = document.querySelector("#result_list");
                if (!box || !table) return -1;
                const right = (el) => el.getBoundingClientRect().right;
                // Whole pixels: sub-pixel rounding of a table that fits is not a cut column.
                return Math.max(0, Math.floor(right(table) - right(box)),
                    Math.floor(right(box) - window.innerWidth));
            }"""
        )
    )
