"""Whole-lifecycle tests for both mechanisms (DOMAIN §4–§6); each ends in the ledger audit."""

import datetime as dt

import pytest
from django.utils import timezone

from betting import selectors as betting_selectors
from betting import services as betting_services
from betting.models import Position, Trade
from markets import selectors, services
from markets.amm import SHARE_SCALE
from markets.errors import (
    InsufficientShares,
    MarketStateError,
    SlippageExceeded,
)
from markets.models import Market, MarketEvent
from points.errors import IdempotencyConflict, InsufficientPoints, InvalidAmount, NotAllowed
from points.models import Account, AuditEvent, Transfer
from points.rules import Actor
from points.selectors import balance_get
from tests.conftest import ALICE, BOB, CAROL, GUILD, MOD

pytestmark = pytest.mark.django_db

MOD2 = MOD + 1


def create(mechanism="amm", outcomes=("Yes", "No"), key="c1", duration="1d", **kw):
    return services.market_create(
        guild_id=GUILD,
        creator_id=ALICE,
        question="Will it rain tomorrow?",
        outcomes=list(outcomes),
        duration=duration,
        mechanism=mechanism,
        idempotency_key=key,
        **kw,
    )


def escrow_of(market):
    return Account.objects.get(kind="escrow", market=market).balance


def test_amm_create_moves_liquidity_and_starts_at_one_over_n():
    market = create(outcomes=("A", "B", "C"))
    assert market.liquidity == 1000 and escrow_of(market) == 1000
    summary = selectors.market_get(market_id=market.pk)
    assert [o.pool for o in summary.outcomes] == [1000 * SHARE_SCALE] * 3
    assert [round(o.probability, 6) for o in summary.outcomes] == [0.333333] * 3
    assert MarketEvent.objects.get(market=market).type == "market_created"
    assert AuditEvent.objects.filter(action="market_create", target_id=str(market.pk)).exists()


def test_market_create_replay_returns_the_same_market():
    first, second = create(key="same"), create(key="same")
    assert first.pk == second.pk and Market.objects.count() == 1
    with pytest.raises(IdempotencyConflict):
        create(key="same", outcomes=("Yes", "Maybe"))


def test_amm_buy_exact_numbers_and_price_moves():
    market = create()
    trade = betting_services.bet_place(
        market_id=market.pk, user_id=BOB, outcome=0, amount=100, idempotency_key="b1"
    )
    # pool_0' = ceil(1e9 · 1e9 / (1e9 + 1e8)) = 909090910; shares = 1e9 + 1e8 − 909090910
    assert trade.shares == 190_909_090
    assert trade.amount == 100 and trade.fee == 0 and trade.kind == "buy"
    summary = selectors.market_get(market_id=market.pk)
    assert [o.pool for o in summary.outcomes] == [909_090_910, 1_100_000_000]
    assert summary.outcomes[0].probability > 0.5 > summary.outcomes[1].probability
    assert trade.price_before_ppm == 500_000 and trade.price_after_ppm > 500_000
    assert balance_get(guild_id=GUILD, user_id=BOB) == 900
    assert escrow_of(market) == 1100
    assert summary.volume == 100 and summary.trader_count == 1 and summary.trade_count == 1


def test_bet_place_replay_charges_once():
    market = create()
    a = betting_services.bet_place(
        market_id=market.pk, user_id=BOB, outcome=0, amount=50, idempotency_key="discord:1"
    )
    b = betting_services.bet_place(
        market_id=market.pk, user_id=BOB, outcome=0, amount=50, idempotency_key="discord:1"
    )
    assert a.pk == b.pk and Trade.objects.count() == 1
    assert balance_get(guild_id=GUILD, user_id=BOB) == 950
    with pytest.raises(IdempotencyConflict):
        betting_services.bet_place(
            market_id=market.pk, user_id=BOB, outcome=1, amount=50, idempotency_key="discord:1"
        )


def test_bet_refusals_move_nothing():
    market = create()
    with pytest.raises(InsufficientPoints, match="you have 1,000 and need 1,001"):
        betting_services.bet_place(
            market_id=market.pk, user_id=BOB, outcome=0, amount=1001, idempotency_key="x1"
        )
    with pytest.raises(Exception, match="has no outcome 3; choose 1 to 2"):
        betting_services.bet_place(
            market_id=market.pk, user_id=BOB, outcome=2, amount=10, idempotency_key="x2"
        )
    with pytest.raises(InvalidAmount):
        betting_services.bet_place(
            market_id=market.pk, user_id=BOB, outcome=0, amount=0, idempotency_key="x3"
        )
    from points.services import guild_settings_get_or_create

    gs = guild_settings_get_or_create(guild_id=GUILD)
    gs.max_bet = 10
    gs.save()
    with pytest.raises(InvalidAmount, match="most you can bet at once in this server is 10"):
        betting_services.bet_place(
            market_id=market.pk, user_id=BOB, outcome=0, amount=11, idempotency_key="x4"
        )
    with pytest.raises(Exception, match="does not exist"):
        betting_services.bet_place(
            market_id=99999, user_id=BOB, outcome=0, amount=1, idempotency_key="x5"
        )
    assert not Trade.objects.exists() and escrow_of(market) == 1000


def test_slippage_limit_refuses_and_moves_nothing():
    market = create()
    quote = betting_selectors.quote_buy(market_id=market.pk, outcome=0, amount=100)
    betting_services.bet_place(
        market_id=market.pk, user_id=CAROL, outcome=0, amount=100, idempotency_key="front"
    )
    with pytest.raises(SlippageExceeded, match="below your minimum"):
        betting_services.bet_place(
            market_id=market.pk,
            user_id=BOB,
            outcome=0,
            amount=100,
            idempotency_key="late",
            min_shares=quote.shares,
        )
    assert balance_get(guild_id=GUILD, user_id=BOB) is None  # not even a wallet was made
    assert not Trade.objects.filter(user_id=BOB).exists()


def test_amm_sell_all_removes_exactly_the_position_and_leaves_the_fraction_in_the_pool():
    """DOMAIN §4.4 (2026-11-29): "all" closes the position; the sub-point rest stays in the pool."""
    market = create()
    bought = betting_services.bet_place(
        market_id=market.pk, user_id=BOB, outcome=0, amount=100, idempotency_key="b1"
    )
    quote = betting_selectors.quote_sell(market_id=market.pk, user_id=BOB, outcome=0, shares=None)
    sold = betting_services.shares_sell(
        market_id=market.pk,
        user_id=BOB,
        outcome=0,
        shares=None,
        idempotency_key="s1",
        min_points=quote.net_points,
    )
    assert sold.amount == quote.points == 99  # never more than paid
    assert sold.shares == bought.shares  # exactly what was held
    assert betting_services.sale_left_in_pool(sold) == 1_999_000  # worth less than a point
    position = Position.objects.get(user_id=BOB)
    assert position.shares == 0
    assert position.points_received == 99
    with pytest.raises(MarketStateError):
        pass_market = create(mechanism="parimutuel", key="pm")
        betting_services.shares_sell(
            market_id=pass_market.pk, user_id=BOB, outcome=0, idempotency_key="s2"
        )
    with pytest.raises(InsufficientShares, match="hold no shares"):
        betting_services.shares_sell(
            market_id=market.pk, user_id=CAROL, outcome=0, idempotency_key="s3"
        )
    with pytest.raises(InsufficientShares, match="hold no shares"):
        betting_services.shares_sell(
            market_id=market.pk, user_id=BOB, outcome=0, idempotency_key="s4"
        )


def test_amm_sell_of_part_removes_exactly_the_shares_asked_for():
    market = create()
    bought = betting_services.bet_place(
        market_id=market.pk, user_id=BOB, outcome=0, amount=100, idempotency_key="b1"
    )
    sold = betting_services.shares_sell(
        market_id=market.pk, user_id=BOB, outcome=0, shares=50_000_000, idempotency_key="s1"
    )
    assert sold.shares == 50_000_000
    assert Position.objects.get(user_id=BOB).shares == bought.shares - 50_000_000
    with pytest.raises(InsufficientShares, match="can't sell"):
        betting_services.shares_sell(
            market_id=market.pk,
            user_id=BOB,
            outcome=0,
            shares=bought.shares,
            idempotency_key="s2",
        )
    with pytest.raises(InvalidAmount, match="worth less than 1 point"):
        betting_services.shares_sell(
            market_id=market.pk, user_id=BOB, outcome=0, shares=999_999, idempotency_key="s3"
        )


def test_amm_sell_all_of_a_position_worth_less_than_a_point_closes_it_as_a_zero_point_sale():
    market = create()
    betting_services.bet_place(
        market_id=market.pk, user_id=BOB, outcome=0, amount=100, idempotency_key="b1"
    )
    held = Position.objects.get(user_id=BOB).shares
    betting_services.shares_sell(
        market_id=market.pk, user_id=BOB, outcome=0, shares=held - 500_000, idempotency_key="s1"
    )
    pool_before = market.outcomes.get(position=0).pool
    balance_before = balance_get(guild_id=GUILD, user_id=BOB)
    closed = betting_services.shares_sell(
        market_id=market.pk, user_id=BOB, outcome=0, idempotency_key="s2"
    )
    assert (closed.amount, closed.shares, closed.fee) == (0, 500_000, 0)
    assert betting_services.sale_left_in_pool(closed) == 500_000
    assert Position.objects.get(user_id=BOB).shares == 0
    assert market.outcomes.get(position=0).pool == pool_before + 500_000
    assert balance_get(guild_id=GUILD, user_id=BOB) == balance_before  # no transfer moved
    assert not Transfer.objects.filter(idempotency_key__startswith="s2").exists()


def test_amm_full_lifecycle_pays_winners_and_empties_escrow():
    market = create(outcomes=("A", "B", "C"))
    betting_services.bet_place(
        market_id=market.pk, user_id=BOB, outcome=0, amount=200, idempotency_key="b"
    )
    betting_services.bet_place(
        market_id=market.pk, user_id=CAROL, outcome=1, amount=300, idempotency_key="c"
    )
    betting_services.bet_place(
        market_id=market.pk, user_id=BOB, outcome=2, amount=50, idempotency_key="b2"
    )
    services.market_close(market_id=market.pk, idempotency_key="close", actor=Actor.member(ALICE))
    with pytest.raises(MarketStateError, match="trading is only possible while it is open"):
        betting_services.bet_place(
            market_id=market.pk, user_id=BOB, outcome=0, amount=1, idempotency_key="late"
        )
    preview = selectors.settlement_preview(market_id=market.pk, outcome=0)
    services.resolution_vote_cast(
        market_id=market.pk,
        outcome=0,
        idempotency_key="v1",
        actor=Actor.member(MOD, manage_guild=True),
    )
    assert Market.objects.get(pk=market.pk).status == "closed"
    services.resolution_vote_cast(
        market_id=market.pk,
        outcome=0,
        idempotency_key="v2",
        actor=Actor.member(MOD2, manage_guild=True),
    )
    market.refresh_from_db()
    assert market.status == "resolved" and market.winning_outcome.position == 0
    bob_shares = Position.objects.get(user_id=BOB, outcome__position=0).shares
    payout = Transfer.objects.get(code="payout")
    assert payout.amount == bob_shares // SHARE_SCALE
    assert preview.payments == [(BOB, payout.amount)]
    assert escrow_of(market) == 0
    assert Transfer.objects.filter(code="liquidity_return").count() == 1
    # A third vote after resolution pays nothing more (the old bot paid twice here).
    with pytest.raises(MarketStateError, match="already resolved"):
        services.resolution_vote_cast(
            market_id=market.pk,
            outcome=0,
            idempotency_key="v3",
            actor=Actor.member(MOD + 2, manage_guild=True),
        )
    assert Transfer.objects.filter(code="payout").count() == 1
    event = MarketEvent.objects.get(market=market, type="market_resolved")
    assert event.payload["total_paid"] == payout.amount
    assert event.idempotency_key == f"resolve:{market.pk}"


def test_vote_can_change_until_resolution():
    market = create()
    services.market_close(market_id=market.pk, idempotency_key="close", actor=Actor.member(ALICE))
    services.resolution_vote_cast(
        market_id=market.pk,
        outcome=0,
        idempotency_key="v1",
        actor=Actor.member(MOD, manage_guild=True),
    )
    services.resolution_vote_cast(
        market_id=market.pk,
        outcome=1,
        idempotency_key="v2",
        actor=Actor.member(MOD2, manage_guild=True),
    )
    vote = services.resolution_vote_cast(
        market_id=market.pk,
        outcome=1,
        idempotency_key="v3",
        actor=Actor.member(MOD, manage_guild=True),
    )
    assert vote.outcome.position == 1
    market.refresh_from_db()
    assert market.status == "resolved" and market.winning_outcome.position == 1


def test_vote_on_open_market_is_refused():
    market = create()
    with pytest.raises(MarketStateError, match="votes are taken once trading has closed"):
        services.resolution_vote_cast(
            market_id=market.pk,
            outcome=0,
            idempotency_key="v",
            actor=Actor.member(MOD, manage_guild=True),
        )


def test_close_only_by_creator_or_moderator():
    market = create()
    with pytest.raises(NotAllowed, match="Only the creator of market"):
        services.market_close(market_id=market.pk, idempotency_key="k1", actor=Actor.member(BOB))
    services.market_close(
        market_id=market.pk, idempotency_key="k2", actor=Actor.member(MOD, manage_guild=True)
    )
    again = services.market_close(
        market_id=market.pk,
        idempotency_key="k2",
        actor=Actor.member(MOD, manage_guild=True),
    )
    assert again.status == "closed"
    assert MarketEvent.objects.filter(type="market_closed").count() == 1


def test_moderator_resolve_requires_closed_and_reason():
    market = create()
    with pytest.raises(MarketStateError, match="only a closed market can be resolved"):
        services.market_resolve(
            market_id=market.pk,
            outcome=0,
            reason="r",
            idempotency_key="r1",
            actor=Actor.member(MOD, manage_guild=True),
        )
    services.market_close(market_id=market.pk, idempotency_key="c", actor=Actor.member(ALICE))
    with pytest.raises(Exception, match="reason is required"):
        services.market_resolve(
            market_id=market.pk,
            outcome=0,
            reason="",
            idempotency_key="r2",
            actor=Actor.member(MOD, manage_guild=True),
        )
    services.market_resolve(
        market_id=market.pk,
        outcome=1,
        reason="news",
        idempotency_key="r3",
        actor=Actor.member(MOD, manage_guild=True),
    )
    same = services.market_resolve(
        market_id=market.pk,
        outcome=1,
        reason="news",
        idempotency_key="r3",
        actor=Actor.member(MOD, manage_guild=True),
    )
    assert same.status == "resolved"
    with pytest.raises(MarketStateError, match="already resolved"):
        services.market_resolve(
            market_id=market.pk,
            outcome=1,
            reason="again",
            idempotency_key="r4",
            actor=Actor.member(MOD, manage_guild=True),
        )


def test_parimutuel_lifecycle_splits_the_pot_exactly():
    market = create(mechanism="parimutuel", outcomes=("Red", "Blue", "Green"))
    assert market.liquidity == 0 and escrow_of(market) == 0
    betting_services.bet_place(
        market_id=market.pk, user_id=ALICE, outcome=0, amount=100, idempotency_key="a"
    )
    betting_services.bet_place(
        market_id=market.pk, user_id=BOB, outcome=0, amount=200, idempotency_key="b"
    )
    betting_services.bet_place(
        market_id=market.pk, user_id=CAROL, outcome=1, amount=701, idempotency_key="c"
    )
    summary = selectors.market_get(market_id=market.pk)
    assert [round(o.probability, 4) for o in summary.outcomes] == [0.2997, 0.7003, 0.0]
    services.market_close(market_id=market.pk, idempotency_key="close", actor=Actor.member(ALICE))
    services.market_resolve(
        market_id=market.pk,
        outcome=0,
        reason="r",
        idempotency_key="res",
        actor=Actor.member(MOD, manage_guild=True),
    )
    payouts = dict(
        Transfer.objects.filter(code="payout").values_list("destination__owner_id", "amount")
    )
    # T = 1001, W = 300: ALICE floor(100·1001/300)=333 r 200, BOB floor(200·1001/300)=667 r 100;
    # one leftover point to the larger remainder (ALICE).
    assert payouts == {ALICE: 334, BOB: 667}
    assert sum(payouts.values()) == 1001 and escrow_of(market) == 0


def test_parimutuel_nobody_backed_winner_refunds_everyone():
    market = create(mechanism="parimutuel")
    betting_services.bet_place(
        market_id=market.pk, user_id=BOB, outcome=0, amount=40, idempotency_key="b"
    )
    services.market_close(market_id=market.pk, idempotency_key="close", actor=Actor.member(ALICE))
    services.market_resolve(
        market_id=market.pk,
        outcome=1,
        reason="r",
        idempotency_key="res",
        actor=Actor.member(MOD, manage_guild=True),
    )
    assert balance_get(guild_id=GUILD, user_id=BOB) == 1000
    assert Transfer.objects.filter(code="refund").count() == 1


def test_cancel_refunds_spent_minus_received_and_treasury_covers_shortfall():
    market = create()
    betting_services.bet_place(
        market_id=market.pk, user_id=BOB, outcome=0, amount=500, idempotency_key="b"
    )
    betting_services.bet_place(
        market_id=market.pk, user_id=CAROL, outcome=1, amount=300, idempotency_key="c"
    )
    betting_services.shares_sell(market_id=market.pk, user_id=BOB, outcome=0, idempotency_key="s")
    bob_received = Position.objects.get(user_id=BOB).points_received
    preview = selectors.settlement_preview(market_id=market.pk)
    services.market_cancel(
        market_id=market.pk,
        reason="question was ambiguous",
        idempotency_key="cancel",
        actor=Actor.member(MOD, manage_guild=True),
    )
    assert balance_get(guild_id=GUILD, user_id=CAROL) == 1000
    assert balance_get(guild_id=GUILD, user_id=BOB) == 1000 - 500 + bob_received + max(
        0, 500 - bob_received
    )
    assert dict(preview.payments)[CAROL] == 300
    assert escrow_of(market) == 0
    market.refresh_from_db()
    assert market.status == "cancelled"
    assert AuditEvent.objects.filter(action="market_cancel", reason="question was ambiguous")


def test_tick_closes_due_markets_and_auto_refunds_after_hours():
    market = create()
    betting_services.bet_place(
        market_id=market.pk, user_id=BOB, outcome=0, amount=100, idempotency_key="b"
    )
    now = timezone.now()
    assert services.markets_tick(now=now).closed == []
    report = services.markets_tick(now=now + dt.timedelta(days=1, minutes=1))
    assert report.closed == [market.pk]
    report = services.markets_tick(now=now + dt.timedelta(days=1, hours=119))
    assert report.refunded == []
    report = services.markets_tick(now=now + dt.timedelta(days=1, hours=121))
    assert report.refunded == [market.pk]
    market.refresh_from_db()
    assert market.status == "cancelled" and "refunded automatically" in market.settle_reason
    assert balance_get(guild_id=GUILD, user_id=BOB) == 1000
    assert services.markets_tick(now=now + dt.timedelta(days=9)).refunded == []


def test_trading_refused_after_closing_time_even_before_tick():
    market = create(duration="1m")
    Market.objects.filter(pk=market.pk).update(closes_at=timezone.now() - dt.timedelta(seconds=1))
    with pytest.raises(MarketStateError, match="is closed"):
        betting_services.bet_place(
            market_id=market.pk, user_id=BOB, outcome=0, amount=1, idempotency_key="b"
        )


def test_fees_go_to_treasury():
    from points.services import guild_settings_get_or_create

    gs = guild_settings_get_or_create(guild_id=GUILD)
    gs.fee_bps = 250
    gs.save()
    market = create()
    trade = betting_services.bet_place(
        market_id=market.pk, user_id=BOB, outcome=0, amount=101, idempotency_key="b"
    )
    assert trade.fee == 3  # ceil(101 · 250 / 10000)
    assert escrow_of(market) == 1000 + 98
    (view,) = betting_selectors.portfolio_get(guild_id=GUILD, user_id=BOB).positions
    sold = betting_services.shares_sell(
        market_id=market.pk, user_id=BOB, outcome=0, idempotency_key="s"
    )
    assert sold.fee == -(-sold.amount * 250 // 10000)
    assert view.value == sold.amount - sold.fee  # the portfolio values what the wallet would get
    assert Transfer.objects.filter(code="fee").count() == 2


def test_sell_replay_with_a_different_share_count_is_a_conflict():
    market = create()
    bought = betting_services.bet_place(
        market_id=market.pk, user_id=BOB, outcome=0, amount=100, idempotency_key="b"
    )
    half = bought.shares // 2
    first = betting_services.shares_sell(
        market_id=market.pk, user_id=BOB, outcome=0, shares=half, idempotency_key="s"
    )
    again = betting_services.shares_sell(
        market_id=market.pk, user_id=BOB, outcome=0, shares=half, idempotency_key="s"
    )
    assert again.pk == first.pk
    with pytest.raises(IdempotencyConflict):
        betting_services.shares_sell(
            market_id=market.pk, user_id=BOB, outcome=0, shares=None, idempotency_key="s"
        )
    assert Trade.objects.filter(kind="sell").count() == 1


def test_close_replay_by_another_actor_is_a_conflict():
    market = create()
    services.market_close(market_id=market.pk, idempotency_key="k", actor=Actor.member(ALICE))
    with pytest.raises(IdempotencyConflict):
        services.market_close(
            market_id=market.pk,
            idempotency_key="k",
            actor=Actor.member(MOD, manage_guild=True),
        )
