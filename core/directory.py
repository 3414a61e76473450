"""How a member or a server reads when the directory has no name for them (issue 13): never
seen by the bot, or forgotten at their request (`/privacy forget`). Shared by the ledger's
selectors and the back office's links, so every interface shows the same words."""

from __future__ import annotations


def member_fallback(user_id: int | None) -> str:
    """ "member #1234…": the id's first digits (the full id stays one click away)."""
    return f"member #{str(user_id)[:4]}…" if user_id else "—"


def guild_fallback(guild_id: int | None) -> str:
    return f"server #{str(guild_id)[:4]}…" if guild_id else "—"
