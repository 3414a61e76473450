"""Limit-order fills in exact integers (DOMAIN §4.7). Pure: no Django, no clock — the pools, the
fee and the order's numbers come in, the largest fill (or None) comes out.

A price is compared with a limit as a rational: `price_i = w_i / Σ w` with `w_i = Π_{j≠i} pool_j`
(§4.2), so `price_i ≤ p/10⁶` is `w_i · 10⁶ ≤ p · Σ w`. After a buy of outcome `i` its price only
grows with the amount, after a sale it only falls, and the fee only grows with the amount: the
amounts that qualify form one interval, and the largest is found by binary search with the exact
§4.3/§4.4 maths of `markets.amm`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markets import amm

PPM = 1_000_000


def price_compare(pools: Sequence[int], outcome: int, limit_ppm: int) -> int:
    """-1, 0 or 1 as `price_outcome` is below, at or above `limit_ppm / 10⁶`, exactly."""
    weights = amm._complement_products(pools)
    left, right = weights[outcome] * PPM, limit_ppm * sum(weights)
    return (left > right) - (left < right)


class Weights:
    """The prices of one state of the pools, as exact integer weights (computed once and
    compared with many limits)."""

    def __init__(self, pools: Sequence[int]) -> None:
        self.weights = amm._complement_products(pools)
        self.total = sum(self.weights)

    def on_side(self, outcome: int, limit_ppm: int, buying: bool) -> bool:
        """Whether the price is strictly below (buy) or above (sell) the limit: only then can
        an order fill (a buy raises the price, a sale lowers it)."""
        left, right = self.weights[outcome] * PPM, limit_ppm * self.total
        return left < right if buying else left > right


def _least_net_positive(fee_bps: int) -> int:
    """The smallest whole amount whose fee leaves at least one point (§4.3, §4.4)."""
    amount = 1
    while amount - amm.fee_for(amount, fee_bps) < 1:
        amount += 1
    return amount


def _largest(low: int, high: int, ok: Callable[[int], bool]) -> int | None:
    """The largest `n` in [low, high] with `ok(n)`, for an `ok` true on a prefix of the range."""
    if low > high or not ok(low):
        return None
    while low < high:
        mid = (low + high + 1) // 2
        if ok(mid):
            low = mid
        else:
            high = mid - 1
    return low


@dataclass(frozen=True)
class Fill:
    """One fill: `amount` points paid (buy, gross) or received (sale, before its fee), `fee` of
    them to the treasury, `shares` micro-shares bought or taken from the reservation, and the
    pools after it."""

    amount: int
    fee: int
    shares: int
    pools: list[int]


def buy_fill(
    pools: Sequence[int], outcome: int, fee_bps: int, budget: int, limit_ppm: int
) -> Fill | None:
    """The largest §4.3 buy of at most `budget` points after which `price_outcome ≤ limit`."""

    def ok(amount: int) -> bool:
        after = amm.buy(pools, outcome, amount - amm.fee_for(amount, fee_bps)).pools
        return price_compare(after, outcome, limit_ppm) <= 0

    if price_compare(pools, outcome, limit_ppm) >= 0:
        return None  # a buy only raises the price
    amount = _largest(_least_net_positive(fee_bps), budget, ok)
    if amount is None:
        return None
    fee = amm.fee_for(amount, fee_bps)
    result = amm.buy(pools, outcome, amount - fee)
    return Fill(amount, fee, result.shares, result.pools)


def sell_fill(
    pools: Sequence[int], outcome: int, fee_bps: int, reserved: int, limit_ppm: int
) -> Fill | None:
    """The largest §4.4 sale of `r` whole points costing at most `reserved` micro-shares after
    which `price_outcome ≥ limit`; it sells exactly `cost(r)` micro-shares."""

    def ok(points: int) -> bool:
        cost = amm.sell_cost(pools, outcome, points)
        if cost is None or cost > reserved:
            return False
        return price_compare(_after_sale(pools, outcome, points, cost), outcome, limit_ppm) >= 0

    if price_compare(pools, outcome, limit_ppm) <= 0:
        return None  # a sale only lowers the price
    others_min = min(p for j, p in enumerate(pools) if j != outcome)
    high = min(reserved // amm.SHARE_SCALE, (others_min - 1) // amm.SHARE_SCALE)
    points = _largest(_least_net_positive(fee_bps), high, ok)
    if points is None:
        return None
    cost = amm.sell_cost(pools, outcome, points)
    assert cost is not None
    return Fill(
        points, amm.fee_for(points, fee_bps), cost, _after_sale(pools, outcome, points, cost)
    )


def _after_sale(pools: Sequence[int], outcome: int, points: int, cost: int) -> list[int]:
    y = points * amm.SHARE_SCALE
    return [p + cost - y if j == outcome else p - y for j, p in enumerate(pools)]


def priority(side: str, limit_ppm: int, placed: int) -> tuple[int, int, int]:
    """A pass's order (§4.7): buys before sells, the highest buy limit and the lowest sell limit
    first, then the earliest placed (`placed`: the order's id)."""
    return (0, -limit_ppm, placed) if side == "buy" else (1, limit_ppm, placed)
