"""Market maths in exact integers (DOMAIN §4–§5). Pure: no Django, integers in, integers out.

Pools and shares are micro-shares (`SHARE_SCALE` make one share; a winning share pays 1 point).
Every division that can round does so in the pool's favour, with one exact ceiling of the exact
rational, so the product of the pools never decreases.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from math import prod

SHARE_SCALE = 1_000_000
MIN_OUTCOMES = 2
MAX_OUTCOMES = 10
BPS = 10_000


def ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def fee_for(amount: int, fee_bps: int) -> int:
    """`ceil(amount · fee_bps / 10000)` (DOMAIN §4.3, §4.4)."""
    return ceil_div(amount * fee_bps, BPS)


def initial_pools(n_outcomes: int, liquidity: int) -> list[int]:
    """Every pool starts at `liquidity · SHARE_SCALE`, so every price starts at 1/n (§4.1)."""
    return [liquidity * SHARE_SCALE] * n_outcomes


def prices(pools: Sequence[int]) -> list[Fraction]:
    """`price_i = (1/pool_i) / Σ_j (1/pool_j)` exactly (§4.2): each in (0, 1), summing to 1."""
    weights = _complement_products(pools)
    total = sum(weights)
    return [Fraction(w, total) for w in weights]


def prices_ppm(pools: Sequence[int]) -> list[int]:
    """Prices in parts per million, rounded to nearest (display and the price chart only)."""
    weights = _complement_products(pools)
    total = sum(weights)
    return [(2 * w * 1_000_000 + total) // (2 * total) for w in weights]


def _complement_products(pools: Sequence[int]) -> list[int]:
    """`Π_{j≠i} pool_j` for every i (proportional to 1/pool_i), without division."""
    n = len(pools)
    prefix = [1] * (n + 1)
    for k, p in enumerate(pools):
        prefix[k + 1] = prefix[k] * p
    result = [1] * n
    suffix = 1
    for k in range(n - 1, -1, -1):
        result[k] = prefix[k] * suffix
        suffix *= pools[k]
    return result


@dataclass(frozen=True)
class BuyResult:
    shares: int
    pools: list[int]


def buy(pools: Sequence[int], outcome: int, net_amount: int) -> BuyResult:
    """Buy with `net_amount` points (after the fee) of `outcome` (§4.3).

    Mints `x = net_amount · SHARE_SCALE` complete sets into every pool, then takes from the
    bought pool whatever keeps the product: `pool_i' = ceil(pool_i · Π_{j≠i} pool_j /
    Π_{j≠i} (pool_j + x))`. The buyer receives `pool_i + x − pool_i'` micro-shares."""
    if net_amount <= 0:
        raise ValueError("net_amount must be positive")
    x = net_amount * SHARE_SCALE
    others = [p for j, p in enumerate(pools) if j != outcome]
    new_pool = ceil_div(pools[outcome] * prod(others), prod(p + x for p in others))
    shares = pools[outcome] + x - new_pool
    new_pools = [new_pool if j == outcome else p + x for j, p in enumerate(pools)]
    return BuyResult(shares=shares, pools=new_pools)


def sell_cost(pools: Sequence[int], outcome: int, points: int) -> int | None:
    """Micro-shares of `outcome` burned to take `points` out (§4.4), or None when the pools
    cannot pay that much (`y ≥ pool_j` for some j ≠ i)."""
    if points <= 0:
        return 0
    y = points * SHARE_SCALE
    others = [p for j, p in enumerate(pools) if j != outcome]
    if any(y >= p for p in others):
        return None
    return y + ceil_div(pools[outcome] * prod(others), prod(p - y for p in others)) - pools[outcome]


@dataclass(frozen=True)
class SellResult:
    points: int
    """`r`: the largest whole number of points whose cost fits in the shares sold (may be 0)."""
    shares: int
    """Micro-shares sold: exactly the shares offered; the position loses all of them."""
    cost: int
    """`cost(r)` ≤ `shares`; the rest, worth less than one point, stays in the pool."""
    pools: list[int]

    @property
    def left_in_pool(self) -> int:
        """Micro-shares sold beyond `cost(r)`: the last fraction of a point, kept by the pool."""
        return self.shares - self.cost


def sell(pools: Sequence[int], outcome: int, shares: int) -> SellResult:
    """Sell exactly `shares` micro-shares of `outcome` (§4.4, as changed 2026-11-29): the member
    receives the largest whole `r` points with `cost(r) ≤ shares`; the position loses all of
    `shares`, and the part beyond `cost(r)` (worth less than one point) stays in the pool:
    `pool_i + shares − y`, others `pool_j − y`. `points == 0` means the shares are worth less
    than one point: the caller refuses the sale, or closes a whole position as a 0-point sale."""
    if shares <= 0:
        raise ValueError("shares must be positive")
    others_min = min(p for j, p in enumerate(pools) if j != outcome)
    low, high = 0, min(shares // SHARE_SCALE, (others_min - 1) // SHARE_SCALE)
    while low < high:  # largest r in [low, high] with cost(r) <= shares; cost is increasing
        mid = (low + high + 1) // 2
        cost = sell_cost(pools, outcome, mid)
        if cost is not None and cost <= shares:
            low = mid
        else:
            high = mid - 1
    r = low
    cost = sell_cost(pools, outcome, r)
    assert cost is not None
    y = r * SHARE_SCALE
    new_pools = [p + shares - y if j == outcome else p - y for j, p in enumerate(pools)]
    return SellResult(points=r, shares=shares, cost=cost, pools=new_pools)


# --- Pari-mutuel (DOMAIN §5) -------------------------------------------------------------------


def parimutuel_probabilities(staked: Sequence[int]) -> list[Fraction]:
    """Each outcome's share of all stakes; 1/n each while nothing is staked."""
    total = sum(staked)
    if total == 0:
        return [Fraction(1, len(staked))] * len(staked)
    return [Fraction(s, total) for s in staked]


@dataclass(frozen=True)
class WinnerStake:
    member: Hashable
    stake: int
    """The member's total stake on the winning outcome."""
    first_bet: int
    """Orders ties: smaller means the member's first bet on the winner came earlier."""


def parimutuel_payouts(winners: Sequence[WinnerStake], pot: int) -> dict[Hashable, int]:
    """Split the whole pot `T` among the winners in proportion to their stakes (§5).

    Each gets `floor(s · T / W)`; the `T − Σ floors` leftover points go one each to the largest
    remainders `(s · T) mod W`, ties to the earliest first bet. Returns {} when nobody backed the
    winner (the caller refunds everyone). The payouts sum to `pot` exactly."""
    backed = [w for w in winners if w.stake > 0]
    total_winning = sum(w.stake for w in backed)
    if total_winning == 0:
        return {}
    payouts = {w.member: w.stake * pot // total_winning for w in backed}
    leftover = pot - sum(payouts.values())
    by_remainder = sorted(backed, key=lambda w: (-(w.stake * pot % total_winning), w.first_bet))
    for w in by_remainder[:leftover]:
        payouts[w.member] += 1
    return payouts
