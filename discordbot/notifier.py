"""Discord notifications from the `MarketEvent` outbox (DOMAIN §6, STYLE §6).

The notifier reads events by increasing id after its persisted cursor (`NotificationCursor`),
announces each one, and moves the cursor past it only when every message for it is delivered or
deliberately skipped. Each message is recorded in `NotificationDelivery` right after it is sent,
so a restart in the middle of an event sends only what is missing: nothing is lost, and at most
the one message in flight at the moment of a crash can repeat.

- `market_created`: the market message (embed + buttons) in the guild's announcement channel.
- `market_closed`: a DM to the creator ("resolve within N days or it is refunded"), and the
  market message is refreshed.
- `market_resolved` / `market_cancelled`: a summary in the announcement channel (or where the
  market was posted) — winner, total paid, biggest winners — and a DM to each trader with their
  own result, paced (`dm_interval`) for Discord's rate limits.
- `trade`: the market message is refreshed, at most every `REFRESH_SECONDS` per market.

Members who turned notifications off (`/notifications off`) get no DMs; a member whose DMs are
closed (Discord answers 403) is skipped quietly. Events older than `max_age` are skipped (old
news), which is also where a notifier running for the first time starts.

Run one notifier per deployment: the bot starts it in the process that holds shard 0.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
from django.utils import timezone

from markets.models import MarketEvent
from markets.selectors import MarketSummary, market_events_after, market_get
from ops import metrics

from . import actions, render, selectors
from .market_ui import market_view
from .models import NotificationDelivery

if TYPE_CHECKING:
    from .bot import PredictionBot

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 15.0
MAX_ATTEMPTS = 5
SENT, SKIPPED, FAILED = (
    NotificationDelivery.Status.SENT,
    NotificationDelivery.Status.SKIPPED,
    NotificationDelivery.Status.FAILED,
)


class RetryLater(Exception):
    """Discord or the network failed transiently; the event is retried on the next run."""


class Notifier:
    def __init__(
        self,
        bot: PredictionBot,
        *,
        name: str = "default",
        batch_size: int = 100,
        dm_interval: float = 0.5,
        max_age: dt.timedelta = dt.timedelta(hours=24),
    ) -> None:
        self.bot = bot
        self.name = name
        self.batch_size = batch_size
        self.dm_interval = dm_interval
        self.max_age = max_age
        self._dm_channels: dict[int, int] = {}
        self._dirty: set[int] = set()
        self._refreshed: dict[int, float] = {}
        self._attempts: dict[int, int] = {}
        self._lock = asyncio.Lock()

    async def run_once(self) -> int:
        """Handle up to `batch_size` events after the cursor; returns how many were finished.
        Stops at an event that must be retried (the cursor stays before it)."""
        async with self._lock:
            now = timezone.now()
            cursor = await self.bot.db(
                actions.notification_cursor_start, name=self.name, after=now - self.max_age
            )
            events = await self.bot.db(market_events_after, after_id=cursor, limit=self.batch_size)
            done = 0
            for event in events:
                try:
                    await self.handle(event, now=now)
                except RetryLater:
                    attempts = self._attempts.get(event.pk, 0) + 1
                    self._attempts[event.pk] = attempts
                    if attempts < MAX_ATTEMPTS:
                        logger.warning("notification for event %s will be retried", event.pk)
                        break
                    logger.error("giving up on notifications for event %s", event.pk)
                await self.bot.db(
                    actions.notification_cursor_advance, name=self.name, event_id=event.pk
                )
                self._attempts.pop(event.pk, None)
                done += 1
            await self._refresh_dirty()
            cursor = events[done - 1].pk if done else cursor
            backlog = await self.bot.db(selectors.events_backlog, after_id=cursor)
            metrics.notification_backlog_set(backlog)
            return done

    async def drain(self) -> int:
        """Run until the outbox is empty (or an event must wait for a retry)."""
        total = 0
        while True:
            done = await self.run_once()
            total += done
            if done < self.batch_size:
                return total

    # --- Events ------------------------------------------------------------------------------

    async def handle(self, event: MarketEvent, *, now: dt.datetime) -> None:
        if event.created_at and event.created_at < now - self.max_age:
            logger.info("skipping notification for old event %s", event.pk)
            return
        if event.type == MarketEvent.Type.TRADE:
            self._dirty.add(event.market_id)
            return
        if event.type not in (
            MarketEvent.Type.CREATED,
            MarketEvent.Type.CLOSED,
            MarketEvent.Type.RESOLVED,
            MarketEvent.Type.CANCELLED,
        ):
            return
        settled = event.type in (MarketEvent.Type.RESOLVED, MarketEvent.Type.CANCELLED)
        ctx = await self.bot.db(
            selectors.event_context,
            event_id=event.pk,
            market_id=event.market_id,
            guild_id=event.guild_id,
            with_results=settled,
        )
        if event.type == MarketEvent.Type.CREATED:
            await self._announce(event, ctx)
        elif event.type == MarketEvent.Type.CLOSED:
            await self._closed(event, ctx)
        else:
            await self._settled(event, ctx)

    async def _announce(self, event: MarketEvent, ctx: selectors.EventContext) -> None:
        if not ctx.announce_channel_id:
            return
        m = ctx.market
        channel = self.bot.get_partial_messageable(ctx.announce_channel_id)

        async def send() -> None:
            message = await channel.send(
                content=render.announce_content(m),
                embed=render.market_embed(m),
                view=market_view(m),
            )
            if m.message_id is None:
                await self.bot.db(
                    actions.market_message_set_for_interaction,
                    market_id=m.id,
                    channel_id=ctx.announce_channel_id,
                    message_id=message.id,
                )

        await self._deliver(event, ctx, f"channel:{ctx.announce_channel_id}", send)

    async def _closed(self, event: MarketEvent, ctx: selectors.EventContext) -> None:
        m = ctx.market
        await self._refresh_message(m)
        if m.creator_id in ctx.opted_out:
            return
        text = render.closed_dm(m, refund_hours=ctx.auto_refund_hours)
        await self._deliver(event, ctx, f"dm:{m.creator_id}", lambda: self._dm(m.creator_id, text))

    async def _settled(self, event: MarketEvent, ctx: selectors.EventContext) -> None:
        m = ctx.market
        cancelled = event.type == MarketEvent.Type.CANCELLED
        await self._refresh_message(m)
        where = ctx.announce_channel_id or m.channel_id
        if where:
            embed = render.settlement_embed(m, event.payload, cancelled=cancelled)
            channel = self.bot.get_partial_messageable(where)
            await self._deliver(event, ctx, f"channel:{where}", lambda: channel.send(embed=embed))
        refunded_all = bool(event.payload.get("refunded_all"))
        first = True
        for result in ctx.results:
            target = f"dm:{result.user_id}"
            if result.user_id in ctx.opted_out or target in ctx.delivered or not result.spent:
                continue
            if not first:
                await asyncio.sleep(self.dm_interval)
            first = False
            text = render.result_dm(m, result, cancelled=cancelled, refunded_all=refunded_all)
            await self._deliver(
                event, ctx, target, lambda uid=result.user_id, t=text: self._dm(uid, t)
            )

    # --- Delivery ----------------------------------------------------------------------------

    async def _deliver(
        self,
        event: MarketEvent,
        ctx: selectors.EventContext,
        target: str,
        send: Callable[[], Awaitable[Any]],
    ):
        """Send once per (event, target): skipped if an earlier run recorded it. A 403/404 is
        permanent (closed DMs, deleted channel): recorded as skipped and never retried; 5xx and
        network errors raise `RetryLater`."""
        if target in ctx.delivered:
            return
        status, detail = SENT, ""
        try:
            await send()
        except (discord.Forbidden, discord.NotFound) as exc:
            status, detail = SKIPPED, f"{exc.status} {exc.code}"
            logger.info("notification %s for event %s skipped: %s", target, event.pk, detail)
        except discord.DiscordServerError as exc:
            raise RetryLater(str(exc)) from exc
        except discord.HTTPException as exc:
            if exc.status == 429:
                raise RetryLater(str(exc)) from exc
            status, detail = FAILED, f"{exc.status} {exc.code} {exc.text}"[:200]
            logger.error("notification %s for event %s refused: %s", target, event.pk, detail)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RetryLater(str(exc)) from exc
        await self.bot.db(
            actions.notification_delivery_record,
            event_id=event.pk,
            target=target,
            status=status,
            detail=detail,
        )
        ctx.delivered[target] = status

    async def _dm(self, user_id: int, content: str) -> None:
        channel_id = self._dm_channels.get(user_id)
        if channel_id is None:
            data = await self.bot.http.start_private_message(user_id)
            channel_id = int(data["id"])
            self._dm_channels[user_id] = channel_id
        channel = self.bot.get_partial_messageable(channel_id, type=discord.ChannelType.private)
        await channel.send(content=content)

    async def _refresh_message(self, m: MarketSummary) -> None:
        """Edit the market message to its current state; a deleted message is not an error."""
        if not (m.channel_id and m.message_id):
            return
        message = self.bot.get_partial_messageable(m.channel_id).get_partial_message(m.message_id)
        try:
            await message.edit(embed=render.market_embed(m), view=market_view(m))
            self._refreshed[m.id] = time.monotonic()
        except discord.HTTPException as exc:
            logger.info("could not refresh the message of market %s: %s", m.id, exc)

    async def _refresh_dirty(self) -> None:
        now = time.monotonic()
        for market_id in sorted(self._dirty):
            if now - self._refreshed.get(market_id, 0.0) < REFRESH_SECONDS:
                continue
            self._dirty.discard(market_id)
            try:
                m = await self.bot.db(market_get, market_id=market_id)
            except Exception:
                logger.exception("could not read market %s for a refresh", market_id)
                continue
            await self._refresh_message(m)
