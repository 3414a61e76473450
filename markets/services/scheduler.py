"""The scheduler's work (DOMAIN §6): closing markets at `closes_at`, paying out proposed results
whose dispute window ended undisputed (docs/domain.md §6.1), and auto-refunding markets left
unresolved `auto_refund_hours` after closing."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from points.models import GuildSettings
from points.services import guild_settings_get_or_create
from points.usecase import use_case

from ..models import Market
from .base import market_lock
from .lifecycle import close
from .proposal import proposal_settle_due
from .settlement import cancel


@dataclass
class TickReport:
    closed: list[int] = field(default_factory=list)
    refunded: list[int] = field(default_factory=list)
    settled: list[int] = field(default_factory=list)
    """Proposed results paid out because their dispute window ended undisputed."""

    def __str__(self) -> str:
        return (
            f"closed {len(self.closed)}, settled {len(self.settled)} undisputed, "
            f"auto-refunded {len(self.refunded)}"
        )


@use_case()
def _tick_close(market_id: int, now: dt.datetime) -> bool:
    market = market_lock(market_id)
    if market.status != Market.Status.OPEN or market.closes_at > now:
        return False  # another process got here first
    close(
        market,
        now=now,
        actor_id=None,
        actor_user_id=None,
        reason="",
        request_key=None,
        automatic=True,
    )
    return True


@use_case()
def _tick_settle(market_id: int, now: dt.datetime) -> bool:
    return proposal_settle_due(market_lock(market_id), now)


@use_case()
def _tick_refund(market_id: int, now: dt.datetime) -> bool:
    market = market_lock(market_id)
    hours = guild_settings_get_or_create(guild_id=market.guild_id).auto_refund_hours
    due = market.closed_at is not None and market.closed_at + dt.timedelta(hours=hours) <= now
    if market.status != Market.Status.CLOSED or not due:
        return False
    cancel(
        market,
        actor_id=None,
        actor_user_id=None,
        reason=f"Not resolved within {hours} hours of closing: refunded automatically",
        request_key=None,
        automatic=True,
    )
    return True


def markets_tick(*, now: dt.datetime | None = None) -> TickReport:
    """Close markets whose time is up, pay out proposals whose dispute window ended undisputed
    and cancel (refund) markets still unresolved `auto_refund_hours` after closing (DOMAIN §6,
    docs/domain.md §6.1). Each market is handled in its own durable transaction under its row
    lock, re-checked after locking, so several processes may tick at once and each market is
    closed, settled or refunded exactly once."""
    now = now or timezone.now()
    report = TickReport()
    due = Market.objects.filter(status=Market.Status.OPEN, closes_at__lte=now).order_by("pk")
    for market_id in due.values_list("pk", flat=True):
        if _tick_close(market_id, now):
            report.closed.append(market_id)
    due_proposals = Market.objects.filter(
        status=Market.Status.RESOLVING, disputed_at__isnull=True, dispute_deadline__lte=now
    ).order_by("pk")
    for market_id in due_proposals.values_list("pk", flat=True):
        if _tick_settle(market_id, now):
            report.settled.append(market_id)
    # Pre-filter in Python on each guild's `auto_refund_hours` (2 queries) so only markets that
    # are due get locked.
    candidates = list(
        Market.objects.filter(
            status=Market.Status.CLOSED, closed_at__lte=now - dt.timedelta(hours=1)
        )
        .order_by("pk")
        .values_list("pk", "guild_id", "closed_at")
    )
    hours = dict(
        GuildSettings.objects.filter(guild_id__in={g for _, g, _ in candidates}).values_list(
            "guild_id", "auto_refund_hours"
        )
    )
    for market_id, guild_id, closed_at in candidates:
        limit = hours.get(guild_id, settings.PM_GUILD_DEFAULTS["auto_refund_hours"])
        if closed_at is None:
            continue
        if closed_at + dt.timedelta(hours=limit) <= now and _tick_refund(market_id, now):
            report.refunded.append(market_id)
    return report
