"""The only place the bot touches discord.py's private attributes, each where discord.py has no
public API for what the bot needs. `tests/discordbot/test_dpy_private.py` pins the discord.py
behaviour every function relies on, so an upgrade that changes it fails there, by name, rather
than somewhere in a command.
"""

from __future__ import annotations

import asyncio

import discord


def member_role_ids(user: discord.abc.User) -> list[int] | None:
    """The role ids Discord sent with a member, whether or not the guild's roles are cached
    (`Member.roles`, the public list, drops roles missing from the cache: with no guild cache
    at all, the bot would see a member without roles). None for a user that is not a member."""
    raw = getattr(user, "_roles", None)
    return [int(r) for r in raw] if raw is not None else None


def dynamic_item_matches(client: discord.Client, custom_id: str) -> bool:
    """Whether a `DynamicItem` registered with `Client.add_dynamic_items` handles `custom_id`
    (discord.py offers adding and removing them, not asking)."""
    patterns = client._connection._view_store._dynamic_items
    return any(pattern.fullmatch(custom_id) for pattern in patterns)


def shard_queue_ensure(client: discord.AutoShardedClient) -> None:
    """Let an `AutoShardedClient` that logged in but never connected to the gateway (tests,
    one-off tools) close: its `close()` posts to the event queue that only `connect()`
    creates."""
    if not hasattr(client, "_AutoShardedClient__queue"):
        client._AutoShardedClient__queue = asyncio.PriorityQueue()  # type: ignore[attr-defined]
