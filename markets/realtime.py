"""Publishing market events to the dashboard after commit (STYLE §6).

Services call `event_publish_on_commit(event)` inside their transaction; the event is sent to the
channel layer group `DASHBOARD_GROUP` only once the transaction commits. A failure (Redis down or
hanging) is logged and counted (`pm_dashboard_publish_failures_total`) and never fails the write:
the dashboard replays missed events from the `MarketEvent` table when it reconnects, so a lost
push costs a little latency, never data.
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


_TRADE_VERBS = {"buy": "bought", "sell": "sold", "stake": "staked"}


def event_summary(event_type: str, market_id: int, payload: dict[str, Any]) -> str:
    """One line of plain text for the live feed (the page escapes it), built from the outbox
    payload alone so live pushes and server renders read the same."""
    p = payload or {}
    who = p.get("user_id") or p.get("voter_id") or ""
    if event_type == MarketEvent.Type.TRADE:
        verb = _TRADE_VERBS.get(p.get("kind", ""), "traded")
        probabilities = p.get("probabilities") or []
        outcome = p.get("outcome")
        after = ""
        if isinstance(outcome, int) and 0 <= outcome < len(probabilities):
            after = f" → {probabilities[outcome] * 100:.1f}%"
        amount = f"{p.get('amount', 0):,}"
        what = f"{amount} pts for" if verb == "sold" else f"{amount} pts on"
        return f"#{market_id}: {who} {verb} {what} “{p.get('label', '?')}”{after}"
    if event_type == MarketEvent.Type.CREATED:
        return f"#{market_id} opened: {p.get('question', '')}"
    if event_type == MarketEvent.Type.CLOSED:
        how = "closed automatically" if p.get("automatic") else "closed early"
        return f"#{market_id} {how}" + (f": {p['reason']}" if p.get("reason") else "")
    if event_type == MarketEvent.Type.VOTE:
        return (
            f"#{market_id}: {who} voted “{p.get('label', '?')}” "
            f"({p.get('votes', '?')}/{p.get('needed', '?')})"
        )
    if event_type == MarketEvent.Type.RESOLVED:
        paid = f"{p.get('total_paid', 0):,}"
        return f"#{market_id} resolved: “{p.get('label', '?')}” wins, {paid} pts paid"
    if event_type == MarketEvent.Type.CANCELLED:
        return f"#{market_id} cancelled, {p.get('total_refunded', 0):,} pts refunded" + (
            f": {p['reason']}" if p.get("reason") else ""
        )
    return f"#{market_id}: {event_type}"


def event_message(event: MarketEvent) -> dict[str, Any]:
    """The one wire format of a market event, used for live pushes and for replays alike.
    `type` routes the message to the consumer's `market_event` handler."""
    return {
        "type": "market.event",
        "id": event.pk,
        "market_id": event.market_id,
        "guild_id": str(event.guild_id),
        "event": event.type,
        "payload": event.payload,
        "status": (event.payload or {}).get("status"),
        "summary": event_summary(event.type, event.market_id, event.payload),
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
