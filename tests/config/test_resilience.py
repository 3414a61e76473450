"""Retrying transient database errors (points.db.retry_transient) and the circuit breaker for
outbound HTTP (config.resilience), against PostgreSQL and a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import aiohttp
import psycopg
import pytest
from aiohttp import web
from django.db import OperationalError, connection
from prometheus_client import REGISTRY

from config.resilience import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    CircuitBreaker,
    CircuitOpen,
    circuit_breaker,
    http_status_is_failure,
)
from points import db
from points.models import Transfer
from points.selectors import balance_get
from points.services import points_grant
from tests.conftest import BOB, GUILD, MOD


def retries(operation: str, sqlstate: str) -> float:
    labels = {"operation": operation, "sqlstate": sqlstate}
    return REGISTRY.get_sample_value("pm_db_retries_total", labels) or 0.0


def serialization_failure() -> OperationalError:
    """What Django raises for PostgreSQL's 40001: an OperationalError caused by psycopg's."""
    error = OperationalError("could not serialize access due to concurrent update")
    error.__cause__ = psycopg.errors.SerializationFailure("could not serialize access")
    return error


@pytest.fixture
def no_sleep(monkeypatch):
    delays: list[float] = []
    monkeypatch.setattr(db.time, "sleep", delays.append)
    return delays


# --- retry_transient ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_lost_acknowledgement_is_retried_and_the_key_prevents_a_double_grant(no_sleep):
    """The grant commits, then the client sees a serialization failure (as when the commit's
    answer is lost): the whole use case runs again with the same key and moves nothing more."""
    runs: list[Transfer] = []

    @db.retry_transient(base_delay=0.01)
    def grant_losing_first_ack() -> Transfer:
        transfer = points_grant(
            guild_id=GUILD,
            user_id=BOB,
            amount=300,
            reason="tournament prize",
            actor_id=MOD,
            idempotency_key="admin:prize-1",
        )
        runs.append(transfer)
        if len(runs) == 1:
            raise serialization_failure()
        return transfer

    before = retries(grant_losing_first_ack.__qualname__, "40001")
    transfer = grant_losing_first_ack()
    assert len(runs) == 2 and runs[0].pk == runs[1].pk == transfer.pk
    assert Transfer.objects.filter(idempotency_key="admin:prize-1").count() == 1
    assert balance_get(guild_id=GUILD, user_id=BOB) == 1000 + 300  # starting balance + once
    assert len(no_sleep) == 1 and 0 <= no_sleep[0] <= 0.02
    assert retries(grant_losing_first_ack.__qualname__, "40001") == before + 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_real_serialization_failure_inside_the_transaction_is_retried(no_sleep):
    """PostgreSQL itself raises 40001 in the middle of the grant's transaction (after the
    transfer row is written): the transaction rolls back, the service runs again, and the
    grant is applied exactly once."""
    injected: list[str] = []

    def fail_once_after_transfer_insert(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if sql.startswith('INSERT INTO "points_transfer"') and not injected:
            injected.append(sql)
            execute(
                "DO $$ BEGIN RAISE EXCEPTION 'forced for the test' "
                "USING ERRCODE = 'serialization_failure'; END $$",
                None,
                False,
                context,
            )
        return result

    before = retries("points_grant", "40001")
    with connection.execute_wrapper(fail_once_after_transfer_insert):
        transfer = points_grant(
            guild_id=GUILD, user_id=BOB, amount=40, reason="bug bounty", idempotency_key="admin:b1"
        )
    assert injected, "the failure was injected"
    assert retries("points_grant", "40001") == before + 1
    assert Transfer.objects.filter(idempotency_key="admin:b1").get().pk == transfer.pk
    assert balance_get(guild_id=GUILD, user_id=BOB) == 1040
    assert len(no_sleep) == 1


@pytest.mark.django_db
def test_errors_that_are_not_transient_are_not_retried(no_sleep):
    calls = []

    @db.retry_transient()
    def broken():
        calls.append(1)
        raise OperationalError("no such table: points_account")

    with pytest.raises(OperationalError, match="no such table"):
        broken()
    assert len(calls) == 1 and no_sleep == []


@pytest.mark.django_db
def test_retries_back_off_exponentially_with_jitter_then_give_up(no_sleep):
    calls = []

    @db.retry_transient(attempts=4, base_delay=0.1, max_delay=0.3)
    def always_deadlocked():
        calls.append(1)
        error = OperationalError("deadlock detected")
        error.__cause__ = psycopg.errors.DeadlockDetected("deadlock detected")
        raise error

    with pytest.raises(OperationalError, match="deadlock"):
        always_deadlocked()
    assert len(calls) == 4 and len(no_sleep) == 3
    caps = [0.2, 0.3, 0.3]  # base · 2^attempt, capped at max_delay
    assert all(0 <= d <= cap for d, cap in zip(no_sleep, caps, strict=True))


def test_transient_classification():
    assert db.is_transient(serialization_failure())
    lost = OperationalError("server closed the connection unexpectedly")
    lost.__cause__ = psycopg.errors.AdminShutdown("terminating connection")  # 57P01
    assert db.is_transient(lost)
    assert db.is_transient(OperationalError("database is locked"))  # SQLite's busy writer
    assert not db.is_transient(OperationalError("syntax error"))
    assert not db.is_transient(ValueError("40001"))


# --- Circuit breaker ---------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def flaky_service():
    """A real HTTP server on 127.0.0.1 that answers 500 while `state["failing"]` and counts the
    requests that reached it."""
    state = {"failing": True, "hits": 0, "status_when_failing": 500}

    async def handle(request: web.Request) -> web.Response:
        state["hits"] += 1
        if state["failing"]:
            return web.Response(status=state["status_when_failing"], text="down")
        return web.json_response({"balance": 42})

    app = web.Application()
    app.router.add_get("/balance", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    state["url"] = f"http://{host}:{port}/balance"
    yield state
    await runner.cleanup()


async def fetch(session: aiohttp.ClientSession, url: str) -> aiohttp.ClientResponse:
    async with session.get(url) as response:
        await response.read()
        return response


async def test_breaker_opens_after_failures_refuses_fast_then_recovers(flaky_service):
    clock = FakeClock()
    breaker = CircuitBreaker(
        "drip-test",
        failure_threshold=3,
        reset_timeout=30,
        is_failure=http_status_is_failure,
        clock=clock,
    )
    url = flaky_service["url"]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        for _ in range(3):
            response = await breaker.call_async(fetch, session, url)
            assert response.status == 500
        assert breaker.state == OPEN
        assert REGISTRY.get_sample_value("pm_circuit_state", {"name": "drip-test"}) == 2

        with pytest.raises(CircuitOpen) as refused:
            await breaker.call_async(fetch, session, url)
        assert flaky_service["hits"] == 3, "an open circuit does not call the service"
        assert "drip-test is not answering right now" in refused.value.message
        assert refused.value.details["retry_after"] == 30

        clock.now += 30  # cool-down over: one trial call goes through
        assert breaker.state == HALF_OPEN
        flaky_service["failing"] = False
        response = await breaker.call_async(fetch, session, url)
        assert response.status == 200 and breaker.state == CLOSED
        assert flaky_service["hits"] == 4


async def test_failed_trial_reopens_at_once(flaky_service):
    clock = FakeClock()
    breaker = CircuitBreaker(
        "trial-test",
        failure_threshold=2,
        reset_timeout=10,
        is_failure=http_status_is_failure,
        clock=clock,
    )
    async with aiohttp.ClientSession() as session:
        for _ in range(2):
            await breaker.call_async(fetch, session, flaky_service["url"])
        clock.now += 10
        await breaker.call_async(fetch, session, flaky_service["url"])  # the trial fails
        assert breaker.state == OPEN
        with pytest.raises(CircuitOpen):
            await breaker.call_async(fetch, session, flaky_service["url"])
    assert flaky_service["hits"] == 3


async def test_client_errors_do_not_trip_the_breaker(flaky_service):
    flaky_service["status_when_failing"] = 404
    breaker = CircuitBreaker(
        "client-error-test", failure_threshold=1, is_failure=http_status_is_failure
    )
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            assert (await breaker.call_async(fetch, session, flaky_service["url"])).status == 404
    assert breaker.state == CLOSED


async def test_connection_refused_counts_as_a_failure(closed_port):
    breaker = CircuitBreaker("refused-test", failure_threshold=2, reset_timeout=60)
    async with aiohttp.ClientSession() as session:
        for _ in range(2):
            with pytest.raises(aiohttp.ClientConnectorError):
                await breaker.call_async(fetch, session, f"http://127.0.0.1:{closed_port}/")
        with pytest.raises(CircuitOpen):
            await breaker.call_async(fetch, session, f"http://127.0.0.1:{closed_port}/")
    assert REGISTRY.get_sample_value("pm_circuit_refusals_total", {"name": "refused-test"}) == 1


def test_sync_calls_and_the_shared_registry():
    breaker = circuit_breaker("shared-test", failure_threshold=1, reset_timeout=60)
    assert circuit_breaker("shared-test") is breaker

    def boom():
        raise TimeoutError("read timed out")

    with pytest.raises(TimeoutError):
        breaker.call(boom)
    with pytest.raises(CircuitOpen):
        breaker.call(lambda: "never called")


def test_breaker_rejects_nonsense_settings():
    with pytest.raises(ValueError):
        CircuitBreaker("bad", failure_threshold=0)
