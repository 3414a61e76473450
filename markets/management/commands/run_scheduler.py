"""Run `markets_tick` every 30 seconds (or once): closes due markets, auto-refunds stale ones.

Several schedulers may run (on several machines): the one holding the market-clock lease
(`core.leases`) ticks, the others are standbys that ask for it every `LEASE_RENEW_SECONDS` and
take over within `LEASE_SECONDS + LEASE_RENEW_SECONDS` of the holder's death. `--once` ticks
regardless (an operator's explicit run; each market still changes once, under its row lock)."""

import logging
import signal
import threading
import time

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from core import signals
from core.leases import (
    MARKET_CLOCK,
    PROCESS_HOLDER,
    lease_claim,
    lease_release,
    lease_renew_seconds,
    lease_seconds,
)
from core.runtime import heap_freeze
from markets.services import markets_tick

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Close markets whose time is up and auto-refund unresolved ones, every 30 s."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="Run one tick and exit.")
        parser.add_argument("--interval", type=float, default=30.0, help="Seconds between ticks.")

    def handle(self, *args: object, once: bool, interval: float, **options: object) -> None:
        if once:
            self._tick(once=True)
            return
        heap_freeze()
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        renew, seconds = lease_renew_seconds(), lease_seconds()
        valid_until = 0.0
        last_tick = float("-inf")
        try:
            while True:
                asked = time.monotonic()
                try:
                    if lease_claim(MARKET_CLOCK, seconds=seconds):
                        if valid_until <= asked:
                            logger.info("market clock lease taken by %s", PROCESS_HOLDER)
                        valid_until = asked + seconds
                    else:
                        valid_until = 0.0
                except Exception:  # keep what we had until it runs out
                    logger.warning("could not renew the market clock lease", exc_info=True)
                if time.monotonic() < valid_until and time.monotonic() - last_tick >= interval:
                    last_tick = time.monotonic()
                    self._tick(once=False)
                if stop.wait(min(interval, renew)):
                    break
                # A long-running loop must not keep a broken or expired connection between ticks.
                close_old_connections()
        finally:
            if valid_until:
                try:
                    lease_release(MARKET_CLOCK)
                except Exception:  # it expires by itself
                    logger.warning("market clock lease not released", exc_info=True)

    def _tick(self, *, once: bool) -> None:
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

    def _after_tick(self) -> None:
        """Tell whoever listens (the metrics refresh the business gauges) that a tick is done."""
        signals.scheduler_ticked.send(sender=self.__class__)
