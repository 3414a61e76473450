"""What the back-office screenshot scripts share (`take_admin.py`, `take_names.py`): headless
Chromium signed in to the admin of a running server.

`BASE_URL` (default http://127.0.0.1:8000), `ADMIN_USER` and `ADMIN_PASSWORD` (a superuser or a
Moderator), `CHROMIUM` (default /usr/bin/chromium, Debian's, driven through Playwright)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

HERE = Path(__file__).resolve().parent


@contextmanager
def admin_page(*, width: int, height: int, init_script: str = "") -> Iterator[tuple[Page, str]]:
    """A page signed in to the admin at `width`×`height`, and the server's base URL; exits
    with status 2 and says why when the login is not set."""
    base = os.environ.get("BASE_URL", "http://127.0.0.1:8000").rstrip("/")
    user, password = os.environ.get("ADMIN_USER"), os.environ.get("ADMIN_PASSWORD")
    if not user or not password:
        print("Set ADMIN_USER and ADMIN_PASSWORD (a superuser or a Moderator).", file=sys.stderr)
        sys.exit(2)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": width, "height": height})
        if init_script:
            page.add_init_script(init_script)
        page.goto(f"{base}/admin/login/?next=/admin/")
        page.fill("#id_username", user)
        page.fill("#id_password", password)
        page.click("input[type=submit]")
        page.wait_for_url(f"{base}/admin/")
        try:
            yield page, base
        finally:
            browser.close()
