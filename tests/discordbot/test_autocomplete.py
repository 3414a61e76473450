"""Autocomplete for `<market>` (this guild's markets matching the typed text, newest first, in the
statuses the command accepts), `<outcome>` (the chosen market's outcomes with their price) and
categories, within Discord's 25 results and 100-character names."""

from __future__ import annotations

import asyncio

import pytest

from markets.services import market_close
from points.rules import Actor

from .conftest import db, make_market
from .harness import AUTOCOMPLETE

pytestmark = pytest.mark.django_db(transaction=True)


async def test_market_autocomplete_matches_text_newest_first_in_this_guild(harness, members):
    old = await make_market(harness, creator=members.alice.id, question="Rain in Paris?")
    new = await make_market(harness, creator=members.alice.id, question="Rain in Rome?")
    await make_market(harness, creator=members.alice.id, question="Sun in Oslo?")
    await make_market(
        harness, creator=members.alice.id, question="Rain elsewhere?", guild_id=harness.guild_id + 1
    )

    ex = await harness.send(
        harness.autocomplete("bet", members.bob, "market", market="rain", outcome="", amount=1)
    )

    assert ex.response_type == AUTOCOMPLETE
    assert [c["value"] for c in ex.choices] == [str(new.id), str(old.id)]
    assert ex.choices[0]["name"] == f"#{new.id} · Rain in Rome? (50.0% Yes)"


async def test_market_autocomplete_offers_only_the_statuses_the_command_takes(harness, members):
    open_ = await make_market(harness, creator=members.alice.id, question="Open one?")
    closed = await make_market(harness, creator=members.alice.id, question="Closed one?")
    await db(
        harness,
        market_close,
        market_id=closed.id,
        actor=Actor.member(members.alice.id),
        idempotency_key="test:close",
    )

    bet = await harness.send(harness.autocomplete("bet", members.bob, "market", market=""))
    resolve = await harness.send(
        harness.autocomplete("market resolve", members.mod, "market", market="")
    )
    cancel = await harness.send(
        harness.autocomplete("market cancel", members.mod, "market", market="one")
    )

    assert [c["value"] for c in bet.choices] == [str(open_.id)]
    assert [c["value"] for c in resolve.choices] == [str(closed.id)]
    assert [c["value"] for c in cancel.choices] == [str(closed.id), str(open_.id)]


async def test_market_autocomplete_caps_at_25_and_fits_long_unicode_questions(harness, members):
    for i in range(30):
        await make_market(harness, creator=members.alice.id, question=f"{i} " + "𝔘" * 400)

    ex = await harness.send(harness.autocomplete("bet", members.bob, "market", market=""))

    assert len(ex.choices) == 25
    assert all(len(c["name"].encode("utf-16-le")) // 2 <= 100 for c in ex.choices)
    assert ex.rejected == []


async def test_outcome_autocomplete_lists_the_chosen_markets_outcomes_with_prices(harness, members):
    market = await make_market(
        harness, creator=members.alice.id, outcomes=("Reds", "Blues", "Greens")
    )
    await harness.send(
        harness.command(
            "bet", members.bob, confirm=False, market=str(market.id), outcome="2", amount=200
        )
    )

    every = await harness.send(
        harness.autocomplete("bet", members.bob, "outcome", market=str(market.id), outcome="")
    )
    typed = await harness.send(
        harness.autocomplete("bet", members.bob, "outcome", market=str(market.id), outcome="gre")
    )
    no_market = await harness.send(
        harness.autocomplete("bet", members.bob, "outcome", market="999999", outcome="")
    )

    assert [c["value"] for c in every.choices] == ["1", "2", "3"]
    assert every.choices[1]["name"].startswith("Blues — ")
    assert float(every.choices[1]["name"].split("— ")[1].rstrip("%")) > 33.4
    assert [c["name"].split(" — ")[0] for c in typed.choices] == ["Greens"]
    assert no_market.choices == []


async def test_category_autocomplete(harness, members):
    await make_market(harness, creator=members.alice.id, category="sports")
    await make_market(harness, creator=members.alice.id, category="weather")

    ex = await harness.send(
        harness.autocomplete("market list", members.bob, "category", category="spo")
    )

    assert ex.choices == [{"name": "sports", "value": "sports"}]


def _values(ex) -> list[str]:
    return [c["value"] for c in ex.choices]


async def test_a_rush_types_against_one_kept_list_and_new_markets_show_when_their_event_comes(
    harness, members, monkeypatch
):
    """Issue 21: members typing in `/bet`'s market option during a rush read the guild's list
    once (kept `LISTING_SECONDS`), each filtering it as the database search would. A market
    this process creates shows at once; one another process creates shows when this process
    plans its event (or the list runs out)."""
    from discordbot import autocomplete

    reads = []
    real = autocomplete.market_list
    monkeypatch.setattr(
        autocomplete, "market_list", lambda **kw: reads.append(kw) or real(**kw)
    )  # fmt: skip
    paris = await make_market(harness, creator=members.alice.id, question="Rain in Paris?")
    rome = await make_market(harness, creator=members.alice.id, question="Rain in Rome?")
    oslo = await make_market(harness, creator=members.alice.id, question="Sun in OSLO?")
    typed = ["rain", "oslo", "", f"#{paris.id}", "ROME", "snow"] * 5
    answers = await asyncio.gather(
        *(harness.send(harness.autocomplete("bet", members.bob, "market", market=t)) for t in typed)
    )
    expected = {
        "rain": [str(rome.id), str(paris.id)],
        "oslo": [str(oslo.id)],
        "": [str(oslo.id), str(rome.id), str(paris.id)],
        f"#{paris.id}": [str(paris.id)],
        "ROME": [str(rome.id)],
        "snow": [],
    }
    assert [_values(ex) for ex in answers] == [expected[t] for t in typed]
    assert len(reads) == 1  # thirty members, one read

    # Another process creates a market: not in the kept list until its event is planned.
    other = await make_market(harness, creator=members.alice.id, question="Rain in Oslo?")
    ex = await harness.send(harness.autocomplete("bet", members.bob, "market", market="rain"))
    assert _values(ex) == [str(rome.id), str(paris.id)]
    await harness.bot.get_cog("Notifications").notifier.plan_once()
    ex = await harness.send(harness.autocomplete("bet", members.bob, "market", market="rain"))
    assert _values(ex) == [str(other.id), str(rome.id), str(paris.id)]

    # Created through this bot: offered at once.
    made = await harness.send(
        harness.command(
            "market create", members.alice, question="Rain in Lima?", outcomes="Yes | No",
            duration="1d",
        )
    )  # fmt: skip
    assert made.reply is not None and "Rain in Lima?" in str(made.reply["embeds"]), made.text
    ex = await harness.send(harness.autocomplete("bet", members.bob, "market", market="lima"))
    assert len(_values(ex)) == 1


async def test_a_guild_with_more_markets_than_the_kept_list_is_searched_in_the_database(
    harness, members, monkeypatch
):
    from discordbot import autocomplete

    monkeypatch.setattr(autocomplete, "LISTING_CAP", 3)
    oldest = await make_market(harness, creator=members.alice.id, question="The oldest one?")
    for i in range(4):
        await make_market(harness, creator=members.alice.id, question=f"Newer {i}?")
    ex = await harness.send(harness.autocomplete("bet", members.bob, "market", market="oldest"))
    assert _values(ex) == [str(oldest.id)]  # beyond the 3 kept: found by the search
