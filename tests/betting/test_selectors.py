"""One valuation of a position for every interface (issue 16): the bot's "My position" and Sell
menu show the same worth as `/portfolio`, the admin and what a sale of everything would put in
the wallet — after the sell fee."""

from __future__ import annotations

import pytest

from betting import selectors as betting_selectors
from betting import services as betting_services
from discordbot import selectors as bot_selectors
from markets import services
from points.services import guild_settings_get_or_create
from tests.conftest import ALICE, BOB, GUILD

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("mechanism", ["amm", "parimutuel"])
def test_every_interface_values_a_position_like_the_portfolio_after_the_fee(mechanism):
    settings_row = guild_settings_get_or_create(guild_id=GUILD)
    settings_row.fee_bps = 500
    settings_row.save()
    market = services.market_create(
        guild_id=GUILD,
        creator_id=ALICE,
        question="Will it rain?",
        outcomes=["Yes", "No"],
        duration="1d",
        mechanism=mechanism,
        idempotency_key="m",
    )
    betting_services.bet_place(
        market_id=market.pk, user_id=BOB, outcome=0, amount=400, idempotency_key="b"
    )
    (view,) = betting_selectors.portfolio_get(guild_id=GUILD, user_id=BOB).positions
    (holding,) = bot_selectors.holdings_in_market(market_id=market.pk, user_id=BOB)
    assert holding.value == view.value > 0
    if mechanism == "amm":
        quote = betting_selectors.quote_sell(market_id=market.pk, user_id=BOB, outcome=0)
        assert quote.fee > 0
        assert holding.value == quote.net_points
        sold = betting_services.shares_sell(
            market_id=market.pk, user_id=BOB, outcome=0, idempotency_key="s"
        )
        assert holding.value == sold.amount - sold.fee
