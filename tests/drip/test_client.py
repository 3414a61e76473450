"""The DRIP client against the docs-faithful fake DRIP over real HTTP: shapes, the error
mapping, in-doubt answers (a write is applied until proven otherwise), the shared rate limit and
the circuit breaker (docs/drip.md)."""

from __future__ import annotations

import time

import pytest

from drip.client import (
    BATCH_MAX,
    DripAuth,
    DripBadRequest,
    DripCircuitOpen,
    DripClient,
    DripInDoubt,
    DripInsufficient,
    DripRateLimited,
    DripUnavailable,
    breaker_new,
    breaker_state,
)
from drip.fake import FakeDrip
from drip.ratelimit import RealmLimiter

from .conftest import ALICE, API_KEY, BOB, OTHER_KEY, POINT, REALM, START

NOBODY = 999_999_999_999_999_001


async def debit(client, user=ALICE, amount=-100, key=API_KEY, realm=REALM, initiator="pm-drip-1"):
    return await client.balance_update(
        realm_id=realm,
        api_key=key,
        user_id=user,
        amount=amount,
        realm_point_id=POINT,
        initiator_id=initiator,
    )


async def test_balance_update_changes_the_members_drip_balance(drip_client, fake):
    credential = await debit(drip_client, amount=-300, initiator="pm-drip-42")

    assert credential.balance == START - 300 and credential.linked is True
    assert fake.balance(REALM, ALICE) == START - 300
    (request,) = fake.requests("PATCH")
    assert request.body == {"amount": -300, "realmPointId": POINT, "initiatorId": "pm-drip-42"}
    assert request.query == {"type": "discord-id", "value": str(ALICE)}
    assert [(a.value, a.amount, a.initiator_id) for a in fake.applied()] == [
        (str(ALICE), -300, "pm-drip-42")
    ]


async def test_an_unknown_discord_id_gets_a_ghost_credential(drip_client, fake):
    credential = await debit(drip_client, user=NOBODY, amount=40)
    assert credential.linked is False and credential.balance == 40
    assert fake.ghost(REALM, NOBODY) == 40 and fake.balance(REALM, NOBODY) is None
    found = await drip_client.members(realm_id=REALM, api_key=API_KEY, user_ids=[NOBODY])
    assert found == {}  # a ghost credential is no realm member


@pytest.mark.parametrize(
    ("user", "amount", "key", "realm", "error", "status"),
    [
        (NOBODY, -1, API_KEY, REALM, DripInsufficient, 422),
        (ALICE, -(START + 1), API_KEY, REALM, DripInsufficient, 422),
        (ALICE, -1, API_KEY, "not-a-realm-id", DripBadRequest, 400),
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
    assert fake.balance(REALM, ALICE) == START and fake.applied() == []
    assert API_KEY not in str(caught.value) and OTHER_KEY not in str(caught.value)


async def test_insufficient_balance_carries_the_balance(drip_client):
    with pytest.raises(DripInsufficient) as caught:
        await debit(drip_client, amount=-(START + 50))
    assert caught.value.details == {"balance": START, "required": START + 50}


async def test_a_429_answer_carries_retry_after_and_blocks_the_realm(breaker, wall_clock):
    """The window runs on a clock the test moves (`wall_clock`), never on time."""
    fake = FakeDrip(rate_limit=2, rate_window=60.0)
    fake.clock = wall_clock
    fake.realm(REALM, API_KEY, realm_point_id=POINT)
    fake.member(REALM, ALICE, START)
    fake.start()
    client = DripClient(
        base_url=fake.base_url,
        timeout=1.0,
        breaker=breaker,
        limiter=RealmLimiter(clock=wall_clock),
    )
    try:
        await debit(client, amount=-1)
        await debit(client, amount=-1)  # answered with X-RateLimit-Remaining: 0
        assert client.rate_exhausted(REALM) == 60  # until X-RateLimit-Reset, a UNIX time
        with pytest.raises(DripRateLimited) as caught:
            await debit(client, amount=-1)
        assert caught.value.reason == "local"  # refused here: DRIP was not asked
        assert caught.value.retry_after == 60
        assert len(fake.requests()) == 2
        fake.storm_next(1, retry_after=1)
        wall_clock.advance(60)
        with pytest.raises(DripRateLimited) as caught:
            await debit(client, amount=-1)  # DRIP's own 429
        assert caught.value.retry_after == 1 and caught.value.applied is False
        assert client.rate_exhausted(REALM) == 1  # blocked for Retry-After
        wall_clock.advance(1)
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
    assert caught.value.applied is None and caught.value.reason == "no_answer"
    assert fake.balance(REALM, ALICE) == START - 70  # it was applied: hence "in doubt"

    fake.lose_next(mode="drop")
    with pytest.raises(DripInDoubt):
        await debit(drip_client, amount=-30)
    assert fake.balance(REALM, ALICE) == START - 100


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_a_5xx_to_a_write_is_in_doubt_never_a_refusal(drip_client, fake, status):
    fake.apply_then_fail(status)
    with pytest.raises(DripInDoubt) as caught:
        await debit(drip_client, amount=-300)
    assert caught.value.reason == "server_error" and caught.value.applied is None
    assert fake.balance(REALM, ALICE) == START - 300  # applied, then answered 5xx


async def test_an_unreadable_answer_to_a_write_is_in_doubt(drip_client, fake):
    fake.garble_next()
    with pytest.raises(DripInDoubt) as caught:
        await debit(drip_client, amount=-5)
    assert caught.value.reason == "unreadable"
    assert "answered but its answer could not be read" in caught.value.message


async def test_a_read_that_times_out_is_retried_then_unavailable(drip_client, fake):
    fake.hang_next()
    found = await drip_client.balances(realm_id=REALM, api_key=API_KEY, user_ids=[ALICE])
    assert found == {ALICE: START}  # reads may retry: the second attempt answered
    fake.hang_next(3)
    with pytest.raises(DripUnavailable):
        await drip_client.balances(realm_id=REALM, api_key=API_KEY, user_ids=[ALICE])


async def test_five_failures_open_the_breaker_and_half_open_recovers(fake, breaker_clock):
    breaker = breaker_new(failure_threshold=5, recovery_timeout=0.5)
    client = DripClient(base_url=fake.base_url, timeout=1.0, breaker=breaker)
    try:
        fake.fail_next(503, times=5)
        for _ in range(5):
            with pytest.raises(DripInDoubt):  # a write answered 5xx: not proof of a refusal
                await debit(client, amount=-1)
        assert breaker_state(breaker)["state"] == "open"
        sent = len(fake.requests())

        started = time.monotonic()
        with pytest.raises(DripCircuitOpen) as caught:
            await debit(client, amount=-1)
        assert time.monotonic() - started < 0.05  # refused at once
        assert caught.value.retry_after >= 0
        assert len(fake.requests()) == sent  # DRIP was not asked

        breaker_clock.advance(0.6)
        assert breaker_state(breaker)["state"] == "half_open"
        fake.fail_next(500)
        with pytest.raises(DripInDoubt):
            await debit(client, amount=-1)  # the trial call fails: open again
        assert breaker_state(breaker)["state"] == "open"

        breaker_clock.advance(0.6)
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
        initiator_id="pm-drip-batch-x",
        realm_point_id=POINT,
    )
    assert outcome.balances == {ALICE: START + 10, NOBODY: 5}  # NOBODY: a ghost credential
    assert set(outcome.errors) == {BOB}
    assert fake.requests("PATCH")[0].body["initiatorId"] == "pm-drip-batch-x"
    with pytest.raises(ValueError, match="1–100"):
        await drip_client.batch_update(
            realm_id=REALM,
            api_key=API_KEY,
            updates=[(ALICE, 1)] * (BATCH_MAX + 1),
            initiator_id="x",
        )


async def test_balances_search_splits_into_requests_of_50(drip_client, fake):
    users = [ALICE, BOB, *range(10**17, 10**17 + 70)]
    found = await drip_client.balances(
        realm_id=REALM, api_key=API_KEY, user_ids=users, realm_point_id=POINT
    )
    assert found[ALICE] == START and found[BOB] == START
    assert found[10**17] is None
    assert len(fake.requests("GET")) == 2


async def test_search_maps_members_by_oauth_account_id_and_reads_every_page(drip_client, fake):
    users = [10**17 + i for i in range(7)]
    for user in users:
        fake.member(REALM, user, user % 1000)
    fake.search_page_size = 3
    found = await drip_client.members(
        realm_id=REALM, api_key=API_KEY, user_ids=users, realm_point_id=POINT
    )
    assert {u: m.balance for u, m in found.items()} == {u: u % 1000 for u in users}
    assert all(len(m.drip_id) == 24 and m.drip_id != str(m.user_id) for m in found.values())
    assert [r.query["page"] for r in fake.requests("GET")] == ["1", "2", "3"]
