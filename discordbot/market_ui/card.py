"""The market message itself: its embed and the buttons under it, and Refresh, which redraws it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import discord

from markets.selectors import MarketSummary

from .. import actions, render, selectors
from ..interactions import Reply
from ..responders import bot_of, responder
from ..results import Holders, Predictor
from .base import REFRESH_ID, MarketButton
from .browse import ChartButton, PositionButton
from .dispute import DisputeButton
from .orders import OrderButton
from .quick import amounts_of, quick_items
from .trading import BuyButton, SellButton

if TYPE_CHECKING:
    from ..bot import PredictionBot


class RefreshButton(MarketButton, template=REFRESH_ID):
    key, button_label, button_emoji = "refresh", "Refresh", "🔄"

    async def callback(self, interaction: discord.Interaction) -> None:
        await market_refresh(interaction, self.market_id)


@responder("market.refresh", reply="edit")
async def market_refresh(interaction: discord.Interaction, market_id: int) -> Reply:
    summary, top = await bot_of(interaction).db(
        selectors.market_card, guild_id=interaction.guild_id, market=market_id
    )
    reply = market_reply(summary, top=top)
    reply.edit = True
    # The message's own text stays (the announcement's words, the link to its thread).
    reply.content = getattr(interaction.message, "content", "") or ""
    return reply


def market_view(m: MarketSummary, *, amounts: Sequence[int] | None = None) -> discord.ui.View:
    """The buttons under a market message: Buy per outcome (rows 0–1) while open, then Sell
    (market maker only), My position, Refresh, Chart, Order (market maker, open); Dispute while
    a result is proposed; the quick amounts (the guild's, or `amounts`) in the rows left while
    open (`quick.py`)."""
    view = discord.ui.View(timeout=None)
    last_row = 0
    if m.is_open:
        for o in m.outcomes[:10]:
            verb = "Buy" if m.mechanism == "amm" else "Predict"
            view.add_item(BuyButton(m.id, o.position, o.label, row=o.position // 5, verb=verb))
        last_row = (min(len(m.outcomes), 10) - 1) // 5 + 1
        if m.mechanism == "amm":
            view.add_item(SellButton(m.id, row=last_row))
    view.add_item(PositionButton(m.id, row=last_row))
    view.add_item(RefreshButton(m.id, row=last_row))
    view.add_item(ChartButton(m.id, row=last_row))
    if m.is_open and m.mechanism == "amm":
        view.add_item(OrderButton(m.id, row=last_row))
    if m.status == "resolving":
        view.add_item(DisputeButton(m.id, row=last_row))
    chosen = amounts_of(m.guild_id) if amounts is None else amounts
    for item in quick_items(m, last_row + 1, chosen):
        view.add_item(item)
    return view


def market_reply(
    m: MarketSummary, *, ephemeral: bool = False, top: Sequence[Predictor] | Holders = ()
) -> Reply:
    return Reply(embeds=[render.market_embed(m, top=top)], view=market_view(m), ephemeral=ephemeral)


def copy_recorder(
    bot: PredictionBot, market_id: int
) -> Callable[[discord.Message], Awaitable[None]]:
    """What a reply that posts the market message does once it is sent: record the copy, so
    the notifier keeps it up to date (`actions.market_copy_record`)."""

    async def remember(message: discord.Message) -> None:
        await bot.db(
            actions.market_copy_record,
            market_id=market_id,
            channel_id=message.channel.id,
            message_id=message.id,
        )

    return remember
