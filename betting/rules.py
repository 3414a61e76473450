"""The trade rules, once (DOMAIN §4.3, §4.4, §4.6, §5): pure functions that decide every
refusal of a buy, stake or sale and every number it moves, on the state they are given. The
batch engine (`betting.services.trades_apply`) calls them on the locked state; the quotes
(`betting.quotes`) on the state as read. Neither repeats a check.

No database, no clock: the market's state (`MarketState`), the member's balance and holding,
and the guild's limits come in as plain values."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from markets import amm
from markets.errors import (
    MSG_BET_ABOVE_MAX,
    MSG_BET_TOO_SMALL_AFTER_FEE,
    MSG_NO_SHARES,
    MSG_NOT_ENOUGH_SHARES,
    MSG_SELL_PARIMUTUEL,
    MSG_SELL_WORTH_ZERO,
    MSG_SLIPPAGE_POINTS,
    MSG_SLIPPAGE_SHARES,
    InsufficientShares,
    MarketStateError,
    SlippageExceeded,
)
from markets.models import Market, Outcome
from markets.services.base import format_shares
from points.errors import MSG_INSUFFICIENT_POINTS, InsufficientPoints, InvalidAmount

MSG_SHARES_RESERVED = (
    "You hold {held} shares of “{label}”, but {reserved} of them wait in your sell orders: you "
    "can sell up to {free} now. Cancel an order with /orders to sell more."
)

AMM = "amm"
"""`Market.Mechanism.AMM`'s value (the other mechanism is the pari-mutuel pool)."""


class MarketState(NamedTuple):
    """What the rules read of a market: its id (for messages), mechanism, fee, and every
    outcome's label, pool (amm) and stake (pool), in position order."""

    market_id: int
    mechanism: str
    fee_bps: int
    labels: Sequence[str]
    pools: Sequence[int]
    staked: Sequence[int]


@dataclass(frozen=True)
class BuyPlan:
    """A buy (amm) or stake (pool) the rules accept: `amount` leaves the wallet, `fee` of it
    goes to the treasury and `amount - fee` to the escrow; the outcomes end at `pools` and
    `staked`."""

    kind: Literal["buy", "stake"]
    amount: int
    fee: int
    shares: int
    """Micro-shares received (amm); 0 for a stake."""
    pools: list[int]
    staked: list[int]

    @property
    def net(self) -> int:
        return self.amount - self.fee


def buy_fee(state: MarketState, amount: int) -> int:
    """The trading fee on a buy of `amount` (0 on a pool)."""
    return amm.fee_for(amount, state.fee_bps) if state.mechanism == AMM else 0


def buy_plan(
    state: MarketState,
    position: int,
    amount: int,
    *,
    max_bet: int,
    balance: int,
    min_shares: int | None = None,
) -> BuyPlan:
    """`amount` points on outcome `position`, refused in this order: above `max_bet`, the fee
    eating the whole amount, more than `balance`, fewer shares than `min_shares` (§4.6)."""
    if amount > max_bet:
        raise InvalidAmount(MSG_BET_ABOVE_MAX.format(max_bet=max_bet), details={"max_bet": max_bet})
    fee = buy_fee(state, amount)
    if amount - fee <= 0:
        raise InvalidAmount(MSG_BET_TOO_SMALL_AFTER_FEE.format(fee=fee))
    if balance < amount:
        raise InsufficientPoints(
            MSG_INSUFFICIENT_POINTS.format(balance=balance, needed=amount),
            details={"balance": balance, "needed": amount},
        )
    staked = list(state.staked)
    if state.mechanism != AMM:
        staked[position] += amount
        return BuyPlan("stake", amount, 0, 0, list(state.pools), staked)
    result = amm.buy(state.pools, position, amount - fee)
    if min_shares is not None and result.shares < min_shares:
        raise SlippageExceeded(
            MSG_SLIPPAGE_SHARES.format(
                got=format_shares(result.shares), limit=format_shares(min_shares)
            ),
            details={
                "shares": result.shares,
                "min_shares": min_shares,
                "probability": float(amm.prices(state.pools)[position]),  # display: at its turn
            },
        )
    return BuyPlan("buy", amount, fee, result.shares, list(result.pools), staked)


@dataclass(frozen=True)
class SellPlan:
    """A sale the rules accept: `asked` micro-shares leave the position, `points` leave the
    escrow (`fee` of them to the treasury, `net` to the wallet), the pools end at `pools` and
    `left_in_pool` micro-shares are the fraction of a point the market keeps. `closing`: "all"
    of a position worth less than a point, closed as a 0-point sale (§4.4)."""

    asked: int
    points: int
    fee: int
    pools: list[int]
    left_in_pool: int
    closing: bool

    @property
    def net(self) -> int:
        return self.points - self.fee


def sell_allowed(state: MarketState) -> None:
    """Only the market maker buys shares back; a pool stake stays until settlement (§5)."""
    if state.mechanism != AMM:
        raise MarketStateError(MSG_SELL_PARIMUTUEL)


def sell_plan(
    state: MarketState,
    position: int,
    held: int,
    shares: int | None,
    *,
    min_points: int | None = None,
    reserved: int = 0,
) -> SellPlan:
    """Selling `shares` (None = all of `held` that is free) of outcome `position`, refused in
    this order: a pool market, nothing held, more than held, more than is free of the member's
    sell orders (`reserved`, DOMAIN §4.7), a sale worth 0 points after the fee (except "all",
    which closes the position as a 0-point sale), less than `min_points` (§4.6)."""
    sell_allowed(state)
    label = state.labels[position]
    if held == 0:
        raise InsufficientShares(MSG_NO_SHARES.format(label=label, market_id=state.market_id))
    free = held - reserved
    asked = free if shares is None else shares
    if reserved and (asked > free or asked == 0) and asked <= held:
        raise InsufficientShares(
            MSG_SHARES_RESERVED.format(
                held=format_shares(held),
                label=label,
                reserved=format_shares(reserved),
                free=format_shares(free),
            ),
            details={"held": held, "reserved": reserved, "free": free},
        )
    if asked > held:
        raise InsufficientShares(
            MSG_NOT_ENOUGH_SHARES.format(
                held=format_shares(held), label=label, asked=format_shares(asked)
            )
        )
    result = amm.sell(state.pools, position, asked)
    points = result.points
    fee = amm.fee_for(points, state.fee_bps)
    closing = shares is None and points - fee <= 0
    if closing:
        points = fee = 0
    elif points - fee <= 0:
        raise InvalidAmount(MSG_SELL_WORTH_ZERO, details={"points": points, "fee": fee})
    if min_points is not None and points - fee < min_points:
        raise SlippageExceeded(
            MSG_SLIPPAGE_POINTS.format(got=points - fee, limit=min_points),
            details={
                "points": points - fee,
                "min_points": min_points,
                "shares": asked,
                "probability": float(amm.prices(state.pools)[position]),  # display: at its turn
            },
        )
    if closing:  # the shares join the pool and no point moves
        pools = [p + asked if i == position else p for i, p in enumerate(state.pools)]
        return SellPlan(asked, 0, 0, pools, asked, True)
    return SellPlan(asked, points, fee, list(result.pools), result.left_in_pool, False)


def slippage_limit(value: int, bps: int) -> int:
    """The least a confirmation accepts: `value` (shares or points) less `bps` (§4.6)."""
    return value * (10_000 - bps) // 10_000


def state_of(market: Market, outcomes: Sequence[Outcome]) -> MarketState:
    """The rules' view of a market and its outcomes (in position order), read or locked."""
    return MarketState(
        market_id=market.pk,
        mechanism=market.mechanism,
        fee_bps=market.fee_bps,
        labels=[o.label for o in outcomes],
        pools=[o.pool for o in outcomes],
        staked=[o.staked for o in outcomes],
    )
