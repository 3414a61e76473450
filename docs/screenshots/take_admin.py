"""Screenshots of the back office for the README, from headless Chromium.

Against a running server with `seed_demo` data and an admin login:

    .venv/bin/python manage.py seed_demo
    .venv/bin/python manage.py runserver 127.0.0.1:8000 &
    ADMIN_USER=admin ADMIN_PASSWORD=... .venv/bin/python docs/screenshots/take_admin.py

Uses Debian's Chromium (`CHROMIUM`, default /usr/bin/chromium) through Playwright."""

from __future__ import annotations

import sys

from admin_session import HERE, admin_page


def main() -> int:
    # Collapse the admin's navigation sidebar so the market table gets the width.
    collapsed = "localStorage.setItem('django.admin.navSidebarIsOpen', 'false')"
    with admin_page(width=1440, height=900, init_script=collapsed) as (page, base):
        page.goto(f"{base}/admin/markets/market/")
        page.screenshot(path=HERE / "admin-market.png")
        page.goto(f"{base}/admin/markets/market/?status__exact=closed")
        first = page.locator("#result_list tbody tr th a").first
        market_id = first.inner_text().strip()
        page.goto(f"{base}/admin/markets/market/{market_id}/resolve/")
        page.screenshot(path=HERE / "admin-resolve.png")
    print(f"wrote {HERE / 'admin-market.png'} and {HERE / 'admin-resolve.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
