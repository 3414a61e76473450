"""Resolution people can trust, as members see it in Discord (docs/domain.md §6.1): the creator's
proposal in a server that resolves by creator, the market message while a result is proposed
(countdown, Dispute button), disputes through the button and its form, moderators' `/market
confirm` and `/market undo`, `force` on a proposed market, the conflict-of-interest refusal in
words, and the notifications each step owes (the public post, the traders' DMs, the moderators'
ping with only the resolver roles mentionable, the disputers' DMs after the decision)."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest

from betting.services import bet_place
from discordbot import actions
from discordbot.notifier import Notifier
from markets import errors as market_errors
from markets.models import Dispute, Market, ResolutionVote
from markets.selectors import market_get
from markets.services import market_close, markets_tick
from points import selectors as points_selectors
from points import services as points_services
from points.rules import Actor
from points.rules import permissions as rules

from .conftest import db
from .harness import (
    ANNOUNCE_CHANNEL,
    CHANNEL,
    MODAL,
    Channel,
    Harness,
    Member,
    Members,
    buttons,
    message_text,
)

pytestmark = pytest.mark.django_db(transaction=True)

MOD_CHANNEL = 444_444_444_444_444_403
RESOLVER_ROLE = 555_555_555_555_555_501
OTHER_ROLE = 555_555_555_555_555_502
COUNTDOWN = re.compile(r"pays out <t:(\d+):R> unless disputed")


# --- Helpers -------------------------------------------------------------------------------------


async def configure(h: Harness, **values: object) -> None:
    """Change the guild's settings through the one service (as an admin would)."""
    extra = {
        k: values.pop(k)
        for k in ("announce_channel_id", "moderator_channel_id", "resolver_role_ids")
        if k in values
    }
    await db(
        h,
        points_services.guild_settings_update,
        guild_id=h.guild_id,
        actor=Actor.member(1, manage_guild=True),
        idempotency_key=f"test:settings:{uuid.uuid4().hex}",
        values=values,
        **extra,
    )


async def create(h: Harness, creator: Member, question: str = "Will it rain?") -> tuple[int, dict]:
    """A market created with `/market create`: its id and the public message (a copy the
    notifier refreshes)."""
    ex = await h.send(
        h.command("market create", creator, question=question, outcomes="Yes|No", duration="1h")
    )
    return int(ex.reply["embeds"][0]["title"].split()[0][1:]), ex.reply


async def bet(h: Harness, market_id: int, user: Member, outcome: int, amount: int = 100) -> None:
    await db(
        h,
        bet_place,
        market_id=market_id,
        user_id=user.id,
        outcome=outcome,
        amount=amount,
        idempotency_key=f"test:bet:{market_id}:{user.id}:{outcome}",
    )


async def close(h: Harness, market_id: int) -> None:
    await db(
        h,
        market_close,
        market_id=market_id,
        actor=Actor.member(1, manage_guild=True),
        idempotency_key=f"test:close:{market_id}",
    )


def notifier(h: Harness) -> Notifier:
    return h.bot.get_cog("Notifications").notifier


def dm_texts(h: Harness, user_id: int) -> list[str]:
    return [m["content"] for m in h.fake.dms(user_id)]


def field(message: dict, name: str) -> str:
    (value,) = [f["value"] for f in message["embeds"][0]["fields"] if f["name"] == name]
    return value


async def proposed_market(h: Harness, members: Members, *, window: int = 60) -> tuple[int, dict]:
    """Creator mode with a dispute window, announcements, a moderators' channel and a resolver
    role: alice's market, where only bob traded, closed and proposed "Yes" by alice. Returns the
    id and the proposal's public reply."""
    await configure(
        h,
        resolution_mode="creator",
        dispute_window_minutes=window,
        announce_channel_id=ANNOUNCE_CHANNEL,
        moderator_channel_id=MOD_CHANNEL,
        resolver_role_ids=[RESOLVER_ROLE],
    )
    market_id, _ = await create(h, members.alice)
    await bet(h, market_id, members.bob, 1)
    await close(h, market_id)
    ex = await h.send(
        h.command("market resolve", members.alice, market=str(market_id), outcome="1")
    )
    return market_id, ex.reply


async def dispute(h: Harness, message: dict, member: Member, reason: str):
    """Press Dispute on `message` and submit the form with `reason`."""
    opened = await h.send(h.click(message, member, label="Dispute"))
    assert opened.response_type == MODAL, opened.text
    return await h.send(h.submit(opened.modal, member, reason=reason))


CREATOR_HOW = (
    "<@{creator}> (the creator) proposes the result with `/market resolve`; it pays out after a "
    "1-hour dispute window. A moderator with Manage Server can also resolve directly with "
    "`/market resolve … force:True`. Admins choose how with `/settings resolution`."
)


# --- Proposing -----------------------------------------------------------------------------------


async def test_the_creators_call_proposes_and_the_message_counts_down_with_a_dispute_button(
    harness, members
):
    market_id, reply = await proposed_market(harness, members)

    summary = await db(harness, market_get, market_id=market_id)
    assert summary.status == "resolving" and summary.proposal.label == "Yes"
    deadline = int(summary.proposal.deadline.timestamp())
    assert reply["content"] == (
        f"⚖️ <@{members.alice.id}> proposed **Yes** for #{market_id}: pays out <t:{deadline}:R> "
        "unless disputed. Traders who disagree press **Dispute** on the market message.\n"
        + CREATOR_HOW.format(creator=members.alice.id)
    )
    assert not int(reply.get("flags") or 0) & 64, "the proposal is public"
    assert field(reply, "Status") == "⚖️ Result proposed"
    assert field(reply, "Resolution") == (
        f"Result proposed: “Yes” — pays out <t:{deadline}:R> unless disputed"
    )
    assert [b["label"] for b in buttons(reply)] == ["My position", "Refresh", "Chart", "Dispute"]
    (dispute_button,) = [b for b in buttons(reply) if b["label"] == "Dispute"]
    assert dispute_button["custom_id"] == f"pm:dispute:{market_id}"

    await notifier(harness).drain()

    # Every copy follows: the `/market create` reply shows the countdown and the button too.
    copies = await db(harness, actions.market_copies, market_id=market_id)
    for _, _, message_id in copies:
        copy = harness.fake.message(message_id)
        assert COUNTDOWN.search(field(copy, "Resolution"))
        assert "Dispute" in [b["label"] for b in buttons(copy)]
    # The public post in the announcement channel, with its own Dispute button.
    post = harness.fake.channel_posts(ANNOUNCE_CHANNEL)[-1]
    assert post["content"].startswith(
        f"⚖️ Proposed result for #{market_id} “Will it rain?”: **Yes** (by <@{members.alice.id}>). "
        f"It pays out <t:{deadline}:R> unless disputed"
    )
    assert [b["label"] for b in buttons(post)] == ["Dispute"]
    # The trader's DM says how long they may dispute and how.
    (bob_dm,) = dm_texts(harness, members.bob.id)
    assert bob_dm.startswith(
        f"Proposed result for #{market_id} “Will it rain?”: **Yes**. If you disagree, dispute "
        f"within 1 hour (<t:{deadline}:R>) with the **Dispute** button on the market message"
    )
    assert dm_texts(harness, members.carol.id) == []  # carol never traded


async def test_the_creator_holding_a_position_proposes_but_a_second_resolver_confirms(
    harness, members
):
    await configure(harness, resolution_mode="creator", dispute_window_minutes=0)
    market_id, _ = await create(harness, members.alice)
    await bet(harness, market_id, members.alice, 0)
    await close(harness, market_id)

    proposed = await harness.send(
        harness.command("market resolve", members.alice, market=str(market_id), outcome="Yes")
    )
    own = await harness.send(
        harness.command("market confirm", members.alice, market=str(market_id), reason="Sure")
    )

    assert proposed.text.startswith(
        f"⚖️ <@{members.alice.id}> proposed **Yes** for #{market_id}. They hold a position in "
        "it, so the result waits for a second resolver"
    )
    assert field(proposed.reply, "Resolution") == (
        "Result proposed: “Yes” — waiting for a second resolver"
    )
    # Alice is not a moderator: the rule's words, from the service.
    assert own.ephemeral and own.text == rules.MSG_CONFIRM

    done = await harness.send(
        harness.command("market confirm", members.mod, market=str(market_id), reason="Checked")
    )
    assert done.text.startswith(f"✅ Market #{market_id} resolved: **Yes**.")
    assert (await db(harness, market_get, market_id=market_id)).status == "resolved"


async def test_votes_say_who_resolves_and_how_else_and_the_deciding_vote_proposes(harness, members):
    await configure(harness, dispute_window_minutes=60)
    market_id, _ = await create(harness, members.alice)
    await close(harness, market_id)
    mod2 = Member(333_333_333_333_333_302, "mod2", members.mod.permissions)

    first = await harness.send(
        harness.command("market resolve", members.mod, market=str(market_id), outcome="No")
    )
    second = await harness.send(
        harness.command("market resolve", mod2, market=str(market_id), outcome="2")
    )

    assert first.text == (
        f"🗳️ <@{members.mod.id}> voted **No** for #{market_id} (1 of 2 votes needed).\n"
        "2 resolvers (members with Manage Server) vote for the same outcome with "
        "`/market resolve`; it pays out after a 1-hour dispute window. A moderator with Manage "
        "Server can also resolve directly with `/market resolve … force:True`. Admins choose "
        "how with `/settings resolution`."
    )
    summary = await db(harness, market_get, market_id=market_id)
    deadline = int(summary.proposal.deadline.timestamp())
    assert second.text.startswith(
        f"⚖️ <@{mod2.id}> voted **No** for #{market_id} (2 of 2 votes needed): the result is "
        f"proposed and pays out <t:{deadline}:R> unless disputed."
    )
    assert "Dispute" in [b["label"] for b in buttons(second.reply)]


PARAGRAPH_END = "Admins choose how with `/settings resolution`."


def public_paragraphs(h: Harness) -> list[dict]:
    """The public posts (command channel and announcements) that carry the how paragraph."""
    posts = [*h.fake.channel_posts(CHANNEL), *h.fake.channel_posts(ANNOUNCE_CHANNEL)]
    return [
        p
        for p in posts
        if not int(p.get("flags") or 0) & 64 and PARAGRAPH_END in (p.get("content") or "")
    ]


async def test_the_how_paragraph_shows_once_on_close_and_later_posts_link_to_it(harness, members):
    """Issue 23 item 9: the close post says who resolves the market and how; the vote, the
    proposal, the undo and the undo's announcement link to that post instead of repeating it."""
    await configure(harness, dispute_window_minutes=60, announce_channel_id=ANNOUNCE_CHANNEL)
    market_id, _ = await create(harness, members.alice)
    mod2 = Member(333_333_333_333_333_302, "mod2", members.mod.permissions)

    closed = await harness.send(
        harness.command("market close", members.alice, market=str(market_id))
    )
    assert not closed.ephemeral
    assert closed.reply["content"] == (
        f"⏸️ Trading on #{market_id} is closed. 2 resolvers (members with Manage Server) vote for "
        "the same outcome with `/market resolve`; it pays out after a 1-hour dispute window. A "
        "moderator with Manage Server can also resolve directly with `/market resolve … "
        f"force:True`. {PARAGRAPH_END}"
    )
    link = (
        "How this market is resolved: "
        f"https://discord.com/channels/{harness.guild_id}/{CHANNEL}/{closed.reply['id']}"
    )

    vote = await harness.send(
        harness.command("market resolve", members.mod, market=str(market_id), outcome="No")
    )
    proposal = await harness.send(
        harness.command("market resolve", mod2, market=str(market_id), outcome="No")
    )
    undo = await harness.send(
        harness.command("market undo", members.mod, market=str(market_id), reason="Too early")
    )
    await notifier(harness).drain()

    assert vote.text == (
        f"🗳️ <@{members.mod.id}> voted **No** for #{market_id} (1 of 2 votes needed).\n{link}"
    )
    assert proposal.reply["content"].startswith(
        f"⚖️ <@{mod2.id}> voted **No** for #{market_id} (2 of 2"
    )
    assert proposal.reply["content"].endswith(f"on the market message.\n{link}")
    assert undo.reply["content"] == (
        f"↩️ <@{members.mod.id}> undid the proposed result **No** of #{market_id}: Too early\n"
        f"The market is closed again and needs a new result. {link}"
    )
    announced = harness.fake.channel_posts(ANNOUNCE_CHANNEL)[-1]["content"]
    assert announced.startswith(f"↩️ The proposed result **No** of #{market_id}")
    assert announced.endswith(link)
    # The jump link leads to a message that shows the paragraph; no other public post does.
    assert [p["id"] for p in public_paragraphs(harness)] == [closed.reply["id"]]
    target = harness.fake.message(int(closed.reply["id"]))
    assert target["content"].endswith(PARAGRAPH_END)


async def test_a_creator_in_vote_mode_is_told_who_resolves_instead_of_a_command_that_refuses(
    harness, members
):
    await configure(harness, dispute_window_minutes=60)
    market_id, _ = await create(harness, members.alice)
    await close(harness, market_id)

    tried = await harness.send(
        harness.command("market resolve", members.alice, market=str(market_id), outcome="1")
    )

    assert tried.ephemeral and tried.text == rules.MSG_VOTE_MANAGE


async def test_the_closing_dm_in_creator_mode_tells_the_creator_to_propose(harness, members):
    await configure(harness, resolution_mode="creator", dispute_window_minutes=60)
    market_id, _ = await create(harness, members.alice, question="Closing?")
    await close(harness, market_id)

    await notifier(harness).drain()

    (dm,) = dm_texts(harness, members.alice.id)
    assert dm == (
        f"Trading on your market #{market_id} “Closing?” has closed. "
        + CREATOR_HOW.format(creator=members.alice.id)
        + " If no result is proposed within 5 days, every trader is refunded automatically."
    )


# --- Disputing -----------------------------------------------------------------------------------


async def test_a_trader_disputes_once_through_the_button_and_its_form(harness, members):
    market_id, reply = await proposed_market(harness, members)

    opened = await harness.send(harness.click(reply, members.bob, label="Dispute"))
    modal = opened.modal
    (reason_input,) = [c["component"] for c in modal["components"]]
    assert modal["custom_id"] == f"pm:m:dispute:{market_id}"
    assert (reason_input["required"], reason_input["min_length"], reason_input["max_length"]) == (
        True,
        1,
        500,
    )
    first = await harness.send(harness.submit(modal, members.bob, reason="The source says No"))
    again_click = await harness.send(harness.click(reply, members.bob, label="Dispute"))
    again_form = await harness.send(harness.submit(modal, members.bob, reason="Really No"))

    assert first.ephemeral
    assert first.text.startswith(
        f"🚩 Your dispute of the proposed result **Yes** of #{market_id} is recorded "
        "(1 dispute so far). The market is held for moderators"
    )
    twice = market_errors.MSG_DISPUTE_TWICE.format(market_id=market_id)
    assert again_click.ephemeral and again_click.text == twice
    assert again_form.ephemeral and again_form.text == twice
    rows = await db(harness, lambda: list(Dispute.objects.values_list("user_id", "reason")))
    assert rows == [(members.bob.id, "The source says No")]
    summary = await db(harness, market_get, market_id=market_id)
    assert summary.proposal.disputed and summary.status == "resolving"

    await notifier(harness).drain()
    copy = harness.fake.message(int(reply["id"]))
    assert field(copy, "Resolution") == "Result proposed: “Yes” — held for moderators: 1 dispute"


async def test_a_member_who_never_traded_gets_the_rules_refusal(harness, members):
    market_id, reply = await proposed_market(harness, members)
    refusal = rules.MSG_DISPUTE.format(market=market_id)

    clicked = await harness.send(harness.click(reply, members.carol, label="Dispute"))
    # Past the button's quick check (a form opened by a trader, sent by carol): the service.
    form = (await harness.send(harness.click(reply, members.bob, label="Dispute"))).modal
    submitted = await harness.send(harness.submit(form, members.carol, reason="I think No"))

    assert clicked.ephemeral and clicked.text == refusal
    assert submitted.ephemeral and submitted.text == refusal
    assert await db(harness, lambda: Dispute.objects.count()) == 0


async def test_an_empty_or_too_long_reason_is_refused_in_words(harness, members):
    _, reply = await proposed_market(harness, members)
    form = (await harness.send(harness.click(reply, members.bob, label="Dispute"))).modal

    empty = await harness.send(harness.submit(form, members.bob, reason="   "))
    long = await harness.send(harness.submit(form, members.bob, reason="x" * 501))

    for refused in (empty, long):
        assert refused.ephemeral and "reason" in refused.text.lower() and "500" in refused.text
    assert await db(harness, lambda: Dispute.objects.count()) == 0


async def test_a_dispute_pings_only_the_resolver_roles_in_the_moderators_channel(harness, members):
    market_id, reply = await proposed_market(harness, members)
    await dispute(harness, reply, members.bob, "Rained <@&555555555555555502> @everyone")

    await notifier(harness).drain()

    (ping,) = harness.fake.channel_posts(MOD_CHANNEL)
    content = ping["content"]
    assert content.startswith(f"<@&{RESOLVER_ROLE}> 🚩 <@{members.bob.id}> disputes the proposed")
    assert f"`/market confirm market:{market_id} reason:…`" in content
    assert f"`/market undo market:{market_id} reason:…`" in content
    assert "Rained" in content and f"<@&{OTHER_ROLE}>" not in content  # the reason is inert
    assert "Result proposed: “Yes” — held for moderators: 1 dispute" in message_text(ping)
    (sent,) = harness.fake.requests_matching("POST", rf"/channels/{MOD_CHANNEL}/messages")
    mentions = sent.json["allowed_mentions"]
    assert mentions["parse"] == []
    assert [str(r) for r in mentions["roles"]] == [str(RESOLVER_ROLE)]
    assert not mentions.get("users")


async def test_a_dispute_holds_a_market_at_most_the_servers_hold_then_refunds(harness, members):
    """Issue 23 item 4: moderators are pinged again halfway through `/settings resolution`'s
    dispute hold; at its end the market clock cancels and refunds the market, said in the
    channel and in the disputer's DM."""
    changed = await harness.send(
        harness.command("settings resolution", members.mod, dispute_hold_hours=2)
    )
    assert "a dispute holds it at most 2 hours" in message_text(changed.reply)
    market_id, reply = await proposed_market(harness, members)
    await dispute(harness, reply, members.bob, "The source says No")
    await notifier(harness).drain()
    disputed_at = await db(
        harness, lambda: Market.objects.values_list("disputed_at", flat=True).get(pk=market_id)
    )

    early = await db(harness, markets_tick, now=disputed_at + dt.timedelta(minutes=59))
    half = await db(harness, markets_tick, now=disputed_at + dt.timedelta(minutes=61))
    again = await db(harness, markets_tick, now=disputed_at + dt.timedelta(minutes=62))
    await notifier(harness).drain()

    assert (early.reminded, half.reminded, again.reminded) == ([], [market_id], [])
    _, reminder = harness.fake.channel_posts(MOD_CHANNEL)
    deadline = int((disputed_at + dt.timedelta(hours=2)).timestamp())
    assert reminder["content"].startswith(
        f"<@&{RESOLVER_ROLE}> ⏰ Still held for moderators (<@&{RESOLVER_ROLE}> or Manage "
        f"Server): the disputed result **Yes** of #{market_id}"
    )
    assert f"Half of the 2 hours are gone: decide <t:{deadline}:R>" in reminder["content"]
    assert "or the market is cancelled and every trader refunded." in reminder["content"]

    end = await db(harness, markets_tick, now=disputed_at + dt.timedelta(hours=2))
    await notifier(harness).drain()

    assert end.expired == [market_id]
    summary = await db(harness, market_get, market_id=market_id)
    assert summary.status == "cancelled"
    post = message_text(harness.fake.channel_posts(ANNOUNCE_CHANNEL)[-1])
    assert (
        "❌ Cancelled: Disputed, and moderators did not decide within 2 hours: cancelled and "
        "refunded automatically" in post
    )
    bob_dm = dm_texts(harness, members.bob.id)[-1]
    assert bob_dm.startswith(
        f"Moderators did not decide on the result of #{market_id} you disputed in time, so the "
        f"market was cancelled. #{market_id} “Will it rain?” was cancelled: you were refunded "
        "**100 points**."
    )
    balance = await db(
        harness, points_selectors.balance_get, guild_id=harness.guild_id, user_id=members.bob.id
    )
    assert balance == 1000


async def test_the_dispute_hold_is_refused_out_of_range_in_words(harness, members):
    refused = await harness.send(
        harness.command("settings set", members.mod, setting="dispute_hold_hours", value=0)
    )
    assert refused.ephemeral
    assert refused.text == "Dispute hold (hours) must be a whole number from 1 to 720."


# --- Moderators decide ---------------------------------------------------------------------------


async def test_a_moderator_confirms_a_disputed_result_and_the_disputer_hears_it(harness, members):
    market_id, reply = await proposed_market(harness, members)
    await dispute(harness, reply, members.bob, "The source says No")
    await notifier(harness).drain()

    refused = await harness.send(
        harness.command("market confirm", members.bob, market=str(market_id), reason="Mine")
    )
    done = await harness.send(
        harness.command("market confirm", members.mod, market=str(market_id), reason="Checked")
    )

    assert refused.ephemeral and refused.text == rules.MSG_CONFIRM
    assert not done.ephemeral
    assert done.text.startswith(
        f"✅ Market #{market_id} resolved: **Yes**. <@{members.mod.id}> confirmed the proposed "
        "result: Checked"
    )
    await notifier(harness).drain()
    bob_dms = dm_texts(harness, members.bob.id)
    assert bob_dms[-1].startswith(
        f"You disputed the proposed result of #{market_id}; moderators confirmed the proposed "
        f"result **Yes**. #{market_id} “Will it rain?” resolved **Yes**: you lost **100 points**."
    )


async def test_a_moderator_changes_the_result(harness, members):
    market_id, reply = await proposed_market(harness, members)
    await dispute(harness, reply, members.bob, "It did not rain")

    done = await harness.send(
        harness.command(
            "market confirm", members.mod, market=str(market_id), reason="Source", outcome="2"
        )
    )

    assert done.text.startswith(
        f"✅ Market #{market_id} resolved: **No**. <@{members.mod.id}> changed the proposed "
        "result from **Yes**: Source"
    )
    summary = await db(harness, market_get, market_id=market_id)
    assert (summary.status, summary.winning_position) == ("resolved", 1)
    await notifier(harness).drain()
    assert dm_texts(harness, members.bob.id)[-1].startswith(
        f"You disputed the proposed result of #{market_id}; moderators changed the result from "
        "**Yes** to **No**."
    )


async def test_a_moderator_undoes_a_proposal_and_it_can_be_proposed_again(harness, members):
    market_id, reply = await proposed_market(harness, members)
    await dispute(harness, reply, members.bob, "Too early")
    await notifier(harness).drain()

    done = await harness.send(
        harness.command("market undo", members.mod, market=str(market_id), reason="Wait for it")
    )

    assert not done.ephemeral
    # The proposal showed the paragraph on how this market is resolved: the undo links to it.
    assert done.reply["content"] == (
        f"↩️ <@{members.mod.id}> undid the proposed result **Yes** of #{market_id}: Wait for it\n"
        "The market is closed again and needs a new result. How this market is resolved: "
        f"https://discord.com/channels/{harness.guild_id}/{CHANNEL}/{reply['id']}"
    )
    assert (await db(harness, market_get, market_id=market_id)).status == "closed"
    notifier(harness)._refreshed.clear()  # skip the coalescing window instead of waiting it out
    await notifier(harness).drain()
    post = harness.fake.channel_posts(ANNOUNCE_CHANNEL)[-1]
    assert post["content"].startswith(
        f"↩️ The proposed result **Yes** of #{market_id} “Will it rain?” was undone by a "
        "moderator: “Wait for it”."
    )
    assert dm_texts(harness, members.bob.id)[-1].startswith(
        f"Moderators undid the proposed result **Yes** of #{market_id} “Will it rain?” that you "
        "disputed: “Wait for it”."
    )
    copy = harness.fake.message(int(reply["id"]))
    assert "Dispute" not in [b["label"] for b in buttons(copy)]

    again = await harness.send(
        harness.command("market resolve", members.alice, market=str(market_id), outcome="2")
    )
    assert again.text.startswith(f"⚖️ <@{members.alice.id}> proposed **No** for #{market_id}")


async def test_force_resolves_a_proposed_market_and_autocomplete_offers_it(harness, members):
    market_id, _ = await proposed_market(harness, members)
    closed_id, _ = await create(harness, members.alice, question="Closed only?")
    await close(harness, closed_id)

    resolve = await harness.send(
        harness.autocomplete("market resolve", members.mod, "market", market="")
    )
    confirm = await harness.send(
        harness.autocomplete("market confirm", members.mod, "market", market="")
    )
    undo = await harness.send(harness.autocomplete("market undo", members.mod, "market", market=""))
    forced = await harness.send(
        harness.command(
            "market resolve",
            members.mod,
            market=str(market_id),
            outcome="2",
            force=True,
            reason="Official result",
        )
    )

    assert {c["value"] for c in resolve.choices} == {str(market_id), str(closed_id)}
    assert [c["value"] for c in confirm.choices] == [str(market_id)]
    assert [c["value"] for c in undo.choices] == [str(market_id)]
    assert forced.text.startswith(f"✅ Market #{market_id} resolved: **No**.")
    summary = await db(harness, market_get, market_id=market_id)
    assert (summary.status, summary.winning_position) == ("resolved", 1)


async def test_a_moderator_holding_a_position_is_told_why_they_cannot_decide(harness, members):
    await configure(harness, min_resolution_votes=1)
    market_id, _ = await create(harness, members.alice)
    await bet(harness, market_id, members.mod, 0)
    await close(harness, market_id)

    vote = await harness.send(
        harness.command("market resolve", members.mod, market=str(market_id), outcome="1")
    )
    forced = await harness.send(
        harness.command(
            "market resolve",
            members.mod,
            market=str(market_id),
            outcome="1",
            force=True,
            reason="I know",
        )
    )

    assert vote.ephemeral
    assert forced.ephemeral
    assert forced.text == market_errors.MSG_CONFLICT_PROPOSE.format(market_id=market_id)
    assert vote.text == forced.text  # the same reason for a vote and a force
    assert (await db(harness, market_get, market_id=market_id)).status == "closed"


async def test_a_conflicted_resolvers_vote_that_decides_nothing_is_refused_too(harness, members):
    """Issue 23 item 3: with two votes needed, a holder's first vote is not counted either."""
    await configure(harness, min_resolution_votes=2)
    market_id, _ = await create(harness, members.alice)
    await bet(harness, market_id, members.mod, 0)
    await close(harness, market_id)

    vote = await harness.send(
        harness.command("market resolve", members.mod, market=str(market_id), outcome="1")
    )

    assert vote.ephemeral
    assert vote.text == (
        f"You hold a position in market #{market_id}, so you can't vote on, propose or decide "
        "its result (this server's conflict-of-interest rule). Ask another resolver or moderator."
    )
    assert await db(harness, lambda: ResolutionVote.objects.count()) == 0


# --- Settings ------------------------------------------------------------------------------------


async def test_settings_sets_and_clears_the_moderators_channel(harness, members):
    channel = Channel(MOD_CHANNEL, "moderators")
    harness.guild_create([Channel(ANNOUNCE_CHANNEL, "announcements"), channel])
    denied = await harness.send(
        harness.command("settings moderators", members.bob, channel=channel)
    )
    saved = await harness.send(harness.command("settings moderators", members.mod, channel=channel))

    assert denied.text == rules.MSG_SETTINGS
    assert saved.text.startswith("Saved.")
    assert field(saved.reply, "Moderators' channel") == f"<#{MOD_CHANNEL}>"
    gs = await db(harness, points_services.guild_settings_get_or_create, guild_id=harness.guild_id)
    assert gs.moderator_channel_id == MOD_CHANNEL

    cleared = await harness.send(harness.command("settings moderators", members.mod))
    assert field(cleared.reply, "Moderators' channel").startswith("not set")
