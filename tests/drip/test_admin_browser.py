"""The "DRIP transfers" list in Chromium at 1366×768 (issue 23 item 11): members and servers
by name, as the rest of the back office shows them, in a list that fits the screen."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from drip import services
from points.services import member_seen
from tests import browser_helpers
from tests.admin_helpers import staff_user
from tests.browser_helpers import db, overflows, shoot

from .conftest import ALICE, BOB, CAROL, GUILD

live, admin_browser = browser_helpers.live, browser_helpers.admin_browser  # the fixtures
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _seed() -> int:
    names = ((ALICE, "Alice Adams"), (BOB, "Bob Brown"), (CAROL, "Carol Chen"))
    for user_id, name in names:
        member_seen(
            guild_id=GUILD, user_id=user_id, display_name=name, username=name.lower(),
            guild_name="Book club",
        )  # fmt: skip
    for k, (user_id, _) in enumerate(names * 2):
        services.drip_withdraw_request(
            guild_id=GUILD, user_id=user_id, amount=100 + k, idempotency_key=f"w:{k}"
        )
    services.drip_batch_claim(guild_id=GUILD)
    doubtful = services.drip_withdraw_request(
        guild_id=GUILD, user_id=BOB, amount=512, idempotency_key=f"w:{uuid.uuid4().hex}"
    )
    services.drip_batch_claim(guild_id=GUILD)
    services.drip_transfers_in_doubt(transfer_ids=[doubtful.pk], reason="DRIP did not answer")
    return doubtful.pk


def _moderator():
    """A staff login that may view and decide DRIP transfers (as `tests/drip/test_admin.py`
    makes them: the Moderators group `tests.admin_helpers` rebuilds after a flush lacks them)."""
    user = staff_user("drip-mod", None)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="drip",
            codename__in=["view_driptransfer", "resolve_driptransfer"],
        )
    )
    return user


def test_drip_transfers_name_members_and_servers_and_fit_at_1366(linked, live, admin_browser):
    doubtful = db(_seed)
    page = admin_browser(db(_moderator))
    page.goto(live.url + reverse("admin:drip_driptransfer_changelist"))
    shoot(page, "admin-drip-transfers-1366.png")

    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 7
    assert overflows(page) == 0
    text = page.locator("#result_list").inner_text()
    assert "<@" not in text and "111111111111111111" not in text
    filters = page.locator("#changelist-filter").inner_text()
    assert "Book club" in filters and "111111111111111111" not in filters
    row = rows.filter(has=page.locator(f"th a:text-is('{doubtful}')"))
    member = row.locator("td.field-member_name a")
    assert member.inner_text() == "Bob Brown"
    assert member.get_attribute("href") == reverse("admin:points_member", args=[GUILD, BOB])
    assert member.get_attribute("title") == f"Discord id {BOB}"
    assert row.locator("td.field-server").inner_text() == "Book club"
    assert row.locator("td.field-points").inner_text() == "512 to DRIP"
    assert row.locator("td.field-decide a").inner_text() == "Decide…"
