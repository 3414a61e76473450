"""A real browser on the live dashboard (issue 6): Debian's Chromium driven by Playwright against a
real daphne server (HTTP + WebSockets) running this project's ASGI app on the test database.

The server runs in a thread of this process, so it shares the test database (even SQLite's
in-memory one) and, without Redis, the in-memory channel layer. Bets are placed through the
services on the server's event loop, exactly as the in-process Discord bot places them; with
`REDIS_URL` set the layer is channels-redis and the path is the multi-process one.

Screenshots (wide and phone-width) go to `test-results/` (gitignored).
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
from channels.db import database_sync_to_async
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.test import override_settings

from betting import services as betting_services
from dashboard.views import percent
from markets import realtime, selectors, services
from markets.models import MarketEvent
from points.rules import Actor
from points.services import guild_settings_get_or_create
from tests.admin_helpers import groups_ensure
from tests.conftest import ALICE, BOB, CAROL, GUILD, MOD

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
OUTPUT = Path(django_settings.BASE_DIR) / "test-results"
PASSWORD = "a-long-staff-password-1"
DANA, ERIN = 222_222_222_222_222_210, 222_222_222_222_222_211  # fresh wallets for live bets

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def daphne_server():
    """One daphne for the session (a Twisted reactor cannot be restarted in a process)."""
    from channels.routing import ProtocolTypeRouter
    from daphne.endpoints import build_endpoint_description_strings
    from daphne.server import Server
    from django.core.asgi import get_asgi_application
    from twisted.internet import reactor

    from config.asgi import application as configured

    # Plain HTTP on 127.0.0.1: the security middleware reads these when it is built, so the HTTP
    # handler is built afresh under them; the WebSocket stack is config.asgi's own.
    plain_http = override_settings(
        SECURE_SSL_REDIRECT=False, SESSION_COOKIE_SECURE=False, CSRF_COOKIE_SECURE=False
    )
    plain_http.enable()
    application = ProtocolTypeRouter(
        {
            "http": get_asgi_application(),
            "websocket": configured.application_mapping["websocket"],
        }
    )
    port = _free_port()
    server = Server(
        application=application,
        endpoints=build_endpoint_description_strings(host="127.0.0.1", port=port),
        signal_handlers=False,
    )
    thread = threading.Thread(target=server.run, name="daphne", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline or not thread.is_alive():
                pytest.fail("daphne did not start")
            time.sleep(0.05)
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}", loop=reactor._asyncioEventloop)
    reactor.callFromThread(reactor.stop)
    thread.join(timeout=10)
    plain_http.disable()


@pytest.fixture
def live(daphne_server, settings):
    """The server, with (under Redis) the channel layer as config/settings.py builds it (its
    read timeout above channels-redis' 5 s blocking receive: with redis-py's default 5 s a
    consumer waiting for its first message died with "Timeout reading" and the page never
    showed "connected" on a loaded machine) and a prefix of this test's own."""
    if django_settings.REDIS_URL:
        shipped = django_settings.CHANNEL_LAYERS["default"]
        settings.CHANNEL_LAYERS = {
            "default": {
                **shipped,
                "CONFIG": {**shipped["CONFIG"], "prefix": f"pmtest{uuid.uuid4().hex[:10]}"},
            }
        }
    return daphne_server


def db(func, /, *args, **kwargs):
    """Run ORM code in a worker thread: Playwright's sync API keeps an event loop running in
    the test's thread, where Django refuses synchronous queries."""

    def call():
        try:
            return func(*args, **kwargs)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call).result(timeout=60)


def on_server(live, func, /, **kwargs):
    """Run a service on the server's event loop (as the in-process bot does) and wait."""
    future = asyncio.run_coroutine_threadsafe(database_sync_to_async(func)(**kwargs), live.loop)
    return future.result(timeout=30)


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def log_in(page, live) -> None:
    page.goto(f"{live.url}/admin/login/?next=/dashboard/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(r".*/dashboard/$"))
    page.wait_for_selector("#connection[data-state=connected]", timeout=10_000)
    # Under Redis every process's events arrive; the in-memory layer says it reaches only this one.
    expected = "Live" if django_settings.REDIS_URL else "Live (this process only)"
    assert page.locator("#connection .connection-text").inner_text() == expected


def pct_locator(page, market_id: int, outcome: int):
    return page.locator(f'#market-{market_id} [data-outcome="{outcome}"] [data-pct]').first


def wait_for_text(locator, expected: str, timeout: float) -> float:
    """Seconds until `locator` shows `expected`; fails after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if locator.text_content() == expected:
            return time.monotonic() - started
        time.sleep(0.02)
    pytest.fail(f"page still shows {locator.text_content()!r}, expected {expected!r}")


def seed() -> tuple[int, int]:
    """A staff login and three markets: a fresh one, a busy ten-outcome one, a closed one."""
    staff = get_user_model().objects.create_user("staff", password=PASSWORD, is_staff=True)
    groups_ensure()
    staff.groups.add(Group.objects.get(name="Viewers"))
    market = services.market_create(
        guild_id=GUILD,
        creator_id=ALICE,
        question="Will the new bridge open before the summer festival?",
        outcomes=["Yes", "No", "Only the footpath"],
        duration="3d",
        category="city",
        idempotency_key="browser:m1",
    )
    busy = services.market_create(
        guild_id=GUILD,
        creator_id=ALICE,
        question="Which map wins the next tournament vote?",
        outcomes=[
            "Dust",
            "Mirage",
            "Inferno",
            "Nuke",
            "Ancient",
            "Anubis",
            "Vertigo",
            "Overpass",
            "Train",
            "Office",
        ],
        duration="2d",
        category="gaming",
        idempotency_key="browser:m2",
    )
    for k in range(60):
        betting_services.bet_place(
            market_id=busy.pk,
            user_id=[BOB, CAROL][k % 2],
            outcome=(k * 7) % 10,
            amount=5 + (k * 13) % 40,
            idempotency_key=f"browser:b{k}",
        )
    closed = services.market_create(
        guild_id=GUILD,
        creator_id=ALICE,
        question="Did the charity stream reach its goal?",
        outcomes=["Yes", "No"],
        duration="1d",
        idempotency_key="browser:m3",
    )
    services.market_close(
        market_id=closed.pk, idempotency_key="browser:c3", actor=Actor.member(ALICE)
    )
    return market.pk, busy.pk


def probability_text(market_id: int, outcome: int) -> str:
    return percent(db(selectors.market_get, market_id=market_id).outcomes[outcome].probability)


def test_staff_sees_a_bet_move_the_probability_live(live, browser):
    OUTPUT.mkdir(exist_ok=True)
    market_id, busy_id = db(seed)
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    log_in(page, live)
    yes = pct_locator(page, market_id, 0)
    assert yes.text_content() == "33.3%"

    # A bet placed through the services shows up on the page within 2 seconds.
    on_server(
        live,
        betting_services.bet_place,
        market_id=market_id,
        user_id=DANA,
        outcome=0,
        amount=300,
        idempotency_key="browser:live1",
    )
    expected = probability_text(market_id, 0)
    assert expected != "33.3%"
    elapsed = wait_for_text(yes, expected, timeout=2.0)
    assert elapsed < 2.0
    card = page.locator(f"#market-{market_id}")
    assert card.locator("[data-volume]").text_content() == "300"
    assert card.locator("[data-trades]").text_content() == "1"
    assert "bought 300 pts on “Yes”" in page.locator("#feed li").first.text_content()

    # A dropped connection misses nothing: the page replays the outbox when it reconnects.
    page.evaluate("dashboardState.attempt = 3; dashboardState.socket.close()")
    page.wait_for_selector("#connection[data-state=reconnecting]", timeout=2_000)
    on_server(
        live,
        betting_services.bet_place,
        market_id=market_id,
        user_id=ERIN,
        outcome=2,
        amount=500,
        idempotency_key="browser:missed",
    )
    expected_footpath = probability_text(market_id, 2)
    wait_for_text(pct_locator(page, market_id, 2), expected_footpath, timeout=8.0)
    page.wait_for_selector("#connection[data-state=connected]", timeout=8_000)
    missed = db(MarketEvent.objects.get, request_key="browser:missed")
    assert page.locator(f'#feed li[data-event-id="{missed.pk}"]').count() == 1

    # A status change re-renders the card into its new section.
    on_server(
        live,
        services.market_close,
        market_id=market_id,
        actor=Actor.member(ALICE),
        idempotency_key="browser:close",
    )
    page.wait_for_selector(f"#section-closed #market-{market_id}", timeout=3_000)
    assert page.locator(f"#section-open #market-{market_id}").count() == 0

    page.screenshot(path=str(OUTPUT / "dashboard.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(OUTPUT / "dashboard-narrow.png"), full_page=False)
    page.screenshot(path=str(OUTPUT / "dashboard-narrow-full.png"), full_page=True)
    # Nothing is wider than a phone screen (tables scroll inside their own region).
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    # The market page: probabilities, chart and trade table follow a live bet.
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto(f"{live.url}/dashboard/markets/{busy_id}/")
    page.wait_for_selector("#connection[data-state=connected]", timeout=10_000)
    assert page.locator(".chart-wide polyline").count() == 10
    assert "60 trades" in page.locator(".chart-wide desc").text_content()
    on_server(
        live,
        betting_services.bet_place,
        market_id=busy_id,
        user_id=DANA,
        outcome=3,
        amount=250,
        idempotency_key="browser:live2",
    )
    nuke = probability_text(busy_id, 3)
    wait_for_text(page.locator('#market-panel [data-outcome="3"] [data-pct]'), nuke, timeout=2.0)
    assert (
        page.locator("#trades-body tr").first.locator('[data-label="Points"]').text_content()
        == "250"
    )
    page.wait_for_function(
        "document.querySelector('.chart-wide desc').textContent.includes('61 trades')",
        timeout=5_000,
    )
    # Keyboard: the legend highlights one line.
    page.locator('.legend-item[data-highlight="3"]').focus()
    page.keyboard.press("Enter")
    assert page.locator("#chart").get_attribute("data-highlight") == "3"
    page.screenshot(path=str(OUTPUT / "dashboard-market.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(OUTPUT / "dashboard-market-narrow.png"), full_page=False)
    page.screenshot(path=str(OUTPUT / "dashboard-market-narrow-full.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.locator(".chart-compact svg").is_visible()
    assert not page.locator(".chart-wide svg").is_visible()


def seed_proposal() -> int:
    """A staff login and a closed market with trades, in a guild with a 60-minute dispute
    window (docs/domain.md §6.1)."""
    staff = get_user_model().objects.create_user("staff", password=PASSWORD, is_staff=True)
    groups_ensure()
    staff.groups.add(Group.objects.get(name="Viewers"))
    gs = guild_settings_get_or_create(guild_id=GUILD)
    gs.dispute_window_minutes = 60
    gs.save()
    market = services.market_create(
        guild_id=GUILD,
        creator_id=ALICE,
        question="Did the rocket reach orbit?",
        outcomes=["Yes", "No"],
        duration="1d",
        idempotency_key="browser:p1",
    )
    for key, user, outcome in (("pa", BOB, 0), ("pb", CAROL, 1)):
        betting_services.bet_place(
            market_id=market.pk,
            user_id=user,
            outcome=outcome,
            amount=50,
            idempotency_key=f"browser:{key}",
        )
    services.market_close(
        market_id=market.pk, idempotency_key="browser:pc", actor=Actor.member(ALICE)
    )
    return market.pk


def test_a_proposal_and_a_dispute_move_the_tile_live_and_unknown_events_do_not_break_it(
    live, browser
):
    market_id = db(seed_proposal)
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    log_in(page, live)
    page.wait_for_selector(f"#section-closed #market-{market_id}")
    moderator = Actor.member(MOD, manage_guild=True)

    on_server(
        live,
        services.market_propose,
        market_id=market_id,
        outcome=0,
        actor=moderator,
        reason="Telemetry says so",
        idempotency_key="browser:propose",
    )
    tile = f"#section-resolving #market-{market_id}"
    page.wait_for_selector(tile, timeout=3_000)
    assert "Result proposed: “Yes” — pays out in" in page.locator(tile).inner_text()

    # An event type this page was not written for: a feed line, nothing else breaks.
    future = MarketEvent(
        pk=2_000_000_000, market_id=market_id, guild_id=GUILD, type="a_type_from_the_future"
    )
    on_server(live, realtime.event_publish, event=future)
    page.wait_for_selector('#feed li[data-event-id="2000000000"]', timeout=3_000)
    assert "a_type_from_the_future" in page.locator("#feed li").first.inner_text()

    on_server(
        live,
        services.market_dispute,
        market_id=market_id,
        actor=Actor.member(CAROL),
        reason="It fell back",
        idempotency_key="browser:dispute",
    )
    page.wait_for_function(
        f"document.querySelector('#market-{market_id}').innerText"
        ".includes('Disputed: held for moderators')",
        timeout=3_000,
    )
    # The tile and the feed line arrive as two messages: wait for the line, not just the tile.
    page.wait_for_function(
        "document.querySelector('#feed li').innerText.includes('held for moderators')",
        timeout=3_000,
    )
    assert "disputed “Yes”: held for moderators" in page.locator("#feed li").first.inner_text()
    page.screenshot(path=str(OUTPUT / "dashboard-disputed.png"), full_page=True)

    on_server(
        live,
        services.market_proposal_undo,
        market_id=market_id,
        actor=moderator,
        reason="Waiting for the official statement",
        idempotency_key="browser:undo",
    )
    page.wait_for_selector(f"#section-closed #market-{market_id}", timeout=3_000)
    assert page.locator(f"#section-resolving #market-{market_id}").count() == 0


def test_the_dashboard_refuses_anonymous_visitors_and_their_sockets(live, browser):
    page = browser.new_page()
    page.goto(f"{live.url}/dashboard/")
    assert "/admin/login/" in page.url
    # The socket is refused too: the server closes the handshake for an anonymous user.
    result = page.evaluate(
        """() => new Promise((resolve) => {
            const ws = new WebSocket(`ws://${location.host}/ws/dashboard/`);
            ws.onopen = () => resolve("open");
            ws.onclose = () => resolve("closed");
        })"""
    )
    assert result == "closed"
