"""`/settings`: server admins (Manage Server) set roles, the announcement and moderators'
channels, the guild's defaults and how markets are resolved (DOMAIN §2, §6.1). The settings and
their ranges come from the one table in `points/rules/settings.py`. Discord hides the group from
other members; the service checks again."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from points.errors import InvalidInput
from points.rules import SETTINGS, SETTINGS_BY_NAME
from points.services import guild_settings_get_or_create

from .. import actions, render
from ..interactions import Reply, actor, idempotency_key, respond
from ..permissions import require_admin

if TYPE_CHECKING:
    from ..bot import PredictionBot

NUMBER_SETTINGS = tuple(spec for spec in SETTINGS if spec.kind == "int")
SETTING_CHOICES = [
    app_commands.Choice(name=spec.picker_name, value=spec.name) for spec in NUMBER_SETTINGS
]
# Discord's limits: ≤ 25 choices, names ≤ 100 characters (tests/discordbot/fake_discord.py).
assert len(SETTING_CHOICES) <= 25 and all(len(c.name) <= 100 for c in SETTING_CHOICES)
VALUE_LOW = min(spec.low for spec in NUMBER_SETTINGS)
VALUE_HIGH = max(spec.high for spec in NUMBER_SETTINGS)

MODE = SETTINGS_BY_NAME["resolution_mode"]
WINDOW = SETTINGS_BY_NAME["dispute_window_minutes"]
MODE_CHOICES = [
    app_commands.Choice(name=words[:1].upper() + words[1:], value=value)
    for value, words in MODE.choices
]
MSG_RESOLUTION_NOTHING = (
    "Choose at least one of `mode` (vote or creator), `dispute_window_minutes` (0 to "
    f"{WINDOW.high:,}) or `conflict_of_interest` (true or false)."
)


MSG_MISSING = (
    "\n⚠️ I can't announce in <#{channel}> yet: I'm missing {missing} there. Give me these "
    "permissions in the channel (or its category), and markets will be announced."
)
MSG_MISSING_MODERATORS = (
    "\n⚠️ I can't report disputes in <#{channel}> yet: I'm missing {missing} there. Give me "
    "these permissions in the channel (or its category); until then nothing reaches it."
)
MSG_UNCHECKED = (
    "\nI couldn't check my permissions in <#{channel}>; make sure I can view it, send "
    "messages and embed links there."
)
PERMISSION_NAMES = {
    "view_channel": "View Channel",
    "send_messages": "Send Messages",
    "embed_links": "Embed Links",
}


def missing_permissions(channel: discord.abc.GuildChannel) -> list[str] | None:
    """What the bot lacks in `channel` to announce there (from the gateway's cache: roles and
    channel overwrites); None if its own member is not cached (cannot tell)."""
    me = channel.guild.me if channel.guild else None
    if me is None:
        return None
    have = channel.permissions_for(me)
    return [label for name, label in PERMISSION_NAMES.items() if not getattr(have, name)]


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

    async def _update(
        self, interaction: discord.Interaction, *, warning: str = "", **changes
    ) -> None:
        async def body() -> Reply:
            gs = await self.bot.db(
                actions.guild_settings_update_for_interaction,
                guild_id=interaction.guild_id,
                actor=actor(interaction),
                idempotency_key=idempotency_key(interaction),
                **changes,
            )
            self.bot.policies.invalidate(interaction.guild_id)
            return Reply(content=f"Saved.{warning}", embeds=[render.settings_embed(gs)])

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
        value: app_commands.Range[int, VALUE_LOW, VALUE_HIGH],
    ) -> None:
        """Change one of the server's defaults."""
        await self._update(interaction, values={setting: value})

    @settings.command(name="resolution")
    @app_commands.describe(
        mode="Who decides a closed market's result: resolvers vote, or its creator proposes",
        dispute_window_minutes=(
            f"How long a proposed result waits for disputes (0 = pay at once, up to "
            f"{WINDOW.high:,} = a week)"
        ),
        conflict_of_interest="Keep members with a position in a market from deciding it",
    )
    @app_commands.choices(mode=MODE_CHOICES)
    async def resolution(
        self,
        interaction: discord.Interaction,
        mode: str | None = None,
        dispute_window_minutes: app_commands.Range[int, WINDOW.low, WINDOW.high] | None = None,
        conflict_of_interest: bool | None = None,
    ) -> None:
        """Choose how markets are resolved: mode, dispute window, conflict-of-interest rule."""
        values = {
            name: value
            for name, value in (
                ("resolution_mode", mode),
                ("dispute_window_minutes", dispute_window_minutes),
                ("conflict_of_interest", conflict_of_interest),
            )
            if value is not None
        }
        if not values:

            async def nothing() -> Reply:
                require_admin(actor(interaction))
                raise InvalidInput(MSG_RESOLUTION_NOTHING)

            await respond(interaction, nothing, action="settings.resolution")
            return
        await self._update(interaction, values=values)

    @settings.command(name="channel")
    @app_commands.describe(channel="Where new markets and results are announced (empty = none)")
    async def channel(
        self, interaction: discord.Interaction, channel: discord.TextChannel | None = None
    ) -> None:
        """Set or clear the announcement channel."""
        warning = ""
        if channel is not None:
            missing = missing_permissions(channel)
            if missing is None:
                warning = MSG_UNCHECKED.format(channel=channel.id)
            elif missing:
                warning = MSG_MISSING.format(channel=channel.id, missing=", ".join(missing))
        await self._update(
            interaction, warning=warning, announce_channel_id=channel.id if channel else None
        )

    @settings.command(name="moderators")
    @app_commands.describe(
        channel="Where disputed results are reported to moderators (empty = the announcement "
        "channel)"
    )
    async def moderators(
        self, interaction: discord.Interaction, channel: discord.TextChannel | None = None
    ) -> None:
        """Set or clear the moderators' channel, where disputes ping the resolver roles."""
        warning = ""
        if channel is not None:
            missing = missing_permissions(channel)
            if missing is None:
                warning = MSG_UNCHECKED.format(channel=channel.id)
            elif missing:
                warning = MSG_MISSING_MODERATORS.format(
                    channel=channel.id, missing=", ".join(missing)
                )
        await self._update(
            interaction, warning=warning, moderator_channel_id=channel.id if channel else None
        )

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
