"""The 30-second market clock: `markets_tick` closes markets whose time is up and refunds those
left unresolved (DOMAIN §6). One process ticks: the holder of the market clock's lease
(`discordbot.leases`; a bot, `serve` or `run_scheduler`). Were two to tick, each market is still
closed or refunded under its row lock, exactly once."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from discord.ext import commands, tasks

from core.leases import lease_renew_seconds
from markets.services import TickReport, markets_tick
from ops import metrics

from ..leases import MARKET_CLOCK, bot_lease

if TYPE_CHECKING:
    from ..bot import PredictionBot

logger = logging.getLogger(__name__)


def tick_and_refresh() -> TickReport:
    """One tick, then the business gauges (without the ledger audit, which the scheduler
    process runs)."""
    report = markets_tick()
    refresh = getattr(metrics, "metrics_refresh", None)
    if refresh is not None:
        try:
            refresh(audit=False)
        except Exception:
            logger.exception("metrics refresh failed")
    return report


class Scheduler(commands.Cog):
    def __init__(self, bot: PredictionBot) -> None:
        self.bot = bot
        # Wake as often as the lease is renewed, so a standby that takes the lease over ticks
        # at once; tick every `tick_seconds` while holding it.
        self.tick.change_interval(seconds=min(bot.config.tick_seconds, lease_renew_seconds()))
        self._last = float("-inf")

    async def cog_load(self) -> None:
        if self.bot.config.background_tasks:
            bot_lease(self.bot, MARKET_CLOCK)
            self.tick.start()

    async def cog_unload(self) -> None:
        self.tick.cancel()

    @tasks.loop(seconds=30)
    async def tick(self) -> None:
        if self.bot.config.background_tasks:  # else an explicit call (tests) ticks at once
            if not bot_lease(self.bot, MARKET_CLOCK).held:
                return
            if time.monotonic() - self._last < self.bot.config.tick_seconds:
                return
            self._last = time.monotonic()
        try:
            report = await self.bot.db(tick_and_refresh)
        except Exception:  # one bad tick must not stop the clock; the next one retries
            logger.exception("markets_tick failed")
            return
        if report.closed or report.refunded:
            logger.info("tick: %s", report)


async def setup(bot: PredictionBot) -> None:
    await bot.add_cog(Scheduler(bot))
