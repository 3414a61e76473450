"""The market message's buttons, select and modals (DynamicItems and stateless modals): Buy →
amount modal → trade; Sell → select → shares modal → sale; My position; Refresh; and buttons
that keep working after a restart."""

from __future__ import annotations

import re

import pytest

from betting.models import Trade
from discordbot.interactions import MSG_STALE
from discordbot.market_ui import MSG_NOTHING_TO_SELL
from markets.selectors import market_get
from markets.services import market_close
from points.rules import Actor

from .conftest import db
from .harness import DEFERRED, DEFERRED_UPDATE, MESSAGE, MODAL, Harness, buttons

pytestmark = pytest.mark.django_db(transaction=True)


async def confirm(h, quote, member):
    """Click Confirm on the quote an exchange showed."""
    return await h.send(h.click(quote.reply, member, label="Confirm"))


async def posted_market(h, members, **kwargs):
    """Create a market through /market create and return the message Discord shows."""
    ex = await h.send(
        h.command(
            "market create",
            members.alice,
            question=kwargs.pop("question", "Will the bridge open in May?"),
            outcomes=kwargs.pop("outcomes", "Yes | No"),
            duration="3d",
            **kwargs,
        )
    )
    message = ex.reply
    market_id = int(message["embeds"][0]["title"].split()[0].lstrip("#"))
    return market_id, message


async def test_buy_button_opens_the_amount_modal_and_the_modal_trades(harness, members):
    market_id, message = await posted_market(harness, members)

    click = await harness.send(harness.click(message, members.bob, label="Buy No"))
    assert click.response_type == MODAL
    assert click.modal["title"] == f"Buy “No” (#{market_id})"
    assert click.modal["custom_id"] == f"pm:m:buy:{market_id}:1"

    bad = await harness.send(harness.submit(click.modal, members.bob, amount="lots"))
    assert bad.ephemeral and "“lots” is not an amount" in bad.text

    done = await harness.send(harness.submit(click.modal, members.bob, amount="1,500"))
    assert done.text == "You don't have enough points: you have 1,000 and need 1,500."

    quote = await harness.send(harness.submit(click.modal, members.bob, amount="250"))
    assert quote.response_type == DEFERRED and quote.ephemeral
    assert "**Quote** · buy **No**" in quote.text
    assert await db(harness, lambda: Trade.objects.count()) == 0
    done = await confirm(harness, quote, members.bob)
    assert done.response_type == DEFERRED_UPDATE
    assert "You bought" in done.text and "of **No**" in done.text
    assert buttons(done.reply) == []
    trade = await db(harness, lambda: Trade.objects.select_related("outcome").get())
    assert (trade.user_id, trade.outcome.position, trade.amount) == (members.bob.id, 1, 250)
    assert trade.idempotency_key == f"discord:{quote.payload['id']}:confirm"


async def test_buy_on_a_closed_market_answers_that_it_is_closed(harness, members):
    market_id, message = await posted_market(harness, members)
    await db(
        harness,
        market_close,
        market_id=market_id,
        actor=Actor.member(members.alice.id),
        idempotency_key="test:close",
    )

    click = await harness.send(harness.click(message, members.bob, label="Buy Yes"))

    assert click.response_type == MESSAGE
    assert click.ephemeral
    assert click.text == (
        f"Market #{market_id} is closed: trading is over. It is waiting for resolution."
    )


async def test_sell_button_select_and_modal_chain(harness, members):
    market_id, message = await posted_market(harness, members, outcomes="Red | Green | Blue")
    nothing = await harness.send(harness.click(message, members.bob, label="Sell"))
    assert nothing.text == MSG_NOTHING_TO_SELL.format(market_id=market_id)

    buy = await harness.send(harness.click(message, members.bob, label="Buy Green"))
    await confirm(
        harness,
        await harness.send(harness.submit(buy.modal, members.bob, amount="300")),
        members.bob,
    )

    pick = await harness.send(harness.click(message, members.bob, label="Sell"))
    assert pick.ephemeral
    (select,) = buttons(pick.reply)
    assert select["type"] == 3 and [o["label"] for o in select["options"]] == ["Green"]

    chosen = await harness.send(
        harness.click(pick.reply, members.bob, custom_id=select["custom_id"], values=["1"])
    )
    assert chosen.response_type == MODAL
    assert chosen.modal["custom_id"] == f"pm:m:sell:{market_id}:1"
    assert chosen.modal["components"][0]["component"]["value"] == "all"

    quote = await harness.send(harness.submit(chosen.modal, members.bob))
    assert "**Quote** · sell **Green**" in quote.text
    sold = await confirm(harness, quote, members.bob)
    assert "You sold" in sold.text and "of **Green**" in sold.text
    sell = await db(harness, lambda: Trade.objects.get(kind="sell"))
    assert sell.user_id == members.bob.id


async def test_my_position_and_refresh(harness, members):
    market_id, message = await posted_market(harness, members)
    buy = await harness.send(harness.click(message, members.bob, label="Buy Yes"))
    await confirm(
        harness,
        await harness.send(harness.submit(buy.modal, members.bob, amount="100")),
        members.bob,
    )

    position = await harness.send(harness.click(message, members.bob, label="My position"))
    assert position.ephemeral
    assert position.text.startswith(f"Your position in #{market_id}:\n• **Yes**:")
    assert position.text.endswith("Balance: 900 points.")

    before = message["embeds"][0]["description"]
    refresh = await harness.send(harness.click(message, members.carol, label="Refresh"))
    assert refresh.response_type == DEFERRED_UPDATE
    refreshed = harness.fake.message(int(message["id"]))
    assert refreshed["embeds"][0]["description"] != before
    summary = await db(harness, market_get, market_id=market_id)
    assert (
        f"**{summary.outcomes[0].probability * 100:.1f}%** Yes"
        in refreshed["embeds"][0]["description"]
    )
    assert "100 points" in refreshed["embeds"][0]["fields"][1]["value"]


async def test_buttons_and_modals_survive_a_restart(harness, members):
    _market_id, message = await posted_market(harness, members)
    click = await harness.send(harness.click(message, members.bob, label="Buy Yes"))
    quote = await harness.send(harness.submit(click.modal, members.bob, amount="40"))

    restarted: Harness = await harness.restart()
    try:
        after = await confirm(restarted, quote, members.bob)
        again = await restarted.send(restarted.click(message, members.carol, label="Buy No"))
        trades = await db(restarted, lambda: Trade.objects.count())
    finally:
        await restarted.close(stop_fake=False)

    assert "You bought" in after.text
    assert again.response_type == MODAL
    assert trades == 1


async def test_unknown_buttons_and_modals_are_still_answered(harness, members):
    _market_id, message = await posted_market(harness, members)
    stale = dict(message)
    stale["components"] = [
        {
            "type": 1,
            "components": [{"type": 2, "style": 1, "label": "Old", "custom_id": "v0:bet:1"}],
        }
    ]
    click = await harness.send(harness.click(stale, members.bob, label="Old"))
    modal = {
        "custom_id": "v0:modal",
        "components": [{"type": 18, "component": {"type": 4, "custom_id": "x", "value": ""}}],
    }
    submit = await harness.send(harness.submit(modal, members.bob))

    assert click.text == MSG_STALE and click.ephemeral
    assert submit.text == MSG_STALE and submit.ephemeral


async def test_my_position_says_all_sold_and_the_result_never_a_worth_now(harness, members):
    """Issue 23 item 8 on the "My position" button: a position sold to nothing is "all sold"
    with what it brought back (not "0.00 shares · worth 0 now"); a proposed result is pending;
    a settled market says won and paid, lost, or refunded — not "worth … now"."""
    from markets.services import market_cancel, market_propose, market_resolve
    from points import services as points_services

    mod = Actor.member(members.mod.id, manage_guild=True)
    ids = {}
    # One trader per market: three trades each, within the five a minute.
    for key, trader in (("resolved", members.bob), ("cancelled", members.carol)):
        market_id, message = await posted_market(harness, members, question=f"{key}?")
        ids[key] = (market_id, message, trader)
        for outcome in ("1", "2"):
            await harness.send(
                harness.command(
                    "bet", trader, confirm=False, market=str(market_id), outcome=outcome,
                    amount=100,
                )
            )  # fmt: skip
        sold = await harness.send(
            harness.command("sell", trader, confirm=False, market=str(market_id), outcome="2")
        )
        assert "You closed" in sold.text or "You sold" in sold.text, sold.text

    def mine(key: str):
        _, message, trader = ids[key]
        return harness.click(message, trader, label="My position")

    shown = (await harness.send(mine("resolved"))).text
    yes, no = shown.splitlines()[1:3]
    assert yes.startswith("• **Yes**: ") and " shares · spent 100 · worth " in yes
    assert yes.endswith(" now")
    assert no.startswith("• **No**: all sold · spent 100 · got back "), no
    assert "0.00 shares" not in shown and "worth 0 now" not in shown

    market_id = ids["resolved"][0]
    await db(harness, market_close, market_id=market_id, actor=mod, idempotency_key="t:c")
    await db(
        harness, points_services.guild_settings_update, guild_id=harness.guild_id, actor=mod,
        idempotency_key="t:window", values={"dispute_window_minutes": 60},
    )  # fmt: skip
    await db(
        harness, market_propose, market_id=market_id, outcome=0, actor=mod, idempotency_key="t:p"
    )
    pending = (await harness.send(mine("resolved"))).text.splitlines()[1]
    assert pending.endswith(" now · pending result"), pending

    await db(
        harness, market_resolve, market_id=market_id, outcome=0, actor=mod, reason="Official",
        idempotency_key="t:r",
    )  # fmt: skip
    settled = (await harness.send(mine("resolved"))).text
    assert " now" not in settled, settled
    won = settled.splitlines()[1]
    assert won.startswith("• **Yes**: ") and " · spent 100 · won, paid " in won
    assert settled.splitlines()[2].startswith("• **No**: all sold · spent 100 · got back ")

    market_id = ids["cancelled"][0]
    await db(
        harness, market_cancel, market_id=market_id, actor=mod, reason="Void",
        idempotency_key="t:x",
    )  # fmt: skip
    refunded, sold = (await harness.send(mine("cancelled"))).text.splitlines()[1:3]
    got_back = int(re.search(r"got back (\d+)", sold).group(1))
    assert sold.endswith(f" · cancelled, refunded {100 - got_back}"), sold  # spent − received
    assert refunded.startswith("• **Yes**: ") and " · spent 100 · cancelled, refunded 100" in (
        refunded
    ), refunded
