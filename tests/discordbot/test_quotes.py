"""A quote before every trade (issue 13): Buy/Sell and `/bet` `/sell` show an ephemeral preview
with Confirm / Cancel; Confirm trades within the guild's slippage limit (DOMAIN §4.6), so a
price that moved in between is refused and nothing moves; pools read like predictions."""

from __future__ import annotations

import copy
import re
import time

import pytest

from betting.models import Position, Trade
from discordbot import market_ui
from discordbot.actions.trading import _apart
from discordbot.market_ui import MSG_NOT_YOUR_QUOTE, MSG_QUOTE_CANCELLED, b36
from markets.services import market_close
from points import selectors as points_selectors
from points.models import GuildSettings
from points.rules import Actor

from .conftest import db, make_market
from .fake_discord import snowflake
from .harness import DEFERRED, DEFERRED_UPDATE, buttons

pytestmark = pytest.mark.django_db(transaction=True)


async def balance(h, user_id: int) -> int | None:
    return await db(h, points_selectors.balance_get, guild_id=h.guild_id, user_id=user_id)


async def trades(h) -> list[Trade]:
    return await db(h, lambda: list(Trade.objects.order_by("id")))


def confirm_id(quote) -> str:
    (confirm,) = [b for b in buttons(quote.reply) if b["label"] == "Confirm"]
    return confirm["custom_id"]


async def quote_bet(h, member, market_id: int, outcome: str, amount: int):
    return await h.send(
        h.command("bet", member, market=str(market_id), outcome=outcome, amount=amount)
    )


async def test_bet_shows_a_quote_and_confirm_trades_at_the_quoted_price(harness, members):
    market = await make_market(harness, creator=members.alice.id)

    quote = await quote_bet(harness, members.bob, market.id, "1", 100)

    assert quote.response_type == DEFERRED and quote.ephemeral
    text = quote.text
    assert "**Quote** · buy **Yes**" in text
    assert "You pay **100 points** and get **190.91 shares** at an average price of 0.524" in text
    assert "Probability 50.0% → **54.8%**" in text
    assert "If it wins you get **190 points**" in text
    assert "Slippage limit 2%: at least 187.09 shares" in text
    assert [b["label"] for b in buttons(quote.reply)] == ["Confirm", "Cancel"]
    assert all(len(b["custom_id"]) <= 100 for b in buttons(quote.reply))
    shown = copy.deepcopy(quote.reply)
    # A quote writes nothing: Bob, quoted against the starting balance, has no wallet yet.
    assert await trades(harness) == [] and await balance(harness, members.bob.id) is None

    done = await harness.send(harness.click(quote.reply, members.bob, label="Confirm"))

    assert done.response_type == DEFERRED_UPDATE
    assert done.text.startswith("✅ You bought **190.91 shares** of **Yes**")
    assert buttons(done.reply) == []  # the quote became the receipt; nothing left to click
    (trade,) = await trades(harness)
    assert (trade.user_id, trade.amount, trade.shares) == (members.bob.id, 100, 190_909_090)
    assert await balance(harness, members.bob.id) == 900

    # A second click on the same quote (a double click, a retry) trades once.
    again = await harness.send(harness.click(shown, members.bob, label="Confirm"))
    assert "You bought" in again.text
    assert len(await trades(harness)) == 1 and await balance(harness, members.bob.id) == 900


async def test_confirm_after_the_price_moved_beyond_the_limit_is_refused(harness, members):
    market = await make_market(harness, creator=members.alice.id)
    quote = await quote_bet(harness, members.bob, market.id, "1", 100)
    # Carol buys the same outcome first: Yes is dearer now, 100 points buy fewer shares.
    await harness.send(
        harness.command(
            "bet", members.carol, confirm=False, market=str(market.id), outcome="1", amount=300
        )
    )
    before = await trades(harness)

    done = await harness.send(harness.click(quote.reply, members.bob, label="Confirm"))

    assert done.ephemeral
    # What the request met at its turn in its batch (the price then, what 100 points would
    # buy) and a limit that figure breaks.
    assert done.text == (
        "The price moved before your trade: at its turn in its batch “Yes” was at 62.8% and "
        "100 points would buy 154.95 shares (average price 0.645), short of your slippage limit "
        "(at least 187.09 shares). Nothing was traded. Press **Fresh quote** for the same amount "
        "at the price now."
    )
    assert await trades(harness) == before
    assert await balance(harness, members.bob.id) is None
    assert not await db(harness, lambda: Position.objects.filter(user_id=members.bob.id).exists())
    # Issue 23 item 10: one click opens the fresh quote of the same amount, to Confirm.
    fresh = await harness.send(harness.click(done.reply, members.bob, label="Fresh quote"))
    assert "**Quote** · buy **Yes**" in fresh.text and "You pay **100 points**" in fresh.text
    assert "154.95 shares" in fresh.text
    bought = await harness.send(harness.click(fresh.reply, members.bob, label="Confirm"))
    assert bought.text.startswith("✅ You bought **154.95 shares** of **Yes**")
    assert len(await trades(harness)) == len(before) + 1


async def test_a_wider_slippage_setting_lets_the_same_move_through(harness, members):
    market = await make_market(harness, creator=members.alice.id)
    changed = await harness.send(
        harness.command("settings set", members.mod, setting="slippage_bps", value=5000)
    )
    assert "Slippage limit" in changed.text and "50%" in changed.text
    quote = await quote_bet(harness, members.bob, market.id, "1", 100)
    await harness.send(
        harness.command(
            "bet", members.carol, confirm=False, market=str(market.id), outcome="1", amount=300
        )
    )

    done = await harness.send(harness.click(quote.reply, members.bob, label="Confirm"))

    assert "You bought" in done.text
    bob = await db(harness, lambda: Trade.objects.get(user_id=members.bob.id))
    assert 95_454_545 <= bob.shares < 190_909_090  # fewer than quoted, within 50 %


async def test_slippage_setting_is_range_checked(harness, members):
    refused = await harness.send(
        harness.command("settings set", members.mod, setting="slippage_bps", value=5001)
    )
    assert "from 0 to 5,000" in refused.text
    gs = await db(harness, lambda: GuildSettings.objects.filter(guild_id=harness.guild_id).first())
    assert gs is None or gs.slippage_bps == 200


async def test_cancel_moves_nothing(harness, members):
    market = await make_market(harness, creator=members.alice.id)
    quote = await quote_bet(harness, members.bob, market.id, "2", 250)

    cancelled = await harness.send(harness.click(quote.reply, members.bob, label="Cancel"))

    assert cancelled.response_type == DEFERRED_UPDATE
    assert cancelled.text == MSG_QUOTE_CANCELLED and buttons(cancelled.reply) == []
    assert await trades(harness) == [] and await balance(harness, members.bob.id) is None


async def test_an_expired_confirm_answers_clearly_and_trades_nothing(harness, members):
    market = await make_market(harness, creator=members.alice.id)
    quote = await quote_bet(harness, members.bob, market.id, "1", 100)
    # The same quote as if it had been shown three minutes ago.
    old_id = snowflake(time.time() - 180)
    parts = confirm_id(quote).split(":")
    parts[-1] = b36(old_id)
    old = dict(quote.reply)
    old["components"] = [
        {
            "type": 1,
            "components": [
                {"type": 2, "style": 3, "label": "Confirm", "custom_id": ":".join(parts)}
            ],
        }
    ]

    expired = await harness.send(harness.click(old, members.bob, label="Confirm"))

    assert expired.text == market_ui.MSG_QUOTE_EXPIRED.format(minutes=2)
    assert "Nothing was traded" in expired.text
    assert await trades(harness) == [] and await balance(harness, members.bob.id) is None


async def test_confirm_on_a_market_that_closed_meanwhile_says_so(harness, members):
    market = await make_market(harness, creator=members.alice.id)
    quote = await quote_bet(harness, members.bob, market.id, "1", 100)
    await db(
        harness,
        market_close,
        market_id=market.id,
        actor=Actor.member(members.alice.id),
        idempotency_key="test:close",
    )

    done = await harness.send(harness.click(quote.reply, members.bob, label="Confirm"))

    assert done.text == (
        f"Market #{market.id} is closed; trading is only possible while it is open."
    )
    assert await trades(harness) == []


async def test_only_the_member_who_asked_can_confirm(harness, members):
    market = await make_market(harness, creator=members.alice.id)
    quote = await quote_bet(harness, members.bob, market.id, "1", 100)

    other = await harness.send(harness.click(quote.reply, members.carol, label="Confirm"))
    cancel = await harness.send(harness.click(quote.reply, members.carol, label="Cancel"))

    assert other.text == MSG_NOT_YOUR_QUOTE and other.ephemeral
    assert cancel.text == MSG_NOT_YOUR_QUOTE
    assert await trades(harness) == []


async def test_a_quote_refuses_what_the_trade_would_refuse(harness, members):
    market = await make_market(harness, creator=members.alice.id)

    broke = await quote_bet(harness, members.bob, market.id, "1", 5000)
    typo = await quote_bet(harness, members.bob, market.id, "7", 10)

    assert broke.text == "You don't have enough points: you have 1,000 and need 5,000."
    assert "7" in typo.text and buttons(typo.reply) == []
    assert await trades(harness) == []


async def test_one_step_bet_trades_at_once_within_the_limit(harness, members):
    market = await make_market(harness, creator=members.alice.id)
    await db(
        harness,
        lambda: GuildSettings.objects.filter(guild_id=harness.guild_id).update(slippage_bps=0),
    )

    ex = await harness.send(
        harness.command(
            "bet", members.bob, confirm=False, market=str(market.id), outcome="1", amount=100
        )
    )

    # A zero limit still trades: nothing moved between the quote and the trade.
    assert "You bought **190.91 shares**" in ex.text and buttons(ex.reply) == []
    assert len(await trades(harness)) == 1


async def test_sell_shows_a_quote_then_confirm_sells(harness, members):
    market = await make_market(harness, creator=members.alice.id)
    await harness.send(
        harness.command(
            "bet", members.bob, confirm=False, market=str(market.id), outcome="2", amount=200
        )
    )

    quote = await harness.send(
        harness.command("sell", members.bob, market=str(market.id), outcome="2")
    )
    assert "**Quote** · sell **No**" in quote.text
    assert "You sell **366.67 shares** and get **199 points**" in quote.text
    assert len(await trades(harness)) == 1

    done = await harness.send(harness.click(quote.reply, members.bob, label="Confirm"))

    assert "You sold **366.67 shares** of **No**" in done.text
    sell = await db(harness, lambda: Trade.objects.get(kind="sell"))
    assert (sell.user_id, sell.amount - sell.fee) == (members.bob.id, 199)
    position = await db(harness, lambda: Position.objects.get(user_id=members.bob.id))
    assert position.shares == 0  # a sale removes exactly what was asked (issue 16)


async def test_sell_confirm_after_the_price_fell_is_refused(harness, members):
    market = await make_market(harness, creator=members.alice.id)
    await harness.send(
        harness.command(
            "bet", members.bob, confirm=False, market=str(market.id), outcome="2", amount=200
        )
    )
    quote = await harness.send(
        harness.command("sell", members.bob, market=str(market.id), outcome="2")
    )
    await harness.send(
        harness.command(
            "bet", members.carol, confirm=False, market=str(market.id), outcome="1", amount=400
        )
    )
    before = await trades(harness)

    done = await harness.send(harness.click(quote.reply, members.bob, label="Confirm"))

    # What the sale met in its batch and the limit that figure breaks (issue 23 item 10).
    assert done.text.startswith(
        "The price moved before your trade: at its turn in its batch “No” was at "
    )
    assert done.text.endswith(
        "and 366.67 shares would return 130 points, short of your slippage limit (at least "
        "195 points). Nothing was traded. Press **Fresh quote** to sell the same shares at the "
        "price now."
    )
    assert await trades(harness) == before
    # No dead end for a sale either: one click quotes the same shares at the price now.
    assert [b["label"] for b in buttons(done.reply)] == ["Fresh quote"]
    fresh = await harness.send(harness.click(done.reply, members.bob, label="Fresh quote"))
    assert fresh.text.startswith("**Quote** · sell"), fresh.text
    assert "You sell **366.67 shares**" in fresh.text
    sold = await harness.send(harness.click(fresh.reply, members.bob, label="Confirm"))
    assert "You sold **366.67 shares** of **No**" in sold.text
    position = await db(harness, lambda: Position.objects.get(user_id=members.bob.id))
    assert position.shares == 0  # exactly the shares first asked, all of them


# --- Pools read like predictions --------------------------------------------------------------


async def test_pool_buttons_quote_and_message_speak_predictions(harness, members):
    created = await harness.send(
        harness.command(
            "market create",
            members.alice,
            question="Who wins the final?",
            outcomes="Alice | Bob",
            duration="2h",
            mechanism="parimutuel",
        )
    )
    message = created.reply
    assert [b["label"] for b in buttons(message)][:2] == ["Predict Alice", "Predict Bob"]
    assert "<t:" in message["embeds"][0]["fields"][3]["value"]  # the countdown
    market_id = int(message["embeds"][0]["title"].split()[0].lstrip("#"))
    await harness.send(
        harness.command(
            "bet", members.carol, confirm=False, market=str(market_id), outcome="2", amount=300
        )
    )

    click = await harness.send(harness.click(message, members.bob, label="Predict Alice"))
    assert click.modal["title"] == f"Predict “Alice” (#{market_id})"
    quote = await harness.send(harness.submit(click.modal, members.bob, amount="100"))

    assert "**Predict** · stake **100 points** on **Alice**" in quote.text
    assert "Share of the pot 0.0% → **25.0%** · return 1:4.00" in quote.text
    assert "If Alice wins you get **~400 points**" in quote.text
    done = await harness.send(harness.click(quote.reply, members.bob, label="Confirm"))
    assert done.text.startswith("✅ You predicted **Alice**")
    assert "**25.0%** of the pot" in done.text

    refreshed = await harness.send(harness.click(message, members.bob, label="Refresh"))
    embed = harness.fake.message(int(message["id"]))["embeds"][0]
    assert refreshed.response_type == DEFERRED_UPDATE
    assert "**25.0%** Alice · 100 pts · 1:4.00" in embed["description"]
    assert "**75.0%** Bob · 300 pts · 1:1.33" in embed["description"]
    assert [f["name"] for f in embed["fields"]][:3] == ["Status", "Pot", "Predictors"]
    assert "400 points" in embed["fields"][1]["value"]
    top = next(f for f in embed["fields"] if f["name"] == "Top predictors")
    assert top["value"].splitlines() == [
        f"<@{members.carol.id}> 300 on Bob",
        f"<@{members.bob.id}> 100 on Alice",
    ]

    position = await harness.send(harness.click(message, members.bob, label="My position"))
    assert "**Alice**: staked · spent 100 · if it wins you get ~400 points" in position.text


def test_the_largest_confirm_id_fits_discords_100_characters():
    biggest = 2**63 - 1
    button = market_ui.QuoteConfirmButton(
        "s", biggest, 9, 10**15 * 10**6, 10**15 * 10**6, biggest, biggest
    )
    custom_id = button.item.custom_id
    assert len(custom_id) <= 100
    match = re.fullmatch(market_ui.CONFIRM_ID, custom_id)
    assert match is not None and int(match["quantity"], 36) == 10**21


# --- Leftovers of issue 23 item 8 ----------------------------------------------------------------


async def test_the_amount_form_states_and_checks_the_servers_max_bet(harness, members):
    market = await make_market(harness, creator=members.alice.id)
    message = (
        await harness.send(harness.command("market show", members.bob, market=str(market.id)))
    ).reply
    await harness.bot.policies.load(harness.guild_id)

    click = await harness.send(harness.click(message, members.bob, label="Buy Yes"))
    (row,) = click.modal["components"]
    shown = str(row)
    typo = await harness.send(harness.submit(click.modal, members.bob, amount="lots"))
    over = await harness.send(harness.submit(click.modal, members.bob, amount="2,000,000"))

    assert "1 to 1,000,000 points (this server's max bet)" in shown
    for refused in (typo, over):
        assert "from 1 to 1,000,000." in refused.text, refused.text
        assert "1,000,000,000,000,000" not in refused.text
    assert await trades(harness) == []


async def test_the_first_stake_in_an_empty_pool_is_quoted_honestly(harness, members):
    created = await harness.send(
        harness.command(
            "market create",
            members.alice,
            question="Who wins?",
            outcomes="Alice | Bob",
            duration="2h",
            mechanism="parimutuel",
        )
    )
    click = await harness.send(harness.click(created.reply, members.bob, label="Predict Alice"))
    quote = await harness.send(harness.submit(click.modal, members.bob, amount="100"))

    assert "Share of the pot" not in quote.text and "50.0%" not in quote.text
    assert "You are the first to predict here" in quote.text
    assert "If Alice wins you get back at least your **100 points**" in quote.text


async def test_one_trader_is_one_trader_in_the_market_list(harness, members):
    market = await make_market(harness, creator=members.alice.id, question="Lonely?")
    await harness.send(
        harness.command(
            "bet", members.bob, confirm=False, market=str(market.id), outcome="1", amount=10
        )
    )

    listed = await harness.send(harness.command("market list", members.bob))

    (row,) = [f for f in listed.reply["embeds"][0]["fields"] if "Lonely?" in f["name"]]
    assert "· 1 trader ·" in row["value"], row["value"]


def test_a_refusal_never_shows_the_figure_equal_to_the_limit_it_broke():
    """Issue 23 item 10: not "19.70 shares, beyond your limit (19.70 shares)"."""
    assert _apart(19_695_000, 19_700_000) == ("19.695", "19.700")
    assert _apart(19_699_999, 19_700_000) == ("19.699", "19.700")
    assert _apart(19_699_999, 19_699_999 + 1) == ("19.699", "19.700")
    assert _apart(154_950_000, 187_090_000) == ("154.95", "187.09")
