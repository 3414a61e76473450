"""Run the Discord bot in the foreground (`python manage.py runbot`)."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.runtime import heap_freeze
from discordbot.bot import build_bot
from discordbot.runner import BotStartError, bot_connection_defaults, run, token_get


class Command(BaseCommand):
    help = (
        "Run the Discord bot: slash commands, buttons, notifications and the 30-second market "
        "clock. Needs DISCORD_TOKEN; syncs commands to DISCORD_DEV_GUILD_ID when set."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--shard-count", type=int, help="Total shards across all processes (default: auto)."
        )
        parser.add_argument(
            "--shard-ids",
            type=int,
            nargs="+",
            help="Shards this process runs (needs --shard-count); notifications run with shard 0.",
        )
        parser.add_argument(
            "--sync-global",
            action="store_true",
            help="Sync slash commands globally at start (takes up to an hour to show everywhere).",
        )
        parser.add_argument(
            "--no-sync", action="store_true", help="Don't sync commands, even to the dev guild."
        )
        parser.add_argument(
            "--health-port",
            type=int,
            help="Serve /health/live, /health/ready and /metrics on this port.",
        )
        parser.add_argument("--health-host", default="127.0.0.1")

    def handle(self, *args, **options) -> None:
        if options["shard_ids"] and not options["shard_count"]:
            raise CommandError("--shard-ids needs --shard-count (the total number of shards).")
        if options["shard_count"] is not None and options["shard_count"] < 1:
            raise CommandError("--shard-count must be at least 1.")
        bad = [i for i in options["shard_ids"] or [] if not 0 <= i < (options["shard_count"] or 0)]
        if bad:
            raise CommandError(f"Shard ids must be from 0 to {options['shard_count'] - 1}: {bad}.")
        try:
            token = token_get()
        except BotStartError as exc:
            raise CommandError(str(exc)) from None
        bot_connection_defaults()
        overrides = {
            "shard_count": options["shard_count"],
            "shard_ids": tuple(options["shard_ids"]) if options["shard_ids"] else None,
            "sync_global": options["sync_global"],
            "sync_on_start": not options["no_sync"],
        }
        try:
            asyncio.run(self._main(token, overrides, options))
        except BotStartError as exc:
            raise CommandError(str(exc)) from None
        except KeyboardInterrupt:
            self.stdout.write("Stopped.")

    async def _main(self, token: str, overrides: dict, options: dict) -> None:
        bot = build_bot(**overrides)
        heap_freeze()
        health = None
        if options["health_port"] is not None:
            from ops.server import health_server_start

            health = await health_server_start(options["health_host"], options["health_port"])
            self.stdout.write(
                f"Health and metrics on http://{options['health_host']}:{options['health_port']}/"
            )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, lambda: loop.create_task(bot.close()))
        self.stdout.write("Starting the Discord bot (Ctrl+C to stop)")
        try:
            await run(bot, token)
        finally:
            if health is not None:
                await health.cleanup()
