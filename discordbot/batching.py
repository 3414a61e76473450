"""Group commit for trades (issue 16): a per-market queue in front of `trades_apply`.

While one batch of a market is committing, the trades that arrive for that market wait; when it
is done, the next batch takes all of them (at most `cap`). There is no timer: a lone trade starts
its batch at once, so a quiet market answers as fast as a one-request call, and a rush of a whole
server is written in a few transactions instead of one per member. Each bot process batches its own
requests; the market row lock orders the batches of several processes. The batch's results are
exactly what the requests would have got one by one (`trades_apply`'s contract), so every member
still gets their own trade or their own refusal."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

logger = logging.getLogger(__name__)

Apply = Callable[[int, Sequence[Any]], Awaitable[Sequence[Any]]]


class MarketBatcher:
    """Queues requests per market and runs one `apply(market_id, requests)` at a time per
    market, each taking every request that waited (up to `cap`)."""

    def __init__(self, apply: Apply, *, cap: int = 256) -> None:
        self._apply = apply
        self._cap = cap
        self._waiting: dict[int, list[tuple[Any, asyncio.Future]]] = {}
        self._tasks: set[asyncio.Task] = set()
        self.batch_sizes: list[int] = []
        """Sizes of the batches run so far (for tests and the benchmark; bounded)."""

    async def submit(self, market_id: int, request: Any) -> Any:
        """Queue `request` for `market_id` and return its result (a trade or a `DomainError`)
        once its batch has committed; an unexpected error of the batch is raised to every
        request in it."""
        future = asyncio.get_running_loop().create_future()
        queue = self._waiting.get(market_id)
        if queue is None:
            self._waiting[market_id] = [(request, future)]
            task = asyncio.get_running_loop().create_task(self._drain(market_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            queue.append((request, future))
        return await future

    async def _drain(self, market_id: int) -> None:
        """Run batches for `market_id` until nobody waits. The queue entry exists exactly while
        this task runs, so a request that finds it is sure to be taken by a later batch."""
        try:
            while queue := self._waiting[market_id]:
                batch, self._waiting[market_id] = queue[: self._cap], queue[self._cap :]
                if len(self.batch_sizes) < 10_000:
                    self.batch_sizes.append(len(batch))
                try:
                    results = await self._apply(market_id, [request for request, _ in batch])
                except Exception as exc:  # every member of the batch hears of it
                    logger.exception("trade batch of market %s failed", market_id)
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            pending = self._waiting.pop(market_id, [])
            for _, future in pending:  # only when cancelled at shutdown
                if not future.done():
                    future.cancel()
