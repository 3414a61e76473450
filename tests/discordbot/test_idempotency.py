"""The same interaction delivered twice moves points once: Discord refuses the second
acknowledgement, and even when both deliveries reach the database together the idempotency key
`discord:<interaction id>` lets only one of them act (DOMAIN §3)."""

from __future__ import annotations

import asyncio

import pytest

from betting.models import Trade
from markets.models import Market
from points import selectors as points_selectors
from points.models import GuildSettings, Transfer

from .conftest import db, make_market

pytestmark = pytest.mark.django_db(transaction=True)


async def balance(h, user_id):
    return await db(h, points_selectors.balance_get, guild_id=h.guild_id, user_id=user_id)


async def test_a_redelivered_bet_is_acknowledged_once_and_trades_once(harness, members):
    market = await make_market(harness, creator=members.alice.id)
    payload = harness.command(
        "bet", members.bob, confirm=False, market=str(market.id), outcome="1", amount=100
    )

    first = await harness.send(payload)
    second = await harness.send(payload)

    assert "You bought" in first.text
    rejected = [r for r in second.callbacks if r.status == 400]
    assert rejected and rejected[-1].response["code"] == 40060
    assert await db(harness, lambda: Trade.objects.count()) == 1
    assert await balance(harness, members.bob.id) == 900


async def test_twin_deliveries_racing_to_the_database_act_once(harness, members):
    """Both twins pass Discord (lenient fake) and run the service concurrently: one trade, one
    tip, one market; both replies describe that same result."""
    market = await make_market(harness, creator=members.alice.id)
    bet = harness.command(
        "bet", members.bob, confirm=False, market=str(market.id), outcome="2", amount=150
    )
    tip = harness.command("tip", members.carol, member=members.alice, amount=70)
    create = harness.command(
        "market create", members.carol, question="Twins?", outcomes="A|B", duration="1h"
    )
    for payload in (bet, tip, create):
        harness.fake.lenient.add(payload["token"])

    exchanges = await harness.send_many([bet, bet, tip, tip, create, create])

    bet_replies = {ex.text for ex in exchanges[:2]}
    assert len(bet_replies) == 1 and "You bought" in bet_replies.pop()
    assert await db(harness, lambda: Trade.objects.count()) == 1
    assert await balance(harness, members.bob.id) == 850
    assert await db(harness, lambda: Transfer.objects.filter(code="tip").count()) == 1
    assert await balance(harness, members.carol.id) == 930
    assert await db(harness, lambda: Market.objects.filter(question="Twins?").count()) == 1


@pytest.mark.postgres
async def test_twenty_concurrent_twins_on_postgres(harness, members):
    """Many threads on PostgreSQL: every interaction delivered twice at once, one trade each.
    (Ten members buying at once move the price; the slippage limit is opened wide so the test
    is about twins, not about slippage.)"""
    market = await make_market(harness, creator=members.alice.id)
    await db(
        harness,
        lambda: GuildSettings.objects.filter(guild_id=harness.guild_id).update(slippage_bps=5000),
    )
    payloads = []
    for i in range(10):
        member = members.mod.__class__(400_000_000_000_000_000 + i, f"m{i}")
        p = harness.command(
            "bet", member, confirm=False, market=str(market.id), outcome="1", amount=10 + i
        )
        harness.fake.lenient.add(p["token"])
        payloads += [p, p]

    await asyncio.wait_for(harness.send_many(payloads), timeout=120)

    trades = await db(harness, lambda: list(Trade.objects.values_list("amount", flat=True)))
    assert sorted(trades) == [10 + i for i in range(10)]
