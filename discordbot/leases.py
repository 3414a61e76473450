"""The bot's singleton jobs, each run by the one process holding its lease (`core.leases`):
the notifier (with the DRIP reversal DMs) and the market clock. Any bot process may hold them,
whatever its shards; when it dies another takes over within `LEASE_SECONDS +
LEASE_RENEW_SECONDS`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.leases import MARKET_CLOCK, NOTIFIER, LeaseKeeper, lease_renew_seconds

if TYPE_CHECKING:
    from .bot import PredictionBot

__all__ = ["MARKET_CLOCK", "bot_lease", "notifier_lease"]


def bot_lease(bot: PredictionBot, name: str) -> LeaseKeeper:
    """This process's keeper of lease `name`, claiming in the background from the first call
    until the bot closes (which cancels it: the lease is given up)."""
    keeper = bot.leases.get(name)
    if keeper is None:
        budget = lease_renew_seconds()

        async def call(func: Any, /, **kwargs: Any) -> Any:
            # Bounded: a database that stops answering must not keep the keeper waiting past
            # the lease's own time (it then stops trusting the lease).
            return await bot.db_once(func, budget=budget, **kwargs)

        keeper = bot.leases[name] = LeaseKeeper(name, call=call)
        bot.spawn(keeper.run())
    return keeper


def notifier_lease(bot: PredictionBot) -> LeaseKeeper:
    return bot_lease(bot, f"{NOTIFIER}:{bot.config.notifier_name}")
