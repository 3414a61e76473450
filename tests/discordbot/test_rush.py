"""The one-market rush (issue 21): the bot's own shortcuts that keep per-interaction work off the
database and out of thread hops."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import threading

import pytest
from django.db.backends.signals import connection_created

from betting.models import Position, Trade
from discordbot.bot import FAST_DB_WORKERS, BotConfig, build_bot
from discordbot.snapshots import Snapshots
from markets.selectors import MarketSummary, OutcomeSummary
from points.models import GuildSettings
from points.models import Member as DirectoryMember

from .conftest import db, make_market
from .harness import Harness, Member, buttons

# The round trips counted are PostgreSQL's (the query-count guard of issue 21).
pytestmark = pytest.mark.postgres

LOCMEM = {"default": {"BACKEND": "django_prometheus.cache.backends.locmem.LocMemCache"}}
REDIS = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",  # never contacted: the class alone decides
    }
}


def offline_bot():
    return build_bot(
        BotConfig.from_settings(
            background_tasks=False, sync_on_start=False, dm_interval=0.0, dev_guild_id=None
        )
    )


async def test_the_in_process_cache_is_called_inline_on_the_event_loop(settings):
    settings.CACHES = LOCMEM
    bot = offline_bot()
    try:
        assert bot.cache_is_local
        loop_thread = threading.get_ident()
        assert await bot.cache_call(threading.get_ident) == loop_thread
    finally:
        await bot.close()


async def test_a_network_cache_is_called_in_the_cache_threads(settings):
    settings.CACHES = REDIS
    bot = offline_bot()
    try:
        assert not bot.cache_is_local
        loop_thread = threading.get_ident()
        assert await bot.cache_call(threading.get_ident) != loop_thread
    finally:
        await bot.close()


class QueryCounter:
    """Every statement the bot's database threads send, and every connection they open, while
    installed (Django's execute wrapper, put on each connection as it connects). The bot's
    threads keep their connections: `install(bot)` closes them first, so that every statement
    of the rush goes through a connection opened, and wrapped, after it."""

    def __init__(self) -> None:
        self.queries = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._wrapped: list = []

    async def install(self, bot) -> None:
        connection_created.connect(self._connected, weak=False)
        await asyncio.get_running_loop().run_in_executor(None, bot.connections_close)

    def uninstall(self) -> None:
        connection_created.disconnect(self._connected)
        for conn in self._wrapped:
            if self._wrap in conn.execute_wrappers:
                conn.execute_wrappers.remove(self._wrap)

    def _connected(self, sender, connection, **kwargs) -> None:
        with self._lock:
            self.connections += 1
        if self._wrap not in connection.execute_wrappers:
            connection.execute_wrappers.append(self._wrap)
            self._wrapped.append(connection)

    def _wrap(self, execute, sql, params, many, context):
        with self._lock:
            self.queries += 1
        return execute(sql, params, many, context)


RUSH = 200
MAX_QUERIES_PER_INTERACTION = 1.0
"""Issue 21's target: a rush costs a constant per batch, not a read per member."""


def new_members(n: int, base: int = 900_000_000_000_010_000) -> list[Member]:
    return [Member(id=base + i, name=f"m{i}") for i in range(n)]


async def rush_settings(h: Harness) -> None:
    """A rush moves the price well past each member's view, and a big server's moderators raise
    its command limit: the slippage limit is opened wide and the limit raised, since these tests
    count queries, not refusals."""

    def update() -> None:
        GuildSettings.objects.get_or_create(guild_id=h.guild_id)
        GuildSettings.objects.filter(guild_id=h.guild_id).update(
            slippage_bps=5000, requests_per_minute=10 * RUSH
        )

    await db(h, update)
    await h.bot.policies.load(h.guild_id)


@pytest.mark.discord_patience(120)  # queries counted, not time: a loaded machine is slow
@pytest.mark.django_db(transaction=True)
async def test_a_rush_of_one_step_bets_costs_at_most_one_query_per_interaction(harness):
    market = await make_market(harness, creator=900_000_000_000_000_001)
    await rush_settings(harness)
    members = new_members(RUSH)
    counter = QueryCounter()
    await counter.install(harness.bot)
    try:
        exchanges = await harness.send_many(
            [
                harness.command(
                    "bet", m, confirm=False, market=str(market.id), outcome="1", amount=10
                )
                for m in members
            ]
        )
    finally:
        counter.uninstall()
    assert all("You bought" in ex.text for ex in exchanges), {
        ex.text for ex in exchanges if "You bought" not in ex.text
    }
    trades = await db(harness, lambda: Trade.objects.filter(market_id=market.id).count())
    assert trades == RUSH
    ids = [m.id for m in members]
    named = await db(
        harness,
        lambda: set(
            DirectoryMember.objects.filter(user_id__in=ids).values_list("username", flat=True)
        ),
    )
    assert named == {m.name for m in members}  # the directory notes, written together
    assert counter.queries > 0  # the counter sees the batches' writes
    per_interaction = counter.queries / RUSH
    assert per_interaction <= MAX_QUERIES_PER_INTERACTION, (
        f"{counter.queries} queries ({counter.connections} connections) for {RUSH} one-step "
        f"bets: {per_interaction:.2f} per interaction; batches {harness.bot.trades.batch_sizes}"
    )


MAX_QUERIES_PER_QUOTE = 0.25
"""A wave of quotes reads the market and settings from the snapshot and the members' balances
(or holdings) together: a few reads per wave, not one per member (issue 21)."""


@pytest.mark.discord_patience(120)  # queries counted, not time: a loaded machine is slow
@pytest.mark.django_db(transaction=True)
async def test_a_rush_of_quotes_and_confirms_costs_at_most_one_query_per_interaction(harness):
    market = await make_market(harness, creator=900_000_000_000_000_001)
    await rush_settings(harness)
    members = new_members(RUSH)
    counter = QueryCounter()
    await counter.install(harness.bot)
    waves: dict[str, int] = {}
    try:
        quotes = await harness.send_many(
            [
                harness.command("bet", m, market=str(market.id), outcome="1", amount=10)
                for m in members
            ]
        )
        waves["buy quotes"] = counter.queries
        assert all("**Quote**" in q.text for q in quotes), {
            q.text for q in quotes if "**Quote**" not in q.text
        }
        confirms = await harness.send_many(
            [
                harness.click(q.reply, m, label="Confirm")
                for q, m in zip(quotes, members, strict=True)
            ]
        )
        waves["confirms"] = counter.queries - waves["buy quotes"]
        sells = await harness.send_many(
            [harness.command("sell", m, market=str(market.id), outcome="1") for m in members]
        )
        waves["sell quotes"] = counter.queries - waves["buy quotes"] - waves["confirms"]
    finally:
        counter.uninstall()
    assert all("You bought" in ex.text for ex in confirms), {
        ex.text for ex in confirms if "You bought" not in ex.text
    }
    assert all("**Quote** · sell" in ex.text for ex in sells), {
        ex.text for ex in sells if "**Quote**" not in ex.text
    }
    trades = await db(harness, lambda: Trade.objects.filter(market_id=market.id).count())
    assert trades == RUSH
    # The bot's database threads keep their connections (at most one per thread).
    threads = max(1, harness.bot.config.db_workers) + FAST_DB_WORKERS
    assert counter.connections <= threads, counter.connections
    assert waves["confirms"] > 0  # the counter sees the batches' writes
    told = f"queries per wave of {RUSH}: {waves}; batches {harness.bot.trades.batch_sizes}"
    assert waves["buy quotes"] <= MAX_QUERIES_PER_QUOTE * RUSH, told
    assert waves["sell quotes"] <= MAX_QUERIES_PER_QUOTE * RUSH, told
    assert counter.queries <= MAX_QUERIES_PER_INTERACTION * 3 * RUSH, told


class GatedReads:
    """Reads of markets and settings that finish when the test opens the gate, counted."""

    def __init__(self) -> None:
        self.markets: list[int] = []
        self.settings: list[int] = []
        self.gate = asyncio.Event()

    async def market(self, market_id: int) -> MarketSummary:
        self.markets.append(market_id)
        await self.gate.wait()
        return summary_of(market_id, pools=(100, 100))

    async def guild(self, guild_id: int) -> GuildSettings:
        self.settings.append(guild_id)
        await self.gate.wait()
        return GuildSettings(guild_id=guild_id, slippage_bps=200)


def summary_of(market_id: int, *, pools: tuple[int, int]) -> MarketSummary:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return MarketSummary(
        id=market_id, guild_id=1, question="?", category="", mechanism="amm", status="open",
        closes_at=now, closed_at=None, created_at=now, creator_id=1, volume=0, trade_count=0,
        trader_count=0, liquidity=100, fee_bps=0, winning_position=None, channel_id=None,
        message_id=None, settle_reason="",
        outcomes=[OutcomeSummary(i, f"o{i}", 0.5, p, 0) for i, p in enumerate(pools)],
    )  # fmt: skip


async def test_concurrent_reads_of_one_market_share_one_database_read():
    reads = GatedReads()
    snapshots = Snapshots(reads.market, reads.guild)
    waiting = [asyncio.create_task(snapshots.market(7)) for _ in range(50)]
    guilds = [asyncio.create_task(snapshots.settings(1)) for _ in range(50)]
    await asyncio.sleep(0)
    reads.gate.set()
    got = await asyncio.gather(*waiting)
    await asyncio.gather(*guilds)
    assert reads.markets == [7] and reads.settings == [1]
    assert {s.version for s in got} == {got[0].version}
    # Cached now: no read at all.
    assert (await snapshots.market(7)).version == got[0].version and reads.markets == [7]


async def test_a_batch_result_refreshes_the_snapshot_and_an_event_drops_it():
    reads = GatedReads()
    reads.gate.set()
    snapshots = Snapshots(reads.market, reads.guild)
    first = await snapshots.market(7)
    after_batch = snapshots.put(summary_of(7, pools=(80, 125)))
    now = await snapshots.market(7)
    assert now.version > first.version and now.summary.outcomes[0].pool == 80
    assert reads.markets == [7]  # the batch's result, not a read
    snapshots.drop(7)  # the market's own event: read it again
    await snapshots.market(7)
    assert reads.markets == [7, 7] and after_batch.version < (await snapshots.market(7)).version


async def test_members_asking_at_once_share_one_read_of_their_balances_and_holdings():
    """A rush of quotes reads balances (and holdings) per wave, not per member: everyone asking
    at once shares one read, everyone arriving while it runs the next one; each gets their own
    figure, a member without a wallet None, without shares 0."""
    reads: list[tuple[str, int, list[int]]] = []
    gate = asyncio.Event()

    async def balances(guild_id: int, user_ids: list[int]) -> dict[int, int]:
        reads.append(("balances", guild_id, user_ids))
        await gate.wait()
        return {u: 1000 + u for u in user_ids if u % 2}

    async def holdings(market_id: int, user_ids: list[int]) -> dict[tuple[int, int], int]:
        reads.append(("holdings", market_id, user_ids))
        await gate.wait()
        return {(u, 1): u * 10 for u in user_ids}

    snapshots = Snapshots(reads_never, settings_never, balances, holdings)
    got = [asyncio.create_task(snapshots.balance(5, u)) for u in range(1, 41)]
    held = [asyncio.create_task(snapshots.held(9, u, u % 2)) for u in range(1, 41)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*got) == [1000 + u if u % 2 else None for u in range(1, 41)]
    assert await asyncio.gather(*held) == [u * 10 if u % 2 else 0 for u in range(1, 41)]
    assert sorted((kind, key, len(users)) for kind, key, users in reads) == [
        ("balances", 5, 40), ("holdings", 9, 40),
    ]  # fmt: skip
    # A member asking while a read runs waits for the next one, read after they asked.
    gate.clear()
    first = asyncio.create_task(snapshots.balance(5, 1))
    await asyncio.sleep(0)
    later = [asyncio.create_task(snapshots.balance(5, u)) for u in (3, 5, 7)]
    await asyncio.sleep(0)
    gate.set()
    assert [await first, *await asyncio.gather(*later)] == [1001, 1003, 1005, 1007]
    assert [len(users) for kind, _, users in reads[2:]] == [1, 3]
    assert snapshots.reads == 4


async def reads_never(market_id: int) -> MarketSummary:
    raise AssertionError("no market read expected")


async def settings_never(guild_id: int) -> GuildSettings:
    raise AssertionError("no settings read expected")


REFUSAL = re.compile(
    r"“Yes” was at ([\d.]+)% and 100 points would buy ([\d,.]+) shares \(average price "
    r"[\d.]+\), short of your slippage limit \(at least ([\d,.]+) shares\)"
)


@pytest.mark.discord_patience(120)  # the refusals' figures, not time: a loaded machine is slow
@pytest.mark.django_db(transaction=True)
async def test_slippage_refusals_in_a_rush_state_a_figure_that_breaks_the_stated_limit(harness):
    market = await make_market(harness, creator=900_000_000_000_000_001)
    members = new_members(60)
    exchanges = await harness.send_many(
        [
            harness.command(
                "bet", m, confirm=False, market=str(market.id), outcome="Yes", amount=100
            )
            for m in members
        ]
    )
    refused = [ex.text for ex in exchanges if "slippage limit" in ex.text]
    bought = [ex.text for ex in exchanges if "You bought" in ex.text]
    assert refused and bought and len(refused) + len(bought) == len(members)
    for text in refused:
        found = REFUSAL.search(text)
        assert found, text
        got, limit = (float(x.replace(",", "")) for x in found.group(2, 3))
        assert got < limit, text  # the figure stated breaks the limit stated
        assert float(found.group(1)) > 50.0, text  # the price at its turn: Yes was bought up
    trades = await db(harness, lambda: Trade.objects.filter(market_id=market.id).count())
    assert trades == len(bought)
    # Issue 23 item 10: no dead end. Every refusal carries a one-click fresh quote of the same
    # amount, and that quote's Confirm trades.
    turned_away = [
        (m, ex) for m, ex in zip(members, exchanges, strict=True) if "slippage limit" in ex.text
    ]
    for _, ex in turned_away:
        assert [b["label"] for b in buttons(ex.reply)] == ["Fresh quote"], ex.reply
    member, ex = turned_away[-1]
    fresh = await harness.send(harness.click(ex.reply, member, label="Fresh quote"))
    assert "**Quote** · buy **Yes**" in fresh.text and "You pay **100 points**" in fresh.text
    done = await harness.send(harness.click(fresh.reply, member, label="Confirm"))
    assert done.text.startswith("✅ You bought"), done.text
    after = await db(harness, lambda: Trade.objects.filter(market_id=market.id).count())
    assert after == trades + 1


@pytest.mark.discord_patience(120)  # the refusals' figures, not time: a loaded machine is slow
@pytest.mark.django_db(transaction=True)
async def test_a_sale_refused_in_a_rush_offers_a_fresh_quote_of_the_same_shares(harness):
    """Issue 23 item 10 for sales: holders selling the same side at once are refused past their
    slippage limit, each with a "Fresh quote" of the shares they asked to sell."""
    market = await make_market(harness, creator=900_000_000_000_000_001)
    holders = new_members(20, base=900_000_000_000_020_000)
    for m in holders:
        await harness.send(
            harness.command(
                "bet", m, confirm=False, market=str(market.id), outcome="Yes", amount=100
            )
        )
    exchanges = await harness.send_many(
        [
            harness.command("sell", m, confirm=False, market=str(market.id), outcome="Yes")
            for m in holders
        ]
    )
    turned_away = [
        (m, ex) for m, ex in zip(holders, exchanges, strict=True) if "slippage limit" in ex.text
    ]
    assert turned_away and len(turned_away) < len(holders), [ex.text for ex in exchanges]
    for _, ex in turned_away:
        assert ex.text.endswith("Press **Fresh quote** to sell the same shares at the price now.")
        assert [b["label"] for b in buttons(ex.reply)] == ["Fresh quote"], ex.reply

    member, ex = turned_away[-1]
    held = await db(
        harness, lambda: Position.objects.get(user_id=member.id, market_id=market.id).shares
    )
    fresh = await harness.send(harness.click(ex.reply, member, label="Fresh quote"))
    assert fresh.text.startswith("**Quote** · sell **Yes**"), fresh.text
    done = await harness.send(harness.click(fresh.reply, member, label="Confirm"))
    assert "You sold" in done.text, done.text
    left = await db(
        harness, lambda: Position.objects.get(user_id=member.id, market_id=market.id).shares
    )
    assert held > 0 and left == 0  # the same shares: all of them
