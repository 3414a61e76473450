"""The bot's per-market queue in front of `trades_apply` (issue 16): while a market's batch
commits, new trades wait and the next batch takes all of them; a lone trade goes at once."""

from __future__ import annotations

import asyncio

import pytest

from betting.models import Trade
from discordbot.batching import MarketBatcher
from points.models import GuildSettings
from points.selectors import balance_get

from .conftest import db, make_market
from .harness import Member


class GatedApply:
    """An `apply` whose batches finish only when the test opens the gate: it records each
    batch it was given and answers every request with its own echo."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, list[str]]] = []
        self.gate = asyncio.Event()

    async def __call__(self, market_id: int, requests: list[str]) -> list[str]:
        self.batches.append((market_id, list(requests)))
        await self.gate.wait()
        return [f"done {r}" for r in requests]


async def test_requests_wait_while_a_batch_commits_and_the_next_batch_takes_them_all():
    apply = GatedApply()
    batcher = MarketBatcher(apply, cap=3)
    first = asyncio.create_task(batcher.submit(1, "a"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert apply.batches == [(1, ["a"])]  # a lone request starts at once: no timer
    later = [asyncio.create_task(batcher.submit(1, r)) for r in "bcde"]
    other_market = asyncio.create_task(batcher.submit(2, "z"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert (1, ["b", "c", "d"]) not in apply.batches  # they wait for the running batch
    assert (2, ["z"]) in apply.batches  # another market does not wait for this one
    apply.gate.set()
    results = await asyncio.gather(first, *later, other_market)
    assert results == ["done a", "done b", "done c", "done d", "done e", "done z"]
    market_1 = [requests for market, requests in apply.batches if market == 1]
    assert market_1 == [["a"], ["b", "c", "d"], ["e"]]  # all that waited, at most `cap`


async def test_an_unexpected_batch_error_reaches_every_request_of_that_batch():
    async def broken(market_id: int, requests: list[str]) -> list[str]:
        raise RuntimeError("database gone")

    batcher = MarketBatcher(broken)
    results = await asyncio.gather(
        batcher.submit(1, "a"), batcher.submit(1, "b"), return_exceptions=True
    )
    assert [str(r) for r in results] == ["database gone", "database gone"]


@pytest.mark.django_db(transaction=True)
async def test_simultaneous_bets_on_one_market_are_committed_in_batches(harness):
    market = await make_market(harness, creator=900_000_000_000_000_001)
    # Forty one-step bets at once move the price past their quotes: the slippage limit is
    # opened wide, since this test is about batching, not slippage.
    await db(
        harness,
        lambda: GuildSettings.objects.filter(guild_id=harness.guild_id).update(slippage_bps=5000),
    )
    traders = [Member(id=900_000_000_000_000_100 + i, name=f"t{i}") for i in range(40)]
    exchanges = await harness.send_many(
        [
            harness.command(
                "bet",
                t,
                confirm=False,
                market=str(market.id),
                outcome=str(1 + i % 2),
                amount=10 + i,
            )
            for i, t in enumerate(traders)
        ]
    )
    assert all("You bought" in ex.text for ex in exchanges), [ex.text for ex in exchanges]
    assert max(harness.bot.trades.batch_sizes) > 1  # the rush was grouped
    assert sum(harness.bot.trades.batch_sizes) == len(traders)
    trades = await db(harness, lambda: list(Trade.objects.filter(market_id=market.id)))
    assert len(trades) == len(traders)
    for i, (t, ex) in enumerate(zip(traders, exchanges, strict=True)):
        balance = await db(harness, balance_get, guild_id=harness.guild_id, user_id=t.id)
        assert balance == 1000 - (10 + i)
        assert f"Balance: {balance:,} points." in ex.text  # each member's own balance


@pytest.mark.django_db(transaction=True)
async def test_a_read_failing_after_the_batch_committed_leaves_the_trades_told(
    harness, monkeypatch
):
    """The batch reads the market again after its commit, for the bot's snapshot. When that read
    fails (the database restarting just then: CI at 76561e6, "consuming input failed: server
    closed the connection unexpectedly"), the trades have committed: the member is told the
    trade, not "something went wrong"."""
    from django.db import OperationalError

    from discordbot.actions import trading

    market = await make_market(harness, creator=900_000_000_000_000_001)
    committed = {"batches": 0}
    real_trades, real_get = trading.trades_for_interactions, trading.market_selectors.market_get

    def trades_then_restart(**kwargs):
        answers = real_trades(**kwargs)
        committed["batches"] += 1
        return answers

    def market_get(**kwargs):
        if committed["batches"]:
            raise OperationalError("consuming input failed: server closed the connection")
        return real_get(**kwargs)

    monkeypatch.setattr(trading, "trades_for_interactions", trades_then_restart)
    monkeypatch.setattr(trading.market_selectors, "market_get", market_get)
    bettor = Member(id=900_000_000_000_000_200, name="late")
    exchange = await harness.send(
        harness.command("bet", bettor, confirm=False, market=str(market.id), outcome="1", amount=50)
    )
    monkeypatch.undo()

    assert committed["batches"] == 1
    assert "You bought" in exchange.text, exchange.text
    assert await db(harness, lambda: Trade.objects.filter(user_id=bettor.id).count()) == 1
