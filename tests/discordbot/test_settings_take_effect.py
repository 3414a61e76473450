"""A moderator's `/settings set` holds for every command after its answer (issue 28: CI's rush met
"at most 100 commands a minute" after `requests_per_minute 10000` was answered). The bot keeps
each guild's policy (`discordbot.policies`) and settings (`discordbot.snapshots`) in memory; a
change reads them again before it is answered, and a read begun before the change — which may
have seen the old row — is not kept."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from discordbot.permissions import Policy
from discordbot.policies import PolicyCache
from discordbot.snapshots import Snapshots
from points.models import GuildSettings

from .conftest import make_market
from .harness import Member


@pytest.mark.django_db(transaction=True)
async def test_the_command_right_after_a_change_meets_the_servers_new_command_budget(
    harness, members
):
    await harness.send(harness.command("balance", members.alice))
    await harness.bot.policies.load(harness.guild_id)  # the old policy is cached (§7: 100)

    changed = await harness.send(
        harness.command("settings set", members.mod, setting="requests_per_minute", value=2)
    )

    assert changed.text.startswith("Saved.")
    policy = harness.bot.policies.peek(harness.guild_id)
    assert policy is not None and policy.requests_per_minute == 2
    cast = [Member(520_000_000_000_000_000 + i, f"n{i}") for i in range(2)]
    replies = [await harness.send(harness.command("balance", m)) for m in (*cast, members.bob)]
    assert ["too fast" in r.text for r in replies] == [False, False, True]
    assert "at most 2 commands a minute" in replies[-1].text


@pytest.mark.django_db(transaction=True)
async def test_the_quote_right_after_a_change_uses_the_new_slippage_limit(harness, members):
    market = await make_market(harness, creator=members.alice.id)
    before = await harness.send(
        harness.command("bet", members.bob, market=str(market.id), outcome="1", amount=100)
    )
    assert "Slippage limit 2%" in before.text  # the default, now in the bot's snapshot

    await harness.send(
        harness.command("settings set", members.mod, setting="slippage_bps", value=5000)
    )
    after = await harness.send(
        harness.command("bet", members.carol, market=str(market.id), outcome="1", amount=100)
    )

    assert "Slippage limit 50%" in after.text, after.text


async def settle() -> None:
    """Let every task started so far run up to its next wait."""
    for _ in range(5):
        await asyncio.sleep(0)


class GatedReads:
    """Database reads that each finish when the test opens their gate, with the row the test
    says that read saw (what a read begun before a change's commit and finished after it saw)."""

    def __init__(self) -> None:
        self.calls: list[tuple[asyncio.Event, list[Any]]] = []
        self.tasks: set[asyncio.Task] = set()

    async def read(self, *_: Any, **__: Any) -> Any:
        gate, seen = asyncio.Event(), []
        self.calls.append((gate, seen))
        await gate.wait()
        return seen[0]

    def answer(self, call: int, row: Any) -> None:
        gate, seen = self.calls[call]
        seen.append(row)
        gate.set()

    # What `PolicyCache` asks of the bot.
    async def db_fast(self, func: Callable[..., Any], /, **kwargs: Any) -> Any:
        return await self.read()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        return task


async def test_a_policy_read_begun_before_a_change_is_not_kept():
    reads = GatedReads()
    cache = PolicyCache(reads)  # type: ignore[arg-type]  # the two calls it makes of the bot
    assert cache.peek(31) is None  # a member's command: the policy is read in the background
    await settle()
    reload = asyncio.create_task(cache.reload(31))  # a change committed meanwhile
    await settle()
    assert len(reads.calls) == 2

    reads.answer(1, Policy(requests_per_minute=10_000))
    await reload
    reads.answer(0, Policy())  # the background read saw the row before the change
    await asyncio.gather(*reads.tasks)

    assert cache.peek(31) == Policy(requests_per_minute=10_000)
    assert len(reads.calls) == 2  # and it is fresh: no read again


async def test_a_settings_read_begun_before_a_change_is_neither_kept_nor_shared():
    reads = GatedReads()
    snapshots = Snapshots(reads.read, reads.read)
    before = asyncio.create_task(snapshots.settings(31))  # a quote's read, under way
    await settle()
    snapshots.drop_settings(31)  # the change committed
    after = asyncio.create_task(snapshots.settings(31))  # the next quote reads again
    await settle()
    assert len(reads.calls) == 2

    reads.answer(1, GuildSettings(guild_id=31, slippage_bps=5000))
    reads.answer(0, GuildSettings(guild_id=31, slippage_bps=200))

    assert (await before).slippage_bps == 200 and (await after).slippage_bps == 5000
    assert (await snapshots.settings(31)).slippage_bps == 5000 and len(reads.calls) == 2
