"""Read-only market queries; each runs a constant number of queries whatever the data size.

Probabilities here are floats for display only (DOMAIN §1); the source of truth is the integer
pools and stakes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Prefetch, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from betting.models import Position, Trade
from points.models import Account, Transfer
from points.text import text_problem

from . import amm, settlement
from .errors import (
    MSG_MARKET_NOT_FOUND,
    MSG_NO_SHARES,
    MSG_NOT_ENOUGH_SHARES,
    MSG_OUTCOME_NOT_FOUND,
    MSG_SELL_PARIMUTUEL,
    InsufficientShares,
    InvalidMarketInput,
    MarketNotFound,
    MarketStateError,
)
from .models import Market, MarketEvent, Outcome, ResolutionVote


@dataclass(frozen=True)
class OutcomeSummary:
    position: int
    label: str
    probability: float  # display
    pool: int
    staked: int


@dataclass(frozen=True)
class MarketSummary:
    id: int
    guild_id: int
    question: str
    category: str
    mechanism: str
    status: str
    closes_at: dt.datetime
    closed_at: dt.datetime | None
    created_at: dt.datetime
    creator_id: int
    volume: int
    trade_count: int
    trader_count: int
    liquidity: int
    fee_bps: int
    winning_position: int | None
    channel_id: int | None
    message_id: int | None
    settle_reason: str
    outcomes: list[OutcomeSummary] = field(default_factory=list)

    @property
    def leading(self) -> OutcomeSummary:
        return max(self.outcomes, key=lambda o: (o.probability, -o.position))

    @property
    def is_open(self) -> bool:
        return self.status == Market.Status.OPEN


def probabilities(mechanism: str, outcomes: list[Outcome]) -> list[float]:
    if mechanism == Market.Mechanism.AMM:
        return [float(p) for p in amm.prices([o.pool for o in outcomes])]  # display
    return [float(p) for p in amm.parimutuel_probabilities([o.staked for o in outcomes])]  # display


def summarize(market: Market, outcomes: list[Outcome]) -> MarketSummary:
    """A `MarketSummary` from a market and its outcomes in position order (no queries)."""
    probs = probabilities(market.mechanism, outcomes)
    winner = next((o.position for o in outcomes if o.pk == market.winning_outcome_id), None)
    return MarketSummary(
        id=market.pk,
        guild_id=market.guild_id,
        question=market.question,
        category=market.category,
        mechanism=market.mechanism,
        status=market.status,
        closes_at=market.closes_at,
        closed_at=market.closed_at,
        created_at=market.created_at,
        creator_id=market.creator_id,
        volume=market.volume,
        trade_count=market.trade_count,
        trader_count=market.trader_count,
        liquidity=market.liquidity,
        fee_bps=market.fee_bps,
        winning_position=winner,
        channel_id=market.channel_id,
        message_id=market.message_id,
        settle_reason=market.settle_reason,
        outcomes=[
            OutcomeSummary(o.position, o.label, p, o.pool, o.staked)
            for o, p in zip(outcomes, probs, strict=True)
        ],
    )


def _with_outcomes(qs: QuerySet[Market]) -> QuerySet[Market]:
    return qs.prefetch_related(
        Prefetch("outcomes", queryset=Outcome.objects.order_by("position"), to_attr="ordered")
    )


def market_get(*, market_id: int, guild_id: int | None = None) -> MarketSummary:
    """One market with its outcomes (2 queries). `guild_id` keeps guilds apart (DOMAIN §2)."""
    qs = Market.objects.filter(pk=market_id)
    if guild_id is not None:
        qs = qs.filter(guild_id=guild_id)
    market = _with_outcomes(qs).first()
    if market is None:
        raise MarketNotFound(MSG_MARKET_NOT_FOUND.format(market_id=market_id))
    return summarize(market, market.ordered)


def _matches_nothing(*texts: str | None) -> bool:
    """True when a typed filter holds a character no stored question or category holds (a NUL,
    which PostgreSQL would refuse to compare, a surrogate, a control character: points.text)."""
    return any(text and text_problem(text, allow_format=True) for text in texts)


def market_list(
    *,
    guild_id: int | None,
    status: str | list[str] | None = None,
    category: str | None = None,
    search: str | None = None,
    limit: int = 25,
    offset: int = 0,
) -> list[MarketSummary]:
    """Markets of a guild (all guilds when `guild_id` is None), newest first (2 queries).
    `search` matches the question or the market number."""
    if _matches_nothing(category, search):
        return []
    qs = Market.objects.all()
    if guild_id is not None:
        qs = qs.filter(guild_id=guild_id)
    if status:
        qs = qs.filter(status__in=[status] if isinstance(status, str) else status)
    if category:
        qs = qs.filter(category__iexact=category)
    if search:
        text = search.strip().lstrip("#")
        condition = Q(question__icontains=text)
        if text.isdecimal() and len(text) <= 19:  # int() refuses "²" and 4300+ digits
            condition |= Q(pk=int(text))
        qs = qs.filter(condition)
    qs = _with_outcomes(qs.order_by("-id"))[max(0, offset) : max(0, offset) + max(1, limit)]
    return [summarize(m, m.ordered) for m in qs]


def market_count(
    *, guild_id: int, status: str | list[str] | None = None, category: str | None = None
) -> int:
    if _matches_nothing(category):
        return 0
    qs = Market.objects.filter(guild_id=guild_id)
    if status:
        qs = qs.filter(status__in=[status] if isinstance(status, str) else status)
    if category:
        qs = qs.filter(category__iexact=category)
    return qs.count()


def categories(*, guild_id: int, limit: int = 25) -> list[str]:
    return list(
        Market.objects.filter(guild_id=guild_id)
        .exclude(category="")
        .values_list("category", flat=True)
        .distinct()
        .order_by("category")[:limit]
    )


# --- Quotes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuyQuote:
    amount: int
    fee: int
    shares: int
    """Micro-shares the buyer would receive (amm); 0 for a pool stake."""
    average_price: float  # display: points per share
    probability_before: float  # display
    probability_after: float  # display
    potential_payout: int
    """Points if this outcome wins: whole shares (amm) or the pari-mutuel share of the pot."""


def _market_and_outcome(market_id: int, position: int) -> tuple[Market, list[Outcome], Outcome]:
    market = _with_outcomes(Market.objects.filter(pk=market_id)).first()
    if market is None:
        raise MarketNotFound(MSG_MARKET_NOT_FOUND.format(market_id=market_id))
    outcomes = market.ordered
    if isinstance(position, bool) or not isinstance(position, int):
        position = -1
    if not 0 <= position < len(outcomes):
        raise InvalidMarketInput(
            MSG_OUTCOME_NOT_FOUND.format(
                market_id=market_id, outcome=position + 1, count=len(outcomes)
            )
        )
    return market, outcomes, outcomes[position]


def quote_buy(*, market_id: int, outcome: int, amount: int) -> BuyQuote:
    """What `amount` points on `outcome` would give now (2 queries). The trade itself is
    recomputed under lock (DOMAIN §4.6)."""
    market, outcomes, chosen = _market_and_outcome(market_id, outcome)
    before = probabilities(market.mechanism, outcomes)[chosen.position]
    if market.mechanism == Market.Mechanism.AMM:
        fee = amm.fee_for(amount, market.fee_bps)
        if amount - fee <= 0:
            return BuyQuote(amount, fee, 0, 0.0, before, before, 0)
        result = amm.buy([o.pool for o in outcomes], chosen.position, amount - fee)
        after = float(amm.prices(result.pools)[chosen.position])  # display
        average = amount * amm.SHARE_SCALE / result.shares  # display
        return BuyQuote(
            amount, fee, result.shares, average, before, after, result.shares // amm.SHARE_SCALE
        )
    staked = [o.staked for o in outcomes]
    staked[chosen.position] += amount
    after = float(amm.parimutuel_probabilities(staked)[chosen.position])  # display
    pot = sum(staked)
    payout = amount * pot // staked[chosen.position]
    return BuyQuote(amount, 0, 0, 0.0, before, after, payout)


@dataclass(frozen=True)
class SellQuote:
    shares_offered: int
    shares_burned: int
    points: int
    fee: int
    net_points: int
    probability_after: float  # display


def quote_sell(
    *, market_id: int, user_id: int, outcome: int, shares: int | None = None
) -> SellQuote:
    """What selling `shares` (None = all held) of `outcome` would return now (3 queries)."""
    market, outcomes, chosen = _market_and_outcome(market_id, outcome)
    if market.mechanism != Market.Mechanism.AMM:
        raise MarketStateError(MSG_SELL_PARIMUTUEL)
    held = (
        Position.objects.filter(market_id=market_id, outcome=chosen, user_id=user_id)
        .values_list("shares", flat=True)
        .first()
    ) or 0
    if held == 0:
        raise InsufficientShares(MSG_NO_SHARES.format(label=chosen.label, market_id=market_id))
    asked = held if shares is None else shares
    if asked > held:
        from .services import format_shares

        raise InsufficientShares(
            MSG_NOT_ENOUGH_SHARES.format(
                held=format_shares(held), label=chosen.label, asked=format_shares(asked)
            )
        )
    result = amm.sell([o.pool for o in outcomes], chosen.position, asked)
    fee = amm.fee_for(result.points, market.fee_bps)
    after = float(amm.prices(result.pools)[chosen.position])  # display
    return SellQuote(asked, result.shares, result.points, fee, result.points - fee, after)


# --- Portfolio, history, leaderboard ---------------------------------------------------------


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
    """Points the position is worth now: what selling it would return (amm, open), the
    pari-mutuel share of the pot if it won (pool, open), or what settlement paid."""
    profit: int
    probability: float  # display


@dataclass(frozen=True)
class Portfolio:
    guild_id: int
    user_id: int
    balance: int | None
    positions: list[PositionView]

    @property
    def total_value(self) -> int:
        return sum(p.value for p in self.positions if p.status in ("open", "closed"))


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
        qs = qs.filter(market__status__in=[Market.Status.OPEN, Market.Status.CLOSED])
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


def price_history(*, market_id: int, limit: int | None = None) -> PriceHistory:
    """Every outcome's probability after each trade, starting with the opening prices (3
    queries). `limit` keeps only the latest trades.

    Read from the outbox (DOMAIN §6): every trade writes a `trade` event in its transaction
    whose payload carries the probabilities after it, so the chart needs no betting table and
    the Discord chart and the dashboard draw the same points."""
    market = Market.objects.filter(pk=market_id).first()
    if market is None:
        raise MarketNotFound(MSG_MARKET_NOT_FOUND.format(market_id=market_id))
    labels = list(
        Outcome.objects.filter(market=market).order_by("position").values_list("label", flat=True)
    )
    n = len(labels)
    qs = MarketEvent.objects.filter(market=market, type=MarketEvent.Type.TRADE).order_by(
        "-id" if limit else "id"
    )
    fields = ("payload__trade_id", "created_at", "payload__probabilities")
    rows = list(qs.values_list(*fields)[:limit] if limit else qs.values_list(*fields))
    if limit:
        rows.reverse()
    points = []
    if not limit or len(rows) < limit:
        points.append(PricePoint(market.created_at, None, [1 / n] * n))
    points.extend(PricePoint(at, tid, list(probs)) for tid, at, probs in rows)
    return PriceHistory(market_id=market.pk, labels=labels, points=points)


@dataclass(frozen=True)
class ProfitRow:
    rank: int
    user_id: int
    profit: int


PROFIT_IN = (Transfer.Code.SELL, Transfer.Code.PAYOUT, Transfer.Code.REFUND)
PROFIT_OUT = (Transfer.Code.BUY, Transfer.Code.FEE)


def leaderboard_profit(*, guild_id: int, limit: int = 10) -> list[ProfitRow]:
    """Members ranked by realised trading profit: points back from markets (sells, payouts,
    refunds) minus points put in (stakes, fees) (2 queries)."""
    wallets = Account.objects.filter(guild_id=guild_id, kind=Account.Kind.WALLET)
    incoming = dict(
        Transfer.objects.filter(destination__in=wallets, code__in=PROFIT_IN, guild_id=guild_id)
        .values_list("destination__owner_id")
        .annotate(s=Sum("amount"))
        .order_by()
    )
    outgoing = dict(
        Transfer.objects.filter(source__in=wallets, code__in=PROFIT_OUT, guild_id=guild_id)
        .values_list("source__owner_id")
        .annotate(s=Sum("amount"))
        .order_by()
    )
    profits = {
        u: incoming.get(u, 0) - outgoing.get(u, 0) for u in incoming.keys() | outgoing.keys()
    }
    ranked = sorted(profits.items(), key=lambda kv: (-kv[1], kv[0]))[: max(1, min(limit, 100))]
    return [ProfitRow(rank, user, profit) for rank, (user, profit) in enumerate(ranked, 1)]


# --- Events, votes, settlement preview -------------------------------------------------------


def market_events_after(
    *,
    after_id: int,
    guild_ids: list[int] | None = None,
    market_id: int | None = None,
    limit: int = 500,
) -> list[MarketEvent]:
    """Outbox events with id > `after_id`, oldest first (1 query): the dashboard's replay and
    the notifier's cursor read this."""
    qs = MarketEvent.objects.filter(id__gt=after_id)
    if guild_ids is not None:
        qs = qs.filter(guild_id__in=guild_ids)
    if market_id is not None:
        qs = qs.filter(market_id=market_id)
    return list(qs.order_by("id")[: max(1, min(limit, 5000))])


def votes_get(*, market_id: int) -> list[tuple[int, int, str]]:
    """(voter id, outcome position, label) for every resolution vote (1 query)."""
    return list(
        ResolutionVote.objects.filter(market_id=market_id)
        .order_by("id")
        .values_list("voter_id", "outcome__position", "outcome__label")
    )


@dataclass(frozen=True)
class SettlementPreview:
    market_id: int
    kind: str
    """"resolve" or "cancel"."""
    outcome: int | None
    payments: list[tuple[int, int]]
    """(user id, points), largest first."""
    total: int
    escrow: int
    refunded_all: bool = False

    @property
    def treasury_delta(self) -> int:
        """Points the treasury gets back (positive) or must add (negative)."""
        return self.escrow - self.total


def settlement_preview(*, market_id: int, outcome: int | None = None) -> SettlementPreview:
    """What resolving on `outcome` (or cancelling, when None) would pay to whom, computed by the
    same rules the services apply (4 queries). Nothing is written."""
    market = _with_outcomes(Market.objects.filter(pk=market_id)).first()
    if market is None:
        raise MarketNotFound(MSG_MARKET_NOT_FOUND.format(market_id=market_id))
    outcomes = market.ordered
    positions = list(Position.objects.filter(market=market).order_by("pk"))
    escrow = (
        Account.objects.filter(kind=Account.Kind.ESCROW, market=market)
        .values_list("balance", flat=True)
        .first()
    ) or 0
    if outcome is None:
        per_position, refunded_all = settlement.refund_plan(positions), False
    else:
        if not 0 <= outcome < len(outcomes):
            raise InvalidMarketInput(
                MSG_OUTCOME_NOT_FOUND.format(
                    market_id=market_id, outcome=outcome + 1, count=len(outcomes)
                )
            )
        per_position, refunded_all = settlement.resolve_plan(
            market.mechanism, outcomes, outcomes[outcome], positions
        )
    users = settlement.per_user(positions, per_position)
    payments = sorted(users.items(), key=lambda kv: (-kv[1], kv[0]))
    return SettlementPreview(
        market_id=market.pk,
        kind="cancel" if outcome is None else "resolve",
        outcome=outcome,
        payments=payments,
        total=sum(users.values()),
        escrow=escrow,
        refunded_all=refunded_all,
    )


def volume_by_market(market_ids: list[int]) -> dict[int, int]:
    """Sum of trade amounts per market (1 query); `Market.volume` holds the same running total."""
    return dict(
        Trade.objects.filter(market_id__in=market_ids)
        .values_list("market_id")
        .annotate(v=Coalesce(Sum("amount"), 0))
        .order_by()
    )
