"""Limit orders (DOMAIN §4.7): `/order buy`, `/order sell`, `/order cancel` and `/orders`.

Thin (STYLE §8): each command parses its options, awaits one `discordbot.actions.orders` use case
through `bot.db`, and renders the order. Replies are private: an order is the member's own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from points.errors import MAX_AMOUNT

from ..actions import orders as order_actions
from ..autocomplete import market_autocomplete, outcome_autocomplete
from ..interactions import Reply, idempotency_key
from ..market_ui.orders import cancelled_text, orders_reply, placed_text
from ..responders import responder

if TYPE_CHECKING:
    from ..bot import PredictionBot


class Orders(commands.Cog):
    """Limit orders: trade with the market maker when the price reaches your limit."""

    order = app_commands.Group(
        name="order",
        description="Leave an order that trades when the price reaches your limit",
        guild_only=True,
    )

    def __init__(self, bot: PredictionBot) -> None:
        self.bot = bot

    async def _place(self, interaction: discord.Interaction, **fields: Any) -> Reply:
        order = await self.bot.db(
            order_actions.order_place_for_interaction,
            guild_id=interaction.guild_id,
            user_id=interaction.user.id,
            idempotency_key=idempotency_key(interaction),
            **fields,
        )
        return Reply(content=placed_text(order))

    @order.command(name="buy")
    @app_commands.describe(
        market="The market (type to search)",
        outcome="The outcome to buy",
        amount="Points to spend at most",
        limit="Buy while the outcome is at or under this percentage, e.g. 40",
        expires="Optional: how long the order waits, e.g. 90m, 2h or 1d",
    )
    @app_commands.autocomplete(market=market_autocomplete(["open"]), outcome=outcome_autocomplete)
    @responder("order.buy")
    async def buy(
        self,
        interaction: discord.Interaction,
        market: str,
        outcome: str,
        amount: app_commands.Range[int, 1, MAX_AMOUNT],
        limit: app_commands.Range[str, 1, 10],
        expires: app_commands.Range[str, 1, 20] | None = None,
    ) -> Reply:
        """Buy an outcome when its price falls to your limit."""
        return await self._place(
            interaction, market=market, outcome=outcome, side="buy", limit=limit,
            amount=amount, expires=expires,
        )  # fmt: skip

    @order.command(name="sell")
    @app_commands.describe(
        market="The market (type to search)",
        outcome="The outcome whose shares you sell",
        limit="Sell while the outcome is at or over this percentage, e.g. 80",
        shares="How many shares, e.g. 2.5, or “all” (default)",
        expires="Optional: how long the order waits, e.g. 90m, 2h or 1d",
    )
    @app_commands.autocomplete(market=market_autocomplete(["open"]), outcome=outcome_autocomplete)
    @responder("order.sell")
    async def sell(
        self,
        interaction: discord.Interaction,
        market: str,
        outcome: str,
        limit: app_commands.Range[str, 1, 10],
        shares: app_commands.Range[str, 1, 25] = "all",
        expires: app_commands.Range[str, 1, 20] | None = None,
    ) -> Reply:
        """Sell shares when their price rises to your limit."""
        return await self._place(
            interaction, market=market, outcome=outcome, side="sell", limit=limit,
            shares=shares, expires=expires,
        )  # fmt: skip

    @order.command(name="cancel")
    @app_commands.describe(order="The order's number, as /orders lists it")
    @responder("order.cancel")
    async def cancel(
        self, interaction: discord.Interaction, order: app_commands.Range[int, 1, 2**53]
    ) -> Reply:
        """Cancel one of your waiting orders."""
        cancelled = await self.bot.db(
            order_actions.order_cancel_for_interaction,
            guild_id=interaction.guild_id,
            user_id=interaction.user.id,
            order_id=order,
        )
        return Reply(content=cancelled_text(cancelled, changed=True))

    @app_commands.command(name="orders")
    @app_commands.guild_only()
    @app_commands.describe(market="Only this market (default: all)")
    @app_commands.autocomplete(market=market_autocomplete(["open"]))
    @responder("orders")
    async def orders(self, interaction: discord.Interaction, market: str | None = None) -> Reply:
        """Your waiting limit orders, each with a button that cancels it."""
        rows = await self.bot.db(
            order_actions.orders_for_interaction,
            guild_id=interaction.guild_id,
            user_id=interaction.user.id,
            market=market,
        )
        where = f" on market {market}" if market else ""
        return orders_reply(rows, user_id=interaction.user.id, where=where)


async def setup(bot: PredictionBot) -> None:
    await bot.add_cog(Orders(bot))
