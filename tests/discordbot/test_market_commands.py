"""`/market …`, `/bet`, `/sell`, `/portfolio` end to end: what Discord receives and what the
database holds afterwards (DOMAIN §4–§7)."""

from __future__ import annotations

import re

import pytest

from betting.models import Trade
from core.text import MSG_BAD_CHARACTER
from discordbot import actions
from discordbot.permissions import MSG_CREATE_ROLE
from markets import errors as market_errors
from markets.models import Market, MarketEvent
from markets.selectors import market_get
from markets.services import market_close, market_propose, market_resolve
from points import selectors as points_selectors
from points import services as points_services
from points.rules import Actor
from points.rules import permissions as rules

from .conftest import db, make_market
from .harness import DEFERRED, MODAL, Member, Role, buttons

pytestmark = pytest.mark.django_db(transaction=True)

VOTE_HOW = (
    "2 resolvers (members with Manage Server) vote for the same outcome with `/market resolve`; "
    "it pays out at once. A moderator with Manage Server can also resolve directly with "
    "`/market resolve … force:True`. Admins choose how with `/settings resolution`."
)
"""Who resolves in the tests' guild (defaults: vote mode, 2 votes, no dispute window)."""


async def markets_count(h) -> int:
    return await db(h, lambda: Market.objects.count())


async def close(h, market_id: int, actor: int) -> None:
    await db(
        h,
        market_close,
        market_id=market_id,
        actor=Actor.member(actor, manage_guild=True),
        idempotency_key=f"test-close:{market_id}",
    )


# --- Creating ----------------------------------------------------------------------------------


async def test_create_with_options_posts_the_market_message_publicly(harness, members):
    ex = await harness.send(
        harness.command(
            "market create",
            members.alice,
            question="Will it rain on Friday?",
            outcomes="Yes | No | Only drizzle",
            duration="2h",
            category="weather",
        )
    )

    assert ex.response_type == DEFERRED
    assert "flags" not in ex.callback.json.get("data", {}) or not ex.callback.json["data"]["flags"]
    message = ex.reply
    assert not ex.ephemeral
    embed = message["embeds"][0]
    assert embed["title"].endswith("Will it rain on Friday?")
    assert "33.3%" in embed["description"] and "Only drizzle" in embed["description"]
    labels = [b["label"] for b in buttons(message)]
    quick = [f"{a} on {o}" for o in ("Yes", "No", "Only drizzle") for a in ("10", "100", "1,000")]
    assert labels == [
        "Buy Yes",
        "Buy No",
        "Buy Only drizzle",
        "Sell",
        "My position",
        "Refresh",
        "Chart",
        "Order",  # issue 25: a limit order's form
        *quick,  # issue 26: the quick amounts, a row per outcome
    ]

    market_id = int(embed["title"].split()[0].lstrip("#"))
    summary = await db(harness, market_get, market_id=market_id)
    assert (summary.question, summary.category, summary.creator_id) == (
        "Will it rain on Friday?",
        "weather",
        members.alice.id,
    )
    assert [o.label for o in summary.outcomes] == ["Yes", "No", "Only drizzle"]
    # The bot remembered where the market message lives (for refreshes and summaries).
    assert (summary.channel_id, summary.message_id) == (harness.channel_id, int(message["id"]))
    created = await db(
        harness, lambda: MarketEvent.objects.get(type="market_created", market_id=market_id)
    )
    assert created.request_key == f"discord:{ex.payload['id']}"


async def test_create_without_options_opens_a_form_and_the_form_creates(harness, members):
    opened = await harness.send(harness.command("market create", members.alice))

    assert opened.response_type == MODAL
    modal = opened.modal
    assert modal["title"] == "New market"
    inputs = [c["component"]["custom_id"] for c in modal["components"]]
    assert inputs == ["question", "outcomes", "duration", "category", "description"]
    assert await markets_count(harness) == 0

    submitted = await harness.send(
        harness.submit(
            modal,
            members.alice,
            question="Who wins\nthe cup?",
            outcomes="Reds\nBlues\nGreens",
            duration="1d2h30m",
        )
    )

    assert submitted.response_type == DEFERRED
    assert submitted.reply["embeds"][0]["title"].endswith("Who wins the cup?")
    (market,) = await db(harness, lambda: list(Market.objects.all()))
    assert market.question == "Who wins the cup?", "a line break in the form is a space"
    assert (market.closes_at - market.created_at).total_seconds() == pytest.approx(
        (24 * 60 + 150) * 60, abs=5
    )


async def test_create_with_some_options_prefills_the_form(harness, members):
    opened = await harness.send(
        harness.command(
            "market create", members.alice, question="Prefilled?", mechanism="parimutuel"
        )
    )

    values = {
        c["component"]["custom_id"]: c["component"].get("value") for c in opened.modal["components"]
    }
    assert values["question"] == "Prefilled?"
    assert opened.modal["custom_id"] == "pm:m:create:parimutuel:"
    submitted = await harness.send(harness.submit(opened.modal, members.alice, outcomes="A\nB"))
    (market,) = await db(harness, lambda: list(Market.objects.all()))
    assert market.mechanism == "parimutuel"
    assert [b["label"] for b in buttons(submitted.reply)] == [
        "Predict A",
        "Predict B",
        "My position",
        "Refresh",
        "Chart",
        *(f"{a} on {o}" for o in "AB" for a in ("10", "100", "1,000")),  # issue 26
    ]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"question": "   ", "outcomes": "Yes|No"}, market_errors.MSG_QUESTION),
        (
            {"question": "Q?", "outcomes": "Only one"},
            "A market needs 2 to 10 outcomes; you gave 1.",
        ),
        ({"question": "Q?", "outcomes": ",".join(str(i) for i in range(11))}, "you gave 11"),
        ({"question": "Q?", "outcomes": "Yes|yes"}, "Outcomes must be different"),
        ({"question": "Q?", "outcomes": "Yes|" + "x" * 101}, "Each outcome must be 1–100"),
        ({"question": "Q?", "outcomes": "Yes|No", "duration": "forever"}, "is not a duration"),
        ({"question": "Q?", "outcomes": "Yes|No", "duration": "31d"}, "between 1 minute and 30"),
        (
            {"question": "Q?", "outcomes": "Yes|No", "category": "c" * 51},
            market_errors.MSG_CATEGORY,
        ),
        (
            {"question": "Bad\x00question", "outcomes": "Yes|No"},
            MSG_BAD_CHARACTER.format(
                what="The question", character="U+0000 (a NUL character)", position=4
            ),
        ),
    ],
)
async def test_create_refuses_each_invalid_input_with_what_is_allowed(
    harness, members, options, expected
):
    """Discord's option limits are not trusted: the same rules hold when a client sends more."""
    options = {"duration": "1h", **options}
    ex = await harness.send(harness.command("market create", members.alice, **options))

    assert ex.ephemeral
    assert expected in ex.text
    assert await markets_count(harness) == 0


async def test_questions_are_text_not_code(harness, members):
    question = "Won't the *create* <@&555555555555555501> `drop table` question's quote survive?"
    ex = await harness.send(
        harness.command(
            "market create", members.alice, question=question, outcomes="Yes|No", duration="1h"
        )
    )
    (market,) = await db(harness, lambda: list(Market.objects.all()))
    assert market.question == question
    # Rendered escaped: no markdown, no role ping.
    assert "\\*create\\*" in ex.reply["embeds"][0]["title"]
    assert "<@&555555555555555501>" not in ex.reply["embeds"][0]["title"]


async def test_create_with_a_description_shows_it_on_the_market_message(harness, members):
    criteria = "Resolves **Yes** if it rains in Bern on Friday.\n> per MeteoSwiss @everyone"
    ex = await harness.send(
        harness.command(
            "market create",
            members.alice,
            question="Will it rain on Friday?",
            outcomes="Yes | No",
            duration="2h",
            description=criteria,
        )
    )

    (market,) = await db(harness, lambda: list(Market.objects.all()))
    assert market.description == criteria
    description = ex.reply["embeds"][0]["description"]
    assert "Description and resolution criteria" in description
    # Escaped and quoted line by line: no bold, no nested quote, no ping.
    assert "> Resolves \\*\\*Yes\\*\\* if it rains in Bern on Friday." in description
    assert "> \\> per MeteoSwiss @\u200beveryone" in description
    assert description.index("Bern") < description.index("50.0%"), "criteria before outcomes"
    shown = await harness.send(harness.command("market show", members.bob, market=f"#{market.pk}"))
    assert "if it rains in Bern on Friday" in shown.reply["embeds"][0]["description"]


async def test_create_form_takes_a_description_with_line_breaks(harness, members):
    opened = await harness.send(harness.command("market create", members.alice))
    (field,) = [
        c for c in opened.modal["components"] if c["component"]["custom_id"] == "description"
    ]
    assert field["label"] == "Description and resolution criteria"
    assert field["component"]["max_length"] == 1000 and field["component"]["required"] is False

    await harness.send(
        harness.submit(
            opened.modal,
            members.alice,
            question="Who wins the cup?",
            outcomes="Reds\nBlues",
            duration="1d",
            description="Reds or Blues, after extra time.\nA replay counts as the same match.",
        )
    )

    (market,) = await db(harness, lambda: list(Market.objects.all()))
    assert market.description == (
        "Reds or Blues, after extra time.\nA replay counts as the same match."
    )


async def test_a_long_description_full_of_markdown_still_fits_discord(harness, members):
    """1,000 characters that escaping doubles, beside a long question and ten long outcomes:
    the strict fake Discord accepts the message, the outcomes are all there."""
    criteria = ("*_`~|>#-@everyone\n" * 60)[:1000]
    outcomes = " | ".join(f"{i} " + "*" * 98 for i in range(10))
    for question in ("Short?", "Q" + "_" * 499):
        ex = await harness.send(
            harness.command(
                "market create",
                members.alice,
                question=question,
                outcomes=outcomes,
                duration="1h",
                description=criteria,
            )
        )
        embed = ex.reply["embeds"][0]
        assert not ex.ephemeral, ex.text
        assert all(f"{i} \\*\\*" in embed["description"] for i in range(10))
    short = (await db(harness, lambda: Market.objects.order_by("pk").first())).pk
    shown = await harness.send(harness.command("market show", members.bob, market=str(short)))
    assert "Description and resolution criteria" in shown.reply["embeds"][0]["description"]


async def test_create_refuses_a_bad_description_with_what_is_allowed(harness, members):
    options = {"question": "Q?", "outcomes": "Yes|No", "duration": "1h"}
    too_long = await harness.send(
        harness.command("market create", members.alice, **options, description="d" * 1001)
    )
    bidi = await harness.send(
        harness.command("market create", members.alice, **options, description="Yes \u202eoN")
    )

    assert too_long.ephemeral and too_long.text == market_errors.MSG_DESCRIPTION_LENGTH.format(
        length=1001
    )
    assert bidi.ephemeral and "U+202E (an invisible formatting character)" in bidi.text
    assert await markets_count(harness) == 0


async def test_creator_roles_restrict_who_may_create(harness, members):
    creators = Role(555_555_555_555_555_501, "market makers")
    await db(
        harness,
        actions.guild_settings_update_for_interaction,
        guild_id=harness.guild_id,
        actor=Actor.member(members.mod.id, manage_guild=True),
        idempotency_key="test:roles",
        role_kind="creator",
        role_action="add",
        role_id=creators.id,
    )
    options = {"question": "Q?", "outcomes": "Yes|No", "duration": "1h"}
    refused = await harness.send(harness.command("market create", members.alice, **options))
    allowed_member = Member(members.bob.id, "bob", roles=(creators.id,))
    allowed = await harness.send(harness.command("market create", allowed_member, **options))

    assert refused.text == MSG_CREATE_ROLE.format(roles=f"<@&{creators.id}>")
    assert not allowed.ephemeral and allowed.reply["embeds"]
    assert await markets_count(harness) == 1


async def test_only_moderators_choose_liquidity(harness, members):
    options = {"question": "Q?", "outcomes": "Yes|No", "duration": "1h", "liquidity": 50_000}
    refused = await harness.send(harness.command("market create", members.alice, **options))
    allowed = await harness.send(harness.command("market create", members.mod, **options))

    assert "Only moderators can choose a market's liquidity" in refused.text
    assert allowed.reply["embeds"]
    (market,) = await db(harness, lambda: list(Market.objects.all()))
    assert market.liquidity == 50_000


# --- Browsing ----------------------------------------------------------------------------------


async def test_show_posts_the_market_and_other_guilds_markets_are_not_found(harness, members):
    mine = await make_market(harness, creator=members.alice.id, question="Ours?")
    theirs = await make_market(
        harness, creator=members.alice.id, question="Theirs?", guild_id=harness.guild_id + 1
    )

    shown = await harness.send(harness.command("market show", members.bob, market=f"#{mine.id}"))
    hidden = await harness.send(harness.command("market show", members.bob, market=str(theirs.id)))
    nonsense = await harness.send(harness.command("market show", members.bob, market="banana"))

    assert shown.reply["embeds"][0]["title"] == f"#{mine.id} · Ours?"
    assert hidden.text == market_errors.MSG_MARKET_NOT_FOUND.format(market_id=theirs.id)
    assert hidden.ephemeral
    assert "is not a market" in nonsense.text


async def test_list_paginates_with_buttons(harness, members):
    ids = [
        (await make_market(harness, creator=members.alice.id, question=f"Market number {i}?")).id
        for i in range(7)
    ]
    await close(harness, ids[0], members.mod.id)

    first = await harness.send(harness.command("market list", members.bob))
    embed = first.reply["embeds"][0]
    assert embed["title"] == "Open markets (6)"
    assert [f["name"].split(" · ")[0] for f in embed["fields"]] == [
        f"🟢 #{i}" for i in reversed(ids[2:])
    ]
    assert "<t:" in embed["fields"][0]["value"] and "Volume 0" in embed["fields"][0]["value"]
    prev, nxt = buttons(first.reply)
    assert prev["disabled"] and not nxt.get("disabled")

    second = await harness.send(harness.click(first.reply, members.bob, label="Next ▶"))
    embed2 = second.reply["embeds"][0]
    assert [f["name"].split(" · ")[0] for f in embed2["fields"]] == [f"🟢 #{ids[1]}"]
    assert embed2["footer"]["text"].startswith("Page 2 of 2")

    closed = await harness.send(harness.command("market list", members.bob, status="closed"))
    assert closed.reply["embeds"][0]["fields"][0]["name"].startswith(f"🟡 #{ids[0]}")


# --- Trading -----------------------------------------------------------------------------------


async def test_bet_reply_states_shares_average_price_and_new_probability(harness, members):
    market = await make_market(harness, creator=members.alice.id)

    ex = await harness.send(
        harness.command(
            "bet", members.bob, confirm=False, market=str(market.id), outcome="1", amount=100
        )
    )

    trade = await db(harness, lambda: Trade.objects.get())
    assert ex.ephemeral
    shares = trade.shares / 1_000_000
    assert f"You bought **{shares:,.2f} shares** of **Yes**" in ex.text
    assert ex.text.count("Yes") == 1  # the label once per reply
    assert f"for 100 points (average price {100 / shares:.3f} points per share)" in ex.text
    after = await db(harness, market_get, market_id=market.id)
    assert f"now at **{after.outcomes[0].probability * 100:.1f}%**" in ex.text
    assert "Balance: 900 points." in ex.text
    assert trade.idempotency_key == f"discord:{ex.payload['id']}"


async def test_bet_by_outcome_label_and_refusals(harness, members):
    market = await make_market(harness, creator=members.alice.id, outcomes=("Red", "Blue"))

    by_label = await harness.send(
        harness.command(
            "bet", members.bob, confirm=False, market=str(market.id), outcome="blue", amount=10
        )
    )
    too_much = await harness.send(
        harness.command(
            "bet", members.bob, confirm=False, market=str(market.id), outcome="1", amount=5000
        )
    )
    no_outcome = await harness.send(
        harness.command(
            "bet", members.bob, confirm=False, market=str(market.id), outcome="Green", amount=10
        )
    )

    assert "of **Blue**" in by_label.text
    assert too_much.text == "You don't have enough points: you have 990 and need 5,000."
    assert "is not an outcome of market" in no_outcome.text and "1. Red, 2. Blue" in no_outcome.text
    assert await db(harness, lambda: Trade.objects.count()) == 1


async def test_bet_on_a_closed_market_says_it_is_closed(harness, members):
    market = await make_market(harness, creator=members.alice.id)
    await close(harness, market.id, members.mod.id)

    ex = await harness.send(
        harness.command(
            "bet", members.bob, confirm=False, market=str(market.id), outcome="1", amount=10
        )
    )

    assert ex.text == market_errors.MSG_NOT_OPEN.format(market_id=market.id, status="closed")
    assert await db(harness, lambda: Trade.objects.count()) == 0


async def test_bet_above_the_servers_max_bet_is_refused(harness, members):
    mod = Actor.member(members.mod.id, manage_guild=True)
    await db(
        harness,
        actions.guild_settings_update_for_interaction,
        guild_id=harness.guild_id,
        actor=mod,
        idempotency_key="test:max",
        values={"max_bet": 50},
    )
    market = await make_market(harness, creator=members.alice.id)

    ex = await harness.send(
        harness.command(
            "bet", members.bob, confirm=False, market=str(market.id), outcome="1", amount=51
        )
    )

    assert ex.text == market_errors.MSG_BET_ABOVE_MAX.format(max_bet=50)


async def test_sell_all_returns_points_and_pool_markets_refuse_selling(harness, members):
    market = await make_market(harness, creator=members.alice.id)
    pool = await make_market(harness, creator=members.alice.id, mechanism="parimutuel")
    await harness.send(
        harness.command(
            "bet", members.bob, confirm=False, market=str(market.id), outcome="2", amount=200
        )
    )

    sold = await harness.send(
        harness.command("sell", members.bob, confirm=False, market=str(market.id), outcome="2")
    )
    pool_sell = await harness.send(
        harness.command("sell", members.bob, confirm=False, market=str(pool.id), outcome="1")
    )

    sell = await db(harness, lambda: Trade.objects.get(kind="sell"))
    assert f"for **{sell.amount:,} points**" in sold.text
    assert "now at **50.0%**" in sold.text
    bal = await db(
        harness, points_selectors.balance_get, guild_id=harness.guild_id, user_id=members.bob.id
    )
    assert bal == 800 + sell.amount
    assert pool_sell.text == market_errors.MSG_SELL_PARIMUTUEL


async def test_sell_a_number_of_shares_and_bad_share_counts(harness, members):
    market = await make_market(harness, creator=members.alice.id)
    await harness.send(
        harness.command(
            "bet", members.bob, confirm=False, market=str(market.id), outcome="1", amount=100
        )
    )

    partial = await harness.send(
        harness.command(
            "sell", members.bob, confirm=False, market=str(market.id), outcome="1", shares="10.5"
        )
    )
    bad = await harness.send(
        harness.command(
            "sell", members.bob, confirm=False, market=str(market.id), outcome="1", shares="-3"
        )
    )
    nothing = await harness.send(
        harness.command("sell", members.carol, confirm=False, market=str(market.id), outcome="1")
    )

    sell = await db(harness, lambda: Trade.objects.get(kind="sell"))
    assert sell.shares == 10_500_000  # exactly what was asked (DOMAIN §4.4)
    assert "You sold" in partial.text
    assert "is not a number of shares" in bad.text
    assert nothing.text == market_errors.MSG_NO_SHARES.format(label="Yes", market_id=market.id)


async def test_portfolio_shows_positions_for_yourself_or_another_member(harness, members):
    market = await make_market(harness, creator=members.alice.id, question="Portfolio?")
    await harness.send(
        harness.command(
            "bet", members.bob, confirm=False, market=str(market.id), outcome="1", amount=100
        )
    )

    own = await harness.send(harness.command("portfolio", members.bob))
    other = await harness.send(harness.command("portfolio", members.alice, member=members.bob))

    embed = own.reply["embeds"][0]
    assert embed["title"] == "Portfolio of Bob Builder"
    assert embed["description"].startswith("Balance: **900 points**")
    assert embed["fields"][0]["name"] == f"🟢 #{market.id} · Portfolio?"
    assert "Yes:" in embed["fields"][0]["value"] and "profit" in embed["fields"][0]["value"]
    assert other.reply["embeds"][0]["fields"] == embed["fields"]


async def test_portfolio_values_pending_results_alike_and_drops_sold_out_rows(harness, members):
    """Issue 23 items 5 and 8: a position in a market whose result is proposed counts in the
    header as in the list, marked "pending result"; a sold-out position shows no "0.00 shares ·
    worth 0" row; a settled market says won or lost, not "now 53.0%"."""
    mod = Actor.member(members.mod.id, manage_guild=True)
    await db(
        harness,
        points_services.guild_settings_update,
        guild_id=harness.guild_id,
        actor=mod,
        idempotency_key="t:window",
        values={"dispute_window_minutes": 60},
    )
    proposed = await make_market(harness, creator=members.alice.id, question="Proposed?")
    sold = await make_market(harness, creator=members.alice.id, question="Sold?")
    settled = await make_market(harness, creator=members.alice.id, question="Settled?")
    for m in (proposed, sold, settled):
        await harness.send(
            harness.command(
                "bet", members.bob, confirm=False, market=str(m.id), outcome="1", amount=100
            )
        )
    await harness.send(
        harness.command("sell", members.bob, confirm=False, market=str(sold.id), outcome="1")
    )
    for m in (proposed, settled):
        await close(harness, m.id, members.mod.id)
    await db(
        harness,
        market_propose,
        market_id=proposed.id,
        outcome=0,
        actor=mod,
        idempotency_key="t:propose",
    )
    await db(
        harness,
        market_resolve,
        market_id=settled.id,
        outcome=0,
        actor=mod,
        reason="Official",
        idempotency_key="t:resolve",
    )

    embed = (await harness.send(harness.command("portfolio", members.bob))).reply["embeds"][0]

    rows = {f["name"]: f["value"] for f in embed["fields"]}
    pending = rows[f"⚖️ #{proposed.id} · Proposed?"]
    worth = int(re.search(r"worth ([\d,]+)", pending).group(1).replace(",", ""))
    assert worth > 0 and "pending result" in pending and "now " not in pending
    header = embed["description"]
    assert f"open positions worth **{worth:,} points**" in header, header
    assert "1 market pending result" in header
    assert not any("Sold?" in name for name in rows), rows  # no "0.00 shares · worth 0"
    won = rows[f"✅ #{settled.id} · Settled?"]
    assert won.endswith("· won") and "now " not in won


# --- Moderation --------------------------------------------------------------------------------


async def test_close_by_creator_or_moderator_only(harness, members):
    a = await make_market(harness, creator=members.alice.id)
    b = await make_market(harness, creator=members.alice.id)

    stranger = await harness.send(harness.command("market close", members.bob, market=str(a.id)))
    creator = await harness.send(harness.command("market close", members.alice, market=str(a.id)))
    mod = await harness.send(
        harness.command("market close", members.mod, market=str(b.id), reason="Event moved")
    )

    assert stranger.text == rules.MSG_CLOSE.format(market=a.id)
    assert "Trading on" in creator.text and not creator.ephemeral
    assert creator.reply["embeds"][0]["fields"][0]["value"].startswith("🟡")
    assert mod.reply["content"].startswith(f"⏸️ Trading on #{b.id} is closed.")
    assert [x.status for x in [await db(harness, market_get, market_id=m.id) for m in (a, b)]] == [
        "closed",
        "closed",
    ]


async def test_resolve_is_a_vote_and_needs_permission(harness, members):
    market = await make_market(harness, creator=members.alice.id)
    await harness.send(
        harness.command(
            "bet", members.bob, confirm=False, market=str(market.id), outcome="1", amount=100
        )
    )
    await close(harness, market.id, members.mod.id)
    mod2 = Member(333_333_333_333_333_302, "mod2", members.mod.permissions)

    denied = await harness.send(
        harness.command("market resolve", members.bob, market=str(market.id), outcome="1")
    )
    first = await harness.send(
        harness.command("market resolve", members.mod, market=str(market.id), outcome="Yes")
    )
    second = await harness.send(
        harness.command("market resolve", mod2, market=str(market.id), outcome="1")
    )

    assert denied.text == rules.MSG_VOTE_MANAGE
    assert first.text == (
        f"🗳️ <@{members.mod.id}> voted **Yes** for #{market.id} (1 of 2 votes needed).\n" + VOTE_HOW
    )
    assert not first.ephemeral
    assert second.text.startswith(f"✅ Market #{market.id} resolved: **Yes**.")
    summary = await db(harness, market_get, market_id=market.id)
    assert (summary.status, summary.winning_position) == ("resolved", 0)
    balance = await db(
        harness, points_selectors.balance_get, guild_id=harness.guild_id, user_id=members.bob.id
    )
    assert balance > 1000  # the winning shares paid out


async def test_resolve_with_force_needs_manage_server_and_a_reason(harness, members):
    market = await make_market(harness, creator=members.alice.id)
    await close(harness, market.id, members.mod.id)

    no_reason = await harness.send(
        harness.command(
            "market resolve", members.mod, market=str(market.id), outcome="2", force=True
        )
    )
    not_mod = await harness.send(
        harness.command(
            "market resolve",
            members.alice,
            market=str(market.id),
            outcome="2",
            force=True,
            reason="I know",
        )
    )
    done = await harness.send(
        harness.command(
            "market resolve",
            members.mod,
            market=str(market.id),
            outcome="2",
            force=True,
            reason="Official result",
        )
    )

    assert no_reason.text == "A direct resolution needs a reason (1–500 characters)."
    assert not_mod.text == rules.MSG_RESOLVE
    assert done.text.startswith(f"✅ Market #{market.id} resolved: **No**.")
    summary = await db(harness, market_get, market_id=market.id)
    assert (summary.status, summary.settle_reason) == ("resolved", "Official result")


async def test_cancel_refunds_and_is_for_moderators_only(harness, members):
    market = await make_market(harness, creator=members.alice.id)
    await harness.send(
        harness.command(
            "bet", members.bob, confirm=False, market=str(market.id), outcome="1", amount=300
        )
    )

    denied = await harness.send(
        harness.command("market cancel", members.alice, market=str(market.id), reason="Oops")
    )
    done = await harness.send(
        harness.command("market cancel", members.mod, market=str(market.id), reason="Duplicate")
    )

    assert denied.text == rules.MSG_CANCEL
    assert (
        done.reply["content"] == f"❌ Market #{market.id} was cancelled; every trader was refunded."
    )
    assert done.reply["embeds"][0]["fields"][0]["value"] == "❌ Cancelled, refunded"
    summary = await db(harness, market_get, market_id=market.id)
    assert summary.status == "cancelled"
    balance = await db(
        harness, points_selectors.balance_get, guild_id=harness.guild_id, user_id=members.bob.id
    )
    assert balance == 1000
