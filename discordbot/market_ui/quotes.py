"""The quote a member confirms before a trade (DOMAIN §4.6), and the creator's button that takes
back a market just created."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any, Self

import discord

from markets.amm import SHARE_SCALE
from markets.errors import SlippageExceeded

from .. import actions, interactions, parsing, recovery, render
from ..interactions import Reply
from ..responders import bot_of, responder, trade
from ..results import Quote, TradeResult
from .base import (
    _B36,
    _B36_WIDE,
    CANCEL_ID,
    CONFIRM_ID,
    MSG_NOT_YOUR_QUOTE,
    MSG_QUOTE_CANCELLED,
    MSG_QUOTE_EXPIRED,
    MSG_WITHDRAWN,
    QUOTE_SECONDS,
    WITHDRAW_ID,
    b36,
)

REQUOTE_ID = (
    rf"pm:rq:(?P<market>{_B36}):(?P<outcome>\d{{1,2}}):(?P<amount>{_B36_WIDE}):(?P<user>{_B36})"
)
"""A slippage refusal's "Fresh quote" button: the same buy (market, outcome position, amount)
quoted again at today's price, for the member who was refused (issue 23)."""
REQUOTE_SELL_ID = (
    rf"pm:rs:(?P<market>{_B36}):(?P<outcome>\d{{1,2}}):(?P<shares>{_B36_WIDE}):(?P<user>{_B36})"
)
"""The same for a refused sale: the same micro-shares of the same outcome, quoted again."""


def _cleared(content: str) -> Reply:
    """The clicked message edited to `content`, its buttons gone."""
    return Reply(content=content, edit=True, view=discord.ui.View(timeout=None))


class QuoteConfirmButton(discord.ui.DynamicItem[discord.ui.Button], template=CONFIRM_ID):
    """Confirm a quote: trades what was quoted with the quote's slippage limit. The id carries
    the trade (market, outcome, amount or micro-shares, limit), who asked and the quote's
    interaction id (its creation time, and the trade's idempotency key, so a double click
    trades once)."""

    def __init__(
        self,
        kind: str,
        market_id: int,
        outcome: int,
        quantity: int,
        limit: int,
        user_id: int,
        quote_id: int,
    ):
        self.kind, self.market_id, self.outcome = kind, market_id, outcome
        self.quantity, self.limit, self.user_id, self.quote_id = quantity, limit, user_id, quote_id
        parts = (market_id, outcome, quantity, limit, user_id, quote_id)
        custom_id = f"pm:qc:{kind}:" + ":".join(
            str(p) if i == 1 else b36(p) for i, p in enumerate(parts)
        )
        super().__init__(
            discord.ui.Button(
                label="Confirm", style=discord.ButtonStyle.success, custom_id=custom_id
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /
    ) -> Self:
        return cls(
            match["kind"],
            int(match["market"], 36),
            int(match["outcome"]),
            int(match["quantity"], 36),
            int(match["limit"], 36),
            int(match["user"], 36),
            int(match["quote"], 36),
        )

    async def callback(self, interaction: discord.Interaction) -> None:
        await quote_confirm(interaction, self)


def _not_yours(
    interaction: discord.Interaction,
    button: QuoteConfirmButton | QuoteCancelButton | RequoteButton | RequoteSellButton,
) -> str | None:
    """A quote's buttons answer only the member who asked for it."""
    return MSG_NOT_YOUR_QUOTE if interaction.user.id != button.user_id else None


class QuoteCancelButton(discord.ui.DynamicItem[discord.ui.Button], template=CANCEL_ID):
    def __init__(self, user_id: int):
        self.user_id = user_id
        super().__init__(
            discord.ui.Button(
                label="Cancel",
                style=discord.ButtonStyle.secondary,
                custom_id=f"pm:qx:{b36(user_id)}",
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /
    ) -> Self:
        return cls(int(match["user"], 36))

    async def callback(self, interaction: discord.Interaction) -> None:
        await quote_cancel(interaction, self)


@responder("trade.cancel", reply="edit", refuse_first=_not_yours)
async def quote_cancel(interaction: discord.Interaction, button: QuoteCancelButton) -> Reply:
    return _cleared(MSG_QUOTE_CANCELLED)


class WithdrawButton(discord.ui.DynamicItem[discord.ui.Button], template=WITHDRAW_ID):
    """The creator takes back a market just created (the service checks creator, 60 s, no
    trades)."""

    def __init__(self, market_id: int, user_id: int):
        self.market_id, self.user_id = market_id, user_id
        super().__init__(
            discord.ui.Button(
                label="Cancel this market",
                style=discord.ButtonStyle.danger,
                custom_id=f"pm:wd:{b36(market_id)}:{b36(user_id)}",
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /
    ) -> Self:
        return cls(int(match["market"], 36), int(match["user"], 36))

    async def callback(self, interaction: discord.Interaction) -> None:
        await market_withdraw(interaction, self.market_id)


@responder("market.withdraw", reply="edit")
async def market_withdraw(interaction: discord.Interaction, market_id: int) -> Reply:
    summary = await bot_of(interaction).db(
        actions.market_withdraw_for_interaction,
        guild_id=interaction.guild_id,
        actor=interactions.actor(interaction),
        market=market_id,
        idempotency_key=f"discord:withdraw:{market_id}",
    )
    return _cleared(MSG_WITHDRAWN.format(market_id=summary.id))


class RequoteButton(discord.ui.DynamicItem[discord.ui.Button], template=REQUOTE_ID):
    """One click from a slippage refusal to a fresh quote of the same buy, to Confirm."""

    def __init__(self, market_id: int, outcome: int, amount: int, user_id: int):
        self.market_id, self.outcome, self.amount, self.user_id = (
            market_id,
            outcome,
            amount,
            user_id,
        )
        super().__init__(
            discord.ui.Button(
                label="Fresh quote",
                style=discord.ButtonStyle.primary,
                custom_id=f"pm:rq:{b36(market_id)}:{outcome}:{b36(amount)}:{b36(user_id)}",
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /
    ) -> Self:
        return cls(
            int(match["market"], 36),
            int(match["outcome"]),
            int(match["amount"], 36),
            int(match["user"], 36),
        )

    async def callback(self, interaction: discord.Interaction) -> None:
        await requote(interaction, self)


@responder("trade.requote", reply="edit", refuse_first=_not_yours)
async def requote(interaction: discord.Interaction, button: RequoteButton) -> Reply:
    """The refusal is replaced by a fresh quote of the same buy, with Confirm / Cancel."""
    reply = await quote_or_trade(
        interaction,
        actions.quote_buy_for_interaction,
        confirm=True,
        market=button.market_id,
        outcome=str(button.outcome + 1),
        amount=button.amount,
    )
    reply.edit = True
    return reply


class RequoteSellButton(discord.ui.DynamicItem[discord.ui.Button], template=REQUOTE_SELL_ID):
    """One click from a refused sale to a fresh quote of the same shares, to Confirm."""

    def __init__(self, market_id: int, outcome: int, shares: int, user_id: int):
        self.market_id, self.outcome, self.shares, self.user_id = (
            market_id,
            outcome,
            shares,
            user_id,
        )
        super().__init__(
            discord.ui.Button(
                label="Fresh quote",
                style=discord.ButtonStyle.primary,
                custom_id=f"pm:rs:{b36(market_id)}:{outcome}:{b36(shares)}:{b36(user_id)}",
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /
    ) -> Self:
        return cls(
            int(match["market"], 36),
            int(match["outcome"]),
            int(match["shares"], 36),
            int(match["user"], 36),
        )

    async def callback(self, interaction: discord.Interaction) -> None:
        await requote_sell(interaction, self)


@responder("trade.requote_sell", reply="edit", refuse_first=_not_yours)
async def requote_sell(interaction: discord.Interaction, button: RequoteSellButton) -> Reply:
    """The refusal is replaced by a fresh quote of selling the same shares (as typed: exact
    micro-shares), with Confirm / Cancel."""
    whole, micro = divmod(button.shares, SHARE_SCALE)
    reply = await quote_or_trade(
        interaction,
        actions.quote_sell_for_interaction,
        confirm=True,
        market=button.market_id,
        outcome=str(button.outcome + 1),
        shares=f"{whole}.{micro:06d}",
    )
    reply.edit = True
    return reply


def price_moved_reply(
    refusal: SlippageExceeded, interaction: discord.Interaction, *, selling: bool, **trade: int
) -> Reply:
    """A slippage refusal as the member reads it, with a "Fresh quote" button: the same buy
    (`amount` points) or the same sale (`shares`) quoted at the price now (issue 23 item 10)."""
    view = discord.ui.View(timeout=None)
    market_id, outcome, user_id = trade["market_id"], trade["outcome"], interaction.user.id
    if selling:
        view.add_item(RequoteSellButton(market_id, outcome, trade["shares"], user_id))
    else:
        view.add_item(RequoteButton(market_id, outcome, trade["amount"], user_id))
    view.stop()  # a DynamicItem: the bot dispatches it by its custom_id
    return Reply(content=refusal.message, view=view)


def withdraw_view(market_id: int, user_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(WithdrawButton(market_id, user_id))
    return view


def quote_reply(q: Quote, interaction: discord.Interaction) -> Reply:
    """The ephemeral preview with Confirm / Cancel."""
    quote_id = interaction.id
    expires = discord.utils.snowflake_time(quote_id) + dt.timedelta(seconds=QUOTE_SECONDS)
    quantity = q.amount if q.kind in ("buy", "stake") else q.asked
    view = discord.ui.View(timeout=None)
    view.add_item(
        QuoteConfirmButton(
            "s" if q.kind == "sell" else "b",
            q.market.id,
            q.outcome,
            quantity,
            q.limit,
            interaction.user.id,
            quote_id,
        )
    )
    view.add_item(QuoteCancelButton(interaction.user.id))
    return Reply(content=render.quote_text(q, expires_at=expires), view=view)


@responder("trade.confirm", reply="edit", refuse_first=_not_yours)
async def quote_confirm(interaction: discord.Interaction, button: QuoteConfirmButton) -> Reply:
    """Trade what the quote showed, unless it is someone else's, expired, or the price moved
    beyond the limit (then the service refuses and nothing moves, DOMAIN §4.6)."""
    quoted_at = discord.utils.snowflake_time(button.quote_id)
    # The quote's id is on Discord's clock: its age is read on the host clock less the skew
    # (`discordbot.clock`, issue 23 item 15), so a host ahead does not expire quotes early.
    skew = getattr(getattr(interaction.client, "clock", None), "skew", None) or 0.0
    if (discord.utils.utcnow() - quoted_at).total_seconds() - skew > QUOTE_SECONDS:
        return _cleared(MSG_QUOTE_EXPIRED.format(minutes=QUOTE_SECONDS // 60))
    try:
        result = await trade_quoted(
            interaction,
            selling=button.kind == "s",
            market_id=button.market_id,
            outcome=button.outcome,
            quantity=button.quantity,
            limit=button.limit,
            idempotency_key=f"discord:{button.quote_id}:confirm",
        )
    except SlippageExceeded as refusal:
        reply = price_moved_reply(
            refusal,
            interaction,
            selling=button.kind == "s",
            market_id=button.market_id,
            outcome=button.outcome,
            amount=button.quantity,
            shares=button.quantity,
        )
        reply.edit = True
        return reply
    return _cleared(render.trade_text(result))


async def trade_quoted(
    interaction: discord.Interaction,
    *,
    selling: bool,
    market_id: int,
    outcome: int,
    quantity: int,
    limit: int,
    idempotency_key: str,
) -> TradeResult:
    """Trade what a quote showed: `quantity` points to buy or stake with, or micro-shares to
    sell, refused beyond the quote's slippage `limit` (0: none, a stake's)."""
    return await trade(
        interaction,
        kind="sell" if selling else "buy",
        market_id=market_id,
        outcome=outcome,
        amount=None if selling else quantity,
        shares=quantity if selling else None,
        min_shares=None if selling else (limit or None),
        min_points=(limit or None) if selling else None,
        idempotency_key=idempotency_key,
    )


async def quote_seen(
    interaction: discord.Interaction,
    *,
    market: object,
    outcome: object,
    amount: int,
    check_balance: bool,
) -> Quote:
    """A buy priced on the bot's snapshot of the market and the guild's settings
    (`discordbot.snapshots`): for a quote to confirm, with the member's balance read in one
    read with every member of the guild asking at the same time; for the one-step path no read
    at all (the batch checks the balance, and applies the quote's slippage limit at the
    request's turn)."""
    bot, guild_id, snap, gs = await _seen(interaction, market)
    if not check_balance:
        return actions.quote_buy_seen_unchecked(
            snap.summary, gs, guild_id=guild_id, outcome=outcome, amount=amount
        )
    actions.quote_buy_seen_unchecked(  # refuse what the market refuses before any read
        snap.summary, gs, guild_id=guild_id, outcome=outcome, amount=amount
    )
    user_id = interaction.user.id
    balance = await recovery.resolved(lambda: bot.snapshots.balance(guild_id, user_id))
    return actions.quote_buy_seen(
        snap.summary, gs, guild_id=guild_id, outcome=outcome, amount=amount, balance=balance
    )


async def sell_quote_seen(
    interaction: discord.Interaction, *, market: object, outcome: object, shares: object
) -> Quote:
    """A sale priced on the bot's snapshot of the market and the guild's settings, with the
    member's holding read in one read with every member asking about the market at the same
    time (the batch re-checks the holding and the slippage limit at the request's turn)."""
    bot, guild_id, snap, gs = await _seen(interaction, market)
    position, asked = actions.sell_seen(
        snap.summary, guild_id=guild_id, outcome=outcome, shares=shares
    )
    user_id, market_id = interaction.user.id, snap.summary.id
    held = await recovery.resolved(lambda: bot.snapshots.held(market_id, user_id, position))
    return actions.quote_sell_seen(snap.summary, gs, position=position, shares=asked, held=held)


async def _seen(interaction: discord.Interaction, market: object) -> tuple[Any, int, Any, Any]:
    """The bot, the guild, the market's snapshot and the guild's settings (reads the snapshot
    needs recover as every `bot.db` call does: a restarting database)."""
    assert interaction.guild_id is not None  # `respond` answered outside a guild already
    bot = bot_of(interaction)
    guild_id = interaction.guild_id
    market_id = parsing.market_ref(market)
    snap = await recovery.resolved(lambda: bot.snapshots.market(market_id))
    gs = await recovery.resolved(lambda: bot.snapshots.settings(guild_id))
    return bot, guild_id, snap, gs


async def quote_or_trade(
    interaction: discord.Interaction,
    use_case: Callable[..., Quote],
    *,
    confirm: bool,
    **ask: Any,
) -> Reply:
    """The quote `use_case` gives the member for what they asked (`ask`: the market, the
    outcome, the amount or shares as typed), to confirm; or with `confirm` off (`/bet`,
    `/sell`) its trade at once, within the quote's slippage limit. A buy is priced on the
    bot's snapshot of the market (`quote_seen`, `sell_quote_seen`): the one-step buy reads
    nothing before the queue."""
    if use_case is actions.quote_buy_for_interaction:
        quote = await quote_seen(interaction, check_balance=confirm, **ask)
    elif use_case is actions.quote_sell_for_interaction:
        quote = await sell_quote_seen(interaction, **ask)
    else:
        quote = await bot_of(interaction).db(
            use_case, guild_id=interaction.guild_id, user_id=interaction.user.id, **ask
        )
    if confirm:
        return quote_reply(quote, interaction)
    selling = quote.kind == "sell"
    try:
        result = await trade_quoted(
            interaction,
            selling=selling,
            market_id=quote.market.id,
            outcome=quote.outcome,
            quantity=quote.asked if selling else quote.amount,
            limit=quote.limit,
            idempotency_key=interactions.idempotency_key(interaction),
        )
    except SlippageExceeded as refusal:
        return price_moved_reply(
            refusal,
            interaction,
            selling=selling,
            market_id=quote.market.id,
            outcome=quote.outcome,
            amount=quote.amount,
            shares=quote.asked,
        )
    return Reply(content=render.trade_text(result))
