"""The quick amounts (issue 26) on a server's settings page in Chromium at 1366×768: shown as
“10, 100, 1,000”, typed the same way, a bad list refused in the table's words, nothing saved."""

from __future__ import annotations

import pytest
from django.urls import reverse

from points.models import GuildSettings
from points.rules import SETTINGS_BY_NAME
from points.services import guild_settings_get_or_create
from tests import browser_helpers
from tests.admin_helpers import settings_editor
from tests.browser_helpers import db, shoot
from tests.conftest import GUILD

live, admin_browser = browser_helpers.live, browser_helpers.admin_browser  # the fixtures
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_quick_amounts_read_and_typed_as_amounts(live, admin_browser):
    db(guild_settings_get_or_create, guild_id=GUILD)
    page = admin_browser(db(settings_editor))
    url = live.url + reverse("admin:points_guildsettings_change", args=[GUILD])
    page.goto(url)

    amounts = page.locator("#id_quick_amounts")
    assert amounts.input_value() == "10, 100, 1,000"
    amounts.fill("5, 5")
    page.locator("input[name=_continue]").click()
    error = page.locator(".errorlist").first.inner_text()
    assert error == SETTINGS_BY_NAME["quick_amounts"].message
    assert db(GuildSettings.objects.get, guild_id=GUILD).quick_amounts == [10, 100, 1000]

    page.locator("#id_quick_amounts").fill("25, 250, 2,500")
    page.locator("input[name=_continue]").click()
    page.wait_for_url(url)
    assert db(GuildSettings.objects.get, guild_id=GUILD).quick_amounts == [25, 250, 2500]
    saved = page.locator("#id_quick_amounts")
    assert saved.input_value() == "25, 250, 2,500"
    saved.evaluate("el => el.scrollIntoView({block: 'center'})")
    shoot(page, "admin-guild-settings-quick-amounts.png")
