"""The markets' snapshots shared by the bot's processes through Redis (issue 21's L2; the
in-process `discordbot.snapshots` is L1).

Each process keeps its own L1; with several processes (shards) only one runs the notifier that
drops a market's snapshot on its events, and each process's batches see only their own trades.
So, when the cache is Redis:

- a batch's result is written to Redis as well as to the process's memory (`put`), and a
  market's event deletes it there (`drop`), whichever process saw them;
- a process keeps a market in memory only `SHARED_MARKET_SECONDS`, then asks Redis (one GET per
  market and process, shared by every member asking at that moment) before the database: the
  other processes' trades and events show within that time at the cost of one Redis round trip,
  not a database read.

Redis is a shortcut, never a dependency: a read that fails or takes longer than
`TIMEOUT_SECONDS` (Redis hung, restarting) goes to the database, and a write that fails is
dropped (the entry expires after `TTL_SECONDS`). Two processes' writes may land out of order:
the older one then stands until the next trade, event or expiry — the snapshot only prices what
members see; the batch decides under the market's row lock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from markets.selectors import MarketSummary

logger = logging.getLogger(__name__)

SHARED_MARKET_SECONDS = 2.0
"""How long a process trusts its own memory of a market when the processes share Redis."""
TTL_SECONDS = 30
"""How long Redis keeps a market's snapshot with no trade or event."""
TIMEOUT_SECONDS = 0.25
"""A Redis read slower than this goes to the database instead."""

Run = Callable[..., Awaitable[Any]]
"""`run(func, **kwargs)`: a cache call off the event loop (`PredictionBot.cache_call`)."""


class SharedSnapshots:
    """Markets' summaries in the cache `cache` (a Django cache backend), under `prefix`."""

    def __init__(
        self,
        cache: Any,
        run: Run,
        *,
        prefix: str = "pm:snapshot",
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self._cache = cache
        self._timeout = timeout
        self._run = run
        self._prefix = prefix
        self._tasks: set[asyncio.Task] = set()
        self.hits = 0
        """Markets read from Redis instead of the database (for tests and the benchmark)."""

    def key(self, market_id: int) -> str:
        return f"{self._prefix}:market:{market_id}"

    async def get(self, market_id: int) -> MarketSummary | None:
        """The market as some process last wrote it, or None (absent, or Redis failing)."""
        try:
            found = await asyncio.wait_for(
                self._run(self._cache.get, key=self.key(market_id)), self._timeout
            )
        except Exception:  # Redis hung or down: the database answers instead
            logger.info("shared snapshot of market %s not read", market_id, exc_info=True)
            return None
        if isinstance(found, MarketSummary) and found.id == market_id:
            self.hits += 1
            return found
        return None

    def put(self, summary: MarketSummary) -> None:
        """Write the market's summary in the background (a failure only loses the shortcut)."""
        self._background(
            self._cache.set, key=self.key(summary.id), value=summary, timeout=TTL_SECONDS
        )

    def drop(self, market_id: int) -> None:
        self._background(self._cache.delete, key=self.key(market_id))

    async def settled(self) -> None:
        """Wait for the writes started so far (tests)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks))

    def _background(self, func: Callable[..., Any], **kwargs: Any) -> None:
        async def write() -> None:
            try:
                await asyncio.wait_for(self._run(func, **kwargs), TTL_SECONDS)
            except Exception:
                logger.info("shared snapshot not written (%s)", kwargs.get("key"), exc_info=True)

        task = asyncio.get_running_loop().create_task(write())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
