"""The market message's embed, the chart's embed and the pages of `/market list`."""

from __future__ import annotations

from collections.abc import Sequence

import discord

from core.directory import member_fallback
from markets.selectors import MarketSummary, ProposalSummary

from .. import limits
from ..limits import escape, fit
from ..results import Holders, Predictor
from .base import (
    MECHANISM_TEXT,
    STATUS_BADGE,
    STATUS_COLOUR,
    STATUS_TEXT,
    bar,
    is_pool,
    market_title,
    percent,
    points,
    ratio,
    timestamp,
)
from .community import holders_lines, resting_lines


def outcome_lines(m: MarketSummary, *, limit: int | None = None) -> list[str]:
    """One line per outcome. Open markets: probability and bar (market maker), or share of the
    pot, points staked and return ratio (pool). Settled markets: the winner first with 🏆, the
    others after it, without probabilities (they no longer mean anything)."""
    if m.status in ("resolved", "cancelled"):
        return settled_lines(m, limit=limit)
    rows = m.outcomes if limit is None else sorted(m.outcomes, key=lambda o: -o.probability)[:limit]
    lines = []
    pot = sum(o.staked for o in m.outcomes)
    for o in rows:
        label = fit(escape(o.label), 120)
        if is_pool(m):
            lines.append(
                f"`{bar(o.probability)}` **{percent(o.probability)}** {label} · "
                f"{points(o.staked)} pts · {ratio(pot, o.staked)}"
            )
        else:
            lines.append(f"`{bar(o.probability)}` **{percent(o.probability)}** {label}")
    return lines


def settled_lines(m: MarketSummary, *, limit: int | None = None) -> list[str]:
    ordered = sorted(m.outcomes, key=lambda o: (o.position != m.winning_position, o.position))
    lines = []
    for o in ordered if limit is None else ordered[:limit]:
        label = fit(escape(o.label), 120)
        lines.append(f"🏆 **{label}**" if o.position == m.winning_position else f"▫️ {label}")
    return lines


def close_text(m: MarketSummary) -> str:
    if m.status == "open":
        return f"closes {timestamp(m.closes_at)}"
    if m.closed_at:
        return f"closed {timestamp(m.closed_at)}"
    return f"closed {timestamp(m.closes_at)}"


def market_embed(m: MarketSummary, *, top: Sequence[Predictor] | Holders = ()) -> discord.Embed:
    """The market message: question, its description and resolution criteria (as much as fits),
    outcomes with percentage and bar (a pool: share of the pot,
    points and return ratio), volume or pot, traders, status, countdown; `top` predictors of a
    pool, or each outcome's top holders of a market-maker market (issue 26) and the limit
    orders waiting on it while it is open (issue 25), when known."""
    embed = discord.Embed(title=market_title(m), colour=STATUS_COLOUR.get(m.status))
    question = escape(m.question)
    head = [question] if limits.size(f"#{m.id} · {question}") > limits.EMBED_TITLE else []
    lines = "\n".join(outcome_lines(m))
    embed.add_field(
        name="Status", value=f"{STATUS_BADGE.get(m.status, '')} {STATUS_TEXT[m.status]}"
    )
    pot = sum(o.staked for o in m.outcomes)
    if is_pool(m):
        embed.add_field(name="Pot", value=f"{points(pot)} points")
        embed.add_field(name="Predictors", value=points(m.trader_count))
    else:
        embed.add_field(name="Volume", value=f"{points(m.volume)} points")
        embed.add_field(name="Traders", value=points(m.trader_count))
    when = (
        f"{timestamp(m.closes_at)} ({timestamp(m.closes_at, 'f')})"
        if m.status == "open"
        else close_text(m)
    )
    embed.add_field(name="Closes" if m.status == "open" else "Trading", value=when, inline=False)
    if m.proposal is not None:
        embed.add_field(name="Resolution", value=proposal_text(m), inline=False)
    if m.winning_position is not None:
        winner = m.outcomes[m.winning_position]
        value = f"🏆 {fit(escape(winner.label), 200)}"
        if is_pool(m):
            value += (
                f" · {points(pot)} points paid to its predictors"
                if winner.staked
                else " · nobody predicted it, every stake was refunded"
            )
        embed.add_field(name="Winner", value=value, inline=False)
    if isinstance(top, Holders):
        if top.resting and m.status == "open":
            embed.add_field(
                name="Orders waiting",
                value=resting_lines(top.resting, [o.label for o in m.outcomes]),
                inline=False,
            )
        if top.rows:
            labels = [o.label for o in m.outcomes]
            embed.add_field(
                name="Top holders (shares)",
                value=holders_lines(top.rows, top.names, labels),
                inline=False,
            )
    elif top and is_pool(m):
        embed.add_field(
            name="Top predictors",
            value=fit(
                "\n".join(
                    f"<@{p.user_id}> {points(p.staked)} on {fit(escape(p.label), 60)}" for p in top
                ),
                limits.FIELD_VALUE,
            ),
            inline=False,
        )
    if m.status in ("resolved", "cancelled") and m.settle_reason:
        embed.add_field(name="Reason", value=fit(escape(m.settle_reason), 500), inline=False)
    footer = [MECHANISM_TEXT.get(m.mechanism, m.mechanism)]
    if is_pool(m) and m.status == "open":
        footer.append("1:x = points back per point staked if it wins")
    if m.mechanism == "amm" and m.fee_bps:
        footer.append(f"fee {m.fee_bps / 100:g}%")
    if m.category:
        footer.append(f"category: {m.category}")
    footer.append(f"created by {m.creator_name or member_fallback(m.creator_id)}")
    embed.set_footer(text=fit(" · ".join(footer), 300))
    # Set last: the criteria get the room the rest leaves, so they never push out an outcome.
    room = min(limits.EMBED_DESCRIPTION, limits.EMBED_TOTAL - limits.embed_size(embed))
    room -= limits.size("\n\n".join([*head, lines, ""]))
    criteria = criteria_text(m.description, room)
    embed.description = "\n\n".join([*head, *([criteria] if criteria else []), lines])
    return limits.embed_fit(embed)


CRITERIA_HEADING = "**Description and resolution criteria**"
CRITERIA_MIN = 40
"""Below this much room (a long question and ten long outcomes) the criteria are left out
rather than shown as a stub; the dashboard and the admin show them in full."""


def criteria_text(description: str, room: int) -> str:
    """The market's description under a heading, escaped and quoted line by line, cut to `room`
    UTF-16 units (DOMAIN §8); empty when there is none or no room for it."""
    if not description or room < limits.size(CRITERIA_HEADING) + 1 + CRITERIA_MIN:
        return ""
    quoted = "\n".join(f"> {line}" for line in escape(description).split("\n"))
    return fit(f"{CRITERIA_HEADING}\n{quoted}", room)


def chart_embed(m: MarketSummary) -> discord.Embed:
    """The embed around a price chart: the market's title, the PNG (sent with it as
    `chart.png`), and how many trades it shows."""
    embed = discord.Embed(title=market_title(m), colour=STATUS_COLOUR.get(m.status))
    embed.set_image(url="attachment://chart.png")
    what = "share of the pool" if m.mechanism == "parimutuel" else "probability"
    trades = "1 trade" if m.trade_count == 1 else f"{points(m.trade_count)} trades"
    embed.set_footer(text=f"Each outcome's {what} over time · {trades} · times in UTC")
    return limits.embed_fit(embed)


def market_list_embed(
    markets: Sequence[MarketSummary],
    *,
    status: str,
    category: str,
    page: int,
    pages: int,
    total: int,
) -> discord.Embed:
    heading = "All markets" if status == "all" else f"{status.capitalize()} markets"
    if category:
        heading += f" in {category}"
    embed = discord.Embed(
        title=fit(f"{heading} ({total:,})", limits.EMBED_TITLE), colour=discord.Colour.blurple()
    )
    if not markets:
        embed.description = "No markets here yet. Create one with `/market create`."
    for m in markets:
        lines = outcome_lines(m, limit=4)
        if len(m.outcomes) > 4:
            lines.append(f"… and {len(m.outcomes) - 4} more")
        lines.append(
            f"Volume {points(m.volume)} · {points(m.trader_count)} "
            f"{'trader' if m.trader_count == 1 else 'traders'} · {close_text(m)}"
        )
        embed.add_field(
            name=fit(
                f"{STATUS_BADGE.get(m.status, '')} #{m.id} · {escape(m.question)}",
                limits.FIELD_NAME,
            ),
            value=fit("\n".join(lines), limits.FIELD_VALUE),
            inline=False,
        )
    embed.set_footer(text=f"Page {page + 1} of {max(1, pages)} · /market show <market> for buttons")
    return limits.embed_fit(embed)


def proposal_state(p: ProposalSummary) -> str:
    """What happens next to a proposal: pays out at its deadline, held, or waits."""
    if p.disputed:
        n = p.disputes
        return f"held for moderators: {n} dispute{'s' if n != 1 else ''}"
    if p.deadline is None:
        return "waiting for a second resolver"
    return f"pays out {timestamp(p.deadline)} unless disputed"


def proposal_text(m: MarketSummary) -> str:
    """ "Result proposed: “X” — pays out in 1 hour unless disputed" (or held, or waiting)."""
    p = m.proposal
    if p is None:
        return ""
    return fit(f"Result proposed: “{fit(escape(p.label), 200)}” — {proposal_state(p)}", 1024)
