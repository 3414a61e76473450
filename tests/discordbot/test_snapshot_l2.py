"""The markets' snapshots shared through Redis by the bot's processes (issue 21's L2): a batch
in one process is seen by another without a database read, a market's event deletes it for
every process, and a hung Redis costs a bounded wait, not an answer."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django_redis.cache import RedisCache

from discordbot import snapshot_l2
from discordbot.snapshot_l2 import SharedSnapshots
from discordbot.snapshots import Snapshots
from markets.selectors import MarketSummary
from points.models import GuildSettings
from tests.faults.proxy import FaultProxy

from .test_rush import summary_of

pytestmark = pytest.mark.redis


def redis_cache(location: str) -> RedisCache:
    """A cache on real Redis under a key prefix of this test's own."""
    return RedisCache(
        location,
        {
            "KEY_PREFIX": f"pmtest-{uuid.uuid4().hex[:8]}",
            # Longer than the test: a hung Redis is only escaped by the snapshot's own timeout.
            "OPTIONS": {"SOCKET_TIMEOUT": 120, "SOCKET_CONNECT_TIMEOUT": 5},
        },
    )


async def in_thread(func, /, **kwargs):
    """How the bot calls a network cache: off the event loop (`PredictionBot.cache_call`)."""
    return await asyncio.get_running_loop().run_in_executor(None, lambda: func(**kwargs))


class Database:
    """The market reads a process makes, counted (the database's answer is the summary given)."""

    def __init__(self, summary: MarketSummary) -> None:
        self.summary, self.reads = summary, 0

    async def market(self, market_id: int) -> MarketSummary:
        self.reads += 1
        return self.summary

    async def settings(self, guild_id: int) -> GuildSettings:
        return GuildSettings(guild_id=guild_id)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_batch_in_one_process_is_seen_by_another_and_an_event_drops_it_for_both():
    cache = redis_cache(settings.REDIS_URL)
    clock = Clock()
    db_a, db_b = Database(summary_of(7, pools=(100, 100))), Database(summary_of(7, pools=(1, 1)))
    # Not a test of the hung-Redis timeout (the next test is): a loaded CI machine can take
    # longer than 0.25 s for a healthy Redis read, which would send B to its database.
    a = Snapshots(
        db_a.market,
        db_a.settings,
        shared=SharedSnapshots(cache, in_thread, timeout=30),
        clock=clock,
    )
    b = Snapshots(
        db_b.market,
        db_b.settings,
        shared=SharedSnapshots(cache, in_thread, timeout=30),
        clock=clock,
    )
    assert (await b.market(7)).summary.outcomes[0].pool == 1 and db_b.reads == 1
    assert a.l2 is not None and b.l2 is not None
    # B's read is shared through Redis in the background; let it land before A's batch, or the
    # two writes race and the older may stand (as snapshot_l2 says: until the next trade).
    await b.l2.settled()
    a.put(summary_of(7, pools=(80, 125)))  # process A's batch
    await a.l2.settled()
    assert (await b.market(7)).summary.outcomes[0].pool == 1  # B trusts its memory a while
    clock.now += snapshot_l2.SHARED_MARKET_SECONDS
    seen = await b.market(7)
    assert seen.summary.outcomes[0].pool == 80 and db_b.reads == 1 and b.l2.hits == 1
    a.drop(7)  # the market's event, seen by the notifier's process
    await a.l2.settled()
    clock.now += snapshot_l2.SHARED_MARKET_SECONDS
    db_b.summary = summary_of(7, pools=(60, 170))
    assert (await b.market(7)).summary.outcomes[0].pool == 60 and db_b.reads == 2
    await b.l2.settled()
    # B's read is shared in turn: A, past its own time, finds it in Redis.
    clock.now += snapshot_l2.SHARED_MARKET_SECONDS
    assert (await a.market(7)).summary.outcomes[0].pool == 60 and db_a.reads == 0


async def test_a_hung_redis_costs_a_bounded_wait_and_the_database_answers():
    where = urlsplit(settings.REDIS_URL)
    with FaultProxy(where.hostname or "127.0.0.1", where.port or 6379, postgres=False) as proxy:
        cache = redis_cache(f"redis://127.0.0.1:{proxy.port}{where.path or '/0'}")
        db = Database(summary_of(7, pools=(100, 100)))
        shared = SharedSnapshots(cache, in_thread)
        snapshots = Snapshots(db.market, db.settings, shared=shared)
        snapshots.put(summary_of(7, pools=(90, 111)))
        await shared.settled()
        snapshots.drop(7)  # read it again: from Redis, which now hangs
        await shared.settled()
        proxy.freeze()  # accepts, never answers
        try:
            # Without the snapshot's own timeout this waits for the socket's 120 s.
            seen = await asyncio.wait_for(snapshots.market(7), 60)
        finally:
            proxy.drop_connections()  # frees the cache thread still waiting
            proxy.thaw()
    assert seen.summary.outcomes[0].pool == 100 and db.reads == 1  # the database answered
