"""An independent reference for one market-maker market with limit orders (DOMAIN §4.3–§4.7,
§6): plain Python, its own bookkeeping, its own refusals, its own fills. Only the pool arithmetic
of one buy or sale comes from `markets.amm` (checked on its own in tests/markets/test_amm.py).

It shares nothing with `betting.fills`: a price is compared with a limit as a `Fraction` from
`amm.prices`, and the largest fill is found by trying every whole amount from the top down (the
amounts in the tests are small), so it does not rely on the monotonicity the engine's binary
search assumes — if that assumption were wrong, the two would disagree."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction

from markets import amm
from markets.amm import SHARE_SCALE

MAX_PER_MEMBER = 10
MAX_PER_MARKET = 500


class Refused(Exception):
    """The reference refuses a request; `reason` names why (compared with the engine's error
    class, not its wording)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class RefOrder:
    number: int
    """Placement order (the engine's ids grow the same way)."""
    user: int
    side: str
    outcome: int
    limit: int
    size: int
    remaining: int
    expires: dt.datetime | None
    status: str = "resting"
    fills: int = 0
    filled_points: int = 0
    filled_shares: int = 0


@dataclass
class RefFill:
    order: int
    kind: str
    amount: int
    fee: int
    shares: int


class Reference:
    def __init__(
        self, *, outcomes: int, liquidity: int, fee_bps: int, max_bet: int, starting: int
    ) -> None:
        self.pools = amm.initial_pools(outcomes, liquidity)
        self.fee_bps, self.max_bet, self.starting = fee_bps, max_bet, starting
        self.wallets: dict[int, int] = {}
        self.shares: dict[tuple[int, int], int] = defaultdict(int)
        self.spent: dict[int, int] = defaultdict(int)
        self.received: dict[int, int] = defaultdict(int)
        self.escrow = liquidity
        self.order_account = 0
        self.orders: list[RefOrder] = []
        self.status = "open"
        self.fills: list[RefFill] = []

    # --- helpers ------------------------------------------------------------------------------

    def balance(self, user: int) -> int:
        return self.wallets.get(user, self.starting)

    def _move_wallet(self, user: int, delta: int) -> None:
        self.wallets[user] = self.balance(user) + delta

    def _price_ok(self, pools: list[int], outcome: int, limit: int, side: str) -> bool:
        price = amm.prices(pools)[outcome]
        bound = Fraction(limit, 1_000_000)
        return price <= bound if side == "buy" else price >= bound

    def reserved(self, user: int, outcome: int) -> int:
        return sum(
            o.remaining
            for o in self.orders
            if o.status == "resting" and o.side == "sell" and (o.user, o.outcome) == (user, outcome)
        )

    def resting(self, user: int | None = None) -> int:
        return sum(1 for o in self.orders if o.status == "resting" and user in (None, o.user))

    # --- trades -------------------------------------------------------------------------------

    def buy(self, user: int, outcome: int, amount: int) -> int:
        """A §4.3 buy, then a pass; returns the shares bought."""
        if self.status != "open":
            raise Refused("closed")
        if amount > self.max_bet:
            raise Refused("max_bet")
        fee = amm.fee_for(amount, self.fee_bps)
        if amount - fee <= 0:
            raise Refused("fee")
        if self.balance(user) < amount:
            raise Refused("balance")
        result = amm.buy(self.pools, outcome, amount - fee)
        self._move_wallet(user, -amount)
        self.escrow += amount - fee
        self.pools = result.pools
        self.shares[(user, outcome)] += result.shares
        self.spent[user] += amount
        self.run_pass()
        return result.shares

    def sell(self, user: int, outcome: int, shares: int | None) -> int:
        """A §4.4 sale, then a pass; returns the points received (before the fee)."""
        if self.status != "open":
            raise Refused("closed")
        held = self.shares[(user, outcome)]
        if held == 0:
            raise Refused("no_shares")
        reserved = self.reserved(user, outcome)
        free = held - reserved
        asked = free if shares is None else shares
        if reserved and (asked > free or asked == 0) and asked <= held:
            raise Refused("reserved")
        if asked > held:
            raise Refused("too_many")
        result = amm.sell(self.pools, outcome, asked)
        points, fee = result.points, amm.fee_for(result.points, self.fee_bps)
        pools = result.pools
        if points - fee <= 0:
            if shares is not None:
                raise Refused("worth_zero")
            points = fee = 0
            pools = [p + asked if j == outcome else p for j, p in enumerate(self.pools)]
        self.pools = pools
        self.escrow -= points
        self._move_wallet(user, points - fee)
        self.shares[(user, outcome)] -= asked
        self.received[user] += points
        self.run_pass()
        return points

    # --- orders -------------------------------------------------------------------------------

    def _largest(self, order: RefOrder) -> RefFill | None:
        if order.side == "buy":
            top = order.remaining
        else:
            others = min(p for j, p in enumerate(self.pools) if j != order.outcome)
            top = min(order.remaining // SHARE_SCALE, (others - 1) // SHARE_SCALE)
        for amount in range(top, 0, -1):
            fee = amm.fee_for(amount, self.fee_bps)
            if amount - fee < 1:
                continue
            if order.side == "buy":
                result = amm.buy(self.pools, order.outcome, amount - fee)
                if self._price_ok(result.pools, order.outcome, order.limit, "buy"):
                    return RefFill(order.number, "buy", amount, fee, result.shares)
            else:
                cost = amm.sell_cost(self.pools, order.outcome, amount)
                if cost is None or cost > order.remaining:
                    continue
                y = amount * SHARE_SCALE
                pools = [
                    p + cost - y if j == order.outcome else p - y for j, p in enumerate(self.pools)
                ]
                if self._price_ok(pools, order.outcome, order.limit, "sell"):
                    return RefFill(order.number, "sell", amount, fee, cost)
        return None

    def run_pass(self) -> None:
        """§4.7: each resting order once; buys first (highest limit first), then sells (lowest
        first), then the earliest."""
        queue = sorted(
            (o for o in self.orders if o.status == "resting"),
            key=lambda o: (o.side != "buy", -o.limit if o.side == "buy" else o.limit, o.number),
        )
        for order in queue:
            fill = self._largest(order)
            if fill is None:
                continue
            i, y = order.outcome, fill.amount * SHARE_SCALE
            if order.side == "buy":
                result = amm.buy(self.pools, i, fill.amount - fill.fee)
                self.pools = result.pools
                self.order_account -= fill.amount
                self.escrow += fill.amount - fill.fee
                self.shares[(order.user, i)] += fill.shares
                self.spent[order.user] += fill.amount
                order.remaining -= fill.amount
            else:
                self.pools = [
                    p + fill.shares - y if j == i else p - y for j, p in enumerate(self.pools)
                ]
                self.escrow -= fill.amount
                self._move_wallet(order.user, fill.amount - fill.fee)
                self.shares[(order.user, i)] -= fill.shares
                self.received[order.user] += fill.amount
                order.remaining -= fill.shares
            order.fills += 1
            order.filled_points += fill.amount
            order.filled_shares += fill.shares
            if order.remaining == 0:
                order.status = "filled"
            self.fills.append(fill)

    def place(
        self,
        user: int,
        side: str,
        outcome: int,
        limit: int,
        *,
        budget: int | None = None,
        shares: int | None = None,
        expires: dt.datetime | None = None,
    ) -> RefOrder:
        if not 0 < limit < 1_000_000:
            raise Refused("limit")
        if self.status != "open":
            raise Refused("closed")
        if self.resting(user) >= MAX_PER_MEMBER:
            raise Refused("too_many_mine")
        if self.resting() >= MAX_PER_MARKET:
            raise Refused("too_many_market")
        if side == "buy":
            assert budget is not None
            if not 1 <= budget <= self.max_bet:
                raise Refused("budget")
            if budget > self.balance(user):
                raise Refused("balance")
            size = budget
            self._move_wallet(user, -budget)
            self.order_account += budget
        else:
            free = self.shares[(user, outcome)] - self.reserved(user, outcome)
            if free <= 0:
                raise Refused("nothing_free")
            size = free if shares is None else shares
            if not 1 <= size <= free:
                raise Refused("shares")
        order = RefOrder(len(self.orders), user, side, outcome, limit, size, size, expires)
        self.orders.append(order)
        self.run_pass()
        return order

    def _release(self, order: RefOrder, status: str) -> None:
        if order.side == "buy":
            self.order_account -= order.remaining
            self._move_wallet(order.user, order.remaining)
        order.status = status

    def cancel_order(self, number: int, user: int) -> None:
        order = self.orders[number]
        if order.user != user:
            raise Refused("not_yours")
        if order.status != "resting":
            raise Refused("ended")
        self._release(order, "cancelled")

    def expire(self, now: dt.datetime) -> None:
        for order in self.orders:
            if order.status == "resting" and order.expires is not None and order.expires <= now:
                self._release(order, "expired")

    # --- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        if self.status != "open":
            raise Refused("not_open")
        for order in self.orders:
            if order.status == "resting":
                self._release(order, "released")
        self.status = "closed"

    def resolve(self, winner: int) -> None:
        if self.status != "closed":
            raise Refused("not_closed")
        for (user, outcome), held in self.shares.items():
            if outcome == winner and held >= SHARE_SCALE:
                self._move_wallet(user, held // SHARE_SCALE)
        self.escrow = 0
        self.status = "resolved"

    def cancel_market(self) -> None:
        if self.status not in ("open", "closed"):
            raise Refused("settled")
        if self.status == "open":
            self.close()
        for user in set(self.spent) | set(self.received):
            owed = max(0, self.spent[user] - self.received[user])
            if owed:
                self._move_wallet(user, owed)
        self.escrow = 0
        self.status = "cancelled"
