"""Rate limits of DOMAIN §7 through the shared cache: per member 10 requests and 5 trades a
minute, per guild 100 requests a minute and 10 new markets an hour; moderators exempt; the
refusal says when to try again and touches nothing else."""

from __future__ import annotations

import re

import pytest
from prometheus_client import REGISTRY

from betting.models import Trade
from discordbot import ratelimit
from markets.models import Market

from .conftest import db, make_market
from .harness import MESSAGE, Member

pytestmark = pytest.mark.django_db(transaction=True)


def retry_at(text: str) -> int:
    return int(re.search(r"<t:(\d+):R>", text).group(1))


async def test_the_eleventh_command_in_a_minute_is_refused_with_when_to_retry(
    harness, members, ratelimit_clock
):
    replies = [await harness.send(harness.command("balance", members.alice)) for _ in range(11)]

    assert all("1,000 points" in r.text for r in replies[:10])
    refused = replies[10]
    assert refused.response_type == MESSAGE and refused.ephemeral
    assert refused.text.startswith("You're going too fast: at most 10 commands a minute.")
    now = ratelimit_clock.now
    assert now < retry_at(refused.text) <= now + 60
    # At the time the refusal named, the member is answered again.
    ratelimit_clock.advance(retry_at(refused.text) - now)
    again = await harness.send(harness.command("balance", members.alice))
    assert "1,000 points" in again.text


def refusals(scope: str) -> float:
    return REGISTRY.get_sample_value("pm_bot_ratelimit_refusals_total", {"scope": scope}) or 0.0


async def test_the_sixth_trade_in_a_minute_is_refused_and_not_traded(harness, members):
    market = await make_market(harness, creator=members.alice.id)
    before = refusals("user_trades")
    replies = [
        await harness.send(
            harness.command(
                "bet", members.bob, confirm=False, market=str(market.id), outcome="1", amount=1
            )
        )
        for _ in range(6)
    ]

    assert "at most 5 trades a minute" in replies[5].text
    assert await db(harness, lambda: Trade.objects.count()) == 5
    assert refusals("user_trades") == before + 1


async def test_moderators_are_exempt(harness, members):
    replies = [await harness.send(harness.command("balance", members.mod)) for _ in range(12)]

    assert all("points" in r.text and "too fast" not in r.text for r in replies)


async def test_a_guild_opens_at_most_ten_markets_an_hour(harness, members):
    cast = [Member(500_000_000_000_000_000 + i, f"m{i}") for i in range(11)]
    replies = [
        await harness.send(
            harness.command("market create", m, question=f"Q{i}?", outcomes="Yes|No", duration="1h")
        )
        for i, m in enumerate(cast)
    ]

    assert "This server is going too fast: at most 10 new markets an hour" in replies[10].text
    assert await db(harness, lambda: Market.objects.count()) == 10


async def test_refused_creations_do_not_spend_the_servers_market_budget(harness, members):
    """Issue 23 item 1: one member's refused attempts (11 outcomes, a blank question, a
    duplicate) cost the server nothing; ten markets still open, the eleventh is refused; the
    member's own limit applies first."""
    h, alice = harness, members.alice
    eleven = "|".join(f"o{i}" for i in range(11))

    async def create(who: Member, question: str, outcomes: str = "Yes|No", duration: str = "1h"):
        return await h.send(
            h.command("market create", who, question=question, outcomes=outcomes, duration=duration)
        )

    refused = [
        await create(alice, "Q?", eleven),
        await create(alice, " "),
        await create(alice, "Q?", "Yes|Yes"),
        await create(alice, "Q?", duration="0m"),
    ]
    assert all("too fast" not in r.text for r in refused), [r.text for r in refused]
    assert await db(h, lambda: Market.objects.count()) == 0

    cast = [Member(500_000_000_000_000_000 + i, f"m{i}") for i in range(11)]
    created = [await create(m, f"Q{i}?") for i, m in enumerate(cast)]

    assert await db(h, lambda: Market.objects.count()) == 10
    assert all("too fast" not in r.text for r in created[:10])
    assert "This server is going too fast: at most 10 new markets an hour" in created[10].text
    # The member's own budget (10 commands a minute) comes first: alice's 11th request is refused
    # as hers, not the server's.
    more = [await h.send(h.command("balance", alice)) for _ in range(7)]
    assert "You're going too fast: at most 10 commands a minute" in more[-1].text


async def test_fifteen_creations_at_once_open_exactly_ten_markets(harness, members):
    """Issue 23 item 1's race: fifteen valid creations fed at once into a server allowed ten an
    hour. Each reserves its slot in one atomic cache step before creating, so no two can both
    take the tenth: exactly ten markets, five refusals."""
    cast = [Member(520_000_000_000_000_000 + i, f"c{i}") for i in range(15)]
    replies = await harness.send_many(
        [
            harness.command(
                "market create", m, question=f"Rush {i}?", outcomes="Yes|No", duration="1h"
            )
            for i, m in enumerate(cast)
        ]
    )

    assert await db(harness, lambda: Market.objects.count()) == 10
    refused = [r for r in replies if "at most 10 new markets an hour" in r.text]
    assert len(refused) == 5, [r.text for r in replies]


def test_concurrent_reservations_take_exactly_the_budget_and_refusals_give_it_back(ratelimit_clock):
    """Fifteen threads reserve a slot of the ten-an-hour budget at once (in the cache the
    settings name: Redis when REDIS_URL is set, else the in-process cache): ten get one. A
    released slot is free again; the refused five took nothing."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    rule = ratelimit.GUILD_MARKETS
    start = Barrier(15)

    def take(i: int):
        start.wait()
        return ratelimit.reserve(guild_id=9_009, user_id=100 + i, rule=rule)

    with ThreadPoolExecutor(15) as pool:
        taken = list(pool.map(take, range(15)))

    held = [t for t in taken if isinstance(t, ratelimit.Reservation)]
    assert len(held) == 10
    assert all(isinstance(t, ratelimit.Limited) for t in taken if t not in held)
    assert isinstance(ratelimit.reserve(guild_id=9_009, user_id=1, rule=rule), ratelimit.Limited)
    ratelimit.release(held[0])
    again = ratelimit.reserve(guild_id=9_009, user_id=1, rule=rule)
    assert isinstance(again, ratelimit.Reservation)
    assert isinstance(ratelimit.reserve(guild_id=9_009, user_id=1, rule=rule), ratelimit.Limited)


def test_guild_requests_share_one_budget_of_100_a_minute(ratelimit_clock):
    results = [
        ratelimit.check(guild_id=1, user_id=1000 + i, rules=ratelimit.REQUEST) for i in range(101)
    ]
    assert results[:100] == [None] * 100
    assert results[100].rule is ratelimit.GUILD_REQUESTS
    # The next window starts fresh.
    ratelimit_clock.advance(60)
    assert ratelimit.check(guild_id=1, user_id=1, rules=ratelimit.REQUEST) is None


def test_a_guild_can_raise_its_own_budget_of_commands_a_minute(ratelimit_clock):
    rules = ratelimit.with_guild_limit(ratelimit.REQUEST, 150)
    results = [ratelimit.check(guild_id=2, user_id=2000 + i, rules=rules) for i in range(151)]
    assert results[:150] == [None] * 150
    assert "at most 150 commands a minute" in results[150].message
    assert ratelimit.with_guild_limit(ratelimit.TRADE, 100) == ratelimit.TRADE


async def test_the_guild_setting_decides_the_limit_a_rush_meets(harness, members):
    await harness.send(
        harness.command("settings set", members.mod, setting="requests_per_minute", value=105)
    )
    cast = [Member(510_000_000_000_000_000 + i, f"r{i}") for i in range(106)]
    replies = [await harness.send(harness.command("balance", m)) for m in cast]
    assert ["too fast" in r.text for r in replies] == [False] * 105 + [True]
    assert "at most 105 commands a minute" in replies[-1].text


@pytest.mark.parametrize("rule", [ratelimit.USER_TRADES, ratelimit.GUILD_MARKETS])
def test_the_refusal_names_the_first_second_the_budget_is_back(ratelimit_clock, rule):
    for _ in range(rule.limit):
        assert ratelimit.check(guild_id=7, user_id=8, rules=[rule]) is None
    limited = ratelimit.check(guild_id=7, user_id=8, rules=[rule])
    assert limited.rule is rule
    assert ratelimit_clock.now < limited.retry_at <= ratelimit_clock.now + rule.period

    ratelimit_clock.advance(limited.retry_at - 1 - ratelimit_clock.now)
    assert ratelimit.check(guild_id=7, user_id=8, rules=[rule]).retry_at == limited.retry_at
    ratelimit_clock.advance(1)
    assert ratelimit.check(guild_id=7, user_id=8, rules=[rule]) is None


def test_members_and_guilds_have_their_own_budgets():
    for _ in range(ratelimit.USER_TRADES.limit):
        ratelimit.check(guild_id=1, user_id=1, rules=ratelimit.TRADE)
    assert ratelimit.check(guild_id=1, user_id=1, rules=ratelimit.TRADE) is not None
    assert ratelimit.check(guild_id=1, user_id=2, rules=ratelimit.TRADE) is None
    # A member's budget follows them across guilds (DOMAIN §7 counts per user).
    assert ratelimit.check(guild_id=2, user_id=1, rules=ratelimit.TRADE) is not None


@pytest.mark.parametrize("swallowed", [True, False], ids=["cache-swallows", "cache-raises"])
def test_a_cache_outage_opens_the_limits(settings, swallowed):
    """A real Redis client pointed at a port nobody listens on, configured both ways a cache can
    report the outage: swallowing it (production's IGNORE_EXCEPTIONS) or raising it."""
    settings.CACHES = {
        **settings.CACHES,
        "down": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "IGNORE_EXCEPTIONS": swallowed},
        },
    }
    settings.RATELIMIT_USE_CACHE = "down"
    assert all(
        ratelimit.check(guild_id=1, user_id=1, rules=ratelimit.TRADE) is None for _ in range(20)
    )
