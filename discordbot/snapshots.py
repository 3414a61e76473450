"""The bot's in-process view of the markets members trade on (issue 21): per market, its last
known summary (outcomes, pools, stakes, status) with a version, and per guild its settings.

A rush of a thousand members on one market then needs one read of that market, not a thousand:
the one-step `/bet` prices what the member sees from here and queues the trade with that price's
slippage limit; the batch, under the market's row lock, decides everything for real (status,
balance, max bet, the limit against the price the request meets at its turn). A stale snapshot
can therefore only make a slippage limit looser or stricter than the member's latest view, never
let a trade through that the rules refuse.

Refreshed by each batch's result (the state after the batch, `put`) and dropped by the market's
own events (`drop`, from the notifier); guild settings live `SETTINGS_SECONDS` and are dropped
by a moderator's change (`drop_settings`, before the change is answered), so every later command
prices with the new settings. Concurrent reads of a market or a guild that is not cached share
one database call (single flight); a settings read begun before a drop is neither kept nor
shared with readers after it (it may have seen the row before the change)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from betting.quotes import guild_settings_or_defaults
from betting.selectors import holdings_get
from markets.selectors import MarketSummary, market_get
from points.models import GuildSettings
from points.selectors import balances_get

from .batching import MarketBatcher
from .snapshot_l2 import SHARED_MARKET_SECONDS, SharedSnapshots

ReadBalances = Callable[[int, list[int]], Awaitable[dict[int, int]]]
"""(guild id, user ids) -> balance by user id, members without a wallet absent."""
ReadHoldings = Callable[[int, list[int]], Awaitable[dict[tuple[int, int], int]]]
"""(market id, user ids) -> micro-shares by (user id, outcome position), none absent."""

K = TypeVar("K")
V = TypeVar("V")

SETTINGS_SECONDS = 30.0
"""How long a guild's settings are kept: a change made elsewhere than this process's `/settings`
(the admin, another shard) shows within it; the batch enforces the limits that matter from the
row itself."""
MARKET_SECONDS = 30.0
"""A market nobody trades on is read again after this long even without an event."""
LISTING_SECONDS = 5.0
"""How long a guild's market list (autocomplete's suggestions) is kept: the market events this
process plans drop it at once; another process's new market shows within this."""
MAX_ENTRIES = 10_000
READ_CAP = 1000
"""Members whose balances (or holdings) one read fetches at most."""


@dataclass(frozen=True)
class Snapshot:
    summary: MarketSummary
    version: int
    """Increases with every refresh of this process's view of the market."""
    taken_at: float


class SingleFlight:
    """At most one `load(key)` running per key; concurrent callers await the same one."""

    def __init__(self) -> None:
        self._running: dict[Any, asyncio.Future] = {}

    async def run(self, key: Any, load: Callable[[], Awaitable[V]]) -> V:
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(load())
            self._running[key] = running
            running.add_done_callback(lambda _: self._running.pop(key, None))
        # shield: a caller that is cancelled does not cancel the others' read.
        return await asyncio.shield(running)


class Snapshots:
    """Markets and guild settings in this process's memory. `read_market(market_id)` and
    `read_settings(guild_id)` are the database reads (run in the bot's fast threads)."""

    def __init__(
        self,
        read_market: Callable[[int], Awaitable[MarketSummary]],
        read_settings: Callable[[int], Awaitable[GuildSettings]],
        read_balances: ReadBalances | None = None,
        read_holdings: ReadHoldings | None = None,
        *,
        shared: SharedSnapshots | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read_market = read_market
        self._read_settings = read_settings
        self._clock = clock
        self.l2 = shared
        """Redis, when the bot's processes share it (`discordbot.snapshot_l2`)."""
        self._market_seconds = MARKET_SECONDS if shared is None else SHARED_MARKET_SECONDS
        self._markets: dict[int, Snapshot] = {}
        self._settings: dict[int, tuple[GuildSettings, float]] = {}
        self._settings_generation = 0
        """Bumped by every `drop_settings`: reads begun before are not kept."""
        self._listings: dict[tuple[int, tuple[str, ...]], tuple[Any, float]] = {}
        self._listing_generation = 0
        """Bumped by every `drop_listings`: lists read before are not kept."""
        self._flights = SingleFlight()
        self._versions = itertools.count(1)
        self._read_balances = read_balances
        self._read_holdings = read_holdings
        self._balances = MarketBatcher(self._balances_serve, cap=READ_CAP)
        self._holdings = MarketBatcher(self._holdings_serve, cap=READ_CAP)
        self.reads = 0
        """Database reads made (markets and settings; for tests and the benchmark)."""

    async def market(self, market_id: int) -> Snapshot:
        snap = self._markets.get(market_id)
        if snap is not None and self._clock() - snap.taken_at < self._market_seconds:
            return snap

        async def load() -> Snapshot:
            if self.l2 is not None:  # another process's batch or read, if Redis has it
                found = await self.l2.get(market_id)
                if found is not None:
                    return self._keep(found)
            self.reads += 1
            return self.put(await self._read_market(market_id))

        return await self._flights.run(("market", market_id), load)

    async def settings(self, guild_id: int) -> GuildSettings:
        kept = self._settings.get(guild_id)
        if kept is not None and self._clock() - kept[1] < SETTINGS_SECONDS:
            return kept[0]

        generation = self._settings_generation

        async def load() -> GuildSettings:
            self.reads += 1
            row = await self._read_settings(guild_id)
            if generation == self._settings_generation:
                if len(self._settings) > MAX_ENTRIES:
                    self._settings.clear()
                self._settings[guild_id] = (row, self._clock())
            return row

        return await self._flights.run(("settings", guild_id, generation), load)

    async def shared(self, key: Any, load: Callable[[], Awaitable[V]]) -> V:
        """`load()` once for every caller asking for `key` at the same time (nothing kept
        after: e.g. the same market list typed by many members during a rush)."""
        return await self._flights.run(("shared", key), load)

    async def listing(
        self, guild_id: int, statuses: tuple[str, ...], load: Callable[[], Awaitable[V]]
    ) -> V:
        """The guild's markets in `statuses` as `load()` lists them, kept `LISTING_SECONDS`:
        a rush of members typing in `/bet`'s market option reads the list once."""
        key = (guild_id, statuses)
        kept = self._listings.get(key)
        if kept is not None and self._clock() - kept[1] < LISTING_SECONDS:
            return kept[0]
        generation = self._listing_generation

        async def run() -> V:
            value = await load()
            if generation == self._listing_generation:
                if len(self._listings) > MAX_ENTRIES:
                    self._listings.clear()
                self._listings[key] = (value, self._clock())
            return value

        return await self._flights.run(("listing", key, generation), run)

    def drop_listings(self, guild_id: int) -> None:
        """A market of the guild was created or changed status: list them again next time."""
        self._listing_generation += 1
        for key in [k for k in self._listings if k[0] == guild_id]:
            del self._listings[key]

    async def balance(self, guild_id: int, user_id: int) -> int | None:
        """The member's balance read now (None: no wallet yet), in one read with every member
        of the guild asking at the same time.

        Members' balances and holdings are never kept: the members asking at the same time
        share one read (`discordbot.batching`: while one read runs, the next takes everyone who
        arrived meanwhile), so each quote is priced on figures read after it was asked — as
        fresh as a read of its own, and the batch re-checks them under the lock."""
        return await self._balances.submit(guild_id, user_id)

    async def held(self, market_id: int, user_id: int, position: int) -> int:
        """The micro-shares the member holds of an outcome, read now (0: none), in one read
        with every member asking about the market at the same time."""
        return await self._holdings.submit(market_id, (user_id, position))

    async def _balances_serve(self, guild_id: int, user_ids: Sequence[int]) -> list[int | None]:
        assert self._read_balances is not None, "Snapshots built without read_balances"
        self.reads += 1
        found = await self._read_balances(guild_id, list(user_ids))
        return [found.get(user_id) for user_id in user_ids]

    async def _holdings_serve(self, market_id: int, asks: Sequence[tuple[int, int]]) -> list[int]:
        assert self._read_holdings is not None, "Snapshots built without read_holdings"
        self.reads += 1
        found = await self._read_holdings(market_id, sorted({user for user, _ in asks}))
        return [found.get(ask, 0) for ask in asks]

    def put(self, summary: MarketSummary) -> Snapshot:
        """The market as a batch (or a read) just saw it (and Redis, for the other processes)."""
        if self.l2 is not None:
            self.l2.put(summary)
        return self._keep(summary)

    def _keep(self, summary: MarketSummary) -> Snapshot:
        if len(self._markets) > MAX_ENTRIES:
            self._markets.clear()
        snap = Snapshot(summary, next(self._versions), self._clock())
        self._markets[summary.id] = snap
        return snap

    def drop(self, market_id: int) -> None:
        """The market changed in a way only a read shows (an event): read it again next time."""
        self._markets.pop(market_id, None)
        if self.l2 is not None:
            self.l2.drop(market_id)

    def drop_settings(self, guild_id: int) -> None:
        """The guild's settings changed (committed): read them again next time."""
        self._settings_generation += 1
        self._settings.pop(guild_id, None)


def database_snapshots(
    run: Callable[..., Awaitable[Any]], shared: SharedSnapshots | None = None
) -> Snapshots:
    """The bot's snapshots, reading through `run(func, **kwargs)` (the bot's fast database
    threads, `PredictionBot.db_fast`), shared with the other processes through `shared`."""

    async def market(market_id: int) -> MarketSummary:
        return await run(market_get, market_id=market_id)

    async def settings(guild_id: int) -> GuildSettings:
        return await run(guild_settings_or_defaults, guild_id=guild_id)

    async def balances(guild_id: int, user_ids: list[int]) -> dict[int, int]:
        return await run(balances_get, guild_id=guild_id, user_ids=user_ids)

    async def holdings(market_id: int, user_ids: list[int]) -> dict[tuple[int, int], int]:
        return await run(holdings_get, market_id=market_id, user_ids=user_ids)

    return Snapshots(market, settings, balances, holdings, shared=shared)
