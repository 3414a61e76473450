"""A thread per market (issue 26): where the bot may create threads, the market's first message
starts a discussion thread, the message links it, and the settlement summary is posted there
instead of the channel; without the permissions nothing breaks and `/settings channel` says
what is missing; a restart never starts a second thread. Through the strict fake Discord, which
answers "Start Thread from Message" as Discord does (50013, 160004, the thread's id)."""

from __future__ import annotations

import datetime as dt

import discord
import pytest

from discordbot import actions
from discordbot.market_threads import MSG_THREAD_LINK
from discordbot.models import MarketThread
from markets.services import market_dispute, market_propose
from points.rules import Actor

from .conftest import db, make_market
from .harness import ANNOUNCE_CHANNEL, Channel, Role, message_text
from .test_notifier import announce_in, bet, close, notifier, resolve

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = discord.Permissions(create_public_threads=True, send_messages_in_threads=True)
THREAD_ROUTE = r"/channels/\d+/messages/\d+/threads"


def allow_threads(h) -> None:
    """The bot's role lets it start threads and post in them (as Discord's defaults do)."""
    h.guild_create(
        [Channel(ANNOUNCE_CHANNEL, "announcements")],
        bot_roles=[Role(555_555_555_555_555_501, "bot", permissions=THREADS)],
    )


async def settled_market(h, members):
    """An announced market, a stake each way, closed and resolved; the notifier drained."""
    await announce_in(h)
    market = await make_market(h, creator=members.alice.id, question="Who wins the cup?")
    await notifier(h).drain()
    await bet(h, market.id, members.bob.id, 0, 300)
    await bet(h, market.id, members.carol.id, 1, 100)
    await close(h, market.id)
    await resolve(h, market.id, 0)
    await notifier(h).drain()
    return market


async def test_the_announcement_starts_a_thread_that_gets_the_summary(harness, members):
    allow_threads(harness)
    market = await settled_market(harness, members)

    (announcement,) = harness.fake.channel_posts(ANNOUNCE_CHANNEL)
    thread = harness.fake.threads[int(announcement["id"])]
    assert thread["name"] == f"#{market.id} Who wins the cup?"
    assert thread["parent_id"] == str(ANNOUNCE_CHANNEL)
    assert MSG_THREAD_LINK.format(thread=thread["id"]) in announcement["content"]
    # The channel stays quiet: the summary is in the thread.
    summary = message_text(harness.fake.thread_posts(int(thread["id"]))[-1])
    assert "🏆 Resolved: **Yes**" in summary
    row = await db(harness, lambda: MarketThread.objects.get(market_id=market.id))
    assert row.thread_id == int(thread["id"]) and row.message_id == int(announcement["id"])


async def test_market_create_starts_the_thread_and_the_announcement_no_second(harness, members):
    allow_threads(harness)
    await announce_in(harness)
    ex = await harness.send(
        harness.command(
            "market create",
            members.alice,
            question="Rain on Sunday?",
            outcomes="Yes | No",
            duration="3d",
        )
    )
    reply = harness.fake.message(int(ex.reply["id"]))
    assert MSG_THREAD_LINK.format(thread=reply["id"]) in reply["content"]
    await notifier(harness).drain()
    assert len(harness.fake.channel_posts(ANNOUNCE_CHANNEL)) == 1  # announced there
    assert list(harness.fake.threads) == [int(reply["id"])]
    assert len(harness.fake.requests_matching("POST", THREAD_ROUTE)) == 1


async def test_without_the_permissions_the_summary_stays_in_the_channel(harness, members):
    # The harness's bot has View Channel, Send Messages and Embed Links only.
    market = await settled_market(harness, members)

    assert harness.fake.threads == {}
    assert harness.fake.requests_matching("POST", THREAD_ROUTE) == []  # known from the cache
    posts = harness.fake.channel_posts(ANNOUNCE_CHANNEL)
    assert "🏆 Resolved: **Yes**" in message_text(posts[-1])
    row = await db(harness, lambda: MarketThread.objects.get(market_id=market.id))
    assert row.thread_id is None
    assert row.detail == "missing Create Public Threads, Send Messages in Threads"

    ex = await harness.send(
        harness.command("settings channel", members.mod, channel=Channel(ANNOUNCE_CHANNEL))
    )
    assert "Saved." in ex.text
    assert (
        "won't get a discussion thread: I'm missing Create Public Threads, Send Messages in "
        "Threads there" in ex.text
    )


@pytest.mark.discord_invalid_budget(1)
async def test_a_refusal_from_discord_is_kept_and_not_tried_again(harness, members):
    allow_threads(harness)  # the cache says yes, the channel's overwrite says no
    harness.fake.set_permissions(ANNOUNCE_CHANNEL, create_threads=False)
    market = await settled_market(harness, members)

    (refused,) = harness.fake.requests_matching("POST", THREAD_ROUTE)
    assert refused.status == 403 and refused.response["code"] == 50013
    row = await db(harness, lambda: MarketThread.objects.get(market_id=market.id))
    assert row.thread_id is None and row.detail.startswith("403 50013")
    assert "🏆 Resolved" in message_text(harness.fake.channel_posts(ANNOUNCE_CHANNEL)[-1])


async def test_a_restart_between_the_thread_and_its_record_starts_no_second(harness, members):
    allow_threads(harness)
    await announce_in(harness)
    market = await make_market(harness, creator=members.alice.id, question="Snow in May?")
    # Another process holds a fresh claim: the announcement starts no thread of its own.
    await db(
        harness,
        lambda: MarketThread.objects.create(market_id=market.id, channel_id=1, message_id=1),
    )
    await notifier(harness).drain()
    (announcement,) = harness.fake.channel_posts(ANNOUNCE_CHANNEL)
    assert harness.fake.threads == {}
    # That process started the thread from the announcement and stopped before recording it:
    # Discord has the thread, the database only a claim from two minutes ago.
    harness.fake._start_thread(ANNOUNCE_CHANNEL, int(announcement["id"]), {"name": "x"})
    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2)
    await db(
        harness,
        lambda: MarketThread.objects.filter(market_id=market.id).update(
            channel_id=ANNOUNCE_CHANNEL, message_id=int(announcement["id"]), created_at=old
        ),
    )
    await bet(harness, market.id, members.bob.id, 0, 100)
    await close(harness, market.id)
    await resolve(harness, market.id, 0)
    await notifier(harness).drain()

    assert list(harness.fake.threads) == [int(announcement["id"])]
    answers = [r.response.get("code") for r in harness.fake.requests_matching("POST", THREAD_ROUTE)]
    assert answers[-1] == 160004  # "A thread has already been created for this message"
    row = await db(harness, lambda: MarketThread.objects.get(market_id=market.id))
    assert row.thread_id == int(announcement["id"])
    summary = harness.fake.thread_posts(int(announcement["id"]))
    assert "🏆 Resolved: **Yes**" in message_text(summary[-1])


async def test_the_proposal_and_a_dispute_go_to_the_thread(harness, members):
    allow_threads(harness)
    await announce_in(harness)
    mod = Actor.member(members.mod.id, manage_guild=True)
    await db(
        harness,
        actions.guild_settings_update_for_interaction,
        guild_id=harness.guild_id,
        actor=mod,
        idempotency_key="test:window",
        values={"dispute_window_minutes": 60},
    )
    market = await make_market(harness, creator=members.alice.id, question="Hail on Monday?")
    await notifier(harness).drain()
    (announcement,) = harness.fake.channel_posts(ANNOUNCE_CHANNEL)
    thread_id = int(announcement["id"])
    await bet(harness, market.id, members.bob.id, 1, 100)
    await close(harness, market.id)
    await db(harness, market_propose, market_id=market.id, outcome=0, actor=mod,
             idempotency_key="test:propose")  # fmt: skip
    await db(harness, market_dispute, market_id=market.id, actor=Actor.member(members.bob.id),
             reason="It hailed after midnight", idempotency_key="test:dispute")  # fmt: skip
    await notifier(harness).drain()

    posted = [message_text(m) for m in harness.fake.thread_posts(thread_id)]
    assert any("proposed" in text and "Yes" in text for text in posted), posted
    assert any("It hailed after midnight" in text for text in posted), posted
    # The announcement channel holds the market message alone.
    assert len(harness.fake.channel_posts(ANNOUNCE_CHANNEL)) == 1


async def test_refresh_keeps_the_link_to_the_thread(harness, members):
    allow_threads(harness)
    ex = await harness.send(
        harness.command(
            "market create", members.alice, question="Fog at dawn?", outcomes="Yes | No",
            duration="3d",
        )
    )  # fmt: skip
    message = harness.fake.message(int(ex.reply["id"]))
    link = MSG_THREAD_LINK.format(thread=message["id"])
    assert link in message["content"]
    await harness.send(harness.click(message, members.bob, label="Refresh"))
    assert link in harness.fake.message(int(message["id"]))["content"]


async def test_the_longest_question_names_its_thread_within_discords_limits(harness, members):
    """A 500-character question of characters Discord counts twice (UTF-16): the thread's name
    is cut to 100, and the announcement with its link to the thread stays a valid message (the
    strict fake refuses either otherwise)."""
    allow_threads(harness)
    await announce_in(harness)
    question = "𝔘" * 499 + "?"
    market = await make_market(harness, creator=members.alice.id, question=question)
    await notifier(harness).drain()

    (announcement,) = harness.fake.channel_posts(ANNOUNCE_CHANNEL)
    thread = harness.fake.threads[int(announcement["id"])]
    assert thread["name"].startswith(f"#{market.id} 𝔘")
    assert len(thread["name"].encode("utf-16-le")) // 2 <= 100
    assert MSG_THREAD_LINK.format(thread=thread["id"]) in announcement["content"]
