"""Pins the discord.py behaviour `discordbot/dpy_private.py` relies on: if an upgrade changes
any of it, these fail by name (and the bot's workaround is to be revisited), instead of a
command misreading a member's roles or every button answering "stale"."""

from __future__ import annotations

import re
from typing import Self

import discord
import pytest

from discordbot import dpy_private


def _member(client: discord.Client, role_ids: list[int]) -> discord.Member:
    """A member as an interaction payload describes it, in a guild whose roles are not cached."""
    state = client._connection
    guild = discord.Guild(data={"id": "111", "name": "g", "roles": []}, state=state)  # type: ignore[typeddict-item]
    data = {
        "user": {"id": "222", "username": "bob", "discriminator": "0", "avatar": None},
        "roles": [str(r) for r in role_ids],
        "joined_at": None,
        "deaf": False,
        "mute": False,
        "flags": 0,
    }
    return discord.Member(data=data, guild=guild, state=state)  # type: ignore[arg-type]


async def test_member_role_ids_keeps_roles_the_public_list_drops():
    client = discord.Client(intents=discord.Intents(guilds=True))
    member = _member(client, [333, 444])

    assert member.roles == [], "discord.py's Member.roles now keeps uncached roles: use it"
    assert dpy_private.member_role_ids(member) == [333, 444]
    await client.close()


def test_member_role_ids_is_none_for_a_plain_user():
    client = discord.Client(intents=discord.Intents(guilds=True))
    user = discord.User(
        state=client._connection,
        data={"id": "222", "username": "bob", "discriminator": "0", "avatar": None},  # type: ignore[typeddict-item]
    )

    assert dpy_private.member_role_ids(user) is None


class _Item(discord.ui.DynamicItem[discord.ui.Button], template=r"pin:(?P<n>\d+)"):
    def __init__(self, n: int) -> None:
        super().__init__(discord.ui.Button(label="x", custom_id=f"pin:{n}"))

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /
    ) -> Self:
        return cls(int(match["n"]))


async def test_dynamic_item_matches_what_add_dynamic_items_registered():
    client = discord.Client(intents=discord.Intents(guilds=True))

    assert not dpy_private.dynamic_item_matches(client, "pin:12")
    client.add_dynamic_items(_Item)
    assert dpy_private.dynamic_item_matches(client, "pin:12")
    assert not dpy_private.dynamic_item_matches(client, "pin:12x")  # a whole-id match
    client.remove_dynamic_items(_Item)
    assert not dpy_private.dynamic_item_matches(client, "pin:12")
    await client.close()


async def test_a_sharded_client_that_never_connected_closes_only_with_the_queue():
    unready = discord.AutoShardedClient(intents=discord.Intents(guilds=True))
    with pytest.raises(AttributeError):  # discord.py still needs the queue connect() creates
        await unready.close()

    client = discord.AutoShardedClient(intents=discord.Intents(guilds=True))
    dpy_private.shard_queue_ensure(client)
    await client.close()
    assert client.is_closed()
