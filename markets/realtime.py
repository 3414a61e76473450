"""Publishing market events to the dashboard after commit (STYLE §6).

Services call `event_publish_on_commit(event)` inside their transaction; the event is sent to the
channel layer only once the transaction commits, and a failure (Redis down) is logged and never
fails the write."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from .models import MarketEvent

logger = logging.getLogger(__name__)

DASHBOARD_GROUP = "dashboard"


def event_message(event: MarketEvent) -> dict:
    return {
        "type": "market.event",
        "id": event.pk,
        "market_id": event.market_id,
        "guild_id": str(event.guild_id),
        "event": event.type,
        "payload": event.payload,
        "created_at": event.created_at.isoformat() if event.created_at else None,
    }


def event_publish(event: MarketEvent) -> None:
    try:
        layer = get_channel_layer()
        if layer is not None:
            async_to_sync(layer.group_send)(DASHBOARD_GROUP, event_message(event))
    except Exception:
        logger.exception("dashboard publish failed for market event %s", event.pk)


def event_publish_on_commit(event: MarketEvent) -> None:
    """Queue `event` for the dashboard once the current transaction commits."""
    transaction.on_commit(lambda: event_publish(event))
