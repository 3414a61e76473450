"""Seasons in Discord (docs/domain.md §10): `/settings season` (added to the settings group),
the final table posted in the announcement channel once a season is closed by the market clock,
and the reward role for its top 3.

The close itself happens in the clock's tick (`betting.seasons`, registered with the markets'
scheduler); this cog only tells the server, each closed season once. The post is claimed in the
database before it is sent and recorded once sent (`points.seasons.season_announced`,
`season_posted`): a claim left by a process that stopped in between is taken over after
`CLAIM_SECONDS`, and the table is sent with the same nonce, which Discord enforces (a repeat
returns the message already posted: https://discord.com/developers/docs/resources/message#create-message,
`enforce_nonce`). A refusal that will not change by itself (no permission in the channel, the
channel gone) is recorded as why it was not posted, for the back office; a 5xx or a network error
leaves it for the next pass.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands, tasks

from betting.seasons import SeasonTables, season_tables_for, tables_from_archive
from points import seasons as ledger_seasons
from points import selectors as points_selectors
from points.errors import InvalidInput
from points.models import GuildSettings, Season

from ..interactions import Reply, actor, idempotency_key
from ..leases import notifier_lease
from ..render import community, settings_embed
from ..render.guild import season_words
from ..responders import responder
from ..selectors import guild_settings_or_defaults

if TYPE_CHECKING:
    from ..bot import PredictionBot

logger = logging.getLogger(__name__)

LENGTH_CHOICES = [
    app_commands.Choice(name="Off", value="off"),
    app_commands.Choice(name="Calendar months (UTC)", value="month"),
    app_commands.Choice(name="Calendar quarters (UTC)", value="quarter"),
    app_commands.Choice(name="Custom end dates", value="custom"),
]
MSG_ROLE_MANAGE = (
    "I can't give {role} to the season's top 3: I need the **Manage Roles** permission. Give "
    "it to my role, then set the reward role again."
)
MSG_ROLE_HIGH = (
    "I can't give {role} to the season's top 3: it sits above my highest role. Drag my role "
    "above it in Server Settings → Roles, or pick a lower role."
)
MSG_ROLE_MANAGED = "{role} belongs to an integration or is @everyone; pick a role members can get."
MSG_SEASON_SAVED = "Saved. {what}"


def role_problem(guild: discord.Guild | None, role: discord.Role) -> str | None:
    """Why the bot could not give `role` (Discord refuses a role at or above the bot's highest
    role, or any role without Manage Roles); None when it can, or when the bot's own member is
    not cached (cannot tell; the reward then says so if Discord refuses)."""
    if role.is_default() or role.managed:
        return MSG_ROLE_MANAGED.format(role=role.mention)
    me = guild.me if guild is not None else None
    if me is None:
        return None
    if not me.guild_permissions.manage_roles:
        return MSG_ROLE_MANAGE.format(role=role.mention)
    if role >= me.top_role:
        return MSG_ROLE_HIGH.format(role=role.mention)
    return None


@app_commands.command(name="season")
@app_commands.describe(
    length="How long a season lasts",
    ends="Custom seasons: end dates like 2027-03-31, 2027-06-30 (UTC, in order)",
    role="A role for each season's top 3 (optional)",
    reset="Reset every balance to the starting balance when a season ends",
)
@app_commands.choices(length=LENGTH_CHOICES)
@responder("settings.season")
async def season_settings(
    interaction: discord.Interaction,
    length: str,
    ends: app_commands.Range[str, 1, 400] | None = None,
    role: discord.Role | None = None,
    reset: bool | None = None,
) -> Reply:
    """Seasons: their length, a reward role for the top 3, and an optional balance reset."""
    if role is not None:
        problem = role_problem(interaction.guild, role)
        if problem:
            raise InvalidInput(problem)
    bot: PredictionBot = interaction.client  # type: ignore[assignment]
    gs = await bot.db(
        ledger_seasons.season_configure,
        guild_id=interaction.guild_id,
        actor=actor(interaction),
        idempotency_key=idempotency_key(interaction),
        length=length,
        ends=ends or "",
        role_id=role.id if role is not None else None,
        reset=reset,
    )
    running = await bot.db(ledger_seasons.season_running, guild_id=interaction.guild_id)
    return Reply(
        content=MSG_SEASON_SAVED.format(what=season_words(gs, running)),
        embeds=[settings_embed(gs, season=running)],
    )


MSG_NO_CHANNEL = ledger_seasons.NOT_POSTED + "no announcement channel is set"
MSG_REFUSED = ledger_seasons.NOT_POSTED + "Discord refused it ({status} {code}: {text})"
MSG_ROLE_REFUSED = "reward role refused for {count} of the top 3 ({status} {code}: {text})"


def closed_seasons() -> list[tuple[Season, SeasonTables, GuildSettings]]:
    out = []
    for season in ledger_seasons.seasons_unannounced():
        gs = guild_settings_or_defaults(guild_id=season.guild_id)
        out.append((season, tables_from_archive(season), gs))
    return out


class Seasons(commands.Cog):
    """Posts each season's final table once, and gives its reward role."""

    def __init__(self, bot: PredictionBot) -> None:
        self.bot = bot
        self.announce.change_interval(seconds=bot.config.tick_seconds)

    async def cog_load(self) -> None:
        if self.bot.config.background_tasks:
            notifier_lease(self.bot)  # claimed in the background; see `announce`
            self.announce.start()

    async def cog_unload(self) -> None:
        self.announce.cancel()

    @tasks.loop(seconds=30)
    async def announce(self) -> None:
        """Announcements are the notifier's work: only the process holding its lease posts
        (each season is also claimed in the database, so two posters never post one twice)."""
        if not notifier_lease(self.bot).held:
            return
        try:
            await self.announce_closed()
        except Exception:  # the next pass retries
            logger.exception("season announcements failed")

    async def announce_closed(self) -> list[int]:
        """Post every closed season's table that waits for its post; the ids done with (posted,
        or recorded as why not)."""
        done = []
        for season, tables, gs in await self.bot.db(closed_seasons):
            if not await self.bot.db(ledger_seasons.season_announced, season_id=season.pk):
                continue  # another process holds it
            try:
                rewarded, detail = await self._post(season, tables, gs)
            except discord.HTTPException:
                logger.warning("could not post season %s", season.pk, exc_info=True)
                await self.bot.db(ledger_seasons.season_unclaim, season_id=season.pk)
                continue
            await self.bot.db(
                ledger_seasons.season_posted, season_id=season.pk, rewarded=rewarded, detail=detail
            )
            done.append(season.pk)
        return done

    async def _post(
        self, season: Season, tables: SeasonTables, gs: GuildSettings
    ) -> tuple[list[int], str]:
        """Give the reward role, then post the table: who got the role, and what went wrong
        for good ("" if nothing). A 5xx or 429 is raised, for the next pass."""
        ids = {u for u, _ in tables.balance} | {u for u, _ in tables.profit}
        ids |= {u for u, _, _ in tables.calibration}
        names = await self.bot.db(points_selectors.member_names, guild_id=gs.guild_id, user_ids=ids)
        rewarded, refused = await self._reward(gs, [u for u, v in tables.profit[:3] if v > 0])
        problems = [refused] if refused else []
        if not gs.announce_channel_id:
            return rewarded, "; ".join([MSG_NO_CHANNEL, *problems])
        channel = self.bot.get_partial_messageable(gs.announce_channel_id)
        try:
            await channel.send(
                content=community.season_content(season.number, gs.season_role_id, rewarded),
                embed=community.season_embed(tables, names=names),
                nonce=f"season:{season.pk}:{season.post_round}",
                allowed_mentions=discord.AllowedMentions.none(),
            )
        except discord.HTTPException as exc:
            if exc.status >= 500 or exc.status == 429:
                raise
            why = MSG_REFUSED.format(status=exc.status, code=exc.code, text=exc.text[:80])
            problems.insert(0, why)
        return rewarded, "; ".join(problems)

    async def _reward(self, gs: GuildSettings, winners: list[int]) -> tuple[list[int], str]:
        """Give the reward role to the season's top 3 (Discord's Add Guild Member Role is a PUT:
        giving it again after a restart changes nothing); who got it, and a refusal in words."""
        if not gs.season_role_id:
            return [], ""
        done, refusals = [], []
        for user_id in winners:
            try:
                await self.bot.http.add_role(
                    gs.guild_id, user_id, gs.season_role_id, reason="Season top 3"
                )
                done.append(user_id)
            except discord.HTTPException as exc:
                if exc.status >= 500 or exc.status == 429:
                    raise
                logger.warning("season role for %s refused: %s", user_id, exc)
                refusals.append(exc)
        if not refusals:
            return done, ""
        first = refusals[0]
        words = MSG_ROLE_REFUSED.format(
            count=len(refusals), status=first.status, code=first.code, text=first.text[:60]
        )
        return done, words


async def season_leaderboard(
    bot: PredictionBot, guild_id: int | None, number: int, kind: str | None
) -> Reply:
    """`/leaderboard season:<n>`: the archived final table, or the running season's live one."""
    tables = await bot.db(season_tables_for, guild_id=guild_id, number=number)
    if tables is None:
        raise InvalidInput(community.MSG_NO_SEASON.format(number=number))
    ids = {u for u, _ in tables.balance} | {u for u, _ in tables.profit}
    ids |= {u for u, _, _ in tables.calibration}
    names = await bot.db(points_selectors.member_names, guild_id=guild_id, user_ids=ids)
    return Reply(embeds=[community.season_embed(tables, names=names, only=kind)], ephemeral=False)


async def setup(bot: PredictionBot) -> None:
    group = bot.tree.get_command("settings")
    if not isinstance(group, app_commands.Group):
        raise RuntimeError("load discordbot.cogs.settings before discordbot.cogs.seasons")
    group.add_command(season_settings)
    await bot.add_cog(Seasons(bot))
