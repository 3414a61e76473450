"""Serve the ASGI application (admin, dashboard, WebSockets) with daphne in the foreground, and
the Discord bot in the same process and event loop when DISCORD_TOKEN is set, so the in-memory
channel layer carries the bot's market events to the dashboard. With Redis, run `runbot`
separately instead (`--no-bot` here). The market clock (`markets_tick` every 30 s) runs here in
any case, so `make run` alone closes and refunds markets on time."""

from typing import Any, cast

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from core.runtime import heap_freeze


class Command(BaseCommand):
    help = "Serve admin and dashboard over HTTP and WebSockets (daphne), plus the Discord bot."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--no-bot",
            action="store_true",
            help="Don't start the Discord bot here even if DISCORD_TOKEN is set.",
        )

    def handle(self, *args, host: str, port: int, no_bot: bool = False, **options) -> None:
        from daphne.endpoints import build_endpoint_description_strings
        from daphne.server import Server

        from config.asgi import application

        token = (getattr(settings, "DISCORD_TOKEN", "") or "").strip()
        with_bot = bool(token) and not no_bot
        self.stdout.write(
            f"Serving on http://{host}:{port}/admin/"
            + (" with the Discord bot" if with_bot else "")
            + " (Ctrl+C to stop)"
        )
        if not token and not no_bot:
            # Said on start, or a server owner waits for a bot that never comes (issue 23).
            self.stdout.write(
                "The Discord bot did not start: DISCORD_TOKEN is not set (environment or .env; "
                "README, Discord setup). The admin, the dashboard and the market clock run "
                "without it."
            )
        Server(
            application=application,
            endpoints=build_endpoint_description_strings(host=host, port=port),
            signal_handlers=True,
            ready_callable=lambda: self._ready(token if with_bot else ""),
        ).run()

    def _ready(self, token: str) -> None:
        """Called by daphne just before its reactor runs: start the market clock, and the bot
        when there is a token."""
        import asyncio

        from twisted.internet import reactor

        from discordbot.runner import market_clock_start

        state = {}

        def start() -> None:
            state["clock"] = market_clock_start()

        def stop() -> None:
            task = state.get("clock")
            if task is not None:
                task.cancel()

        asyncio.get_event_loop().call_soon(start)
        cast(Any, reactor).addSystemEventTrigger("before", "shutdown", stop)
        if token:
            self._start_bot(token)
        heap_freeze()

    def _start_bot(self, token: str) -> None:
        """Called by daphne just before its reactor runs: start the bot on the reactor's asyncio
        loop, and close it before the reactor shuts down."""
        import asyncio

        from twisted.internet import defer, reactor

        from discordbot.bot import build_bot
        from discordbot.runner import bot_connection_defaults, start_in_loop

        bot_connection_defaults()
        bot = build_bot()
        state = {}

        def start() -> None:
            state["task"] = start_in_loop(bot, token)

        def stop():
            task = state.get("task")
            if task is None or task.done():
                return None
            return defer.Deferred.fromFuture(asyncio.ensure_future(bot.close()))

        # daphne made the reactor's asyncio loop the current one; `call_soon` runs once that
        # loop runs (Twisted's own start-up triggers fire before it does).
        asyncio.get_event_loop().call_soon(start)
        cast(Any, reactor).addSystemEventTrigger("before", "shutdown", stop)
