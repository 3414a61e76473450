"""How the dashboard shows a market event: the one-line summary and the wire format its page
reads, for live pushes and replays alike.

`markets.realtime` publishes the outbox row's facts (`markets.realtime.event_message`); this
module adds the `summary` the live feed prints, so the text lives with the interface that shows
it and both paths (a push through the channel layer, a replay from the `MarketEvent` table)
reach the browser in one shape.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from core.directory import member_fallback
from markets import realtime
from markets.models import MarketEvent
from points.selectors import member_names

_TRADE_VERBS = {"buy": "bought", "sell": "sold", "stake": "staked", "undo": "took back"}
"""`undo`: a one-click pool stake taken back within its 10 seconds (issue 26)."""


def _member_of(payload: dict[str, Any] | None) -> int | None:
    p = payload or {}
    who = p.get("user_id") or p.get("voter_id") or p.get("proposed_by")
    try:
        return int(who) if who else None
    except (TypeError, ValueError):
        return None


def names_for(events: Iterable[tuple[Any, dict[str, Any] | None]]) -> dict[int, str]:
    """user id → name for the members the (guild id, payload) pairs mention: one directory
    query per server among them (the outbox stores ids only, so a forgotten member is never
    named by an old event, issue 13)."""
    by_guild: dict[int, set[int]] = {}
    for guild_id, payload in events:
        user = _member_of(payload)
        if user is not None and guild_id:
            by_guild.setdefault(int(guild_id), set()).add(user)
    names: dict[int, str] = {}
    for guild_id, users in by_guild.items():
        names.update(member_names(guild_id=guild_id, user_ids=users))
    return names


def event_summary(
    event_type: str,
    market_id: int | None,
    payload: dict[str, Any] | None,
    names: dict[int, str] | None = None,
) -> str:
    """One line of plain text for the live feed (the page escapes it), built from the outbox
    payload and the members' names (`names_for`) so live pushes and server renders read the
    same."""
    p = payload or {}
    user = _member_of(p)
    who = ((names or {}).get(user) or member_fallback(user)) if user else ""
    if event_type == MarketEvent.Type.TRADE:
        verb = _TRADE_VERBS.get(p.get("kind", ""), "traded")
        probabilities = p.get("probabilities") or []
        outcome = p.get("outcome")
        after = ""
        if isinstance(outcome, int) and 0 <= outcome < len(probabilities):
            after = f" → {probabilities[outcome] * 100:.1f}%"
        amount = f"{p.get('amount', 0):,}"
        what = f"{amount} pts for" if verb == "sold" else f"{amount} pts on"
        order = f" (limit order #{p['order_id']})" if p.get("order_id") else ""  # DOMAIN §4.7
        if verb == "took back":
            what = f"{amount} pts staked on"
        return f"#{market_id}: {who} {verb} {what} “{p.get('label', '?')}”{after}{order}"
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
    if event_type == MarketEvent.Type.PROPOSED:
        by = f" by {who}" if who else ""
        if p.get("deadline"):
            then = f", pays out after a {_minutes(p.get('window_minutes'))} dispute window"
        else:
            then = ", waits for a second resolver"
        return f"#{market_id}: result proposed{by}: “{p.get('label', '?')}”{then}"
    if event_type == MarketEvent.Type.DISPUTED:
        held = ": held for moderators" if p.get("first") else ""
        n = p.get("disputes", 1)
        count = f" ({n} dispute{'s' if n != 1 else ''})" if isinstance(n, int) else ""
        return f"#{market_id}: {who or 'a member'} disputed “{p.get('label', '?')}”{held}{count}"
    if event_type == MarketEvent.Type.UNDONE:
        return f"#{market_id}: proposed result “{p.get('label', '?')}” undone" + (
            f": {p['reason']}" if p.get("reason") else ""
        )
    if event_type == MarketEvent.Type.RESOLVED:
        paid = f"{p.get('total_paid', 0):,}"
        how = ""
        if p.get("changed_from"):
            how = f" (changed from “{p['changed_from']}”)"
        elif p.get("was_proposed"):
            how = " (as proposed)"
        return f"#{market_id} resolved: “{p.get('label', '?')}” wins{how}, {paid} pts paid"
    if event_type == MarketEvent.Type.CANCELLED:
        return f"#{market_id} cancelled, {p.get('total_refunded', 0):,} pts refunded" + (
            f": {p['reason']}" if p.get("reason") else ""
        )
    if event_type == MarketEvent.Type.ORDERS:  # DOMAIN §4.7
        side, sign = ("buy", "≤") if p.get("side") == "buy" else ("sell", "≥")
        limit = f"{int(p.get('limit_ppm') or 0) / 10_000:g} %"
        what = f"{side} order on “{p.get('label', '?')}” {sign} {limit}"
        if p.get("change") == "expired":
            return f"#{market_id}: {p.get('orders', 1)} limit order(s) expired"
        return f"#{market_id}: {who} {p.get('change', 'changed')} a {what}"
    return f"#{market_id}: {event_type}"


def _minutes(value: object) -> str:
    """A dispute window in words: "60 min", "2 h"."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return "its window"
    return f"{value // 60} h" if value % 60 == 0 else f"{value} min"


def with_summary(message: dict[str, Any], names: dict[int, str] | None = None) -> dict[str, Any]:
    """`message` (a published `market.event`) with the feed's `summary` line added; `names`
    from `names_for` (looked up here when not given: 1 query)."""
    if names is None:
        names = names_for([(message.get("guild_id"), message.get("payload"))])
    summary = event_summary(
        message.get("event", ""), message.get("market_id"), message.get("payload"), names
    )
    user = _member_of(message.get("payload"))
    member_name = (names.get(user) or member_fallback(user)) if user else ""
    return {**message, "summary": summary, "member_name": member_name}


def event_message(event: MarketEvent, names: dict[int, str] | None = None) -> dict[str, Any]:
    """The one wire format the dashboard page reads, for live pushes and replays alike."""
    return with_summary(realtime.event_message(event), names)
