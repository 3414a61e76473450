"""Every interaction gets an answer: a `DomainError` is its own short private message; anything
else is "Something went wrong (error id …)" with the same id in the log; a failure before the
command runs (an option Discord sent that the bot cannot read) is answered too."""

from __future__ import annotations

import logging
import re

import pytest

from discordbot import actions

from .harness import DEFERRED

pytestmark = pytest.mark.django_db(transaction=True)


async def test_an_unexpected_error_shows_an_id_that_is_in_the_log(
    harness, members, monkeypatch, caplog
):
    def broken(**kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(actions, "balance_ensure_for_interaction", broken)
    with caplog.at_level(logging.ERROR, logger="discordbot.interactions"):
        ex = await harness.send(harness.command("balance", members.alice))

    assert ex.response_type == DEFERRED and ex.ephemeral
    match = re.fullmatch(r"Something went wrong \(error id ([0-9a-f]{8})\)\..*", ex.text, re.S)
    assert match, ex.text
    error_id = match.group(1)
    (record,) = [r for r in caplog.records if error_id in r.getMessage()]
    assert record.exc_info and "disk on fire" in str(record.exc_info[1])
    assert "disk on fire" not in ex.text
    # The id is a field of the log line too (JSON logs, Sentry tag), with the interaction.
    assert record.error_id == error_id
    assert record.user_id == members.alice.id


async def test_an_error_after_a_public_defer_is_shown_privately(harness, members, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(actions, "points_tip_for_interaction", broken)
    ex = await harness.send(harness.command("tip", members.alice, member=members.bob, amount=5))

    assert ex.state.original_deleted
    assert ex.ephemeral and ex.text.startswith("Something went wrong (error id ")


async def test_an_option_the_bot_cannot_read_is_answered(harness, members):
    payload = harness.command("tip", members.alice, member=members.bob, amount=5)
    # A user option that Discord did not resolve into a member (e.g. someone who left).
    payload["data"]["resolved"].pop("members")

    ex = await harness.send(payload)

    assert ex.response_type == 4
    assert ex.ephemeral
    assert "is not a valid value for that option" in ex.text


async def test_a_command_the_bot_does_not_know_is_answered(harness, members):
    ex = await harness.send(harness.command("retired-command", members.alice))

    assert ex.ephemeral
    assert ex.text == "This command is not available any more; the command list will update soon."


async def test_commands_in_direct_messages_are_refused_politely(harness, members):
    payload = harness.command("balance", members.alice)
    for key in ("guild_id", "member"):
        payload.pop(key)
    payload["data"].pop("guild_id")
    payload["user"] = members.alice.user_json()
    payload["channel"] = {"id": payload["channel_id"], "type": 1}
    payload["context"] = 1

    ex = await harness.send(payload)

    assert ex.ephemeral
    assert "inside a server" in ex.text
