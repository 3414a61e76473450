"""One-click predictions (issue 26): the server's quick amounts (`quick_amounts`, default 10 /
100 / 1,000 points) under a market message.

On a pool a click stakes at once and answers with an ephemeral receipt and an **Undo** button
that takes the stake back within `UNDO_SECONDS` (`betting.services.stake_undo`); on a market
maker it opens the quote of that amount, to Confirm as any quote (prices move, DOMAIN §4.6).

The message already has the Buy row(s) and the action row, so the quick amounts take what is
left of Discord's 5 rows of 5 buttons (DOMAIN §8): a row of buttons per outcome when every
outcome gets one, else a single select of outcome × amount (at most 25 options; with many
outcomes, each outcome keeps the smallest amounts that fit)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Self

import discord

from betting.services import UNDO_SECONDS, stake_undo
from markets.selectors import MarketSummary

from .. import actions, limits, render
from ..interactions import Reply
from ..responders import bot_of, responder
from .base import _B36, MSG_NOT_YOUR_QUOTE, b36, closed_text
from .quotes import quote_or_trade

QUICK_ID = r"pm:qa:(?P<market>\d{1,19}):(?P<outcome>\d{1,2}):(?P<amount>[0-9a-z]{1,13})"
"""At most 42 characters (`pm:qa:` 6 + market 19 + outcome 2 + amount 13 + 2 separators)."""
QUICK_PICK_ID = r"pm:qapick:(?P<market>\d{1,19})"
UNDO_ID = rf"pm:undo:(?P<stake>{_B36}):(?P<user>{_B36})"
"""The stake's interaction id (its key is `discord:<id>`) and who placed it."""
DEFAULT_AMOUNTS = (10, 100, 1000)
MSG_UNDONE = (
    "↩️ Undone: your stake of **{amount}** points on **{label}** (#{market_id}) is back in your "
    "wallet.{balance}"
)
MSG_UNDONE_AGAIN = (
    "Already undone: your stake of **{amount}** points on **{label}** (#{market_id}) was given "
    "back once; nothing more was paid."
)
MSG_UNDO_HINT = "\n-# Changed your mind? **Undo** takes it back within {seconds} seconds."

AmountsLookup = Callable[[int], Sequence[int]]
_lookup: list[AmountsLookup] = []


def amounts_lookup_set(lookup: AmountsLookup) -> None:
    """How the market message finds a guild's quick amounts (the bot's policy cache)."""
    _lookup[:] = [lookup]


def amounts_of(guild_id: int) -> tuple[int, ...]:
    if not _lookup:
        return DEFAULT_AMOUNTS
    return tuple(_lookup[0](guild_id)) or DEFAULT_AMOUNTS


class QuickButton(discord.ui.DynamicItem[discord.ui.Button], template=QUICK_ID):
    """`amount` points on one outcome, in one click."""

    def __init__(
        self, market_id: int, outcome: int, amount: int, label: str = "", *, row: int | None = None
    ):
        self.market_id, self.outcome, self.amount = market_id, outcome, amount
        text = f"{amount:,} on {label}" if label else f"{amount:,}"
        super().__init__(
            discord.ui.Button(
                label=limits.fit(text, limits.BUTTON_LABEL),
                style=discord.ButtonStyle.primary,
                custom_id=f"pm:qa:{market_id}:{outcome}:{b36(amount)}",
            ),
            row=row,
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /
    ) -> Self:
        return cls(int(match["market"]), int(match["outcome"]), int(match["amount"], 36))

    async def callback(self, interaction: discord.Interaction) -> None:
        await quick_click(interaction, self.market_id, self.outcome, self.amount)


class QuickSelect(discord.ui.DynamicItem[discord.ui.Select], template=QUICK_PICK_ID):
    """Outcome × amount in one select, where a row of buttons per outcome does not fit."""

    def __init__(self, market_id: int, options: list[discord.SelectOption] | None = None, **kw):
        self.market_id = market_id
        super().__init__(
            discord.ui.Select(
                custom_id=f"pm:qapick:{market_id}",
                placeholder="Quick amounts: pick an outcome and an amount",
                options=options or [discord.SelectOption(label="-", value="0:0")],
                min_values=1,
                max_values=1,
            ),
            **kw,
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /
    ) -> Self:
        return cls(int(match["market"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        value = (self.item.values or ["-1:0"])[0]
        outcome, _, amount = value.partition(":")
        try:
            picked = (int(outcome), int(amount, 36))
        except ValueError:
            picked = (-1, 0)
        await quick_click(interaction, self.market_id, *picked)


def quick_items(m: MarketSummary, first_row: int, amounts: Sequence[int]) -> list[discord.ui.Item]:
    """The quick amounts of an open market from row `first_row` on (DOMAIN §8's 5 rows)."""
    if not m.is_open or not amounts or first_row > 4:
        return []
    outcomes = m.outcomes[:10]
    free_rows = 5 - first_row
    amounts = list(dict.fromkeys(amounts))[:5]
    if len(outcomes) <= free_rows:
        return [
            QuickButton(m.id, o.position, a, o.label, row=first_row + i)
            for i, o in enumerate(outcomes)
            for a in amounts
        ]
    each = max(1, min(len(amounts), limits.SELECT_OPTIONS // len(outcomes)))
    options = [
        discord.SelectOption(
            label=limits.fit(f"{a:,} points on {o.label}", limits.SELECT_LABEL),
            value=f"{o.position}:{b36(a)}",
        )
        for o in outcomes
        for a in sorted(amounts)[:each]
    ]
    return [QuickSelect(m.id, options[: limits.SELECT_OPTIONS], row=first_row)]


@responder("market.quick")
async def quick_click(
    interaction: discord.Interaction, market_id: int, outcome: int, amount: int
) -> Reply:
    """A pool: the stake at once, with its receipt and Undo. A market maker: the quote."""
    summary = await bot_of(interaction).db(
        actions.market_in_guild, guild_id=interaction.guild_id, market=market_id
    )
    if not summary.is_open:
        return Reply(content=closed_text(market_id, summary.status))
    pool = summary.mechanism != "amm"
    reply = await quote_or_trade(
        interaction,
        actions.quote_buy_for_interaction,
        confirm=not pool,
        market=market_id,
        outcome=str(outcome + 1),
        amount=amount,
    )
    if pool and reply.view is None:  # staked (a refusal carries its own text and no Undo)
        reply.content += MSG_UNDO_HINT.format(seconds=UNDO_SECONDS)
        view = discord.ui.View(timeout=None)
        view.add_item(UndoButton(interaction.id, interaction.user.id))
        view.stop()  # a DynamicItem: the bot dispatches it by its custom_id
        reply.view = view
    return reply


class UndoButton(discord.ui.DynamicItem[discord.ui.Button], template=UNDO_ID):
    def __init__(self, stake_id: int, user_id: int):
        self.stake_id, self.user_id = stake_id, user_id
        super().__init__(
            discord.ui.Button(
                label="Undo",
                emoji="↩️",
                style=discord.ButtonStyle.secondary,
                custom_id=f"pm:undo:{b36(stake_id)}:{b36(user_id)}",
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /
    ) -> Self:
        return cls(int(match["stake"], 36), int(match["user"], 36))

    async def callback(self, interaction: discord.Interaction) -> None:
        await undo_click(interaction, self)


def _not_yours(interaction: discord.Interaction, button: UndoButton) -> str | None:
    return MSG_NOT_YOUR_QUOTE if interaction.user.id != button.user_id else None


@responder("market.quick.undo", reply="edit", refuse_first=_not_yours)
async def undo_click(interaction: discord.Interaction, button: UndoButton) -> Reply:
    """Take the stake back (the service checks the 10 seconds and that the market is open; a
    second click answers with the first undo and pays nothing)."""
    done = await bot_of(interaction).db(
        stake_undo,
        guild_id=interaction.guild_id,
        user_id=interaction.user.id,
        stake_key=f"discord:{button.stake_id}",
    )
    words = dict(
        amount=f"{done.amount:,}", label=limits.escape(done.label), market_id=done.market_id
    )
    if done.repeated:
        text = MSG_UNDONE_AGAIN.format(**words)
    else:
        balance = (
            f" Balance: **{render.points(done.balance_after)}** points."
            if done.balance_after is not None
            else ""
        )
        text = MSG_UNDONE.format(balance=balance, **words)
    return Reply(content=text, edit=True, view=discord.ui.View(timeout=None))
