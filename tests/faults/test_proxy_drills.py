"""Drills through the fault proxy in front of a private PostgreSQL (issue 12): duplicate
deliveries, a lost COMMIT acknowledgement, a frozen database. Each asserts nothing lost or
doubled (acknowledged = rows, ledger audit clean) and no wait beyond its budget.

Run with `-s` to see the drill lines."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from django.conf import settings
from django.db import Error as DatabaseLayerError
from django.db import connection

from betting import services as trading
from betting.models import Trade
from markets import services
from points.audit import ledger_audit
from points.models import Account, GuildSettings
from tests.conftest import ALICE

from .conftest import close_connection
from .proxy import FaultProxy

pytestmark = [pytest.mark.faults, pytest.mark.postgres]

STARTING = 2_000


def open_market(guild_id: int, key: str):
    GuildSettings.objects.create(
        guild_id=guild_id, **{**settings.PM_GUILD_DEFAULTS, "starting_balance": STARTING}
    )
    return services.market_create(
        guild_id=guild_id,
        creator_id=ALICE,
        question=f"Drill {key}?",
        outcomes=["Yes", "No"],
        duration="1d",
        idempotency_key=key,
    )


def balance(guild_id: int, user_id: int) -> int:
    return Account.objects.get(guild_id=guild_id, owner_id=user_id, kind="wallet").balance


# --- Duplicate deliveries -----------------------------------------------------------------------

DELIVERIES = 20


def test_twenty_deliveries_of_one_bet_take_effect_once(through_proxy, drill):
    guild, member, amount = 444_444_444_444_444_501, ALICE + 50, 100
    market = open_market(guild, "dup:market")
    through_proxy.latency = 0.005  # spread the deliveries over the network's interleavings
    barrier = threading.Barrier(DELIVERIES)
    results: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def deliver() -> None:
        try:
            barrier.wait(30)
            trade = drill.timed(
                lambda: trading.bet_place(
                    market_id=market.pk,
                    user_id=member,
                    outcome=1,
                    amount=amount,
                    idempotency_key="dup:bet",
                )
            )
            with lock:
                results.append(trade.pk)
        except BaseException as exc:  # recorded; asserted below
            with lock:
                errors.append(exc)
        finally:
            close_connection()

    threads = [threading.Thread(target=deliver, daemon=True) for _ in range(DELIVERIES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not [t for t in threads if t.is_alive()], "a delivery hung"
    through_proxy.latency = 0

    trades = list(Trade.objects.filter(idempotency_key="dup:bet").values_list("pk", flat=True))
    drill.acknowledged = len(set(results))  # 20 answers, all naming the same trade
    drill.in_database = len(trades)
    drill.doubled = max(0, len(trades) - 1)
    drill.lost = 0 if trades else len(results)
    drill.notes.append(f"{DELIVERIES} deliveries, {len(set(results))} distinct results")
    assert not errors, errors
    assert trades and set(results) == set(trades) and len(trades) == 1
    assert balance(guild, member) == STARTING - amount
    assert ledger_audit().ok
    assert drill.longest_wait < 10


# --- Lost COMMIT acknowledgement ----------------------------------------------------------------


def test_lost_commit_ack_then_retry_with_the_key_returns_the_committed_bet(through_proxy, drill):
    """The server commits, the client never hears so. The service re-checks its key and answers
    with the committed bet; a caller retrying with the same key gets it again, once; the wallet
    is charged once."""
    guild, member, amount = 444_444_444_444_444_502, ALICE + 51, 100
    market = open_market(guild, "ack:market")
    bet = dict(market_id=market.pk, user_id=member, outcome=1, amount=amount,
               idempotency_key="ack:bet")  # fmt: skip
    through_proxy.drop_next_commit_ack()
    first = drill.timed(lambda: trading.bet_place(**bet))
    assert through_proxy.commit_acks_dropped == 1
    close_connection()

    assert Trade.objects.filter(idempotency_key="ack:bet").count() == 1  # it did commit
    retried = drill.timed(lambda: trading.bet_place(**bet))
    drill.acknowledged = 1
    drill.in_database = Trade.objects.filter(idempotency_key="ack:bet").count()
    drill.doubled = drill.in_database - 1
    drill.notes.append("first answer: the committed bet (re-checked by its key)")
    assert Trade.objects.get(idempotency_key="ack:bet").pk == retried.pk == first.pk
    assert balance(guild, member) == STARTING - amount
    assert ledger_audit().ok
    assert drill.longest_wait < 10


def test_lost_commit_ack_is_resolved_by_the_service_itself(through_proxy):
    """Know before you say: the service re-checks its key after the lost acknowledgement and
    returns the committed bet itself."""
    guild, member = 444_444_444_444_444_503, ALICE + 52
    market = open_market(guild, "ack2:market")
    through_proxy.drop_next_commit_ack()
    trade = trading.bet_place(
        market_id=market.pk, user_id=member, outcome=1, amount=100, idempotency_key="ack2:bet"
    )
    assert through_proxy.commit_acks_dropped == 1
    assert Trade.objects.get(idempotency_key="ack2:bet").pk == trade.pk
    assert balance(guild, member) == STARTING - 100  # charged once
    assert ledger_audit().ok


# --- Frozen database ----------------------------------------------------------------------------

NEW_CONNECTION_BUDGET = 8.0  # connect_timeout is 5 s
IN_FLIGHT_BUDGET = 5.0


def run_with_budget(
    work, budget: float, proxy: FaultProxy, *, connect_first: bool
) -> tuple[float, BaseException | None, bool]:
    """On a thread — connecting first when `connect_first`, so the fault hits a query in flight
    rather than a connection being opened — freeze the proxy, run `work`, and after `budget`
    seconds thaw it so the thread can finish. Returns (seconds `work` took, what it raised,
    whether it was still waiting at the budget)."""
    outcome: dict[str, object] = {}
    connected, go = threading.Event(), threading.Event()

    def target() -> None:
        started = time.monotonic()
        try:
            if connect_first:
                connection.ensure_connection()
            connected.set()
            go.wait(30)
            started = time.monotonic()
            work()
        except BaseException as exc:  # reported to the caller
            outcome["error"] = exc
        finally:
            outcome["seconds"] = time.monotonic() - started
            close_connection()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    assert connected.wait(30), "could not connect before the fault"
    proxy.freeze()
    go.set()
    thread.join(budget)
    still_waiting = thread.is_alive()
    proxy.thaw()
    thread.join(60)
    return outcome["seconds"], outcome.get("error"), still_waiting


def test_frozen_database_new_connection_fails_within_connect_timeout(through_proxy, drill):
    seconds, error, still_waiting = run_with_budget(
        connection.ensure_connection, NEW_CONNECTION_BUDGET, through_proxy, connect_first=False
    )
    drill.longest_wait = seconds
    drill.notes.append(f"new connection while frozen: {type(error).__name__}")
    assert not still_waiting
    assert isinstance(error, DatabaseLayerError)
    assert seconds <= NEW_CONNECTION_BUDGET


def test_frozen_database_query_in_flight_fails_within_budget(through_proxy, drill):
    """A database that stops answering while its TCP still acknowledges (a stalled proxy, a
    SIGSTOPped server) is caught by no keepalive: the bot's bounded call path (`bot.db` with a
    budget) gives the caller `StillWorking` within the budget, the pool's health check reports
    the stalled call, and once the database answers again the result still arrives."""
    from discordbot.bot import BotConfig, StillWorking, build_bot

    bot = build_bot(BotConfig.from_settings(db_workers=1, answer_budget=IN_FLIGHT_BUDGET / 2))

    connected, go = threading.Event(), threading.Event()

    def query() -> int:
        connection.ensure_connection()
        connected.set()
        go.wait(30)  # the proxy is frozen now: the query below is in flight when it stalls
        with connection.cursor() as cursor:
            cursor.execute("SELECT 41 + 1")
            return cursor.fetchone()[0]

    async def scenario() -> None:
        started = time.monotonic()
        try:
            with pytest.raises(StillWorking) as waiting:
                asked = asyncio.ensure_future(bot.db(query, budget=IN_FLIGHT_BUDGET))
                assert await asyncio.to_thread(connected.wait, 30)
                through_proxy.freeze()
                started = time.monotonic()
                go.set()
                await asked
            drill.longest_wait = time.monotonic() - started
            await asyncio.sleep(IN_FLIGHT_BUDGET / 2 + 0.2)
            status, details = bot.db_watch.check()
            drill.notes.append(f"pool health while frozen: {status} {details}")
            assert status == "unhealthy" and details["stalled"] == 1
        finally:
            through_proxy.thaw()
        assert await asyncio.wait_for(waiting.value.pending, 30) == 42  # the result arrives
        assert bot.db_watch.check()[0] == "healthy"
        await bot.db(close_connection)

    try:
        asyncio.run(scenario())
    finally:
        bot._db_pool.shutdown(wait=True)
    drill.notes.append(f"caller answered after {drill.longest_wait:.2f}s; the query finished later")
    assert drill.longest_wait <= IN_FLIGHT_BUDGET + 0.5
