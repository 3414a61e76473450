"""Reads the bot needs beyond the market and ledger selectors: a member's holdings in one market,
each trader's result once a market settles, and the notifier's own bookkeeping."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from django.conf import settings
from django.db.models import Count, F, Q, Sum, Window
from django.db.models.functions import RowNumber

from betting import selectors as betting_selectors
from betting.models import Position, Trade
from core.replicas import lag_tolerant
from markets import selectors as market_selectors
from markets.models import Dispute, Market, MarketEvent, Outcome
from markets.selectors import MarketSummary
from points import selectors as points_selectors
from points.models import GuildSettings

from . import parsing
from .models import MemberPreference
from .results import (
    EventContext,
    HolderPage,
    HolderRow,
    Holders,
    Holding,
    LateTrades,
    MarketPage,
    PositionInMarket,
    PostContext,
    Predictor,
    TraderResult,
)


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


@lag_tolerant
def top_predictors(*, market_id: int, limit: int = 3) -> list[Predictor]:
    """A pool's biggest stakes, largest first (1 query), for the market message."""
    rows = (
        Position.objects.filter(market_id=market_id, points_spent__gt=0)
        .select_related("outcome")
        .order_by("-points_spent", "id")[:limit]
    )
    return [Predictor(p.user_id, p.outcome.label, p.points_spent) for p in rows]


def top_holders(*, guild_id: int, market_id: int, per_outcome: int = 3) -> Holders:
    """The `per_outcome` biggest holders of each outcome of a market-maker market, with their
    names, and the limit orders waiting on it (3 queries)."""
    rank = Window(RowNumber(), partition_by=F("outcome_id"), order_by=[F("shares").desc(), "id"])
    rows = [
        HolderRow(user, outcome, held)
        for user, outcome, held in Position.objects.filter(market_id=market_id, shares__gt=0)
        .annotate(rank=rank)
        .filter(rank__lte=per_outcome)
        .order_by("outcome__position", "-shares", "id")
        .values_list("user_id", "outcome__position", "shares")
    ]
    names = points_selectors.member_names(guild_id=guild_id, user_ids=[r.user_id for r in rows])
    return Holders(rows, names, tuple(betting_selectors.resting_levels(market_id=market_id)))


def holders_page(*, guild_id: int, market: object, page: int, page_size: int) -> HolderPage:
    """One page of every holder of a market of this guild (4 queries); a page past the end
    shows the last page. Pool stakes count as holdings too (their points staked)."""
    summary = market_selectors.market_get(market_id=parsing.market_ref(market), guild_id=guild_id)
    held = "shares" if summary.mechanism == "amm" else "points_spent"
    qs = Position.objects.filter(market_id=summary.id, **{f"{held}__gt": 0})
    total = qs.count()
    pages = max(1, -(-total // page_size))
    page = max(0, min(page, pages - 1))
    rows = [
        HolderRow(user, outcome, amount)
        for user, outcome, amount in qs.order_by("outcome__position", f"-{held}", "id").values_list(
            "user_id", "outcome__position", held
        )[page * page_size : (page + 1) * page_size]
    ]
    names = points_selectors.member_names(guild_id=guild_id, user_ids=[r.user_id for r in rows])
    return HolderPage(rows, names, page, pages, total, page * page_size)


def market_card(
    *, guild_id: int, market: object
) -> tuple[MarketSummary, list[Predictor] | Holders]:
    """A market of this guild and what the market message shows of who holds it: a pool's top
    predictors, or each outcome's top holders of a market-maker market."""
    summary = market_selectors.market_get(market_id=parsing.market_ref(market), guild_id=guild_id)
    return summary, card_people(guild_id=guild_id, summary=summary)


def card_people(*, guild_id: int, summary: MarketSummary) -> list[Predictor] | Holders:
    if summary.mechanism == "parimutuel":
        return top_predictors(market_id=summary.id)
    return top_holders(guild_id=guild_id, market_id=summary.id)


@lag_tolerant
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


@lag_tolerant
def category_complete(*, guild_id: int, prefix: str) -> str | None:
    """The guild's category that starts with `prefix` (a page button carries a long category
    cut to fit its custom_id), or None."""
    lowered = prefix.lower()
    for category in market_selectors.categories(guild_id=guild_id, limit=1000):
        if category.lower().startswith(lowered):
            return category
    return None


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


orders_ended = betting_selectors.orders_ended
"""The limit orders an event ended on their own, for their members' DMs (the notifier)."""


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


def order_fills(
    *, market_id: int, user_id: int, from_event_id: int, to_event_id: int
) -> list[dict]:
    """The `trade` payloads of a member's limit order fills (DOMAIN §4.7) on one market, from
    one outbox event to another (both included), in order (1 query)."""
    return list(
        MarketEvent.objects.filter(
            market_id=market_id,
            type=MarketEvent.Type.TRADE,
            id__gte=from_event_id,
            id__lte=to_event_id,
            payload__user_id=str(user_id),
            payload__has_key="order_id",
        )
        .order_by("id")
        .values_list("payload", flat=True)
    )


def late_trades(*, market_id: int, known_at: dt.datetime) -> dict[int, LateTrades]:
    """Per member, the trades of a market made after `known_at` and not yet reversed (1
    query)."""
    rows = (
        Trade.objects.filter(market_id=market_id, created_at__gt=known_at, reversal__isnull=True)
        .values_list("user_id")
        .annotate(
            n=Count("id"),
            spent=Sum("amount", filter=~Q(kind=Trade.Kind.SELL), default=0),
            # A sale paid its member its amount less its fee, and that is what goes back.
            received=Sum(F("amount") - F("fee"), filter=Q(kind=Trade.Kind.SELL), default=0),
        )
        .order_by()
    )
    return {user: LateTrades(n, spent, received) for user, n, spent, received in rows}


def events_backlog(*, after_id: int) -> int:
    """Outbox events the notifier has not finished yet (1 query on the primary key)."""
    return MarketEvent.objects.filter(id__gt=after_id).count()


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
        settings=gs,
        moderator_channel_id=gs.moderator_channel_id,
        resolver_role_ids=tuple(int(r) for r in gs.resolver_role_ids or []),
        disputers=disputers,
    )


def post_context(*, event_id: int, guild_id: int, market_id: int | None = None) -> PostContext:
    event_type, payload = event_payload(event_id=event_id)
    gs = guild_settings_or_defaults(guild_id=guild_id)
    return PostContext(
        type=event_type,
        payload=payload,
        settings=gs,
        resolver_role_ids=tuple(int(r) for r in gs.resolver_role_ids or []),
        results=(
            trader_results(market_id=market_id)
            if market_id is not None and event_type == MarketEvent.Type.RESOLVED
            else []
        ),
    )


def event_payload(*, event_id: int) -> tuple[str, dict]:
    """An outbox event's type and payload (a settlement summary is rendered from them)."""
    event = MarketEvent.objects.only("type", "payload").get(pk=event_id)
    return event.type, event.payload or {}
