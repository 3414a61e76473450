"""Seasons in the back office, in Chromium at 1366×768 (issue 26): the list fits beside its
filters with each server by name, a season's page shows its three final tables side by side and
who got the reward role, and a moderator has the table posted again through the confirmation page
(a reason required, audited)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from points.models import AuditEvent, Season
from tests import browser_helpers
from tests.admin_helpers import staff_user
from tests.browser_helpers import db, overflows, shoot
from tests.season_helpers import seed_seasons

live, admin_browser = browser_helpers.live, browser_helpers.admin_browser  # the fixtures
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_moderator_reads_a_seasons_table_and_has_it_posted_again(live, admin_browser):
    season = db(seed_seasons)
    page = admin_browser(db(staff_user, "mod", "Moderators"))
    page.goto(live.url + reverse("admin:points_season_changelist"))
    assert overflows(page) == 0
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 3
    servers = page.locator("#result_list td.field-server").all_inner_texts()
    assert sorted(servers) == ["Book club", "Book club", "Chess club"]
    assert "Guild 1111" not in page.content()
    closed = page.locator("#result_list tbody tr", has_text="closed")
    assert closed.locator("td.field-top_three").inner_text().split("\n") == [
        "Bob Brown +230",
        "Alice Adams -50",
        "Carol Chen -100",
    ]
    assert closed.locator("td.field-post_short span").get_attribute("title").startswith("posted ")
    # No cell wraps into a column of words.
    for cell in ("field-server", "field-season", "field-period", "field-post_short"):
        lines = page.locator(f"#result_list .{cell} span").evaluate_all(
            "spans => spans.map(s => s.getClientRects().length)"
        )
        assert lines and set(lines) == {1}, cell
    shoot(page, "admin-seasons-1366.png")

    # The server filter by name.
    page.locator("#changelist-filter a", has_text="Chess club").click()
    page.wait_for_url("**guild_id=*")
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == 1

    # The season's page: three tables side by side, the role's holders, no Save.
    page.goto(live.url + reverse("admin:points_season_change", args=[season.pk]))
    assert page.locator("#content h1").inner_text() == "Season 1 of Book club"
    tables = page.locator("table.season-table")
    assert tables.count() == 3
    tops = [round(box["y"]) for box in tables.evaluate_all(
        "ts => ts.map(t => t.getBoundingClientRect().toJSON())"
    )]  # fmt: skip
    assert len(set(tops)) == 1  # one row of tables at 1366 px
    profit = page.locator('table.season-table[data-kind="profit"] tbody tr').all_inner_texts()
    assert [line.split("\t")[1] for line in profit] == ["Bob Brown", "Alice Adams", "Carol Chen"]
    assert page.locator(".field-reward .readonly").inner_text() == "Bob Brown"
    assert page.locator("input[name=_save]").count() == 0
    page.locator(".field-final_table").scroll_into_view_if_needed()
    shoot(page, "admin-season.png")

    # Post it again: a reason is required; then the request is recorded and audited.
    page.locator(".object-tools a", has_text="Post the final table again").click()
    assert page.locator("#content h1").inner_text() == "Post the final table of season 1 again"
    page.locator("input[type=submit]").click()  # without a reason: the browser refuses
    assert page.locator("#id_reason").evaluate("el => el.validity.valueMissing")
    assert db(lambda: Season.objects.get(pk=season.pk).post_round) == 0
    page.locator("#id_reason").fill("The post was deleted by mistake")
    page.locator("input[type=submit]").click()
    page.wait_for_selector(".messagelist .success")
    assert "within a minute or two" in page.locator(".messagelist").inner_text()
    assert db(lambda: Season.objects.get(pk=season.pk).post_round) == 1
    event = db(lambda: AuditEvent.objects.get(action="season_repost"))
    assert event.reason == "The post was deleted by mistake"
    assert page.locator(".field-post .readonly").inner_text() == "waiting for the bot"
