"""How things look in Discord: the market embed, lists, portfolios, leaderboards, histories and
notification texts. Pure functions from selector results to `discord.Embed` and strings; every
embed passes through `limits.embed_fit`, so long unicode questions are cut, never refused by
Discord (DOMAIN §8). User text is escaped at render time (DOMAIN §7)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import discord

from betting.selectors import Portfolio
from betting.services import MSG_SOLD_REMAINDER
from markets.amm import SHARE_SCALE
from markets.selectors import MarketSummary, ProposalSummary
from points.models import GuildSettings
from points.rules import resolution_how
from points.selectors import HistoryRow, LeaderboardRow, member_fallback

from . import limits
from .limits import escape, fit

if TYPE_CHECKING:
    from .actions import Quote, TradeResult
    from .selectors import Predictor

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


def market_embed(m: MarketSummary, *, top: Sequence[Predictor] = ()) -> discord.Embed:
    """The market message: question, its description and resolution criteria (as much as fits),
    outcomes with percentage and bar (a pool: share of the pot,
    points and return ratio), volume or pot, traders, status, countdown; `top` predictors of a
    pool when known."""
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
    if top and is_pool(m):
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
            f"Volume {points(m.volume)} · {points(m.trader_count)} traders · {close_text(m)}"
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


def trade_text(result: TradeResult) -> str:
    """The reply to a trade: shares received or points returned, average price, new
    probability; the outcome's label once."""
    m, label = result.market, fit(escape(result.label), 100)
    prob = percent(result.probability)
    fee = f", fee {points(result.fee)}" if result.fee else ""
    if result.kind == "buy":
        avg = result.amount * SHARE_SCALE / result.shares if result.shares else 0.0
        text = (
            f"✅ You bought **{shares(result.shares)} shares** of **{label}** in #{m.id} for "
            f"{points(result.amount)} points (average price {avg:.3f} points per share{fee}); "
            f"now at **{prob}**."
        )
    elif result.kind == "stake":
        text = (
            f"✅ You predicted **{label}** in #{m.id} with **{points(result.amount)} points**; "
            f"it now has **{prob}** of the pot."
        )
    elif result.amount == 0:
        # DOMAIN §4.4: "all" of a position worth less than a point closes it, no point moves.
        text = (
            f"You closed your **{shares_exact(result.shares)} shares** of **{label}** in #{m.id}: "
            f"they were worth less than 1 point, so no points moved and {MSG_SOLD_REMAINDER}. "
            f"“{label}” is now at **{prob}**."
        )
    else:
        net = result.amount - result.fee
        avg = result.amount * SHARE_SCALE / result.shares if result.shares else 0.0
        text = (
            f"✅ You sold **{shares(result.shares)} shares** of **{label}** in #{m.id} for "
            f"**{points(net)} points**"
            + (f"; {MSG_SOLD_REMAINDER}" if result.left_in_pool else "")
            + f" (average price {avg:.3f}{fee}); now at **{prob}**."
        )
    if result.balance is not None:
        text += f" Balance: {points(result.balance)} points."
    return fit(text, limits.CONTENT)


def quote_text(q: Quote, *, expires_at: dt.datetime | None = None) -> str:
    """The preview before a trade (DOMAIN §4.6): what it gives, the average price, the
    probability before → after, what it pays if the outcome wins, the fee, the slippage limit."""
    m, label = q.market, fit(escape(q.label), 100)
    move = f"{percent(q.probability_before)} → **{percent(q.probability_after)}**"
    fee = f" (fee {points(q.fee)})" if q.fee else ""
    if q.kind == "buy":
        lines = [
            f"**Quote** · buy **{label}** in #{m.id}",
            f"You pay **{points(q.amount)} points**{fee} and get **{shares(q.shares)} shares** "
            f"at an average price of {q.average_price:.3f}.",
            f"Probability {move}.",
            f"If it wins you get **{points(q.payout)} points**.",
            f"Slippage limit {q.slippage_bps / 100:g}%: at least {shares(q.limit)} shares.",
        ]
    elif q.kind == "stake":
        staked = q.market.outcomes[q.outcome].staked + q.amount
        lines = [
            f"**Predict** · stake **{points(q.amount)} points** on **{label}** in #{m.id}",
            f"Share of the pot {move} · return {ratio(q.pot_after, staked)}.",
            f"If {label} wins you get **~{points(q.payout)} points** (the pot keeps changing "
            "until predictions close).",
        ]
    else:
        lines = [
            f"**Quote** · sell **{label}** in #{m.id}",
            f"You sell **{shares(q.shares)} shares** and get **{points(q.payout)} points**{fee} "
            f"at an average price of {q.average_price:.3f}.",
            f"Probability {move}.",
            f"Slippage limit {q.slippage_bps / 100:g}%: at least {points(q.limit)} points.",
        ]
    if expires_at is not None:
        lines.append(f"Confirm {timestamp(expires_at)}, or the quote expires.")
    return fit("\n".join(lines), limits.CONTENT)


def portfolio_embed(portfolio: Portfolio, *, name: str) -> discord.Embed:
    embed = discord.Embed(title=fit(f"Portfolio of {name}", limits.EMBED_TITLE))
    balance = portfolio.balance if portfolio.balance is not None else 0
    embed.description = (
        f"Balance: **{points(balance)} points** · open positions worth "
        f"**{points(portfolio.total_value)} points**"
        + (
            " (pool stakes at their best outcome)"
            if any(p.pays_if_wins for p in portfolio.positions)
            else ""
        )
    )
    if not portfolio.positions:
        embed.description += "\nNo positions yet. Find a market with `/market list`."
    for p in portfolio.positions[: limits.EMBED_FIELDS]:
        held = (
            f"{shares(p.shares)} shares"
            if p.mechanism == "amm"
            else f"{points(p.points_spent)} staked"
        )
        if p.status in ("resolved", "cancelled"):
            worth = f"paid {points(p.value)}"
        elif p.pays_if_wins:  # pool stakes on one market exclude each other (DOMAIN §5)
            worth = f"pays {points(p.value)} if it wins"
        else:
            worth = f"worth {points(p.value)}"
        embed.add_field(
            name=fit(
                f"{STATUS_BADGE.get(p.status, '')} #{p.market_id} · {escape(p.question)}", 256
            ),
            value=fit(
                f"{escape(p.label)}: {held} · {worth} · profit "
                f"{signed(p.profit)}{' if it wins' if p.pays_if_wins else ''} · now "
                f"{percent(p.probability)}",
                limits.FIELD_VALUE,
            ),
            inline=False,
        )
    if len(portfolio.positions) > limits.EMBED_FIELDS:
        embed.set_footer(text=f"{len(portfolio.positions) - limits.EMBED_FIELDS} more not shown")
    return limits.embed_fit(embed)


def holdings_text(m: MarketSummary, holdings: Sequence[Any], balance: int | None) -> str:
    if not holdings:
        text = f"You have no position in #{m.id}."
    else:
        lines = [f"Your position in #{m.id}:"]
        for h in holdings:
            label = fit(escape(h.label), 100)
            if m.mechanism == "amm":
                held, worth = f"{shares(h.shares)} shares", f"worth {points(h.value)} now"
            else:  # one outcome wins: a stake's payout is conditional, never a sum (DOMAIN §5)
                held, worth = "staked", f"if it wins you get ~{points(h.value)} points"
            lines.append(f"• **{label}**: {held} · spent {points(h.points_spent)} · {worth}")
        text = "\n".join(lines)
    if balance is not None:
        text += f"\nBalance: {points(balance)} points."
    return fit(text, limits.CONTENT)


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
        if kind != "balance" and getattr(row, "open_value", 0):
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


def settings_embed(gs: GuildSettings) -> discord.Embed:
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
    return limits.embed_fit(embed)


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
    return f"{mode} · {dispute} · conflict-of-interest rule {conflict}"


def duration_words(minutes: int) -> str:
    """60 → "1 hour", 90 → "1 hour 30 minutes", 10080 → "1 week"."""
    parts = []
    for size, unit in ((7 * 24 * 60, "week"), (24 * 60, "day"), (60, "hour"), (1, "minute")):
        count, minutes = divmod(minutes, size)
        if count:
            parts.append(f"{count} {unit}{'s' if count != 1 else ''}")
    return " ".join(parts) or "0 minutes"


# --- Notifications ---------------------------------------------------------------------------


def announce_content(m: MarketSummary) -> str:
    return fit(f"📢 New market by <@{m.creator_id}>: **{escape(m.question)}**", limits.CONTENT)


def closed_dm(m: MarketSummary, *, refund_hours: int, how: str) -> str:
    """The creator's DM when trading closes: who resolves their market and how (`how`, from
    `points.rules.resolution_how`), and when it is refunded if nobody does."""
    days = refund_hours / 24
    span = f"{days:g} days" if refund_hours % 24 == 0 else f"{refund_hours} hours"
    return fit(
        f"Trading on your market #{m.id} “{escape(m.question)}” has closed. {how} If no result "
        f"is proposed within {span}, every trader is refunded automatically.",
        limits.CONTENT,
    )


# --- Proposals and disputes (docs/domain.md §6.1) ----------------------------------------------

MSG_SETTINGS_HINT = "Admins choose how with `/settings resolution`."


def how_text(gs: GuildSettings, *, creator_id: int | None) -> str:
    """Who resolves a market here and how, and how else it can end (force, the setting)."""
    return f"{resolution_how(gs, creator_id=creator_id)} {MSG_SETTINGS_HINT}"


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


def _window_words(payload: dict) -> str:
    minutes = int(payload.get("window_minutes") or 0)
    return duration_words(minutes) if minutes else ""


def _deadline(payload: dict) -> str:
    raw = payload.get("deadline")
    if not raw:
        return ""
    return timestamp(dt.datetime.fromisoformat(raw))


def _who(user: object) -> str:
    return f"<@{user}>" if user else "the resolvers"


def proposed_post(m: MarketSummary, payload: dict) -> str:
    """The public post when a result is proposed (event `resolution_proposed`)."""
    label = fit(escape(str(payload.get("label", "?"))), 200)
    by = (
        "enough resolver votes"
        if payload.get("how") == "vote"
        else _who(payload.get("proposed_by"))
    )
    question = fit(escape(m.question), 300)
    head = f"⚖️ Proposed result for #{m.id} “{question}”: **{label}** (by {by})."
    deadline = _deadline(payload)
    if deadline:
        tail = (
            f"It pays out {deadline} unless disputed: traders who disagree press **Dispute** on "
            "the market message and say why."
        )
    else:
        tail = (
            "Its proposer holds a position, so it waits for a second resolver: a moderator "
            "confirms it with `/market confirm`. Traders who disagree press **Dispute**."
        )
    return fit(f"{head} {tail}", limits.CONTENT)


def proposed_dm(m: MarketSummary, payload: dict) -> str:
    """A trader's DM when a result is proposed: what, and how long to dispute it."""
    label = fit(escape(str(payload.get("label", "?"))), 200)
    head = f"Proposed result for #{m.id} “{escape(m.question)}”: **{label}**."
    window, deadline = _window_words(payload), _deadline(payload)
    if deadline:
        body = (
            f"If you disagree, dispute within {window} ({deadline}) with the **Dispute** button "
            "on the market message; otherwise it pays out then."
        )
    else:
        body = (
            "It waits for a second resolver; if you disagree, dispute it with the **Dispute** "
            "button on the market message."
        )
    tail = " Turn these messages off with `/notifications off`."
    return fit(f"{head} {body}{tail}", limits.CONTENT)


def dispute_ping(
    m: MarketSummary, payload: dict, *, role_ids: Sequence[int], moderators: str
) -> str:
    """The moderators' ping on a dispute: the market, the reason, and the commands that decide
    it. `role_ids` are mentioned (the first dispute only; later ones are listed quietly)."""
    label = fit(escape(str(payload.get("label", "?"))), 200)
    n = int(payload.get("disputes", 1))
    ping = " ".join(f"<@&{r}>" for r in role_ids)
    lines = [
        f"{ping + ' ' if ping else ''}🚩 <@{payload.get('user_id')}> disputes the proposed "
        f"result **{label}** of #{m.id} “{fit(escape(m.question), 300)}” "
        f"({n} dispute{'s' if n != 1 else ''}).",
        f"Reason: “{fit(escape(str(payload.get('reason', ''))), 600)}”",
        f"It is held for {moderators}: `/market confirm market:{m.id} reason:…` pays it out as "
        f"proposed; add `outcome:…` to change the result; `/market undo market:{m.id} "
        "reason:…` withdraws the proposal (the market can be proposed again).",
    ]
    return fit("\n".join(lines), limits.CONTENT)


MSG_DM_FOOTER = "Turn these messages off with `/notifications off`."


def moderators_words(post: Any) -> str:
    """Who decides a held proposal, in words: its resolver roles or Manage Server."""
    roles = " ".join(f"<@&{r}>" for r in post.resolver_role_ids)
    return f"moderators ({roles} or Manage Server)" if roles else "moderators (Manage Server)"


def undone_post(m: MarketSummary, payload: dict, *, how: str) -> str:
    """The public post when moderators undo a proposal (event `proposal_undone`)."""
    label = fit(escape(str(payload.get("label", "?"))), 200)
    reason = fit(escape(str(payload.get("reason", ""))), 500)
    return fit(
        f"↩️ The proposed result **{label}** of #{m.id} “{fit(escape(m.question), 300)}” was "
        f"undone by a moderator: “{reason}”. The market is closed again and needs a new "
        f"result. {how}",
        limits.CONTENT,
    )


def undone_dm(m: MarketSummary, payload: dict) -> str:
    """A disputer's DM when moderators undo the proposal they disputed."""
    label = fit(escape(str(payload.get("label", "?"))), 200)
    reason = fit(escape(str(payload.get("reason", ""))), 500)
    return fit(
        f"Moderators undid the proposed result **{label}** of #{m.id} “{escape(m.question)}” "
        f"that you disputed: “{reason}”. The market will get a new result. Turn these "
        "messages off with `/notifications off`.",
        limits.CONTENT,
    )


def decision_text(m: MarketSummary, payload: dict) -> str:
    """What moderators decided about a disputed proposal, for its disputers."""
    label = fit(escape(str(payload.get("label", "?"))), 200)
    changed = payload.get("changed_from")
    if changed:
        what = f"changed the result from **{fit(escape(str(changed)), 200)}** to **{label}**"
    else:
        what = f"confirmed the proposed result **{label}**"
    return f"You disputed the proposed result of #{m.id}; moderators {what}."


def result_dm(
    m: MarketSummary, result: Any, *, cancelled: bool, refunded_all: bool, decision: str = ""
) -> str:
    """One trader's result: won X / lost Y / refunded Z (after `decision`, what moderators
    decided about a proposal this trader disputed)."""
    head = f"#{m.id} “{escape(m.question)}”"
    if cancelled or refunded_all:
        why = "was cancelled" if cancelled else "resolved with no winning stakes"
        body = (
            f"{head} {why}: you were refunded **{points(result.payout)} points**."
            if result.payout
            else f"{head} {why}: you had nothing left to refund (you already sold for more "
            "than you paid)."
        )
    else:
        winner = (
            escape(m.outcomes[m.winning_position].label) if m.winning_position is not None else "?"
        )
        if result.payout:
            body = (
                f"{head} resolved **{winner}**: you won **{points(result.payout)} points** "
                f"(net {signed(result.net)})."
            )
        else:
            body = (
                f"{head} resolved **{winner}**: you lost **{points(max(0, -result.net))} points**."
                if result.net < 0
                else f"{head} resolved **{winner}**: your sales earned net {signed(result.net)}."
            )
    text = f"{decision} {body}" if decision else body
    return fit(text + " Turn these messages off with `/notifications off`.", limits.CONTENT)


def settlement_embed(m: MarketSummary, payload: dict, *, cancelled: bool) -> discord.Embed:
    """The channel summary: winner, total paid, biggest winners."""
    embed = discord.Embed(title=market_title(m), colour=STATUS_COLOUR.get(m.status))
    if cancelled:
        count = int(payload.get("refunded_count", 0))
        refunded = (
            f"Refunded **{points(int(payload.get('total_refunded', 0)))} points** to "
            f"{points(count)} {'trader' if count == 1 else 'traders'}."
            if count
            else "Nobody traded, so there was nothing to refund."
        )
        embed.description = (
            f"❌ Cancelled: {fit(escape(payload.get('reason', '')), 500)}\n{refunded}"
        )
        return limits.embed_fit(embed)
    label = escape(str(payload.get("label", "?")))
    total = int(payload.get("total_paid", 0))
    lines = [f"🏆 Resolved: **{label}**"]
    if m.trader_count == 0:
        lines.append("Nobody traded, so nobody was paid.")
    else:
        lines.append(f"Paid out **{points(total)} points**.")
    if payload.get("refunded_all") and m.trader_count:
        lines.append("Nobody backed the winner, so every stake was refunded.")
    winners = payload.get("winners") or []
    if winners and not payload.get("refunded_all"):
        lines.append("")
        lines.append("Biggest winners:")
        for rank, (user, amount) in enumerate(winners[:5], 1):
            lines.append(f"{rank}. <@{user}> +{points(int(amount))}")
    embed.description = "\n".join(lines)
    return limits.embed_fit(embed)
