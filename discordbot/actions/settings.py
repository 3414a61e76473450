"""`/settings`: a guild's settings changed by the member Discord described."""

from __future__ import annotations

from points import services as points_services

# --- Guild settings (/settings) --------------------------------------------------------------

guild_settings_update_for_interaction = points_services.guild_settings_update
"""`/settings`: the member Discord described (an `Actor` already) changes this guild's settings
through `points.services.guild_settings_update`, which checks who may and which values
(`points.rules`) — nothing is left for the interface to add, so it is that service itself.
`announce_channel_id` / `moderator_channel_id` None clears the channel, False leaves it."""
