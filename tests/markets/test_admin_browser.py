"""A market's page in the back office, in Chromium at 1366×768 (issue 23 item 12): the
"Proposed result" box appears only while a result is proposed, and says whether the proposer
holds a position in words — "no", or "yes" with what it means."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from markets import services
from markets.models import Market
from points.rules import Actor
from points.services import guild_settings_get_or_create, member_seen
from tests import browser_helpers
from tests.admin_helpers import staff_user
from tests.browser_helpers import db, shoot
from tests.conftest import ALICE, BOB, CAROL, GUILD, MOD
from tests.factories import BetFactory, MarketFactory

live, admin_browser = browser_helpers.live, browser_helpers.admin_browser  # the fixtures
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MODERATOR = Actor.member(MOD, manage_guild=True)


def _seed() -> dict[str, int]:
    gs = guild_settings_get_or_create(guild_id=GUILD)
    gs.dispute_window_minutes = 60
    gs.resolution_mode = "creator"
    gs.save()
    for user_id, name in ((ALICE, "Alice Adams"), (BOB, "Bob Brown"), (CAROL, "Carol Chen")):
        member_seen(
            guild_id=GUILD, user_id=user_id, display_name=name, username=name.lower(),
            guild_name="Book club",
        )  # fmt: skip
    markets = {}
    for key in ("settled", "proposed", "conflicted"):
        market = MarketFactory(question=f"Will the {key} rocket launch?")
        BetFactory(market=market, user_id=ALICE, outcome=0, amount=120)
        BetFactory(market=market, user_id=BOB, outcome=1, amount=80)
        if key == "conflicted":  # the creator (Carol) holds a position and proposes
            BetFactory(market=market, user_id=CAROL, outcome=0, amount=40)
        services.market_close(market_id=market.pk, actor=MODERATOR, idempotency_key=f"c:{key}")
        markets[key] = market.pk
    services.market_resolve(
        market_id=markets["settled"], outcome=0, actor=MODERATOR,
        reason="On the news", idempotency_key="r:settled",
    )  # fmt: skip
    services.market_propose(
        market_id=markets["proposed"], outcome=0, actor=MODERATOR, idempotency_key="p:proposed"
    )
    services.market_propose(
        market_id=markets["conflicted"], outcome=0, actor=Actor.member(CAROL),
        idempotency_key="p:conflicted",
    )  # fmt: skip
    return markets


def _fieldset(page, title: str):
    """The market's own box titled `title` (not an inline's, such as "Disputes of proposed
    results")."""
    heading = page.locator("h2", has_text=re.compile(rf"^\s*{re.escape(title)}\s*$"))
    return page.locator("fieldset.module").filter(has=heading)


def test_the_proposed_result_box_shows_only_with_a_proposal_and_says_no_as_no(live, admin_browser):
    markets = db(_seed)
    assert db(Market.objects.get, pk=markets["settled"]).status == Market.Status.RESOLVED
    page = admin_browser(db(staff_user, "mod", "Moderators"))

    def market_page(key: str) -> None:
        page.goto(live.url + reverse("admin:markets_market_change", args=[markets[key]]))

    # Settled: no empty box of dashes, and nothing about a proposer.
    market_page("settled")
    assert _fieldset(page, "Settlement").count() == 1
    assert _fieldset(page, "Proposed result").count() == 0
    assert "Proposal conflicted" not in page.content()
    assert "The proposer holds a position" not in page.content()
    server = page.locator(".fieldBox.field-guild .readonly")
    assert server.inner_text() == "Book club"  # the server's name, its id as the tooltip
    _fieldset(page, "Settlement").evaluate("el => el.scrollIntoView({block: 'center'})")
    shoot(page, "admin-market-settled.png")

    # Proposed by a moderator without a position: the box, and a plain "no".
    market_page("proposed")
    box = _fieldset(page, "Proposed result")
    assert box.count() == 1
    assert _fieldset(page, "Settlement").count() == 0  # nor an empty one for the payout
    row = box.locator(".fieldBox.field-proposer_conflict")
    assert row.locator("label").inner_text().strip().rstrip(":") == ("Proposer holds a position")
    assert row.locator(".readonly").inner_text().strip() == "no"
    assert "DOMAIN" not in box.inner_text() and "§" not in box.inner_text()
    overlap = page.evaluate(
        """() => {
            const a = document.querySelector("#content h2").getBoundingClientRect();
            const b = document.querySelector(".object-tools").getBoundingClientRect();
            return a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
        }"""
    )
    assert not overlap, "the action buttons cover the market's title"
    box.scroll_into_view_if_needed()
    shoot(page, "admin-market-proposed.png")

    # Proposed by the creator, who holds a position: "yes", said as what it is.
    market_page("conflicted")
    cell = _fieldset(page, "Proposed result").locator(".fieldBox.field-proposer_conflict .readonly")
    assert cell.inner_text().strip() == (
        "yes — the proposer held a position in this market when proposing"
    )


def _closed_market() -> int:
    _seed_names()
    market = MarketFactory(question="Will the closed rocket launch?")
    BetFactory(market=market, user_id=ALICE, outcome=0, amount=120)
    services.market_close(market_id=market.pk, actor=MODERATOR, idempotency_key="c:closed")
    return market.pk


def _seed_names() -> None:
    member_seen(
        guild_id=GUILD, user_id=ALICE, display_name="Alice Adams", username="alice",
        guild_name="Book club",
    )  # fmt: skip


def test_the_resolve_page_says_what_outcome_known_at_means_in_words(live, admin_browser):
    """Issue 23 item 13 on the page a moderator resolves from: the "Outcome known at" help
    explains the moment and what it does, with no "docs/domain.md §6.2"."""
    market_id = db(_closed_market)
    page = admin_browser(db(staff_user, "mod", "Moderators"))
    page.goto(live.url + reverse("admin:markets_market_resolve", args=[market_id]))

    form = page.locator("#content form").first.inner_text()
    assert "Outcome known at (UTC)" in form
    assert "when the outcome became publicly known" in form
    assert "§" not in form and "domain.md" not in form and "DOMAIN" not in form
    page.locator("#id_known_at").evaluate("el => el.scrollIntoView({block: 'center'})")
    shoot(page, "admin-resolve.png")
