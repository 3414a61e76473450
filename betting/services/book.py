"""The resting limit orders of one market inside a locked transaction (DOMAIN §4.7): read once
per batch, filled in passes in memory, written back in one statement.

`Book` is the batch's view of the orders: which shares they reserve (so a sale cannot use them),
which wallets and positions their fills touch (locked and read with the batch's own), and the
pass: after each trade, and when an order is placed, every resting order is visited once in
priority order and given its largest fill at the price it meets then (`betting.fills`). A fill
is staged through the batch like any trade: its legs in the batch's `Journal`, its position in
the batch's holdings, its `Trade` (linked to the order) and `trade` event in the batch's lists."""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import connection
from django.db.models import Q

from core.sql import update_from_values
from markets.models import Market, Outcome
from points.models import Account, Transfer

from .. import fills
from ..models import Order, Trade
from .requests import TradeRequest

if TYPE_CHECKING:
    from .batch import Batch


@dataclass(slots=True, eq=False)
class Resting:
    """A resting order as the pass reads and changes it: the columns it needs, not a model
    instance (a batch reads up to 500 of them, most of which it never fills)."""

    pk: int
    user_id: int
    outcome_id: int
    side: str
    limit_ppm: int
    remaining: int
    filled_points: int
    filled_shares: int
    fills: int
    status: str
    expires_at: dt.datetime | None

    @classmethod
    def of(cls, order: Order) -> Resting:
        return cls(*(getattr(order, name) for name in _COLUMNS))

    def onto(self, order: Order) -> None:
        """What the pass changed, onto the model instance it was made from."""
        for name in _CHANGED:
            setattr(order, name, getattr(self, name))


_COLUMNS = (
    "pk",
    "user_id",
    "outcome_id",
    "side",
    "limit_ppm",
    "remaining",
    "filled_points",
    "filled_shares",
    "fills",
    "status",
    "expires_at",
)
_CHANGED = ("remaining", "filled_points", "filled_shares", "fills", "status")
_FIELDS = tuple("id" if name == "pk" else name for name in _COLUMNS)
"""`_COLUMNS` as the table names them."""


def resting_rows(market: Market) -> list[Resting]:
    """The market's resting orders in pass order, as plain rows (one query). Caller holds the
    market lock: orders of a market change only under it."""
    if market.mechanism != Market.Mechanism.AMM:
        return []
    if connection.vendor != "postgresql":  # the embedded default: the ORM converts the times
        rows = Order.objects.filter(market=market, status=Order.Status.RESTING).values_list(
            *_FIELDS
        )
        return sorted(
            (Resting(*row) for row in rows),
            key=lambda o: fills.priority(o.side, o.limit_ppm, o.pk),
        )
    with connection.cursor() as cursor:
        cursor.execute(_RESTING_SQL, [market.pk, Order.Status.RESTING])
        return [Resting(*row) for row in cursor.fetchall()]


# One statement written once: a batch runs it every time, and building it through the ORM cost
# more than running it (0.5 ms of 0.9 on an empty book). The columns of `Resting`, in
# `fills.priority`'s order — buys before sells ('buy' < 'sell'), the highest buy limit and the
# lowest sell limit first, then the earliest placed.
_RESTING_SQL = (
    f"SELECT {', '.join(_FIELDS)} "
    f"FROM {Order._meta.db_table} WHERE market_id = %s AND status = %s "
    "ORDER BY side, CASE WHEN side = 'buy' THEN -limit_ppm ELSE limit_ppm END, id"
)


HEAD_DEPTH = 4
"""How many orders per outcome and side a batch loads the owners of before it knows which fill
(the rest run the batch again when they do, `Batch.run`)."""


def resting_orders(market: Market) -> list[Order]:
    """The market's resting orders in pass order (one query). Caller holds the market lock:
    orders of a market change only under it."""
    if market.mechanism != Market.Mechanism.AMM:
        return []
    rows = Order.objects.filter(market=market, status=Order.Status.RESTING)
    return sorted(rows, key=lambda o: fills.priority(o.side, o.limit_ppm, o.pk))


def live(order: Order | Resting, now: dt.datetime) -> bool:
    """Resting and not past its expiry (an expired order the clock has not released yet does
    not fill, §4.7)."""
    return order.status == Order.Status.RESTING and (
        order.expires_at is None or order.expires_at > now
    )


class Book:
    """The resting orders of the batch's market, in pass order."""

    def __init__(self, orders: Iterable[Resting], outcomes: Iterable[Outcome] = ()) -> None:
        self.orders = list(orders)
        self.touched: dict[int, Resting] = {}
        self.position_of = {o.pk: o.position for o in outcomes}
        self._lanes: dict[tuple[int, str], _Lane] | None = None
        self._sells: dict[tuple[int, int], list[Resting]] | None = None

    @property
    def users(self) -> set[int]:
        return {o.user_id for o in self.orders}

    def sellers(self) -> set[int]:
        """Owners of resting sell orders: a fill pays into their wallets."""
        return {o.user_id for o in self.orders if o.side == Order.Side.SELL}

    def reserved(self, user_id: int, outcome_id: int) -> int:
        """Micro-shares of the member's position in `outcome_id` held for their sell orders
        (asked once per sale: the sell orders are indexed by member and outcome once per
        book, and their `remaining` read at the time of asking)."""
        if self._sells is None:
            self._sells = {}
            for o in self.orders:
                if o.side == Order.Side.SELL:
                    self._sells.setdefault((o.user_id, o.outcome_id), []).append(o)
        return sum(
            o.remaining
            for o in self._sells.get((user_id, outcome_id), ())
            if o.status == Order.Status.RESTING
        )

    def add(self, order: Resting) -> None:
        self.orders.append(order)
        self.orders.sort(key=lambda o: fills.priority(o.side, o.limit_ppm, o.pk))
        self._lanes = None
        self._sells = None

    def resting_count(self, now: dt.datetime, user_id: int | None = None) -> int:
        return sum(
            1 for o in self.orders if live(o, now) and (user_id is None or o.user_id == user_id)
        )

    def heads(self, now: dt.datetime) -> set[int]:
        """The owners of each lane's first `HEAD_DEPTH` live orders: those the first prices a
        batch reaches fill (`Batch.run` loads their rows with the requesters')."""
        lanes = self._lanes_live(now).values()
        return {o.user_id for lane in lanes for o in lane.orders[:HEAD_DEPTH]}

    # --- the pass ---------------------------------------------------------------------------

    def run_pass(self, batch: Batch) -> None:
        """One pass (§4.7): each live order once, in priority order, filled as far as the price
        it meets allows. Caller (the batch) holds the market lock and the accounts' locks.

        Visiting every order would cost the whole book per trade; the pass visits only the
        orders that can fill, in the same order. Per outcome and side (a lane, in priority
        order) the orders on the price's side are a prefix of those not yet visited: a buy
        lane runs from the highest limit down and fills while the price is below the limit, a
        sell lane from the lowest limit up and fills while it is above. So the next order
        the full pass would try is the first of the lanes' heads — each lane's first live
        order after the last one visited — that is on its side; the others it would have
        skipped without effect, since only a fill moves the prices."""
        if not self.orders:
            return
        lanes = self._lanes_live(batch.now)
        pools = [o.pool for o in batch.outcomes]
        weights = fills.Weights(pools)
        after: tuple[int, int, int] | None = None  # the priority of the last order visited
        while True:
            best: tuple[tuple[int, int, int], Resting, int] | None = None
            for (position, side), lane in lanes.items():
                head = lane.first_after(after)
                if head is None:
                    continue
                key, order = head
                if best is not None and key >= best[0]:
                    continue
                if weights.on_side(position, order.limit_ppm, side == Order.Side.BUY):
                    best = (key, order, position)
            if best is None:
                return
            after, order, position = best
            buying = order.side == Order.Side.BUY
            fill = (fills.buy_fill if buying else fills.sell_fill)(
                pools, position, batch.market.fee_bps, order.remaining, order.limit_ppm
            )
            if fill is not None:
                self._fill(batch, order, position, fill)
                if order.status != Order.Status.RESTING:
                    lanes[(position, order.side)].remove(after)
                pools = fill.pools
                weights = fills.Weights(pools)

    def _lanes_live(self, now: dt.datetime) -> dict[tuple[int, str], _Lane]:
        """The live orders by (outcome position, side), each lane in priority order; built
        once per batch (its clock does not move) and again after a placement."""
        if self._lanes is None:
            lanes: dict[tuple[int, str], _Lane] = {}
            for o in self.orders:  # already in priority order
                if live(o, now):
                    lane = lanes.setdefault((self.position_of[o.outcome_id], o.side), _Lane())
                    lane.keys.append(fills.priority(o.side, o.limit_ppm, o.pk))
                    lane.orders.append(o)
            self._lanes = lanes
        return self._lanes

    def _fill(self, batch: Batch, order: Resting, position: int, fill: fills.Fill) -> None:
        number = order.fills + 1
        if order.user_id not in batch.loaded:
            # The owner's rows are not loaded in this run: move the pools and the order as the
            # fill does (what comes next depends on nothing else) and have the batch run again
            # with them (`Batch.run`).
            batch.missing.add(order.user_id)
            for o, pool in zip(batch.outcomes, fill.pools, strict=True):
                o.pool = pool
            self._filled(order, order.side == Order.Side.BUY, fill, number)
            return
        outcome = batch.outcomes[position]
        key = f"order:{order.pk}:{number}"
        market = batch.market
        buying = order.side == Order.Side.BUY
        if buying:
            source = batch.order_account
            assert source is not None  # a buy order was placed, so the account exists
            legs = [
                batch._leg(
                    source,
                    batch.escrow,
                    fill.amount - fill.fee,
                    Transfer.Code.BUY,
                    f"{key}:buy",
                    f"Market #{market.pk}: {outcome.label} (order #{order.pk})",
                    order.user_id,
                )
            ]
            if fill.fee:
                legs.append(batch._fee(source, fill.fee, key, order.user_id))
            batch.journal.stage(legs)
        else:
            wallet = batch.wallet[order.user_id]
            legs = [
                batch._leg(
                    batch.escrow,
                    wallet,
                    fill.amount,
                    Transfer.Code.SELL,
                    f"{key}:sell",
                    f"Market #{market.pk}: sold {outcome.label} (order #{order.pk})",
                    order.user_id,
                )
            ]
            if fill.fee:
                legs.append(batch._fee(wallet, fill.fee, key, order.user_id))
            batch._stage(order.user_id, legs)
        ppm_before = batch.prices()
        for o, pool in zip(batch.outcomes, fill.pools, strict=True):
            o.pool = pool
        if buying:
            batch._position_add(
                outcome, order.user_id, shares=fill.shares, spent=fill.amount, received=0
            )
        else:
            batch._position_add(
                outcome, order.user_id, shares=-fill.shares, spent=0, received=fill.amount
            )
        batch.sold_remainder[key] = 0
        request = TradeRequest(
            kind="buy" if buying else "sell",
            user_id=order.user_id,
            outcome=position,
            idempotency_key=key,
            amount=fill.amount if buying else None,
            shares=None if buying else fill.shares,
        )
        kind = Trade.Kind.BUY if buying else Trade.Kind.SELL
        trade = batch._trade(request, outcome, kind, fill.amount, fill.shares, fill.fee, ppm_before)
        trade.order_id = order.pk
        batch.events[-1]["payload"]["order_id"] = order.pk
        self._filled(order, buying, fill, number)

    def _filled(self, order: Resting, buying: bool, fill: fills.Fill, number: int) -> None:
        order.remaining -= fill.amount if buying else fill.shares
        order.filled_points += fill.amount
        order.filled_shares += fill.shares
        order.fills = number
        if order.remaining == 0:
            order.status = Order.Status.FILLED
        self.touched[order.pk] = order

    def write(self) -> None:
        """The orders this batch filled, in one statement."""
        if not self.touched:
            return
        update_from_values(
            Order,
            "remaining = {remaining}, filled_points = {filled_points}, "
            "filled_shares = {filled_shares}, fills = {fills}, "
            "status = CASE WHEN {remaining} = 0 THEN 'filled' ELSE {t}.status END, "
            "ended_at = CASE WHEN {remaining} = 0 THEN CURRENT_TIMESTAMP ELSE {t}.ended_at END",
            ["id", "remaining", "filled_points", "filled_shares", "fills"],
            [
                (o.pk, o.remaining, o.filled_points, o.filled_shares, o.fills)
                for _, o in sorted(self.touched.items())
            ],
        )
        self.touched = {}


class _Lane:
    """The live orders of one outcome and side, in priority order, with their priorities."""

    def __init__(self) -> None:
        self.keys: list[tuple[int, int, int]] = []
        self.orders: list[Resting] = []

    def first_after(
        self, after: tuple[int, int, int] | None
    ) -> tuple[tuple[int, int, int], Resting] | None:
        i = 0 if after is None else bisect.bisect_right(self.keys, after)
        return (self.keys[i], self.orders[i]) if i < len(self.keys) else None

    def remove(self, key: tuple[int, int, int]) -> None:
        """An order that stopped resting (filled completely)."""
        i = bisect.bisect_left(self.keys, key)
        del self.keys[i], self.orders[i]


def order_account_q(market: Market) -> Q:
    """The market's order account, for the batch's one lock query."""
    return Q(kind=Account.Kind.ORDERS, market=market)
