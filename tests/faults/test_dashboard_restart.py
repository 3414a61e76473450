"""The dashboard's WebSockets through a PostgreSQL restart (the soak's finding,
docs/performance.md "The soak"): a staff socket stays connected while the private PostgreSQL
stops (fast shutdown) and starts again; the next event reaches the same socket, with its
summary read from the directory, and a socket opened afterwards connects and replays. An event
that arrives while the database is still down pauses the socket (4503) instead of killing it,
and the page's reconnection replays it.

The sockets are driven as daphne drives them (`tests/dashboard/live.py`: channels' test
communicator would switch Django's connection clean-up off for the whole process), with a
listener always waiting as a page does, and the events published through Redis from another
thread, as the bot publishes them. Two connection lives: closed after every call (the
project's default, CONN_MAX_AGE 0) and kept across calls without a health check (what a
persistent or pooled connection is after a restart until a query fails on it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

import pytest
from channels.layers import get_channel_layer
from django.contrib.auth.models import Group
from django.db import InterfaceError, OperationalError, connection
from django.test import Client

from betting import services as betting_services
from config.asgi import application
from markets import realtime, services
from markets.models import MarketEvent
from markets.realtime import DASHBOARD_GROUP
from points.audit import ledger_audit
from points.services import member_seen
from tests.admin_helpers import staff_user
from tests.conftest import ALICE, BOB, GUILD
from tests.dashboard.live import LiveWebsocketCommunicator

from .conftest import close_connection

pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

HEADERS = [(b"host", b"127.0.0.1"), (b"origin", b"http://127.0.0.1")]
WAIT = 60.0
"""Seconds any one step may take on a loaded machine (a bound, not a measurement)."""


@pytest.fixture(params=["closed-after-each-call", "kept-without-health-check"])
def connection_life(request, on_private_postgres):
    settings_dict = connection.settings_dict  # every thread's connection is built from it
    saved = {k: settings_dict[k] for k in ("CONN_MAX_AGE", "CONN_HEALTH_CHECKS")}
    if request.param == "kept-without-health-check":
        settings_dict.update(CONN_MAX_AGE=None, CONN_HEALTH_CHECKS=False)
    yield on_private_postgres
    settings_dict.update(saved)


@pytest.fixture
def redis_layer(settings, private_redis):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [private_redis.url], "prefix": f"pmdash{uuid.uuid4().hex[:8]}"},
        }
    }


def in_thread(call, /, **kwargs) -> Any:
    """`call` in this thread with a connection of its own, retried while PostgreSQL restarts."""
    deadline = time.monotonic() + WAIT
    try:
        while True:
            try:
                return call(**kwargs)
            except (OperationalError, InterfaceError):
                close_connection()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
    finally:
        close_connection()


def setup(tag: str) -> tuple[bytes, int, int]:
    user = staff_user(f"staff-{tag}", "Viewers")  # the private database outlives each test
    assert Group.objects.filter(name="Viewers").exists()
    browser = Client()
    browser.force_login(user)
    market = services.market_create(
        guild_id=GUILD,
        creator_id=ALICE,
        question="Will the lights stay on?",
        outcomes=["Yes", "No"],
        duration="1d",
        idempotency_key=f"restart:{tag}:market",
    )
    member_seen(guild_id=GUILD, user_id=BOB, display_name="Bob Builder", username="bob")
    last = MarketEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    return f"sessionid={browser.cookies['sessionid'].value}".encode(), market.pk, last


def bet(market_id: int, key: str) -> int:
    return betting_services.bet_place(
        market_id=market_id, user_id=BOB, outcome=0, amount=10, idempotency_key=key
    ).pk


async def receive(ws: LiveWebsocketCommunicator) -> dict:
    """The socket's next message, or the consumer's end as a failure (the communicator alone
    only notices a consumer that raised when a receive times out)."""
    got = asyncio.ensure_future(ws.receive_json_from(timeout=3600))
    done, _ = await asyncio.wait({got, ws.future}, timeout=WAIT, return_when="FIRST_COMPLETED")
    if got in done:
        return got.result()
    got.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await got
    if ws.future.done():
        ended = ws.future.exception() if not ws.future.cancelled() else "cancelled"
        pytest.fail(f"the consumer ended: {ended!r}")
    pytest.fail(f"no message within {WAIT:.0f} s")


async def open_socket(cookie: bytes, after: int) -> tuple[LiveWebsocketCommunicator, list]:
    ws = LiveWebsocketCommunicator(application, "/ws/dashboard/", [*HEADERS, (b"cookie", cookie)])
    connected, code = await ws.connect(timeout=WAIT)
    assert connected, f"refused ({code})"
    await ws.send_json_to({"type": "replay", "after": after})
    replayed = []
    while (message := await receive(ws))["type"] != "replayed":
        replayed.append(message)
    return ws, replayed


async def event_of(ws: LiveWebsocketCommunicator, trade: asyncio.Future) -> dict:
    """The socket's next message while `trade` is placed in another thread: its event."""
    message = await receive(ws)
    trade_id = await trade
    assert message["type"] == "market.event", message  # not "paused", not an error
    assert message["payload"]["trade_id"] == trade_id
    return message


async def test_events_reach_the_same_socket_after_a_postgres_restart(connection_life, redis_layer):
    server = connection_life
    sockets: list[LiveWebsocketCommunicator] = []
    try:
        tag = uuid.uuid4().hex[:8]
        cookie, market_id, last = await asyncio.to_thread(in_thread, setup, tag=tag)
        ws, replayed = await open_socket(cookie, last)
        sockets.append(ws)
        assert replayed == []

        placing = asyncio.ensure_future(
            asyncio.to_thread(in_thread, bet, market_id=market_id, key=f"restart:{tag}:1")
        )
        before = await event_of(ws, placing)
        assert before["summary"].startswith(f"#{market_id}: Bob Builder bought 10 pts")

        await asyncio.to_thread(lambda: (server.stop(), server.start()))

        placing = asyncio.ensure_future(
            asyncio.to_thread(in_thread, bet, market_id=market_id, key=f"restart:{tag}:2")
        )
        after = await event_of(ws, placing)  # the same socket, still open
        assert after["summary"].startswith(f"#{market_id}: Bob Builder bought 10 pts")
        assert after["member_name"] == "Bob Builder"  # read from the directory after the restart

        again, replayed = await open_socket(cookie, last)  # a page opened now connects
        sockets.append(again)
        assert [m["id"] for m in replayed] == [before["id"], after["id"]]
        assert await asyncio.to_thread(in_thread, lambda: ledger_audit().ok)
    finally:
        for ws in sockets:
            with contextlib.suppress(BaseException):
                await ws.disconnect(timeout=5)
        if not server.ready():
            server.start()


def unpublished_event(market_id: int) -> dict:
    """An outbox row written but not yet pushed (as when a publish was lost): its message."""
    event = MarketEvent.objects.create(
        market_id=market_id,
        guild_id=GUILD,
        type=MarketEvent.Type.TRADE,
        payload={"user_id": str(BOB), "kind": "buy", "amount": 5, "label": "Yes", "outcome": 0},
    )
    return realtime.event_message(event)


async def test_an_event_met_while_the_database_is_down_pauses_the_socket_and_is_replayed(
    on_private_postgres, redis_layer
):
    server = on_private_postgres
    sockets: list[LiveWebsocketCommunicator] = []
    try:
        tag = uuid.uuid4().hex[:8]
        cookie, market_id, last = await asyncio.to_thread(in_thread, setup, tag=tag)
        ws, _ = await open_socket(cookie, last)
        sockets.append(ws)
        message = await asyncio.to_thread(in_thread, unpublished_event, market_id=market_id)

        await asyncio.to_thread(server.stop)
        await get_channel_layer().group_send(DASHBOARD_GROUP, message)
        # The summary's directory read fails twice: the page is told, then the socket closes
        # with 4503 (the page shows "Live updates paused" and reconnects with backoff).
        assert (await receive(ws))["type"] == "paused"
        assert await ws.receive_output(timeout=WAIT) == {"type": "websocket.close", "code": 4503}

        await asyncio.to_thread(server.start)
        again, replayed = await open_socket(cookie, last)
        sockets.append(again)
        assert [m["id"] for m in replayed] == [message["id"]]
        assert replayed[0]["member_name"] == "Bob Builder"
        assert await asyncio.to_thread(in_thread, lambda: ledger_audit().ok)
    finally:
        for ws in sockets:
            with contextlib.suppress(BaseException):
                await ws.disconnect(timeout=5)
        if not server.ready():
            server.start()
