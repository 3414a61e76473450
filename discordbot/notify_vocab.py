"""The notifier's vocabulary: its lanes and statuses, the events it plans for, the rows it
queues, and the small pieces its delivery loop uses (`discordbot.notifier`)."""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict

import discord

from markets.models import MarketEvent
from markets.selectors import MarketSummary

from .models import NotificationDelivery

SKIP_CODES = {50007, 10003, 10008}
"""Cannot send messages to this user; unknown channel; unknown message: sending again won't
help. Every other refusal is retried."""
CACHE_SIZE = 10_000
"""Entries kept in the notifier's in-memory maps (DM channels, refresh times)."""
SENT, SKIPPED, FAILED = (
    NotificationDelivery.Status.SENT,
    NotificationDelivery.Status.SKIPPED,
    NotificationDelivery.Status.FAILED,
)
CHANNEL, DM = NotificationDelivery.Lane.CHANNEL, NotificationDelivery.Lane.DM
LANES = (CHANNEL, DM)
PLANNED = (
    MarketEvent.Type.CREATED,
    MarketEvent.Type.CLOSED,
    MarketEvent.Type.PROPOSED,
    MarketEvent.Type.DISPUTED,
    MarketEvent.Type.UNDONE,
    MarketEvent.Type.RESOLVED,
    MarketEvent.Type.CANCELLED,
)
"""The events that owe Discord something besides a refresh (trades only refresh)."""


def dispute_round(event: MarketEvent) -> int | str | None:
    """The proposal whose disputers an event concerns: the one undone, or ("last") the one a
    resolution after a dispute decided."""
    if event.type == MarketEvent.Type.UNDONE:
        return int(event.payload.get("round") or 0)
    if event.type == MarketEvent.Type.RESOLVED and event.payload.get("disputed"):
        return "last"
    if event.type == MarketEvent.Type.CANCELLED and event.payload.get("dispute_expired"):
        return int(event.payload.get("round") or 0)
    return None


class Bounded(OrderedDict):
    """A dict that forgets its oldest entries past `size` (least recently set)."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        super().__init__()
        self.size = size

    def __setitem__(self, key: object, value: object) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class Postpone(Exception):
    """Discord asked the lane to wait (`pause` seconds) or the send failed transiently."""

    def __init__(self, reason: str, *, delay: float, pause_lane: bool, count_attempt: bool):
        super().__init__(reason)
        self.reason = reason
        self.delay = delay
        self.pause_lane = pause_lane
        self.count_attempt = count_attempt


class AlreadyPosted(Exception):
    """The market already has a copy in the announcement channel."""


class Stale(Exception):
    """What a queued DM says is no longer true (the creator's "has closed" DM after the market
    was proposed or decided)."""


def channel_row(channel_id: int, kind: str, m: MarketSummary) -> dict:
    return {
        "target": f"channel:{channel_id}",
        "lane": CHANNEL,
        "kind": kind,
        "market_id": m.id,
    }


def dm_row(user_id: int, content: str, m: MarketSummary) -> dict:
    return {
        "target": f"dm:{user_id}",
        "lane": DM,
        "kind": NotificationDelivery.Kind.DM,
        "market_id": m.id,
        "content": content,
    }


def fills_row(
    user_id: int,
    content: str,
    m: MarketSummary,
    *,
    not_before: dt.datetime,
    merge_into: int | None = None,
    alone: str = "",
) -> dict:
    """A DM about a member's order fills on one market (`notifier.Notifier.fills_rows`): sent
    at `not_before`, or — `merge_into` a queued one not yet due — that row's text becomes
    `content`; if that row went out meanwhile, this row is queued with `alone`, the text of
    this event's fill only."""
    return {
        "target": f"dm:{user_id}",
        "lane": DM,
        "kind": NotificationDelivery.Kind.FILLS,
        "market_id": m.id,
        "content": content,
        "not_before": not_before,
        "merge_into": merge_into,
        "alone": alone,
    }


def retry_after(exc: discord.HTTPException) -> float:
    """Seconds Discord asked to wait: the Retry-After header (the body's `retry_after` is the
    same figure, more precise, but discord.py does not keep the body)."""
    try:
        return max(0.05, float(exc.response.headers.get("Retry-After", "1")))
    except (AttributeError, TypeError, ValueError):
        return 1.0
