"""The site's root and icon in Chromium (issue 23 item 14): `/` leads staff to the dashboard
and anyone else to the login (then the dashboard); no page asks for an icon it cannot get."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests import browser_helpers
from tests.admin_helpers import staff_user
from tests.browser_helpers import db, shoot

live, admin_browser = browser_helpers.live, browser_helpers.admin_browser  # the fixtures
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery"  # tests.admin_helpers.staff_user's


def _not_found(page) -> list[str]:
    """Every response of 400 or more the page gets from now on (its icon included)."""
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    return failed


def test_the_root_leads_to_the_login_then_the_dashboard_and_staff_straight_there(
    live, admin_browser
):
    user = db(staff_user, "mod", "Moderators")

    page = admin_browser()
    failed = _not_found(page)
    page.goto(live.url + "/")
    assert page.url == f"{live.url}/admin/login/?next=/dashboard/"
    assert "Page not found" not in page.content()
    shoot(page, "site-root-login.png")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(r".*/dashboard/$"))
    assert failed == []

    page = admin_browser(user)
    page.goto(live.url + "/")
    assert page.url == f"{live.url}/dashboard/"


@pytest.mark.parametrize("path", ["/admin/", "/dashboard/"])
def test_every_page_names_an_icon_that_loads_and_favicon_ico_is_served(live, admin_browser, path):
    page = admin_browser(db(staff_user, "mod", "Moderators"))
    failed = _not_found(page)
    page.goto(live.url + path)
    page.wait_for_load_state("load")
    href = page.locator("link[rel=icon]").get_attribute("href")
    icon = page.request.get(live.url + href if href.startswith("/") else href)
    assert icon.status == 200 and icon.body()[:4] == b"\x00\x00\x01\x00"  # an .ico
    conventional = page.request.get(live.url + reverse("favicon"))
    assert conventional.status == 200
    assert conventional.headers["content-type"] == "image/x-icon"
    assert conventional.body() == icon.body()
    assert failed == []
