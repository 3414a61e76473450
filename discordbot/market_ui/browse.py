"""Looking, not trading: My position, the price chart, and the pages of `/market list`."""

from __future__ import annotations

import asyncio
import io
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

import discord
from django.core.cache import cache

from markets.selectors import MarketSummary

from .. import actions, charts, limits, render, selectors
from ..interactions import Reply
from ..responders import bot_of, responder
from .base import CHART_ID, CHART_RANGE_ID, LIST_ID, POSITION_ID, MarketButton, utf16_prefix

if TYPE_CHECKING:
    from ..bot import PredictionBot


class PositionButton(MarketButton, template=POSITION_ID):
    key, button_label = "pos", "My position"

    async def callback(self, interaction: discord.Interaction) -> None:
        await position_show(interaction, self.market_id)


class ChartButton(MarketButton, template=CHART_ID):
    key, button_label, button_emoji = "chart", "Chart", "📈"

    async def callback(self, interaction: discord.Interaction) -> None:
        await chart_show(interaction, self.market_id)


class ChartRangeButton(discord.ui.DynamicItem[discord.ui.Button], template=CHART_RANGE_ID):
    """Under a chart: show it over another range (last hour, last 24 hours, all), in place."""

    def __init__(self, market_id: int, span: str, *, current: bool = False):
        self.market_id, self.span = market_id, span
        super().__init__(
            discord.ui.Button(
                label=RANGE_LABELS[span],
                style=discord.ButtonStyle.primary if current else discord.ButtonStyle.secondary,
                custom_id=f"pm:chartr:{market_id}:{span}",
                disabled=current,
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /
    ) -> Self:
        return cls(int(match["market"]), match["span"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await chart_range(interaction, self)


RANGE_LABELS = {"1h": "1 h", "24h": "24 h", "all": "All"}


def chart_view(market_id: int, span: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for key in charts.RANGES:
        view.add_item(ChartRangeButton(market_id, key, current=key == span))
    view.stop()  # DynamicItems: the bot dispatches them by custom_id
    return view


class ListPageButton(discord.ui.DynamicItem[discord.ui.Button], template=LIST_ID):
    """Previous / next page of `/market list` (the page, filter and category in the id)."""

    def __init__(
        self,
        page: int,
        status: str,
        category: str,
        *,
        label: str,
        disabled: bool,
        cut: bool = False,
    ):
        self.page, self.status, self.category, self.cut = page, status, category, cut
        # custom_id ≤ 100 UTF-16 units (DOMAIN §8): a category of emoji can be 100 units alone,
        # so a long one is carried cut ("~" instead of ":") and completed after the defer.
        prefix = f"pm:list:{page}:{status}"
        shown = category[:50]
        if cut or limits.size(f"{prefix}:{shown}") > limits.CUSTOM_ID:
            shown = utf16_prefix(shown, limits.CUSTOM_ID - limits.size(prefix) - 1)
            custom_id = f"{prefix}~{shown}"
        else:
            custom_id = f"{prefix}:{shown}"
        super().__init__(
            discord.ui.Button(
                label=label,
                style=discord.ButtonStyle.secondary,
                custom_id=custom_id,
                disabled=disabled,
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /
    ) -> Self:
        return cls(
            int(match["page"]),
            match["status"],
            match["category"],
            label=getattr(item, "label", "") or "Page",
            disabled=False,
            cut=match["cut"] == "~",
        )

    async def callback(self, interaction: discord.Interaction) -> None:
        await list_page(interaction, self)


@responder("market.list.page", reply="edit")
async def list_page(interaction: discord.Interaction, button: ListPageButton) -> Reply:
    category = button.category
    if button.cut:
        known = await bot_of(interaction).db(
            selectors.category_complete, guild_id=interaction.guild_id, prefix=button.category
        )
        category = known or button.category
    reply = await market_list_reply(
        interaction, status=button.status, category=category, page=button.page
    )
    reply.edit = True
    return reply


@responder("market.position")
async def position_show(interaction: discord.Interaction, market_id: int) -> Reply:
    view = await bot_of(interaction).db(
        selectors.position_in_market,
        guild_id=interaction.guild_id,
        market=market_id,
        user_id=interaction.user.id,
    )
    return Reply(content=render.holdings_text(view.market, view.holdings, view.balance))


@dataclass
class ChartReply(Reply):
    """A reply carrying the chart PNG as `chart.png`, which its embed shows through
    `attachment://chart.png`. The file object is built when the reply is sent (it is read once)."""

    png: bytes = b""

    def kwargs(self) -> dict[str, Any]:
        out = super().kwargs()
        out["attachments"] = [discord.File(io.BytesIO(self.png), filename=charts.CHART_FILENAME)]
        return out


async def chart_png(bot: PredictionBot, summary: MarketSummary, span: str = "all") -> bytes:
    """The chart of `summary`, from the cache when nobody traded since it was drawn; otherwise
    read the history (database pool), render it on the chart thread, never on the event loop,
    and cache it. A cache that is down (the settings ignore its errors) costs a render, never
    the answer."""
    key = f"{charts.cache_key(summary)}:{span}"
    png = await bot.cache_call(cache.get, key=key)
    if png is None:
        data = await bot.db(charts.chart_data, market=summary, span=span)
        png = await asyncio.get_running_loop().run_in_executor(
            charts.RENDER_EXECUTOR, charts.render_png, data
        )
        await bot.cache_call(cache.set, key=key, value=png, timeout=charts.CACHE_SECONDS)
    return png


async def chart_reply(
    interaction: discord.Interaction,
    market: object,
    *,
    ephemeral: bool,
    span: str = "all",
    edit: bool = False,
) -> Reply:
    """The price chart of `market` (an id, `#12`, or what the member typed). Always deferred
    first, because a render that misses the cache can take longer than Discord's 3 seconds on
    a busy machine (DOMAIN §8)."""
    bot = bot_of(interaction)
    summary = await bot.db(actions.market_in_guild, guild_id=interaction.guild_id, market=market)
    span = span if span in charts.RANGES else "all"
    png = await chart_png(bot, summary, span)
    return ChartReply(
        embeds=[render.chart_embed(summary)],
        png=png,
        ephemeral=ephemeral,
        edit=edit,
        view=chart_view(summary.id, span),
    )


@responder("market.chart")
async def chart_show(interaction: discord.Interaction, market: object) -> Reply:
    """The Chart button: the chart, privately, with its range buttons."""
    return await chart_reply(interaction, market, ephemeral=True)


@responder("market.chart", reply="public")
async def chart_post(interaction: discord.Interaction, market: object, span: str = "all") -> Reply:
    """`/market chart`: the chart, in the channel, over the range asked for."""
    return await chart_reply(interaction, market, ephemeral=False, span=span)


@responder("market.chart.range", reply="edit")
async def chart_range(interaction: discord.Interaction, button: ChartRangeButton) -> Reply:
    """A range button: the same chart over another range, in place of the one clicked."""
    return await chart_reply(
        interaction, button.market_id, ephemeral=True, span=button.span, edit=True
    )


async def market_list_reply(
    interaction: discord.Interaction, *, status: str, category: str, page: int
) -> Reply:
    page_data = await bot_of(interaction).db(
        selectors.market_page,
        guild_id=interaction.guild_id,
        status=status,
        category=category,
        page=page,
        page_size=render.LIST_PAGE_SIZE,
    )
    embed = render.market_list_embed(
        page_data.markets,
        status=status,
        category=category,
        page=page_data.page,
        pages=page_data.pages,
        total=page_data.total,
    )
    view = discord.ui.View(timeout=None)
    for target, label, disabled in (
        (max(0, page_data.page - 1), "◀ Previous", page_data.page <= 0),
        (page_data.page + 1, "Next ▶", page_data.page + 1 >= page_data.pages),
    ):
        view.add_item(ListPageButton(target, status, category, label=label, disabled=disabled))
    return Reply(embeds=[embed], view=view)
