"""Reads the bot needs beyond the market and ledger selectors: a member's holdings in one market,
each trader's result once a market settles, and the notifier's own bookkeeping."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings

from betting import selectors as betting_selectors
from betting.models import Position
from markets import selectors as market_selectors
from markets.models import Dispute, Market, MarketEvent, Outcome
from markets.selectors import MarketSummary
from points import selectors as points_selectors
from points.models import GuildSettings

from . import parsing, render
from .models import MemberPreference, NotificationCursor


@dataclass(frozen=True)
class Holding:
    outcome: int
    label: str
    shares: int
    points_spent: int
    points_received: int
    value: int
    """`betting.selectors.position_value`: the same worth `/portfolio` shows."""


def holdings_in_market(*, market_id: int, user_id: int) -> list[Holding]:
    """The member's positions in one market with their current value (3 queries)."""
    market = Market.objects.filter(pk=market_id).first()
    if market is None:
        return []
    outcomes = list(Outcome.objects.filter(market_id=market_id).order_by("position"))
    by_pk = {o.pk: o for o in outcomes}
    rows = Position.objects.filter(market_id=market_id, user_id=user_id).order_by("outcome_id")
    out = []
    for p in rows:
        o = by_pk[p.outcome_id]
        value = betting_selectors.position_value(market, outcomes, p)
        if p.shares or p.points_spent:
            out.append(
                Holding(o.position, o.label, p.shares, p.points_spent, p.points_received, value)
            )
    return sorted(out, key=lambda h: h.outcome)


@dataclass(frozen=True)
class PositionInMarket:
    market: MarketSummary
    holdings: list[Holding]
    balance: int | None


def position_in_market(*, guild_id: int, market: object, user_id: int) -> PositionInMarket:
    """A market of this guild, the member's holdings in it and their balance (5 queries)."""
    summary = market_selectors.market_get(market_id=parsing.market_ref(market), guild_id=guild_id)
    return PositionInMarket(
        market=summary,
        holdings=holdings_in_market(market_id=summary.id, user_id=user_id),
        balance=points_selectors.balance_get(guild_id=guild_id, user_id=user_id),
    )


LIST_STATUSES = {
    "open": ["open"],
    "closed": ["closed"],
    "resolving": ["resolving"],
    "resolved": ["resolved"],
    "cancelled": ["cancelled"],
    "settled": ["resolved", "cancelled"],
    "all": None,
}


@dataclass(frozen=True)
class MarketPage:
    markets: list[MarketSummary]
    page: int
    pages: int
    total: int


@dataclass(frozen=True)
class Predictor:
    user_id: int
    label: str
    staked: int


def top_predictors(*, market_id: int, limit: int = 3) -> list[Predictor]:
    """A pool's biggest stakes, largest first (1 query), for the market message."""
    rows = (
        Position.objects.filter(market_id=market_id, points_spent__gt=0)
        .select_related("outcome")
        .order_by("-points_spent", "id")[:limit]
    )
    return [Predictor(p.user_id, p.outcome.label, p.points_spent) for p in rows]


def market_card(*, guild_id: int, market: object) -> tuple[MarketSummary, list[Predictor]]:
    """A market of this guild and, for a pool, its top predictors (what the market message
    shows)."""
    summary = market_selectors.market_get(market_id=parsing.market_ref(market), guild_id=guild_id)
    top = top_predictors(market_id=summary.id) if summary.mechanism == "parimutuel" else []
    return summary, top


def market_page(
    *, guild_id: int, status: str, category: str, page: int, page_size: int
) -> MarketPage:
    """One page of the guild's markets, newest first (3 queries). A page past the end shows
    the last page."""
    statuses = LIST_STATUSES.get(status, ["open"])
    total = market_selectors.market_count(
        guild_id=guild_id, status=statuses, category=category or None
    )
    pages = max(1, -(-total // page_size))
    page = max(0, min(page, pages - 1))
    markets = market_selectors.market_list(
        guild_id=guild_id,
        status=statuses,
        category=category or None,
        limit=page_size,
        offset=page * page_size,
    )
    return MarketPage(markets=markets, page=page, pages=pages, total=total)


def category_complete(*, guild_id: int, prefix: str) -> str | None:
    """The guild's category that starts with `prefix` (a page button carries a long category
    cut to fit its custom_id), or None."""
    lowered = prefix.lower()
    for category in market_selectors.categories(guild_id=guild_id, limit=1000):
        if category.lower().startswith(lowered):
            return category
    return None


@dataclass(frozen=True)
class TraderResult:
    user_id: int
    spent: int
    received: int
    payout: int

    @property
    def net(self) -> int:
        return self.payout + self.received - self.spent


def trader_results(*, market_id: int) -> list[TraderResult]:
    """Every trader of a market with what they put in, took out by selling, and were paid at
    settlement (1 query), by user id."""
    totals: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    rows = Position.objects.filter(market_id=market_id).values_list(
        "user_id", "points_spent", "points_received", "payout"
    )
    for user_id, spent, received, payout in rows:
        t = totals[user_id]
        t[0] += spent
        t[1] += received
        t[2] += payout
    return [TraderResult(u, *totals[u]) for u in sorted(totals)]


def dm_opt_outs(*, guild_id: int, user_ids: list[int]) -> set[int]:
    """Members among `user_ids` who turned DM notifications off (1 query)."""
    return set(
        MemberPreference.objects.filter(
            guild_id=guild_id, user_id__in=user_ids, dm_notifications=False
        ).values_list("user_id", flat=True)
    )


def dm_enabled(*, guild_id: int, user_id: int) -> bool:
    row = MemberPreference.objects.filter(guild_id=guild_id, user_id=user_id).first()
    return True if row is None else row.dm_notifications


def cursor_position(*, name: str) -> int:
    return (
        NotificationCursor.objects.filter(name=name).values_list("last_event_id", flat=True).first()
        or 0
    )


def events_backlog(*, after_id: int) -> int:
    """Outbox events the notifier has not finished yet (1 query on the primary key)."""
    return MarketEvent.objects.filter(id__gt=after_id).count()


@dataclass(frozen=True)
class EventContext:
    """Everything the notifier needs to announce one event (one trip to the database)."""

    market: MarketSummary
    announce_channel_id: int | None
    auto_refund_hours: int
    results: list[TraderResult]
    opted_out: set[int]
    how: str = ""
    """Who resolves the market and how (`render.how_text`)."""
    moderator_channel_id: int | None = None
    resolver_role_ids: tuple[int, ...] = ()
    disputers: list[int] = field(default_factory=list)
    """Members who disputed the proposal the event is about, in the order they did."""


def guild_settings_or_defaults(*, guild_id: int) -> GuildSettings:
    """The guild's settings, or (never saved) the defaults a new guild would get: a read."""
    gs = points_selectors.guild_settings_get(guild_id=guild_id)
    return gs or GuildSettings(guild_id=guild_id, **settings.PM_GUILD_DEFAULTS)


def disputers_of(*, market_id: int, proposal_round: int) -> list[int]:
    """Who disputed one proposal of a market, first first (1 query)."""
    return list(
        Dispute.objects.filter(market_id=market_id, proposal_round=proposal_round)
        .order_by("id")
        .values_list("user_id", flat=True)
    )


def event_context(
    *,
    event_id: int,
    market_id: int,
    guild_id: int,
    with_results: bool,
    dispute_round: int | str | None = None,
) -> EventContext:
    """The market, the guild's announcement settings, who resolves it and how, for settlements
    and proposals every trader's result and notification choice, and the members who disputed
    proposal `dispute_round` ("last": the market's latest proposal). (What was already queued
    for the event is the delivery queue's business: one row per event and target.)"""
    summary = market_selectors.market_get(market_id=market_id)
    gs = guild_settings_or_defaults(guild_id=guild_id)
    results = trader_results(market_id=market_id) if with_results else []
    if dispute_round == "last":
        dispute_round = Market.objects.values_list("proposal_round", flat=True).get(pk=market_id)
    disputers = (
        disputers_of(market_id=market_id, proposal_round=int(dispute_round))
        if dispute_round is not None
        else []
    )
    users = [r.user_id for r in results] + [summary.creator_id] + disputers
    return EventContext(
        market=summary,
        announce_channel_id=gs.announce_channel_id,
        auto_refund_hours=gs.auto_refund_hours,
        results=results,
        opted_out=dm_opt_outs(guild_id=guild_id, user_ids=users),
        how=render.how_text(gs, creator_id=summary.creator_id),
        moderator_channel_id=gs.moderator_channel_id,
        resolver_role_ids=tuple(int(r) for r in gs.resolver_role_ids or []),
        disputers=disputers,
    )


@dataclass(frozen=True)
class PostContext:
    """What a channel post about a resolution event is rendered from when it is sent."""

    type: str
    payload: dict
    how: str
    resolver_role_ids: tuple[int, ...]


def post_context(*, event_id: int, guild_id: int, creator_id: int) -> PostContext:
    event_type, payload = event_payload(event_id=event_id)
    gs = guild_settings_or_defaults(guild_id=guild_id)
    return PostContext(
        type=event_type,
        payload=payload,
        how=render.how_text(gs, creator_id=creator_id),
        resolver_role_ids=tuple(int(r) for r in gs.resolver_role_ids or []),
    )


def event_payload(*, event_id: int) -> tuple[str, dict]:
    """An outbox event's type and payload (a settlement summary is rendered from them)."""
    event = MarketEvent.objects.only("type", "payload").get(pk=event_id)
    return event.type, event.payload or {}
