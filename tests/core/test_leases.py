"""Leases of the singleton jobs (`core.leases`, issue 24 item 1): one holder at a time, renewals
keep it, an expired or released lease moves to the next claimer, and a holder cut off from the
database stops trusting its lease by itself."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading

import pytest
from django.db import connections
from django.utils import timezone

from core.leases import LeaseKeeper, lease_claim, lease_get, lease_release
from core.models import Lease

pytestmark = pytest.mark.django_db


def _expire(name: str) -> None:
    Lease.objects.filter(name=name).update(expires_at=timezone.now() - dt.timedelta(seconds=1))


def test_the_first_claim_takes_the_lease_and_renewals_keep_it():
    assert lease_claim("job", "a", seconds=30) == 1
    first = lease_get("job")
    assert lease_claim("job", "a", seconds=30) == 1  # a renewal: same epoch
    assert lease_claim("job", "b", seconds=30) == 0
    after = lease_get("job")
    assert first is not None and after is not None
    assert after.holder == "a" and after.expires_at >= first.expires_at
    assert after.expires_at > timezone.now() + dt.timedelta(seconds=20)


def test_an_expired_lease_moves_to_the_next_claimer_with_a_new_epoch():
    assert lease_claim("job", "a", seconds=30) == 1
    _expire("job")
    assert lease_claim("job", "b", seconds=30) == 2
    assert lease_claim("job", "a", seconds=30) == 0
    state = lease_get("job")
    assert state is not None and state.holder == "b" and state.epoch == 2


def test_a_released_lease_is_free_at_once_and_only_its_holder_releases_it():
    lease_claim("job", "a", seconds=30)
    assert not lease_release("job", "b")
    assert lease_claim("job", "b", seconds=30) == 0
    assert lease_release("job", "a")
    assert lease_claim("job", "b", seconds=30) == 2


def test_leases_are_independent_by_name():
    assert lease_claim("notifier:default", "a", seconds=30)
    assert lease_claim("market-clock", "b", seconds=30)
    assert lease_get("notifier:default").holder == "a"
    assert lease_get("market-clock").holder == "b"
    assert lease_get("drip-worker") is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_of_many_simultaneous_claimers_exactly_one_wins(vendor):
    if vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL")
    lease_claim("job", "warm-up", seconds=30)
    _expire("job")
    start = threading.Barrier(8)
    won: list[str] = []

    def claim(holder: str) -> None:
        try:
            start.wait(5)
            if lease_claim("job", holder, seconds=30):
                won.append(holder)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim, args=(f"h{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(won) == 1, won
    assert lease_get("job").holder == won[0] and lease_get("job").epoch == 2


async def _sync_call(func, /, **kwargs):
    """The database call on the loop's own thread (an asyncio context has a connection of its
    own, outside the test's transaction: these tests are transactional)."""
    return func(**kwargs)


@pytest.fixture
def loop_may_query(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    yield
    connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_a_keeper_holds_renews_and_gives_the_lease_up_when_cancelled(loop_may_query):
    async def main():
        a = LeaseKeeper("job", holder="a", seconds=30, renew=0.05, call=_sync_call)
        b = LeaseKeeper("job", holder="b", seconds=30, renew=0.05, call=_sync_call)
        task = asyncio.create_task(a.run())
        await asyncio.sleep(0.15)
        assert a.held and a.epoch == 1
        assert not await b.claim_once()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert not a.held
        assert await b.claim_once() and b.epoch == 2
        connections.close_all()  # this context's own connection

    asyncio.run(main())


@pytest.mark.django_db(transaction=True)
def test_a_keeper_cut_off_from_the_database_stops_trusting_its_lease_in_time(loop_may_query):
    """It keeps the lease while it may (a blip costs nothing), and lets go no later than the
    expiry the database wrote, so no two processes ever both believe they hold it."""
    failing = False

    async def call(func, /, **kwargs):
        if failing:
            raise OSError("database unreachable")
        return func(**kwargs)

    async def main():
        nonlocal failing
        keeper = LeaseKeeper("job", holder="a", seconds=0.4, renew=0.05, call=call)
        assert await keeper.claim_once()
        failing = True
        assert await keeper.claim_once()  # still within its time
        await asyncio.sleep(0.45)
        assert not await keeper.claim_once()
        assert not keeper.held
        connections.close_all()  # this context's own connection

    asyncio.run(main())
    assert lease_get("job").expires_at <= timezone.now()
    assert lease_claim("job", "b", seconds=30) == 2


@pytest.mark.django_db(transaction=True)
def test_a_keeper_cancelled_during_a_claim_waits_for_it_and_still_gives_the_lease_up():
    """The claim runs in a thread, which a cancelled wait does not stop: a keeper stopped while
    its renewal is in flight must let that claim land before it releases, or the claim takes the
    lease back after the release and a stopped process holds it until it expires (seen in CI:
    the DRIP worker's lease still held after the worker stopped)."""
    entered, go_on = threading.Event(), threading.Event()
    claims = 0

    async def call(func, /, **kwargs):
        def run():
            nonlocal claims
            if func is lease_claim:
                claims += 1
                if claims == 2:  # the first renewal: held up until the keeper is cancelled
                    entered.set()
                    go_on.wait(5)
            try:
                return func(**kwargs)
            finally:
                connections.close_all()  # this thread's own connection

        return await asyncio.to_thread(run)

    async def main():
        keeper = LeaseKeeper("job", holder="a", seconds=30, renew=0.01, call=call)
        task = asyncio.create_task(keeper.run())
        assert await asyncio.to_thread(entered.wait, 5)
        task.cancel()
        await asyncio.sleep(0.05)  # the cancelled keeper is in its finally now
        go_on.set()  # the renewal commits
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    lease = lease_get("job")
    assert lease.holder == "" and lease.epoch == 1
