"""`/order buy|sell|cancel` and `/orders` through the strict fake Discord (DOMAIN §4.7): what the
member reads, and what the database holds afterwards."""

from __future__ import annotations

import pytest

from betting.models import Order, Trade
from discordbot.actions.orders import MSG_LIMIT_TEXT
from points import selectors as points_selectors

from .conftest import db, make_market

pytestmark = pytest.mark.django_db(transaction=True)


async def test_order_buy_waits_then_fills_and_orders_lists_and_cancel_returns_the_rest(
    harness, members
):
    market = await make_market(harness, creator=members.alice.id)
    placed = await harness.send(
        harness.command(
            "order buy", members.bob, market=str(market.id), outcome="Yes", amount=200,
            limit="40", expires="2h",
        )
    )  # fmt: skip
    order = await db(harness, lambda: Order.objects.get())
    assert placed.ephemeral
    assert f"Order #{order.pk}: buy **Yes** on #{market.id} with up to 200 points" in placed.text
    assert "at or under 40 %" in placed.text and "It waits" in placed.text
    assert "Expires <t:" in placed.text
    assert order.idempotency_key == f"discord:{placed.payload['id']}"

    await harness.send(
        harness.command(
            "bet", members.carol, confirm=False, market=str(market.id), outcome="No", amount=300
        )
    )
    fills = await db(harness, lambda: list(Trade.objects.filter(order__isnull=False)))
    assert [(t.user_id, t.kind) for t in fills] == [(members.bob.id, "buy")]

    listed = await harness.send(harness.command("orders", members.bob))
    assert listed.ephemeral and f"#{order.pk} on market #{market.id}: buy **Yes** ≤ 40 %" in (
        listed.text
    )
    waiting = 200 - fills[0].amount
    assert f"{waiting:,} points waiting" in listed.text

    other = await harness.send(harness.command("order cancel", members.carol, order=order.pk))
    assert other.text == f"Order #{order.pk} is not yours to cancel."
    cancelled = await harness.send(harness.command("order cancel", members.bob, order=order.pk))
    assert cancelled.text == (
        f"🗑️ Order #{order.pk} cancelled: {waiting:,} points are back in your wallet."
    )
    balance = await db(
        harness, points_selectors.balance_get, guild_id=harness.guild_id, user_id=members.bob.id
    )
    assert balance == 1000 - fills[0].amount
    empty = await harness.send(harness.command("orders", members.bob))
    assert empty.text == "You have no orders waiting."


async def test_order_sell_and_refusals_say_what_is_allowed(harness, members):
    market = await make_market(harness, creator=members.alice.id)
    nothing = await harness.send(
        harness.command("order sell", members.bob, market=str(market.id), outcome="Yes", limit="80")
    )
    assert "no free shares of “Yes”" in nothing.text
    bad_limit = await harness.send(
        harness.command(
            "order buy", members.bob, market=str(market.id), outcome="Yes", amount=5, limit="100"
        )
    )
    assert bad_limit.text == MSG_LIMIT_TEXT.format(value="100")
    await harness.send(
        harness.command(
            "bet", members.bob, confirm=False, market=str(market.id), outcome="Yes", amount=50
        )
    )
    sell = await harness.send(
        harness.command("order sell", members.bob, market=str(market.id), outcome="Yes", limit="80")
    )
    assert "those shares are held back from other sales" in sell.text
    assert await db(harness, lambda: Order.objects.filter(side="sell").count()) == 1
