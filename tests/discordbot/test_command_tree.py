"""Every command and option in the tree meets Discord's limits (DOMAIN §8), every command has
its docstring as help text, and `tree.sync` goes through against the fake (which applies
Discord's own validation and would refuse a bad tree)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from discord import app_commands

from discordbot import limits

from .fake_discord import FakeDiscord, VirtualClock
from .harness import Harness

NAME = re.compile(r"^[-_a-z0-9]{1,32}$")

EXPECTED = {
    "market": {
        "create",
        "show",
        "chart",
        "list",
        "close",
        "resolve",
        "confirm",
        "undo",
        "cancel",
        "holders",
        "audit",
    },
    "calibration": set(),
    "bet": set(),
    "sell": set(),
    "portfolio": set(),
    "order": {"buy", "sell", "cancel"},
    "orders": set(),
    "balance": set(),
    "daily": set(),
    "tip": set(),
    "leaderboard": set(),
    "history": set(),
    "settings": {
        "show",
        "set",
        "resolution",
        "channel",
        "moderators",
        "roles",
        "drip",
        "season",
        "quick_amounts",
        "time_zone",
    },
    "notifications": set(),
    "drip": {"deposit", "withdraw", "balance"},
    "privacy": {"forget"},
    "Create market from message": set(),  # issue 26: a message context menu
}


def _walk(payload: dict, path: str, problems: list[str]) -> None:
    name = payload["name"]
    if not (NAME.match(name) and limits.NAME_RE.match(name)):
        problems.append(f"{path}: name {name!r}")
    if not 1 <= limits.size(payload.get("description", "")) <= limits.DESCRIPTION:
        problems.append(f"{path}: description length")
    options = payload.get("options") or []
    if len(options) > limits.OPTIONS:
        problems.append(f"{path}: {len(options)} options")
    required_done = False
    for opt in options:
        sub = f"{path} {opt['name']}"
        if opt["type"] in (1, 2):
            _walk(opt, sub, problems)
            continue
        _walk({k: v for k, v in opt.items() if k != "options"}, sub, problems)
        if opt.get("required") and required_done:
            problems.append(f"{sub}: required after optional")
        required_done = required_done or not opt.get("required")
        choices = opt.get("choices") or []
        if len(choices) > limits.CHOICES:
            problems.append(f"{sub}: {len(choices)} choices")
        for c in choices:
            if not 1 <= limits.size(c["name"]) <= limits.CHOICE_NAME:
                problems.append(f"{sub}: choice {c['name']!r}")


@pytest.fixture
async def offline():
    """A bot with its cogs loaded, not logged in (the tree needs no database)."""
    h = await Harness.start(login=False)
    for name in h.bot.config.extensions:
        await h.bot.load_extension(name)
    try:
        yield h
    finally:
        await h.close()


async def test_the_tree_has_every_command_of_the_issue(offline):
    tree = offline.bot.tree
    found = {c.name: {s.name for s in getattr(c, "commands", [])} for c in tree.get_commands()}
    assert found == EXPECTED


async def test_every_command_and_option_meets_discords_limits(offline):
    """(The 4000-character total per command is checked by the fake on sync, below.)"""
    problems: list[str] = []
    for command in offline.bot.tree.get_commands():
        payload = command.to_dict(offline.bot.tree)
        if payload.get("type") in (2, 3):  # a context menu: 1–32 characters, no description
            name = payload["name"]
            if not 1 <= limits.size(name) <= 32 or payload.get("description"):
                problems.append(f"{name}: context menu")
            continue
        _walk(payload, command.name, problems)
    assert problems == []


async def test_every_command_is_guild_only_and_documented(offline):
    for command in offline.bot.tree.walk_commands():
        if isinstance(command, app_commands.Command):
            assert command.callback.__doc__, command.qualified_name
            assert command.description == command.callback.__doc__.strip().splitlines()[0]
            for param in command.parameters:
                assert param.description and param.description != "…", (
                    command.qualified_name,
                    param.name,
                )
    for command in offline.bot.tree.get_commands():
        assert command.guild_only, command.name
    settings_group = offline.bot.tree.get_command("settings")
    assert settings_group.default_permissions.manage_guild


@pytest.mark.django_db(transaction=True)
async def test_the_dev_guild_lists_every_command_once_before_and_after_a_global_sync():
    dev_guild = 777_777_777_777_777_701
    # Discord allows two command syncs a minute per guild: the restart comes a minute later on
    # Discord's clock, instead of discord.py waiting out the bucket for a real minute.
    fake = FakeDiscord(clock=VirtualClock())
    h = await Harness.start(fake=fake, dev_guild_id=dev_guild, sync_on_start=True)
    try:
        assert {c["name"] for c in h.fake.commands[dev_guild]} == set(EXPECTED)
        assert h.fake.commands.get(None, []) == []
        fake.advance(60)
        h = await h.restart(dev_guild_id=dev_guild, sync_on_start=True, sync_global=True)
        assert h.fake.rejections == []
        # Global now, and the dev guild's own copies cleared: each command shows once there.
        assert {c["name"] for c in h.fake.commands[None]} == set(EXPECTED)
        assert h.fake.commands[dev_guild] == []
        assert {c.name for c in h.bot.synced} == set(EXPECTED)
        puts = h.fake.requests_matching("PUT", r"/applications/\d+/(guilds/\d+/)?commands$")
        assert [r.path.count("/guilds/") for r in puts] == [1, 0, 1]
    finally:
        await h.close()


@pytest.mark.django_db(transaction=True)
async def test_a_refused_sync_is_logged_not_fatal(caplog):
    dev_guild = 777_777_777_777_777_702
    fake = FakeDiscord()
    fake.start()
    fake.fail(
        "PUT",
        rf"/guilds/{dev_guild}/commands$",
        403,
        {"code": 50001, "message": "Missing Access"},
    )
    h = await Harness.start(fake=fake, dev_guild_id=dev_guild, sync_on_start=True)
    try:
        assert not h.bot.is_closed() and h.bot.synced == []
        assert "could not sync commands to guild" in caplog.text and "403" in caplog.text
    finally:
        await h.close()


@pytest.mark.django_db(transaction=True)
async def test_without_a_dev_guild_nothing_is_synced_unless_asked():
    h = await Harness.start(sync_on_start=True)
    try:
        assert h.fake.requests_matching("PUT", "/commands") == []
    finally:
        await h.close()


async def test_the_fake_refuses_a_tree_discord_would_refuse(offline):
    from .fake_discord import Rejected, check_command

    bad = offline.bot.tree.get_command("bet").to_dict(offline.bot.tree)
    bad["options"][0]["description"] = "x" * 101
    with pytest.raises(Rejected):
        check_command(bad, "0")


async def test_the_readme_lists_every_command(offline):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Discord setup", 1)[1].split("\n## ", 1)[0]
    for command in offline.bot.tree.walk_commands():
        if isinstance(command, app_commands.Command):
            assert f"/{command.qualified_name}" in section or (
                command.parent and f"/{command.parent.name} " in section and command.name in section
            ), command.qualified_name
