"""The pass over a market's resting orders (DOMAIN §4.7) visits only the orders that can fill;
this checks it against the pass that visits every order, in priority order, as §4.7 words it.

No database: the orders are unsaved rows, the batch a stand-in holding the pools, and a fill
is recorded and applied to the pools and the order as `Book._fill` applies it. Both passes run
on the same book from the same prices; the fills, in order, must be the same."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from betting import fills
from betting.models import Order
from betting.services.book import Book, live
from markets import amm

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)


class RecordingBook(Book):
    """A book whose fills are recorded and applied to the stand-in batch, nothing else."""

    def __init__(self, orders, outcomes) -> None:
        super().__init__(orders, outcomes)
        self.log: list[tuple[int, int, int]] = []

    def _fill(self, batch, order: Order, position: int, fill: fills.Fill) -> None:
        self.log.append((order.pk, fill.amount, fill.shares))
        for outcome, pool in zip(batch.outcomes, fill.pools, strict=True):
            outcome.pool = pool
        order.remaining -= fill.amount if order.side == Order.Side.BUY else fill.shares
        if order.remaining == 0:
            order.status = Order.Status.FILLED


def every_order_pass(book: RecordingBook, batch) -> None:
    """§4.7's pass as written: every live order once, in priority order."""
    pools = [o.pool for o in batch.outcomes]
    weights = fills.Weights(pools)
    for order in book.orders:
        if not live(order, batch.now):
            continue
        position = book.position_of[order.outcome_id]
        buying = order.side == Order.Side.BUY
        if not weights.on_side(position, order.limit_ppm, buying):
            continue
        fill = (fills.buy_fill if buying else fills.sell_fill)(
            pools, position, batch.market.fee_bps, order.remaining, order.limit_ppm
        )
        if fill is not None:
            book._fill(batch, order, position, fill)
            pools = fill.pools
            weights = fills.Weights(pools)


def setting(pools: list[int], fee_bps: int):
    outcomes = [SimpleNamespace(pk=100 + i, position=i, pool=p) for i, p in enumerate(pools)]
    return SimpleNamespace(outcomes=outcomes, market=SimpleNamespace(fee_bps=fee_bps), now=NOW)


order_specs = st.lists(
    st.tuples(
        st.sampled_from(["buy", "sell"]),
        st.integers(0, 2),  # outcome
        st.integers(-150_000, 150_000),  # limit, from the outcome's price
        st.integers(1, 400),  # budget (points) or reserved shares (whole)
        st.sampled_from([None, None, None, -1, 1]),  # expiry: none, passed, to come
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    pools=st.lists(st.integers(300, 5_000), min_size=3, max_size=3),
    fee_bps=st.sampled_from([0, 100, 250]),
    specs=order_specs,
    passes=st.lists(st.tuples(st.integers(0, 2), st.integers(1, 800)), min_size=1, max_size=4),
)
def test_the_pass_over_fillable_orders_fills_as_the_pass_over_every_order(
    pools, fee_bps, specs, passes
):
    pools = [p * amm.SHARE_SCALE for p in pools]
    prices = amm.prices_ppm(pools)

    def book_of() -> tuple[RecordingBook, SimpleNamespace]:
        batch = setting(pools, fee_bps)
        orders = []
        for pk, (side, outcome, offset, size, expiry) in enumerate(specs, start=1):
            limit = min(max(prices[outcome] + offset, 1), 999_999)
            remaining = size if side == "buy" else size * amm.SHARE_SCALE
            expires = None if expiry is None else NOW + dt.timedelta(minutes=expiry)
            orders.append(
                Order(
                    pk=pk,
                    side=side,
                    outcome_id=100 + outcome,
                    limit_ppm=limit,
                    remaining=remaining,
                    status=Order.Status.RESTING,
                    expires_at=expires,
                )
            )
        orders.sort(key=lambda o: fills.priority(o.side, o.limit_ppm, o.pk))
        return RecordingBook(orders, batch.outcomes), batch

    lanes, lanes_batch = book_of()
    every, every_batch = book_of()
    for outcome, amount in passes:
        # A member's buy between passes moves the prices, as a trade before a pass does.
        for batch in (lanes_batch, every_batch):
            current = [o.pool for o in batch.outcomes]
            for o, pool in zip(
                batch.outcomes, amm.buy(current, outcome, amount).pools, strict=True
            ):
                o.pool = pool
        lanes.run_pass(lanes_batch)
        every_order_pass(every, every_batch)
        assert lanes.log == every.log
        assert [o.pool for o in lanes_batch.outcomes] == [o.pool for o in every_batch.outcomes]
    assert [(o.pk, o.remaining, o.status) for o in lanes.orders] == [
        (o.pk, o.remaining, o.status) for o in every.orders
    ]


def test_the_lanes_pass_fills_orders_on_several_outcomes_in_priority_order():
    """A worked case: buys on two outcomes and a sale on the third, all on their side; the
    pass takes them by priority (the highest buy limits, whatever their outcome, then the
    sale), each at the price the fills before it left."""
    pools = [1_000 * amm.SHARE_SCALE] * 3
    batch = setting(pools, 0)
    third = 333_333
    orders = [
        Order(pk=1, side="buy", outcome_id=100, limit_ppm=third + 40_000, remaining=50),
        Order(pk=2, side="buy", outcome_id=101, limit_ppm=third + 60_000, remaining=50),
        Order(pk=3, side="sell", outcome_id=102, limit_ppm=third - 90_000, remaining=10**7),
        Order(pk=4, side="buy", outcome_id=100, limit_ppm=third - 1, remaining=50),
    ]
    for o in orders:
        o.status = Order.Status.RESTING
    orders.sort(key=lambda o: fills.priority(o.side, o.limit_ppm, o.pk))
    book = RecordingBook(orders, batch.outcomes)
    book.run_pass(batch)
    assert [pk for pk, _, _ in book.log] == [2, 1, 3]  # #4's limit is under the price
