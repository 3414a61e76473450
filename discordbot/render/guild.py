"""A guild's views: the leaderboard, a member's history, the settings."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import discord

from points.models import GuildSettings, Season
from points.selectors import HistoryRow, LeaderboardRow

from .. import limits
from ..limits import escape, fit
from .base import (
    points,
    signed,
    timestamp,
)


def leaderboard_embed(
    rows: Sequence, *, kind: str, names: dict[int, str] | None = None
) -> discord.Embed:
    """Ranks with the members' names from the directory (issue 13); without a name, a mention."""
    title = "Richest members" if kind == "balance" else "Best traders (realised profit)"
    embed = discord.Embed(title=title, colour=discord.Colour.gold())
    if not rows:
        embed.description = "Nobody here yet."
    lines = []
    for row in rows:
        value = row.balance if isinstance(row, LeaderboardRow) else row.profit
        shown = points(value) if kind == "balance" else signed(value)
        who = escape(names[row.user_id]) if names and row.user_id in names else f"<@{row.user_id}>"
        line = f"**{row.rank}.** {who} — {shown} points"
        if not isinstance(row, LeaderboardRow) and row.open_value:
            line += f" (open positions worth {points(row.open_value)})"
        lines.append(line)
    if lines:
        embed.description = "\n".join(lines)
    return limits.embed_fit(embed)


CODE_TEXT = {
    "starting_balance": "starting balance",
    "daily_bonus": "daily bonus",
    "grant": "granted by a moderator",
    "deduct": "removed by a moderator",
    "tip": "tip",
    "buy": "bet",
    "sell": "sale",
    "fee": "fee",
    "payout": "payout",
    "refund": "refund",
    "correction": "correction",
}


REASON_CODES = {"grant", "deduct", "correction"}


def history_embed(rows: Sequence[HistoryRow], *, page: int) -> discord.Embed:
    embed = discord.Embed(title="Your points history", colour=discord.Colour.blurple())
    if not rows:
        embed.description = "No transfers yet." if page == 0 else "No older transfers."
    lines = []
    for r in rows:
        what = CODE_TEXT.get(r.code, r.code)
        where = f" · #{r.market_id}" if r.market_id else ""
        when = timestamp(r.created_at, "d") if isinstance(r.created_at, dt.datetime) else ""
        why = ""
        if r.code in REASON_CODES and r.memo:
            # The moderator's reason: the back office promises members see it here.
            why = f" — “{fit(escape(r.memo), 120)}”"
        lines.append(f"{when} **{signed(r.amount)}** {what}{where}{why}")
    if lines:
        embed.description = "\n".join(lines)
    embed.set_footer(text=f"Page {page + 1}")
    return limits.embed_fit(embed)


def settings_embed(gs: GuildSettings, *, season: Season | None = None) -> discord.Embed:
    """The server's settings; `season`: the running season, whose end the seasons line gives."""
    embed = discord.Embed(title="Server settings", colour=discord.Colour.blurple())
    embed.add_field(name="Starting balance", value=points(gs.starting_balance))
    embed.add_field(name="Daily bonus", value=points(gs.daily_bonus) if gs.daily_bonus else "off")
    embed.add_field(name="Max bet", value=points(gs.max_bet))
    embed.add_field(name="Default liquidity", value=points(gs.default_liquidity))
    embed.add_field(name="Fee", value=f"{gs.fee_bps / 100:g}%")
    embed.add_field(name="Votes to resolve", value=str(gs.min_resolution_votes))
    embed.add_field(name="Auto-refund after", value=f"{gs.auto_refund_hours} hours")
    embed.add_field(name="Slippage limit", value=f"{gs.slippage_bps / 100:g}%")
    per_minute = getattr(gs, "requests_per_minute", 100)
    embed.add_field(name="Server commands a minute", value=points(per_minute))
    quick = getattr(gs, "quick_amounts", None) or []
    embed.add_field(name="Quick amounts", value=" · ".join(points(a) for a in quick) or "none")
    embed.add_field(name="Time zone", value=escape(str(getattr(gs, "time_zone", "") or "UTC")))
    embed.add_field(
        name="Announcements",
        value=f"<#{gs.announce_channel_id}>" if gs.announce_channel_id else "not set",
    )
    embed.add_field(
        name="Moderators' channel",
        value=(
            f"<#{gs.moderator_channel_id}>"
            if gs.moderator_channel_id
            else "not set (disputes go to the announcements)"
        ),
    )
    creators = " ".join(f"<@&{r}>" for r in gs.creator_role_ids or []) or "everyone"
    resolvers = " ".join(f"<@&{r}>" for r in gs.resolver_role_ids or []) or "Manage Server"
    embed.add_field(name="Who can create", value=fit(creators, 1024), inline=False)
    embed.add_field(name="Who resolves", value=fit(resolvers, 1024), inline=False)
    embed.add_field(name="Resolution", value=resolution_words(gs), inline=False)
    embed.add_field(name="Seasons", value=fit(season_words(gs, season), 1024), inline=False)
    return limits.embed_fit(embed)


SEASON_LENGTHS = {
    "month": "calendar months (UTC)",
    "quarter": "calendar quarters (UTC)",
    "custom": "custom dates",
}


def season_words(gs: GuildSettings, running: Season | None) -> str:
    """The season setting in sentences (docs/domain.md §10): how long seasons last (the custom
    end dates listed), when the running one ends, the reward role and the reset."""
    length = getattr(gs, "season_length", "off")
    if length == "off":
        words = "Seasons are off: leaderboards are all-time only."
        if running is not None:
            words += f" Season {running.number} ends now; its final table follows in a moment."
        return words
    words = f"Seasons follow {SEASON_LENGTHS.get(length, length)}"
    if length == "custom":
        # Stored as the instant a season ends, midnight UTC after its last day.
        days = [
            (dt.datetime.fromisoformat(end) - dt.timedelta(days=1)).date().isoformat()
            for end in getattr(gs, "season_ends", None) or []
        ]
        words += f", ending on {', '.join(days)}" if days else ""
    if running is not None:
        words += f"; season {running.number} ends {timestamp(running.ends_at, 'R')}."
    else:
        words += "."
    role = getattr(gs, "season_role_id", None)
    if role:
        words += f" The top 3 by realised profit get <@&{role}>."
    if getattr(gs, "season_reset", False):
        words += " Balances go back to the starting balance when a season ends."
    else:
        words += " Balances carry over from season to season."
    return words


def resolution_words(gs: GuildSettings) -> str:
    """How results are decided, in one line: "resolvers vote (2 votes needed) · dispute window
    1 hour · conflict-of-interest rule on" (docs/domain.md §6.1)."""
    if gs.resolution_mode == "creator":
        mode = "the creator proposes the result"
    else:
        votes = gs.min_resolution_votes
        mode = f"resolvers vote ({votes} vote{'s' if votes != 1 else ''} needed)"
    window = gs.dispute_window_minutes
    dispute = f"dispute window {duration_words(window)}" if window else "no dispute window"
    conflict = "on" if gs.conflict_of_interest else "off"
    hold = getattr(gs, "dispute_hold_hours", 48)
    held = f"a dispute holds it at most {duration_words(hold * 60)}"
    return f"{mode} · {dispute} · {held} · conflict-of-interest rule {conflict}"


def duration_words(minutes: int) -> str:
    """60 → "1 hour", 90 → "1 hour 30 minutes", 10080 → "1 week"."""
    parts = []
    for size, unit in ((7 * 24 * 60, "week"), (24 * 60, "day"), (60, "hour"), (1, "minute")):
        count, minutes = divmod(minutes, size)
        if count:
            parts.append(f"{count} {unit}{'s' if count != 1 else ''}")
    return " ".join(parts) or "0 minutes"


# --- Notifications ---------------------------------------------------------------------------
