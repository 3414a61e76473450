"""Notifications as a delivery queue (DOMAIN §6): a settlement of 1,000 traders against a Discord
that rate-limits (429s), refuses DMs opened too fast (40003), fails now and then (503) and has
members with closed DMs (50007) — every DM arrives exactly once or is skipped for 50007, an
announcement made meanwhile is not held up, and a restart mid-way resumes without repeats."""

from __future__ import annotations

import asyncio
import time

import pytest

from betting.services import bet_place
from discordbot.models import NotificationDelivery

from .conftest import make_market
from .fake_discord import ROUTE_LIMITS, FakeDiscord
from .harness import ANNOUNCE_CHANNEL, Harness, message_text
from .test_notifier import announce_in, close, notifier, resolve

pytestmark = pytest.mark.django_db(transaction=True)

TRADERS = 1_000
FIRST_TRADER = 700_000_000_000_000_000
DM_INTERVAL = 0.015
"""DM pacing for the test: a DM to a new member is two requests, so at most ~133 requests a
second, under the fake's global limit (200/s here; Discord's is 50/s, which production's
DISCORD_DM_INTERVAL of 0.5 s keeps well below)."""


def bets_place(market_id: int, users: list[int]) -> None:
    for user in users:
        bet_place(
            market_id=market_id,
            user_id=user,
            outcome=user % 2,
            amount=10,
            idempotency_key=f"test:bulk:{market_id}:{user}",
        )


def rows_by_status() -> dict[str, int]:
    out: dict[str, int] = {}
    for status in NotificationDelivery.objects.values_list("status", flat=True):
        out[status] = out.get(status, 0) + 1
    return out


async def wait_for(h: Harness, check, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await h.bot.db(check):
        assert time.monotonic() < deadline, f"timed out; queue: {await h.bot.db(rows_by_status)}"
        await asyncio.sleep(0.2)


async def test_a_settlement_of_1000_traders_delivers_every_dm_once(members, capsys):
    fake = FakeDiscord(
        route_limits={**ROUTE_LIMITS, ("POST", "/users/@me/channels"): (100, 1.0)},
        global_limit=200,
    )
    # Discord's DM anti-spam: after 300 new DM channels it refuses more (40003) until the test
    # lifts it (a fixed point rather than a rate, so the test does not depend on machine speed).
    fake.anti_spam(300, 3600.0)
    h = await Harness.start(fake=fake, dm_interval=DM_INTERVAL)
    traders = [FIRST_TRADER + i for i in range(TRADERS)]
    closed = set(traders[::97])
    try:
        await announce_in(h)
        market = await make_market(h, creator=members.alice.id, question="Big settlement?")
        await h.bot.db(bets_place, market_id=market.id, users=traders)
        await close(h, market.id)
        await resolve(h, market.id, 0)
        fake.closed_dms.update(closed)
        # Discord slowing us down and failing: 429s discord.py waits out (with `Via`), 429s it
        # hands back (without), 5xx on DM sends.
        fake.fail(
            "POST",
            r"^/channels/\d+/messages$",
            429,
            {"message": "You are being rate limited.", "retry_after": 0.2, "global": False},
            times=5,
            headers={"Retry-After": "1", "Via": "1.1 google", "X-RateLimit-Scope": "user"},
        )
        fake.fail(
            "POST",
            r"^/users/@me/channels$",
            429,
            {"message": "You are being rate limited.", "retry_after": 0.5, "global": False},
            times=3,
            headers={"Retry-After": "1"},
        )
        fake.fail("POST", r"^/channels/\d+/messages$", 503, {"message": "busy", "code": 0}, times=5)

        started = time.monotonic()
        n = notifier(h)
        while await n.plan_once():
            pass
        n.start()

        def dms_sent(at_least: int):
            return lambda: (
                NotificationDelivery.objects.filter(lane="dm", status="sent").count() >= at_least
            )

        def refused_too_fast() -> list:
            with fake.lock:
                return [r for r in fake.requests if r.status == 403 and "40003" in str(r.response)]

        reached = await asyncio.to_thread(fake.wait_for, lambda: bool(refused_too_fast()), 120)
        assert reached, "the anti-spam limit was never reached"
        # An announcement while the DM lane is paused: its own lane, not behind the DMs.
        await make_market(h, creator=members.bob.id, question="Announced meanwhile?")
        planned_at = time.monotonic()
        while await n.plan_once():
            pass

        def announced() -> bool:
            return any("Announced meanwhile?" in message_text(m) for m in posts())

        def posts() -> list[dict]:
            return fake.channel_posts(ANNOUNCE_CHANNEL)

        assert await asyncio.to_thread(fake.wait_for, announced, 3.0), (
            "the announcement waited behind DMs"
        )
        announce_delay = time.monotonic() - planned_at
        await asyncio.sleep(2.0)
        with fake.lock:
            fake.dm_spam = None  # Discord lets DMs through again

        await wait_for(h, dms_sent(600), timeout=120)
        # A restart in the middle: the new process resumes from the queue.
        h = await h.restart(dm_interval=DM_INTERVAL)
        n = notifier(h)
        while await n.plan_once():
            pass
        n.start()

        def finished() -> bool:
            return not NotificationDelivery.objects.filter(status="pending").exists()

        await wait_for(h, finished, timeout=300)
        elapsed = time.monotonic() - started

        counts = [len(fake.dms(u)) for u in traders]
        assert {counts[i] for i, u in enumerate(traders) if u not in closed} == {1}
        assert all(counts[i] == 0 for i, u in enumerate(traders) if u in closed)
        statuses = await h.bot.db(rows_by_status)
        # 1,000 DMs + the settlement summary + two announcements; the creator's "has closed"
        # DM is skipped as stale: the market was resolved before it went out (issue 23).
        assert statuses == {"sent": TRADERS - len(closed) + 3, "skipped": len(closed) + 1}
        text = [message_text(m) for m in fake.channel_posts(ANNOUNCE_CHANNEL)]
        assert sum("🏆 Resolved" in t for t in text) == 1
        assert sum("Announced meanwhile?" in t and "New market" in t for t in text) == 1
        too_fast = refused_too_fast()
        with capsys.disabled():
            print(
                f"\n{TRADERS} settlement DMs ({len(closed)} closed) delivered in {elapsed:.1f} s "
                f"with a restart, {len(too_fast)} × 40003; announcement posted "
                f"{announce_delay:.2f} s after it was planned"
            )
        fake.assert_invalid_within(len(too_fast) + len(closed))
    finally:
        await h.close()
