"""Each guild's permission policy as the bot caches it, so rate-limit exemptions and early
refusals never wait for the database (the services decide again, `points.rules`).

A moderator's settings change takes effect for every command after its answer: the settings
cog `reload`s the policy before answering. Each guild's policy has a generation, bumped by
`reload`; a read that started before the change (a background refresh racing the write) may
have seen the old row, so its result is dropped when the generation moved meanwhile, instead
of being kept for `POLICY_TTL_SECONDS` (CI's rush met the default 100 commands a minute after a
moderator's `requests_per_minute 10000` was answered, issue 28)."""

from __future__ import annotations

import logging
import time

from .actions import policy_get
from .botlike import BotLike
from .permissions import Policy

logger = logging.getLogger(__name__)

POLICY_TTL_SECONDS = 60.0
POLICY_CACHE_SIZE = 10_000
"""Guilds whose policy is kept; the least recently loaded are dropped past it."""


class PolicyCache:
    """Each guild's permission policy, cached for `POLICY_TTL_SECONDS`. `peek` never waits (rate
    limit exemptions and early checks use it); `refresh` reads the database in the background."""

    def __init__(self, bot: BotLike) -> None:
        self.bot = bot
        self._entries: dict[int, tuple[float, Policy]] = {}
        self._pending: set[int] = set()
        self._generations: dict[int, int] = {}

    def peek(self, guild_id: int) -> Policy | None:
        entry = self._entries.get(guild_id)
        if entry is None or time.monotonic() - entry[0] > POLICY_TTL_SECONDS:
            self.refresh_soon(guild_id)
        return entry[1] if entry else None

    def cached(self, guild_id: int) -> Policy | None:
        """The cached policy, however old, without asking for a refresh (for rendering, which
        may run where no task can be started)."""
        entry = self._entries.get(guild_id)
        return entry[1] if entry else None

    def refresh_soon(self, guild_id: int) -> None:
        if guild_id in self._pending:
            return
        self._pending.add(guild_id)
        self.bot.spawn(self._background(guild_id))

    async def load(self, guild_id: int) -> Policy | None:
        """Read the guild's policy now and cache it (start-up warming, benchmarks)."""
        await self._refresh(guild_id)
        entry = self._entries.get(guild_id)
        return entry[1] if entry else None

    async def reload(self, guild_id: int) -> None:
        """The guild's settings just changed (committed): read its policy again now. Reads
        already under way are not kept (they may have seen the row before the change). If this
        read fails, the policy is forgotten and read again by the next `peek`."""
        self._generations[guild_id] = self._generations.get(guild_id, 0) + 1
        if not await self._refresh(guild_id):
            self._entries.pop(guild_id, None)

    async def _background(self, guild_id: int) -> None:
        try:
            await self._refresh(guild_id)
        finally:
            self._pending.discard(guild_id)

    async def _refresh(self, guild_id: int) -> bool:
        """Read and keep the guild's policy unless a `reload` began meanwhile; False when the
        read failed."""
        generation = self._generations.get(guild_id, 0)
        try:
            policy = await self.bot.db_fast(policy_get, guild_id=guild_id)
        except Exception:
            logger.warning("could not load the policy of guild %s", guild_id, exc_info=True)
            return False
        if self._generations.get(guild_id, 0) != generation:
            return True  # read before a change: the change's own reload keeps the new one
        self._entries.pop(guild_id, None)
        self._entries[guild_id] = (time.monotonic(), policy)
        while len(self._entries) > POLICY_CACHE_SIZE:  # dicts keep insertion order
            self._entries.pop(next(iter(self._entries)))
        return True
