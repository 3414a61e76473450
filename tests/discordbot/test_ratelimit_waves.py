"""Rate limits counted by the wave (issue 21): the interactions checking at the same time share
one pipelined Redis round trip, counted in the very counters `ratelimit.check` uses, with the
same answers as one check after the other."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from discordbot import ratelimit
from discordbot.ratelimit import GUILD_REQUESTS, USER_REQUESTS, USER_TRADES, Pipelined

pytestmark = pytest.mark.redis

GUILD = 900_000_000_000_000_123
MEMBER = 900_000_000_000_000_456
OTHER = 900_000_000_000_000_789


@pytest.fixture
def fresh_budgets(settings):
    settings.DISCORD_RATELIMIT_NAMESPACE = f"waves-{uuid.uuid4().hex[:10]}"


def answers(results):
    return [None if r is None else (r.rule.bucket, r.rule.scope, r.retry_at) for r in results]


@pytest.mark.usefixtures("fresh_budgets")
def test_a_wave_answers_as_checks_one_after_the_other_in_the_same_counters(settings):
    rules = (USER_REQUESTS, GUILD_REQUESTS, USER_TRADES)
    asks = [(GUILD, MEMBER, rules)] * 7 + [(GUILD, OTHER, rules)]
    wave = answers(ratelimit.check_many(asks=asks))
    namespace = settings.DISCORD_RATELIMIT_NAMESPACE
    settings.DISCORD_RATELIMIT_NAMESPACE += "-one-by-one"  # fresh counters
    one_by_one = answers([ratelimit.check(guild_id=g, user_id=u, rules=r) for g, u, r in asks])
    # (retry_at differs with the key: each key's window has its own offset)
    assert [w and w[:2] for w in wave] == [o and o[:2] for o in one_by_one]
    assert wave[:5] == [None] * 5 and wave[7] is None  # the other member is not limited
    assert [w[:2] for w in wave[5:7]] == [("trades", "user")] * 2  # 5 trades a minute
    settings.DISCORD_RATELIMIT_NAMESPACE = namespace
    again = ratelimit.check(guild_id=GUILD, user_id=MEMBER, rules=(USER_TRADES,))
    assert again is not None and again.retry_at == wave[5][2]  # the same key, the same window
    # The same counters: the next single check sees the wave's uses.
    after = ratelimit.check(guild_id=GUILD, user_id=OTHER, rules=rules)
    assert after is None
    for _ in range(4):
        ratelimit.check(guild_id=GUILD, user_id=OTHER, rules=(USER_TRADES,))
    limited = ratelimit.check(guild_id=GUILD, user_id=OTHER, rules=(USER_TRADES,))
    assert limited is not None and limited.rule == USER_TRADES


@pytest.mark.usefixtures("fresh_budgets")
async def test_interactions_checking_at_once_share_one_round_trip():
    waves: list[int] = []

    async def run(func, /, **kwargs):
        waves.append(len(kwargs["asks"]))
        return await asyncio.get_running_loop().run_in_executor(None, lambda: func(**kwargs))

    pipelined = Pipelined(run)
    members = [MEMBER + k for k in range(40)]
    got = await asyncio.gather(
        *[
            pipelined.check(guild_id=GUILD, user_id=m, rules=(USER_REQUESTS, GUILD_REQUESTS))
            for m in members
        ]
    )
    assert waves == [40]
    assert got == [None] * 40
    # Over the guild's 100 a minute: the 61st to 100th... 101st on are refused, in one wave.
    more = await asyncio.gather(
        *[
            pipelined.check(guild_id=GUILD, user_id=m, rules=(USER_REQUESTS, GUILD_REQUESTS))
            for m in members + members
        ]
    )
    assert waves == [40, 80]
    refused = [r for r in more if r is not None]
    assert len(refused) == 20 and {r.rule.scope for r in refused} == {"guild"}


@pytest.mark.usefixtures("fresh_budgets")
def test_a_wave_opens_the_limits_when_redis_is_down(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
        }
    }
    asks = [(GUILD, MEMBER, (USER_REQUESTS,))] * 15
    assert ratelimit.check_many(asks=asks) == [None] * 15
