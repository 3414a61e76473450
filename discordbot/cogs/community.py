"""Issue 26's commands: `/calibration [member]`, and under `/market` (added to the group the
markets cog registers) `/market holders` and `/market audit`.

Thin (STYLE §8): a selector through `bot.db`, a render, a reply; the chart renders on the chart
thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import io
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

import discord
from discord import app_commands
from discord.ext import commands

from betting import calibration, market_audit

from .. import actions, charts, selectors
from ..autocomplete import market_autocomplete
from ..calibration_chart import render_calibration_png
from ..interactions import Reply
from ..render import community
from ..responders import bot_of, responder

if TYPE_CHECKING:
    from ..bot import PredictionBot

HOLDERS_ID = r"pm:holders:(?P<market>\d{1,19}):(?P<page>\d{1,7})"
HOLDERS_PAGE_SIZE = 20
AUDIT_MAX_BYTES = 8_000_000
"""Discord takes attachments up to 10 MiB on any server (docs/domain.md §8); the audit stays
under 8 MB so the whole request, with its JSON, fits too."""
MSG_AUDIT = (
    "The audit of #{market_id}: every event, trade and transfer in order, with the escrow, "
    "the pools and the shares held after each step; `check_4_5` redoes §4.5 (pools + shares = "
    "collateral) after every trade. {rows}"
)


@dataclass
class FilesReply(Reply):
    """A reply with attachments, each `(filename, bytes)`; the files are built when sent."""

    files: list[tuple[str, bytes]] = field(default_factory=list)

    def kwargs(self) -> dict[str, Any]:
        out = super().kwargs()
        out["attachments"] = [discord.File(io.BytesIO(data), filename=n) for n, data in self.files]
        return out


async def holders_reply(interaction: discord.Interaction, market: object, page: int) -> Reply:
    bot = bot_of(interaction)
    summary = await bot.db(actions.market_in_guild, guild_id=interaction.guild_id, market=market)
    rows = await bot.db(
        selectors.holders_page,
        guild_id=interaction.guild_id,
        market=summary.id,
        page=page,
        page_size=HOLDERS_PAGE_SIZE,
    )
    view = discord.ui.View(timeout=None)
    for target, label, disabled in (
        (max(0, rows.page - 1), "◀ Previous", rows.page <= 0),
        (rows.page + 1, "Next ▶", rows.page + 1 >= rows.pages),
    ):
        view.add_item(HoldersPageButton(summary.id, target, label=label, disabled=disabled))
    return Reply(embeds=[community.holders_page_embed(summary, rows)], view=view)


class HoldersPageButton(discord.ui.DynamicItem[discord.ui.Button], template=HOLDERS_ID):
    def __init__(self, market_id: int, page: int, *, label: str, disabled: bool) -> None:
        self.market_id, self.page = market_id, page
        super().__init__(
            discord.ui.Button(
                label=label,
                style=discord.ButtonStyle.secondary,
                custom_id=f"pm:holders:{market_id}:{page}",
                disabled=disabled,
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /
    ) -> Self:
        label = getattr(item, "label", "") or "Page"
        return cls(int(match["market"]), int(match["page"]), label=label, disabled=False)

    @responder("market.holders.page", reply="edit")
    async def callback(self, interaction: discord.Interaction) -> Reply:
        reply = await holders_reply(interaction, self.market_id, self.page)
        reply.edit = True
        return reply


@app_commands.command(name="holders")
@app_commands.describe(market="The market (type to search, or its number like #12)")
@app_commands.autocomplete(market=market_autocomplete(None))
@responder("market.holders")
async def holders(interaction: discord.Interaction, market: str) -> Reply:
    """Everyone who holds shares (or a stake) in a market, most first."""
    return await holders_reply(interaction, market, 0)


@app_commands.command(name="audit")
@app_commands.describe(market="The market (type to search, or its number like #12)")
@app_commands.autocomplete(market=market_autocomplete(None))
@responder("market.audit")
async def audit(interaction: discord.Interaction, market: str) -> Reply:
    """Every trade and transfer of a market as a CSV you can check yourself."""
    bot = bot_of(interaction)
    summary = await bot.db(actions.market_in_guild, guild_id=interaction.guild_id, market=market)
    content, written, total = await bot.db(
        market_audit.market_audit_csv, market_id=summary.id, max_bytes=AUDIT_MAX_BYTES
    )
    rows = (
        f"{total - 2:,} steps."
        if written == total
        else f"The first {written - 2:,} of {total - 2:,} steps fit in one file, then the summary."
    )
    return FilesReply(
        content=MSG_AUDIT.format(market_id=summary.id, rows=rows),
        files=[(f"market-{summary.id}-audit.csv", content)],
    )


class Community(commands.Cog):
    """Calibration."""

    def __init__(self, bot: PredictionBot) -> None:
        self.bot = bot

    @app_commands.command(name="calibration")
    @app_commands.guild_only()
    @app_commands.describe(member="Whose calibration (default: yours)")
    @responder("calibration", reply="public")
    async def calibration(
        self, interaction: discord.Interaction, member: discord.Member | None = None
    ) -> Reply:
        """How often what you (or a member) bought at each probability came true, as a chart."""
        target = member or interaction.user
        guild_id = interaction.guild_id
        row = await self.bot.db(calibration.calibration_of, guild_id=guild_id, user_id=target.id)
        forecasts = await self.bot.db(
            calibration.forecasts_of, guild_id=guild_id, user_id=target.id
        )
        score = f"Brier {community.brier_text(row.brier)}" if row else "no score yet"
        png = await asyncio.get_running_loop().run_in_executor(
            charts.RENDER_EXECUTOR,
            lambda: render_calibration_png(
                calibration.buckets(forecasts),
                title=f"Calibration of {target.display_name}",
                score=score,
            ),
        )
        return FilesReply(
            embeds=[community.calibration_embed(row, name=target.display_name)],
            files=[(community.CALIBRATION_CHART, png)],
            ephemeral=False,
        )


async def setup(bot: PredictionBot) -> None:
    group = bot.tree.get_command("market")
    if not isinstance(group, app_commands.Group):
        raise RuntimeError("load discordbot.cogs.markets before discordbot.cogs.community")
    group.add_command(holders)
    group.add_command(audit)
    bot.add_dynamic_items(HoldersPageButton)
    await bot.add_cog(Community(bot))
