"""A discussion thread per market (issue 26), where the bot may create threads.

The thread is started from the market's first message (the `/market create` reply or the
announcement) with Discord's "Start Thread from Message"
(https://discord.com/developers/docs/resources/channel#start-thread-from-message: POST
/channels/{channel}/messages/{message}/threads; the thread's id is the message's). The market
message's text then links it, and the notifier posts the proposal, the undo, the dispute (where
no moderators' channel is set) and the settlement summary in the thread instead of the channel.

One thread per market, across restarts: a `MarketThread` row claims the market before the
request (`actions.market_thread_claim`); a claim left by a process that stopped is finished by
the next one, and if Discord had started the thread it answers 160004 ("A thread has already
been created for this message"), which the bot reads as the thread (same id as the message).

Without the permissions (Create Public Threads, Send Messages in Threads; seen in the gateway's
cache, or a 403 50013/50001) the market simply has no thread: posts go to the channel as before,
the reason is kept on the row and not tried again, and `/settings channel` says what is missing.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import discord

from markets.selectors import MarketSummary

from . import actions, limits

if TYPE_CHECKING:
    from .bot import PredictionBot

logger = logging.getLogger(__name__)

THREAD_ARCHIVE_MINUTES: Literal[10080] = 10080
"""Hidden after a week without messages (Discord allows 60, 1440, 4320 or 10080); a post in an
archived thread brings it back."""
THREAD_NAME = 100
ALREADY_STARTED = 160004
THREAD_PERMISSIONS = {
    "create_public_threads": "Create Public Threads",
    "send_messages_in_threads": "Send Messages in Threads",
}
MSG_THREAD_LINK = "💬 Discuss this market in <#{thread}>"


def missing_thread_permissions(channel: object) -> list[str] | None:
    """What the bot lacks in `channel` to start a market's thread and post in it, from the
    gateway's cache; None if it cannot tell (channel or own member not cached)."""
    guild = getattr(channel, "guild", None)
    me = getattr(guild, "me", None)
    if me is None or not hasattr(channel, "permissions_for"):
        return None
    have = channel.permissions_for(me)
    return [label for name, label in THREAD_PERMISSIONS.items() if not getattr(have, name)]


def thread_name(m: MarketSummary) -> str:
    return limits.fit(" ".join(f"#{m.id} {m.question}".split()), THREAD_NAME)


async def market_thread_start(
    bot: PredictionBot,
    m: MarketSummary,
    *,
    channel_id: int,
    message_id: int,
    content: str | None = None,
) -> int | None:
    """The market's thread, started from the message `message_id` in `channel_id` unless the
    market has one (or another process is starting it); None where there is none. `content` is
    the message's text, to which the link to the thread is added (None: read it)."""
    state, first, second = await bot.db(
        actions.market_thread_claim,
        market_id=m.id,
        channel_id=channel_id,
        message_id=message_id,
    )
    if state != "start":
        return first if state == "have" else None
    assert first is not None and second is not None
    asked, (channel_id, message_id) = message_id, (first, second)
    missing = missing_thread_permissions(bot.get_channel(channel_id))
    if missing:
        detail = "missing " + ", ".join(missing)
        await bot.db(actions.market_thread_record, market_id=m.id, thread_id=None, detail=detail)
        return None
    try:
        data = await bot.http.start_thread_with_message(
            channel_id,
            message_id,
            name=thread_name(m),
            auto_archive_duration=THREAD_ARCHIVE_MINUTES,
            rate_limit_per_user=None,
        )
        thread_id = int(data["id"])
    except discord.HTTPException as exc:
        if exc.code == ALREADY_STARTED:
            thread_id = message_id  # started before a restart: same id as its message
        elif exc.status in (400, 403, 404):
            detail = f"{exc.status} {exc.code} {exc.text}"
            logger.info("market %s gets no thread: %s", m.id, detail)
            await bot.db(
                actions.market_thread_record, market_id=m.id, thread_id=None, detail=detail
            )
            return None
        else:
            logger.warning("could not start the thread of market %s: %s", m.id, exc)
            await bot.db(actions.market_thread_release, market_id=m.id)
            return None
    await bot.db(actions.market_thread_record, market_id=m.id, thread_id=thread_id)
    link = MSG_THREAD_LINK.format(thread=thread_id)
    try:
        if content is None or message_id != asked:
            content = (await bot.http.get_message(channel_id, message_id)).get("content") or ""
        if link in content:
            return thread_id
        text = limits.fit(f"{content}\n{link}" if content else link, limits.CONTENT)
        partial = bot.get_partial_messageable(channel_id).get_partial_message(message_id)
        await partial.edit(content=text)
    except discord.HTTPException as exc:
        logger.info("could not link the thread of market %s: %s", m.id, exc)
    return thread_id


async def market_thread_of(bot: PredictionBot, m: MarketSummary) -> int | None:
    """Where the market's posts go: its thread, finishing a claim a stopped process left (or
    starting one from the market's own message); None: the channel."""
    if m.channel_id and m.message_id:
        return await market_thread_start(bot, m, channel_id=m.channel_id, message_id=m.message_id)
    return await bot.db(actions.market_thread_of, market_id=m.id)
