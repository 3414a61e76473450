"""Notifications from the `MarketEvent` outbox (DOMAIN §6): announcements, the creator's DM when
trading closes, the resolution summary and one DM per trader with their own result, paced, with
`/notifications off` and closed DMs respected; a persisted cursor and delivery records so a
restart in the middle neither loses nor repeats a message."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import re

import pytest
from django.utils import timezone

from betting.services import bet_place, shares_sell
from discordbot import actions
from discordbot import notifier as notifier_module
from discordbot.models import NotificationCursor, NotificationDelivery
from discordbot.notifier import Notifier
from discordbot.permissions import Actor
from markets.selectors import market_get
from markets.services import market_cancel, market_close, market_create, market_resolve

from .conftest import db, make_market
from .harness import ANNOUNCE_CHANNEL, Harness, Member, buttons, message_text
from .test_market_commands import VOTE_HOW

pytestmark = pytest.mark.django_db(transaction=True)


def notifier(h: Harness) -> Notifier:
    return h.bot.get_cog("Notifications").notifier


async def announce_in(h: Harness, channel_id: int = ANNOUNCE_CHANNEL) -> None:
    await db(
        h,
        actions.guild_settings_update_for_interaction,
        guild_id=h.guild_id,
        actor=Actor.member(1, manage_guild=True),
        idempotency_key=f"test:announce:{channel_id}",
        announce_channel_id=channel_id,
    )


async def bet(h, market_id, user, outcome, amount):
    return await db(
        h,
        bet_place,
        market_id=market_id,
        user_id=user,
        outcome=outcome,
        amount=amount,
        idempotency_key=f"test:bet:{market_id}:{user}:{outcome}:{amount}",
    )


async def close(h, market_id):
    await db(
        h,
        market_close,
        market_id=market_id,
        actor=Actor.member(1, manage_guild=True),
        idempotency_key=f"test:close:{market_id}",
    )


async def resolve(h, market_id, outcome):
    await db(
        h,
        market_resolve,
        market_id=market_id,
        outcome=outcome,
        actor=Actor.member(1, manage_guild=True),
        reason="Official result",
        idempotency_key=f"test:resolve:{market_id}",
    )


def dm_texts(h: Harness, user_id: int) -> list[str]:
    return [m["content"] for m in h.fake.dms(user_id)]


async def test_a_new_market_is_announced_with_its_buttons(harness, members):
    await announce_in(harness)
    market = await make_market(harness, creator=members.alice.id, question="Announced?")

    assert await notifier(harness).drain() == 1

    (post,) = harness.fake.channel_posts(ANNOUNCE_CHANNEL)
    assert post["content"] == f"📢 New market by <@{members.alice.id}>: **Announced?**"
    assert post["embeds"][0]["title"] == f"#{market.id} · Announced?"
    assert [b["label"] for b in buttons(post)][:2] == ["Buy Yes", "Buy No"]
    after = await db(harness, market_get, market_id=market.id)
    # Created outside Discord: the announcement becomes the market message.
    assert (after.channel_id, after.message_id) == (ANNOUNCE_CHANNEL, int(post["id"]))
    assert await notifier(harness).drain() == 0
    assert len(harness.fake.channel_posts(ANNOUNCE_CHANNEL)) == 1


async def test_without_an_announcement_channel_nothing_is_posted(harness, members):
    await make_market(harness, creator=members.alice.id)

    assert await notifier(harness).drain() == 1

    assert harness.fake.requests_matching("POST", r"/channels/\d+/messages") == []
    cursor = await db(harness, lambda: NotificationCursor.objects.get().last_event_id)
    assert cursor > 0


async def test_the_creator_is_dmed_when_trading_closes_and_the_message_refreshes(harness, members):
    ex = await harness.send(
        harness.command(
            "market create", members.alice, question="Closing?", outcomes="Yes|No", duration="1h"
        )
    )
    market_id = int(ex.reply["embeds"][0]["title"].split()[0][1:])
    await close(harness, market_id)

    await notifier(harness).drain()

    (dm,) = dm_texts(harness, members.alice.id)
    assert dm.startswith(f"Trading on your market #{market_id} “Closing?” has closed.")
    # Vote mode: the creator is told who resolves, not sent to a command that refuses them.
    assert dm == (
        f"Trading on your market #{market_id} “Closing?” has closed. {VOTE_HOW} If no result is "
        "proposed within 5 days, every trader is refunded automatically."
    )
    refreshed = harness.fake.message(int(ex.reply["id"]))
    assert refreshed["embeds"][0]["fields"][0]["value"] == "🟡 Closed, awaiting resolution"
    assert [b["label"] for b in buttons(refreshed)] == ["My position", "Refresh", "Chart"]


async def test_the_creators_closed_dm_is_skipped_once_the_market_is_decided(harness, members):
    """Issue 23 item 9: "has closed… you propose" is not sent after the market was already
    decided (the notifier was behind)."""
    ex = await harness.send(
        harness.command(
            "market create", members.alice, question="Late?", outcomes="Yes|No", duration="1h"
        )
    )
    market_id = int(ex.reply["embeds"][0]["title"].split()[0][1:])
    await close(harness, market_id)
    await notifier(harness).plan_once()  # the DM is queued while the market is closed
    await resolve(harness, market_id, 0)

    await notifier(harness).drain()

    assert not any(
        t.startswith("Trading on your market") for t in dm_texts(harness, members.alice.id)
    )
    skipped = await db(
        harness,
        lambda: NotificationDelivery.objects.get(target=f"dm:{members.alice.id}").detail,
    )
    assert skipped.startswith("stale")


@pytest.mark.discord_invalid_budget(1)  # erin's closed DMs: one 403 50007, then skipped
async def test_a_resolution_posts_a_summary_and_dms_each_trader_their_result(
    harness, members, caplog
):
    await announce_in(harness)
    market = await make_market(harness, creator=members.alice.id, question="Who wins?")
    dave = Member(222_222_222_222_222_204, "dave")
    erin = Member(222_222_222_222_222_205, "erin")
    await bet(harness, market.id, members.bob.id, 0, 300)  # wins
    await bet(harness, market.id, members.carol.id, 1, 100)  # loses
    await bet(harness, market.id, dave.id, 0, 50)  # wins, but turned DMs off
    await bet(harness, market.id, erin.id, 0, 20)  # wins, DMs closed
    await harness.send(harness.command("notifications", dave, state="off"))
    harness.fake.closed_dms.add(erin.id)
    await close(harness, market.id)
    await resolve(harness, market.id, 0)

    with caplog.at_level(logging.WARNING):
        await notifier(harness).drain()

    posts = harness.fake.channel_posts(ANNOUNCE_CHANNEL)
    summary = message_text(posts[-1])
    assert "🏆 Resolved: **Yes**" in summary
    after = await db(harness, market_get, market_id=market.id)
    assert "Paid out **" in summary and f"1. <@{members.bob.id}> +" in summary
    (bob_dm,) = dm_texts(harness, members.bob.id)
    assert bob_dm.startswith(f"#{market.id} “Who wins?” resolved **Yes**: you won **")
    (carol_dm,) = dm_texts(harness, members.carol.id)
    assert "you lost **100 points**" in carol_dm
    assert dm_texts(harness, dave.id) == []
    assert dm_texts(harness, erin.id) == []
    skipped = await db(
        harness, lambda: NotificationDelivery.objects.get(target=f"dm:{erin.id}").status
    )
    assert skipped == "skipped"
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert after.status == "resolved"


async def test_biggest_winners_show_the_net_gain_each_winners_dm_says(harness, members):
    """Issue 23 item 2: the public summary ranks winners by net gain (payout minus stake), the
    figure their DM says, not by gross payout."""
    await announce_in(harness)
    market = await make_market(harness, creator=members.alice.id, question="Net?")
    await bet(harness, market.id, members.bob.id, 0, 600)
    await bet(harness, market.id, members.carol.id, 1, 300)
    await close(harness, market.id)
    await resolve(harness, market.id, 0)

    await notifier(harness).drain()

    summary = message_text(harness.fake.channel_posts(ANNOUNCE_CHANNEL)[-1])
    (bob_dm,) = dm_texts(harness, members.bob.id)
    won, net = re.search(r"you won \*\*([\d,]+) points\*\* \(net \+([\d,]+)\)", bob_dm).groups()
    assert won != net
    assert "Biggest winners (net gain):" in summary
    assert f"1. <@{members.bob.id}> +{net}" in summary
    assert f"+{won}" not in summary.split("Biggest winners")[1]
    assert f"<@{members.carol.id}>" not in summary  # a loser is no winner


async def test_a_resolution_nobody_held_says_so_in_words(harness, members):
    """Issue 23 item 9: no bare "Paid out **0 points**."."""
    await announce_in(harness)
    market = await make_market(harness, creator=members.alice.id, question="Nobody?")
    await bet(harness, market.id, members.bob.id, 0, 100)
    await close(harness, market.id)
    await resolve(harness, market.id, 1)

    await notifier(harness).drain()

    summary = message_text(harness.fake.channel_posts(ANNOUNCE_CHANNEL)[-1])
    assert "Paid out **0 points**" not in summary
    assert "Nobody held **No** at the end, so nothing was paid out." in summary
    assert "Biggest winners" not in summary


async def test_cancellation_dms_refunds_including_a_trader_who_sold(harness, members):
    market = await make_market(harness, creator=members.alice.id, question="Cancelled?")
    await bet(harness, market.id, members.bob.id, 0, 200)
    await bet(harness, market.id, members.carol.id, 1, 100)
    await db(
        harness,
        shares_sell,
        market_id=market.id,
        user_id=members.carol.id,
        outcome=1,
        idempotency_key="test:sell",
    )
    await db(
        harness,
        market_cancel,
        market_id=market.id,
        actor=Actor.member(1, manage_guild=True),
        reason="Duplicate",
        idempotency_key="test:cancel",
    )

    await notifier(harness).drain()

    (bob_dm,) = dm_texts(harness, members.bob.id)
    assert bob_dm.startswith(f"#{market.id} “Cancelled?” was cancelled: you were refunded **200")
    (carol_dm,) = dm_texts(harness, members.carol.id)
    assert "was cancelled: you were refunded" in carol_dm


async def test_dms_are_paced(members):
    h = await Harness.start(dm_interval=0.05)
    try:
        market = await make_market(h, creator=members.alice.id)
        traders = [600_000_000_000_000_000 + i for i in range(4)]
        for user in traders:
            await bet(h, market.id, user, 0, 10)
        await close(h, market.id)
        await resolve(h, market.id, 0)
        await notifier(h).drain()
        channels = "|".join(str(h.fake.dm_channel_for(u)) for u in traders)
        sent = h.fake.requests_matching("POST", rf"^/channels/({channels})/messages$")
        gaps = [b.at - a.at for a, b in itertools.pairwise(sent)]
        assert len(sent) == 4 and min(gaps) >= 0.045
    finally:
        await h.close()


async def test_a_restart_in_the_middle_neither_loses_nor_repeats(harness, members):
    await announce_in(harness)
    market = await make_market(harness, creator=members.alice.id, question="Crash?")
    traders = [600_000_000_000_000_100 + i for i in range(5)]
    for user in traders:
        await bet(harness, market.id, user, 0, 10)
    await close(harness, market.id)
    await resolve(harness, market.id, 0)
    later = await make_market(harness, creator=members.bob.id, question="After the crash?")
    # Hold the third trader's DM in flight, then "crash" the bot while it waits.
    release, arrived = harness.fake.gate(
        "POST", rf"^/channels/{harness.fake.dm_channel_for(traders[2])}/messages$"
    )

    task = asyncio.create_task(notifier(harness).drain())
    assert await asyncio.to_thread(arrived.wait, 10)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await harness.bot.close()
    release.set()
    assert [len(harness.fake.dms(u)) for u in traders] == [1, 1, 0, 0, 0]

    restarted = await Harness.start(fake=harness.fake)
    try:
        await notifier(restarted).drain()
        assert await notifier(restarted).drain() == 0
    finally:
        await restarted.close(stop_fake=False)

    assert [len(harness.fake.dms(u)) for u in traders] == [1, 1, 1, 1, 1]
    announced = [message_text(m) for m in harness.fake.channel_posts(ANNOUNCE_CHANNEL)]
    assert sum("Crash?" in t and "New market" in t for t in announced) == 1
    assert sum("🏆 Resolved" in t for t in announced) == 1
    assert sum("After the crash?" in t for t in announced) == 1
    assert later.id > market.id


async def test_discord_server_errors_are_retried_after_a_back_off(harness, members):
    await announce_in(harness)
    await make_market(harness, creator=members.alice.id, question="Retry?")
    harness.fake.fail(
        "POST", rf"^/channels/{ANNOUNCE_CHANNEL}/messages$", 503, {"message": "busy", "code": 0}
    )

    assert await notifier(harness).run_once() == 1  # planned; the post failed
    assert harness.fake.channel_posts(ANNOUNCE_CHANNEL) == []
    (row,) = await db(harness, lambda: list(NotificationDelivery.objects.all()))
    assert (row.status, row.attempts, row.detail) == ("pending", 1, "retry: 503")
    # Not before its back-off…
    assert await notifier(harness).deliver_due("channel") == 0
    # …but once it is due.
    later = timezone.now() + dt.timedelta(seconds=notifier_module.RETRY_BASE_SECONDS + 1)
    assert await notifier(harness).deliver_due("channel", now=later) == 1
    assert len(harness.fake.channel_posts(ANNOUNCE_CHANNEL)) == 1


async def test_a_first_run_starts_after_old_news(harness, members):
    await announce_in(harness)
    await make_market(harness, creator=members.alice.id, question="Old news?")
    fresh = Notifier(harness.bot, name="fresh", max_age=dt.timedelta(0))

    assert await fresh.drain() == 0
    assert harness.fake.channel_posts(ANNOUNCE_CHANNEL) == []


async def test_notifications_command_shows_and_switches(harness, members):
    shown = await harness.send(harness.command("notifications", members.bob))
    off = await harness.send(harness.command("notifications", members.bob, state="off"))
    shown_off = await harness.send(harness.command("notifications", members.bob))

    assert shown.text.startswith("🔔") and off.text.startswith("🔕")
    assert shown_off.text == off.text and shown_off.ephemeral


async def test_the_market_clock_closes_due_markets(harness, members):
    past = timezone.now() - dt.timedelta(minutes=5)
    market = await db(
        harness,
        market_create,
        guild_id=harness.guild_id,
        creator_id=members.alice.id,
        question="Due?",
        outcomes=["Yes", "No"],
        duration="1m",
        idempotency_key="test:due",
        now=past,
    )

    await harness.bot.get_cog("Scheduler").tick()

    assert (await db(harness, market_get, market_id=market.pk)).status == "closed"
    await notifier(harness).drain()
    assert len(dm_texts(harness, members.alice.id)) == 1
