"""Read queries only the staff dashboard needs (STYLE §1: reads live in selectors, not views).

The general market reads (`market_list`, `market_get`, `votes_get`, `market_events_after`) are
in `markets.selectors` and the price history in `betting.selectors`; these add the newest-first
views of the outbox and the trade log that the live pages start from. Each runs one query.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from betting.models import Trade
from core.directory import member_fallback
from markets.models import MarketEvent
from points.selectors import member_name_subquery


def event_last_id() -> int:
    """The newest outbox id (0 when empty): the cursor a freshly rendered page starts from."""
    return MarketEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def events_latest(*, limit: int = 30, market_id: int | None = None) -> list[MarketEvent]:
    """The newest outbox events, newest first (1 query, with their market's question)."""
    qs = MarketEvent.objects.select_related("market").order_by("-id")
    if market_id is not None:
        qs = qs.filter(market_id=market_id)
    return list(qs[: max(1, min(limit, 200))])


@dataclass(frozen=True)
class TradeRow:
    id: int
    at: dt.datetime
    user_id: int
    kind: str
    outcome: int
    label: str
    amount: int
    shares: int
    fee: int
    price_after: float  # display: the traded outcome's probability after the trade
    user_name: str = ""
    """The member's name from the directory, else "member #1234…" (issue 13)."""


def trades_recent(*, market_id: int, limit: int = 25) -> list[TradeRow]:
    """A market's newest trades, newest first, with the traders' names (1 query)."""
    rows = (
        Trade.objects.filter(market_id=market_id)
        .annotate(member_name=member_name_subquery(guild_field="guild_id", user_field="user_id"))
        .order_by("-id")
        .values_list(
            "id",
            "created_at",
            "user_id",
            "kind",
            "outcome__position",
            "outcome__label",
            "amount",
            "shares",
            "fee",
            "price_after_ppm",
            "member_name",
        )[: max(1, min(limit, 200))]
    )
    return [
        TradeRow(
            tid,
            at,
            user,
            kind,
            pos,
            label,
            amount,
            shares,
            fee,
            ppm / 1_000_000,
            name or member_fallback(user),
        )
        for tid, at, user, kind, pos, label, amount, shares, fee, ppm, name in rows
    ]
