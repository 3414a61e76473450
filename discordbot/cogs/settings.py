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
from points.models import GuildSettings
from points.rules import (
    SETTINGS,
    SETTINGS_BY_NAME,
    amounts_parse,
    time_zone_names,
    zone_parse,
)
from points.seasons import season_running
from points.services import guild_settings_get_or_create

from .. import actions, render
from ..interactions import Reply, actor, idempotency_key
from ..market_threads import missing_thread_permissions
from ..permissions import require_admin
from ..responders import responder

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
HOLD = SETTINGS_BY_NAME["dispute_hold_hours"]
MODE_CHOICES = [
    app_commands.Choice(name=words[:1].upper() + words[1:], value=value)
    for value, words in MODE.choices
]
MSG_RESOLUTION_NOTHING = (
    "Choose at least one of `mode` (vote or creator), `dispute_window_minutes` (0 to "
    f"{WINDOW.high:,}), `dispute_hold_hours` ({HOLD.low} to {HOLD.high:,}) or "
    "`conflict_of_interest` (true or false)."
)


async def time_zone_autocomplete(
    interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    """Up to 25 IANA names containing what was typed (Discord's limit on choices)."""
    typed = current.strip().casefold().replace(" ", "_")
    names = sorted(z for z in time_zone_names() if typed in z.casefold())
    names.sort(key=lambda z: (not z.casefold().startswith(typed), len(z), z))
    return [app_commands.Choice(name=z, value=z) for z in names[:25]]


MSG_MISSING = (
    "\n⚠️ I can't announce in <#{channel}> yet: I'm missing {missing} there. Give me these "
    "permissions in the channel (or its category), and markets will be announced."
)
MSG_MISSING_MODERATORS = (
    "\n⚠️ I can't report disputes in <#{channel}> yet: I'm missing {missing} there. Give me "
    "these permissions in the channel (or its category); until then nothing reaches it."
)
MSG_NO_THREADS = (
    "\nℹ️ Markets announced in <#{channel}> won't get a discussion thread: I'm missing "
    "{missing} there. Everything else works (proposals and results are posted in the channel); "
    "give me these permissions and each new market gets its thread."
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


MSG_UNPINGABLE = (
    "\n⚠️ Dispute pings won't reach {roles}: {they} can't be mentioned, and I don't have the "
    "Mention Everyone permission{where}. Either turn on “Allow anyone to @mention this role” "
    "(Server Settings → Roles), or give me Mention Everyone."
)


def unpingable_roles(
    guild: discord.Guild | None,
    role_ids: list[int] | tuple[int, ...],
    channel: discord.abc.GuildChannel | None = None,
) -> list[int]:
    """The roles a dispute ping would not notify. Discord notifies a role mention only when
    the role is mentionable or the sender has MENTION_EVERYONE where it posts (Discord's
    "Permissions" topic, MENTION_EVERYONE; the Role object's `mentionable`). From the gateway
    cache; roles or a bot member not cached are not reported (cannot tell). Issue 23 item 16."""
    me = guild.me if guild is not None else None
    if guild is None or me is None:
        return []
    have = channel.permissions_for(me) if channel is not None else me.guild_permissions
    if have.mention_everyone:
        return []
    out = []
    for role_id in role_ids:
        role = guild.get_role(int(role_id))
        if role is not None and not role.mentionable:
            out.append(role.id)
    return out


def unpingable_warning(
    guild: discord.Guild | None,
    role_ids: list[int] | tuple[int, ...],
    channel: discord.abc.GuildChannel | None = None,
) -> str:
    missing = unpingable_roles(guild, role_ids, channel)
    if not missing:
        return ""
    return MSG_UNPINGABLE.format(
        roles=", ".join(f"<@&{r}>" for r in missing),
        they="it" if len(missing) == 1 else "they",
        where=f" in <#{channel.id}>" if channel is not None else "",
    )


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

    async def _embed(self, gs: GuildSettings) -> discord.Embed:
        """The settings as `/settings show` gives them, with the running season's end."""
        running = await self.bot.db(season_running, guild_id=gs.guild_id)
        return render.settings_embed(gs, season=running)

    @responder("settings.update")
    async def _update(
        self,
        interaction: discord.Interaction,
        *,
        warning: str = "",
        ping_check: bool = False,
        **changes,
    ) -> Reply:
        gs = await self.bot.db(
            actions.guild_settings_update_for_interaction,
            guild_id=interaction.guild_id,
            actor=actor(interaction),
            idempotency_key=idempotency_key(interaction),
            **changes,
        )
        # Every command after this answer meets the new settings (its rate limit, its quotes).
        if interaction.guild_id is not None:
            self.bot.snapshots.drop_settings(interaction.guild_id)
            await self.bot.policies.reload(interaction.guild_id)
        if ping_check:
            # Where disputes are reported: the moderators' channel, else the announcements'.
            guild = interaction.guild
            where = gs.moderator_channel_id or gs.announce_channel_id
            channel = guild.get_channel(int(where)) if guild is not None and where else None
            roles = [int(r) for r in gs.resolver_role_ids or []]
            warning += unpingable_warning(guild, roles, channel)
        return Reply(content=f"Saved.{warning}", embeds=[await self._embed(gs)])

    @settings.command(name="show")
    @responder("settings.show")
    async def show(self, interaction: discord.Interaction) -> Reply:
        """Show this server's settings."""
        require_admin(actor(interaction))
        gs = await self.bot.db(guild_settings_get_or_create, guild_id=interaction.guild_id)
        return Reply(embeds=[await self._embed(gs)])

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
        dispute_hold_hours=(
            "How long a disputed result waits for moderators before the market is cancelled "
            "and refunded"
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
        dispute_hold_hours: app_commands.Range[int, HOLD.low, HOLD.high] | None = None,
    ) -> None:
        """Choose how markets are resolved: mode, dispute window and hold, conflict rule."""
        values = {
            name: value
            for name, value in (
                ("resolution_mode", mode),
                ("dispute_window_minutes", dispute_window_minutes),
                ("conflict_of_interest", conflict_of_interest),
                ("dispute_hold_hours", dispute_hold_hours),
            )
            if value is not None
        }
        if not values:
            await self._nothing_to_change(interaction)
            return
        await self._update(interaction, values=values)

    @responder("settings.resolution")
    async def _nothing_to_change(self, interaction: discord.Interaction) -> Reply:
        require_admin(actor(interaction))
        raise InvalidInput(MSG_RESOLUTION_NOTHING)

    @settings.command(name="quick_amounts")
    @app_commands.describe(
        amounts="1 to 5 amounts in points, e.g. 10, 100, 1,000 (one-click stakes under a market)"
    )
    async def quick_amounts(
        self, interaction: discord.Interaction, amounts: app_commands.Range[str, 1, 100]
    ) -> None:
        """Choose the one-click amounts under market messages (default 10, 100, 1,000)."""
        await self._quick_amounts(interaction, amounts)

    @responder("settings.update")
    async def _quick_amounts(self, interaction: discord.Interaction, amounts: str) -> Reply:
        require_admin(actor(interaction))
        values = amounts_parse("quick_amounts", amounts)
        gs = await self.bot.db(
            actions.guild_settings_update_for_interaction,
            guild_id=interaction.guild_id,
            actor=actor(interaction),
            idempotency_key=idempotency_key(interaction),
            values={"quick_amounts": values},
        )
        await self.bot.policies.load(interaction.guild_id or 0)
        return Reply(content="Saved.", embeds=[await self._embed(gs)])

    @settings.command(name="time_zone")
    @app_commands.describe(
        zone="An IANA time zone name, e.g. Europe/Paris, America/New_York or UTC (type to search)"
    )
    @app_commands.autocomplete(zone=time_zone_autocomplete)
    async def time_zone(
        self, interaction: discord.Interaction, zone: app_commands.Range[str, 1, 64]
    ) -> None:
        """Choose the time zone a time of day like 21:00 is read in (known_at; default UTC)."""
        await self._time_zone(interaction, zone)

    @responder("settings.update")
    async def _time_zone(self, interaction: discord.Interaction, zone: str) -> Reply:
        require_admin(actor(interaction))
        gs = await self.bot.db(
            actions.guild_settings_update_for_interaction,
            guild_id=interaction.guild_id,
            actor=actor(interaction),
            idempotency_key=idempotency_key(interaction),
            values={"time_zone": zone_parse("time_zone", zone)},
        )
        return Reply(content="Saved.", embeds=[await self._embed(gs)])

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
            no_threads = missing_thread_permissions(channel)
            if no_threads:
                warning += MSG_NO_THREADS.format(channel=channel.id, missing=", ".join(no_threads))
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
            interaction,
            warning=warning,
            ping_check=True,
            moderator_channel_id=channel.id if channel else None,
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
            interaction,
            ping_check=kind == "resolver",
            role_kind=kind,
            role_action=action,
            role_id=role.id if role else None,
        )


async def setup(bot: PredictionBot) -> None:
    await bot.add_cog(Settings(bot))
