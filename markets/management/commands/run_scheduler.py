"""Run `markets_tick` every 30 seconds (or once): closes due markets, auto-refunds stale ones."""

import logging
import signal
import threading

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from core import signals
from markets.services import markets_tick

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Close markets whose time is up and auto-refund unresolved ones, every 30 s."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="Run one tick and exit.")
        parser.add_argument("--interval", type=float, default=30.0, help="Seconds between ticks.")

    def handle(self, *args, once: bool, interval: float, **options) -> None:
        stop = threading.Event()
        if not once:
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
        while True:
            try:
                report = markets_tick()
                self._after_tick()
                if report.closed or report.refunded or once:
                    self.stdout.write(f"tick: {report}")
            except Exception:
                # One bad tick must not stop the scheduler; the next one retries.
                logger.exception("markets_tick failed")
                if once:
                    raise
            if once or stop.wait(interval):
                break
            # A long-running loop must not keep a broken or expired connection between ticks.
            close_old_connections()

    def _after_tick(self) -> None:
        """Tell whoever listens (the metrics refresh the business gauges) that a tick is done."""
        signals.scheduler_ticked.send(sender=self.__class__)
