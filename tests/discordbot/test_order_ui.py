"""The limit orders' faces on Discord (issue 25, DOMAIN §4.7) through the strict fake Discord:
the Cancel buttons under `/orders`, the fill DMs, the resting volume on the market message and
the Order button's form."""

from __future__ import annotations

import copy
import datetime as dt
from types import SimpleNamespace

import pytest
from django.utils import timezone

from betting.models import Order, Trade
from discordbot import render
from discordbot.market_ui.orders import MSG_NOT_YOUR_ORDERS
from discordbot.models import NotificationDelivery
from points import selectors as points_selectors

from .conftest import db, make_market
from .harness import buttons

pytestmark = pytest.mark.django_db(transaction=True)


async def _balance(harness, member) -> int:
    return await db(
        harness, points_selectors.balance_get, guild_id=harness.guild_id, user_id=member.id
    )


async def _order_buy(harness, member, market, *, amount: int, limit: str, outcome: str = "Yes"):
    return await harness.send(
        harness.command(
            "order buy", member, market=str(market.id), outcome=outcome, amount=amount,
            limit=limit,
        )
    )  # fmt: skip


async def test_orders_cancel_buttons_cancel_once_answer_only_the_owner_and_say_when_ended(
    harness, members
):
    market = await make_market(harness, creator=members.alice.id)
    await _order_buy(harness, members.bob, market, amount=200, limit="40")
    await _order_buy(harness, members.bob, market, amount=100, limit="30")
    await _order_buy(harness, members.carol, market, amount=50, limit="20")
    first, second = await db(
        harness, lambda: list(Order.objects.filter(user_id=members.bob.id).order_by("id"))
    )

    listed = await harness.send(harness.command("orders", members.bob))
    shown = copy.deepcopy(listed.reply)  # the list as first shown (the fake edits its own)
    labels = [b["label"] for b in buttons(shown)]
    assert labels == [f"Cancel #{second.pk}", f"Cancel #{first.pk}"]  # newest first, his only
    assert listed.ephemeral

    # Another member's click moves nothing and says whose orders these are.
    stranger = await harness.send(harness.click(shown, members.carol, label=f"Cancel #{first.pk}"))
    assert stranger.text == MSG_NOT_YOUR_ORDERS
    assert await db(harness, lambda: Order.objects.get(pk=first.pk).status) == "resting"

    clicked = await harness.send(harness.click(shown, members.bob, label=f"Cancel #{first.pk}"))
    assert clicked.response_type == 6  # an edit of the list itself
    edited = clicked.original
    assert edited is not None and edited["id"] == shown["id"]
    text = edited["content"]
    assert text.startswith(f"🗑️ Order #{first.pk} cancelled: 200 points are back in your wallet.")
    assert f"#{second.pk} on market #{market.id}" in text and f"#{first.pk} on" not in text
    assert [b["label"] for b in buttons(edited)] == [f"Cancel #{second.pk}"]
    assert await _balance(harness, members.bob) == 1000 - 100

    # The same button again (a second copy of the list): nothing moves, and it says why.
    again = await harness.send(harness.click(shown, members.bob, label=f"Cancel #{first.pk}"))
    assert again.original["content"].startswith(
        f"Order #{first.pk} was already cancelled: nothing was changed."
    )
    assert await _balance(harness, members.bob) == 1000 - 100
    assert await db(harness, lambda: Order.objects.get(pk=first.pk).remaining) == 200


async def test_orders_cancel_button_on_a_filled_order_says_it_filled(harness, members):
    market = await make_market(harness, creator=members.alice.id)
    await _order_buy(harness, members.bob, market, amount=5, limit="45")
    listed = await harness.send(harness.command("orders", members.bob))
    order = await db(harness, lambda: Order.objects.get())
    await harness.send(
        harness.command(
            "bet", members.carol, confirm=False, market=str(market.id), outcome="No", amount=300
        )
    )
    assert await db(harness, lambda: Order.objects.get(pk=order.pk).status) == "filled"
    before = await _balance(harness, members.bob)

    clicked = await harness.send(
        harness.click(listed.reply, members.bob, label=f"Cancel #{order.pk}")
    )
    assert clicked.original["content"] == (
        f"Order #{order.pk} has already filled completely: nothing was changed.\n"
        "You have no orders waiting."
    )
    assert buttons(clicked.original) == []
    assert await _balance(harness, members.bob) == before


async def _bet(harness, member, market, outcome: str, amount: int):
    return await harness.send(
        harness.command(
            "bet", member, confirm=False, market=str(market.id), outcome=outcome, amount=amount
        )
    )


async def test_fills_make_one_dm_per_member_and_market_through_the_delivery_queue(harness, members):
    notifier = harness.bot.get_cog("Notifications").notifier
    market = await make_market(harness, creator=members.alice.id)
    other = await make_market(harness, creator=members.alice.id, question="Snow on Friday?")
    await notifier.drain()  # the announcements are old news for this test
    await _order_buy(harness, members.bob, market, amount=100, limit="45")
    await _order_buy(harness, members.bob, market, amount=200, limit="40")
    await _order_buy(harness, members.bob, other, amount=50, limit="45")
    # Carol's first buy of No fills Bob's 45 % order on `market`, her second his 40 % one (in
    # another planning round: the queued DM takes it in); the one on `other` fills once.
    await _bet(harness, members.carol, market, "No", 300)
    await notifier.plan_once()
    await _bet(harness, members.carol, market, "No", 200)
    await _bet(harness, members.carol, other, "No", 300)
    await notifier.plan_once()

    queued = await db(
        harness,
        lambda: list(NotificationDelivery.objects.filter(kind="fills").order_by("id")),
    )
    assert [(r.target, r.market_id, r.status) for r in queued] == [
        (f"dm:{members.bob.id}", market.id, "pending"),
        (f"dm:{members.bob.id}", other.id, "pending"),
    ]
    assert await notifier.deliver_due("dm") == 0  # not due before a minute has passed
    later = timezone.now() + dt.timedelta(minutes=2)
    assert await notifier.deliver_due("dm", now=later) == 2

    dms = [m["content"] for m in harness.fake.dms(members.bob.id)]
    assert len(dms) == 2
    orders = await db(harness, lambda: list(Order.objects.order_by("id")))
    fills = await db(harness, lambda: list(Trade.objects.filter(order__isnull=False)))
    assert sorted(t.order_id for t in fills) == [o.pk for o in orders]  # one fill each
    first, second, third = orders
    assert dms[0].startswith(f"📬 Your limit orders on #{market.id} “Will it rain tomorrow?”")
    for order in (first, second):
        assert (
            f"• Order #{order.pk}: bought {render.shares(order.filled_shares)} shares of **Yes** "
            f"for {order.filled_points:,} points."
        ) in dms[0]
    assert f"Order #{third.pk}" not in dms[0]
    assert f"• Order #{third.pk}: bought" in dms[1]

    # Fills after the DM went out start the next one; two fills of one order in it say so.
    await _bet(harness, members.alice, market, "No", 150)
    await _bet(harness, members.alice, market, "No", 150)
    await notifier.plan_once()
    assert await notifier.deliver_due("dm", now=timezone.now() + dt.timedelta(minutes=2)) == 1
    dms = [m["content"] for m in harness.fake.dms(members.bob.id)]
    assert len(dms) == 3
    second = await db(harness, lambda: Order.objects.get(pk=second.pk))
    assert second.fills == 3
    assert f"• Order #{second.pk}: bought" in dms[2] and "(2 fills)." in dms[2]
    assert not harness.fake.dms(members.carol.id)  # her own trades were not order fills


def _orders_field(message: dict) -> str | None:
    fields = message["embeds"][0].get("fields") or []
    return next((f["value"] for f in fields if f["name"] == "Orders waiting"), None)


async def test_market_message_shows_the_resting_volume_per_outcome_and_limit(harness, members):
    notifier = harness.bot.get_cog("Notifications").notifier
    created = await harness.send(
        harness.command(
            "market create", members.alice, question="Rain?", outcomes="Yes|No", duration="1d"
        )
    )
    copy = created.reply
    market_id = int(copy["embeds"][0]["title"].split()[0].lstrip("#"))
    assert _orders_field(copy) is None
    market = SimpleNamespace(id=market_id)
    await notifier.drain()

    await _order_buy(harness, members.bob, market, amount=200, limit="40")
    await _order_buy(harness, members.carol, market, amount=100, limit="40")
    await _order_buy(harness, members.carol, market, amount=50, limit="30")
    await _order_buy(harness, members.carol, market, amount=25, limit="20")
    await _order_buy(harness, members.bob, market, amount=70, limit="35", outcome="No")
    await _bet(harness, members.alice, market, "Yes", 40)
    await harness.send(
        harness.command(
            "order sell", members.alice, market=str(market_id), outcome="Yes", limit="80",
            shares="10",
        )
    )  # fmt: skip
    # Placing an order is an outbox event: the notifier refreshes every copy of the message.
    await notifier.drain()
    notifier._refreshed.clear()  # skip the coalescing window instead of waiting it out
    await notifier.refresh_dirty()

    shown = harness.fake.message(int(copy["id"]))
    assert _orders_field(shown) == (
        "**Yes**: buy 300 pts ≤ 40 %, 50 pts ≤ 30 %, + 25 pts lower · sell 10.00 shares ≥ 80 %\n"
        "**No**: buy 70 pts ≤ 35 %"
    )

    # A cancel refreshes it too; Refresh shows the same.
    order = await db(harness, lambda: Order.objects.get(user_id=members.bob.id, limit_ppm=350_000))
    await harness.send(harness.command("order cancel", members.bob, order=order.pk))
    await notifier.drain()
    notifier._refreshed.clear()
    await notifier.refresh_dirty()
    shown = harness.fake.message(int(copy["id"]))
    assert "**No**" not in _orders_field(shown)
    refreshed = await harness.send(harness.click(shown, members.bob, label="Refresh"))
    assert _orders_field(refreshed.original) == _orders_field(shown)


async def test_order_button_opens_a_form_that_places_a_limit_order(harness, members):
    created = await harness.send(
        harness.command(
            "market create", members.alice, question="Rain?", outcomes="Yes|No", duration="1d"
        )
    )
    message = created.reply
    market_id = int(message["embeds"][0]["title"].split()[0].lstrip("#"))
    assert "Order" in [b.get("label") for b in buttons(message)]

    opened = await harness.send(harness.click(message, members.bob, label="Order"))
    form = opened.modal
    assert form["custom_id"] == f"pm:m:order:{market_id}"
    inputs = {c["component"]["custom_id"]: c for c in form["components"]}
    assert list(inputs) == ["side", "outcome", "limit", "size", "expires"]
    assert inputs["outcome"]["description"] == "One of: Yes, No"

    placed = await harness.send(
        harness.submit(form, members.bob, side="Buy", outcome="yes", limit="40", size="200",
                       expires="2h")
    )  # fmt: skip
    order = await db(harness, lambda: Order.objects.select_related("outcome").get())
    assert placed.ephemeral
    assert placed.text.startswith(f"📥 Order #{order.pk}: buy **Yes** on #{market_id}")
    assert (order.side, order.outcome.label, order.limit_ppm, order.size) == (
        "buy", "Yes", 400_000, 200,
    )  # fmt: skip
    assert order.expires_at is not None
    assert order.idempotency_key == f"discord:{placed.payload['id']}"
    assert await _balance(harness, members.bob) == 800

    wrong = await harness.send(
        harness.submit(form, members.bob, side="hold", outcome="Yes", limit="40", size="5")
    )
    assert wrong.text == "“hold” is neither buy nor sell: type buy or sell."
    await _bet(harness, members.carol, SimpleNamespace(id=market_id), "Yes", 50)
    sold = await harness.send(
        harness.submit(form, members.carol, side="sell", outcome="Yes", limit="80", size="all")
    )
    assert "those shares are held back from other sales" in sold.text
    assert await db(harness, lambda: Order.objects.filter(side="sell").count()) == 1


async def test_order_button_is_only_on_open_market_maker_markets(harness, members):
    pool = await harness.send(
        harness.command(
            "market create", members.alice, question="Pool?", outcomes="A|B", duration="1d",
            mechanism="parimutuel",
        )
    )  # fmt: skip
    assert "Order" not in [b.get("label") for b in buttons(pool.reply)]


async def test_no_fill_dm_for_a_member_who_turned_dms_off(harness, members):
    notifier = harness.bot.get_cog("Notifications").notifier
    market = await make_market(harness, creator=members.alice.id)
    await notifier.drain()
    await harness.send(harness.command("notifications", members.bob, state="off"))
    await _order_buy(harness, members.bob, market, amount=100, limit="45")
    await _bet(harness, members.carol, market, "No", 300)
    assert await db(harness, lambda: Order.objects.get().fills) == 1
    await notifier.plan_once()
    assert not await db(harness, lambda: NotificationDelivery.objects.filter(kind="fills").exists())
    assert await notifier.deliver_due("dm", now=timezone.now() + dt.timedelta(minutes=2)) == 0
    assert not harness.fake.dms(members.bob.id)


async def test_orders_that_end_on_their_own_are_dmed_once_with_what_went_back(harness, members):
    """DOMAIN §4.7: an order that expires, or that the market's close or cancellation
    releases, is DMed to its member — what went back, what it had traded — once, joined to any
    DM the same event owes them; an order its member cancels is not (they saw the answer), and
    a member with DMs off gets nothing."""
    from betting.services import orders_expire

    notifier = harness.bot.get_cog("Notifications").notifier
    market = await make_market(harness, creator=members.alice.id)
    other = await make_market(harness, creator=members.alice.id, question="Snow on Friday?")
    await notifier.drain()  # the announcements are old news for this test
    await harness.send(harness.command("notifications", members.carol, state="off"))
    soon = await harness.send(
        harness.command(
            "order buy", members.bob, market=str(market.id), outcome="Yes", amount=80,
            limit="30", expires="2h",
        )
    )  # fmt: skip
    assert "Order #" in soon.text, soon.text
    await _order_buy(harness, members.bob, market, amount=100, limit="45")
    await _order_buy(harness, members.alice, market, amount=60, limit="35", outcome="No")
    await _order_buy(harness, members.carol, market, amount=50, limit="20")
    await _order_buy(harness, members.bob, other, amount=70, limit="25")
    mine = await _order_buy(harness, members.bob, other, amount=40, limit="20")
    assert "Order #" in mine.text, mine.text
    await _bet(harness, members.mod, market, "No", 120)  # fills part of Bob's 45 % order
    orders = await db(harness, lambda: list(Order.objects.order_by("id")))
    expiring, partly, alices, carols, on_other, cancelled_by_bob = orders
    assert 0 < partly.filled_points < 100 and partly.status == "resting"
    listed = await harness.send(harness.command("orders", members.bob, market=str(other.id)))
    await harness.send(
        harness.click(listed.reply, members.bob, label=f"Cancel #{cancelled_by_bob.pk}")
    )
    await notifier.drain()
    seen = len(harness.fake.dms(members.bob.id))  # a fill DM, if due: its own test's subject

    # Two hours on: the 30 % order expires.
    assert await db(harness, orders_expire, now=timezone.now() + dt.timedelta(hours=3)) == 1
    await notifier.drain()
    dms = [m["content"] for m in harness.fake.dms(members.bob.id)][seen:]
    assert dms == [
        f"⌛ Your limit order on #{market.id} “Will it rain tomorrow?” expired:\n"
        f"• Order #{expiring.pk}, buy **Yes** at 30 % or less: 80 points back in your wallet.\n"
        f"{render.MSG_DM_FOOTER}"
    ]

    # Alice closes the market: Bob's rest and her own order end; her DM says both.
    await harness.send(harness.command("market close", members.alice, market=str(market.id)))
    await harness.send(
        harness.command("market cancel", members.mod, market=str(other.id), reason="Duplicate")
    )
    await notifier.drain()
    await notifier.drain()  # planned once: a second pass sends nothing more
    partly = await db(harness, lambda: Order.objects.get(pk=partly.pk))
    bob = [m["content"] for m in harness.fake.dms(members.bob.id)][seen + 1 :]
    assert len(bob) == 2, bob
    closed = next(t for t in bob if t.startswith("🔒"))
    assert closed.startswith(
        f"🔒 #{market.id} “Will it rain tomorrow?” closed, so your limit order on it ended:\n"
        f"• Order #{partly.pk}, buy **Yes** at 45 % or less: {partly.remaining:,} points back "
        f"in your wallet (it had bought {render.shares(partly.filled_shares)} shares for "
        f"{partly.filled_points:,} points)."
    )
    gone = next(t for t in bob if t.startswith("↩️"))
    assert f"• Order #{on_other.pk}, buy **Yes** at 25 % or less: 70 points back" in gone
    assert f"Order #{cancelled_by_bob.pk}," not in gone  # he cancelled it himself
    alice = [m["content"] for m in harness.fake.dms(members.alice.id)]
    assert len(alice) == 1, alice  # one DM for the close: hers as creator, and her order
    assert f"Order #{alices.pk}, buy **No** at 35 % or less: 60 points back" in alice[0]
    assert alice[0].count(render.MSG_DM_FOOTER) == 1
    assert not harness.fake.dms(members.carol.id)  # DMs off
    assert await db(harness, lambda: Order.objects.get(pk=carols.pk).status) == "released"
    assert await _balance(harness, members.carol) == 1000  # her 50 points went back all the same
