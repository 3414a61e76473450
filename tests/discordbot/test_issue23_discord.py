"""Issue 23 items 15–19 through the strict fake Discord: what Discord counts and refuses, and what a
member or moderator then sees."""

from __future__ import annotations

import pytest

from discordbot import market_ui
from discordbot.market_ui.base import LIST_ID, utf16_prefix

from .fake_discord import utf16
from .harness import MODAL

pytestmark = pytest.mark.django_db(transaction=True)


# --- item 18: the create form's prefills are cut in UTF-16 units ---


async def test_emoji_prefills_fit_the_create_form_as_discord_counts(harness, members):
    question = "🎲" * 400  # 400 characters, 800 UTF-16 units: the field takes 500 units
    category = "🏀" * 40  # 80 units: the field takes 50
    opened = await harness.send(
        harness.command(
            "market create", members.alice, question=question, category=category, outcomes="A|B"
        )
    )

    assert opened.response_type == MODAL, opened.rejected
    assert not opened.rejected
    values = {
        c["component"]["custom_id"]: c["component"].get("value") for c in opened.modal["components"]
    }
    assert values["question"] == "🎲" * 250 and utf16(values["question"]) == 500
    assert values["category"] == "🏀" * 25


def test_a_utf16_prefix_never_splits_an_emoji():
    assert utf16_prefix("a🎲b", 2) == "a"
    assert utf16_prefix("a🎲b", 3) == "a🎲"


# --- item 17: every legal value fits a Confirm button and a list page button ---

BIG = 2**63 - 1  # the largest amount, micro-share count or limit a 64-bit column holds
SNOWFLAKE = 2**64 - 1


async def test_confirm_and_page_buttons_fit_discord_at_every_legal_value(harness):
    import discord

    confirm = market_ui.QuoteConfirmButton("s", SNOWFLAKE, 9, BIG, BIG, SNOWFLAKE, SNOWFLAKE)
    pages = market_ui.ListPageButton(
        9_999_999_999, "resolving", "🏀" * 50, label="Next ▶", disabled=False
    )
    small = market_ui.ListPageButton(10_000, "open", "", label="Next ▶", disabled=False)
    requote = market_ui.RequoteButton(SNOWFLAKE, 9, BIG, SNOWFLAKE)
    requote_sell = market_ui.RequoteSellButton(SNOWFLAKE, 9, BIG, SNOWFLAKE)
    view = discord.ui.View(timeout=None)
    for item in (confirm, pages, small, requote, requote_sell):
        view.add_item(item)

    sent = await harness.bot.get_partial_messageable(harness.channel_id).send(view=view)

    stored = harness.fake.message(sent.id)
    ids = [c["custom_id"] for row in stored["components"] for c in row["components"]]
    assert all(utf16(i) <= 100 for i in ids), ids
    import re

    match = re.fullmatch(market_ui.CONFIRM_ID, ids[0])
    assert match is not None
    back = await market_ui.QuoteConfirmButton.from_custom_id(None, None, match)  # type: ignore[arg-type]
    assert (back.market_id, back.outcome, back.quantity, back.limit) == (SNOWFLAKE, 9, BIG, BIG)
    assert (back.user_id, back.quote_id) == (SNOWFLAKE, SNOWFLAKE)
    assert re.fullmatch(LIST_ID, ids[1])["page"] == "9999999999"
    assert re.fullmatch(LIST_ID, ids[2])["page"] == "10000"
    for cls, custom_id in (
        (market_ui.RequoteButton, ids[3]),
        (market_ui.RequoteSellButton, ids[4]),
    ):
        found = re.fullmatch(cls.__discord_ui_compiled_template__, custom_id)
        assert found is not None, custom_id
        again = await cls.from_custom_id(None, None, found)  # type: ignore[arg-type]
        assert again.custom_id == custom_id and again.user_id == SNOWFLAKE


# --- item 19: contexts and integration types; one process syncs ---


async def test_every_command_is_synced_with_contexts_and_integration_types():
    from .harness import Harness

    dev_guild = 777_777_777_777_777_719
    h = await Harness.start(dev_guild_id=dev_guild, sync_on_start=True)
    try:
        synced = h.fake.commands[dev_guild]
        assert synced and not h.fake.rejections
        for command in synced:
            assert command["contexts"] == [0], command["name"]
            assert command["integration_types"] == [0], command["name"]
    finally:
        await h.close()


async def test_only_the_process_holding_shard_0_syncs_commands():
    from .harness import Harness

    dev_guild = 777_777_777_777_777_720
    other = await Harness.start(
        dev_guild_id=dev_guild, sync_on_start=True, shard_count=2, shard_ids=(1,)
    )
    try:
        assert other.fake.requests_matching("PUT", "/commands") == []
    finally:
        await other.close()
    first = await Harness.start(
        dev_guild_id=dev_guild, sync_on_start=True, shard_count=2, shard_ids=(0,)
    )
    try:
        assert len(first.fake.requests_matching("PUT", "/commands")) == 1
    finally:
        await first.close()


# --- item 16: dispute pings need a mentionable role or Mention Everyone ---

RESOLVERS = 555_555_555_555_555_516
BOT_ROLE = 555_555_555_555_555_517
MOD_CHANNEL = 444_444_444_444_444_416


def _resolvers(mentionable: bool):
    from .harness import Role

    return Role(RESOLVERS, "resolvers", mentionable=mentionable)


def _bot_role(mention_everyone: bool):
    import discord

    from .harness import Role

    return Role(BOT_ROLE, "bot", permissions=discord.Permissions(mention_everyone=mention_everyone))


async def test_settings_roles_warns_that_an_unmentionable_resolver_role_gets_no_ping(
    harness, members
):
    role = _resolvers(mentionable=False)
    harness.guild_create(roles=[role], bot_roles=[_bot_role(False)])
    saved = await harness.send(
        harness.command("settings roles", members.mod, kind="resolver", action="add", role=role)
    )
    assert saved.text.startswith("Saved.")
    assert f"Dispute pings won't reach <@&{RESOLVERS}>" in saved.text
    assert "Mention Everyone" in saved.text

    harness.guild_create(roles=[role], bot_roles=[_bot_role(True)])
    again = await harness.send(
        harness.command("settings roles", members.mod, kind="resolver", action="add", role=role)
    )
    assert "Dispute pings" not in again.text

    mentionable = _resolvers(mentionable=True)
    harness.guild_create(roles=[mentionable], bot_roles=[_bot_role(False)])
    fine = await harness.send(
        harness.command(
            "settings roles", members.mod, kind="resolver", action="add", role=mentionable
        )
    )
    assert "Dispute pings" not in fine.text


async def test_settings_moderators_warns_about_the_resolver_roles_there(harness, members):
    from .harness import Channel

    role = _resolvers(mentionable=False)
    channel = Channel(MOD_CHANNEL, "moderators")
    harness.guild_create([channel], roles=[role], bot_roles=[_bot_role(False)])
    await harness.send(
        harness.command("settings roles", members.mod, kind="resolver", action="add", role=role)
    )
    saved = await harness.send(harness.command("settings moderators", members.mod, channel=channel))
    assert f"Dispute pings won't reach <@&{RESOLVERS}>" in saved.text
    assert f"in <#{MOD_CHANNEL}>" in saved.text


@pytest.mark.parametrize(
    ("mentionable", "mention_everyone", "pinged"),
    [(False, False, []), (True, False, [str(RESOLVERS)]), (False, True, [str(RESOLVERS)])],
)
async def test_the_fake_pings_a_role_only_as_discord_would(
    harness, mentionable, mention_everyone, pinged
):
    import discord

    harness.guild_create(roles=[_resolvers(mentionable)], bot_roles=[_bot_role(mention_everyone)])
    sent = await harness.bot.get_partial_messageable(harness.channel_id).send(
        f"<@&{RESOLVERS}> a dispute",
        allowed_mentions=discord.AllowedMentions(roles=[discord.Object(id=RESOLVERS)]),
    )
    assert harness.fake.message(sent.id)["mention_roles"] == pinged


# --- item 15: budgets hold with the host's clock off Discord's ---

HOST_AHEAD = [0.7, -0.7, 3.0]
"""Seconds the host's clock is ahead of Discord's (negative: behind)."""


@pytest.mark.parametrize("ahead", HOST_AHEAD)
async def test_rate_limits_apply_whatever_the_host_clock_says(harness, members, ahead):
    harness.fake.skew_host(ahead)
    replies = [await harness.send(harness.command("balance", members.alice)) for _ in range(15)]

    refused = [r for r in replies if r.text.startswith("You're going too fast")]
    assert len(refused) == 5, [r.text[:40] for r in replies]
    assert all(not r.rejected for r in replies)  # every answer within Discord's 3 s


@pytest.mark.parametrize("ahead", HOST_AHEAD)
async def test_autocomplete_answers_whatever_the_host_clock_says(harness, members, ahead):
    from .conftest import make_market

    harness.fake.skew_host(ahead)
    await make_market(harness, creator=members.alice.id, question="Will it snow?")
    ex = await harness.send(
        harness.autocomplete("market show", members.bob, "market", market="snow")
    )

    assert [c["name"] for c in ex.choices if "snow" in c["name"]], ex.choices


@pytest.mark.parametrize("ahead", HOST_AHEAD)
async def test_the_skew_is_estimated_from_discords_headers_and_warned_about(
    harness, members, ahead, caplog
):
    from discordbot.clock import SKEW_WARNING

    harness.fake.skew_host(ahead)
    for _ in range(3):
        await harness.send(harness.command("balance", members.alice))

    skew = harness.bot.clock.skew
    assert skew is not None and abs(skew - ahead) < 0.1, (skew, ahead)
    (reading,) = harness.bot.clock.readings()
    assert reading.name == "pm_bot_discord_clock_skew_seconds"
    assert abs(ahead) > SKEW_WARNING
    assert "host clock is" in caplog.text and ("ahead of" if ahead > 0 else "behind") in caplog.text


def test_the_creation_time_counts_in_full_only_once_the_skew_is_precise():
    import time

    from discordbot.clock import DELIVERY_BOUND, DiscordClock

    clock = DiscordClock()
    created = time.time() - 2.0  # the host sees it 2 s old, no skew known yet
    assert clock.age(1, created) <= DELIVERY_BOUND + 0.05
    now = time.time()
    clock.observe(now - 0.5, now - 0.5, {"Date": "Thu, 01 Jan 1970 00:00:00 GMT"})
    clock.observe(
        now, now + 0.01, {"X-RateLimit-Reset": f"{now + 1:.3f}", "X-RateLimit-Reset-After": "1.000"}
    )
    assert clock.skew is not None and abs(clock.skew) < 0.05
    assert 1.9 < clock.age(2, created) < 2.2  # in sync, precisely: the whole age counts


@pytest.mark.parametrize(("mention_everyone", "reached"), [(False, False), (True, True)])
async def test_a_dispute_ping_reaches_an_unmentionable_role_only_with_mention_everyone(
    harness, members, mention_everyone, reached
):
    from .harness import ANNOUNCE_CHANNEL, Channel, Role
    from .test_dispute import MOD_CHANNEL as DISPUTE_CHANNEL
    from .test_dispute import RESOLVER_ROLE, dispute, notifier, proposed_market

    harness.guild_create(
        [Channel(ANNOUNCE_CHANNEL, "announcements"), Channel(DISPUTE_CHANNEL, "moderators")],
        roles=[Role(RESOLVER_ROLE, "resolvers", mentionable=False)],
        bot_roles=[_bot_role(mention_everyone)],
    )
    _, reply = await proposed_market(harness, members)
    await dispute(harness, reply, members.bob, "It did not rain")
    await notifier(harness).drain()

    (ping,) = harness.fake.channel_posts(DISPUTE_CHANNEL)
    assert ping["content"].startswith(f"<@&{RESOLVER_ROLE}>")
    assert ping["mention_roles"] == ([str(RESOLVER_ROLE)] if reached else [])


async def test_a_quote_lasts_its_two_minutes_on_discords_clock_with_the_host_ahead(
    harness, members
):
    from discordbot.market_ui.base import b36

    from .conftest import make_market
    from .fake_discord import snowflake
    from .test_quotes import confirm_id, quote_bet, trades

    harness.fake.skew_host(3.0)
    market = await make_market(harness, creator=members.alice.id)
    quote = await quote_bet(harness, members.bob, market.id, "1", 100)
    # The same quote as if Discord had shown it 118 s ago (121 s on the host's clock).
    parts = confirm_id(quote).split(":")
    parts[-1] = b36(snowflake(harness.fake.now() - 118))
    old = dict(quote.reply)
    old["components"] = [
        {
            "type": 1,
            "components": [
                {"type": 2, "style": 3, "label": "Confirm", "custom_id": ":".join(parts)}
            ],
        }
    ]
    confirmed = await harness.send(harness.click(old, members.bob, label="Confirm"))

    assert "expired" not in confirmed.text, confirmed.text
    assert len(await trades(harness)) == 1
