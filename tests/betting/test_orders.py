"""Limit orders (DOMAIN §4.7): placing, filling in passes after trades and on placement,
reservations, the limits, release by cancel, expiry, close and cancel, and the worked example of
docs/domain.md §4.7. The ledger audit (with §4.7's invariants) runs after every test."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from betting import fills
from betting.models import Order, Position, Trade
from betting.quotes import member_quote_sell
from betting.rules import MSG_SHARES_RESERVED
from betting.services import TradeRequest, bet_place, book, shares_sell, trades_apply
from betting.services.batch import Batch
from betting.services.orders import (
    MAX_RESTING_PER_MARKET,
    MAX_RESTING_PER_MEMBER,
    MSG_LIMIT_RANGE,
    MSG_ORDER_NOT_YOURS,
    MSG_ORDERS_PARIMUTUEL,
    MSG_TOO_MANY_MINE,
    order_cancel,
    order_place,
)
from markets import amm
from markets import services as markets_services
from markets.errors import InsufficientShares, MarketStateError
from markets.models import Market, Outcome
from markets.services import market_create, markets_tick
from points.audit import ledger_audit
from points.errors import InsufficientPoints, InvalidAmount, NotAllowed
from points.models import Account, GuildSettings, Transfer
from points.rules import SYSTEM, Actor
from points.services import guild_settings_get_or_create, wallet_get_or_create

pytestmark = pytest.mark.django_db

CREATOR = 620_000_000_000_000_001
BOB, CAROL, DAN, EVE = (620_000_000_000_000_010 + i for i in range(4))
_guilds = itertools.count(820_000_000_000_000_000)
_keys = itertools.count()


def _key() -> str:
    return f"t{next(_keys)}"


def _market(*, liquidity: int = 1000, fee_bps: int = 0, mechanism: str = "amm") -> Market:
    guild_id = next(_guilds)
    guild_settings_get_or_create(guild_id=guild_id)
    GuildSettings.objects.filter(guild_id=guild_id).update(
        starting_balance=1000, max_bet=1000, fee_bps=fee_bps
    )
    return market_create(
        guild_id=guild_id,
        creator_id=CREATOR,
        question="Will the orders fill?",
        outcomes=["Yes", "No"],
        duration="1d",
        mechanism=mechanism,
        liquidity=liquidity if mechanism == "amm" else None,
        idempotency_key=f"create:{guild_id}",
        actor=SYSTEM,
    )


def _buy_order(market: Market, user: int, outcome: int, budget: int, limit: int, **kw) -> Order:
    return order_place(
        market_id=market.pk,
        user_id=user,
        outcome=outcome,
        side="buy",
        limit_ppm=limit,
        budget=budget,
        idempotency_key=_key(),
        **kw,
    )


def _wallet(market: Market, user: int) -> int:
    return Account.objects.get(guild_id=market.guild_id, kind="wallet", owner_id=user).balance


def _order_account(market: Market) -> int:
    return Account.objects.get(kind=Account.Kind.ORDERS, market=market).balance


def _pools(market: Market) -> list[int]:
    return list(
        Outcome.objects.filter(market=market).order_by("position").values_list("pool", flat=True)
    )


def test_the_worked_example_of_the_domain_document():
    """docs/domain.md §4.7: Bob's 200-point order under 40 % rests, Carol's 300 points on No
    bring Yes to 37.17 %, the pass buys Bob 47 points' worth and 153 rest; closing returns them."""
    market = _market()
    order = _buy_order(market, BOB, 0, 200, 400_000)
    assert order.remaining == 200 and order.fills == 0
    assert _wallet(market, BOB) == 800 and _order_account(market) == 200
    carol = bet_place(
        market_id=market.pk, user_id=CAROL, outcome=1, amount=300, idempotency_key="c"
    )
    assert carol.shares == 530_769_230  # her own trade, unchanged by the order it triggers
    order.refresh_from_db()
    fill = Trade.objects.get(order=order)
    assert (fill.amount, fill.shares, fill.user_id) == (47, 121_856_281, BOB)
    assert order.remaining == 153 and order.status == Order.Status.RESTING
    assert _pools(market) == [1_225_143_719, 816_230_770]
    assert _order_account(market) == 153
    markets_services.market_close(
        market_id=market.pk, idempotency_key="close", actor=Actor.member(CREATOR)
    )
    order.refresh_from_db()
    assert order.status == Order.Status.RELEASED
    assert _wallet(market, BOB) == 800 + 153 and _order_account(market) == 0
    release = Transfer.objects.get(idempotency_key=f"order:{order.pk}:release")
    assert release.code == Transfer.Code.ORDER_RELEASE and release.amount == 153


def test_a_buy_order_below_the_price_fills_on_placement_up_to_its_limit_exactly():
    market = _market(fee_bps=150)
    order = _buy_order(market, BOB, 0, 500, 600_000)
    assert order.fills == 1
    pools = _pools(market)
    assert fills.price_compare(pools, 0, 600_000) <= 0
    # One more point would have crossed the limit (the fill is the largest).
    before = amm.initial_pools(2, 1000)
    more = order.filled_points + 1
    after = amm.buy(before, 0, more - amm.fee_for(more, 150)).pools
    assert fills.price_compare(after, 0, 600_000) > 0
    assert _order_account(market) == order.remaining == 500 - order.filled_points


def test_a_sell_order_reserves_its_shares_and_fills_when_the_price_rises():
    market = _market()
    bought = bet_place(market_id=market.pk, user_id=BOB, outcome=0, amount=100, idempotency_key="b")
    order = order_place(
        market_id=market.pk,
        user_id=BOB,
        outcome=0,
        side="sell",
        limit_ppm=600_000,
        shares=bought.shares // 2,
        idempotency_key=_key(),
    )
    assert order.fills == 0  # Yes is about 55 %: below the limit
    with pytest.raises(InsufficientShares) as refused:
        shares_sell(
            market_id=market.pk, user_id=BOB, outcome=0, shares=bought.shares, idempotency_key="s"
        )
    assert refused.value.message.startswith(MSG_SHARES_RESERVED.split("{")[0])
    # "all" sells only what is free, and its quote says so.
    quote = member_quote_sell(
        guild_id=market.guild_id, user_id=BOB, market_id=market.pk, outcome=0, shares=None
    )
    assert quote.sell is not None
    assert quote.sell.shares_offered == bought.shares - bought.shares // 2
    sale = shares_sell(market_id=market.pk, user_id=BOB, outcome=0, idempotency_key="s2")
    assert sale.shares == bought.shares - bought.shares // 2
    bet_place(market_id=market.pk, user_id=CAROL, outcome=0, amount=400, idempotency_key="c")
    order.refresh_from_db()
    assert order.fills == 1 and order.filled_points > 0
    assert fills.price_compare(_pools(market), 0, 600_000) >= 0
    position = Position.objects.get(market=market, user_id=BOB, outcome__position=0)
    assert position.shares == order.remaining


def test_orders_visit_in_priority_order_once_per_pass():
    """Buy orders before sells, the highest buy limit first, then the earliest: the 45 % order
    fills before the 42 % one and takes the price to its limit, so the 42 % one waits."""
    market = _market()
    bet_place(market_id=market.pk, user_id=DAN, outcome=0, amount=200, idempotency_key="d")
    low = _buy_order(market, BOB, 0, 300, 420_000)
    high = _buy_order(market, CAROL, 0, 300, 450_000)
    bet_place(market_id=market.pk, user_id=EVE, outcome=1, amount=900, idempotency_key="e")
    low.refresh_from_db()
    high.refresh_from_db()
    assert high.fills == 1 and low.fills == 0
    assert list(Trade.objects.filter(market=market).values_list("order_id", flat=True)) == [
        None,
        None,
        high.pk,
    ]


def test_the_batch_reads_resting_orders_in_pass_order():
    """`book.resting_rows` sorts in SQL; its order is `fills.priority`'s, ties included (equal
    limits on both sides, buys and sells of both outcomes)."""
    market = _market()
    price = amm.prices_ppm(_pools(market))[0]  # 50 %
    for k, user in enumerate([BOB, CAROL, DAN, EVE, BOB, CAROL]):
        bet_place(
            market_id=market.pk, user_id=user, outcome=k % 2, amount=20, idempotency_key=_key()
        )
    placed = []
    for k, (user, limit) in enumerate(
        itertools.product([BOB, CAROL, DAN, EVE], [price - 90_000, price - 30_000, price - 30_000])
    ):
        outcome = k % 2
        placed.append(_buy_order(market, user, outcome, 10, limit - outcome * 10_000).pk)
    for user, gap in itertools.product([BOB, CAROL], [60_000, 30_000, 30_000]):
        outcome = 0 if user == BOB else 1  # what each bought above
        held = Position.objects.get(market=market, user_id=user, outcome__position=outcome).shares
        order = order_place(
            market_id=market.pk,
            user_id=user,
            outcome=outcome,
            side="sell",
            limit_ppm=price + gap,
            shares=held // 8,
            idempotency_key=_key(),
        )
        placed.append(order.pk)

    rows = book.resting_rows(market)

    assert len(rows) == len(placed) == 18
    expected = sorted(rows, key=lambda o: fills.priority(o.side, o.limit_ppm, o.pk))
    assert [o.pk for o in rows] == [o.pk for o in expected]
    assert [o.pk for o in rows] != sorted(o.pk for o in rows)  # not merely placement order


def test_order_limits_and_clear_refusals():
    market = _market()
    with pytest.raises(InvalidAmount) as wrong:
        _buy_order(market, BOB, 0, 10, 1_000_000)
    assert wrong.value.message == MSG_LIMIT_RANGE.format(limit=1_000_000)
    _buy_order(market, BOB, 0, 600, 100_000)
    with pytest.raises(InsufficientPoints):
        _buy_order(market, BOB, 0, 401, 100_000)
    with pytest.raises(InvalidAmount, match="budget is 1 to 1,000"):
        _buy_order(market, BOB, 0, 0, 100_000)
    with pytest.raises(InvalidAmount, match="no free shares"):
        order_place(
            market_id=market.pk,
            user_id=BOB,
            outcome=0,
            side="sell",
            limit_ppm=900_000,
            idempotency_key=_key(),
        )
    with pytest.raises(InvalidAmount, match="in the future"):
        _buy_order(market, BOB, 0, 10, 100_000, expires_at=timezone.now() - dt.timedelta(1))
    for _ in range(MAX_RESTING_PER_MEMBER - 1):
        _buy_order(market, BOB, 0, 1, 100_000)
    with pytest.raises(NotAllowed) as many:
        _buy_order(market, BOB, 0, 1, 100_000)
    assert many.value.message == MSG_TOO_MANY_MINE.format(count=10, market_id=market.pk)
    pool = _market(mechanism="parimutuel")
    with pytest.raises(MarketStateError) as refused:
        _buy_order(pool, BOB, 0, 10, 100_000)
    assert refused.value.message == MSG_ORDERS_PARIMUTUEL.format(market_id=pool.pk)
    assert MAX_RESTING_PER_MARKET == 500


def test_the_same_key_twice_places_one_order():
    market = _market()
    a = order_place(
        market_id=market.pk,
        user_id=BOB,
        outcome=0,
        side="buy",
        limit_ppm=100_000,
        budget=5,
        idempotency_key="same",
    )
    b = order_place(
        market_id=market.pk,
        user_id=BOB,
        outcome=0,
        side="buy",
        limit_ppm=100_000,
        budget=5,
        idempotency_key="same",
    )
    assert a.pk == b.pk and _wallet(market, BOB) == 995


def test_cancel_returns_the_budget_and_only_the_owner_may():
    market = _market()
    order = _buy_order(market, BOB, 0, 50, 100_000)
    with pytest.raises(NotAllowed) as other:
        order_cancel(order_id=order.pk, user_id=CAROL)
    assert other.value.message == MSG_ORDER_NOT_YOURS.format(order_id=order.pk)
    cancelled = order_cancel(order_id=order.pk, user_id=BOB)
    assert cancelled.status == Order.Status.CANCELLED and _wallet(market, BOB) == 1000
    with pytest.raises(MarketStateError, match="no longer waiting"):
        order_cancel(order_id=order.pk, user_id=BOB)


def test_expiry_by_the_market_clock_and_an_expired_order_does_not_fill():
    market = _market()
    soon = timezone.now() + dt.timedelta(minutes=5)
    order = _buy_order(market, BOB, 0, 50, 450_000, expires_at=soon)
    later = soon + dt.timedelta(seconds=1)
    report = markets_tick(now=later)
    assert report.orders_expired == 1
    order.refresh_from_db()
    assert order.status == Order.Status.EXPIRED and _wallet(market, BOB) == 1000


def test_cancelling_an_open_market_releases_its_orders():
    market = _market()
    order = _buy_order(market, BOB, 0, 50, 100_000)
    markets_services.market_cancel(
        market_id=market.pk, reason="test", idempotency_key="cx", actor=SYSTEM
    )
    order.refresh_from_db()
    assert order.status == Order.Status.RELEASED and _wallet(market, BOB) == 1000


@pytest.mark.postgres
@pytest.mark.parametrize("head_depth", [book.HEAD_DEPTH, 0])
def test_queries_per_batch_stay_constant_whatever_the_number_of_fills(head_depth, monkeypatch):
    """A batch runs once, or twice when orders of owners it had not loaded fill (their rows
    are then locked with the others', docs/architecture.md, "Group commit and resting
    orders"): either way its number of statements does not follow its size or its fills."""
    monkeypatch.setattr(book, "HEAD_DEPTH", head_depth)
    second_runs = []
    restore = Batch._restore

    def counted(self, *args, **kwargs):
        second_runs.append(len(self.requests))
        return restore(self, *args, **kwargs)

    monkeypatch.setattr(Batch, "_restore", counted)
    market = _market()
    users = [630_000_000_000_000_000 + i for i in range(60)]
    for n, user in enumerate(users[:50]):
        _buy_order(market, user, n % 2, 20, 460_000 + n * 1_000)
    for user in users[50:]:  # the traders' wallets exist: the batches differ only in size
        wallet_get_or_create(guild_id=market.guild_id, user_id=user)
    counts = {}
    for size in (1, 10, 40):
        requests = [
            TradeRequest(
                kind="buy",
                user_id=users[50 + n % 10],
                outcome=(n + size) % 2,
                idempotency_key=f"q{size}:{n}",
                amount=100,
            )
            for n in range(size)
        ]
        with CaptureQueriesContext(connection) as queries:
            results = trades_apply(market_id=market.pk, requests=requests)
        assert all(isinstance(r, Trade) for r in results)
        counts[size] = (len(queries), size in second_runs)
    assert Trade.objects.filter(market=market, order__isnull=False).count() > 10
    once = {n for n, twice in counts.values() if not twice}
    twice = {n for n, twice in counts.values() if twice}
    assert len(once) <= 1 and len(twice) <= 1, counts
    if head_depth == 0:
        assert twice, counts  # fills from orders whose owners the first run had not loaded
    if once and twice:
        assert max(twice) - max(once) <= 8, counts  # the second run's own statements
    assert ledger_audit().ok


def test_an_order_whose_budget_is_spent_ends_filled():
    market = _market()
    order = _buy_order(market, BOB, 0, 5, 900_000)
    order.refresh_from_db()
    assert (order.status, order.remaining, order.filled_points) == (Order.Status.FILLED, 0, 5)
    assert order.ended_at is not None
    assert _order_account(market) == 0
