"""Screenshots of the back office for the README, from headless Chromium.

Against a running server with `seed_demo` data and an admin login:

    .venv/bin/python manage.py seed_demo
    .venv/bin/python manage.py runserver 127.0.0.1:8000 &
    ADMIN_USER=admin ADMIN_PASSWORD=... .venv/bin/python docs/screenshots/take_admin.py

Uses Debian's Chromium (`CHROMIUM`, default /usr/bin/chromium) through Playwright."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent


def main() -> int:
    base = os.environ.get("BASE_URL", "http://127.0.0.1:8000").rstrip("/")
    user, password = os.environ.get("ADMIN_USER"), os.environ.get("ADMIN_PASSWORD")
    if not user or not password:
        print("Set ADMIN_USER and ADMIN_PASSWORD (a superuser or a Moderator).", file=sys.stderr)
        return 2
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        # Collapse the admin's navigation sidebar so the market table gets the width.
        page.add_init_script("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
        page.goto(f"{base}/admin/login/?next=/admin/")
        page.fill("#id_username", user)
        page.fill("#id_password", password)
        page.click("input[type=submit]")
        page.wait_for_url(f"{base}/admin/")
        page.goto(f"{base}/admin/markets/market/")
        page.screenshot(path=HERE / "admin-market.png")
        page.goto(f"{base}/admin/markets/market/?status__exact=closed")
        first = page.locator("#result_list tbody tr th a").first
        market_id = first.inner_text().strip()
        page.goto(f"{base}/admin/markets/market/{market_id}/resolve/")
        page.screenshot(path=HERE / "admin-resolve.png")
        browser.close()
    print(f"wrote {HERE / 'admin-market.png'} and {HERE / 'admin-resolve.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
