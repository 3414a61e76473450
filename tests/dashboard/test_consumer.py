"""The dashboard WebSocket (dashboard/consumers.py) through the real ASGI stack (origin check,
session auth, routing) with real session cookies; the live tests run once on the in-memory
layer and once on channels-redis (`redis` marker, CI).

The consumer reads the database from another thread, so these tests commit
(`transaction=True`); services run through `database_sync_to_async`, as the bot calls them.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from prometheus_client import REGISTRY

from betting import services as betting_services
from config.asgi import application
from dashboard import consumers, events
from markets import realtime, services
from markets.models import MarketEvent
from points.rules import Actor
from points.services import member_seen
from tests.admin_helpers import staff_user
from tests.conftest import ALICE, BOB, CAROL, GUILD

ORIGIN = (b"origin", b"http://127.0.0.1")
pytestmark = pytest.mark.django_db(transaction=True)

# --- Fixtures and helpers --------------------------------------------------------------------


def memory_layer() -> dict:
    return {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def redis_layer(url: str) -> dict:
    """The channels-redis layer exactly as config/settings.py builds it (pool size, timeouts),
    pointed at `url`, with a prefix of its own: the shared Redis also serves other test runs
    and `make run`."""
    host = {"address": url}
    shipped = django_settings.CHANNEL_LAYERS["default"]
    if shipped["BACKEND"] == "channels_redis.core.RedisChannelLayer":
        host = {**shipped["CONFIG"]["hosts"][0], "address": url}
    return {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [host], "prefix": f"pmtest{uuid.uuid4().hex[:10]}"},
        }
    }


@pytest.fixture(
    params=["memory", pytest.param("redis", marks=pytest.mark.redis)],
)
def layer(request, settings):
    """The channel layer under test; the consumer and the services share it."""
    if request.param == "memory":
        settings.CHANNEL_LAYERS = memory_layer()
    else:
        settings.CHANNEL_LAYERS = redis_layer(django_settings.REDIS_URL)
    yield get_channel_layer()
    async_to_sync(get_channel_layer().flush)()


def session_cookie(client, user) -> bytes:
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


@pytest.fixture
def staff_cookie(client):
    return session_cookie(client, staff_user("staff", "Viewers"))


@pytest.fixture
def member_cookie(client):
    user = get_user_model().objects.create_user("member", password="pw-12345-long")
    return session_cookie(client, user)


@pytest.fixture
def market():
    return services.market_create(
        guild_id=GUILD,
        creator_id=ALICE,
        question="Will the bridge open on time?",
        outcomes=["Yes", "No"],
        duration="1d",
        idempotency_key="dash:market",
    )


def communicator(*headers, host: bytes = b"127.0.0.1") -> WebsocketCommunicator:
    return WebsocketCommunicator(application, "/ws/dashboard/", headers=[(b"host", host), *headers])


async def connect_and_replay(cookie: bytes, after: int) -> tuple[WebsocketCommunicator, list]:
    """Connect as the page does and collect the replay up to its `replayed` marker."""
    ws = communicator((b"cookie", cookie), ORIGIN)
    connected, _ = await ws.connect()
    assert connected
    await ws.send_json_to({"type": "replay", "after": after})
    replayed = []
    while True:
        message = await ws.receive_json_from(timeout=5)
        if message["type"] == "replayed":
            return ws, replayed
        replayed.append(message)


place_bet = database_sync_to_async(betting_services.bet_place)


async def last_event_id() -> int:
    return await database_sync_to_async(
        lambda: MarketEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    )()


def failures() -> float:
    return REGISTRY.get_sample_value("pm_dashboard_publish_failures_total") or 0.0


# --- Refusals --------------------------------------------------------------------------------


async def test_socket_without_origin_is_refused(staff_cookie):
    ws = communicator((b"cookie", staff_cookie))
    connected, _ = await ws.connect()
    assert not connected


async def test_socket_from_a_foreign_origin_is_refused(staff_cookie):
    ws = communicator((b"cookie", staff_cookie), (b"origin", b"http://evil.example"))
    connected, _ = await ws.connect()
    assert not connected


@pytest.mark.parametrize(
    "origin",
    [b"http://127.0.0.1:8001", b"https://127.0.0.1", b"http://127.0.0.1.evil.example", b"null"],
)
async def test_socket_from_another_port_or_scheme_of_the_host_is_refused(staff_cookie, origin):
    """The origin check compares scheme, host and port (issue 12), not the host name alone."""
    ws = communicator((b"cookie", staff_cookie), (b"origin", origin))
    connected, _ = await ws.connect()
    assert not connected


async def test_socket_from_a_trusted_origin_and_from_its_own_port_is_accepted(
    settings, staff_cookie
):
    settings.CHANNEL_LAYERS = memory_layer()
    settings.CSRF_TRUSTED_ORIGINS = ["https://dash.example.com:8443"]
    for origin, host in [
        (b"http://127.0.0.1:8000", b"127.0.0.1:8000"),
        (b"https://dash.example.com:8443", b"127.0.0.1"),
    ]:
        ws = communicator((b"cookie", staff_cookie), (b"origin", origin), host=host)
        connected, _ = await ws.connect()
        assert connected, origin
        await ws.disconnect()


async def test_staff_without_the_dashboard_permission_is_refused(settings, client):
    settings.CHANNEL_LAYERS = memory_layer()
    user = await database_sync_to_async(staff_user)("nogroup", None)
    cookie = await database_sync_to_async(session_cookie)(client, user)
    ws = communicator((b"cookie", cookie), ORIGIN)
    connected, code = await ws.connect()
    assert not connected and code == consumers.CLOSE_FORBIDDEN
    assert not get_channel_layer().groups.get(realtime.DASHBOARD_GROUP)


async def test_anonymous_socket_is_refused_before_joining_the_group(settings):
    settings.CHANNEL_LAYERS = memory_layer()
    ws = communicator(ORIGIN)
    connected, code = await ws.connect()
    assert not connected and code == consumers.CLOSE_FORBIDDEN
    assert not get_channel_layer().groups.get(realtime.DASHBOARD_GROUP)


async def test_non_staff_socket_is_refused_before_joining_the_group(settings, member_cookie):
    settings.CHANNEL_LAYERS = memory_layer()
    ws = communicator((b"cookie", member_cookie), ORIGIN)
    connected, code = await ws.connect()
    assert not connected and code == consumers.CLOSE_FORBIDDEN
    assert not get_channel_layer().groups.get(realtime.DASHBOARD_GROUP)


async def test_socket_with_a_forged_session_is_refused(settings):
    # The in-memory layer, as its siblings: a refused socket left on the Redis layer keeps a
    # receive task that the test's event loop cannot always cancel at teardown (a hang in CI).
    settings.CHANNEL_LAYERS = memory_layer()
    ws = communicator((b"cookie", b"sessionid=not-a-session"), ORIGIN)
    connected, code = await ws.connect()
    assert not connected and code == consumers.CLOSE_FORBIDDEN
    await ws.disconnect()


# --- Live delivery and replay (in-memory and Redis) -----------------------------------------


async def test_a_batch_of_trades_is_one_layer_message_and_a_frame_per_trade(
    layer, staff_cookie, market, monkeypatch
):
    """`trades_apply` publishes its batch as one `market.events` message (one trip to the
    layer), and the consumer forwards each event in order, as single trades are."""
    ws, _ = await connect_and_replay(staff_cookie, await last_event_id())
    sent = []
    group_send = realtime._group_send

    async def counted(message):
        sent.append(message["type"])
        await group_send(message)

    monkeypatch.setattr(realtime, "_group_send", counted)
    requests = [
        betting_services.TradeRequest("buy", user, 0, amount=10 + n, idempotency_key=f"dash:m{n}")
        for n, user in enumerate([BOB, CAROL, ALICE])
    ]
    trades = await database_sync_to_async(betting_services.trades_apply)(
        market_id=market.pk, requests=requests
    )
    frames = [await ws.receive_json_from(timeout=5) for _ in trades]
    assert sent == ["market.events"]
    assert [f["type"] for f in frames] == ["market.event"] * 3
    assert [f["payload"]["trade_id"] for f in frames] == [t.pk for t in trades]
    assert [f["payload"]["amount"] for f in frames] == [10, 11, 12]
    assert all(f["summary"].startswith(f"#{market.pk}: ") for f in frames)
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()


async def test_staff_receives_a_trade_event_after_bet_place(layer, staff_cookie, market):
    ws, replayed = await connect_and_replay(staff_cookie, await last_event_id())
    assert replayed == []
    await database_sync_to_async(member_seen)(
        guild_id=market.guild_id, user_id=BOB, display_name="Bob Builder", username="bob"
    )
    trade = await place_bet(
        market_id=market.pk, user_id=BOB, outcome=0, amount=100, idempotency_key="dash:b1"
    )
    message = await ws.receive_json_from(timeout=5)
    event = await database_sync_to_async(MarketEvent.objects.get)(request_key="dash:b1")
    assert message["type"] == "market.event" and message["event"] == "trade"
    assert message["id"] == event.pk and message["market_id"] == market.pk
    assert message["payload"]["trade_id"] == trade.pk
    assert message["payload"]["probabilities"][0] > 0.5
    # The member by name from the directory (issue 13), in the feed line and the trades table.
    assert message["summary"].startswith(f"#{market.pk}: Bob Builder bought 100 pts on “Yes”")
    assert message["member_name"] == "Bob Builder"
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()


async def test_many_sockets_read_the_directory_once_per_event(
    layer, staff_cookie, market, monkeypatch
):
    """Every socket gets the event's summary, and the members' names are read once for all of
    them, not once per socket (200 sockets queued 200 queries per trade on one thread: issue 29,
    bench/ws_latency.py)."""
    lookups = []
    names_for = events.names_for

    def counted(pairs):
        pairs = list(pairs)
        lookups.append(pairs)
        return names_for(pairs)

    monkeypatch.setattr(events, "names_for", counted)
    await database_sync_to_async(member_seen)(
        guild_id=market.guild_id, user_id=BOB, display_name="Bob Builder", username="bob"
    )
    after = await last_event_id()
    sockets = [(await connect_and_replay(staff_cookie, after))[0] for _ in range(5)]
    lookups.clear()  # the replays' own lookups (none: nothing to replay)
    await place_bet(
        market_id=market.pk, user_id=BOB, outcome=0, amount=100, idempotency_key="dash:many"
    )
    received = [await ws.receive_json_from(timeout=5) for ws in sockets]
    assert len({m["id"] for m in received}) == 1
    assert all(m["summary"].startswith(f"#{market.pk}: Bob Builder bought") for m in received)
    assert len(lookups) == 1
    for ws in sockets:
        await ws.disconnect()


async def test_reconnect_with_last_id_replays_exactly_the_missed_events_in_order(
    layer, staff_cookie, market
):
    ws, _ = await connect_and_replay(staff_cookie, await last_event_id())
    await place_bet(market_id=market.pk, user_id=BOB, outcome=0, amount=50, idempotency_key="k1")
    seen = await ws.receive_json_from(timeout=5)
    await ws.disconnect()

    # While the page is away: two trades on two outcomes and an early close.
    await place_bet(market_id=market.pk, user_id=CAROL, outcome=1, amount=70, idempotency_key="k2")
    await place_bet(market_id=market.pk, user_id=BOB, outcome=1, amount=30, idempotency_key="k3")
    await database_sync_to_async(services.market_close)(
        market_id=market.pk, actor=Actor.member(ALICE), idempotency_key="k4"
    )
    missed = await database_sync_to_async(
        lambda: list(MarketEvent.objects.filter(id__gt=seen["id"]).order_by("id"))
    )()

    ws, replayed = await connect_and_replay(staff_cookie, seen["id"])
    assert [m["id"] for m in replayed] == [e.pk for e in missed]
    assert [m["event"] for m in replayed] == ["trade", "trade", "market_closed"]
    assert [m["payload"].get("amount") for m in replayed[:2]] == [70, 30]
    assert (
        replayed
        == await database_sync_to_async(lambda: [events.event_message(e) for e in missed])()
    )
    assert await ws.receive_nothing(timeout=0.2)

    # Live again after the replay (a resolver without a position: Carol and Bob traded).
    await database_sync_to_async(services.resolution_vote_cast)(
        market_id=market.pk,
        actor=Actor.member(ALICE, manage_guild=True),
        outcome=1,
        idempotency_key="k5",
    )
    live = await ws.receive_json_from(timeout=5)
    assert live["event"] == "vote_cast" and live["id"] > missed[-1].pk
    await ws.disconnect()


async def test_an_event_both_replayed_and_pushed_is_sent_once(layer, staff_cookie, market):
    start = await last_event_id()
    await place_bet(market_id=market.pk, user_id=BOB, outcome=0, amount=10, idempotency_key="d1")
    ws, replayed = await connect_and_replay(staff_cookie, start)
    assert len(replayed) == 1
    event = await database_sync_to_async(MarketEvent.objects.get)(pk=replayed[0]["id"])
    # The same event arriving live (it committed while the replay query ran) is dropped.
    await get_channel_layer().group_send(realtime.DASHBOARD_GROUP, realtime.event_message(event))
    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()


# --- Protocol edges (in-memory) -------------------------------------------------------------


async def test_bad_client_messages_get_an_error_and_the_socket_stays_open(
    settings, staff_cookie, market
):
    settings.CHANNEL_LAYERS = memory_layer()
    ws = communicator((b"cookie", staff_cookie), ORIGIN)
    assert (await ws.connect())[0]
    for bad in (
        {"type": "subscribe"},
        {"type": "replay", "after": -1},
        {"type": "replay", "after": "12"},
        {"type": "replay", "after": True},
        [1, 2],
    ):
        await ws.send_json_to(bad)
        reply = await ws.receive_json_from(timeout=5)
        assert reply["type"] == "error" and reply["message"]
    await ws.send_json_to({"type": "replay"})  # no cursor: everything
    first = await ws.receive_json_from(timeout=5)
    assert first["event"] == "market_created" and first["market_id"] == market.pk
    assert (await ws.receive_json_from(timeout=5))["type"] == "replayed"
    await ws.disconnect()


async def test_replay_pages_through_batches_and_gives_up_past_the_cap(
    settings, staff_cookie, market, monkeypatch
):
    settings.CHANNEL_LAYERS = memory_layer()
    start = await last_event_id()
    for k in range(7):
        await place_bet(
            market_id=market.pk, user_id=BOB, outcome=k % 2, amount=5, idempotency_key=f"p{k}"
        )
    monkeypatch.setattr(consumers, "REPLAY_BATCH", 3)
    ws, replayed = await connect_and_replay(staff_cookie, start)
    assert len(replayed) == 7
    assert [m["id"] for m in replayed] == sorted(m["id"] for m in replayed)
    await ws.disconnect()

    monkeypatch.setattr(consumers, "REPLAY_MAX", 5)
    ws = communicator((b"cookie", staff_cookie), ORIGIN)
    assert (await ws.connect())[0]
    await ws.send_json_to({"type": "replay", "after": start})
    messages = [await ws.receive_json_from(timeout=5)]
    while messages[-1]["type"] == "market.event":
        messages.append(await ws.receive_json_from(timeout=5))
    # Past the cap the page is told to reload instead of being sent everything.
    assert messages[-1] == {"type": "stale", "after": start}
    assert len(messages) - 1 <= 5
    await ws.disconnect()


# --- Publishing never fails a trade ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_trade_succeeds_and_the_failure_is_counted_when_the_layer_is_unreachable(settings, market):
    # Nothing listens on this port: every publish fails at once.
    settings.CHANNEL_LAYERS = redis_layer(f"redis://127.0.0.1:{free_port()}/0")
    before = failures()
    trade = betting_services.bet_place(
        market_id=market.pk, user_id=BOB, outcome=1, amount=40, idempotency_key="down:1"
    )
    assert trade.pk and failures() == before + 1
    assert MarketEvent.objects.filter(request_key="down:1", type="trade").exists()


@pytest.mark.parametrize("fault", ["unreachable", "hanging"])
async def test_a_layer_outage_pauses_live_updates_within_the_timeout(settings, staff_cookie, fault):
    """Redis down (nothing listens) or hanging (a server that accepts and never answers): the
    socket is accepted, told "paused" and closed with 4503 within the layer timeout — no HTTP
    500, no hang (issue 12). The page then shows "Live updates paused" and reconnects."""
    with contextlib.ExitStack() as stack:
        if fault == "hanging":
            server = stack.enter_context(socket.socket())
            server.bind(("127.0.0.1", 0))
            server.listen(16)  # accepts connections, never answers
            port = server.getsockname()[1]
        else:
            port = free_port()
        settings.CHANNEL_LAYERS = redis_layer(f"redis://127.0.0.1:{port}/0")
        settings.DASHBOARD_LAYER_TIMEOUT = 0.5
        started = time.monotonic()
        ws = communicator((b"cookie", staff_cookie), ORIGIN)
        connected, _ = await ws.connect(timeout=5)
        assert connected
        assert (await ws.receive_json_from(timeout=5))["type"] == "paused"
        closed = await ws.receive_output(timeout=5)
        assert closed == {"type": "websocket.close", "code": consumers.CLOSE_PAUSED}
        assert time.monotonic() - started < 2.0


def test_a_hanging_layer_is_given_up_after_the_timeout(settings, market, monkeypatch):
    class HangingLayer:
        async def group_send(self, group, message):
            await asyncio.sleep(30)

    monkeypatch.setattr(realtime, "get_channel_layer", lambda: HangingLayer())
    settings.DASHBOARD_PUBLISH_TIMEOUT = 0.2
    before, started = failures(), time.monotonic()
    betting_services.bet_place(
        market_id=market.pk, user_id=BOB, outcome=0, amount=40, idempotency_key="hang:1"
    )
    assert time.monotonic() - started < 5
    assert failures() == before + 1


def test_nothing_is_published_when_the_transaction_rolls_back(settings, market, monkeypatch):
    sent = []
    monkeypatch.setattr(realtime, "event_publish", sent.append)
    with pytest.raises(RuntimeError), transaction.atomic():
        event = MarketEvent.objects.create(market=market, guild_id=GUILD, type="trade")
        realtime.event_publish_on_commit(event)
        raise RuntimeError("rolled back")
    assert sent == []
    betting_services.bet_place(
        market_id=market.pk, user_id=BOB, outcome=0, amount=5, idempotency_key="c"
    )
    assert [e.type for e in sent] == ["trade"]


@pytest.fixture
def own_redis():
    """A redis-server of this test's own on a free port, so the test can stop and restart it
    (the shared one on 6379 is never touched)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed")
    port = free_port()

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return proc
            except OSError:
                time.sleep(0.05)
        proc.kill()
        pytest.fail("redis-server did not start")

    server = {"proc": start()}

    def stop() -> None:
        server["proc"].terminate()
        server["proc"].wait(timeout=10)

    def restart() -> None:
        server["proc"] = start()

    yield {"url": f"redis://127.0.0.1:{port}/0", "stop": stop, "restart": restart}
    if server["proc"].poll() is None:
        stop()


@pytest.mark.redis
async def test_trade_succeeds_while_redis_is_stopped_and_the_page_catches_up(
    settings, own_redis, staff_cookie, market
):
    settings.CHANNEL_LAYERS = redis_layer(own_redis["url"])
    ws, _ = await connect_and_replay(staff_cookie, await last_event_id())
    await place_bet(market_id=market.pk, user_id=BOB, outcome=0, amount=20, idempotency_key="r1")
    seen = await ws.receive_json_from(timeout=5)
    assert seen["event"] == "trade"

    own_redis["stop"]()
    before = failures()
    trade = await place_bet(
        market_id=market.pk, user_id=CAROL, outcome=1, amount=60, idempotency_key="r2"
    )
    assert trade.pk and failures() == before + 1
    # The old socket's consumer lost its layer; whatever it does now, the page reconnects.
    with contextlib.suppress(Exception):  # its consumer may have died with the connection
        await ws.disconnect()

    own_redis["restart"]()
    # Like the page: reconnect with backoff until the server has its layer back (the first try
    # may meet a pooled connection that died with the old server).
    for attempt in range(6):
        try:
            ws, replayed = await connect_and_replay(staff_cookie, seen["id"])
            break
        except Exception:
            if attempt == 5:
                raise
            await asyncio.sleep(0.2 * 2**attempt)
    assert [m["payload"]["trade_id"] for m in replayed] == [trade.pk]
    await place_bet(market_id=market.pk, user_id=BOB, outcome=1, amount=5, idempotency_key="r3")
    assert (await ws.receive_json_from(timeout=5))["payload"]["amount"] == 5
    await ws.disconnect()


@pytest.mark.redis
async def test_redis_layer_delivers_events_published_outside_the_event_loop(
    settings, staff_cookie, market
):
    """Another process (the bot, a second web worker) publishes with no event loop of its own:
    a plain thread stands in for it here."""
    settings.CHANNEL_LAYERS = redis_layer(django_settings.REDIS_URL)
    ws, _ = await connect_and_replay(staff_cookie, await last_event_id())
    loop = asyncio.get_running_loop()

    def other_worker():
        try:
            return betting_services.bet_place(
                market_id=market.pk, user_id=BOB, outcome=0, amount=15, idempotency_key="w1"
            )
        finally:
            connection.close()

    trade = await loop.run_in_executor(None, other_worker)
    message = await ws.receive_json_from(timeout=5)
    assert message["payload"]["trade_id"] == trade.pk
    await ws.disconnect()


@pytest.mark.redis
async def test_an_idle_socket_outlives_the_blocking_receive_timeout(settings, staff_cookie, market):
    """channels-redis blocks 5 s per receive; with redis-py 8's default 5 s read timeout an idle
    consumer died with "Timeout reading" (found by bench/ws_latency.py). The shipped settings
    give reads more time, so a quiet dashboard stays connected."""
    settings.CHANNEL_LAYERS = redis_layer(django_settings.REDIS_URL)
    ws, _ = await connect_and_replay(staff_cookie, await last_event_id())
    await asyncio.sleep(7)
    await place_bet(market_id=market.pk, user_id=BOB, outcome=0, amount=5, idempotency_key="idle")
    message = await ws.receive_json_from(timeout=5)
    assert message["event"] == "trade" and message["payload"]["amount"] == 5
    await ws.disconnect()


# --- The communicator long-running drivers use ---------------------------------------------


async def test_the_live_communicator_leaves_django_connection_clean_up_on(staff_cookie):
    """channels' communicator switches `close_old_connections` off for the whole process while
    a socket waits (the soak's dead connection after the PostgreSQL restart); the live one, which
    bench/soak.py and tests/faults drive sockets with, leaves it on, as daphne does."""
    import channels.db
    import django.db

    from tests.dashboard.live import LiveWebsocketCommunicator

    for kind, switched_off in ((WebsocketCommunicator, True), (LiveWebsocketCommunicator, False)):
        ws = kind(
            application,
            "/ws/dashboard/",
            [(b"host", b"127.0.0.1"), (b"cookie", staff_cookie), ORIGIN],
        )
        connected, _ = await ws.connect()
        assert connected
        waiting = asyncio.ensure_future(ws.receive_json_from(timeout=30))
        await asyncio.sleep(0.05)
        assert (channels.db.close_old_connections is not django.db.close_old_connections) is (
            switched_off
        ), kind.__name__
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        await ws.disconnect()
    assert channels.db.close_old_connections is django.db.close_old_connections
