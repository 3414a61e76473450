"""Where a market's "who resolves it and how" paragraph (`render.how_text`) was shown in public
(issue 23 item 9): once per market is enough. The first public post after trading closes that
says it (the `/market close` reply, else the first vote, proposal or undo post) carries the
paragraph, and its link is remembered in the cache; later public posts carry
"How this market is resolved: <link>" instead. A link nobody remembers (a cache lost, flushed or
expired) means the paragraph again, never a link to nothing.

Cache-only functions (call them through `bot.cache_call`). The key holds the market's creation
instant beside its id, so a database rebuilt under the same cache never inherits another
market's link."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from django.core.cache import cache

if TYPE_CHECKING:
    import discord

    from markets.selectors import MarketSummary

    from .botlike import BotLike

logger = logging.getLogger(__name__)

MSG_HOW_LINK = "How this market is resolved: {link}"
KEEP_SECONDS = 30 * 24 * 3600
"""How long a link is remembered (past it, the next public post says the paragraph again)."""


def _key(market: MarketSummary) -> str:
    return f"discordbot:how-post:{market.id}:{int(market.created_at.timestamp() * 1_000_000)}"


def link(*, market: MarketSummary) -> str | None:
    """The jump link of the public post that showed `market`'s paragraph, if one is known."""
    try:
        return cache.get(_key(market))
    except Exception:  # a cache outage: the paragraph again
        logger.warning("cache unavailable reading the how post of #%s", market.id, exc_info=True)
        return None


def remember(*, market: MarketSummary, channel_id: int, message_id: int) -> None:
    """Remember the post that showed the paragraph (the first one stays, if two raced)."""
    url = f"https://discord.com/channels/{market.guild_id}/{channel_id}/{message_id}"
    try:
        cache.add(_key(market), url, KEEP_SECONDS)
    except Exception:
        logger.warning("cache unavailable recording the how post of #%s", market.id, exc_info=True)


async def words(bot: BotLike, market: MarketSummary, how: str) -> tuple[str, bool]:
    """What a public post says about how `market` is resolved: the link to the post that showed
    the paragraph, else the paragraph `how` itself. True: this post shows the paragraph (so it
    should be remembered once sent)."""
    known = await bot.cache_call(link, market=market)
    if known:
        return MSG_HOW_LINK.format(link=known), False
    return how, True


def remembering(
    bot: BotLike,
    market: MarketSummary,
    then: Callable[[discord.Message], Awaitable[None]] | None = None,
) -> Callable[[discord.Message], Awaitable[None]]:
    """An `after_send` that remembers the sent message as the market's paragraph post, after
    running `then` (the reply's own `after_send`, if any)."""

    async def after(message: discord.Message) -> None:
        if then is not None:
            await then(message)
        await bot.cache_call(
            remember, market=market, channel_id=message.channel.id, message_id=message.id
        )

    return after
