"""Starting and stopping the bot for `manage.py runbot` and `manage.py serve`: token checks that
end in one clear line, the health check registration, and a clean close on shutdown."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import discord
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connections

from core.leases import MARKET_CLOCK, LeaseKeeper
from ops import health
from ops.sentry import sentry_asyncio_enable

from . import db_threads
from .bot import PredictionBot

logger = logging.getLogger(__name__)

MSG_NO_TOKEN = (
    "DISCORD_TOKEN is not set. Create a bot in the Discord Developer Portal, copy its token into "
    "DISCORD_TOKEN (environment or .env), and see the README's “Discord setup”."
)
MSG_REJECTED = (
    "Discord rejected DISCORD_TOKEN ({detail}). Reset the token in the Developer Portal (Bot → "
    "Reset Token) and set the new one."
)
MSG_UNREACHABLE = "Could not reach Discord at {url}: {detail}."


BOT_CONN_MAX_AGE = db_threads.BOT_CONN_MAX_AGE
"""Seconds a long-running bot process keeps its PostgreSQL connections when DB_CONN_MAX_AGE is
not set: Django's default (0) opens a new connection for every call."""
CLOCK_SECONDS = 30.0


def bot_connection_defaults() -> None:
    """Keep database connections in a long-running bot process (`runbot`, `serve`), unless the
    operator chose (DB_CONN_MAX_AGE) or a connection pool is configured. Call before the first
    query."""
    if "DB_CONN_MAX_AGE" in os.environ:
        return
    db = connections.settings["default"]
    if db.get("ENGINE", "").endswith("sqlite3") or (db.get("OPTIONS") or {}).get("pool"):
        return
    if not db.get("CONN_MAX_AGE"):
        db["CONN_MAX_AGE"] = BOT_CONN_MAX_AGE


async def market_clock(interval: float = CLOCK_SECONDS) -> None:
    """`markets_tick` every `interval` seconds, off the event loop (DOMAIN §6), while this
    process holds the market clock's lease (`core.leases`; the bot's clock and `run_scheduler`
    ask for the same one): closes markets whose time is up and refunds those left unresolved."""
    from .cogs.scheduler import tick_and_refresh

    tick = database_sync_to_async(tick_and_refresh, thread_sensitive=False)
    lease = LeaseKeeper(MARKET_CLOCK)
    keeper = asyncio.get_running_loop().create_task(lease.run(), name="market-clock-lease")
    try:
        await _clock_loop(tick, lease, interval)
    finally:
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)


async def _clock_loop(
    tick: Callable[[], Awaitable[Any]], lease: LeaseKeeper, interval: float
) -> None:
    last = float("-inf")
    while True:
        if lease.held and time.monotonic() - last >= interval:
            last = time.monotonic()
            try:
                report = await tick()
                if report.closed or report.refunded:
                    logger.info("market clock: %s", report)
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad tick must not stop the clock
                logger.exception("markets_tick failed")
        await lease.wait_changed(min(interval, lease.renew))


def market_clock_start(interval: float = CLOCK_SECONDS) -> asyncio.Task:
    return asyncio.get_running_loop().create_task(market_clock(interval), name="market-clock")


class BotStartError(Exception):
    """A reason the bot cannot start, as one line for the operator."""


def token_get() -> str:
    token = (getattr(settings, "DISCORD_TOKEN", "") or "").strip()
    if not token:
        raise BotStartError(MSG_NO_TOKEN)
    return token


def describe_start_failure(exc: BaseException) -> str | None:
    """One line for the failures an operator can fix; None for anything else (a bug)."""
    if isinstance(exc, discord.LoginFailure):
        return MSG_REJECTED.format(detail=str(exc) or "401 Unauthorized")
    if isinstance(exc, discord.PrivilegedIntentsRequired):
        return f"Discord refused the gateway intents: {exc}"
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ClientOSError | TimeoutError):
        return MSG_UNREACHABLE.format(url=discord.http.Route.BASE, detail=exc)
    if isinstance(exc, discord.HTTPException) and exc.status == 401:
        return MSG_REJECTED.format(detail=f"{exc.status} {exc.text}")
    return None


async def run(bot: PredictionBot, token: str) -> None:
    """Log in, connect and run until closed. Raises `BotStartError` for an operator's mistake.

    Every way of starting the bot (`runbot`, `serve`) comes through here, inside the loop the bot
    will run on: Sentry's asyncio integration patches that running loop, so exceptions of tasks
    nobody awaits are reported (a no-op when Sentry is not initialised). The gateway is shown in
    `/health/external` and the bot process's readiness."""
    sentry_asyncio_enable()
    health.register_external_check("discord", bot.health)
    try:
        async with bot:
            await bot.start(token)
    except BotStartError:
        raise
    except Exception as exc:
        line = describe_start_failure(exc)
        if line is None:
            raise
        raise BotStartError(line) from exc


def start_in_loop(bot: PredictionBot, token: str) -> asyncio.Task:
    """Run the bot as a task of the current loop (the web server's), logging a start failure as
    one line instead of stopping the web server."""

    async def main() -> None:
        try:
            await run(bot, token)
        except BotStartError as exc:
            logger.error("Discord bot not started: %s", exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Discord bot stopped with an error")

    return asyncio.get_running_loop().create_task(main(), name="discord-bot")
