"""`/balance`, `/daily`, `/tip`, `/leaderboard`, `/history` end to end: the callbacks Discord
receives and the ledger they leave (DOMAIN §2–§3)."""

from __future__ import annotations

import pytest

from points import selectors as points_selectors
from points.errors import MSG_TIP_SELF
from points.models import Transfer

from .conftest import db, make_market
from .harness import DEFERRED, DEFERRED_UPDATE, Member, buttons

pytestmark = pytest.mark.django_db(transaction=True)


async def balance(h, user_id: int) -> int | None:
    return await db(h, points_selectors.balance_get, guild_id=h.guild_id, user_id=user_id)


async def test_balance_creates_the_wallet_with_the_starting_balance(harness, members):
    ex = await harness.send(harness.command("balance", members.alice))

    assert ex.response_type == DEFERRED
    assert ex.callback.json["data"]["flags"] == 64  # deferred as ephemeral
    assert ex.ephemeral
    assert ex.text == "You have **1,000 points**."
    assert await balance(harness, members.alice.id) == 1000


async def test_daily_pays_once_per_day_and_says_when_the_next_one_comes(harness, members):
    first = await harness.send(harness.command("daily", members.alice))
    second = await harness.send(harness.command("daily", members.alice))

    assert "You claimed your daily **100 points**. Balance: 1,100 points." in first.text
    assert second.ephemeral
    assert second.text.startswith(
        "You already claimed today's bonus. The next one is available <t:"
    )
    assert await balance(harness, members.alice.id) == 1100


async def test_tip_moves_points_and_announces_it_publicly(harness, members):
    ex = await harness.send(harness.command("tip", members.alice, member=members.bob, amount=250))

    assert not ex.ephemeral
    assert ex.text == f"💸 <@{members.alice.id}> tipped <@{members.bob.id}> **250 points**."
    assert await balance(harness, members.alice.id) == 750
    assert await balance(harness, members.bob.id) == 1250
    key = f"discord:{ex.payload['id']}"
    assert await db(harness, lambda: Transfer.objects.filter(idempotency_key=key).count()) == 1
    # The receiver is pinged, and only the receiver.
    (edit,) = [r for r in ex.requests if r.method == "PATCH"]
    mentions = edit.json["allowed_mentions"]
    assert [str(u) for u in mentions["users"]] == [str(members.bob.id)]
    assert mentions["parse"] == []


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        (5000, "You don't have enough points: you have 1,000 and need 5,000."),
        (0, "That amount is not valid"),
    ],
)
async def test_tip_refusals_are_private_and_move_nothing(harness, members, amount, expected):
    ex = await harness.send(
        harness.command("tip", members.alice, member=members.bob, amount=amount)
    )

    assert ex.ephemeral
    assert expected in ex.text
    # The public "thinking" placeholder was removed; only the private refusal remains.
    assert ex.state.original_deleted
    assert await balance(harness, members.bob.id) in (None, 1000)


async def test_tip_to_yourself_or_a_bot_is_refused(harness, members):
    self_tip = await harness.send(
        harness.command("tip", members.alice, member=members.alice, amount=10)
    )
    bot = Member(999_999_999_999_999_999, "some-bot", bot=True)
    bot_tip = await harness.send(harness.command("tip", members.alice, member=bot, amount=10))

    assert self_tip.text == MSG_TIP_SELF
    assert bot_tip.text == "Bots don't hold points; tip a member instead."
    assert await balance(harness, bot.id) is None


async def test_leaderboard_by_balance_and_by_profit(harness, members):
    await harness.send(harness.command("tip", members.alice, member=members.bob, amount=300))
    market = await make_market(harness, creator=members.carol.id)
    await harness.send(
        harness.command(
            "bet", members.carol, confirm=False, market=str(market.id), outcome="1", amount=100
        )
    )

    by_balance = await harness.send(harness.command("leaderboard", members.alice))
    by_profit = await harness.send(harness.command("leaderboard", members.alice, kind="profit"))

    # Names from the member directory (issue 13): Bob never used the bot, so the directory
    # does not know him and he shows by the first digits of his id.
    lines = by_balance.reply["embeds"][0]["description"].splitlines()
    assert lines[0] == "**1.** member #2222… — 1,300 points"
    assert lines[1] == "**2.** Carol Danvers — 900 points"
    assert lines[2] == "**3.** Alice Liddell — 700 points"
    assert not by_balance.ephemeral
    assert by_profit.reply["embeds"][0]["title"] == "Best traders (realised profit)"
    # A position still held is not a realised loss; its value shows apart (issue 16).
    assert "Carol Danvers — 0 points (open positions worth 99)" in by_profit.text


async def test_history_pages_with_buttons_and_only_for_its_owner(harness, members):
    mod = members.mod  # moderators are exempt from rate limits: 17 commands in a row
    for _ in range(16):
        await harness.send(harness.command("tip", mod, member=members.bob, amount=1))

    first = await harness.send(harness.command("history", mod))
    rows = first.reply["embeds"][0]["description"].splitlines()
    assert len(rows) == 15
    assert all("**-1** tip" in row for row in rows)

    older = next(b for b in buttons(first.reply) if b["label"] == "Older ▶")
    page2 = await harness.send(harness.click(first.reply, mod, custom_id=older["custom_id"]))
    assert page2.response_type == DEFERRED_UPDATE
    text = page2.reply["embeds"][0]["description"]
    assert "**-1** tip" in text and "**+1,000** starting balance" in text
    assert page2.reply["embeds"][0]["footer"]["text"] == "Page 2"

    intruder = await harness.send(harness.click(page2.reply, members.bob, label="Newest"))
    assert intruder.followups and intruder.followups[-1]["flags"] & 64
    assert "belong to someone else's history" in intruder.text
