"""The notifier's texts: announcements, proposals, disputes, decisions, results, settlements."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import discord

from markets.selectors import MarketSummary
from points.models import GuildSettings
from points.rules import resolution_how

from .. import limits
from ..limits import escape, fit
from ..results import LateTrades, TraderResult
from .base import (
    STATUS_COLOUR,
    market_title,
    points,
    shares,
    signed,
    timestamp,
)
from .guild import (
    duration_words,
)


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
    late = known_at_dm_note(payload, None, public=True)
    return fit(f"{head} {tail}{late}", limits.CONTENT)


MSG_KNOWN_AT_NONE = (
    "↩️ It says the outcome was known at {when}; no trade was made after it, so nothing is reversed."
)
MSG_KNOWN_AT_LATE = (
    "↩️ It says the outcome was known at {when}: the {count} trade{s} made after it would be "
    "reversed before the payout."
)
MSG_KNOWN_AT_YOURS = (
    " {count} of them {are} yours: you would get back the {spent} points {they} spent{sold}."
)
MSG_KNOWN_AT_SOLD = " and give back the {received} points {your} sales paid"
MSG_KNOWN_AT_NOT_YOURS = " None of them is yours."


def known_at_dm_note(payload: dict, mine: LateTrades | None, *, public: bool = False) -> str:
    """What a proposal with `known_at` would reverse (docs/domain.md §6.2): the moment, how
    many trades in all (the proposal's `reversible`), and — unless `public` — what of the
    trader's own (`mine`)."""
    raw = payload.get("known_at")
    if not raw:
        return ""
    when = timestamp(dt.datetime.fromisoformat(raw), "f")
    count = int(payload.get("reversible") or 0)
    if count == 0:
        return " " + MSG_KNOWN_AT_NONE.format(when=when)
    text = MSG_KNOWN_AT_LATE.format(when=when, count=count, s="" if count == 1 else "s")
    if public:
        return f" {text}"
    if mine is None or not mine.trades:
        return f" {text}{MSG_KNOWN_AT_NOT_YOURS}"
    one = mine.trades == 1
    sold = (
        MSG_KNOWN_AT_SOLD.format(received=points(mine.received), your="its" if one else "your")
        if mine.received
        else ""
    )
    yours = MSG_KNOWN_AT_YOURS.format(
        count=mine.trades,
        are="is" if one else "are",
        spent=points(mine.spent),
        they="it" if one else "they",
        sold=sold,
    )
    return f" {text}{yours}"


def proposed_dm(m: MarketSummary, payload: dict, *, late: str = "") -> str:
    """A trader's DM when a result is proposed: what, how long to dispute it, and with
    `known_at` what would be reversed (`late`, from `known_at_dm_note`)."""
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
    return fit(f"{head} {body}{late}{tail}", limits.CONTENT)


MSG_FILLS_HEAD = "📬 Your limit orders on #{market_id} “{question}” traded:"
MSG_FILL_BUY = "• Order #{order}: bought {shares} shares of **{label}** for {amount} points"
MSG_FILL_SELL = "• Order #{order}: sold {shares} shares of **{label}** for {amount} points"
MSG_FILLS_TAIL = "What still waits, with buttons to cancel it: `/orders`."


def fills_dm(m: MarketSummary, fills: Sequence[dict]) -> str:
    """One DM for a member's order fills on one market (the `trade` payloads of the fills, in
    order): per order what it bought or sold in all, and in how many fills (DOMAIN §4.7)."""
    totals: dict[int, dict] = {}
    for f in fills:
        order = totals.setdefault(
            int(f["order_id"]),
            {"kind": f.get("kind"), "label": f.get("label", "?"), "amount": 0, "shares": 0, "n": 0},
        )
        order["amount"] += int(f.get("amount") or 0)
        order["shares"] += int(f.get("shares") or 0)
        order["n"] += 1
    lines = [MSG_FILLS_HEAD.format(market_id=m.id, question=fit(escape(m.question), 200))]
    for order_id, t in totals.items():
        line = (MSG_FILL_SELL if t["kind"] == "sell" else MSG_FILL_BUY).format(
            order=order_id,
            shares=shares(t["shares"]),
            label=fit(escape(str(t["label"])), 100),
            amount=points(t["amount"]),
        )
        lines.append(line + (f" ({t['n']} fills)." if t["n"] > 1 else "."))
    lines.append(f"{MSG_FILLS_TAIL} {MSG_DM_FOOTER}")
    return fit("\n".join(lines), limits.CONTENT)


MSG_ENDED_HEAD = {
    "expired": "⌛ Your limit {orders} on #{market_id} “{question}” expired:",
    "closed": "🔒 #{market_id} “{question}” closed, so your limit {orders} on it ended:",
    "cancelled": "↩️ #{market_id} “{question}” was cancelled, so your limit {orders} on it ended:",
}
MSG_ENDED_BUY = (
    "• Order #{order}, buy **{label}** at {limit} or less: {amount} points back in your wallet"
)
MSG_ENDED_SELL = (
    "• Order #{order}, sell **{label}** at {limit} or more: {shares} shares left unsold"
)
MSG_ENDED_FILLED = " (it had {verb} {shares} shares for {amount} points)"


def orders_ended_dm(m: MarketSummary, orders: Sequence[Any], why: str) -> str:
    """One DM for a member's limit orders that ended on their own (DOMAIN §4.7): `why` is
    "expired", "closed" or "cancelled"; `orders` are `betting.selectors.EndedOrder`s. What each
    gave back, and what it had traded before."""
    lines = [
        MSG_ENDED_HEAD[why].format(
            orders="orders" if len(orders) > 1 else "order",
            market_id=m.id,
            question=fit(escape(m.question), 200),
        )
    ]
    for o in orders:
        buy = o.side == "buy"
        line = (MSG_ENDED_BUY if buy else MSG_ENDED_SELL).format(
            order=o.order_id,
            label=fit(escape(str(o.label)), 100),
            limit=f"{o.limit_ppm / 10_000:g} %",
            amount=points(o.remaining),
            shares=shares(o.remaining),
        )
        if o.filled_shares:
            line += MSG_ENDED_FILLED.format(
                verb="bought" if buy else "sold",
                shares=shares(o.filled_shares),
                amount=points(o.filled_points),
            )
        lines.append(line + ".")
    lines.append(MSG_DM_FOOTER)
    return fit("\n".join(lines), limits.CONTENT)


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
MSG_DISPUTE_EXPIRED_DM = (
    "Moderators did not decide on the result of #{market_id} you disputed in time, so the market "
    "was cancelled."
)


def dispute_reminder(
    m: MarketSummary, payload: dict, *, role_ids: Sequence[int], moderators: str
) -> str:
    """The moderators' second ping, half the dispute hold after the first dispute: decide by
    the deadline or the market is cancelled and refunded."""
    label = fit(escape(str(payload.get("label", "?"))), 200)
    ping = " ".join(f"<@&{r}>" for r in role_ids)
    n = int(payload.get("disputes", 1))
    hours = int(payload.get("hold_hours", 48))
    return fit(
        f"{ping + ' ' if ping else ''}⏰ Still held for {moderators}: the disputed result "
        f"**{label}** of #{m.id} “{fit(escape(m.question), 300)}” ({n} dispute"
        f"{'s' if n != 1 else ''}). Half of the {hours} hours are gone: decide "
        f"{_deadline(payload)} with `/market confirm market:{m.id} reason:…` (add `outcome:…` "
        f"to change it) or `/market undo market:{m.id} reason:…`, or the market is cancelled "
        "and every trader refunded.",
        limits.CONTENT,
    )


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


def reversal_note(payload: dict, user_id: int | None = None) -> str:
    """What a settlement with "known at" reversed (docs/domain.md §6.2): for the channel, or for
    one member (their points back or given back); "" when nothing of theirs was reversed."""
    if not payload.get("known_at") or not payload.get("reversed"):
        return ""
    when = timestamp(dt.datetime.fromisoformat(payload["known_at"]), "f")
    if user_id is None:
        count = int(payload["reversed"])
        short = int(payload.get("reversal_shortfall", 0))
        covered = f" The treasury covered {points(short)} points members no longer held." * (
            short > 0
        )
        return (
            f"↩️ {points(count)} trade{'s' * (count != 1)} after {when} reversed: the outcome "
            f"was known then, so they were undone before the payout.{covered}"
        )
    members = payload.get("reversed_members") or {}
    if str(user_id) not in members:
        return ""
    amount = int(members[str(user_id)])
    moved = (
        f"{points(amount)} points back" if amount >= 0 else f"{points(-amount)} points given back"
    )
    return f"↩️ Your trades after {when} were reversed (the outcome was known then): {moved}."


def result_dm(
    m: MarketSummary,
    result: Any,
    *,
    cancelled: bool,
    refunded_all: bool,
    decision: str = "",
    reversal: str = "",
) -> str:
    """One trader's result: won X / lost Y / refunded Z (after `decision`, what moderators
    decided about a proposal this trader disputed, and `reversal`, what "known at" undid)."""
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
    text = f"{reversal} {text}" if reversal else text
    return fit(text + " Turn these messages off with `/notifications off`.", limits.CONTENT)


def settlement_embed(
    m: MarketSummary,
    payload: dict,
    *,
    cancelled: bool,
    results: Sequence[TraderResult] = (),
) -> discord.Embed:
    """The channel summary: winner, total paid, biggest winners — by net gain (payout and sales
    minus what they put in, the figure each trader's DM says), from `results`."""
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
    elif total == 0:
        lines.append(f"Nobody held **{label}** at the end, so nothing was paid out.")
    else:
        lines.append(f"Paid out **{points(total)} points**.")
    if payload.get("refunded_all") and m.trader_count:
        lines.append("Nobody backed the winner, so every stake was refunded.")
    if note := reversal_note(payload):
        lines.append(note)
    gains = sorted(
        ((r.user_id, r.net) for r in results if r.payout > 0 and r.net > 0),
        key=lambda kv: (-kv[1], kv[0]),
    )
    if gains and not payload.get("refunded_all"):
        lines.append("")
        lines.append("Biggest winners (net gain):")
        for rank, (user, amount) in enumerate(gains[:5], 1):
            lines.append(f"{rank}. <@{user}> +{points(amount)}")
    embed.description = "\n".join(lines)
    return limits.embed_fit(embed)
