"""The member directory through the real bot (issue 13): every interaction notes its member
and guild after the first response; names show in footers and leaderboards, in the back office
and on the dashboard; `/privacy forget` removes them from all of them."""

from __future__ import annotations

import dataclasses

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from points.models import Guild, Member

from .conftest import db, make_market

pytestmark = pytest.mark.django_db(transaction=True)


def directory_row(guild_id: int, user_id: int) -> tuple | None:
    return (
        Member.objects.filter(guild_id=guild_id, user_id=user_id)
        .values_list("display_name", "username", "avatar", "forgotten")
        .first()
    )


async def test_an_interaction_stores_the_member_and_guild_names(harness, members):
    await harness.send(harness.command("balance", members.alice))

    row = await db(harness, directory_row, guild_id=harness.guild_id, user_id=members.alice.id)
    assert row[:2] == ("Alice Liddell", "alice") and row[2].startswith("https://")
    assert not row[3]
    guild = await db(harness, lambda: Guild.objects.get(id=harness.guild_id))
    assert guild.name == "Test guild"


async def test_a_first_market_create_names_its_creator_in_its_own_reply(harness, members):
    """Issue 23 item 6: the member's first interaction is `/market create`; the market message
    it posts already says who created it."""
    ex = await harness.send(
        harness.command(
            "market create", members.carol, question="First?", outcomes="Yes|No", duration="1h"
        )
    )

    footer = ex.reply["embeds"][0]["footer"]["text"]
    assert footer.endswith("created by Carol Danvers"), footer
    assert "member #" not in footer


async def test_a_second_interaction_within_the_window_writes_nothing(harness, members):
    await harness.send(harness.command("balance", members.alice))
    renamed = dataclasses.replace(members.alice, display="Alice Renamed")
    await harness.send(harness.command("balance", renamed))

    row = await db(harness, directory_row, guild_id=harness.guild_id, user_id=members.alice.id)
    assert row[0] == "Alice Liddell"


async def test_footer_and_leaderboard_show_names(harness, members):
    await harness.send(harness.command("balance", members.alice))
    await harness.send(harness.command("balance", members.bob))
    market = await make_market(harness, creator=members.alice.id)

    shown = await harness.send(harness.command("market show", members.bob, market=str(market.id)))
    board = await harness.send(harness.command("leaderboard", members.bob))

    assert shown.reply["embeds"][0]["footer"]["text"].endswith("created by Alice Liddell")
    lines = board.reply["embeds"][0]["description"].splitlines()
    assert lines == ["**1.** Alice Liddell — 1,000 points", "**2.** Bob Builder — 1,000 points"]


def back_office_and_dashboard(market_id: int, guild_id: int, user_id: int) -> str:
    """The admin member page, account search, market page and the dashboard, as staff."""
    staff, _ = get_user_model().objects.get_or_create(
        username="boss", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(staff)
    pages = [
        client.get(reverse("admin:points_member", args=[guild_id, user_id]), secure=True),
        client.get(reverse("admin:points_account_changelist"), {"q": "Alice"}, secure=True),
        client.get(reverse("admin:points_member_changelist"), {"q": "Alice"}, secure=True),
        client.get(reverse("admin:markets_market_change", args=[market_id]), secure=True),
        client.get(reverse("dashboard:index"), secure=True),
        client.get(reverse("dashboard:market", args=[market_id]), secure=True),
    ]
    assert all(p.status_code == 200 for p in pages), [p.status_code for p in pages]
    return "\n".join(p.content.decode() for p in pages)


async def test_privacy_forget_removes_the_name_everywhere(harness, members, settings):
    alice = members.alice
    await harness.send(harness.command("balance", alice))
    market = await make_market(harness, creator=alice.id)
    await harness.send(harness.command("bet", alice, market=str(market.id), outcome="1", amount=50))
    before = await db(
        harness,
        back_office_and_dashboard,
        market_id=market.id,
        guild_id=harness.guild_id,
        user_id=alice.id,
    )
    assert before.count("Alice Liddell") >= 6

    forgot = await harness.send(harness.command("privacy forget", alice))
    assert forgot.ephemeral and "member #2222…" in forgot.text
    # Her next interactions (after the gate reopens) do not store the name again.
    harness.bot._seen.clear()
    settings.PM_DIRECTORY_NAMESPACE += ":later"
    await harness.send(harness.command("balance", alice))

    row = await db(harness, directory_row, guild_id=harness.guild_id, user_id=alice.id)
    assert row == ("", "", "", True)
    after = await db(
        harness,
        back_office_and_dashboard,
        market_id=market.id,
        guild_id=harness.guild_id,
        user_id=alice.id,
    )
    assert "Alice Liddell" not in after and "@alice" not in after
    assert "member #2222…" in after
    shown = await harness.send(harness.command("market show", members.bob, market=str(market.id)))
    board = await harness.send(harness.command("leaderboard", members.bob))
    assert shown.reply["embeds"][0]["footer"]["text"].endswith("created by member #2222…")
    assert "Alice" not in board.text and "member #2222…" in board.text
