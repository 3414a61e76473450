"""An interaction's body that runs again spends no second trade (issue 27: "too fast" edited
over a trade that went through is untrue):

- after an unknown commit outcome (`interactions.finish_later`): the outcome is made unknown
  the way a lost COMMIT acknowledgement makes it (the batch commits, its caller hears an
  error), and the database is "away" for the first key look-up, at the end of the token's time:
  the body's own recovery gives up, and `finish_later` looks the key up and runs the body again;
- a late re-delivery to another process, whose gate opened before the cache answered."""

from __future__ import annotations

import asyncio

import pytest
from django.db import OperationalError

from betting.models import Trade
from discordbot import actions, ratelimit, recovery
from discordbot.interactions import RecentIds
from points.audit import ledger_audit
from points.errors import OutcomeUnknown
from points.services import wallet_get_or_create

from .conftest import db, make_market
from .harness import Harness

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_body_run_again_after_an_unknown_outcome_spends_no_second_trade(
    harness, members, monkeypatch
):
    alice = members.alice
    market = await make_market(harness, creator=members.bob.id)
    await db(harness, wallet_get_or_create, guild_id=harness.guild_id, user_id=alice.id)
    for _ in range(ratelimit.USER_TRADES.limit - 1):  # one trade left this minute
        assert (
            await asyncio.to_thread(
                ratelimit.check,
                guild_id=harness.guild_id,
                user_id=alice.id,
                rules=(ratelimit.USER_TRADES,),
            )
            is None
        )

    real_batch, real_lookup = actions.trades_batch, recovery.key_recorded
    calls = {"batch": 0, "lookup": 0}

    def batch_committed_but_unheard(*, market_id, asks):
        calls["batch"] += 1
        answer = real_batch(market_id=market_id, asks=asks)
        if calls["batch"] == 1:  # committed; the acknowledgement is lost
            raise OutcomeUnknown(asks[0].idempotency_key)
        return answer

    def lookup_once_away(*, key):
        calls["lookup"] += 1
        if calls["lookup"] == 1:
            raise OperationalError("connection failed: Connection refused")
        return real_lookup(key=key)

    monkeypatch.setattr(actions, "trades_batch", batch_committed_but_unheard)
    monkeypatch.setattr(recovery, "key_recorded", lookup_once_away)
    # The token's time is up as far as retries go: the body's recovery gives up at its first
    # failed look-up and `finish_later` takes over, as it does 14.5 minutes into an outage.
    monkeypatch.setattr(recovery, "TOKEN_MARGIN_SECONDS", 900.0)

    ex = await harness.send(
        harness.command("bet", alice, market=str(market.id), outcome="1", amount=10, confirm=False),
        timeout=30,
    )

    assert calls["lookup"] == 2  # the body's look-up failed; finish_later's found the trade
    assert "You bought" in ex.text, ex.text
    key = f"discord:{ex.payload['id']}"
    assert await db(harness, lambda: Trade.objects.filter(idempotency_key=key).count()) == 1
    assert await db(harness, lambda: ledger_audit().ok)


async def test_a_late_redelivery_whose_gate_opened_spends_no_trade(members):
    """A re-delivery to another process (nothing of it in this process's memory) whose gate
    could not wait for the cache — the interaction already past Discord's 3 seconds, or the
    cache slow; here a gate budget of 0 — runs its body as a first delivery. With the member's
    five trades a minute spent, counting it would edit "too fast" over the trade that went
    through: the trade count waits for the gate's unfinished check, which says re-delivery."""
    h = await Harness.start(gate_budget=0.0)
    try:
        bob = members.bob
        market = await make_market(h, creator=members.alice.id)
        bets = [
            h.command("bet", bob, confirm=False, market=str(market.id), outcome="1", amount=10 + i)
            for i in range(ratelimit.USER_TRADES.limit)
        ]
        for payload in bets:
            assert "You bought" in (await h.send(payload)).text
        h.bot.seen_here = RecentIds(100)  # as if delivered to another process

        again = await h.send(bets[0])

        assert "going too fast" not in again.text
        assert "You bought" in again.text and "for 10 points" in again.text
        assert await db(h, lambda: Trade.objects.count()) == ratelimit.USER_TRADES.limit
        assert await db(h, lambda: ledger_audit().ok)
    finally:
        await h.close()
