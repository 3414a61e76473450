"""Read-only trading queries: quotes, positions and their value, portfolios, the price history
(the trade log) and leaderboards. Each runs a constant number of queries whatever the data size.

Probabilities here are floats for display only (DOMAIN §1); the source of truth is the integer
pools and stakes. A position's worth is `position_value`, the one valuation every interface
shows (portfolio, "My position", the Sell menu, the admin)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from core.replicas import lag_tolerant
from markets import amm
from markets.errors import (
    MSG_MARKET_NOT_FOUND,
    MarketNotFound,
)
from markets.models import Market, Outcome
from markets.selectors import probabilities
from markets.services import format_shares
from points.models import Account, Transfer

from .models import Order, Position, Trade

# The quotes live in betting.quotes; re-exported for the callers that read them here.
from .quotes import BuyQuote as BuyQuote
from .quotes import SellQuote as SellQuote
from .quotes import quote_buy as quote_buy
from .quotes import quote_sell as quote_sell

# --- Portfolio, history, leaderboard ---------------------------------------------------------

UNSETTLED = ("open", "closed", "resolving")
"""A position's market has not paid out yet: a proposed or disputed result (`resolving`) is
still pending, so its positions are valued as in a closed market (issue 23)."""


@dataclass(frozen=True)
class PositionView:
    market_id: int
    question: str
    status: str
    mechanism: str
    outcome: int
    label: str
    shares: int
    points_spent: int
    points_received: int
    payout: int
    value: int
    """Points the position is worth now: what selling it would return (amm, open), what it pays
    if its outcome wins (pool, open: the stakes on one market's outcomes exclude each other), or
    what settlement paid."""

    @property
    def pays_if_wins(self) -> bool:
        """An open pool stake: `value` is a conditional payout, not a worth to add up."""
        return self.mechanism == Market.Mechanism.PARIMUTUEL and self.status in UNSETTLED

    profit: int
    probability: float  # display
    won: bool | None = None
    """Settled: whether this position's outcome won (None: cancelled or not settled)."""


@dataclass(frozen=True)
class Portfolio:
    guild_id: int
    user_id: int
    balance: int | None
    positions: list[PositionView]

    @property
    def total_value(self) -> int:
        """What the unsettled positions are worth together, never adding payouts that exclude
        each other: per pool market only the best of the member's outcomes counts (at most one
        outcome wins), per amm market the sale values add up (they can all be sold)."""
        amm_total = 0
        best_pool: dict[int, int] = {}
        for p in self.positions:
            if p.status not in UNSETTLED:
                continue
            if p.mechanism == Market.Mechanism.AMM:
                amm_total += p.value
            else:
                best_pool[p.market_id] = max(best_pool.get(p.market_id, 0), p.value)
        return amm_total + sum(best_pool.values())


def position_value(market: Market, outcomes: list[Outcome], position: Position) -> int:
    """Points a position is worth now (no queries): what selling it would put in the wallet,
    after the fee (amm, not settled), its pari-mutuel share of the pot if its outcome won (pool,
    not settled), or what settlement paid. `outcomes` are the market's outcomes in position
    order."""
    if market.is_settled:
        return position.payout
    index = next(i for i, o in enumerate(outcomes) if o.pk == position.outcome_id)
    if market.mechanism == Market.Mechanism.AMM:
        if not position.shares:
            return 0
        points = amm.sell([o.pool for o in outcomes], index, position.shares).points
        return points - amm.fee_for(points, market.fee_bps) if points else 0
    staked = outcomes[index].staked
    return position.points_spent * sum(o.staked for o in outcomes) // staked if staked else 0


@lag_tolerant
def portfolio_get(
    *, guild_id: int, user_id: int, include_settled: bool = True, limit: int = 50
) -> Portfolio:
    """A member's positions with current value and profit (3 queries)."""
    balance = (
        Account.objects.filter(guild_id=guild_id, kind=Account.Kind.WALLET, owner_id=user_id)
        .values_list("balance", flat=True)
        .first()
    )
    qs = Position.objects.filter(guild_id=guild_id, user_id=user_id).select_related(
        "market", "outcome"
    )
    if not include_settled:
        qs = qs.filter(market__status__in=UNSETTLED)
    positions = list(qs.order_by("-market_id", "outcome__position")[:limit])
    market_ids = {p.market_id for p in positions}
    outcomes_by_market: dict[int, list[Outcome]] = {}
    for o in Outcome.objects.filter(market_id__in=market_ids).order_by("market_id", "position"):
        outcomes_by_market.setdefault(o.market_id, []).append(o)
    views = []
    for p in positions:
        market, outcomes = p.market, outcomes_by_market[p.market_id]
        probability = probabilities(market.mechanism, outcomes)[p.outcome.position]
        value = position_value(market, outcomes, p)
        views.append(
            PositionView(
                market_id=p.market_id,
                question=market.question,
                status=market.status,
                mechanism=market.mechanism,
                outcome=p.outcome.position,
                label=p.outcome.label,
                shares=p.shares,
                points_spent=p.points_spent,
                points_received=p.points_received,
                payout=p.payout,
                value=value,
                profit=value + p.points_received - p.points_spent,
                probability=probability,
                won=(
                    market.winning_outcome_id == p.outcome_id
                    if market.status == Market.Status.RESOLVED
                    else None
                ),
            )
        )
    return Portfolio(guild_id=guild_id, user_id=user_id, balance=balance, positions=views)


@dataclass(frozen=True)
class PricePoint:
    at: dt.datetime
    trade_id: int | None
    probabilities: list[float]  # display


@dataclass(frozen=True)
class PriceHistory:
    market_id: int
    labels: list[str]
    points: list[PricePoint]


@lag_tolerant
def price_history(*, market_id: int, limit: int | None = None) -> PriceHistory:
    """Every outcome's probability after each trade, from the trade log (3 queries), starting
    with the opening prices. `limit` keeps only the latest trades."""
    market = Market.objects.filter(pk=market_id).first()
    if market is None:
        raise MarketNotFound(MSG_MARKET_NOT_FOUND.format(market_id=market_id))
    labels = list(
        Outcome.objects.filter(market=market).order_by("position").values_list("label", flat=True)
    )
    n = len(labels)
    qs = Trade.objects.filter(market=market).order_by("-id" if limit else "id")
    rows = list(
        qs.values_list("id", "created_at", "prices_after_ppm")[:limit]
        if limit
        else qs.values_list("id", "created_at", "prices_after_ppm")
    )
    if limit:
        rows.reverse()
    points = []
    if not limit or len(rows) < limit:
        points.append(PricePoint(market.created_at, None, [1 / n] * n))
    points.extend(PricePoint(at, tid, [p / 1_000_000 for p in ppm]) for tid, at, ppm in rows)
    return PriceHistory(market_id=market.pk, labels=labels, points=points)


@dataclass(frozen=True)
class ProfitRow:
    rank: int
    user_id: int
    profit: int
    """Realised: settled markets in full, and in unsettled markets only what sales took back
    beyond what the member put in (a position still held is not a loss yet)."""
    open_value: int = 0
    """What the member's positions in unsettled markets are worth now (`Portfolio.total_value`
    rules: pool stakes on one market count once), shown next to the realised profit."""


MARKET_IN = (Transfer.Code.SELL, Transfer.Code.PAYOUT, Transfer.Code.REFUND)
MARKET_OUT = (Transfer.Code.BUY, Transfer.Code.FEE)


@lag_tolerant
def leaderboard_profit(*, guild_id: int, limit: int = 10) -> list[ProfitRow]:
    """Members ranked by realised trading profit (3 queries): per settled market, points back
    (sells, payouts, refunds) minus points put in (stakes, buys, fees); per unsettled market,
    only a gain already taken out by sales (`max(0, back − in)`). The ranked members' open
    positions are valued separately (`open_value`)."""
    flows = (
        Transfer.objects.filter(
            guild_id=guild_id,
            market__isnull=False,
            code__in=(*MARKET_IN, *MARKET_OUT),
        )
        .filter(Q(source__kind=Account.Kind.WALLET) | Q(destination__kind=Account.Kind.WALLET))
        .values_list(
            "market_id", "market__status", "code", "source__owner_id", "destination__owner_id"
        )
        .annotate(s=Sum("amount"))
        .order_by()
    )
    per_market: dict[tuple[int, int], int] = {}
    settled: set[int] = set()
    for market_id, status, code, source_owner, destination_owner, amount in flows:
        if status in (Market.Status.RESOLVED, Market.Status.CANCELLED):
            settled.add(market_id)
        if code in MARKET_IN and destination_owner is not None:
            key = (destination_owner, market_id)
            per_market[key] = per_market.get(key, 0) + amount
        elif code in MARKET_OUT and source_owner is not None:
            key = (source_owner, market_id)
            per_market[key] = per_market.get(key, 0) - amount
    profits: dict[int, int] = {}
    for (user_id, market_id), net in per_market.items():
        realised = net if market_id in settled else max(0, net)
        profits[user_id] = profits.get(user_id, 0) + realised
    ranked = sorted(profits.items(), key=lambda kv: (-kv[1], kv[0]))[: max(1, min(limit, 100))]
    open_values = _open_values(guild_id, [user for user, _ in ranked])
    return [
        ProfitRow(rank, user, profit, open_values.get(user, 0))
        for rank, (user, profit) in enumerate(ranked, 1)
    ]


def _open_values(guild_id: int, user_ids: list[int]) -> dict[int, int]:
    """Each member's unsettled positions' worth, as `Portfolio.total_value` adds it (2 queries)."""
    positions = list(
        Position.objects.filter(
            guild_id=guild_id,
            user_id__in=user_ids,
            market__status__in=[Market.Status.OPEN, Market.Status.CLOSED],
        ).select_related("market")
    )
    outcomes_by_market: dict[int, list[Outcome]] = {}
    for o in Outcome.objects.filter(market_id__in={p.market_id for p in positions}).order_by(
        "market_id", "position"
    ):
        outcomes_by_market.setdefault(o.market_id, []).append(o)
    amm_total: dict[int, int] = {}
    best_pool: dict[tuple[int, int], int] = {}
    for p in positions:
        value = position_value(p.market, outcomes_by_market[p.market_id], p)
        if p.market.mechanism == Market.Mechanism.AMM:
            amm_total[p.user_id] = amm_total.get(p.user_id, 0) + value
        else:
            key = (p.user_id, p.market_id)
            best_pool[key] = max(best_pool.get(key, 0), value)
    totals = dict(amm_total)
    for (user_id, _), value in best_pool.items():
        totals[user_id] = totals.get(user_id, 0) + value
    return totals


def volume_by_market(market_ids: list[int]) -> dict[int, int]:
    """Sum of trade amounts per market (1 query); `Market.volume` holds the same running total."""
    return dict(
        Trade.objects.filter(market_id__in=market_ids)
        .values_list("market_id")
        .annotate(v=Coalesce(Sum("amount"), 0))
        .order_by()
    )


@dataclass(frozen=True)
class HoldingRow:
    """One member's position on one outcome of one market, as the back office shows a
    moderator their own stake before they decide the market (docs/domain.md §6.1)."""

    outcome: int
    label: str
    shares: int
    points_spent: int
    points_received: int

    @property
    def shares_text(self) -> str:
        return format_shares(self.shares)


def holdings_in_market(*, market_id: int, user_id: int) -> list[HoldingRow]:
    """What `user_id` holds in `market_id`, by outcome (1 query); positions sold back to
    nothing still show, since what they spent is part of their interest in the result."""
    rows = (
        Position.objects.filter(market_id=market_id, user_id=user_id)
        .order_by("outcome__position")
        .values_list(
            "outcome__position", "outcome__label", "shares", "points_spent", "points_received"
        )
    )
    return [HoldingRow(*row) for row in rows]


def holdings_get(*, market_id: int, user_ids: Iterable[int]) -> dict[tuple[int, int], int]:
    """The micro-shares these members hold in `market_id`, by (user id, outcome position);
    empty positions absent (1 query, however many members: a rush's sale quotes read together)."""
    rows = Position.objects.filter(
        market_id=market_id, user_id__in=set(user_ids), shares__gt=0
    ).values_list("user_id", "outcome__position", "shares")
    return {(user_id, position): shares for user_id, position, shares in rows}


def orders_of_member(
    *, guild_id: int, user_id: int, market_id: int | None = None, limit: int = 25
) -> list[Order]:
    """A member's waiting limit orders (DOMAIN §4.7), in one market or all of this guild's,
    newest first, with their outcome and market (one query)."""
    rows = Order.objects.filter(
        guild_id=guild_id, user_id=user_id, status=Order.Status.RESTING
    ).select_related("outcome", "market")
    if market_id is not None:
        rows = rows.filter(market_id=market_id)
    return list(rows.order_by("-id")[:limit])


@dataclass(frozen=True)
class EndedOrder:
    """A limit order that ended without its member asking (DOMAIN §4.7), as their DM tells it:
    `remaining` is the budget that went back (buy, points) or the shares left unsold (sell,
    micro-shares)."""

    order_id: int
    user_id: int
    side: str
    label: str
    limit_ppm: int
    remaining: int
    filled_points: int
    filled_shares: int


def orders_ended(*, market_id: int, order_ids: Iterable[int] | None = None) -> list[EndedOrder]:
    """The orders of a market that ended on their own: those listed (`order_ids`, expired
    together), or else every order the market's end released (it releases once, as the market
    leaves `open`); oldest first (1 query)."""
    rows = Order.objects.filter(market_id=market_id)
    if order_ids is not None:
        rows = rows.filter(pk__in=list(order_ids), status=Order.Status.EXPIRED)
    else:
        rows = rows.filter(status=Order.Status.RELEASED)
    return [
        EndedOrder(*row)
        for row in rows.order_by("id").values_list(
            "id",
            "user_id",
            "side",
            "outcome__label",
            "limit_ppm",
            "remaining",
            "filled_points",
            "filled_shares",
        )
    ]


@dataclass(frozen=True)
class RestingLevel:
    """The orders waiting at one limit of one outcome and side (DOMAIN §4.7): points of buy
    budgets, or micro-shares held for sale."""

    position: int
    side: str
    limit_ppm: int
    total: int
    orders: int


def resting_levels(*, market_id: int, now: dt.datetime | None = None) -> list[RestingLevel]:
    """What waits on a market, per outcome, side and limit: buys from the highest limit down,
    sales from the lowest up (the order a pass meets them). Orders past their expiry are left
    out: they no longer fill (1 query)."""
    now = now or timezone.now()
    rows = (
        Order.objects.filter(market_id=market_id, status=Order.Status.RESTING)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .values_list("outcome__position", "side", "limit_ppm")
        .annotate(total=Sum("remaining"), orders=Count("id"))
        .order_by()
    )
    levels = [RestingLevel(*row) for row in rows if row[3] > 0]
    return sorted(
        levels,
        key=lambda x: (x.position, x.side, -x.limit_ppm if x.side == "buy" else x.limit_ppm),
    )
