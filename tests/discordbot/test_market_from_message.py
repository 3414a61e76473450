"""Markets from messages (issue 26): the message context menu opens the creation form with the
question taken from the message (trimmed to docs/domain.md §7's 500 characters, format
characters dropped, lines joined) and a link back to it in the description — through the strict
fake Discord, which refuses what Discord refuses of a context menu command."""

from __future__ import annotations

import pytest

from discordbot.market_create import FROM_MESSAGE_MENU, question_from_message
from markets.models import Market

from .conftest import db
from .fake_discord import Rejected, check_command
from .harness import MODAL

pytestmark = pytest.mark.django_db(transaction=True)

AUTHOR = {"id": "222222222222222209", "username": "dora", "discriminator": "0", "avatar": None}


def field(modal: dict, custom_id: str) -> dict:
    for row in modal["components"]:
        inner = row["component"] if row["type"] == 18 else row["components"][0]
        if inner["custom_id"] == custom_id:
            return inner
    raise AssertionError(f"no input {custom_id}")


async def test_the_menu_is_registered_as_a_message_command(harness):
    await harness.bot.tree.sync()
    synced = harness.fake.commands.get(None, [])
    menu = [c for c in synced if c.get("type") == 3]
    assert [c["name"] for c in menu] == [FROM_MESSAGE_MENU]
    assert not menu[0].get("description")


def test_the_fake_refuses_what_discord_refuses_of_a_context_menu():
    too_long = {"type": 3, "name": "Create a market from this message"}  # 33 characters
    with pytest.raises(Rejected):
        check_command(too_long, "0")
    with pytest.raises(Rejected):
        check_command({"type": 3, "name": "Make market", "description": "no"}, "0")
    with pytest.raises(Rejected):
        check_command({"type": 3, "name": "Make market", "options": [{"name": "x"}]}, "0")
    check_command({"type": 3, "name": "Make market", "description": ""}, "0")


async def test_the_form_opens_with_the_question_and_a_link_back(harness, members):
    message = harness.fake.post_as(
        harness.channel_id, AUTHOR, "Will the\u200b new bridge\nopen before May?"
    )
    ex = await harness.send(harness.message_command(FROM_MESSAGE_MENU, members.alice, message))
    assert ex.response_type == MODAL
    modal = ex.modal
    assert field(modal, "question")["value"] == "Will the new bridge open before May?"
    url = f"https://discord.com/channels/{harness.guild_id}/{harness.channel_id}/{message['id']}"
    assert field(modal, "description")["value"] == f"Asked in this message: {url}"
    assert field(modal, "outcomes")["value"] == "Yes\nNo"

    done = await harness.send(harness.submit(modal, members.alice))
    assert done.reply["embeds"][0]["title"].endswith("Will the new bridge open before May?")
    market = await db(harness, lambda: Market.objects.get())
    assert market.question == "Will the new bridge open before May?"
    assert url in market.description


async def test_a_long_message_is_trimmed_to_the_question_limit(harness, members):
    text = "Will " + "🌉 bridge " * 120 + "open?"
    message = harness.fake.post_as(harness.channel_id, AUTHOR, text)
    ex = await harness.send(harness.message_command(FROM_MESSAGE_MENU, members.alice, message))
    question = field(ex.modal, "question")["value"]
    assert question.endswith("…") and question.startswith("Will 🌉 bridge")
    assert len(question.encode("utf-16-le")) // 2 <= 500
    done = await harness.send(harness.submit(ex.modal, members.alice))
    assert "#" in done.reply["embeds"][0]["title"]
    assert len(await db(harness, lambda: Market.objects.get().question)) <= 500


def test_format_and_control_characters_are_handled():
    assert question_from_message("\u202eevil\u202c text\ttabbed\r\nnext") == "evil text tabbed next"
    assert question_from_message("a" * 600) == "a" * 499 + "…"
    assert question_from_message("   ") == ""
