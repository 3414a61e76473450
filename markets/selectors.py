"""Read-only market queries; each runs a constant number of queries whatever the data size.
Quotes, positions, portfolios, price history and leaderboards are trading's: `betting.selectors`.

Probabilities here are floats for display only (DOMAIN §1); the source of truth is the integer
pools and stakes."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Count, IntegerField, OuterRef, Prefetch, Q, QuerySet, Subquery

from core.directory import guild_fallback, member_fallback
from core.replicas import lag_tolerant
from core.text import text_problem
from points.models import Account
from points.selectors import guild_name_subquery, member_name_subquery

from . import amm
from .errors import MSG_MARKET_NOT_FOUND, MSG_OUTCOME_NOT_FOUND, InvalidMarketInput, MarketNotFound
from .holdings import holdings_get
from .models import Dispute, Market, MarketEvent, Outcome, ResolutionVote


@dataclass(frozen=True)
class OutcomeSummary:
    position: int
    label: str
    probability: float  # display
    pool: int
    staked: int


@dataclass(frozen=True)
class ProposalSummary:
    """A resolving market's proposed result (docs/domain.md §6.1), as every face shows it."""

    position: int
    label: str
    proposed_by_id: int | None
    proposed_at: dt.datetime | None
    deadline: dt.datetime | None
    """When it pays out unless disputed; None: it waits for a second resolver."""
    disputed_at: dt.datetime | None
    conflicted: bool
    round: int
    disputes: int
    """Disputes of this proposal so far."""

    @property
    def disputed(self) -> bool:
        return self.disputed_at is not None


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
    creator_name: str = ""
    """The creator as the directory knows them, else "member #1234…" (issue 13)."""
    guild_name: str = ""
    """The server's name as the bot last saw it, else "server #1234…"."""
    description: str = ""
    """What the question means and what counts as each outcome (may span lines; DOMAIN §7)."""
    proposal: ProposalSummary | None = None
    """The proposed result while the market is `resolving`."""
    known_at: dt.datetime | None = None
    """When the outcome became known, as proposed or settled (docs/domain.md §6.2)."""
    reversed_trades: int = 0
    """Trades after `known_at` its settlement reversed (read by `market_get` only)."""

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
        description=market.description,
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
        creator_name=getattr(market, "creator_name", None) or member_fallback(market.creator_id),
        guild_name=getattr(market, "guild_name", None) or guild_fallback(market.guild_id),
        proposal=_proposal(market, outcomes),
        known_at=market.known_at,
    )


def _proposal(market: Market, outcomes: list[Outcome]) -> ProposalSummary | None:
    proposed = next((o for o in outcomes if o.pk == market.proposed_outcome_id), None)
    if market.status != Market.Status.RESOLVING or proposed is None:
        return None
    return ProposalSummary(
        position=proposed.position,
        label=proposed.label,
        proposed_by_id=market.proposed_by_id,
        proposed_at=market.proposed_at,
        deadline=market.dispute_deadline,
        disputed_at=market.disputed_at,
        conflicted=market.proposal_conflicted,
        round=market.proposal_round,
        disputes=getattr(market, "dispute_count", None) or 0,
    )


def _with_outcomes(qs: QuerySet[Market]) -> QuerySet[Market]:
    """Outcomes in position order, the creator's and the server's names from the directory
    (no extra query)."""
    disputes = (
        Dispute.objects.filter(market=OuterRef("pk"), proposal_round=OuterRef("proposal_round"))
        .order_by()
        .values("market")
        .annotate(n=Count("id"))
        .values("n")
    )
    return qs.annotate(
        creator_name=member_name_subquery(guild_field="guild_id", user_field="creator_id"),
        guild_name=guild_name_subquery(guild_field="guild_id"),
        dispute_count=Subquery(disputes, output_field=IntegerField()),
    ).prefetch_related(
        Prefetch("outcomes", queryset=Outcome.objects.order_by("position"), to_attr="ordered")  # type: ignore[no-redef]
    )


def market_get(*, market_id: int, guild_id: int | None = None) -> MarketSummary:
    """One market with its outcomes (2 queries). `guild_id` keeps guilds apart (DOMAIN §2)."""
    qs = Market.objects.filter(pk=market_id)
    if guild_id is not None:
        qs = qs.filter(guild_id=guild_id)
    market = _with_outcomes(qs).first()
    if market is None:
        raise MarketNotFound(MSG_MARKET_NOT_FOUND.format(market_id=market_id))
    summary = summarize(market, market.ordered)
    if market.known_at is not None and market.status == Market.Status.RESOLVED:
        # One more query, only for a market settled with "known at" (docs/domain.md §6.2).
        payload = (
            MarketEvent.objects.filter(market=market, type=MarketEvent.Type.RESOLVED)
            .values_list("payload", flat=True)
            .first()
        )
        reversed_trades = int((payload or {}).get("reversed", 0))
        summary = dataclasses.replace(summary, reversed_trades=reversed_trades)
    return summary


def _matches_nothing(*texts: str | None) -> bool:
    """True when a typed filter holds a character no stored question or category holds (a NUL,
    which PostgreSQL would refuse to compare, a surrogate, a control character: core.text)."""
    return any(text and text_problem(text, allow_format=True) for text in texts)


def search_terms(search: str) -> tuple[str, int | None]:
    """What a market search matches: the text a question contains (case aside; a leading "#"
    and surrounding blanks dropped), and the market number it may be."""
    text = search.strip().lstrip("#")
    number = int(text) if text.isdecimal() and len(text) <= 19 else None  # int() refuses "²"
    return text, number


@lag_tolerant
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
        text, number = search_terms(search)
        condition = Q(question__icontains=text)
        if number is not None:
            condition |= Q(pk=number)
        qs = qs.filter(condition)
    qs = _with_outcomes(qs.order_by("-id"))[max(0, offset) : max(0, offset) + max(1, limit)]
    return [summarize(m, m.ordered) for m in qs]


@lag_tolerant
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


@lag_tolerant
def categories(*, guild_id: int, limit: int = 25) -> list[str]:
    return list(
        Market.objects.filter(guild_id=guild_id)
        .exclude(category="")
        .values_list("category", flat=True)
        .distinct()
        .order_by("category")[:limit]
    )


def market_and_outcome(market_id: int, position: int) -> tuple[Market, list[Outcome], Outcome]:
    """A market, its outcomes in position order and the one at `position` (2 queries)."""
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
    escrow = (
        Account.objects.filter(kind=Account.Kind.ESCROW, market=market)
        .values_list("balance", flat=True)
        .first()
    ) or 0
    holdings = holdings_get()
    if outcome is None:
        plan = holdings.refund_plan(market)
    else:
        if not 0 <= outcome < len(outcomes):
            raise InvalidMarketInput(
                MSG_OUTCOME_NOT_FOUND.format(
                    market_id=market_id, outcome=outcome + 1, count=len(outcomes)
                )
            )
        plan = holdings.resolve_plan(market, outcomes, outcomes[outcome])
    refunded_all = plan.refunded_all
    users = {user: points for user, points in plan.per_user.items() if points}
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
