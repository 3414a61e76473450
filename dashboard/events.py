"""How the dashboard shows a market event: the one-line summary and the wire format its page
reads, for live pushes and replays alike.

`markets.realtime` publishes the outbox row's facts (`markets.realtime.event_message`); this
module adds the `summary` the live feed prints, so the text lives with the interface that shows
it and both paths (a push through the channel layer, a replay from the `MarketEvent` table)
reach the browser in one shape.
"""

from __future__ import annotations

from typing import Any

from markets import realtime
from markets.models import MarketEvent

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


def with_summary(message: dict[str, Any]) -> dict[str, Any]:
    """`message` (a published `market.event`) with the feed's `summary` line added."""
    summary = event_summary(
        message.get("event", ""), message.get("market_id"), message.get("payload")
    )
    return {**message, "summary": summary}


def event_message(event: MarketEvent) -> dict[str, Any]:
    """The one wire format the dashboard page reads, for live pushes and replays alike."""
    return with_summary(realtime.event_message(event))
