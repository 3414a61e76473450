"""`/privacy forget`: the bot stops keeping the member's name (issue 13)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from core.directory import member_fallback
from points import services as points_services

from ..interactions import Reply
from ..responders import responder

if TYPE_CHECKING:
    from ..bot import PredictionBot

MSG_FORGOTTEN = (
    "🧹 Done: the bot no longer keeps your display name, username or avatar, in any server, "
    "and will not store them again. Leaderboards, the dashboard and the back office now show "
    "you as “{label}”. Your points, trades and history stay (they are the ledger)."
)


class Privacy(commands.Cog):
    """What the bot keeps about a member, and how to make it forget."""

    privacy = app_commands.Group(
        name="privacy", description="What the bot keeps about you", guild_only=True
    )

    def __init__(self, bot: PredictionBot) -> None:
        self.bot = bot

    @privacy.command(name="forget")
    @responder("privacy_forget")
    async def forget(self, interaction: discord.Interaction) -> Reply:
        """Erase your stored name, username and avatar; you show as "member #1234…"."""
        await self.bot.db(
            points_services.member_forget,
            guild_id=interaction.guild_id,
            user_id=interaction.user.id,
        )
        return Reply(content=MSG_FORGOTTEN.format(label=member_fallback(interaction.user.id)))


async def setup(bot: PredictionBot) -> None:
    await bot.add_cog(Privacy(bot))
