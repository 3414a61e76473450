"""The Discord bot (STYLE §9): an `AutoShardedBot` built from settings, with no network access
until it logs in.

`build_bot()` returns a fully configured bot; `setup_hook` (run by `login`) loads the cogs in
`discordbot/cogs/`, which register their persistent `DynamicItem`s and modal routes, and syncs
the commands to `DISCORD_DEV_GUILD_ID` when that is set (globally only when asked). Database work
runs through `PredictionBot.db`, which wraps `channels.db.database_sync_to_async` around a
dedicated thread pool: one thread on SQLite (it serialises writers anyway), several on
PostgreSQL, so a trade waiting on a row lock never holds up the event loop. Latency-critical
reads (autocomplete, the Buy button's status check, the policy cache) run through
`PredictionBot.db_fast` on a small pool of their own, so a burst of trades queued in `db` never
empties an autocomplete; cache calls (rate limits) have their own threads too, so a hung Redis
holds up neither.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

import aiohttp
import discord
import yarl
from channels.db import database_sync_to_async
from discord import app_commands
from discord.ext import commands
from django.conf import settings
from django.core.cache import cache

from betting.services import MAX_BATCH
from core.errors import DomainError
from core.leases import LeaseKeeper
from core.replicas import replica_aliases, writes_committed
from core.telemetry import gauges_register, gauges_unregister
from ops import metrics
from ops.health import PoolWatch, register_external_check, unregister_external_check
from points import services as points_services

from . import actions, answers, dpy_private, interactions, ratelimit, recovery
from .batching import MarketBatcher
from .bot_config import BotConfig
from .clock import DiscordClock
from .db_threads import (
    cache_is_process_memory,
    close_pool_connections,
    connections_kept,
)
from .interactions import ModalRouter, RecentIds, answer_now
from .policies import PolicyCache
from .snapshot_l2 import SharedSnapshots
from .snapshots import database_snapshots

logger = logging.getLogger(__name__)

# The bot never joins voice: don't warn at start-up that voice libraries are missing.
discord.VoiceClient.warn_nacl = False
discord.VoiceClient.warn_dave = False

T = TypeVar("T")

FAST_DB_WORKERS = 2
CACHE_WORKERS = 4
DB_POOL_CHECK = "bot_db_pool"
SEEN_HERE_CAPACITY = 50_000
"""Interaction ids remembered in process (`PredictionBot.seen_here`): a few MB, more than a
15-minute token lifetime holds at the rates docs/performance.md measures."""
"""The external health check that reports the bot's database threads stalled (issue 12)."""


class StillWorking(Exception):
    """A bounded `db` call ran past its budget. The call goes on in its thread; `pending`
    resolves to its result (or error) when it finishes."""

    def __init__(self, pending: asyncio.Future, budget: float) -> None:
        super().__init__(f"database call still running after {budget:g}s")
        self.pending = pending
        self.budget = budget


class PredictionBot(commands.AutoShardedBot):
    def __init__(self, config: BotConfig) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        options: dict[str, Any] = {}
        if config.shard_count is not None:
            options["shard_count"] = config.shard_count
        if config.shard_ids is not None:
            options["shard_ids"] = list(config.shard_ids)
        clock = DiscordClock()
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            http_trace=clock.trace_config(),
            **options,
        )
        self.clock = clock
        """Discord's clock as this process sees it (interaction ages, skew): issue 23 item 15."""
        self.config = config
        self.modals = ModalRouter()
        self.policies = PolicyCache(self)
        self.synced: list[app_commands.AppCommand] = []
        self._tasks: set[asyncio.Task] = set()
        self._db_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, config.db_workers),
            thread_name_prefix="bot-db",
            initializer=connections_kept,
        )
        self._fast_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=FAST_DB_WORKERS,
            thread_name_prefix="bot-db-fast",
            initializer=connections_kept,
        )
        self._cache_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=CACHE_WORKERS, thread_name_prefix="bot-cache"
        )
        # `django.core.cache.cache` is a proxy (never a LocMemCache itself): ask the configured
        # backend's own class.
        self._cache_inline = cache_is_process_memory()
        self._seen: dict[tuple[int, int], float] = {}
        self._noting: dict[int, asyncio.Task] = {}
        """Directory notes still being written, by interaction id (`directory_noted`)."""
        self.trades = MarketBatcher(self._trades_serve, cap=MAX_BATCH)
        self.directory = MarketBatcher(self._directory_serve, cap=1000)
        """The members' directory notes, written together (one queue, key 0): a rush of new
        members costs a statement or two per batch, not two per member."""
        self.ratelimits = ratelimit.Pipelined(self.cache_call)
        self.snapshots = database_snapshots(
            self.db_fast, None if self._cache_inline else SharedSnapshots(cache, self.cache_call)
        )
        """Markets and guild settings as this process last saw them (issue 21)."""
        self.db_watch = PoolWatch(max(1, config.db_workers), stall_after=config.answer_budget)
        self.leases: dict[str, LeaseKeeper] = {}
        """This process's singleton-job leases (`discordbot.leases`)."""
        self.unseen: set[tuple[int, int]] = set()
        """(guild, member) with answers waiting for their next reply (DMs closed)."""
        self.seen_here = RecentIds(SEEN_HERE_CAPACITY)
        """Interactions this process has begun answering: a re-delivery to the same process is
        known to be one without asking the cache (`interactions.gate`)."""
        self.tree.error(self.on_app_command_error)

    # --- Plumbing ----------------------------------------------------------------------------

    async def db(
        self, func: Callable[..., T], /, *, budget: float | None = None, **kwargs: Any
    ) -> T:
        """Run a service or selector in the bot's database threads (`database_sync_to_async`
        closes stale connections around each call). With `budget` the caller waits at most that
        many seconds and gets `StillWorking` (whose `pending` future brings the result later):
        a database that stops answering mid-query (SIGSTOP, a stalled proxy) is not caught by
        keepalives, only by a client-side budget. The thread itself cannot be interrupted; the
        pool's health check (`db_watch`) reports calls stuck past the budget.

        Inside an interaction's body the call recovers from an unknown commit outcome and from
        a database that is restarting (`recovery.resolved`, issue 27)."""
        if budget is None:
            return await recovery.resolved(lambda: self.db_once(func, **kwargs))
        return await self.db_once(func, budget=budget, **kwargs)

    async def db_once(
        self, func: Callable[..., T], /, *, budget: float | None = None, **kwargs: Any
    ) -> T:
        """`db` without the recovery: one attempt."""
        call = database_sync_to_async(func, thread_sensitive=False, executor=self._db_pool)
        token = self.db_watch.started()
        pending = asyncio.ensure_future(call(**kwargs))
        pending.add_done_callback(lambda _: self.db_watch.finished(token))
        if budget is None:
            return await pending
        done, _ = await asyncio.wait({pending}, timeout=budget)
        if not done:
            raise StillWorking(pending, budget)
        return pending.result()

    async def db_fast(self, func: Callable[..., T], /, **kwargs: Any) -> T:
        """Like `db`, on the latency-critical reads' own threads: short reads a member is
        waiting on (autocomplete, status checks, policies) never queue behind trades."""
        call = database_sync_to_async(func, thread_sensitive=False, executor=self._fast_pool)
        return await call(**kwargs)

    @property
    def cache_is_local(self) -> bool:
        """True when the cache is this process's memory (no network I/O to wait on)."""
        return self._cache_inline

    async def _trades_serve(self, market_id: int, asks: Sequence[actions.TradeAsk]) -> list:
        # One attempt: each member's `trade` recovers on its own (its own key, its own answer).
        answers, summary = await self.db_once(actions.trades_batch, market_id=market_id, asks=asks)
        if summary is not None:
            self.snapshots.put(summary)
        return answers

    async def _directory_serve(self, _: int, rows: Sequence[dict]) -> list[None]:
        await self.db_once(points_services.members_seen, rows=list(rows))
        return [None] * len(rows)

    async def trade(self, *, market_id: int, ask: actions.TradeAsk) -> actions.TradeResult:
        """A member's buy, stake or sale, committed in its market's next batch
        (`discordbot.batching`); a refusal is raised as the `DomainError` the one-request
        service would have raised. Interfaces call `responders.trade`, which counts it."""
        result = await recovery.resolved(
            lambda: self.trades.submit(market_id, ask), key=ask.idempotency_key
        )
        if isinstance(result, DomainError):
            raise result
        if replica_aliases():  # the batch committed elsewhere: remember it for this member
            await self.db_fast(writes_committed)
        return result

    async def cache_call(self, func: Callable[..., T], /, **kwargs: Any) -> T:
        """Run a cache-only function: inline for the in-process cache, in the cache threads for
        Redis (never the loop's default executor, which a hung Redis would fill)."""
        if self._cache_inline:
            return func(**kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._cache_pool, lambda: func(**kwargs))

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        """A background task the bot keeps a reference to (so it is not garbage-collected)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- Start-up ----------------------------------------------------------------------------

    async def login(self, token: str) -> None:
        """Log in over a connection pool of `http_connections` kept-alive connections instead of
        discord.py's unlimited one: a burst of interactions then reuses connections rather than
        opening (and TLS-handshaking) one per request."""
        if self.config.http_connections:
            self.http.connector = aiohttp.TCPConnector(
                limit=self.config.http_connections, keepalive_timeout=60
            )
        await super().login(token)

    async def setup_hook(self) -> None:
        register_external_check(DB_POOL_CHECK, self.db_watch.check)
        gauges_register("discord_clock", self.clock.readings)
        try:
            self.unseen = await self.db(answers.unseen_members)
        except Exception:
            logger.warning("could not load the answers waiting for members", exc_info=True)
        for name in self.config.extensions:
            await self.load_extension(name)
        declare_contexts(self.tree)
        if (
            self.config.sync_on_start
            and (self.config.dev_guild_id or self.config.sync_global)
            and self.config.holds_shard_zero
        ):
            # One process syncs: the one holding shard 0. Every shard
            # re-syncing at start spends the 2-per-minute command bucket for nothing.
            await self.sync_commands()

    async def sync_commands(self) -> list[app_commands.AppCommand]:
        """Sync so that every guild lists each command once.

        - Globally when asked (`sync_global`): the global commands are replaced, and the
          development guild's own copies are cleared (else it would list every command twice).
        - Otherwise to the development guild (instant): its copies are replaced; global
          commands left by an earlier global sync would show twice there, which is logged with
          the way out (global commands cannot be hidden from one guild).

        Discord refusing a sync (403: the bot is not in the guild or lacks the
        applications.commands scope) is logged, never fatal: the bot still answers with the
        commands Discord already has."""
        synced: list[app_commands.AppCommand] = []
        dev = self.config.dev_guild_id
        guild = discord.Object(id=dev) if dev else None
        if self.config.sync_global:
            synced = await self._sync_logged(None) or []
            if guild is not None:
                self.tree.clear_commands(guild=guild)
                await self._sync_logged(guild)
        elif guild is not None:
            self.tree.copy_global_to(guild=guild)
            synced = await self._sync_logged(guild) or []
            try:
                stale = await self.tree.fetch_commands()
            except discord.HTTPException:
                stale = []
            if stale:
                logger.warning(
                    "%d global commands exist too, so guild %s lists them twice; run once with "
                    "--sync-global to replace them (the dev guild's copies are then cleared)",
                    len(stale),
                    dev,
                )
        self.synced = synced
        return synced

    async def _sync_logged(
        self, guild: discord.abc.Snowflake | None
    ) -> list[app_commands.AppCommand] | None:
        where = f"to guild {guild.id}" if guild else "globally"
        try:
            synced = await self.tree.sync(guild=guild)
        except discord.HTTPException as exc:
            logger.error(
                "could not sync commands %s: %s %s (is the bot in that guild, invited with the "
                "applications.commands scope?)",
                where,
                exc.status,
                exc.text,
            )
            return None
        logger.info("synced %d commands %s", len(synced), where)
        return synced

    async def close(self) -> None:
        unregister_external_check(DB_POOL_CHECK)
        gauges_unregister("discord_clock")
        for task in list(self._tasks):
            task.cancel()
        dpy_private.shard_queue_ensure(self)
        await super().close()
        # The database threads' kept connections (`connections_kept`) close with the bot.
        await asyncio.get_running_loop().run_in_executor(None, self.connections_close)
        for pool in (self._db_pool, self._fast_pool, self._cache_pool):
            pool.shutdown(wait=False, cancel_futures=True)

    def connections_close(self) -> None:
        """Close the database threads' kept connections (each reconnects on its next call)."""
        workers = max(1, self.config.db_workers)
        for pool, n in ((self._db_pool, workers), (self._fast_pool, FAST_DB_WORKERS)):
            close_pool_connections(pool, n)

    # --- Events ------------------------------------------------------------------------------

    def directory_note(self, interaction: discord.Interaction) -> asyncio.Task | None:
        """Keep the member's and the guild's names (issue 13) off the interaction's critical
        path: at most once per member per `PM_MEMBER_SEEN_EVERY` seconds in this process (the
        service gates again across processes), in a task that waits for the first response and
        then writes with the other members' notes waiting (`directory`, one batch); a failure
        is logged, never raised."""
        user, guild_id = interaction.user, interaction.guild_id
        if guild_id is None or user is None or getattr(user, "bot", False):
            return None
        key, now = (guild_id, user.id), time.monotonic()
        if now - self._seen.get(key, -math.inf) < settings.PM_MEMBER_SEEN_EVERY:
            return None
        if len(self._seen) > 100_000:
            self._seen.clear()
        self._seen[key] = now
        guild = interaction.guild
        fields: dict[str, Any] = {
            "guild_id": guild_id,
            "user_id": user.id,
            "display_name": user.display_name,
            "username": user.name,
            "avatar": user.display_avatar.url,
        }
        if guild is not None and getattr(guild, "name", None):
            fields["guild_name"] = guild.name
            fields["guild_icon"] = guild.icon.url if guild.icon else ""

        async def note() -> None:
            for _ in range(60):  # the first response is due within 3 s
                if interaction.response.is_done():
                    break
                await asyncio.sleep(0.05)
            try:
                await self.directory.submit(0, fields)
            except Exception:
                logger.exception("could not note member %s in the directory", user.id)

        task = self.spawn(note())
        self._noting[interaction.id] = task
        task.add_done_callback(lambda _: self._noting.pop(interaction.id, None))
        return task

    async def directory_noted(self, interaction: discord.Interaction, timeout: float = 2.0) -> None:
        """Wait (at most `timeout` s) until this interaction's directory note is written, so a
        reply rendered next names the member (issue 23: a first `/market create` said "created
        by member #2222…"). Only an interaction that is noting waits; called once acknowledged."""
        task = self._noting.get(interaction.id)
        if task is not None:
            await asyncio.wait({task}, timeout=timeout)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Modal submissions go to `ModalRouter`; a component or modal nobody handles (an id
        from an older version) still gets an answer, so no interaction goes unanswered. Every
        interaction also notes its member in the directory (`directory_note`)."""
        self.clock.received(interaction.id)
        self.directory_note(interaction)
        if interaction.type == discord.InteractionType.modal_submit:
            try:
                if await self.modals.dispatch(interaction):
                    return
            except Exception as exc:
                error_id = interactions.error_capture(
                    exc,
                    logger=logger,
                    message="modal failed",
                    interaction_id=interaction.id,
                    guild_id=interaction.guild_id,
                )
                if not interaction.response.is_done():
                    await answer_now(interaction, interactions.MSG_ERROR.format(error_id=error_id))
                return
            await answer_now(interaction, interactions.MSG_STALE)
        elif interaction.type == discord.InteractionType.component:
            data: Mapping[str, object] = interaction.data or {}
            custom_id = str(data.get("custom_id", ""))
            if not dpy_private.dynamic_item_matches(self, custom_id):
                await answer_now(interaction, interactions.MSG_STALE)

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        """Errors the command tree raises before a command runs (bad option values, a command
        Discord knows but this bot does not): one short answer, never a traceback. An
        autocomplete can only be answered with choices (Discord refuses a message), so it gets
        an empty list."""
        if interaction.type is discord.InteractionType.autocomplete:
            if isinstance(error, app_commands.CommandNotFound):
                logger.info("autocomplete for unknown command: %s", error)
            else:
                interactions.error_capture(
                    error,
                    logger=logger,
                    message="autocomplete failed before it ran",
                    interaction_id=interaction.id,
                    guild_id=interaction.guild_id,
                )
            if not interaction.response.is_done():
                try:
                    await interaction.response.autocomplete([])
                except discord.HTTPException:
                    logger.info("could not answer autocomplete %s", interaction.id)
            return
        if isinstance(error, app_commands.CommandNotFound):
            text = "This command is not available any more; the command list will update soon."
        elif isinstance(error, app_commands.NoPrivateMessage):
            text = interactions.MSG_GUILD_ONLY
        elif isinstance(error, app_commands.TransformerError):
            text = f"“{str(error.value)[:50]}” is not a valid value for that option."
        elif isinstance(error, app_commands.CheckFailure):
            text = "You can't use this command here."
        else:
            error_id = interactions.error_capture(
                error,
                logger=logger,
                message=f"command {getattr(interaction.command, 'qualified_name', '?')} failed",
                interaction_id=interaction.id,
                guild_id=interaction.guild_id,
            )
            text = interactions.MSG_ERROR.format(error_id=error_id)
        try:
            await answer_now(interaction, text)
        except discord.HTTPException:
            logger.exception("could not answer interaction %s", interaction.id)

    async def on_shard_ready(self, shard_id: int) -> None:
        logger.info("shard %s ready", shard_id)
        self._observe_gateway()

    async def on_shard_disconnect(self, shard_id: int) -> None:
        logger.warning("shard %s disconnected", shard_id)
        self._observe_gateway()

    async def on_shard_resumed(self, shard_id: int) -> None:
        self._observe_gateway()

    def _observe_gateway(self) -> None:
        connected = sum(1 for s in self.shards.values() if not s.is_closed())
        metrics.gateway_observed(self.latency, connected)

    def health(self) -> tuple[str, dict[str, Any]]:
        """For `/health/ready` of the bot process: healthy once every shard is connected."""
        shards = {sid: not s.is_closed() for sid, s in self.shards.items()}
        latency = self.latency
        details = {
            "shards": len(shards),
            "connected": sum(shards.values()),
            "latency_ms": round(latency * 1000) if 0 <= latency < float("inf") else None,
        }
        if self.is_closed() or not self.is_ready():
            return "unhealthy", details
        return ("healthy" if all(shards.values()) else "degraded"), details


def build_bot(config: BotConfig | None = None, **overrides: Any) -> PredictionBot:
    """A fully configured bot from settings (plus `overrides`), without touching the network.
    `DISCORD_API_BASE` points discord.py at another API base URL (a proxy, or a fake), and
    `DISCORD_GATEWAY_URL` at another gateway (with `--shard-count` discord.py does not ask
    `/gateway/bot` where it is)."""
    base = (getattr(settings, "DISCORD_API_BASE", "") or "").strip()
    if base:
        discord.http.Route.BASE = base.rstrip("/")
    gateway = (getattr(settings, "DISCORD_GATEWAY_URL", "") or "").strip()
    if gateway:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)
    return PredictionBot(config or BotConfig.from_settings(**overrides))


def declare_contexts(tree: app_commands.CommandTree) -> None:
    """Say where each command is offered the current way, `contexts` and `integration_types`
    (Discord's "Application Command Object": `dm_permission` is deprecated, and discord.py sends
    `contexts: null` unless told): a guild install (`integration_types` [0]), used in servers
    (`contexts` [0]) for guild-only commands, in servers and the bot's DMs (0, 1) otherwise.
    Issue 23 item 19."""
    tree.allowed_installs = app_commands.AppInstallationType(guild=True)
    for command in tree.get_commands():
        if not isinstance(command, (app_commands.Command, app_commands.Group)):
            continue
        if command.allowed_contexts is None:
            command.allowed_contexts = (
                app_commands.AppCommandContext(guild=True)
                if command.guild_only
                else app_commands.AppCommandContext(guild=True, dm_channel=True)
            )
