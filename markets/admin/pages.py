"""What the moderators' decision pages read before anyone decides (docs/domain.md §6.1): every
outcome's payouts, where a proposed result stands, its disputes, and the staff member's own
position (from the app that keeps positions, through `markets.admin_hooks`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib import admin
from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone

from core.directory import member_fallback
from points.selectors import member_name_subquery, member_names, staff_discord_id

from .. import selectors
from ..admin_hooks import Holding, own_holdings
from ..models import Dispute, Market, MarketEvent, Outcome

PREVIEW_ROWS = 50
"""Recipients listed per preview; the page says how many more there are."""

DECIDABLE = (Market.Status.CLOSED, Market.Status.RESOLVING)
"""A market a moderator may resolve directly (force): closed, or with a proposed result."""


def page_context(
    model_admin: admin.ModelAdmin[Market], request: HttpRequest, **extra: Any
) -> dict[str, Any]:
    return {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "changelist_url": reverse("admin:markets_market_changelist"),
        **extra,
    }


def change_url(market_id: int) -> str:
    return reverse("admin:markets_market_change", args=[market_id])


def market_or_404(object_id: int) -> Market:
    if not 0 < object_id < 2**63:
        raise Http404("No such market.")
    return get_object_or_404(Market, pk=object_id)


def already_submitted(key: str) -> bool:
    """The confirmation with this key already changed the market: nothing more will happen
    (the service would replay), so say so and write no second `LogEntry`."""
    return MarketEvent.objects.filter(request_key=key).exists()


@dataclass(frozen=True)
class OutcomePreview:
    position: int
    label: str
    probability: float  # display
    preview: selectors.SettlementPreview
    payments: list[tuple[int, str, int]]
    """The listed recipients: (user id, name, points), the largest first."""


def named_payments(
    guild_id: int, preview: selectors.SettlementPreview | None
) -> list[tuple[int, str, int]]:
    """The `PREVIEW_ROWS` largest payments with the members' names (1 query; issue 13)."""
    if preview is None:
        return []
    shown = list(preview.payments)[:PREVIEW_ROWS]
    names = member_names(guild_id=guild_id, user_ids=[user_id for user_id, _ in shown])
    return [(user_id, names[user_id], amount) for user_id, amount in shown]


# --- What a moderator reads before deciding (docs/domain.md §6.1) -------------------------------


def in_words(delta: dt.timedelta) -> str:
    """A short duration for the back office: "3 h 20 min", "14 min", "under a minute"."""
    minutes = int(delta.total_seconds() // 60)
    if minutes < 1:
        return "under a minute"
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def proposal_state(market: Market, now: dt.datetime | None = None) -> str:
    """Where a proposed result stands, in words: held for moderators, waiting for a second
    resolver, or when it pays out. Empty for a market that is not `resolving`."""
    if market.status != Market.Status.RESOLVING:
        return ""
    if market.disputed_at is not None:
        return "disputed: held for moderators"
    if market.dispute_deadline is None:
        return "waits for a second resolver (the proposer holds a position)"
    left = market.dispute_deadline - (now or timezone.now())
    if left.total_seconds() <= 0:
        return "window ended: pays out at the scheduler's next tick"
    return f"pays out in {in_words(left)} unless disputed"


@dataclass(frozen=True)
class DisputeRow:
    user_id: int
    name: str
    reason: str
    created_at: dt.datetime


def disputes_of(market: Market) -> list[DisputeRow]:
    """The disputes of the market's current proposal, oldest first, with the members' names
    (1 query)."""
    rows = (
        Dispute.objects.filter(market=market, proposal_round=market.proposal_round)
        .annotate(
            member_name=member_name_subquery(guild_field="market__guild_id", user_field="user_id")
        )
        .order_by("id")
        .values_list("user_id", "member_name", "reason", "created_at")
    )
    return [
        DisputeRow(user, name or member_fallback(user), reason, at)
        for user, name, reason, at in rows
    ]


@dataclass(frozen=True)
class OwnPosition:
    """The staff member's own stake in the market, when their account is linked to a Discord
    member (`points.StaffLink`); the back office cannot know it otherwise."""

    linked: bool
    discord_id: int | None = None
    name: str = ""
    holdings: Sequence[Holding] = ()

    @property
    def holds(self) -> bool:
        return any(h.shares or h.points_spent > h.points_received for h in self.holdings)


def own_position(user_id: int | None, market: Market) -> OwnPosition:
    discord_id = staff_discord_id(user_id=user_id)
    if discord_id is None:
        return OwnPosition(linked=False)
    name = member_names(guild_id=market.guild_id, user_ids=[discord_id])[discord_id]
    holdings = own_holdings(market.pk, discord_id)
    return OwnPosition(True, discord_id, name, tuple(holdings))


def outcome_previews(market: Market, outcomes: list[Outcome]) -> list[OutcomePreview]:
    probabilities = selectors.probabilities(market.mechanism, outcomes)
    previews = []
    for o, p in zip(outcomes, probabilities, strict=True):
        preview = selectors.settlement_preview(market_id=market.pk, outcome=o.position)
        previews.append(
            OutcomePreview(
                o.position, o.label, p, preview, named_payments(market.guild_id, preview)
            )
        )
    return previews


def proposal_context(request: HttpRequest, market: Market) -> dict[str, Any]:
    """What both decision pages show: the proposal (if any), its disputes, the staff member's
    own position."""
    proposer = None
    if market.proposed_by_id:
        proposer = member_names(guild_id=market.guild_id, user_ids=[market.proposed_by_id])[
            market.proposed_by_id
        ]
    return {
        "proposed": market.proposed_outcome if market.status == Market.Status.RESOLVING else None,
        "proposer": proposer,
        "proposal_state": proposal_state(market),
        "disputes": disputes_of(market) if market.status == Market.Status.RESOLVING else [],
        "own": own_position(request.user.pk, market),
        "stafflink_url": reverse("admin:points_stafflink_changelist"),
    }
