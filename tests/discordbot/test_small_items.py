"""Issue 13's smaller items: pools refuse `liquidity`; a comma split is shown and the creator
can take the market back within a minute while nobody has traded; refused inputs spend no
trade; an identical repeated vote answers privately; empty settlements say "nobody traded";
settled markets show the winner first."""

from __future__ import annotations

import datetime as dt

import pytest

from betting.models import Trade
from discordbot import render
from discordbot.market_create import split_at_commas
from discordbot.market_ui import MSG_WITHDRAWN
from markets.errors import MarketStateError
from markets.models import Market, MarketEvent
from markets.selectors import market_get
from markets.services import market_close, market_withdraw
from markets.services.creation import (
    MSG_LIQUIDITY_POOL,
    MSG_WITHDRAW_CREATOR,
    MSG_WITHDRAW_LATE,
    MSG_WITHDRAW_TRADED,
)
from points.errors import NotAllowed
from points.models import Account
from points.rules import Actor

from .conftest import db, make_market
from .harness import DEFERRED_UPDATE, Member, buttons
from .test_market_commands import VOTE_HOW

pytestmark = pytest.mark.django_db(transaction=True)


# --- Pools refuse liquidity --------------------------------------------------------------------


async def test_a_pool_with_liquidity_is_refused_with_a_reason(harness, members):
    ex = await harness.send(
        harness.command(
            "market create",
            members.mod,
            question="Who wins?",
            outcomes="A | B",
            duration="1h",
            mechanism="parimutuel",
            liquidity=5000,
        )
    )

    assert ex.text == MSG_LIQUIDITY_POOL and ex.ephemeral
    assert await db(harness, lambda: Market.objects.count()) == 0


# --- Comma splits and taking a market back ------------------------------------------------------


def test_split_at_commas_only_when_no_bar_or_lines():
    assert split_at_commas("Yes, on time, No")
    assert not split_at_commas("Yes | on time, late | No")
    assert not split_at_commas("Yes\nNo, late")
    assert not split_at_commas("Yes | No")


async def create_with_commas(h, member, outcomes="Yes, on time, No"):
    ex = await h.send(
        h.command("market create", member, question="Train?", outcomes=outcomes, duration="1h")
    )
    market_id = int(ex.messages[0]["embeds"][0]["title"].split()[0].lstrip("#"))
    return ex, market_id


async def test_a_comma_split_is_shown_and_the_creator_can_take_it_back(harness, members):
    ex, market_id = await create_with_commas(harness, members.alice)

    public, note = ex.messages[0], ex.messages[-1]
    assert public["embeds"] and not int(public.get("flags") or 0) & 64
    assert int(note["flags"]) & 64  # only the creator sees the note
    assert "split at the commas into 3: “Yes” · “on time” · “No”" in note["content"]
    (button,) = buttons(note)
    assert button["label"] == "Cancel this market"

    taken = await harness.send(harness.click(note, members.alice, label="Cancel this market"))

    assert taken.response_type == DEFERRED_UPDATE
    assert taken.text == MSG_WITHDRAWN.format(market_id=market_id)
    summary = await db(harness, market_get, market_id=market_id)
    assert summary.status == "cancelled"
    # The liquidity went back: the market's escrow is empty.
    escrow = await db(harness, lambda: Account.objects.get(market_id=market_id))
    assert escrow.balance == 0


async def test_no_note_without_commas(harness, members):
    ex = await harness.send(
        harness.command(
            "market create", members.alice, question="Q?", outcomes="Yes | No", duration="1h"
        )
    )
    assert len(ex.messages) == 1


async def test_taking_back_is_refused_after_a_trade_or_for_someone_else(harness, members):
    ex, market_id = await create_with_commas(harness, members.alice)
    note = ex.messages[-1]
    await harness.send(
        harness.command(
            "bet", members.bob, confirm=False, market=str(market_id), outcome="1", amount=10
        )
    )

    other = await harness.send(harness.click(note, members.bob, label="Cancel this market"))
    traded = await harness.send(harness.click(note, members.alice, label="Cancel this market"))

    assert other.text == MSG_WITHDRAW_CREATOR
    assert traded.text == MSG_WITHDRAW_TRADED.format(market_id=market_id)
    assert (await db(harness, market_get, market_id=market_id)).status == "open"


async def test_taking_back_is_refused_after_a_minute(harness, members):
    market = await make_market(harness, creator=members.alice.id)
    later = market.created_at + dt.timedelta(seconds=61)

    with pytest.raises(MarketStateError) as late:
        await db(
            harness,
            market_withdraw,
            market_id=market.id,
            actor_id=members.alice.id,
            idempotency_key="test:wd",
            now=later,
        )
    with pytest.raises(NotAllowed):
        await db(
            harness,
            market_withdraw,
            market_id=market.id,
            actor_id=members.bob.id,
            idempotency_key="test:wd2",
        )

    assert late.value.message == MSG_WITHDRAW_LATE.format(market_id=market.id, seconds=60)
    assert (await db(harness, market_get, market_id=market.id)).status == "open"


# --- Refused inputs spend no trade --------------------------------------------------------------


async def test_refused_trades_do_not_count_against_the_trade_limit(harness, members):
    market = await make_market(harness, creator=members.alice.id)

    def bet(amount, outcome="1"):
        return harness.command(
            "bet", members.bob, confirm=False, market=str(market.id), outcome=outcome, amount=amount
        )

    refused = [await harness.send(bet(5000)), await harness.send(bet(1, outcome="9"))]
    refused.append(await harness.send(bet(10**12)))
    done = [await harness.send(bet(1)) for _ in range(5)]
    sixth = await harness.send(bet(1))

    assert all("too fast" not in r.text and "You bought" not in r.text for r in refused)
    assert all("You bought" in d.text for d in done)
    assert "at most 5 trades a minute" in sixth.text
    assert await db(harness, lambda: Trade.objects.count()) == 5


async def test_quotes_do_not_count_as_trades_but_confirms_do(harness, members, ratelimit_clock):
    market = await make_market(harness, creator=members.alice.id)
    quotes = [
        await harness.send(
            harness.command("bet", members.bob, market=str(market.id), outcome="1", amount=1)
        )
        for _ in range(6)
    ]
    assert all("**Quote**" in q.text for q in quotes)

    ratelimit_clock.advance(60)
    confirmed = [
        await harness.send(harness.click(q.reply, members.bob, label="Confirm")) for q in quotes
    ]

    assert all("You bought" in c.text for c in confirmed[:5])
    assert "at most 5 trades a minute" in confirmed[5].text
    assert await db(harness, lambda: Trade.objects.count()) == 5


# --- Votes ---------------------------------------------------------------------------------------


async def test_an_identical_repeated_vote_answers_privately(harness, members):
    market = await make_market(harness, creator=members.alice.id)
    await db(
        harness,
        market_close,
        market_id=market.id,
        actor=Actor.member(members.alice.id),
        idempotency_key="test:close",
    )

    first = await harness.send(
        harness.command("market resolve", members.mod, market=str(market.id), outcome="1")
    )
    again = await harness.send(
        harness.command("market resolve", members.mod, market=str(market.id), outcome="Yes")
    )

    assert not first.ephemeral and "voted **Yes**" in first.text
    assert again.ephemeral
    # The paragraph on how the market is resolved was in the public vote post; the private
    # repeat links to it (issue 23 item 9).
    assert VOTE_HOW in first.text
    line, link = again.text.split("\n")
    assert line == (
        f"You already voted **Yes** for #{market.id} (1 of 2 votes needed); nothing changed."
    )
    assert link.startswith("How this market is resolved: https://discord.com/channels/")
    assert [m for m in again.messages if not int(m.get("flags") or 0) & 64] == []
    votes = await db(harness, lambda: MarketEvent.objects.filter(type="vote_cast").count())
    assert votes == 1


# --- Settled markets and empty settlements -------------------------------------------------------


async def test_empty_settlements_say_nobody_traded(harness, members):
    market = await make_market(harness, creator=members.alice.id)
    summary = await db(harness, market_get, market_id=market.id)

    cancelled = render.settlement_embed(
        summary, {"reason": "Rain", "total_refunded": 0, "refunded_count": 0}, cancelled=True
    )
    resolved = render.settlement_embed(
        summary, {"label": "Yes", "total_paid": 0, "refunded_all": True}, cancelled=False
    )

    assert "Nobody traded, so there was nothing to refund." in cancelled.description
    assert "Refunded" not in cancelled.description
    assert "Nobody traded, so nobody was paid." in resolved.description
    assert "every stake" not in resolved.description


async def test_a_settled_pool_shows_the_winner_first_and_what_was_paid(harness, members):
    market = await make_market(
        harness, creator=members.alice.id, outcomes=("Alice", "Bob"), mechanism="parimutuel"
    )
    for member, outcome, amount in ((members.bob, "1", 100), (members.carol, "2", 300)):
        await harness.send(
            harness.command(
                "bet", member, confirm=False, market=str(market.id), outcome=outcome, amount=amount
            )
        )
    await db(
        harness,
        market_close,
        market_id=market.id,
        actor=Actor.member(members.alice.id),
        idempotency_key="test:close",
    )
    resolver = Member(333_333_333_333_333_302, "mod2", members.mod.permissions)
    await harness.send(
        harness.command("market resolve", members.mod, market=str(market.id), outcome="2")
    )
    done = await harness.send(
        harness.command("market resolve", resolver, market=str(market.id), outcome="2")
    )

    embed = done.reply["embeds"][0]
    lines = embed["description"].splitlines()
    assert lines[0] == "🏆 **Bob**" and lines[1] == "▫️ Alice"
    assert "%" not in embed["description"] and "█" not in embed["description"]
    winner = next(f for f in embed["fields"] if f["name"] == "Winner")
    assert winner["value"] == "🏆 Bob · 400 points paid to its predictors"
