"""A member's trades and holdings: a trade's reply, a quote, the portfolio, a position."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import discord

from betting.selectors import UNSETTLED, Portfolio
from betting.services import MSG_SOLD_REMAINDER
from markets.amm import SHARE_SCALE
from markets.selectors import MarketSummary

from .. import limits
from ..limits import escape, fit
from ..results import Quote, TradeResult
from .base import (
    STATUS_BADGE,
    percent,
    points,
    ratio,
    shares,
    shares_exact,
    signed,
    timestamp,
)


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
        head = f"**Predict** · stake **{points(q.amount)} points** on **{label}** in #{m.id}"
        if not sum(o.staked for o in q.market.outcomes):
            # The first stake: a share of an empty pot means nothing yet (issue 23).
            lines = [
                head,
                "You are the first to predict here: the pot is only your stake so far.",
                f"If {label} wins you get back at least your **{points(q.amount)} points**, "
                "plus what others stake on other outcomes until predictions close.",
            ]
        else:
            lines = [
                head,
                f"Share of the pot {move} · return {ratio(q.pot_after, staked)}.",
                f"If {label} wins you get **~{points(q.payout)} points** (the pot keeps "
                "changing until predictions close).",
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
    pending = len({p.market_id for p in portfolio.positions if p.status == "resolving"})
    if pending:  # valued as in the list below, until the result is paid
        markets = "market" if pending == 1 else "markets"
        embed.description += f" · {pending} {markets} pending result"
    # A sold-out amm position (0 shares) before settlement is worth nothing and holds nothing:
    # not listed (issue 23); its realised profit shows in the leaderboard and the history.
    shown = [
        p
        for p in portfolio.positions
        if not (p.mechanism == "amm" and p.shares == 0 and p.status in UNSETTLED)
    ]
    if not shown:
        embed.description += "\nNo positions yet. Find a market with `/market list`."
    for p in shown[: limits.EMBED_FIELDS]:
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
        if p.status == "resolved":
            state = "won" if p.won else "lost"
        elif p.status == "cancelled":
            state = "cancelled, refunded"
        elif p.status == "resolving":
            state = f"pending result · was {percent(p.probability)}"
        else:
            state = f"now {percent(p.probability)}"
        embed.add_field(
            name=fit(
                f"{STATUS_BADGE.get(p.status, '')} #{p.market_id} · {escape(p.question)}", 256
            ),
            value=fit(
                f"{escape(p.label)}: {held} · {worth} · profit "
                f"{signed(p.profit)}{' if it wins' if p.pays_if_wins else ''} · {state}",
                limits.FIELD_VALUE,
            ),
            inline=False,
        )
    if len(shown) > limits.EMBED_FIELDS:
        embed.set_footer(text=f"{len(shown) - limits.EMBED_FIELDS} more not shown")
    return limits.embed_fit(embed)


def holdings_text(m: MarketSummary, holdings: Sequence[Any], balance: int | None) -> str:
    """ "My position": each outcome held, what it cost and what it is worth; a position sold to
    nothing says so ("all sold", not "0.00 shares · worth 0 now"), and once the market is
    settled each says what it paid, won or lost, or its refund — not a worth "now" (issue 23
    item 8, as `/portfolio`)."""
    if not holdings:
        text = f"You have no position in #{m.id}."
    else:
        lines = [f"Your position in #{m.id}:"]
        for h in holdings:
            label = fit(escape(h.label), 100)
            lines.append(f"• **{label}**: {_holding_line(m, h)}")
        text = "\n".join(lines)
    if balance is not None:
        text += f"\nBalance: {points(balance)} points."
    return fit(text, limits.CONTENT)


def _holding_line(m: MarketSummary, h: Any) -> str:
    spent = f"spent {points(h.points_spent)}"
    if m.mechanism == "amm" and not h.shares:  # sold to nothing (a cancel still refunds the rest)
        held = f"all sold · {spent} · got back {points(h.points_received)}"
        return held + (
            f" · cancelled, refunded {points(h.value)}" if m.status == "cancelled" else ""
        )
    held = f"{shares(h.shares)} shares" if m.mechanism == "amm" else "staked"
    if m.status == "cancelled":
        return f"{held} · {spent} · cancelled, refunded {points(h.value)}"
    if m.status == "resolved":
        won = h.outcome == m.winning_position
        return f"{held} · {spent} · " + (f"won, paid {points(h.value)}" if won else "lost")
    if m.mechanism == "amm":
        worth = f"worth {points(h.value)} now"
    else:  # one outcome wins: a stake's payout is conditional, never a sum (DOMAIN §5)
        worth = f"if it wins you get ~{points(h.value)} points"
    pending = " · pending result" if m.status == "resolving" else ""
    return f"{held} · {spent} · {worth}{pending}"
