"""Limit orders (DOMAIN §4.7): placing one (its budget into the market's order account, or its
shares reserved, then a pass of fills), cancelling one, and releasing them — by the member, by
the market clock when they expire, and when the market closes or is cancelled.

Placing runs through the trade batch (`Batch`) so the pass on placement is the very pass that
runs after each trade: the same locks, the same in-memory staging, the same set-based writes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.utils import timezone

from markets.errors import MSG_MARKET_NOT_FOUND, MarketNotFound, MarketStateError
from markets.models import Market, MarketEvent
from markets.services.base import (
    ensure_trading,
    event_write,
    format_shares,
    market_lock,
    outcome_at,
)
from points import ledger
from points.errors import (
    MSG_INSUFFICIENT_POINTS,
    InsufficientPoints,
    InvalidAmount,
    NotAllowed,
    NotFound,
)
from points.ledger import Leg
from points.models import Account, Transfer
from points.usecase import Call, stop_if_replayed, use_case

from ..models import Order
from .batch import Batch
from .book import Resting, live, order_account_q, resting_orders

MAX_RESTING_PER_MEMBER = 10
MAX_RESTING_PER_MARKET = 500

MSG_ORDERS_PARIMUTUEL = (
    "Market #{market_id} is a pool market: it takes no orders, because a stake's price is only "
    "known at settlement. Place a bet instead."
)
MSG_ORDER_SIDE = "An order buys or sells (got {side!r})."
MSG_LIMIT_RANGE = (
    "A limit is a price strictly between 0 % and 100 %, in parts per million from 1 to 999,999 "
    "(got {limit})."
)
MSG_BUDGET_RANGE = "An order's budget is 1 to {max_bet:,} points in this server (got {budget})."
MSG_SELL_ORDER_SHARES = (
    "A sell order reserves 1 micro-share up to the {free} shares of “{label}” you can sell now "
    "(asked {asked})."
)
MSG_NOTHING_TO_RESERVE = "You hold no free shares of “{label}” in market #{market_id} to sell."
MSG_EXPIRY_PAST = "An order's expiry must be in the future (got {expires_at:%Y-%m-%d %H:%M} UTC)."
MSG_TOO_MANY_MINE = (
    "You already have {count} orders waiting on market #{market_id}, the most a member may have. "
    "Cancel one with /orders first."
)
MSG_TOO_MANY_MARKET = (
    "Market #{market_id} already has {count} orders waiting, the most it takes. Trade now, or "
    "try again when some have filled."
)
MSG_ORDER_NOT_FOUND = "Order #{order_id} was not found."
MSG_ORDER_NOT_YOURS = "Order #{order_id} is not yours to cancel."
MSG_ORDER_ENDED = "Order #{order_id} is no longer waiting: it is {status}."


def order_by_key(key: str) -> Order | None:
    return Order.objects.filter(idempotency_key=key).first()


def _same_order(order: Order, call: Call) -> bool:
    return (
        order.market_id == call["market_id"]
        and order.user_id == call["user_id"]
        and order.side == call["side"]
        and order.limit_ppm == call["limit_ppm"]
        and (call["side"] != Order.Side.BUY or order.size == call["budget"])
        and (call["shares"] is None or order.size == call["shares"])
    )


@use_case(lookup=order_by_key, matches=_same_order)
def order_place(
    *,
    market_id: int,
    user_id: int,
    outcome: int,
    side: str,
    limit_ppm: int,
    idempotency_key: str,
    budget: int | None = None,
    shares: int | None = None,
    expires_at: dt.datetime | None = None,
) -> Order:
    """Leave a limit order on an open market-maker market (DOMAIN §4.7): a buy order moves
    `budget` points wallet → the market's order account; a sell order reserves `shares`
    micro-shares (None = all that are free) of the member's position. Then one pass of fills
    runs, which may fill this order at once. Refused: pari-mutuel markets, a closed market, an
    unknown outcome, a limit outside (0, 10⁶) ppm, a budget outside 1 – `max_bet` or above the
    balance, more shares than are free, an expiry in the past, more than 10 resting orders of
    the member or 500 on the market. Locks the market, then (through the batch) the wallets, the
    escrow, the order account and the treasury in one query. Emits a `trade` per fill."""
    if side not in Order.Side.values:
        raise InvalidAmount(MSG_ORDER_SIDE.format(side=side))
    if isinstance(limit_ppm, bool) or not isinstance(limit_ppm, int) or not 0 < limit_ppm < 10**6:
        raise InvalidAmount(MSG_LIMIT_RANGE.format(limit=limit_ppm))
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        raise InvalidAmount(MSG_EXPIRY_PAST.format(expires_at=expires_at))
    placement = _Placement(market_id, [])
    return placement.place(
        user_id=user_id,
        outcome=outcome,
        side=side,
        limit_ppm=limit_ppm,
        key=idempotency_key,
        budget=budget,
        shares=shares,
        expires_at=expires_at,
        now=now,
    )


class _Placement(Batch):
    """A batch with no trade request: one order placed, then one pass."""

    def place(
        self,
        *,
        user_id: int,
        outcome: int,
        side: str,
        limit_ppm: int,
        key: str,
        budget: int | None,
        shares: int | None,
        expires_at: dt.datetime | None,
        now: dt.datetime,
    ) -> Order:
        market = self._market_lock()
        if market is None:
            raise MarketNotFound(MSG_MARKET_NOT_FOUND.format(market_id=self.market_id))
        stop_if_replayed(order_by_key, key)
        self.market, self.now = market, now
        if market.mechanism != Market.Mechanism.AMM:
            raise MarketStateError(MSG_ORDERS_PARIMUTUEL.format(market_id=market.pk))
        ensure_trading(market, now)
        self.outcomes = list(market.outcomes.order_by("position"))
        chosen = outcome_at(market, self.outcomes, outcome)
        if side == Order.Side.BUY:
            # The market's first order opens its account, so the batch's lock query finds it.
            ledger.order_account_get_or_create(guild_id=market.guild_id, market_id=market.pk)
        self.open_for({user_id})
        mine = self.book.resting_count(now, user_id)
        if mine >= MAX_RESTING_PER_MEMBER:
            raise NotAllowed(MSG_TOO_MANY_MINE.format(count=mine, market_id=market.pk))
        count = self.book.resting_count(now)
        if count >= MAX_RESTING_PER_MARKET:
            raise NotAllowed(MSG_TOO_MANY_MARKET.format(count=count, market_id=market.pk))
        if side == Order.Side.BUY:
            size = self._budget_take(user_id, budget, key)
        else:
            size = self._shares_reserve(user_id, chosen.position, shares)
        order = Order.objects.create(
            market=market,
            outcome=chosen,
            guild_id=market.guild_id,
            user_id=user_id,
            side=side,
            limit_ppm=limit_ppm,
            size=size,
            remaining=size,
            expires_at=expires_at,
            idempotency_key=key,
        )
        resting = Resting.of(order)
        self.book.add(resting)
        self.book.run_pass(self)
        resting.onto(order)
        self._write()
        orders_changed(market, [order], "placed")
        return order

    def _budget_take(self, user_id: int, budget: int | None, key: str) -> int:
        max_bet = self.settings_row.max_bet
        if isinstance(budget, bool) or not isinstance(budget, int) or not 1 <= budget <= max_bet:
            raise InvalidAmount(MSG_BUDGET_RANGE.format(max_bet=max_bet, budget=budget))
        balance = self._balance(user_id)
        if budget > balance:
            raise InsufficientPoints(
                MSG_INSUFFICIENT_POINTS.format(balance=balance, needed=budget),
                details={"balance": balance, "needed": budget},
            )
        assert self.order_account is not None
        leg = self._leg(
            self.wallet[user_id],
            self.order_account,
            budget,
            Transfer.Code.ORDER_PLACE,
            f"{key}:order",
            f"Market #{self.market.pk}: buy order",
            user_id,
        )
        self._stage(user_id, [leg])
        return budget

    def _shares_reserve(self, user_id: int, position: int, shares: int | None) -> int:
        outcome = self.outcomes[position]
        holding = self.holdings.get((user_id, position))
        held = 0 if holding is None else holding.shares
        free = held - self.book.reserved(user_id, outcome.pk)
        if free <= 0:
            raise InvalidAmount(
                MSG_NOTHING_TO_RESERVE.format(label=outcome.label, market_id=self.market.pk)
            )
        asked = free if shares is None else shares
        if isinstance(asked, bool) or not isinstance(asked, int) or not 1 <= asked <= free:
            raise InvalidAmount(
                MSG_SELL_ORDER_SHARES.format(
                    free=_shares(free), label=outcome.label, asked=_shares(asked)
                )
            )
        return asked


def _shares(value: object) -> str:
    return format_shares(value) if isinstance(value, int) else repr(value)


# --- release ----------------------------------------------------------------------------------


def orders_release(
    market: Market, orders: Sequence[Order], *, status: str, now: dt.datetime
) -> None:
    """End `orders` with `status`: every buy order's remaining budget moves order account →
    wallet (`order_release`, key `order:<id>:release`) and every sell order's reservation ends
    (DOMAIN §4.7). Caller holds a row lock on `market` (orders of a market change only under
    it); this locks the owners' wallets and the order account in one query."""
    if not orders:
        return
    owed = [o for o in orders if o.side == Order.Side.BUY and o.remaining > 0]
    if owed:
        wallets = ledger.wallets_open(market.guild_id, {o.user_id for o in owed}).wallets
        locked = ledger.accounts_lock(wallets.values(), also=order_account_q(market))
        account = next(a for a in locked.values() if a.kind == Account.Kind.ORDERS)
        legs = [
            Leg(
                account,
                locked[wallets[o.user_id]],
                o.remaining,
                Transfer.Code.ORDER_RELEASE,
                f"order:{o.pk}:release",
                f"Market #{market.pk}: order #{o.pk} {status}",
                o.user_id,
                None,
                market.pk,
            )
            for o in owed
        ]
        ledger.post_many(legs, locked, returning=False)
    Order.objects.filter(pk__in=[o.pk for o in orders], status=Order.Status.RESTING).update(
        status=status, ended_at=now
    )
    for order in orders:
        order.status, order.ended_at = status, now


def orders_changed(market: Market, orders: Sequence[Order], change: str) -> None:
    """The outbox row saying the market's waiting orders changed (`orders_changed`: "placed",
    "cancelled", "expired"), so what shows them — the market message's resting volume, the
    live feed — follows. Closing and cancelling the market have their own events. Caller holds
    a row lock on `market`."""
    first = orders[0]
    event_write(
        market,
        MarketEvent.Type.ORDERS,
        {
            "change": change,
            "orders": len(orders),
            "order_id": first.pk,
            "user_id": str(first.user_id),
            "side": first.side,
            "label": first.outcome.label,
            "limit_ppm": first.limit_ppm,
            # Which orders: those that expired are DMed to their members (the bot's notifier).
            "order_ids": [o.pk for o in orders],
        },
        actor_id=first.user_id if change != "expired" else None,
    )


def market_orders_release(market: Market, now: dt.datetime) -> int:
    """Release every resting order of a market that leaves `open` (closing, cancelled); returns
    how many. Caller holds a row lock on `market`."""
    orders = resting_orders(market)
    orders_release(market, orders, status=Order.Status.RELEASED, now=now)
    return len(orders)


@use_case()
def order_cancel(*, order_id: int, user_id: int) -> Order:
    """The member cancels their resting order (DOMAIN §4.7): its budget returns to the wallet
    or its reservation ends. Refuses another member's order and an order that no longer
    waits. Locks the market, then the wallet and the order account."""
    found = Order.objects.filter(pk=order_id).values_list("market_id", flat=True).first()
    if found is None:
        raise NotFound(MSG_ORDER_NOT_FOUND.format(order_id=order_id))
    market = market_lock(found)
    order = Order.objects.get(pk=order_id)
    if order.user_id != user_id:
        raise NotAllowed(MSG_ORDER_NOT_YOURS.format(order_id=order_id))
    if order.status != Order.Status.RESTING:
        raise MarketStateError(MSG_ORDER_ENDED.format(order_id=order_id, status=order.status))
    orders_release(market, [order], status=Order.Status.CANCELLED, now=timezone.now())
    orders_changed(market, [order], "cancelled")
    return order


@use_case()
def _orders_expire_market(market_id: int, now: dt.datetime) -> int:
    market = market_lock(market_id)
    due = [o for o in resting_orders(market) if not live(o, now)]
    orders_release(market, due, status=Order.Status.EXPIRED, now=now)
    if due:
        orders_changed(market, due, "expired")
    return len(due)


def orders_expire(*, now: dt.datetime | None = None) -> int:
    """Release the orders whose expiry has passed (the market clock, DOMAIN §4.7), each market
    in its own durable transaction under its row lock. Returns how many expired."""
    now = now or timezone.now()
    markets = (
        Order.objects.filter(status=Order.Status.RESTING, expires_at__lte=now)
        .values_list("market_id", flat=True)
        .distinct()
        .order_by("market_id")
    )
    return sum(_orders_expire_market(market_id, now) for market_id in list(markets))
