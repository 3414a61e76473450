"""One-click predictions (issue 26 item "one-click predictions"): the quick amounts under a
market message, the pool stake they place at once with its receipt and Undo, the market maker's
quote they open, and the setting that chooses them — through the strict fake Discord."""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from betting.models import Position, Trade
from dashboard.events import event_summary
from markets.models import MarketEvent, Outcome
from markets.services import market_close
from points.models import Account, Transfer
from points.rules import Actor
from points.selectors import balance_get

from .conftest import db
from .harness import DEFERRED, buttons

pytestmark = pytest.mark.django_db(transaction=True)


async def posted(h, members, *, outcomes="Yes | No", mechanism="parimutuel"):
    ex = await h.send(
        h.command(
            "market create",
            members.alice,
            question="Will the ferry run on Sunday?",
            outcomes=outcomes,
            duration="3d",
            mechanism=mechanism,
        )
    )
    message = ex.reply
    market_id = int(message["embeds"][0]["title"].split()[0].lstrip("#"))
    return market_id, message


def labels(message: dict) -> list[str]:
    return [b.get("label", "") for b in buttons(message)]


async def test_a_pool_shows_a_row_of_quick_amounts_per_outcome(harness, members):
    _, message = await posted(harness, members)
    shown = labels(message)
    for amount in ("10", "100", "1,000"):
        assert f"{amount} on Yes" in shown and f"{amount} on No" in shown
    assert len(message["components"]) <= 5
    assert all(len(row["components"]) <= 5 for row in message["components"])


async def test_a_click_stakes_at_once_and_undo_gives_it_back_once(harness, members):
    market_id, message = await posted(harness, members)
    click = await harness.send(harness.click(message, members.bob, label="100 on Yes"))
    assert click.ephemeral and click.response_type == DEFERRED
    assert "Undo" in click.text and "10 seconds" in click.text
    stake = await db(harness, lambda: Trade.objects.get(user_id=members.bob.id))
    assert (stake.kind, stake.amount) == ("stake", 100)
    assert stake.idempotency_key == f"discord:{click.payload['id']}"
    assert await db(harness, balance_get, guild_id=harness.guild_id, user_id=members.bob.id) == 900

    receipt = copy.deepcopy(click.reply)  # as a second client still shows it
    undo = await harness.send(harness.click(receipt, members.bob, label="Undo"))
    assert "Undone" in undo.text and "**100** points on **Yes**" in undo.text
    assert "Balance: **1,000** points" in undo.text
    assert await db(harness, balance_get, guild_id=harness.guild_id, user_id=members.bob.id) == (
        1000
    )
    staked = await db(harness, lambda: list(Outcome.objects.values_list("staked", flat=True)))
    assert sum(staked) == 0
    spent = await db(harness, lambda: Position.objects.get(user_id=members.bob.id).points_spent)
    assert spent == 0

    # The outbox says it (the dashboard's live feed, the market message's refresh).
    event = await db(harness, lambda: MarketEvent.objects.filter(type="trade").last())
    assert event.payload["kind"] == "undo" and event.request_key == f"undo:{stake.idempotency_key}"
    line = event_summary(event.type, market_id, event.payload, {members.bob.id: "Bob"})
    assert line.startswith(f"#{market_id}: Bob took back 100 pts staked on “Yes”")

    # The same Undo clicked again (a second client, a retry) pays nothing more.
    again = await harness.send(harness.click(receipt, members.bob, label="Undo"))
    assert "Already undone" in again.text
    assert await db(harness, balance_get, guild_id=harness.guild_id, user_id=members.bob.id) == (
        1000
    )
    refunds = await db(
        harness, lambda: Transfer.objects.filter(code="refund", market_id=market_id).count()
    )
    assert refunds == 1


async def test_only_the_staker_may_undo(harness, members):
    _, message = await posted(harness, members)
    click = await harness.send(harness.click(message, members.bob, label="10 on No"))
    other = await harness.send(harness.click(click.reply, members.carol, label="Undo"))
    assert "belongs to another member" in other.text
    assert await db(harness, balance_get, guild_id=harness.guild_id, user_id=members.bob.id) == 990


async def test_undo_after_ten_seconds_is_refused_and_nothing_moves(harness, members):
    _, message = await posted(harness, members)
    click = await harness.send(harness.click(message, members.bob, label="100 on No"))
    await db(
        harness,
        lambda: Trade.objects.filter(user_id=members.bob.id).update(
            created_at=Trade.objects.get(user_id=members.bob.id).created_at
            - dt.timedelta(seconds=11)
        ),
    )
    late = await harness.send(harness.click(click.reply, members.bob, label="Undo"))
    assert "Too late to undo" in late.text and "within 10 seconds" in late.text
    assert await db(harness, balance_get, guild_id=harness.guild_id, user_id=members.bob.id) == 900


async def test_undo_after_the_market_closed_is_refused(harness, members):
    market_id, message = await posted(harness, members)
    click = await harness.send(harness.click(message, members.bob, label="100 on No"))
    await db(
        harness,
        market_close,
        market_id=market_id,
        actor=Actor.member(members.alice.id),
        idempotency_key="test:close",
    )
    late = await harness.send(harness.click(click.reply, members.bob, label="Undo"))
    assert f"Market #{market_id} is closed" in late.text and "no longer be taken back" in late.text
    assert await db(harness, balance_get, guild_id=harness.guild_id, user_id=members.bob.id) == 900
    escrow = await db(
        harness, lambda: Account.objects.get(kind="escrow", market_id=market_id).balance
    )
    assert escrow == 100


async def test_a_quick_amount_above_the_balance_is_refused_without_undo(harness, members):
    _, message = await posted(harness, members)
    await harness.send(harness.click(message, members.bob, label="1,000 on Yes"))
    again = await harness.send(harness.click(message, members.bob, label="1,000 on Yes"))
    assert "You don't have enough points" in again.text
    assert "Undo" not in labels(again.reply)


async def test_a_market_maker_opens_the_quote_with_the_amount_filled_in(harness, members):
    _, message = await posted(harness, members, mechanism="amm")
    click = await harness.send(harness.click(message, members.bob, label="100 on Yes"))
    assert click.ephemeral and "**Quote** · buy **Yes**" in click.text
    assert "Confirm" in labels(click.reply)
    assert await db(harness, lambda: Trade.objects.count()) == 0


async def test_many_outcomes_get_one_select_of_outcome_and_amount(harness, members):
    outcomes = " | ".join(f"Team {n}" for n in range(1, 11))
    market_id, message = await posted(harness, members, outcomes=outcomes)
    assert len(message["components"]) <= 5
    select = next(c for c in buttons(message) if c["type"] == 3)
    assert len(select["options"]) <= 25
    assert {o["label"] for o in select["options"]} >= {
        "10 points on Team 1",
        "100 points on Team 10",
    }
    value = next(o["value"] for o in select["options"] if o["label"] == "100 points on Team 10")
    picked = await harness.send(
        harness.click(message, members.bob, custom_id=select["custom_id"], values=[value])
    )
    assert "Undo" in labels(picked.reply)
    trade = await db(harness, lambda: Trade.objects.select_related("outcome").get())
    assert (trade.outcome.label, trade.amount, trade.market_id) == ("Team 10", 100, market_id)


async def test_the_setting_chooses_the_amounts_and_refuses_bad_ones(harness, members):
    bad = await harness.send(harness.command("settings quick_amounts", members.mod, amounts="5, 5"))
    assert "Quick amounts are 1 to 5 different whole numbers of points" in bad.text
    words = await harness.send(
        harness.command("settings quick_amounts", members.mod, amounts="ten")
    )
    assert "“ten” is not a whole number of points" in words.text
    ok = await harness.send(
        harness.command("settings quick_amounts", members.mod, amounts="5, 50 | 2,500")
    )
    assert ok.text.startswith("Saved.")
    _, message = await posted(harness, members)
    shown = labels(message)
    assert {"5 on Yes", "50 on No", "2,500 on Yes"} <= set(shown)
    assert "10 on Yes" not in shown


@pytest.mark.parametrize("count", [3, 10])
async def test_the_longest_labels_and_amounts_fit_discords_limits(harness, members, count):
    """Outcomes of 100 characters (docs/domain.md §7) and five amounts of 15 digits: every
    label, option and custom_id within §8, as the fake (which refuses what Discord refuses)
    accepts the message."""
    top = 10**15
    amounts = ", ".join(f"{top - i:,}" for i in range(5))
    ok = await harness.send(harness.command("settings quick_amounts", members.mod, amounts=amounts))
    assert ok.text.startswith("Saved.")
    outcomes = " | ".join(str(n) + "x" * 99 for n in range(count))
    _, message = await posted(harness, members, outcomes=outcomes)
    assert harness.fake.rejections == []
    assert len(message["components"]) <= 5
    quick = [c for c in buttons(message) if c["custom_id"].startswith("pm:qa")]
    assert quick and all(len(c["custom_id"]) <= 100 for c in quick)
    for c in quick:
        assert len(c.get("label", "")) <= 80
        for option in c.get("options", []):
            assert len(option["label"]) <= 100
    assert len(quick) == (15 if count == 3 else 1)
