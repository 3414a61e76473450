"""Contract tests: DRIP's published examples (tests/drip/fixtures, each naming its page) are
served by a server that answers only the exact request the example shows, so the client must
build exactly those requests and parse exactly those answers (docs/drip.md)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from drip.client import DripBadRequest, DripClient, DripInsufficient, DripRateLimited, breaker_new
from drip.ratelimit import RESET_CAP, RealmLimiter, reset_parse

FIXTURES = Path(__file__).parent / "fixtures"
REALM = "64b7f0c2a1d3e4f5a6b7c8d9"
POINT = "64b7f0c2a1d3e4f5a6b7c8db"
KEY = "drip-contract-key-0001"
ALICE, BOB = 222222222222222201, 222222222222222202


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


class ExampleServer:
    """Answers `example["response"]` to a request equal to `example["request"]`, else 418."""

    def __init__(self, example: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self.example = example
        self.headers = headers or {}
        self.seen: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        seen = {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "body": body,
        }
        self.seen.append(seen)
        expected = self.example.get("request")
        if expected is not None and seen != expected:
            return web.json_response({"unexpected": seen}, status=418)
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return web.json_response({"error": "Unauthorized"}, status=401)
        answer = self.example["response"]
        return web.json_response(
            answer["body"],
            status=answer["status"],
            headers=self.headers | answer.get("headers", {}),
        )


@pytest.fixture
async def serve():
    runners: list[web.AppRunner] = []

    async def start(server: ExampleServer) -> DripClient:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", server.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return DripClient(
            base_url=f"http://127.0.0.1:{port}/api/v1", timeout=2.0, breaker=breaker_new()
        )

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_balance_update_sends_and_reads_the_reference_example(serve):
    example = fixture("credentials_balance.json")
    client = await serve(ExampleServer(example))
    try:
        credential = await client.balance_update(
            realm_id=REALM,
            api_key=KEY,
            user_id=ALICE,
            amount=-123,
            initiator_id="pm-drip-7",
            realm_point_id=POINT,
        )
    finally:
        await client.close()
    assert (credential.balance, credential.linked) == (4877, True)
    assert credential.credential_id == "65a1b2c3d4e5f60718293a4b"


async def test_batch_update_sends_and_reads_the_reference_example(serve):
    example = fixture("credentials_transaction.json")
    client = await serve(ExampleServer(example))
    try:
        outcome = await client.batch_update(
            realm_id=REALM,
            api_key=KEY,
            updates=[(ALICE, 123), (BOB, 50)],
            initiator_id="pm-drip-batch-abc-12",
            realm_point_id=POINT,
        )
    finally:
        await client.close()
    assert outcome.balances == {ALICE: 5123}
    assert outcome.errors == {BOB: "insufficient balance"}


async def test_member_search_maps_oauth_account_id_and_the_currency(serve):
    example = fixture("members_search.json")
    client = await serve(ExampleServer(example))
    try:
        found = await client.members(
            realm_id=REALM, api_key=KEY, user_ids=[ALICE, 222222222222222299], realm_point_id=POINT
        )
    finally:
        await client.close()
    assert list(found) == [ALICE]  # the twitter credential's id is not a Discord id
    assert found[ALICE].balance == 5000  # the realm's currency, not the first listed
    assert found[ALICE].drip_id == "507f1f77bcf86cd799439013"


async def test_the_error_body_is_read_for_request_id_and_details(serve):
    example = fixture("error_validation.json")
    client = await serve(ExampleServer(example))
    try:
        with pytest.raises(DripBadRequest) as caught:
            await client.balance_update(
                realm_id=REALM, api_key=KEY, user_id=ALICE, amount=-1, initiator_id="pm-drip-1"
            )
    finally:
        await client.close()
    assert caught.value.request_id == "req_1234567890abcdef"
    assert caught.value.details == {"field": "tokens", "issue": "Must be a positive integer"}
    assert caught.value.applied is False


async def test_a_422_is_a_refusal(serve):
    example = {
        "response": {
            "status": 422,
            "body": {
                "error": "InsufficientBalance",
                "message": "Insufficient balance",
                "details": {"balance": 3, "required": 10},
                "requestId": "req_x",
                "timestamp": "2024-01-20T15:30:00Z",
            },
        }
    }
    client = await serve(ExampleServer(example))
    try:
        with pytest.raises(DripInsufficient):
            await client.balance_update(
                realm_id=REALM, api_key=KEY, user_id=ALICE, amount=-10, initiator_id="pm-drip-1"
            )
    finally:
        await client.close()


async def test_a_429_with_retry_after_blocks_the_realm_for_that_long(serve, settings):
    settings.DRIP_RATELIMIT_NAMESPACE = f"contract-{time.time_ns()}"
    example = fixture("rate_limited.json")
    client = await serve(ExampleServer(example))
    try:
        with pytest.raises(DripRateLimited) as caught:
            await client.balance_update(
                realm_id=REALM, api_key=KEY, user_id=ALICE, amount=-1, initiator_id="pm-drip-1"
            )
        assert caught.value.retry_after == 30
        assert 28 <= client.rate_exhausted(REALM) <= 30
    finally:
        await client.close()


def test_x_ratelimit_reset_is_a_unix_timestamp_never_decades_of_waiting(settings):
    settings.DRIP_RATELIMIT_NAMESPACE = f"contract-{time.time_ns()}"
    headers = fixture("rate_limited.json")["headers_ok"]
    now = 1_800_000_000.0
    assert reset_parse(headers["X-RateLimit-Reset"], now=now) == now  # long past: no wait
    assert reset_parse(str(int(now) + 42), now=now) == now + 42
    assert reset_parse("42", now=now) == now + 42  # not a timestamp: seconds from now
    assert reset_parse(str(int(now) + 10**9), now=now) == now + RESET_CAP
    limiter = RealmLimiter(clock=lambda: now)
    limiter.observe(REALM, headers | {"X-RateLimit-Reset": str(int(now) + 5)}, 200, None)
    assert limiter.blocked_for(REALM) == 5
