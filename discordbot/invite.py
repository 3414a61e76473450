"""What the bot asks for when it is added to a server: the OAuth2 scopes, the permissions it
needs in a channel, and the invite link (`manage.py discord_invite_url`)."""

from __future__ import annotations

import discord

INVITE_SCOPES = ("bot", "applications.commands")
REQUIRED_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    embed_links=True,
    read_message_history=True,
)
"""What the bot needs in a channel: see it, post market messages and announcements with embeds,
and edit its own messages (no permission needed for that)."""
INVITE_PERMISSIONS = REQUIRED_PERMISSIONS | discord.Permissions(
    mention_everyone=True, create_public_threads=True
)
"""What the invite link asks for: the channel permissions, Mention Everyone so that a dispute
pings the resolver roles even when they are not mentionable (issue 23 item 16), and Create
Public Threads for each market's discussion thread (issue 26; without it markets have none)."""


def invite_url(client_id: int | str) -> str:
    """The OAuth2 link that adds the bot with its slash commands and the permissions it needs."""
    return discord.utils.oauth_url(client_id, permissions=INVITE_PERMISSIONS, scopes=INVITE_SCOPES)
