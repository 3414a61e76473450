"""Seasons through the strict fake Discord (docs/domain.md §10): `/settings season` and the
reward role checked when it is set (Discord refuses a role above the bot's, or without Manage
Roles), the final table posted once in the announcement channel after the clock closes a season,
the role given to the top 3, `/leaderboard season:<n>`; and the season table at its longest."""

from __future__ import annotations

import datetime as dt
import uuid

import discord
import pytest
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from betting import seasons
from betting.seasons import SeasonTables
from betting.services import bet_place
from discordbot.render import community
from discordbot.selectors import guild_settings_or_defaults
from markets import services
from points import seasons as ledger_seasons
from points import services as points_services
from points.models import Season
from points.rules import Actor

from .conftest import db, make_market
from .harness import ANNOUNCE_CHANNEL, Channel, Role
from .test_render import NOW, SETTINGS, assert_fits, text

REWARD = 555_555_555_555_555_601
BOT_ROLE = 555_555_555_555_555_602
HIGH = 555_555_555_555_555_603


CHAMPION = Role(REWARD, "Champion", position=2)
ADMINS = Role(HIGH, "Admins", position=9)


def roles(manage: bool = True) -> dict[str, list[Role]]:
    perms = discord.Permissions(manage_roles=manage)
    return {
        "roles": [CHAMPION, ADMINS],
        "bot_roles": [Role(BOT_ROLE, "Prediction Markets", permissions=perms, position=5)],
    }


@pytest.mark.django_db(transaction=True)
async def test_season_setting_checks_the_reward_role_and_says_what_it_set(harness, members):
    harness.guild_create([Channel(ANNOUNCE_CHANNEL, "announcements")], **roles(manage=False))
    no_manage = await harness.send(
        harness.command("settings season", members.mod, length="month", role=CHAMPION)
    )
    assert no_manage.ephemeral
    assert "I need the **Manage Roles** permission" in no_manage.text

    harness.guild_create([Channel(ANNOUNCE_CHANNEL, "announcements")], **roles())
    too_high = await harness.send(
        harness.command("settings season", members.mod, length="month", role=ADMINS)
    )
    assert "it sits above my highest role" in too_high.text
    bad_dates = await harness.send(
        harness.command("settings season", members.mod, length="custom", ends="31/03/2030")
    )
    assert "“31/03/2030” is not a date: write it as 2027-03-31" in bad_dates.text

    ok = await harness.send(
        harness.command(
            "settings season",
            members.mod,
            length="quarter",
            role=CHAMPION,
            reset=True,
        )
    )
    assert ok.text.startswith("Saved. Seasons follow calendar quarters (UTC); season 1 ends <t:")
    assert f"The top 3 by realised profit get <@&{REWARD}>." in ok.text
    assert "Balances go back to the starting balance" in ok.text
    member = await harness.send(harness.command("settings season", members.alice, length="off"))
    assert "Manage Server" in member.text


def _seasons_field(reply) -> str:
    (embed,) = reply.reply["embeds"]
    (field,) = [f for f in embed["fields"] if f["name"] == "Seasons"]
    return field["value"]


@pytest.mark.django_db(transaction=True)
async def test_settings_show_says_how_seasons_run(harness, members):
    harness.guild_create([Channel(ANNOUNCE_CHANNEL, "announcements")], **roles())
    off = await harness.send(harness.command("settings show", members.mod))
    assert _seasons_field(off) == "Seasons are off: leaderboards are all-time only."

    await harness.send(
        harness.command(
            "settings season", members.mod, length="custom", ends="2090-03-31, 2090-06-30",
            role=CHAMPION, reset=True,
        )
    )  # fmt: skip
    season = await db(harness, lambda: Season.objects.get(guild_id=harness.guild_id, number=1))
    show = await harness.send(harness.command("settings show", members.mod))
    assert _seasons_field(show) == (
        "Seasons follow custom dates, ending on 2090-03-31, 2090-06-30; season 1 ends "
        f"<t:{int(season.ends_at.timestamp())}:R>. The top 3 by realised profit get "
        f"<@&{REWARD}>. Balances go back to the starting balance when a season ends."
    )

    # Off: the running season ends at once, and both the reply and the settings say so.
    stopped = await harness.send(harness.command("settings season", members.mod, length="off"))
    assert stopped.reply["content"] == (
        "Saved. Seasons are off: leaderboards are all-time only. Season 1 ends now; its final "
        "table follows in a moment."
    )
    assert _seasons_field(stopped).startswith("Seasons are off")


async def _trade(h, market_id: int, user_id: int, outcome: int, amount: int) -> None:
    await db(
        h,
        bet_place,
        market_id=market_id,
        user_id=user_id,
        outcome=outcome,
        amount=amount,
        idempotency_key=f"season:{uuid.uuid4().hex}",
    )


@pytest.mark.django_db(transaction=True)
async def test_the_final_table_is_posted_once_and_the_top_3_get_the_role(harness, members):
    harness.guild_create([Channel(ANNOUNCE_CHANNEL, "announcements")], **roles())
    owner = Actor.member(members.mod.id, manage_guild=True)
    await db(
        harness,
        points_services.guild_settings_update,
        guild_id=harness.guild_id,
        actor=owner,
        idempotency_key="season:announce",
        announce_channel_id=ANNOUNCE_CHANNEL,
    )
    await harness.send(
        harness.command("settings season", members.mod, length="month", role=CHAMPION)
    )
    for member in (members.alice, members.bob, members.carol):
        await harness.send(harness.command("balance", member))
    m = await make_market(harness, creator=members.alice.id)
    await _trade(harness, m.id, members.bob.id, 0, 300)
    await _trade(harness, m.id, members.carol.id, 0, 100)
    await _trade(harness, m.id, members.alice.id, 1, 200)
    for step, key in ((services.market_close, "close"), (services.market_resolve, "resolve")):
        extra = {"outcome": 0, "reason": "it rained"} if key == "resolve" else {}
        await db(
            harness,
            step,
            market_id=m.id,
            idempotency_key=f"{key}:{m.id}",
            actor=owner,
            **extra,
        )
    season = await db(harness, lambda: Season.objects.get(guild_id=harness.guild_id, number=1))
    closed = await db(harness, seasons.seasons_tick, now=season.ends_at + dt.timedelta(seconds=1))
    assert closed == [season.pk]

    cog = harness.bot.get_cog("Seasons")
    assert await cog.announce_closed() == [season.pk]
    assert await cog.announce_closed() == []  # once
    (post,) = [
        p
        for p in harness.fake.channel_posts(ANNOUNCE_CHANNEL)
        if "Season 1 is over" in (p.get("content") or "")
    ]
    assert f"<@{members.bob.id}>, <@{members.carol.id}> get <@&{REWARD}>." in post["content"]
    (embed,) = post["embeds"]
    assert embed["title"] == "Season 1 — final table"
    profit = next(f for f in embed["fields"] if f["name"] == "Realised profit")
    assert profit["value"].startswith("**1.** Bob Builder +")
    assert profit["value"].split("\n")[-1].startswith("**3.** Alice Liddell -200")
    # Alice lost: only the two with a profit got the role; Discord holds what the bot gave.
    assert harness.fake.member_roles == {members.bob.id: {REWARD}, members.carol.id: {REWARD}}

    archived = await harness.send(
        harness.command("leaderboard", members.alice, season=1, kind="profit")
    )
    (embed,) = archived.reply["embeds"]
    assert embed["title"] == "Season 1 — final table"
    assert [f["name"] for f in embed["fields"]] == ["Realised profit"]
    running = await harness.send(harness.command("leaderboard", members.alice, season=2))
    (embed,) = running.reply["embeds"]
    assert embed["title"] == "Season 2 — so far"
    assert len(embed["fields"]) == 3
    missing = await harness.send(harness.command("leaderboard", members.alice, season=9))
    assert missing.ephemeral and "There is no season 9 on this server" in missing.text


@SETTINGS
@given(st.lists(text, min_size=10, max_size=10))
def test_season_table_fits_at_its_longest(names):
    users = [2**63 - 1 - i for i in range(10)]
    tables = SeasonTables(
        number=10**5,
        starts_at=NOW,
        ends_at=NOW,
        closed=True,
        balance=[(u, -(10**15)) for u in users],
        profit=[(u, 10**15) for u in users],
        calibration=[(u, 0.123456, 10**9) for u in users],
    )
    embed = community.season_embed(tables, names=dict(zip(users, names, strict=True)))
    assert_fits(embed)
    assert len(community.season_content(10**5, 2**63 - 1, users[:3])) <= 2000


async def _closed_season(h, members, *, channel: bool = True) -> Season:
    """Season 1 with a settled market (Bob and Carol won, Alice lost), closed by the clock."""
    h.guild_create([Channel(ANNOUNCE_CHANNEL, "announcements")], **roles())
    owner = Actor.member(members.mod.id, manage_guild=True)
    if channel:
        await db(
            h, points_services.guild_settings_update, guild_id=h.guild_id, actor=owner,
            idempotency_key="season:announce", announce_channel_id=ANNOUNCE_CHANNEL,
        )  # fmt: skip
    await h.send(h.command("settings season", members.mod, length="month", role=CHAMPION))
    m = await make_market(h, creator=members.alice.id)
    await _trade(h, m.id, members.bob.id, 0, 300)
    await _trade(h, m.id, members.alice.id, 1, 200)
    await db(h, services.market_close, market_id=m.id, idempotency_key="c", actor=owner)
    await db(
        h, services.market_resolve, market_id=m.id, idempotency_key="r", actor=owner,
        outcome=0, reason="it rained",
    )  # fmt: skip
    season = await db(h, lambda: Season.objects.get(guild_id=h.guild_id, number=1))
    assert await db(h, seasons.seasons_tick, now=season.ends_at + dt.timedelta(seconds=1))
    return await db(h, lambda: Season.objects.get(pk=season.pk))


def _table_posts(h) -> list[dict]:
    return [
        p
        for p in h.fake.channel_posts(ANNOUNCE_CHANNEL)
        if "Season 1 is over" in (p.get("content") or "")
    ]


def _age_claim(season_id: int) -> None:
    """The claim was made before the process holding it stopped, two minutes ago."""
    Season.objects.filter(pk=season_id).update(
        announced_at=timezone.now() - dt.timedelta(seconds=ledger_seasons.CLAIM_SECONDS + 60)
    )


@pytest.mark.django_db(transaction=True)
async def test_a_claim_left_by_a_stopped_process_is_posted_by_the_next(harness, members):
    season = await _closed_season(harness, members)
    # A process claimed the post and stopped before sending anything.
    assert await db(harness, ledger_seasons.season_announced, season_id=season.pk)
    cog = harness.bot.get_cog("Seasons")
    assert await cog.announce_closed() == []  # the claim is fresh: its holder may still post
    assert _table_posts(harness) == []

    await db(harness, _age_claim, season_id=season.pk)
    assert await cog.announce_closed() == [season.pk]
    assert await cog.announce_closed() == []
    assert len(_table_posts(harness)) == 1
    season = await db(harness, lambda: Season.objects.get(pk=season.pk))
    assert season.posted_at is not None and season.post_detail == ""
    assert season.rewarded == [str(members.bob.id)]


@pytest.mark.django_db(transaction=True)
async def test_a_process_stopped_after_its_post_leaves_one_post(harness, members):
    season = await _closed_season(harness, members)
    cog = harness.bot.get_cog("Seasons")
    # A process claimed, posted, and stopped before recording the post.
    assert await db(harness, ledger_seasons.season_announced, season_id=season.pk)
    (_, tables, gs), *_ = await db(harness, closed_seasons_of, season_id=season.pk)
    await cog._post(season, tables, gs)
    assert len(_table_posts(harness)) == 1

    await db(harness, _age_claim, season_id=season.pk)
    assert await cog.announce_closed() == [season.pk]
    # The same nonce: Discord answers with the message already posted.
    assert len(_table_posts(harness)) == 1
    assert await db(harness, lambda: Season.objects.get(pk=season.pk).posted_at) is not None


def closed_seasons_of(season_id: int):
    season = Season.objects.get(pk=season_id)
    gs = guild_settings_or_defaults(guild_id=season.guild_id)
    return [(season, seasons.tables_from_archive(season), gs)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.discord_invalid_budget(1)
async def test_a_refused_post_says_why_and_staff_have_it_posted_again(harness, members):
    season = await _closed_season(harness, members)
    harness.fake.set_permissions(ANNOUNCE_CHANNEL, send=False)
    cog = harness.bot.get_cog("Seasons")
    assert await cog.announce_closed() == [season.pk]
    assert await cog.announce_closed() == []  # not tried again and again
    season = await db(harness, lambda: Season.objects.get(pk=season.pk))
    assert season.post_detail.startswith("not posted: Discord refused it (403 50013")
    assert season.rewarded == [str(members.bob.id)]  # the role went out all the same
    assert _table_posts(harness) == []

    # The channel fixed, a moderator asks for the table again (the back office's action).
    harness.fake.set_permissions(ANNOUNCE_CHANNEL)
    await db(
        harness, ledger_seasons.season_repost, season_id=season.pk,
        actor=Actor.member(members.mod.id, manage_guild=True), reason="channel fixed",
        idempotency_key="repost:1",
    )  # fmt: skip
    assert await cog.announce_closed() == [season.pk]
    (post,) = _table_posts(harness)
    assert f"<@{members.bob.id}> gets <@&{REWARD}>." in post["content"]
    season = await db(harness, lambda: Season.objects.get(pk=season.pk))
    assert (season.post_detail, season.post_round) == ("", 1)


@pytest.mark.django_db(transaction=True)
async def test_without_an_announcement_channel_the_season_says_so(harness, members):
    season = await _closed_season(harness, members, channel=False)
    cog = harness.bot.get_cog("Seasons")
    assert await cog.announce_closed() == [season.pk]
    season = await db(harness, lambda: Season.objects.get(pk=season.pk))
    assert season.post_detail == "not posted: no announcement channel is set"
    assert season.rewarded == [str(members.bob.id)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.discord_invalid_budget(1)
async def test_a_refused_reward_role_is_kept_and_the_table_still_posted(harness, members):
    season = await _closed_season(harness, members)
    # Since the role was set, the bot lost Manage Roles: Discord refuses the role.
    harness.guild_create([Channel(ANNOUNCE_CHANNEL, "announcements")], **roles(manage=False))
    cog = harness.bot.get_cog("Seasons")
    assert await cog.announce_closed() == [season.pk]
    (post,) = _table_posts(harness)
    assert "gets <@&" not in post["content"]  # nobody is said to get a role they did not
    season = await db(harness, lambda: Season.objects.get(pk=season.pk))
    assert season.rewarded == []
    assert season.post_detail == (
        "reward role refused for 1 of the top 3 (403 50013: Missing Permissions)"
    )
    assert harness.fake.member_roles == {}
