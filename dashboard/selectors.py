"""Read queries only the staff dashboard needs (STYLE §1: reads live in selectors, not views).

The general market reads (`market_list`, `market_get`, `votes_get`, `market_events_after`) are
in `markets.selectors` and the price history in `betting.selectors`; these add the newest-first
views of the outbox and the trade log that the live pages start from. Each runs one query.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Count, F, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce

from betting.models import Trade
from core.directory import member_fallback
from core.replicas import lag_tolerant
from markets.models import Dispute, Market, MarketEvent
from points.selectors import member_name_subquery


def event_last_id() -> int:
    """The newest outbox id (0 when empty): the cursor a freshly rendered page starts from."""
    return MarketEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


@lag_tolerant
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


@lag_tolerant
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


# --- Proposed results (docs/domain.md §6.1) --------------------------------------------------


@dataclass(frozen=True)
class ProposalRow:
    """A market's proposed result, as the tiles and the market page show it."""

    market_id: int
    label: str
    proposed_by: int | None
    proposer_name: str
    deadline: dt.datetime | None
    """When it pays out unless disputed; None: it waits for a second resolver."""
    disputed: bool
    disputes: int
    """Disputes of this proposal (not of an earlier, undone one)."""


def proposals_get(*, market_ids: Iterable[int]) -> dict[int, ProposalRow]:
    """market id → its proposal, for those of `market_ids` that are `resolving` (1 query; none
    when no ids)."""
    ids = {int(i) for i in market_ids}
    if not ids:
        return {}
    disputes = (
        Dispute.objects.filter(market=OuterRef("pk"), proposal_round=OuterRef("proposal_round"))
        .order_by()
        .values("market")
        .annotate(n=Count("id"))
        .values("n")[:1]
    )
    rows = (
        Market.objects.filter(pk__in=ids, status=Market.Status.RESOLVING)
        .annotate(
            proposer_name=member_name_subquery(guild_field="guild_id", user_field="proposed_by_id"),
            dispute_count=Coalesce(Subquery(disputes, output_field=IntegerField()), 0),
        )
        .values_list(
            "pk",
            "proposed_outcome__label",
            "proposed_by_id",
            "proposer_name",
            "dispute_deadline",
            "disputed_at",
            "dispute_count",
        )
    )
    return {
        pk: ProposalRow(
            pk,
            label or "?",
            by,
            (name or member_fallback(by)) if by else "",
            deadline,
            disputed_at is not None,
            count,
        )
        for pk, label, by, name, deadline, disputed_at, count in rows
    }


@dataclass(frozen=True)
class DisputeRow:
    user_id: int
    name: str
    reason: str
    at: dt.datetime


def disputes_get(*, market_id: int) -> list[DisputeRow]:
    """The disputes of a market's current proposal, oldest first, with names (1 query)."""
    rows = (
        Dispute.objects.filter(
            market_id=market_id,
            market__status=Market.Status.RESOLVING,
            proposal_round=F("market__proposal_round"),
        )
        .annotate(
            member_name=member_name_subquery(guild_field="market__guild_id", user_field="user_id")
        )
        .order_by("id")
        .values_list("user_id", "member_name", "reason", "created_at")
    )
    return [DisputeRow(u, name or member_fallback(u), reason, at) for u, name, reason, at in rows]
