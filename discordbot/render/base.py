"""The small formatters every Discord text uses: points, shares, percentages, bars, times."""

from __future__ import annotations

import datetime as dt

import discord

from markets.amm import SHARE_SCALE
from markets.selectors import MarketSummary

from .. import limits
from ..limits import escape, fit

BAR_WIDTH = 10
STATUS_BADGE = {"open": "🟢", "closed": "🟡", "resolving": "⚖️", "resolved": "✅", "cancelled": "❌"}
STATUS_TEXT = {
    "open": "Open",
    "closed": "Closed, awaiting resolution",
    "resolving": "Result proposed",
    "resolved": "Resolved",
    "cancelled": "Cancelled, refunded",
}
STATUS_COLOUR = {
    "open": discord.Colour.green(),
    "closed": discord.Colour.gold(),
    "resolving": discord.Colour.orange(),
    "resolved": discord.Colour.blurple(),
    "cancelled": discord.Colour.dark_grey(),
}
MECHANISM_TEXT = {"amm": "Market maker", "parimutuel": "Prediction pool"}
LIST_PAGE_SIZE = 5
HISTORY_PAGE_SIZE = 15


def points(n: int) -> str:
    return f"{n:,}"


def signed(n: int) -> str:
    return f"+{n:,}" if n > 0 else f"{n:,}"


def shares(micro: int) -> str:
    """Micro-shares as shares with two decimals: Discord shows no more (exact values stay in
    the admin and CSV exports)."""
    return f"{micro / SHARE_SCALE:,.2f}"


def shares_exact(micro: int) -> str:
    whole, frac = divmod(micro, SHARE_SCALE)
    return f"{whole:,}" + (f".{frac:06d}".rstrip("0") if frac else "")


def percent(p: float) -> str:
    return f"{p * 100:.1f}%"


def bar(p: float, width: int = BAR_WIDTH) -> str:
    filled = max(0, min(width, round(p * width)))
    return "█" * filled + "░" * (width - filled)


def timestamp(when: dt.datetime, style: str = "R") -> str:
    return f"<t:{int(when.timestamp())}:{style}>"


def market_title(m: MarketSummary, limit: int = limits.EMBED_TITLE) -> str:
    return fit(f"#{m.id} · {escape(m.question)}", limit)


def is_pool(m: MarketSummary) -> bool:
    return m.mechanism == "parimutuel"


def ratio(pot: int, staked: int) -> str:
    """A pool's return ratio, as Twitch shows it: 1:2.5 pays 2.5 points per point staked."""
    return f"1:{pot / staked:,.2f}" if staked else "1:–"
