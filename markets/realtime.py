"""Publishing market events to the dashboard after commit (STYLE §6).

This is the publish side only: services call `event_publish_on_commit(event)` inside their
transaction; the event is sent to the channel layer group `DASHBOARD_GROUP` only once the
transaction commits; whoever listens (the `dashboard` app's consumer) is not imported here. A
failure (Redis down or hanging) is logged and counted (`pm_dashboard_publish_failures_total`) and
never fails the write: the dashboard replays missed events from the `MarketEvent` table when it
reconnects, so a lost push costs a little latency, never data.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from core import signals

from .models import MarketEvent

logger = logging.getLogger(__name__)

DASHBOARD_GROUP = "dashboard"
# How long a commit may wait for the channel layer before the push is given up. A trade's
# request runs its on-commit hooks synchronously; a blackholed Redis must not hold it for long.
PUBLISH_TIMEOUT_SECONDS = 2.0


def event_message(event: MarketEvent) -> dict[str, Any]:
    """A market event as the channel layer carries it: the outbox row's facts and nothing
    about how an interface shows them (the dashboard adds its one-line summary on receipt).
    `type` routes the message to a consumer's `market_event` handler."""
    return {
        "type": "market.event",
        "id": event.pk,
        "market_id": event.market_id,
        "guild_id": str(event.guild_id),
        "event": event.type,
        "payload": event.payload,
        "status": (event.payload or {}).get("status"),
        "created_at": event.created_at.isoformat() if event.created_at else None,
    }


async def _group_send(message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    timeout = getattr(settings, "DASHBOARD_PUBLISH_TIMEOUT", PUBLISH_TIMEOUT_SECONDS)
    await asyncio.wait_for(layer.group_send(DASHBOARD_GROUP, message), timeout=timeout)


def event_publish(event: MarketEvent) -> bool:
    """Send `event` to the dashboard group now. Returns whether the layer accepted it; never
    raises."""
    try:
        async_to_sync(_group_send)(event_message(event))
    except Exception:
        logger.exception("dashboard publish failed for market event %s", event.pk)
        signals.dashboard_publish_failed.send(sender=MarketEvent)
        return False
    return True


def event_publish_on_commit(event: MarketEvent) -> None:
    """Queue `event` for the dashboard once the current transaction commits (nothing is sent if
    it rolls back)."""
    transaction.on_commit(lambda: event_publish(event))


def events_message(events: list[MarketEvent]) -> dict[str, Any]:
    """Several events as one channel-layer message, in order: `type` routes it to a consumer's
    `market_events` handler, which handles each as a `market.event`. A batch of a hundred trades
    is one `group_send` (one trip to Redis per listening channel), not a hundred."""
    return {"type": "market.events", "events": [event_message(e) for e in events]}


def events_publish(events: list[MarketEvent]) -> bool:
    """Send several events to the dashboard group, in order, as one message (a batch of
    trades: the commit waits for the send, and a send per event cost a batch of 100 trades
    about a tenth of its time). Never raises."""
    if len(events) == 1:
        return event_publish(events[0])
    try:
        async_to_sync(_group_send)(events_message(events))
    except Exception:
        logger.exception("dashboard publish failed for %d market events", len(events))
        for _ in events:
            signals.dashboard_publish_failed.send(sender=MarketEvent)
        return False
    return True


def events_publish_on_commit(events: list[MarketEvent]) -> None:
    """Queue several events, in order, with one after-commit hook (a batch of trades)."""
    if events:
        transaction.on_commit(lambda: events_publish(events))
