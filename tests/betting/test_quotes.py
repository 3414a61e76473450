"""The trade rules once (issue 20 §2): `betting.rules` decides every refusal and number, the
member quotes (`betting.quotes`) refuse what the trade refuses and never write."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from betting import quotes, rules
from markets.errors import (
    MSG_BET_ABOVE_MAX,
    MSG_BET_TOO_SMALL_AFTER_FEE,
    MSG_SELL_WORTH_ZERO,
    InsufficientShares,
    MarketStateError,
    SlippageExceeded,
)
from points.errors import InsufficientPoints, InvalidAmount
from points.models import Account, GuildSettings
from tests.conftest import BOB, CAROL, GUILD
from tests.selector_helpers import bet, create, set_guild

AMM_STATE = rules.MarketState(
    market_id=7,
    mechanism="amm",
    fee_bps=150,
    labels=["Yes", "No"],
    pools=[1000, 1000],
    staked=[0, 0],
)


def test_buy_plan_refuses_in_the_trades_order():
    """Max bet before the fee, the fee before the balance, the balance before slippage."""
    with pytest.raises(InvalidAmount) as above:
        rules.buy_plan(AMM_STATE, 0, 60, max_bet=50, balance=0)
    assert above.value.message == MSG_BET_ABOVE_MAX.format(max_bet=50)
    with pytest.raises(InvalidAmount) as eaten:
        rules.buy_plan(AMM_STATE, 0, 1, max_bet=50, balance=0)
    assert eaten.value.message == MSG_BET_TOO_SMALL_AFTER_FEE.format(fee=1)
    with pytest.raises(InsufficientPoints, match="you have 5 and need 10"):
        rules.buy_plan(AMM_STATE, 0, 10, max_bet=50, balance=5, min_shares=10**12)
    with pytest.raises(SlippageExceeded):
        rules.buy_plan(AMM_STATE, 0, 10, max_bet=50, balance=10, min_shares=10**12)
    plan = rules.buy_plan(AMM_STATE, 0, 100, max_bet=100, balance=100)
    assert (plan.kind, plan.amount, plan.fee, plan.net) == ("buy", 100, 2, 98)
    assert plan.shares > 0 and plan.pools != list(AMM_STATE.pools)


def test_sell_plan_closes_a_dust_position_only_when_selling_all():
    state = rules.MarketState(7, "amm", 0, ["Yes", "No"], [1000, 1000], [0, 0])
    with pytest.raises(InvalidAmount) as worth_zero:
        rules.sell_plan(state, 0, 500_000, 500_000)
    assert worth_zero.value.message == MSG_SELL_WORTH_ZERO
    closing = rules.sell_plan(state, 0, 500_000, None)
    assert (closing.closing, closing.points, closing.left_in_pool) == (True, 0, 500_000)
    assert closing.pools == [1000 + 500_000, 1000]
    with pytest.raises(MarketStateError):
        rules.sell_plan(rules.MarketState(7, "parimutuel", 0, ["A", "B"], [0, 0], [1, 1]), 0, 5, 5)
    with pytest.raises(InsufficientShares, match="hold no shares"):
        rules.sell_plan(state, 0, 0, None)


@pytest.mark.django_db
def test_a_member_without_a_wallet_is_quoted_against_the_starting_balance_and_nothing_is_written():
    market = create("q")
    GuildSettings.objects.filter(guild_id=GUILD).update(starting_balance=300, slippage_bps=500)
    with CaptureQueriesContext(connection) as read:
        quote = quotes.member_quote_buy(
            guild_id=GUILD, user_id=CAROL, market_id=market.pk, outcome=0, amount=300
        )
    assert quote.buy is not None and quote.buy.shares > 0
    assert quote.limit == quote.buy.shares * 9_500 // 10_000 and quote.slippage_bps == 500
    assert all(q["sql"].lstrip().upper().startswith("SELECT") for q in read.captured_queries)
    with pytest.raises(InsufficientPoints, match="you have 300 and need 301"):
        quotes.member_quote_buy(
            guild_id=GUILD, user_id=CAROL, market_id=market.pk, outcome=0, amount=301
        )
    assert not Account.objects.filter(owner_id=CAROL).exists()


@pytest.mark.django_db
def test_member_quotes_refuse_what_the_trade_refuses():
    market = create("r")
    set_guild(max_bet=200)
    with pytest.raises(InvalidAmount, match="200"):
        quotes.member_quote_buy(
            guild_id=GUILD, user_id=BOB, market_id=market.pk, outcome=0, amount=201
        )
    held = bet(market, BOB, 0, 100).shares
    sale = quotes.member_quote_sell(
        guild_id=GUILD, user_id=BOB, market_id=market.pk, outcome=0, shares=None
    )
    assert sale.sell is not None and sale.sell.shares_offered == held
    # The confirmation sells exactly the quoted micro-shares, so a dust sale is refused here.
    with pytest.raises(InvalidAmount) as dust:
        quotes.member_quote_sell(
            guild_id=GUILD, user_id=BOB, market_id=market.pk, outcome=0, shares=1
        )
    assert dust.value.message == MSG_SELL_WORTH_ZERO
