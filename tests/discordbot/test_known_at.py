"""`/market resolve|confirm … known_at:` (docs/domain.md §6.2): what members type for the moment
the outcome became known, and what the replies say was reversed, through the strict fake
Discord."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from betting.services import shares_sell
from discordbot import parsing
from markets.models import Market
from markets.selectors import market_get
from markets.services import market_propose, market_resolve
from points import selectors as points_selectors
from points.errors import InvalidInput
from points.rules import Actor

from .conftest import db, make_market
from .harness import ANNOUNCE_CHANNEL, message_text
from .test_dispute import configure
from .test_market_commands import close
from .test_notifier import announce_in, bet, dm_texts, notifier

NOW = dt.datetime(2026, 12, 7, 13, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("<t:1700000000>", dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC)),
        ("<t:1700000000:R>", dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC)),
        ("12:30", dt.datetime(2026, 12, 7, 12, 30, tzinfo=dt.UTC)),
        ("21:00", dt.datetime(2026, 12, 6, 21, 0, tzinfo=dt.UTC)),  # the latest 21:00 not ahead
        ("15 minutes ago", NOW - dt.timedelta(minutes=15)),
        ("2 hours ago", NOW - dt.timedelta(hours=2)),
        ("  ", None),
    ],
)
def test_known_at_is_a_discord_timestamp_a_time_of_day_or_some_time_ago(typed, expected):
    assert parsing.known_at_text(typed, now=NOW) == expected


def test_a_time_of_day_is_read_in_the_servers_time_zone():
    paris = parsing.known_at_text("21:00", now=NOW, zone="Europe/Paris")
    assert paris == dt.datetime(2026, 12, 6, 20, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize("typed", ["yesterday", "<t:abc>", "25:00", "15 parsecs ago"])
def test_anything_else_is_refused_with_the_forms_allowed(typed):
    with pytest.raises(InvalidInput) as refused:
        parsing.known_at_text(typed, now=NOW)
    assert "<t:1700000000:R>" in str(refused.value) and "15 minutes" in str(refused.value)


@pytest.mark.django_db(transaction=True)
async def test_force_with_known_at_reverses_the_late_trades_and_says_so(harness, members):
    market = await make_market(harness, creator=members.alice.id)
    await harness.send(
        harness.command(
            "bet", members.bob, confirm=False, market=str(market.id), outcome="1", amount=100
        )
    )
    # Discord timestamps are whole seconds: the late bet waits for the next one.
    second = math.ceil(timezone.now().timestamp())
    await asyncio.sleep(second - timezone.now().timestamp() + 0.05)
    await harness.send(
        harness.command(
            "bet", members.carol, confirm=False, market=str(market.id), outcome="1", amount=300
        )
    )
    await close(harness, market.id, members.mod.id)
    stamp = f"<t:{second}:R>"

    bad = await harness.send(
        harness.command(
            "market resolve",
            members.mod,
            market=str(market.id),
            outcome="1",
            force=True,
            reason="Final whistle",
            known_at="at noon-ish",
        )
    )
    done = await harness.send(
        harness.command(
            "market resolve",
            members.mod,
            market=str(market.id),
            outcome="1",
            force=True,
            reason="Final whistle",
            known_at=stamp,
        )
    )

    assert "is not a moment" in bad.text
    assert done.text.startswith(f"✅ Market #{market.id} resolved: **Yes**.")
    assert "1 trade after <t:" in done.text and "reversed" in done.text
    summary = await db(harness, market_get, market_id=market.id)
    assert summary.reversed_trades == 1
    carol = await db(
        harness, points_selectors.balance_get, guild_id=harness.guild_id, user_id=members.carol.id
    )
    assert carol == 1000


@pytest.mark.django_db(transaction=True)
async def test_the_summary_and_the_late_traders_dm_say_what_was_reversed(harness, members):
    await announce_in(harness)
    market = await make_market(harness, creator=members.alice.id, question="Who wins?")
    await bet(harness, market.id, members.bob.id, 0, 300)
    known_at = await db(harness, timezone.now)
    await bet(harness, market.id, members.carol.id, 0, 100)
    await close(harness, market.id, members.mod.id)
    await db(
        harness,
        market_resolve,
        market_id=market.id,
        outcome=0,
        actor=Actor.member(members.mod.id, manage_guild=True),
        reason="The final whistle",
        idempotency_key="test:known",
        known_at=known_at,
    )

    await notifier(harness).drain()

    summary = message_text(harness.fake.channel_posts(ANNOUNCE_CHANNEL)[-1])
    assert "↩️ 1 trade after <t:" in summary and "reversed" in summary
    (carol_dm,) = dm_texts(harness, members.carol.id)
    assert carol_dm.startswith("↩️ Your trades after <t:")
    assert "100 points back" in carol_dm
    (bob_dm,) = dm_texts(harness, members.bob.id)
    assert "reversed" not in bob_dm and "you won" in bob_dm


@pytest.mark.django_db(transaction=True)
async def test_the_proposal_post_and_each_traders_dm_say_known_at_and_what_it_would_reverse(
    harness, members
):
    await configure(harness, dispute_window_minutes=60, announce_channel_id=ANNOUNCE_CHANNEL)
    market = await make_market(harness, creator=members.alice.id, question="Who wins?")
    await bet(harness, market.id, members.bob.id, 0, 300)
    await bet(harness, market.id, members.carol.id, 1, 50)
    known_at = await db(harness, timezone.now)
    await bet(harness, market.id, members.carol.id, 0, 100)
    sold = await db(
        harness,
        shares_sell,
        market_id=market.id,
        user_id=members.carol.id,
        outcome=1,
        shares=None,
        idempotency_key="test:late-sale",
    )
    await close(harness, market.id, members.mod.id)
    await db(
        harness,
        market_propose,
        market_id=market.id,
        outcome=0,
        actor=Actor.member(members.mod.id, manage_guild=True),
        reason="The final whistle",
        idempotency_key="test:propose-known",
        known_at=known_at,
    )

    await notifier(harness).drain()

    when = f"<t:{int(known_at.timestamp())}:f>"
    late = f"↩️ It says the outcome was known at {when}: the 2 trades made after it would be"
    post = message_text(harness.fake.channel_posts(ANNOUNCE_CHANNEL)[-1])
    assert "⚖️ Proposed result" in post and late in post
    (carol_dm,) = dm_texts(harness, members.carol.id)
    assert carol_dm.startswith(f"Proposed result for #{market.id}")
    assert (
        f"{late} reversed before the payout. 2 of them are yours: you would get back the 100 "
        f"points they spent and give back the {sold.amount - sold.fee:,} points your sales paid."
    ) in carol_dm
    (bob_dm,) = dm_texts(harness, members.bob.id)
    assert f"{late} reversed before the payout. None of them is yours." in bob_dm


@pytest.mark.django_db(transaction=True)
async def test_the_servers_time_zone_is_set_by_iana_name_and_reads_known_at_times_of_day(
    harness, members
):
    typo = await harness.send(harness.command("settings time_zone", members.mod, zone="Paris"))
    assert typo.text == (
        "“Paris” is not a time zone name. Time zone is a name from the IANA time zone database, "
        "like UTC, Europe/Paris or America/New_York. Did you mean Europe/Paris?"
    )
    unknown = await harness.send(
        harness.command("settings time_zone", members.mod, zone="Mars/Olympus_Mons")
    )
    assert unknown.text.startswith("“Mars/Olympus_Mons” is not a time zone name.")
    assert "Did you mean" not in unknown.text
    offered = await harness.send(
        harness.autocomplete("settings time_zone", members.mod, "zone", zone="paris")
    )
    assert offered.choices[0]["value"] == "Europe/Paris"
    saved = await harness.send(
        harness.command("settings time_zone", members.mod, zone="europe/paris")
    )
    assert saved.text.startswith("Saved.") and "Time zone\nEurope/Paris" in saved.text

    # A market open for two hours; the late bet is now, the outcome known 30 minutes ago:
    # "HH:MM" in Paris (UTC+1 in December). Read as UTC it would be an hour ahead, so the
    # latest such moment would be yesterday's, before the market opened.
    market = await make_market(harness, creator=members.alice.id)
    opened = await db(harness, timezone.now) - dt.timedelta(hours=2)
    await db(harness, lambda: Market.objects.filter(pk=market.id).update(created_at=opened))
    await bet(harness, market.id, members.carol.id, 0, 300)
    await close(harness, market.id, members.mod.id)
    paris = (await db(harness, timezone.now) - dt.timedelta(minutes=30)).astimezone(
        ZoneInfo("Europe/Paris")
    )
    typed = paris.strftime("%H:%M")
    done = await harness.send(
        harness.command(
            "market resolve", members.mod, market=str(market.id), outcome="1", force=True,
            reason="Final whistle", known_at=typed,
        )
    )  # fmt: skip
    assert done.text.startswith(f"✅ Market #{market.id} resolved: **Yes**."), done.text
    summary = await db(harness, market_get, market_id=market.id)
    assert summary.known_at == paris.replace(second=0, microsecond=0).astimezone(dt.UTC)
    assert summary.reversed_trades == 1
