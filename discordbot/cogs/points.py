"""Points commands: `/balance`, `/daily`, `/tip`, `/leaderboard`, `/history` (DOMAIN §2–§3)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Self

import discord
from discord import app_commands
from discord.ext import commands

from betting.calibration import leaderboard_calibration
from betting.selectors import ProfitRow, leaderboard_profit
from points import selectors as points_selectors
from points.errors import MAX_AMOUNT, InvalidInput
from points.selectors import LeaderboardRow

from .. import actions, render
from ..interactions import Reply, idempotency_key
from ..render.community import calibration_leaderboard_embed
from ..responders import responder
from .seasons import season_leaderboard

if TYPE_CHECKING:
    from ..bot import PredictionBot

HISTORY_ID = r"pm:hist:(?P<user>\d{1,19}):(?P<before>\d{1,19}):(?P<page>\d{1,5})"
MSG_BALANCE = "You have **{balance} points**."
MSG_DAILY = (
    "You claimed your daily **{amount} points**. Balance: {balance} points. Next bonus {next}."
)
MSG_TIP = "💸 <@{giver}> tipped <@{receiver}> **{amount} points**."
MSG_TIP_BOT = "Bots don't hold points; tip a member instead."
MSG_NOT_YOURS = "These buttons belong to someone else's history; use `/history` for yours."


def _bot(interaction: discord.Interaction) -> PredictionBot:
    return interaction.client  # type: ignore[return-value]


async def history_reply(
    interaction: discord.Interaction, *, user_id: int, before_id: int | None, page: int
) -> Reply:
    rows = await _bot(interaction).db(
        points_selectors.transfers_for_user,
        guild_id=interaction.guild_id,
        user_id=user_id,
        limit=render.HISTORY_PAGE_SIZE,
        before_id=before_id,
    )
    view = discord.ui.View(timeout=None)
    view.add_item(HistoryPageButton(user_id, 0, 0, label="Newest", disabled=page == 0))
    older = rows[-1].transfer_id if len(rows) == render.HISTORY_PAGE_SIZE else 0
    view.add_item(HistoryPageButton(user_id, older, page + 1, label="Older ▶", disabled=older == 0))
    return Reply(embeds=[render.history_embed(rows, page=page)], view=view)


class HistoryPageButton(discord.ui.DynamicItem[discord.ui.Button], template=HISTORY_ID):
    """Pages of `/history`; `before` is the transfer id the page starts below (0 = newest)."""

    def __init__(self, user_id: int, before: int, page: int, *, label: str, disabled: bool):
        self.user_id, self.before, self.page = user_id, before, page
        super().__init__(
            discord.ui.Button(
                label=label,
                style=discord.ButtonStyle.secondary,
                custom_id=f"pm:hist:{user_id}:{before}:{page}",
                disabled=disabled,
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /
    ) -> Self:
        return cls(
            int(match["user"]),
            int(match["before"]),
            int(match["page"]),
            label=getattr(item, "label", "") or "Page",
            disabled=False,
        )

    @responder("history.page", reply="edit")
    async def callback(self, interaction: discord.Interaction) -> Reply:
        if interaction.user.id != self.user_id:
            raise InvalidInput(MSG_NOT_YOURS)
        reply = await history_reply(
            interaction,
            user_id=self.user_id,
            before_id=self.before or None,
            page=self.page,
        )
        reply.edit = True
        return reply


class Points(commands.Cog):
    """Balances, the daily bonus, tips and leaderboards."""

    def __init__(self, bot: PredictionBot) -> None:
        self.bot = bot

    @app_commands.command(name="balance")
    @app_commands.guild_only()
    @responder("balance")
    async def balance(self, interaction: discord.Interaction) -> Reply:
        """Your points in this server."""
        balance = await self.bot.db(
            actions.balance_ensure_for_interaction,
            guild_id=interaction.guild_id,
            user_id=interaction.user.id,
        )
        return Reply(content=MSG_BALANCE.format(balance=render.points(balance)))

    @app_commands.command(name="daily")
    @app_commands.guild_only()
    @responder("daily")
    async def daily(self, interaction: discord.Interaction) -> Reply:
        """Claim today's bonus points (once per UTC day)."""
        claim = await self.bot.db(
            actions.daily_claim_for_interaction,
            guild_id=interaction.guild_id,
            user_id=interaction.user.id,
        )
        return Reply(
            content=MSG_DAILY.format(
                amount=render.points(claim.amount),
                balance=render.points(claim.balance),
                next=render.timestamp(claim.next_at),
            )
        )

    @app_commands.command(name="tip")
    @app_commands.guild_only()
    @app_commands.describe(member="Who gets the points", amount="How many points to give")
    @responder("tip", reply="public")
    async def tip(
        self,
        interaction: discord.Interaction,
        member: discord.Member,
        amount: app_commands.Range[int, 1, MAX_AMOUNT],
    ) -> Reply:
        """Give some of your points to another member."""
        if member.bot:
            raise InvalidInput(MSG_TIP_BOT)
        await self.bot.db(
            actions.points_tip_for_interaction,
            guild_id=interaction.guild_id,
            from_user_id=interaction.user.id,
            to_user_id=member.id,
            amount=amount,
            idempotency_key=idempotency_key(interaction),
        )
        return Reply(
            content=MSG_TIP.format(
                giver=interaction.user.id, receiver=member.id, amount=render.points(amount)
            ),
            ephemeral=False,
            # The receiver is pinged (they learn they got points); the giver is not.
            allowed_mentions=discord.AllowedMentions(
                everyone=False, roles=False, users=[discord.Object(member.id)]
            ),
        )

    @app_commands.command(name="leaderboard")
    @app_commands.guild_only()
    @app_commands.describe(kind="Rank by balance (default), trading profit or calibration")
    @app_commands.choices(
        kind=[
            app_commands.Choice(name="Balance", value="balance"),
            app_commands.Choice(name="Trading profit", value="profit"),
            app_commands.Choice(name="Calibration (Brier score)", value="calibration"),
        ]
    )
    @app_commands.describe(season="A season's table (its number); leave out for all-time")
    @responder("leaderboard", reply="public")
    async def leaderboard(
        self,
        interaction: discord.Interaction,
        kind: str | None = None,
        season: app_commands.Range[int, 1, 100_000] | None = None,
    ) -> Reply:
        """The server's top members, all-time or in a season."""
        if season is not None:  # without a kind, the season's three tables
            return await season_leaderboard(self.bot, interaction.guild_id, season, kind)
        kind = kind or "balance"
        rows: Sequence[LeaderboardRow | ProfitRow]
        if kind == "calibration":
            ranked = await self.bot.db(
                leaderboard_calibration, guild_id=interaction.guild_id, limit=10
            )
            names = await self.bot.db(
                points_selectors.member_names,
                guild_id=interaction.guild_id,
                user_ids=[row.user_id for row in ranked],
            )
            embed = calibration_leaderboard_embed(ranked, names=names)
            return Reply(embeds=[embed], ephemeral=False)
        if kind == "profit":
            rows = await self.bot.db(leaderboard_profit, guild_id=interaction.guild_id, limit=10)
        else:
            rows = await self.bot.db(
                points_selectors.leaderboard, guild_id=interaction.guild_id, limit=10
            )
        names = await self.bot.db(
            points_selectors.member_names,
            guild_id=interaction.guild_id,
            user_ids=[row.user_id for row in rows],
        )
        embed = render.leaderboard_embed(rows, kind=kind, names=names)
        return Reply(embeds=[embed], ephemeral=False)

    @app_commands.command(name="history")
    @app_commands.guild_only()
    @responder("history")
    async def history(self, interaction: discord.Interaction) -> Reply:
        """Your points transfers, newest first."""
        return await history_reply(interaction, user_id=interaction.user.id, before_id=None, page=0)


async def setup(bot: PredictionBot) -> None:
    bot.add_dynamic_items(HistoryPageButton)
    await bot.add_cog(Points(bot))
