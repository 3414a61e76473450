"""Issue 26's views: calibration (the leaderboard, a member's line, the chart's embed) and the
holders of a market-maker market (docs/domain.md §9)."""

from __future__ import annotations

from collections.abc import Sequence

import discord

from betting.calibration import MIN_MARKETS, CalibrationRow
from betting.seasons import SeasonTables
from betting.selectors import RestingLevel
from markets.selectors import MarketSummary

from .. import limits
from ..limits import escape, fit
from ..results import HolderPage, HolderRow
from .base import STATUS_COLOUR, market_title, points, shares, signed

CALIBRATION_TITLE = "Best calibrated members (Brier score, lower is better)"
CALIBRATION_FOOTER = (
    f"Buys in resolved market-maker markets, weighted by points; at least {MIN_MARKETS} "
    "markets to be ranked · 0 = perfect, 0.25 = always 50 %"
)
CALIBRATION_CHART = "calibration.png"
TOP_HOLDERS = 3
"""Holders per outcome on the market message."""


def who(user_id: int, names: dict[int, str] | None) -> str:
    """A member's name from the directory, escaped; without one, a mention (it pings nobody)."""
    return escape(names[user_id]) if names and user_id in names else f"<@{user_id}>"


def brier_text(score: float) -> str:
    return f"{score:.3f}"


def calibration_leaderboard_embed(
    rows: Sequence[CalibrationRow], *, names: dict[int, str] | None = None, title: str = ""
) -> discord.Embed:
    embed = discord.Embed(title=fit(title or CALIBRATION_TITLE, limits.EMBED_TITLE))
    embed.colour = discord.Colour.gold()
    lines = [
        f"**{r.rank}.** {who(r.user_id, names)} — **{brier_text(r.brier)}** · "
        f"{points(r.markets)} markets, {points(r.buys)} buys"
        for r in rows
    ]
    embed.description = (
        "\n".join(lines)
        if lines
        else f"Nobody has bought in {MIN_MARKETS} resolved market-maker markets yet."
    )
    embed.set_footer(text=CALIBRATION_FOOTER)
    return limits.embed_fit(embed)


def calibration_line(row: CalibrationRow | None) -> str:
    """A member's calibration for `/portfolio`: score and rank, or what is still missing."""
    if row is None:
        return "Calibration: no buys in a resolved market-maker market yet."
    score = f"Calibration: Brier **{brier_text(row.brier)}** over {points(row.markets)} resolved "
    score += "market" if row.markets == 1 else "markets"
    if row.rank:
        return f"{score} · #{row.rank} on `/leaderboard calibration`"
    missing = MIN_MARKETS - row.markets
    return f"{score} · ranked after {missing} more"


def calibration_embed(row: CalibrationRow | None, *, name: str) -> discord.Embed:
    """The embed around the calibration chart (`calibration.png`)."""
    embed = discord.Embed(
        title=fit(f"Calibration of {name}", limits.EMBED_TITLE), colour=discord.Colour.teal()
    )
    embed.description = calibration_line(row)
    embed.set_image(url=f"attachment://{CALIBRATION_CHART}")
    embed.set_footer(
        text="Bars: how often outcomes bought at that probability won, weighted by points; "
        "a well-calibrated member's bars reach the diagonal."
    )
    return limits.embed_fit(embed)


def holders_lines(rows: Sequence[HolderRow], names: dict[int, str], labels: list[str]) -> str:
    """Per outcome, its biggest holders: "**Yes**: Alice 150.00 · Bob 20.00"."""
    by_outcome: dict[int, list[HolderRow]] = {}
    for r in rows:
        by_outcome.setdefault(r.outcome, []).append(r)
    lines = []
    for outcome, holders in sorted(by_outcome.items()):
        label = fit(escape(labels[outcome]), 60) if outcome < len(labels) else "?"
        people = " · ".join(f"{who(h.user_id, names)} {shares(h.shares)}" for h in holders)
        lines.append(f"**{label}**: {people}")
    return fit("\n".join(lines), limits.FIELD_VALUE)


RESTING_LEVELS_SHOWN = 2
"""Limits shown per outcome and side on the market message; the rest are summed."""


def _limit(ppm: int) -> str:
    return f"{ppm / 10_000:g} %"


def resting_lines(levels: Sequence[RestingLevel], labels: list[str]) -> str:
    """Per outcome, the orders waiting (DOMAIN §4.7), nearest limits first: "**Yes**: buy 800
    pts ≤ 40 %, 400 pts ≤ 30 % · sell 12.50 shares ≥ 80 %"; past two limits a side's rest is
    summed ("+ 300 pts lower")."""
    by_key: dict[tuple[int, str], list[RestingLevel]] = {}
    for level in levels:
        by_key.setdefault((level.position, level.side), []).append(level)
    lines = []
    for position in sorted({p for p, _ in by_key}):
        label = fit(escape(labels[position]), 60) if position < len(labels) else "?"
        sides = []
        for side, verb, sign, beyond in (
            ("buy", "buy", "≤", "lower"),
            ("sell", "sell", "≥", "higher"),
        ):
            found = by_key.get((position, side), [])
            if not found:
                continue
            amount = points if side == "buy" else shares
            unit = "pts" if side == "buy" else "shares"
            parts = [
                f"{amount(x.total)} {unit} {sign} {_limit(x.limit_ppm)}"
                for x in found[:RESTING_LEVELS_SHOWN]
            ]
            rest = sum(x.total for x in found[RESTING_LEVELS_SHOWN:])
            if rest:
                parts.append(f"+ {amount(rest)} {unit} {beyond}")
            sides.append(f"{verb} " + ", ".join(parts))
        lines.append(f"**{label}**: " + " · ".join(sides))
    return fit("\n".join(lines), limits.FIELD_VALUE)


def holders_page_embed(m: MarketSummary, page: HolderPage) -> discord.Embed:
    """`/market holders`: one page of every holder, outcome by outcome, most shares first."""
    embed = discord.Embed(title=market_title(m), colour=STATUS_COLOUR.get(m.status))
    labels = [o.label for o in m.outcomes]
    if not page.rows:
        embed.description = "Nobody holds shares of this market."
    pool = m.mechanism == "parimutuel"
    lines = [
        f"**{page.offset + i + 1}.** {who(r.user_id, page.names)} — "
        + (f"{points(r.shares)} points staked on " if pool else f"{shares(r.shares)} shares of ")
        + f"**{fit(escape(labels[r.outcome]), 80)}**"
        for i, r in enumerate(page.rows)
    ]
    if lines:
        embed.description = fit("\n".join(lines), limits.EMBED_DESCRIPTION)
    embed.set_footer(
        text=f"Holders · page {page.page + 1} of {max(1, page.pages)} · "
        f"{points(page.total)} holdings"
    )
    return limits.embed_fit(embed)


def with_calibration(embed: discord.Embed, row: CalibrationRow | None) -> discord.Embed:
    """`/portfolio` with the member's calibration under the balance (issue 26). The line goes
    into the description, so the positions' fields keep their room."""
    embed.description = f"{embed.description or ''}\n{calibration_line(row)}".strip()
    return limits.embed_fit(embed)


MSG_NO_SEASON = (
    "There is no season {number} on this server. `/leaderboard` shows the all-time tables."
)
SEASON_KINDS = {
    "balance": "Balance change",
    "profit": "Realised profit",
    "calibration": "Calibration (Brier, lower is better)",
}


def season_embed(
    tables: SeasonTables, *, names: dict[int, str], only: str | None = None
) -> discord.Embed:
    """A season's leaderboards (all three, or `only` one): the final table once it closed."""
    state = "final table" if tables.closed else "so far"
    embed = discord.Embed(title=f"Season {tables.number} — {state}", colour=discord.Colour.gold())
    embed.description = (
        f"<t:{int(tables.starts_at.timestamp())}:d> to <t:{int(tables.ends_at.timestamp())}:d> · "
        "markets count in the season they settled in"
    )
    rows: dict[str, list[str]] = {
        "balance": [f"{who(u, names)} {signed(v)}" for u, v in tables.balance],
        "profit": [f"{who(u, names)} {signed(v)}" for u, v in tables.profit],
        "calibration": [
            f"{who(u, names)} **{brier_text(b)}** ({points(m)} markets)"
            for u, b, m in tables.calibration
        ],
    }
    for kind, title in SEASON_KINDS.items():
        if only and only != kind:
            continue
        lines = [f"**{i}.** {line}" for i, line in enumerate(rows[kind], 1)] or ["Nobody yet."]
        embed.add_field(
            name=title, value=fit("\n".join(lines), limits.FIELD_VALUE), inline=only is not None
        )
    return limits.embed_fit(embed)


def season_content(number: int, role_id: int | None, rewarded: Sequence[int]) -> str:
    text = (
        f"🏁 **Season {number} is over.** Here is its final table; "
        f"`/leaderboard season:{number}` keeps it."
    )
    if role_id and rewarded:
        people = ", ".join(f"<@{u}>" for u in rewarded)
        text += f"\n🎖️ {people} {'gets' if len(rewarded) == 1 else 'get'} <@&{role_id}>."
    return fit(text, limits.CONTENT)
