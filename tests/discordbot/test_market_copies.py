"""Every posted copy of a market message stays true (DOMAIN §6): the `/market create` reply and
the announcement are both refreshed on every change, keeping their own text; the market is
never posted twice in one channel; a copy Discord says is out of reach is retired, not edited
on every change."""

from __future__ import annotations

import pytest

from discordbot.models import MarketMessage, NotificationDelivery

from .conftest import db
from .harness import ANNOUNCE_CHANNEL, buttons, message_text
from .test_notifier import announce_in, bet, close, notifier, resolve

pytestmark = pytest.mark.django_db(transaction=True)


def in_channel(payload: dict, channel_id: int) -> dict:
    payload["channel_id"] = str(channel_id)
    payload["channel"]["id"] = str(channel_id)
    return payload


async def create(h, members, *, channel_id: int, question: str) -> tuple[int, dict]:
    ex = await h.send(
        in_channel(
            h.command(
                "market create", members.alice, question=question, outcomes="Yes|No", duration="1d"
            ),
            channel_id,
        )
    )
    market_id = int(ex.reply["embeds"][0]["title"].split()[0].lstrip("#"))
    return market_id, ex.reply


async def settle(h, market_id: int) -> None:
    await bet(h, market_id, 600_000_000_000_000_001, 0, 10)
    await close(h, market_id)
    await resolve(h, market_id, 0)
    await notifier(h).drain()
    notifier(h)._refreshed.clear()  # skip the coalescing window instead of waiting it out
    await notifier(h).refresh_dirty()


async def test_create_in_the_announcement_channel_posts_once_and_the_copy_follows(harness, members):
    await announce_in(harness)
    market_id, reply = await create(
        harness, members, channel_id=ANNOUNCE_CHANNEL, question="Once only?"
    )
    await notifier(harness).drain()

    posts = [m for m in harness.fake.channel_posts(ANNOUNCE_CHANNEL) if "Once only?" in str(m)]
    assert [m["id"] for m in posts] == [reply["id"]], "the market was posted twice"
    skipped = await db(
        harness, lambda: NotificationDelivery.objects.get(target=f"channel:{ANNOUNCE_CHANNEL}")
    )
    assert (skipped.status, skipped.detail) == ("skipped", "already posted in this channel")

    await settle(harness, market_id)
    copy = harness.fake.message(int(reply["id"]))
    assert "Resolved" in message_text(copy)
    assert not any(b.get("label", "").startswith("Buy") for b in buttons(copy))


async def test_the_reply_and_the_announcement_are_both_refreshed_and_keep_their_text(
    harness, members
):
    await announce_in(harness)
    market_id, reply = await create(
        harness, members, channel_id=harness.channel_id, question="Two copies?"
    )
    await notifier(harness).drain()
    (announcement,) = [
        m for m in harness.fake.channel_posts(ANNOUNCE_CHANNEL) if "Two copies?" in str(m)
    ]
    assert announcement["content"].startswith("📢 New market")

    await settle(harness, market_id)

    for copy in (harness.fake.message(int(reply["id"])), harness.fake.message(announcement["id"])):
        assert "Resolved" in message_text(copy), copy
        assert not any(b.get("label", "").startswith("Buy") for b in buttons(copy))
    assert harness.fake.message(announcement["id"])["content"] == announcement["content"]
    copies = await db(harness, lambda: MarketMessage.objects.filter(market_id=market_id).count())
    assert copies == 2


@pytest.mark.discord_invalid_budget(2)
async def test_a_copy_out_of_reach_is_retired_after_one_refusal(harness, members):
    """(The second refusal is the settlement summary's first attempt in that channel: a
    summary is retried with back-off, not skipped, on 50001.)"""
    market_id, _ = await create(harness, members, channel_id=harness.channel_id, question="Hidden?")
    harness.fake.set_permissions(harness.channel_id, view=False)

    await close(harness, market_id)
    await notifier(harness).drain()
    notifier(harness)._refreshed.clear()
    await resolve(harness, market_id, 0)
    await notifier(harness).drain()

    edits = harness.fake.requests_matching("PATCH", rf"^/channels/{harness.channel_id}/messages/")
    assert [r.status for r in edits] == [403], "a copy out of reach was edited again"
    copy = await db(harness, lambda: MarketMessage.objects.get(market_id=market_id))
    assert not copy.active and copy.detail.startswith("403 50001")


async def test_trades_are_coalesced_into_one_edit_per_copy_per_window(harness, members):
    market_id, reply = await create(
        harness, members, channel_id=harness.channel_id, question="Busy market?"
    )
    edits = lambda: harness.fake.requests_matching(  # noqa: E731
        "PATCH", rf"^/channels/{harness.channel_id}/messages/{reply['id']}$"
    )
    for i in range(5):
        await bet(harness, market_id, 600_000_000_000_000_010 + i, i % 2, 10)
    await notifier(harness).drain()
    assert len(edits()) == 1

    for i in range(5):
        await bet(harness, market_id, 600_000_000_000_000_020 + i, i % 2, 10)
    await notifier(harness).drain()
    assert len(edits()) == 1, "edited again within the coalescing window"

    notifier(harness)._refreshed.clear()  # the window has passed
    await notifier(harness).refresh_dirty()
    assert len(edits()) == 2
    shown = {
        f["name"]: f["value"] for f in harness.fake.message(int(reply["id"]))["embeds"][0]["fields"]
    }
    assert shown["Traders"] == "10", "the coalesced edit shows the latest state"
