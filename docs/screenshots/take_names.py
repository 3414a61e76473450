"""Screenshots of the back office with names (issue 13): the market list at 1366 px, the
width of a common laptop, and a member's page. Same set-up as `take_admin.py`:

    .venv/bin/python manage.py seed_demo
    .venv/bin/python manage.py runserver 127.0.0.1:8000 &
    ADMIN_USER=admin ADMIN_PASSWORD=... .venv/bin/python docs/screenshots/take_names.py

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
        # The sidebar stays as Django opens it: a moderator's first view, not a tidied one.
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        page.goto(f"{base}/admin/login/?next=/admin/")
        page.fill("#id_username", user)
        page.fill("#id_password", password)
        page.click("input[type=submit]")
        page.wait_for_url(f"{base}/admin/")
        page.goto(f"{base}/admin/markets/market/")
        page.screenshot(path=HERE / "admin-market-list-1366.png")
        page.goto(f"{base}/admin/points/member/?q=Ada")
        page.locator('#result_list tbody tr a[title^="Discord id"]').first.click()
        page.wait_for_load_state()
        page.screenshot(path=HERE / "admin-member.png", full_page=True)
        browser.close()
    print(f"wrote {HERE / 'admin-market-list-1366.png'} and {HERE / 'admin-member.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
