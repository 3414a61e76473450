"""Trading selectors against what the services actually do: a quote equals the trade it quotes,
the portfolio values what a sale or a payout returns, the price history follows every trade, the
leaderboard counts what markets paid; and one valuation of a position for every interface (issue
16): the bot's "My position" and Sell menu show the same worth as `/portfolio` — after the fee."""

from __future__ import annotations

import pytest

from betting import selectors as betting_selectors
from betting import services as betting_services
from discordbot import selectors as bot_selectors
from markets import selectors, services
from markets.amm import SHARE_SCALE
from markets.errors import InsufficientShares, MarketNotFound, MarketStateError
from markets.models import Market
from points.rules import Actor
from points.selectors import balance_get
from points.services import guild_settings_get_or_create
from tests.conftest import ALICE, BOB, CAROL, GUILD, MOD
from tests.selector_helpers import (
    DAVE,
    OTHER_GUILD,
    bet,
    close,
    create,
    paid_to_members,
    sell,
    set_guild,
)

pytestmark = pytest.mark.django_db

STARTING = 1000


def probabilities_now(market: Market) -> list[float]:
    return [o.probability for o in selectors.market_get(market_id=market.pk).outcomes]


# --- Quotes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fee_bps", [0, 250])
def test_quote_buy_equals_the_real_bet(fee_bps):
    set_guild(fee_bps=fee_bps)
    market = create("m", outcomes=("A", "B", "C"))
    for user, outcome, amount in [(BOB, 0, 120), (CAROL, 2, 333), (BOB, 0, 7), (DAVE, 1, 999)]:
        quote = betting_selectors.quote_buy(market_id=market.pk, outcome=outcome, amount=amount)
        before = probabilities_now(market)[outcome]
        trade = bet(market, user, outcome, amount)
        assert (quote.amount, quote.fee, quote.shares) == (amount, trade.fee, trade.shares)
        assert quote.probability_before == before
        assert quote.probability_after == probabilities_now(market)[outcome]
        assert quote.potential_payout == trade.shares // SHARE_SCALE
        assert quote.average_price == pytest.approx(amount * SHARE_SCALE / trade.shares)


def test_quote_buy_refuses_unknown_market_and_outcome():
    market = create("m")
    with pytest.raises(MarketNotFound):
        betting_selectors.quote_buy(market_id=market.pk + 100, outcome=0, amount=10)
    with pytest.raises(Exception, match="has no outcome 3"):
        betting_selectors.quote_buy(market_id=market.pk, outcome=2, amount=10)


def test_quote_buy_on_a_pool_market_matches_the_settlement():
    market = create("p", mechanism="parimutuel", outcomes=("Red", "Blue", "Green"))
    bet(market, BOB, 1, 300)
    quote = betting_selectors.quote_buy(market_id=market.pk, outcome=0, amount=100)
    assert quote.shares == 0 and quote.fee == 0
    assert quote.probability_before == 0.0 and quote.probability_after == 0.25
    bet(market, CAROL, 0, 100)
    # CAROL is the only backer of Red: she would take the whole pot of 400.
    assert quote.potential_payout == 400
    preview = selectors.settlement_preview(market_id=market.pk, outcome=0)
    assert preview.payments == [(CAROL, 400)]
    # Two backers: the quote is the floor of the share; the real split may add a leftover point.
    quote = betting_selectors.quote_buy(market_id=market.pk, outcome=0, amount=51)
    bet(market, DAVE, 0, 51)
    paid = dict(selectors.settlement_preview(market_id=market.pk, outcome=0).payments)
    assert quote.potential_payout == 51 * 451 // 151
    assert paid[DAVE] - quote.potential_payout in (0, 1)
    assert sum(paid.values()) == 451


@pytest.mark.parametrize("fee_bps", [0, 250])
def test_quote_sell_equals_the_real_sale(fee_bps):
    set_guild(fee_bps=fee_bps)
    market = create("m", outcomes=("A", "B", "C"))
    held = bet(market, BOB, 1, 400).shares
    bet(market, CAROL, 1, 100)
    for shares in (held // 3, None):
        quote = betting_selectors.quote_sell(
            market_id=market.pk, user_id=BOB, outcome=1, shares=shares
        )
        trade = sell(market, BOB, 1, shares)
        assert quote.shares_offered == (held if shares is None else shares)
        assert (quote.points, quote.shares_burned, quote.fee) == (
            trade.amount,
            trade.shares,
            trade.fee,
        )
        assert quote.net_points == trade.amount - trade.fee
        assert quote.probability_after == probabilities_now(market)[1]
        held -= trade.shares


def test_quote_sell_refusals():
    market = create("m")
    pool = create("p", mechanism="parimutuel")
    bought = bet(market, BOB, 0, 50)
    with pytest.raises(MarketStateError):
        betting_selectors.quote_sell(market_id=pool.pk, user_id=BOB, outcome=0)
    with pytest.raises(InsufficientShares, match="hold no shares"):
        betting_selectors.quote_sell(market_id=market.pk, user_id=CAROL, outcome=0)
    with pytest.raises(InsufficientShares, match="can't sell"):
        betting_selectors.quote_sell(
            market_id=market.pk, user_id=BOB, outcome=0, shares=bought.shares + 1
        )


# --- Portfolio --------------------------------------------------------------------------------


def test_portfolio_values_open_positions_at_what_they_would_fetch():
    amm_market = create("m")
    pool = create("p", mechanism="parimutuel")
    bet(amm_market, BOB, 0, 200)
    bet(amm_market, CAROL, 1, 150)
    bet(pool, BOB, 1, 60)
    bet(pool, CAROL, 1, 30)
    bet(pool, DAVE, 0, 110)
    portfolio = betting_selectors.portfolio_get(guild_id=GUILD, user_id=BOB)
    assert portfolio.balance == balance_get(guild_id=GUILD, user_id=BOB) == STARTING - 260
    by_market = {p.market_id: p for p in portfolio.positions}
    assert [p.market_id for p in portfolio.positions] == [pool.pk, amm_market.pk]

    pool_view = by_market[pool.pk]
    assert (pool_view.label, pool_view.points_spent, pool_view.shares) == ("No", 60, 0)
    assert pool_view.value == 60 * 200 // 90
    assert pool_view.profit == pool_view.value - 60
    assert pool_view.probability == pytest.approx(90 / 200)

    amm_view = by_market[amm_market.pk]
    sale = sell(amm_market, BOB, 0)  # what selling the whole position really returns
    assert amm_view.value == sale.amount
    assert amm_view.profit == sale.amount - 200
    assert portfolio.total_value == amm_view.value + pool_view.value


def test_portfolio_values_settled_positions_at_what_was_paid():
    market = create("m", outcomes=("A", "B", "C"))
    bet(market, BOB, 0, 100)
    bet(market, BOB, 1, 50)
    partial = sell(market, BOB, 1, 30 * SHARE_SCALE)
    close(market)
    services.market_resolve(
        market_id=market.pk,
        outcome=0,
        reason="r",
        idempotency_key="res",
        actor=Actor.member(MOD, manage_guild=True),
    )
    paid = paid_to_members(market)[BOB]
    views = {
        v.outcome: v for v in betting_selectors.portfolio_get(guild_id=GUILD, user_id=BOB).positions
    }
    assert views[0].status == "resolved"
    assert (views[0].value, views[0].payout, views[0].profit) == (paid, paid, paid - 100)
    assert (views[1].value, views[1].points_received) == (0, partial.amount)
    assert views[1].profit == partial.amount - 50
    assert betting_selectors.portfolio_get(guild_id=GUILD, user_id=BOB).total_value == 0
    assert (
        betting_selectors.portfolio_get(
            guild_id=GUILD, user_id=BOB, include_settled=False
        ).positions
        == []
    )


def test_portfolio_of_a_stranger_is_empty():
    create("m")
    portfolio = betting_selectors.portfolio_get(guild_id=GUILD, user_id=DAVE)
    assert (portfolio.balance, portfolio.positions, portfolio.total_value) == (None, [], 0)


# --- Price history -----------------------------------------------------------------------------


def test_price_history_starts_at_one_over_n_and_follows_every_trade():
    market = create("m", outcomes=("A", "B", "C", "D"))
    expected = [[0.25] * 4]
    trades = []
    for user, outcome, amount in [(BOB, 0, 100), (CAROL, 3, 250), (BOB, 0, 40)]:
        trades.append(bet(market, user, outcome, amount))
        expected.append([round(p, 6) for p in probabilities_now(market)])
    trades.append(sell(market, BOB, 0, 50 * SHARE_SCALE))
    expected.append([round(p, 6) for p in probabilities_now(market)])

    history = betting_selectors.price_history(market_id=market.pk)
    assert history.labels == ["A", "B", "C", "D"]
    assert [p.trade_id for p in history.points] == [None, *(t.pk for t in trades)]
    assert [[round(x, 6) for x in p.probabilities] for p in history.points] == expected
    assert all(sum(p.probabilities) == pytest.approx(1, abs=4e-6) for p in history.points)
    assert history.points[0].at == market.created_at
    assert [p.at for p in history.points[1:]] == [t.created_at for t in trades]

    latest = betting_selectors.price_history(market_id=market.pk, limit=2)
    assert [p.trade_id for p in latest.points] == [trades[2].pk, trades[3].pk]
    assert len(betting_selectors.price_history(market_id=market.pk, limit=50).points) == 5


def test_price_history_of_a_pool_market_and_an_unknown_market():
    market = create("p", mechanism="parimutuel")
    bet(market, BOB, 0, 30)
    bet(market, CAROL, 1, 10)
    history = betting_selectors.price_history(market_id=market.pk)
    assert [p.probabilities for p in history.points] == [[0.5, 0.5], [1.0, 0.0], [0.75, 0.25]]
    with pytest.raises(MarketNotFound):
        betting_selectors.price_history(market_id=market.pk + 100)


# --- Leaderboard -------------------------------------------------------------------------------


def test_leaderboard_profit_is_what_markets_paid_minus_what_they_cost():
    set_guild(fee_bps=100)
    resolved = create("r", outcomes=("A", "B", "C"))
    bet(resolved, BOB, 0, 300)
    bet(resolved, CAROL, 1, 200)
    bet(resolved, DAVE, 0, 50)
    sell(resolved, DAVE, 0, None)
    close(resolved)
    services.market_resolve(
        market_id=resolved.pk,
        outcome=0,
        reason="r",
        idempotency_key="res",
        actor=Actor.member(MOD, manage_guild=True),
    )
    pool = create("p", mechanism="parimutuel")
    bet(pool, CAROL, 0, 100)
    bet(pool, DAVE, 1, 40)
    close(pool)
    services.market_resolve(
        market_id=pool.pk,
        outcome=0,
        reason="r",
        idempotency_key="res-p",
        actor=Actor.member(MOD, manage_guild=True),
    )
    cancelled = create("c")
    bet(cancelled, BOB, 1, 25)
    services.market_cancel(
        market_id=cancelled.pk,
        reason="void",
        idempotency_key="cancel",
        actor=Actor.member(MOD, manage_guild=True),
    )
    create("x", guild_id=OTHER_GUILD)
    bet(Market.objects.get(idempotency_key="x"), ALICE, 0, 500)

    board = betting_selectors.leaderboard_profit(guild_id=GUILD)
    # Only market flows touched these wallets, so profit is balance minus the starting balance.
    expected = {
        user: balance_get(guild_id=GUILD, user_id=user) - STARTING for user in (BOB, CAROL, DAVE)
    }
    assert {row.user_id: row.profit for row in board} == expected
    assert [row.rank for row in board] == [1, 2, 3]
    assert [row.profit for row in board] == sorted(expected.values(), reverse=True)
    assert ALICE not in {row.user_id for row in board}
    assert len(betting_selectors.leaderboard_profit(guild_id=GUILD, limit=2)) == 2
    assert [r.user_id for r in betting_selectors.leaderboard_profit(guild_id=OTHER_GUILD)] == [
        ALICE
    ]


def test_leaderboard_profit_does_not_count_open_positions_as_losses():
    """Realised profit counts settled markets and sales; a position still held shows apart."""
    market = create("open")
    bet(market, BOB, 0, 100)  # still held: not a loss
    bet(market, CAROL, 1, 200)
    sell(market, CAROL, 1, 150 * SHARE_SCALE)  # partly sold, not yet back above what went in
    bet(market, DAVE, 0, 50)
    bet(market, BOB, 1, 400)  # moves "Yes" down, so DAVE's quick exit gains nothing
    board = {row.user_id: row for row in betting_selectors.leaderboard_profit(guild_id=GUILD)}
    assert {user: row.profit for user, row in board.items()} == {BOB: 0, CAROL: 0, DAVE: 0}
    for user in (BOB, CAROL, DAVE):
        portfolio = betting_selectors.portfolio_get(guild_id=GUILD, user_id=user)
        assert board[user].open_value == portfolio.total_value > 0

    sale = sell(market, BOB, 1)  # a gain taken out by a sale is realised
    board = {row.user_id: row for row in betting_selectors.leaderboard_profit(guild_id=GUILD)}
    assert board[BOB].profit == max(0, sale.amount - 500)


def test_pool_stakes_show_what_they_pay_if_their_outcome_wins_and_never_add_up():
    pool = create("p", mechanism="parimutuel")
    bet(pool, BOB, 0, 100)
    bet(pool, BOB, 1, 100)
    portfolio = betting_selectors.portfolio_get(guild_id=GUILD, user_id=BOB)
    assert [p.value for p in portfolio.positions] == [200, 200]  # each, if it wins
    assert all(p.pays_if_wins for p in portfolio.positions)
    assert portfolio.total_value == 200  # at most one outcome wins: never 400
    board = betting_selectors.leaderboard_profit(guild_id=GUILD)
    assert [(r.user_id, r.profit, r.open_value) for r in board] == [(BOB, 0, 200)]


# --- One valuation ----------------------------------------------------------------------------


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
