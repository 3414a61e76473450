"""Screenshots of the back office with names (issue 13): the market list at 1366 px, the
width of a common laptop, and a member's page. Same set-up as `take_admin.py`:

    .venv/bin/python manage.py seed_demo
    .venv/bin/python manage.py runserver 127.0.0.1:8000 &
    ADMIN_USER=admin ADMIN_PASSWORD=... .venv/bin/python docs/screenshots/take_names.py

Uses Debian's Chromium (`CHROMIUM`, default /usr/bin/chromium) through Playwright."""

from __future__ import annotations

import sys

from admin_session import HERE, admin_page


def main() -> int:
    # The sidebar stays as Django opens it: a moderator's first view, not a tidied one.
    with admin_page(width=1366, height=768) as (page, base):
        page.goto(f"{base}/admin/markets/market/")
        page.screenshot(path=HERE / "admin-market-list-1366.png")
        page.goto(f"{base}/admin/points/member/?q=Ada")
        page.locator('#result_list tbody tr a[title^="Discord id"]').first.click()
        page.wait_for_load_state()
        page.screenshot(path=HERE / "admin-member.png", full_page=True)
    print(f"wrote {HERE / 'admin-market-list-1366.png'} and {HERE / 'admin-member.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
