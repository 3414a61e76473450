"""The 30-second market clock: `markets_tick` closes markets whose time is up and refunds those
left unresolved (DOMAIN §6). Safe with several shards or processes: each market is closed or
refunded under its row lock, exactly once, whoever ticks."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from discord.ext import commands, tasks

from markets.services import TickReport, markets_tick
from ops import metrics

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
        self.tick.change_interval(seconds=bot.config.tick_seconds)

    async def cog_load(self) -> None:
        if self.bot.config.background_tasks:
            self.tick.start()

    async def cog_unload(self) -> None:
        self.tick.cancel()

    @tasks.loop(seconds=30)
    async def tick(self) -> None:
        try:
            report = await self.bot.db(tick_and_refresh)
        except Exception:  # one bad tick must not stop the clock; the next one retries
            logger.exception("markets_tick failed")
            return
        if report.closed or report.refunded:
            logger.info("tick: %s", report)


async def setup(bot: PredictionBot) -> None:
    await bot.add_cog(Scheduler(bot))
