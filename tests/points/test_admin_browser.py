"""The points back office in Chromium at 1366×768 (issue 23): a server's settings page
(item 13), the audit list (item 13) and a member's page without a picture (item 14), as a
moderator meets them."""

from __future__ import annotations

import pytest
from django.urls import reverse

from points.models import AuditEvent, GuildSettings
from points.rules import Actor
from points.services import guild_settings_get_or_create, member_seen, points_grant
from tests import browser_helpers
from tests.admin_helpers import settings_editor, staff_user
from tests.browser_helpers import db, overflows, shoot
from tests.conftest import ALICE, BOB, GUILD

live, admin_browser = browser_helpers.live, browser_helpers.admin_browser  # the fixtures
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROLE_A, ROLE_B = 444_444_444_444_444_444, 555_555_555_555_555_555
CHANNEL = 666_666_666_666_666_666
LONG_REASON = (
    "Prize for the spring quiz night: first place in the team round, with a bonus for the "
    "tie-break question that the whole channel argued about for an hour afterwards, as agreed"
)


def _named_guild() -> None:
    member_seen(
        guild_id=GUILD, user_id=ALICE, display_name="Alice Adams", username="alice",
        avatar="http://127.0.0.1:9/avatars/alice.png", guild_name="Book club",
    )  # fmt: skip
    member_seen(guild_id=GUILD, user_id=BOB, display_name="Bob Brown", username="bob")


def _seed_settings() -> None:
    _named_guild()
    gs = guild_settings_get_or_create(guild_id=GUILD)
    gs.creator_role_ids = [ROLE_A]
    gs.save()


def test_guild_settings_read_as_the_server_and_take_roles_as_text(live, admin_browser):
    db(_seed_settings)
    page = admin_browser(db(settings_editor))
    page.goto(live.url + reverse("admin:points_guildsettings_change", args=[GUILD]))

    # Titled by the server's name, the id beside it; the breadcrumbs say the name too.
    assert page.locator("#content h1").inner_text() == "Settings of Book club"
    assert "Discord server id 111111111111111111" in page.locator("#content h2").first.inner_text()
    assert page.locator(".breadcrumbs").inner_text().endswith("Book club")
    assert "Guild 1111" not in page.content()

    # Roles as a readable list, not JSON; help texts in words, no "DOMAIN §".
    roles = page.locator("#id_creator_role_ids")
    assert roles.input_value() == str(ROLE_A)
    form_text = page.locator("#guildsettings_form").inner_text()
    assert "§" not in form_text and "DOMAIN" not in form_text
    assert "Only members with one of these roles" in form_text

    # An 18-digit channel id fits its box; the moderators' channel is there.
    announce = page.locator("#id_announce_channel_id")
    announce.fill(str(CHANNEL))
    assert announce.evaluate("el => el.scrollWidth <= el.clientWidth")
    assert page.locator("#id_moderator_channel_id").count() == 1

    # No Delete (it would undo every setting without an audit record).
    assert page.locator("a.deletelink").count() == 0
    page.locator("#id_moderator_channel_id").fill(str(CHANNEL + 1))
    roles.fill(f"{ROLE_A}, {ROLE_B}")
    roles.scroll_into_view_if_needed()
    shoot(page, "admin-guild-settings.png")

    # Bad input: a clear message naming what is wrong, nothing saved.
    roles.fill(f"{ROLE_A}, moderators")
    page.locator("input[name=_continue]").click()
    error = page.locator(".errorlist").first.inner_text()
    assert error.startswith("“moderators” is not a role id. Enter Discord role ids separated")
    assert db(GuildSettings.objects.get, guild_id=GUILD).creator_role_ids == [ROLE_A]

    # Comma- or space-separated ids save, through the service, with its audit record.
    page.locator("#id_creator_role_ids").fill(f"{ROLE_A}, {ROLE_B}")
    page.locator("#id_resolver_role_ids").fill(f"{ROLE_B} {ROLE_A}")
    page.locator("#id_announce_channel_id").fill(str(CHANNEL))
    page.locator("#id_moderator_channel_id").fill(str(CHANNEL + 1))
    page.locator("input[name=_continue]").click()
    page.wait_for_selector(".messagelist .success")
    gs = db(GuildSettings.objects.get, guild_id=GUILD)
    assert gs.creator_role_ids == [ROLE_A, ROLE_B] and gs.resolver_role_ids == [ROLE_B, ROLE_A]
    assert (gs.announce_channel_id, gs.moderator_channel_id) == (CHANNEL, CHANNEL + 1)
    audit = db(lambda: AuditEvent.objects.filter(action="guild_settings_update").last())
    assert audit.after["moderator_channel_id"] == str(CHANNEL + 1)
    assert page.locator("#id_creator_role_ids").input_value() == f"{ROLE_A}, {ROLE_B}"

    # The list names the server too.
    page.goto(live.url + reverse("admin:points_guildsettings_changelist"))
    assert page.locator(
        "#result_list tbody tr td, #result_list tbody tr th"
    ).first.inner_text() == ("Book club")


def _seed_audit() -> None:
    _named_guild()
    for k in range(3):
        points_grant(
            guild_id=GUILD, user_id=ALICE if k % 2 else BOB, amount=50 + k,
            reason=LONG_REASON, actor=Actor.member(BOB, manage_guild=True),
            idempotency_key=f"grant:{k}",
        )  # fmt: skip


def test_audit_reasons_fit_the_list_with_the_whole_reason_on_hover(live, admin_browser):
    db(_seed_audit)
    page = admin_browser(db(staff_user, "mod", "Moderators"))
    page.goto(live.url + reverse("admin:points_auditevent_changelist"))
    assert overflows(page) == 0
    cell = page.locator("#result_list td.field-reason_short span").first
    assert cell.inner_text() == LONG_REASON[:29] + "…"
    assert cell.get_attribute("title") == LONG_REASON
    assert cell.evaluate("el => el.getClientRects().length") == 1  # one line, not a column
    server = page.locator("#result_list td.field-server span").first
    assert server.inner_text() == "Book club"
    shoot(page, "admin-audit-1366.png")
    # The event's own page keeps the whole reason.
    page.locator("#result_list tbody tr th a").first.click()
    assert LONG_REASON in page.locator(".field-reason").inner_text()


def test_member_page_shows_initials_without_a_picture_never_a_broken_image(live, admin_browser):
    db(_named_guild)
    page = admin_browser(db(staff_user, "mod", "Moderators"))
    broken_images = "[...document.images].filter(i => i.complete && !i.naturalWidth).length"

    # Bob has no picture: his initials.
    page.goto(live.url + reverse("admin:points_member", args=[GUILD, BOB]))
    avatar = page.locator(".identity .avatar")
    assert avatar.inner_text().strip() == "BB"
    assert avatar.locator("img").count() == 0
    assert page.evaluate(broken_images) == 0
    shoot(page, "admin-member-initials.png")

    # Alice's picture does not load (a dead address): her initials, not a broken image.
    page.goto(live.url + reverse("admin:points_member", args=[GUILD, ALICE]))
    page.wait_for_load_state("load")
    assert page.locator(".identity .avatar").inner_text().strip() == "AA"
    assert page.evaluate(broken_images) == 0

    # A member the directory never saw: "?".
    page.goto(live.url + reverse("admin:points_member", args=[GUILD, 222_222_222_222_222_299]))
    assert page.locator(".identity .avatar").inner_text().strip() == "?"
