"""Buy and Sell on the market message: the buttons, the forms they open and the quotes the forms
ask for (the trade itself waits for the quote's Confirm, `quotes.py`)."""

from __future__ import annotations

import re
from typing import Self

import discord

from points.errors import MAX_AMOUNT

from .. import actions, interactions, limits, parsing, render, selectors
from ..interactions import Reply
from ..responders import Opening, bot_of, opener, responder
from .base import (
    BUY_ID,
    MSG_NO_SELL_POOL,
    MSG_NOTHING_TO_SELL,
    MSG_PICK_SELL,
    SELL_ID,
    SELL_PICK_ID,
    MarketButton,
    closed_text,
)
from .quotes import quote_or_trade


class BuyButton(discord.ui.DynamicItem[discord.ui.Button], template=BUY_ID):
    """Buy one outcome: opens the amount modal."""

    def __init__(
        self,
        market_id: int,
        outcome: int,
        label: str = "",
        *,
        row: int | None = None,
        verb: str = "Buy",
    ):
        self.market_id, self.outcome, self.label = market_id, outcome, label
        super().__init__(
            discord.ui.Button(
                label=limits.fit(f"{verb} {label}" if label else verb, limits.BUTTON_LABEL),
                style=discord.ButtonStyle.success,
                custom_id=f"pm:buy:{market_id}:{outcome}",
            ),
            row=row,
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /
    ) -> Self:
        label = (getattr(item, "label", "") or "").removeprefix("Buy ").removeprefix("Predict ")
        return cls(int(match["market"]), int(match["outcome"]), label)

    async def callback(self, interaction: discord.Interaction) -> None:
        await buy_open(interaction, self.market_id, self.outcome, self.label)


class SellButton(MarketButton, template=SELL_ID):
    key, button_label, button_style = "sell", "Sell", discord.ButtonStyle.danger

    async def callback(self, interaction: discord.Interaction) -> None:
        await sell_pick(interaction, self.market_id)


class SellSelect(discord.ui.DynamicItem[discord.ui.Select], template=SELL_PICK_ID):
    """Pick which holding to sell; the choice opens the shares modal."""

    def __init__(self, market_id: int, options: list[discord.SelectOption] | None = None):
        self.market_id = market_id
        super().__init__(
            discord.ui.Select(
                custom_id=f"pm:sellpick:{market_id}",
                placeholder="Choose the outcome to sell",
                options=options or [discord.SelectOption(label="-", value="0")],
                min_values=1,
                max_values=1,
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /
    ) -> Self:
        return cls(int(match["market"]), list(getattr(item, "options", []) or []) or None)

    async def callback(self, interaction: discord.Interaction) -> None:
        values = self.item.values
        try:
            outcome = int(values[0]) if values else -1
        except ValueError:
            outcome = -1
        label = next((o.label for o in self.item.options if o.value == str(outcome)), "")
        await sell_open(interaction, self.market_id, outcome, label)


@opener("market.buy.open")
async def buy_open(
    interaction: discord.Interaction, market_id: int, outcome: int, label: str
) -> Opening:
    """Open the amount modal, unless the market is known to be closed. The status check must
    finish by `interactions.PRE_ACK_DEADLINE` (measured from the interaction's creation); past
    it the modal opens anyway and the trade re-checks."""
    checked, summary = await interactions.within_budget(
        interaction,
        bot_of(interaction).db_fast(
            actions.market_in_guild, guild_id=interaction.guild_id, market=market_id
        ),
        step="status_check",
    )
    known = summary if checked else None
    if known is not None and known.status != "open":
        return closed_text(market_id, known.status)
    pool = known is not None and known.mechanism != "amm"
    if known is not None and 0 <= outcome < len(known.outcomes):
        label = known.outcomes[outcome].label
    verb = "Predict" if pool else "Buy"
    policy = bot_of(interaction).policies.peek(interaction.guild_id or 0)
    limit = (
        f"1 to {policy.max_bet:,} points (this server's max bet) and no more than your balance."
        if policy is not None
        else "Whole points; your balance and the server's max bet apply."
    )
    return interactions.modal(
        f"pm:m:buy:{market_id}:{outcome}",
        f"{verb} “{label}” (#{market_id})" if label else f"{verb} on #{market_id}",
        interactions.text_input(
            custom_id="amount",
            label="Stake (points)" if pool else "Amount (points)",
            description=limits.fit(limit, 100),
            placeholder="e.g. 100",
            max_length=25,
        ),
    )


@responder("market.buy.quote")
async def buy_submit(
    interaction: discord.Interaction, match: re.Match[str], values: dict[str, str]
) -> Reply:
    bot, guild_id = bot_of(interaction), interaction.guild_id or 0
    policy = bot.policies.peek(guild_id) or await bot.policies.load(guild_id)
    # The refusal of a typo states this server's range, not the ledger's largest amount.
    maximum = policy.max_bet if policy is not None else MAX_AMOUNT
    amount = parsing.amount_text(values.get("amount", ""), maximum=maximum)
    return await quote_or_trade(
        interaction,
        actions.quote_buy_for_interaction,
        confirm=True,
        market=int(match["market"]),
        outcome=str(int(match["outcome"]) + 1),
        amount=amount,
    )


@responder("market.sell.pick")
async def sell_pick(interaction: discord.Interaction, market_id: int) -> Reply:
    bot = bot_of(interaction)
    summary = await bot.db(actions.market_in_guild, guild_id=interaction.guild_id, market=market_id)
    if not summary.is_open:
        return Reply(content=closed_text(market_id, summary.status))
    if summary.mechanism != "amm":
        return Reply(content=MSG_NO_SELL_POOL)
    holdings = [
        h
        for h in await bot.db(
            selectors.holdings_in_market, market_id=summary.id, user_id=interaction.user.id
        )
        if h.shares > 0
    ]
    if not holdings:
        return Reply(content=MSG_NOTHING_TO_SELL.format(market_id=market_id))
    options = [
        discord.SelectOption(
            label=limits.fit(h.label, limits.SELECT_LABEL),
            value=str(h.outcome),
            description=limits.fit(
                f"{render.shares(h.shares)} shares · worth about {render.points(h.value)} points",
                limits.SELECT_DESCRIPTION,
            ),
        )
        for h in holdings[: limits.SELECT_OPTIONS]
    ]
    view = discord.ui.View(timeout=None)
    view.add_item(SellSelect(summary.id, options))
    return Reply(content=MSG_PICK_SELL.format(market_id=summary.id), view=view)


@opener("market.sell.open")
async def sell_open(
    interaction: discord.Interaction, market_id: int, outcome: int, label: str
) -> Opening:
    return interactions.modal(
        f"pm:m:sell:{market_id}:{max(0, outcome)}",
        f"Sell “{label}” (#{market_id})" if label else f"Sell on #{market_id}",
        interactions.text_input(
            custom_id="shares",
            label="Shares to sell",
            description="“all”, or a number of shares like 2.5.",
            default="all",
            max_length=25,
        ),
    )


@responder("market.sell.quote")
async def sell_submit(
    interaction: discord.Interaction, match: re.Match[str], values: dict[str, str]
) -> Reply:
    return await quote_or_trade(
        interaction,
        actions.quote_sell_for_interaction,
        confirm=True,
        market=int(match["market"]),
        outcome=str(int(match["outcome"]) + 1),
        shares=values.get("shares", "all"),
    )
