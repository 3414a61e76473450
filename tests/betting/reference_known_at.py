"""An independent reference for "outcome known at" (docs/domain.md §6.2): it never inverts a
trade. It replays a market forward from its creation with the pool maths alone (`markets.amm`,
checked on its own by tests/markets/test_amm.py) and its own bookkeeping, so "the market where the
late trades never happened" is simply the replay of the early ones, against which the engine's
inversion (`betting.reversal`) is checked."""

from __future__ import annotations

from dataclasses import dataclass, field

from markets import amm


@dataclass
class RefMarket:
    """A market replayed forward: pools (amm), stakes (pool), holdings by (user, outcome) as
    [shares, spent, received], wallet deltas by user, the escrow and the fees taken."""

    mechanism: str
    pools: list[int]
    staked: list[int]
    holdings: dict[tuple[int, int], list[int]] = field(default_factory=dict)
    wallets: dict[int, int] = field(default_factory=dict)
    escrow: int = 0
    fees: int = 0

    @classmethod
    def create(cls, mechanism: str, n: int, liquidity: int) -> RefMarket:
        if mechanism == "amm":
            return cls(mechanism, amm.initial_pools(n, liquidity), [0] * n, escrow=liquidity)
        return cls(mechanism, [0] * n, [0] * n)

    def snapshot(self) -> tuple:
        held = {k: tuple(v) for k, v in self.holdings.items() if any(v)}
        return tuple(self.pools), tuple(self.staked), held, self.escrow

    def buy(self, user: int, outcome: int, amount: int, fee_bps: int) -> tuple[int, int] | None:
        """(fee, shares) of a buy (amm, §4.3) or a stake (§5, no fee), or None when the engine
        refuses it (the fee eats the whole amount)."""
        fee = amm.fee_for(amount, fee_bps) if self.mechanism == "amm" else 0
        if amount - fee <= 0:
            return None
        held = self.holdings.setdefault((user, outcome), [0, 0, 0])
        shares = 0
        if self.mechanism == "amm":
            result = amm.buy(self.pools, outcome, amount - fee)
            self.pools, shares = list(result.pools), result.shares
        else:
            self.staked[outcome] += amount
        held[0] += shares
        held[1] += amount
        self.wallets[user] = self.wallets.get(user, 0) - amount
        self.escrow += amount - fee
        self.fees += fee
        return fee, shares

    def sell(self, user: int, outcome: int, shares: int, fee_bps: int) -> tuple[int, int] | None:
        """(points, fee) of selling `shares` (§4.4), or None when the engine refuses it (worth
        nothing after the fee)."""
        held = self.holdings[(user, outcome)]
        result = amm.sell(self.pools, outcome, shares)
        fee = amm.fee_for(result.points, fee_bps)
        if result.points - fee <= 0:
            return None
        self.pools = list(result.pools)
        held[0] -= shares
        held[2] += result.points
        self.wallets[user] = self.wallets.get(user, 0) + result.points - fee
        self.escrow -= result.points
        self.fees += fee
        return result.points, fee
