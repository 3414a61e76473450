"""`manage.py run_drip_worker`: the DRIP outbox worker (docs/drip.md, docs/deploy.md)."""

from __future__ import annotations

import asyncio
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from core.leases import DRIP_WORKER, LeaseKeeper
from core.runtime import heap_freeze
from drip.health import worker_health_start
from drip.worker import DripWorker


class Command(BaseCommand):
    help = "Send queued DRIP withdrawals in batches and flag transfers left in flight."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--interval",
            type=float,
            default=None,
            help="Seconds between passes (default DRIP_WORKER_INTERVAL)",
        )
        parser.add_argument("--once", action="store_true", help="Run one pass and exit")
        parser.add_argument(
            "--health-port",
            type=int,
            default=None,
            help="Serve /health/live and /health/ready (database, DRIP keys) on this port.",
        )
        parser.add_argument("--health-host", default="127.0.0.1")

    def handle(self, *args, **options) -> None:
        interval = options["interval"] or settings.DRIP_WORKER_INTERVAL
        asyncio.run(self._run(interval, once=options["once"], options=options))

    async def _run(self, interval: float, *, once: bool, options: dict) -> None:
        if not once:
            heap_freeze()
        server = None
        if options.get("health_port") is not None:
            server = await worker_health_start(options["health_host"], options["health_port"])
            port = server.addresses[0][1]
            self.stdout.write(f"Health on http://{options['health_host']}:{port}/health/ready")
        worker = DripWorker()
        try:
            if once:
                report = await worker.run_once()
                self.stdout.write(f"DRIP worker pass: {report}")
                return
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            self.stdout.write(
                f"DRIP worker running (every {interval:g}s, while it holds the "
                f"{DRIP_WORKER!r} lease); Ctrl-C stops it."
            )
            await worker.run_forever(interval=interval, stop=stop, lease=LeaseKeeper(DRIP_WORKER))
        finally:
            await worker.client.close()
            if server is not None:
                await server.cleanup()
