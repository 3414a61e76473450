"""The DRIP client against the fake DRIP over real HTTP: shapes, the error mapping, in-doubt
answers and the circuit breaker (docs/drip.md)."""

from __future__ import annotations

import asyncio
import time

import pytest

from drip.client import (
    BATCH_MAX,
    DripAuth,
    DripCircuitOpen,
    DripClient,
    DripInDoubt,
    DripInsufficient,
    DripNotMember,
    DripRateLimited,
    DripUnavailable,
    breaker_new,
    breaker_state,
)
from drip.fake import FakeDrip

from .conftest import ALICE, API_KEY, BOB, OTHER_KEY, POINT, REALM, START

NOBODY = 999_999_999_999_999_001


async def debit(client, user=ALICE, amount=-100, key=API_KEY, realm=REALM):
    return await client.balance_update(
        realm_id=realm, api_key=key, user_id=user, amount=amount, realm_point_id=POINT
    )


async def test_balance_update_changes_the_members_drip_balance(drip_client, fake):
    credential = await debit(drip_client, amount=-300)

    assert credential.balance == START - 300
    assert fake.balance(REALM, ALICE) == START - 300
    (request,) = fake.requests("PATCH")
    assert request.body == {"amount": -300, "realmPointId": POINT}


@pytest.mark.parametrize(
    ("user", "amount", "key", "realm", "error", "status"),
    [
        (NOBODY, -1, API_KEY, REALM, DripNotMember, 404),
        (ALICE, -(START + 1), API_KEY, REALM, DripInsufficient, 422),
        (ALICE, -1, "drip-live-wrong-key-000000", REALM, DripAuth, 401),
        (ALICE, -1, OTHER_KEY, REALM, DripAuth, 403),
    ],
)
async def test_refusals_map_to_errors_that_moved_nothing(
    drip_client, fake, user, amount, key, realm, error, status
):
    with pytest.raises(error) as caught:
        await debit(drip_client, user=user, amount=amount, key=key, realm=realm)

    assert caught.value.status == status
    assert caught.value.applied is False
    assert caught.value.request_id  # DRIP's requestId is kept for the logs
    assert fake.balance(REALM, ALICE) == START
    assert API_KEY not in str(caught.value) and OTHER_KEY not in str(caught.value)


async def test_insufficient_balance_carries_the_balance(drip_client):
    with pytest.raises(DripInsufficient) as caught:
        await debit(drip_client, amount=-(START + 50))
    assert caught.value.details == {"balance": START, "required": START + 50}


async def test_sliding_window_rate_limit_answers_429_with_retry_after(breaker):
    fake = FakeDrip(rate_limit=2, rate_window=2.0)
    fake.realm(REALM, API_KEY)
    fake.member(REALM, ALICE, START)
    fake.start()
    client = DripClient(base_url=fake.base_url, timeout=1.0, breaker=breaker)
    try:
        await debit(client, amount=-1)
        await debit(client, amount=-1)
        with pytest.raises(DripRateLimited) as caught:
            await debit(client, amount=-1)
        assert 1 <= caught.value.retry_after <= 2
        assert client.rate[REALM][0] == 0
        await asyncio.sleep(caught.value.retry_after + 0.1)
        await debit(client, amount=-1)  # the window slid on
        assert fake.balance(REALM, ALICE) == START - 3
        assert breaker_state(breaker)["state"] == "closed"  # a 429 is not an outage
    finally:
        await client.close()
        fake.stop()


async def test_a_lost_answer_after_drip_applied_is_in_doubt(drip_client, fake):
    fake.lose_next(mode="hang")
    with pytest.raises(DripInDoubt) as caught:
        await debit(drip_client, amount=-70)
    assert caught.value.applied is None
    assert fake.balance(REALM, ALICE) == START - 70  # it was applied: hence "in doubt"

    fake.lose_next(mode="drop")
    with pytest.raises(DripInDoubt):
        await debit(drip_client, amount=-30)
    assert fake.balance(REALM, ALICE) == START - 100


async def test_a_read_that_times_out_is_just_unavailable(drip_client, fake):
    fake.hang_next()
    with pytest.raises(DripUnavailable):
        await drip_client.balances(realm_id=REALM, api_key=API_KEY, user_ids=[ALICE])


async def test_five_failures_open_the_breaker_and_half_open_recovers(fake):
    breaker = breaker_new(failure_threshold=5, recovery_timeout=0.5)
    client = DripClient(base_url=fake.base_url, timeout=1.0, breaker=breaker)
    try:
        fake.fail_next(503, times=5)
        for _ in range(5):
            with pytest.raises(DripUnavailable):
                await debit(client, amount=-1)
        assert breaker_state(breaker)["state"] == "open"
        sent = len(fake.requests())

        started = time.monotonic()
        with pytest.raises(DripCircuitOpen) as caught:
            await debit(client, amount=-1)
        assert time.monotonic() - started < 0.05  # refused at once
        assert caught.value.retry_after >= 0
        assert len(fake.requests()) == sent  # DRIP was not asked

        await asyncio.sleep(0.6)
        assert breaker_state(breaker)["state"] == "half_open"
        fake.fail_next(500)
        with pytest.raises(DripUnavailable):
            await debit(client, amount=-1)  # the trial call fails: open again
        assert breaker_state(breaker)["state"] == "open"

        await asyncio.sleep(0.6)
        await debit(client, amount=-1)  # the trial call succeeds: closed
        assert breaker_state(breaker)["state"] == "closed"
        assert fake.balance(REALM, ALICE) == START - 1
    finally:
        await client.close()


async def test_an_unreachable_drip_is_unavailable_not_in_doubt(breaker):
    client = DripClient(base_url="http://127.0.0.1:9/api/v1", timeout=1.0, breaker=breaker)
    try:
        with pytest.raises(DripUnavailable) as caught:
            await debit(client)
        assert caught.value.applied is False
        assert not isinstance(caught.value, DripInDoubt)
    finally:
        await client.close()


async def test_batch_answers_per_member_and_refuses_more_than_100(drip_client, fake):
    outcome = await drip_client.batch_update(
        realm_id=REALM,
        api_key=API_KEY,
        updates=[(ALICE, 10), (BOB, -(START + 1)), (NOBODY, 5)],
        realm_point_id=POINT,
    )
    assert outcome.balances == {ALICE: START + 10}
    assert set(outcome.errors) == {BOB, NOBODY}
    with pytest.raises(ValueError, match="1–100"):
        await drip_client.batch_update(
            realm_id=REALM, api_key=API_KEY, updates=[(ALICE, 1)] * (BATCH_MAX + 1)
        )


async def test_balances_search_splits_into_requests_of_50(drip_client, fake):
    users = [ALICE, BOB, *range(10**17, 10**17 + 70)]
    found = await drip_client.balances(
        realm_id=REALM, api_key=API_KEY, user_ids=users, realm_point_id=POINT
    )
    assert found[ALICE] == START and found[BOB] == START
    assert found[10**17] is None
    assert len(fake.requests("GET")) == 2
