"""Rate limits of DOMAIN §7 through the shared cache: per member 10 requests and 5 trades a
minute, per guild 100 requests a minute and 10 new markets an hour; moderators exempt; the
refusal says when to try again and touches nothing else."""

from __future__ import annotations

import re
import time

import pytest

from betting.models import Trade
from discordbot import ratelimit
from markets.models import Market

from .conftest import db, make_market
from .harness import MESSAGE, Member

pytestmark = pytest.mark.django_db(transaction=True)


def retry_at(text: str) -> int:
    return int(re.search(r"<t:(\d+):R>", text).group(1))


async def test_the_eleventh_command_in_a_minute_is_refused_with_when_to_retry(harness, members):
    replies = [await harness.send(harness.command("balance", members.alice)) for _ in range(11)]

    assert all("1,000 points" in r.text for r in replies[:10])
    refused = replies[10]
    assert refused.response_type == MESSAGE and refused.ephemeral
    assert refused.text.startswith("You're going too fast: at most 10 commands a minute.")
    assert time.time() < retry_at(refused.text) <= time.time() + 61


async def test_the_sixth_trade_in_a_minute_is_refused_and_not_traded(harness, members):
    market = await make_market(harness, creator=members.alice.id)
    replies = [
        await harness.send(
            harness.command("bet", members.bob, market=str(market.id), outcome="1", amount=1)
        )
        for _ in range(6)
    ]

    assert "at most 5 trades a minute" in replies[5].text
    assert await db(harness, lambda: Trade.objects.count()) == 5


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


def test_guild_requests_share_one_budget_of_100_a_minute(settings):
    settings.DISCORD_RATELIMIT_NAMESPACE = "guild-budget"
    now = 1_800_000_000.0
    results = [
        ratelimit.check(guild_id=1, user_id=1000 + i, rules=ratelimit.REQUEST, now=now)
        for i in range(101)
    ]
    assert results[:100] == [None] * 100
    assert results[100].rule is ratelimit.GUILD_REQUESTS
    # The next window starts fresh.
    assert ratelimit.check(guild_id=1, user_id=1, rules=ratelimit.REQUEST, now=now + 60) is None


def test_a_cache_outage_opens_the_limits(settings, monkeypatch):
    settings.DISCORD_RATELIMIT_NAMESPACE = "outage"

    def down(*args, **kwargs):
        raise ConnectionError("redis down")

    monkeypatch.setattr(ratelimit.cache, "incr", down)
    assert all(
        ratelimit.check(guild_id=1, user_id=1, rules=ratelimit.TRADE) is None for _ in range(20)
    )
