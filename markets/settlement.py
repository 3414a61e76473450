"""Who gets what when a market settles (DOMAIN §5, §6): shared by the services that pay and the
selectors that preview the payment for a moderator. Reads plain rows; writes nothing."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from betting.models import Position

from . import amm
from .models import Market, Outcome


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
            per_position[stakes[user][0].pk] = amount
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
