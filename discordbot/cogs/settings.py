"""`/settings`: server admins (Manage Server) set roles, the announcement channel and the guild's
defaults (DOMAIN §2). Discord hides the group from other members; the service checks again."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from points.services import guild_settings_get_or_create

from .. import actions, render
from ..interactions import Reply, actor, idempotency_key, respond
from ..permissions import require_admin

if TYPE_CHECKING:
    from ..bot import PredictionBot

SETTING_CHOICES = [
    app_commands.Choice(name="Starting balance (points)", value="starting_balance"),
    app_commands.Choice(name="Daily bonus (points, 0 = off)", value="daily_bonus"),
    app_commands.Choice(name="Max bet (points)", value="max_bet"),
    app_commands.Choice(name="Default liquidity (points)", value="default_liquidity"),
    app_commands.Choice(name="Fee (basis points, 100 = 1%)", value="fee_bps"),
    app_commands.Choice(name="Votes needed to resolve", value="min_resolution_votes"),
    app_commands.Choice(name="Auto-refund after (hours)", value="auto_refund_hours"),
    app_commands.Choice(name="Server commands a minute (rate limit)", value="requests_per_minute"),
]


class Settings(commands.Cog):
    """Server settings for the prediction markets."""

    settings = app_commands.Group(
        name="settings",
        description="Server settings for prediction markets (Manage Server)",
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )

    def __init__(self, bot: PredictionBot) -> None:
        self.bot = bot

    async def _update(self, interaction: discord.Interaction, **changes) -> None:
        async def body() -> Reply:
            gs = await self.bot.db(
                actions.guild_settings_update_for_interaction,
                guild_id=interaction.guild_id,
                actor=actor(interaction),
                idempotency_key=idempotency_key(interaction),
                **changes,
            )
            self.bot.policies.invalidate(interaction.guild_id)
            return Reply(content="Saved.", embeds=[render.settings_embed(gs)])

        await respond(interaction, body, action="settings.update")

    @settings.command(name="show")
    async def show(self, interaction: discord.Interaction) -> None:
        """Show this server's settings."""

        async def body() -> Reply:
            require_admin(actor(interaction))
            gs = await self.bot.db(guild_settings_get_or_create, guild_id=interaction.guild_id)
            return Reply(embeds=[render.settings_embed(gs)])

        await respond(interaction, body, action="settings.show")

    @settings.command(name="set")
    @app_commands.describe(setting="Which default to change", value="The new value")
    @app_commands.choices(setting=SETTING_CHOICES)
    async def set_(
        self,
        interaction: discord.Interaction,
        setting: str,
        value: app_commands.Range[int, 0, 10**15],
    ) -> None:
        """Change one of the server's defaults."""
        await self._update(interaction, values={setting: value})

    @settings.command(name="channel")
    @app_commands.describe(channel="Where new markets and results are announced (empty = none)")
    async def channel(
        self, interaction: discord.Interaction, channel: discord.TextChannel | None = None
    ) -> None:
        """Set or clear the announcement channel."""
        await self._update(interaction, announce_channel_id=channel.id if channel else None)

    @settings.command(name="roles")
    @app_commands.describe(
        kind="Creators may create markets; resolvers vote on results",
        action="Add or remove a role, or clear the list",
        role="The role (for add and remove)",
    )
    @app_commands.choices(
        kind=[
            app_commands.Choice(name="Market creators", value="creator"),
            app_commands.Choice(name="Resolvers", value="resolver"),
        ],
        action=[
            app_commands.Choice(name="Add", value="add"),
            app_commands.Choice(name="Remove", value="remove"),
            app_commands.Choice(
                name="Clear (everyone creates / Manage Server resolves)", value="clear"
            ),
        ],
    )
    async def roles(
        self,
        interaction: discord.Interaction,
        kind: str,
        action: str,
        role: discord.Role | None = None,
    ) -> None:
        """Choose which roles may create markets or resolve them."""
        await self._update(
            interaction, role_kind=kind, role_action=action, role_id=role.id if role else None
        )


async def setup(bot: PredictionBot) -> None:
    await bot.add_cog(Settings(bot))
