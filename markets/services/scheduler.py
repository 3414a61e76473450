"""The scheduler's work (DOMAIN §6): closing markets at `closes_at`, paying out proposed results
whose dispute window ended undisputed (docs/domain.md §6.1), auto-refunding markets left
unresolved `auto_refund_hours` after closing, and bounding a dispute's hold: moderators are
reminded halfway through `dispute_hold_hours`, and at its end the market is cancelled and
refunded."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from points.models import GuildSettings
from points.services import guild_settings_get_or_create
from points.usecase import use_case

from ..holdings import holdings_get
from ..models import Market, MarketEvent
from .base import event_write, market_lock
from .lifecycle import close
from .proposal import proposal_settle_due
from .settlement import cancel


@dataclass
class TickReport:
    closed: list[int] = field(default_factory=list)
    refunded: list[int] = field(default_factory=list)
    settled: list[int] = field(default_factory=list)
    """Proposed results paid out because their dispute window ended undisputed."""
    reminded: list[int] = field(default_factory=list)
    """Disputed markets whose moderators were reminded (half the hold is gone)."""
    expired: list[int] = field(default_factory=list)
    """Disputed markets cancelled and refunded because moderators did not decide in time."""
    orders_expired: int = 0
    """Limit orders released because their expiry passed (DOMAIN §4.7)."""
    seasons: list[int] = field(default_factory=list)
    """Seasons closed by this tick (docs/domain.md §10)."""

    def __str__(self) -> str:
        return (
            f"closed {len(self.closed)}, settled {len(self.settled)} undisputed, "
            f"auto-refunded {len(self.refunded)}, disputes reminded {len(self.reminded)}, "
            f"disputes expired {len(self.expired)}, orders expired {self.orders_expired}, "
            f"seasons closed {len(self.seasons)}"
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


MSG_DISPUTE_EXPIRED = (
    "Disputed, and moderators did not decide within {hours} hours: cancelled and refunded "
    "automatically"
)


def _hold(market: Market) -> int:
    return guild_settings_get_or_create(guild_id=market.guild_id).dispute_hold_hours


@use_case()
def _tick_dispute_expire(market_id: int, now: dt.datetime) -> bool:
    market = market_lock(market_id)
    if market.status != Market.Status.RESOLVING or market.disputed_at is None:
        return False
    hours = _hold(market)
    if market.disputed_at + dt.timedelta(hours=hours) > now:
        return False
    cancel(
        market,
        actor_id=None,
        actor_user_id=None,
        reason=MSG_DISPUTE_EXPIRED.format(hours=hours),
        request_key=None,
        automatic=True,
        extra={"dispute_expired": True, "round": market.proposal_round},
    )
    return True


@use_case()
def _tick_dispute_remind(market_id: int, now: dt.datetime) -> bool:
    """Once per proposal: the moderators' ping again, half the hold after the first dispute."""
    market = market_lock(market_id)
    if market.status != Market.Status.RESOLVING or market.disputed_at is None:
        return False
    hours = _hold(market)
    if market.disputed_at + dt.timedelta(hours=hours) / 2 > now:
        return False
    key = f"dispute-remind:{market.pk}:{market.proposal_round}"
    if MarketEvent.objects.filter(idempotency_key=key).exists():
        return False
    proposed = market.proposed_outcome
    event_write(
        market,
        MarketEvent.Type.DISPUTED,
        {
            "reminder": True,
            "first": True,
            "label": proposed.label if proposed else "?",
            "outcome": proposed.position if proposed else None,
            "disputes": market.disputes.filter(proposal_round=market.proposal_round).count(),
            "round": market.proposal_round,
            "hold_hours": hours,
            "deadline": (market.disputed_at + dt.timedelta(hours=hours)).isoformat(),
        },
        natural_key=key,
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
    report.orders_expired = holdings_get().orders_expire(now)
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
    # A dispute holds a market at most the guild's `dispute_hold_hours` (docs/domain.md §6.1).
    held = Market.objects.filter(status=Market.Status.RESOLVING, disputed_at__isnull=False)
    held_rows = list(held.order_by("pk").values_list("pk", "guild_id", "disputed_at"))
    holds = dict(
        GuildSettings.objects.filter(guild_id__in={g for _, g, _ in held_rows}).values_list(
            "guild_id", "dispute_hold_hours"
        )
    )
    for market_id, guild_id, disputed_at in held_rows:
        if disputed_at is None:  # pragma: no cover - filtered above
            continue
        hold = dt.timedelta(
            hours=holds.get(guild_id, settings.PM_GUILD_DEFAULTS["dispute_hold_hours"])
        )
        if disputed_at + hold <= now:
            if _tick_dispute_expire(market_id, now):
                report.expired.append(market_id)
        elif disputed_at + hold / 2 <= now and _tick_dispute_remind(market_id, now):
            report.reminded.append(market_id)
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
    # Last, after this tick's settlements: the seasons that ended (docs/domain.md §10).
    for hook in _TICK_HOOKS:
        report.seasons.extend(hook(now))
    return report


_TICK_HOOKS: list[Callable[[dt.datetime], list[int]]] = []


def tick_hook_register(hook: Callable[[dt.datetime], list[int]]) -> None:
    """Run `hook(now)` at the end of every tick: the app that keeps seasons' tables (`betting`)
    closes due seasons here, without `markets` importing it. Idempotent."""
    if hook not in _TICK_HOOKS:
        _TICK_HOOKS.append(hook)
