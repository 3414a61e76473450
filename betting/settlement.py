"""Who gets what when a market settles (DOMAIN §5, §6), from the positions: the `Holdings` that
`betting` registers with `markets.holdings`, so the settlement services and the moderator's
preview in `markets` compute payments by the same rules without importing `betting`."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence

from core.sql import set_by_pk
from markets import amm
from markets.holdings import Payouts, Reversal
from markets.models import Market, Outcome

from . import reversal
from .models import Position
from .services.orders import market_orders_release, orders_expire


def resolve_plan(
    mechanism: str, outcomes: Sequence[Outcome], winner: Outcome, positions: Sequence[Position]
) -> tuple[dict[int, int], bool]:
    """Points per position id if `winner` wins, and whether everyone is refunded instead.

    amm: each winning position gets floor(shares / SHARE_SCALE). pari-mutuel: winners split the
    whole pot in proportion to their stakes, leftover points by largest remainder; if nobody
    backed the winner every stake is refunded."""
    per_position: dict[int, int] = {}
    if mechanism == Market.Mechanism.AMM:
        for p in positions:
            if p.outcome_id == winner.pk and p.shares >= amm.SHARE_SCALE:
                per_position[p.pk] = p.shares // amm.SHARE_SCALE
        return per_position, False
    pot = sum(o.staked for o in outcomes)
    stakes: dict[int, list[Position]] = defaultdict(list)
    for p in positions:
        if p.outcome_id == winner.pk and p.points_spent > 0:
            stakes[p.user_id].append(p)
    payouts = amm.parimutuel_payouts(
        [
            amm.WinnerStake(user, sum(p.points_spent for p in ps), min(p.pk for p in ps))
            for user, ps in stakes.items()
        ],
        pot,
    )
    if payouts:
        for user, amount in payouts.items():
            per_position[stakes[int(user)][0].pk] = amount  # type: ignore[call-overload]
        return per_position, False
    return {p.pk: p.points_spent for p in positions if p.points_spent}, True


def refund_plan(positions: Iterable[Position]) -> dict[int, int]:
    """Each trader gets back max(0, spent − received) over the whole market (DOMAIN §6), carried
    on their positions, each up to its own loss."""
    per_position: dict[int, int] = {}
    by_user: dict[int, list[Position]] = defaultdict(list)
    for p in positions:
        by_user[p.user_id].append(p)
    for ps in by_user.values():
        owed = max(0, sum(p.points_spent for p in ps) - sum(p.points_received for p in ps))
        for p in ps:
            share = min(owed, max(0, p.points_spent - p.points_received))
            if share:
                per_position[p.pk] = share
                owed -= share
    return per_position


def per_user(positions: Iterable[Position], per_position: dict[int, int]) -> dict[int, int]:
    totals: dict[int, int] = defaultdict(int)
    for p in positions:
        if per_position.get(p.pk):
            totals[p.user_id] += per_position[p.pk]
    return dict(totals)


def _payouts(
    positions: Sequence[Position], per_position: dict[int, int], refunded_all: bool = False
) -> Payouts:
    """`per_user` counts every member the plan names, in plan order, even at 0 points."""
    by_pk = {p.pk: p for p in positions}
    users: dict[int, int] = defaultdict(int)
    for pk, amount in per_position.items():
        users[by_pk[pk].user_id] += amount
    return Payouts(per_holding=per_position, per_user=dict(users), refunded_all=refunded_all)


def _positions(market: Market) -> list[Position]:
    return list(Position.objects.filter(market=market).order_by("pk"))


class PositionHoldings:
    """The markets' holdings are the members' positions (registered in `BettingConfig.ready`)."""

    def resolve_plan(self, market: Market, outcomes: list[Outcome], winner: Outcome) -> Payouts:
        positions = _positions(market)
        per_position, refunded_all = resolve_plan(market.mechanism, outcomes, winner, positions)
        return _payouts(positions, per_position, refunded_all)

    def refund_plan(self, market: Market) -> Payouts:
        positions = _positions(market)
        return _payouts(positions, refund_plan(positions))

    def payouts_record(self, market: Market, payouts: Payouts) -> None:
        """Caller holds a row lock on `market`: its positions change only under it. One
        statement, whatever the number of winners (the plan's keys are this market's
        positions: `resolve_plan` read them)."""
        set_by_pk(
            Position,
            ("payout",),
            {pk: (amount,) for pk, amount in payouts.per_holding.items() if amount},
        )

    def holds(self, market: Market, user_id: int) -> bool:
        """Shares (amm) or a stake (pari-mutuel, `points_spent`: a pool position has no shares)
        in `market` right now (the conflict-of-interest test, docs/domain.md §6.1)."""
        positions = Position.objects.filter(market=market, user_id=user_id)
        if market.mechanism == Market.Mechanism.PARIMUTUEL:
            return positions.filter(points_spent__gt=0).exists()
        return positions.filter(shares__gt=0).exists()

    def traded(self, market: Market, user_id: int) -> bool:
        """Ever traded in `market` (who may dispute its proposed result)."""
        return Position.objects.filter(market=market, user_id=user_id).exists()

    def orders_release(self, market: Market, now: dt.datetime) -> int:
        """Caller holds a row lock on `market`, which is leaving `open` (DOMAIN §4.7)."""
        return market_orders_release(market, now)

    def orders_expire(self, now: dt.datetime) -> int:
        return orders_expire(now=now)

    def reversal_plan(self, market: Market, known_at: dt.datetime) -> Reversal:
        return reversal.reversal_plan(market, known_at)

    def reversal_apply(
        self,
        market: Market,
        outcomes: list[Outcome],
        known_at: dt.datetime,
        *,
        actor_id: int | None,
        actor_user_id: int | None,
    ) -> Reversal:
        return reversal.reversal_apply(
            market, outcomes, known_at, actor_id=actor_id, actor_user_id=actor_user_id
        )
