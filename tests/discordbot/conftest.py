"""Fixtures for the bot tests: a fake Discord, a bot logged in against it, and the cast."""

from __future__ import annotations

import uuid

import pytest

from .fake_discord import FakeDiscord
from .harness import Harness, Members


@pytest.fixture
def members() -> Members:
    return Members()


class RateLimitClock:
    """django-ratelimit's clock (`django_ratelimit.core.time`), stopped at a fixed instant and
    moved only by `advance`: limits count in fixed windows, so a test never straddles a window
    boundary by accident and never waits for one to pass."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def ratelimit_clock(settings, monkeypatch) -> RateLimitClock:
    """Each test counts rate limits in its own namespace (the cache may be a shared Redis) on a
    clock it controls."""
    settings.DISCORD_RATELIMIT_NAMESPACE = uuid.uuid4().hex
    clock = RateLimitClock(1_800_000_000.0)
    monkeypatch.setattr("django_ratelimit.core.time", clock)
    return clock


@pytest.fixture
def invalid_budget(request) -> int:
    """How many 401/403/429 responses the test may cause (Discord bans a bot past 10,000 in 10
    minutes, so the default is none; `@pytest.mark.discord_invalid_budget(n)` raises it)."""
    marker = request.node.get_closest_marker("discord_invalid_budget")
    return int(marker.args[0]) if marker else 0


@pytest.fixture
def discord_patience(request) -> float | None:
    """`@pytest.mark.discord_patience(s)`: Discord's deadline for an interaction's first answer
    (3 s) and the bot's answer budget (8 s) both stretched to `s`, for a test about something
    else — the database round trips of a 200-member burst — that a loaded machine would
    otherwise fail on time alone (the deadline under a burst is bench/discord_burst.py's to
    measure, the budget's "still working" answer tests/faults')."""
    marker = request.node.get_closest_marker("discord_patience")
    return float(marker.args[0]) if marker else None


@pytest.fixture
async def harness(invalid_budget, discord_patience):
    """A bot logged in against a fresh fake Discord; cogs loaded, no background loops. The test
    fails if it caused more 401/403/429 answers than its budget."""
    if discord_patience is None:
        h = await Harness.start()
    else:
        fake = FakeDiscord(deadline=discord_patience)
        h = await Harness.start(fake=fake, answer_budget=discord_patience)
    try:
        yield h
    finally:
        await h.close()
    h.fake.assert_invalid_within(invalid_budget)


async def db(harness: Harness, func, /, **kwargs):
    """Run a service or selector in the bot's database thread (tests never touch the ORM from
    the event loop, like the bot)."""
    return await harness.bot.db(func, **kwargs)


async def make_market(
    harness: Harness,
    *,
    creator: int,
    question: str = "Will it rain tomorrow?",
    outcomes: tuple[str, ...] = ("Yes", "No"),
    duration: str = "1d",
    mechanism: str = "amm",
    category: str | None = None,
    guild_id: int | None = None,
    key: str | None = None,
):
    """A market created through the real service (not the bot), returning its summary."""
    from markets.selectors import market_get
    from markets.services import market_create

    market = await db(
        harness,
        market_create,
        guild_id=guild_id or harness.guild_id,
        creator_id=creator,
        question=question,
        outcomes=list(outcomes),
        duration=duration,
        mechanism=mechanism,
        category=category,
        idempotency_key=key or f"test:{uuid.uuid4().hex}",
    )
    return await db(harness, market_get, market_id=market.pk)
