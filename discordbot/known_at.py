"""How the bot says what "outcome known at" reversed (docs/domain.md §6.2): the line the
settlement's and the proposal's replies carry, and the option's description."""

from __future__ import annotations

from markets.selectors import MarketSummary

from . import render

MSG_REVERSED = (
    "\n↩️ {count} trade{s} after {when} reversed: the outcome was known then, so they were "
    "undone and their points given back before the payout."
)
MSG_KNOWN_AT_PROPOSED = "\n↩️ Known at {when}: the trades after it are reversed when this pays out."
KNOWN_AT_HELP = (
    "When the outcome became known: <t:…>, 21:00 (the server's time zone) or 15 minutes ago"
)


def known_at_note(m: MarketSummary) -> str:
    """What a settlement or proposal with "known at" reversed or will reverse (§6.2)."""
    if m.known_at is None:
        return ""
    when = render.timestamp(m.known_at, "f")
    if m.status == "resolved":
        count = m.reversed_trades
        return MSG_REVERSED.format(count=count, s="" if count == 1 else "s", when=when)
    return MSG_KNOWN_AT_PROPOSED.format(when=when)
