"""`/notifications on|off`, and the loop that delivers notifications from the outbox."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands, tasks

from .. import actions, selectors
from ..interactions import Reply
from ..leases import notifier_lease
from ..notifier import Notifier
from ..responders import responder

if TYPE_CHECKING:
    from ..bot import PredictionBot

logger = logging.getLogger(__name__)

MSG_ON = "🔔 You'll get a DM when a market you traded in is resolved or cancelled."
MSG_OFF = (
    "🔕 No more DMs about markets from this server. Turn them back on with `/notifications on`."
)


class Notifications(commands.Cog):
    """Notification DMs and announcements."""

    def __init__(self, bot: PredictionBot) -> None:
        self.bot = bot
        self.notifier = Notifier(
            bot, name=bot.config.notifier_name, dm_interval=bot.config.dm_interval
        )
        self.deliver.change_interval(seconds=bot.config.notify_seconds)

    async def cog_load(self) -> None:
        if self.bot.config.background_tasks:
            lease = notifier_lease(self.bot)
            self.notifier.allowed = lambda: lease.held
            self.deliver.start()

    async def cog_unload(self) -> None:
        self.deliver.cancel()
        await self.notifier.stop()

    @tasks.loop(seconds=5)
    async def deliver(self) -> None:
        """Plan new outbox events into the delivery queue (the lane workers send them) and
        refresh market messages that trades changed — while this process holds the notifier's
        lease; without it the lane workers stop (another process delivers)."""
        if not notifier_lease(self.bot).held:
            await self.notifier.stop()
            return
        self.notifier.start()
        try:
            while await self.notifier.plan_once() >= self.notifier.batch_size:
                pass
            await self.notifier.refresh_dirty()
        except Exception:  # the next run retries; a bad event must not stop the loop
            logger.exception("notification planning failed")

    @deliver.before_loop
    async def _wait_until_ready(self) -> None:
        await self.bot.wait_until_ready()

    @app_commands.command(name="notifications")
    @app_commands.guild_only()
    @app_commands.describe(state="on: DM me my results; off: don't DM me")
    @app_commands.choices(
        state=[
            app_commands.Choice(name="on", value="on"),
            app_commands.Choice(name="off", value="off"),
        ]
    )
    @responder("notifications")
    async def notifications(
        self, interaction: discord.Interaction, state: str | None = None
    ) -> Reply:
        """Turn DMs about your markets on or off (shows the current choice without an option)."""
        if state is None:
            enabled = await self.bot.db(
                selectors.dm_enabled,
                guild_id=interaction.guild_id,
                user_id=interaction.user.id,
            )
        else:
            enabled = await self.bot.db(
                actions.notification_preference_set_for_interaction,
                guild_id=interaction.guild_id,
                user_id=interaction.user.id,
                enabled=state == "on",
            )
        return Reply(content=MSG_ON if enabled else MSG_OFF)


async def setup(bot: PredictionBot) -> None:
    await bot.add_cog(Notifications(bot))
