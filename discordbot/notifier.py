"""Discord notifications from the `MarketEvent` outbox (DOMAIN §6, STYLE §6), as a delivery
queue.

Planning: the notifier reads events by increasing id after its persisted cursor
(`NotificationCursor`) and turns each into the messages it owes — `NotificationDelivery` rows,
one per (event, target), written in the same transaction that moves the cursor past the event.
Sending: two workers, one per lane, send the rows that are due and record each outcome:

- the `channel` lane posts announcements and settlement summaries;
- the `dm` lane sends DMs one at a time, `dm_interval` apart, so a settlement of thousands of
  traders never holds up the next announcement.

What Discord answers decides what happens to a row: a 429 puts the lane to sleep for its
`retry_after` (the row is not charged an attempt); 403 40003 ("opening DMs too fast") puts the
DM lane to sleep for a growing back-off; a 5xx or a network error retries the row later with
exponential back-off, up to `MAX_ATTEMPTS`; only 50007 (this member's DMs are closed) and
10003/10008 (channel or message gone) are skipped. Every message is sent with a nonce that
Discord enforces (`enforce_nonce`), so the one message in flight when the process dies is not
posted twice when the restarted notifier sends it again; a restart resumes from the rows.

- `market_created`: the market message (embed + buttons) in the guild's announcement channel.
- `market_closed`: a DM to the creator saying who resolves the market and how
  (`points.rules.resolution_how`) and when it is refunded if nobody does; the market message is
  refreshed.
- `resolution_proposed` (docs/domain.md §6.1): a post in the announcement channel (or where the
  market was posted) with a **Dispute** button, and a DM to each trader saying how long they may
  dispute it and, with `known_at` (§6.2), when the outcome was known and what settling it would
  reverse: how many trades, and what of theirs.
- `resolution_disputed`: a post in the moderators' channel (`moderator_channel_id`, else the
  announcement channel) with the reason and the commands that decide it; the first dispute
  pings the resolver roles, and only them (`allowed_mentions`). The disputer's acknowledgement
  is the reply to their form. The scheduler's reminder halfway through the dispute hold is the
  same event (`reminder` in its payload): the ping again, with the deadline.
- `proposal_undone`: a post in the announcement channel and a DM to each member who disputed.
  The post says who resolves the market and how only if no public post has yet; else it links
  to the one that did (`discordbot.how_post`, issue 23 item 9).
- `market_resolved` / `market_cancelled`: a summary in the announcement channel (or where the
  market was posted) — winner, total paid, biggest winners — and a DM to each trader with their
  own result; after a dispute, each disputer's DM starts with what moderators decided
  (confirmed, or changed from one outcome to another, or nothing in time: cancelled). A queued
  `market_closed` DM is skipped if the market was proposed or decided before it went out.

Channel posts about resolution events are `settlement` rows, rendered when sent from the event
and the guild's settings (one row per event and target, as for summaries).
- `trade`: the market's messages are refreshed, at most every `REFRESH_SECONDS` (so are they
  on every other event above but `market_created`). A limit order's fill (a `trade` with an
  `order_id`, DOMAIN §4.7) also owes its member a DM — one per member and market for the fills
  of a minute (`fills_rows`): the first queues it, due a minute later, and the ones after it
  rewrite its text until then.
- `orders_changed` (a limit order placed, cancelled or expired): the market's messages are
  refreshed like after a trade (they show the orders waiting).

Every copy of a market's message (`MarketMessage`: the `/market create` reply, the announcement,
each `/market show`) is refreshed on every change; a copy Discord says is gone is retired. The
announcement is not posted where the market has a copy. Where the market has a discussion thread
(`market_threads`, issue 26), the channel posts above go there instead.

Members who turned notifications off (`/notifications off`) get no DMs. Events older than
`max_age` are skipped (old news), which is also where a notifier running for the first time
starts.

Run one notifier per deployment: every bot process asks for the notifier's lease
(`discordbot.leases`), and the holder delivers; a lane stops sending (`allowed`) as soon as its
process stops trusting the lease. A process taking over resumes from the cursor and the queued
rows (a row in flight when the holder died is sent again with the same nonce: posted once).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import aiohttp
import discord
from django.utils import timezone

from markets.models import MarketEvent
from markets.selectors import MarketSummary, market_events_after, market_get
from ops import metrics

from . import actions, limits, render, selectors
from .market_threads import market_thread_of, market_thread_start
from .market_ui import market_view
from .models import NotificationDelivery
from .notify_posts import post_event
from .notify_vocab import (
    DM,
    FAILED,
    LANES,
    PLANNED,
    SENT,
    SKIP_CODES,
    SKIPPED,
    AlreadyPosted,
    Bounded,
    Postpone,
    Stale,
    channel_row,
    dispute_round,
    dm_row,
    fills_row,
    retry_after,
)

if TYPE_CHECKING:
    from .bot import PredictionBot

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 5.0
"""At most one edit per market message in this many seconds: changes in between are coalesced
into the next edit."""
MAX_ATTEMPTS = 6
"""Failed sends (5xx, network, refusals other than the skips) before a row is given up."""
RETRY_BASE_SECONDS = 2.0
RETRY_MAX_SECONDS = 300.0
DM_TOO_FAST_SECONDS = 1.0
"""First pause of the DM lane after 40003; it doubles while Discord keeps refusing."""
DM_TOO_FAST_MAX_SECONDS = 120.0
FILL_DM_DELAY = dt.timedelta(minutes=1)
"""A member's order fills on a market wait this long after the first one, so the ones that
follow join its DM (issue 25: one DM per member and market, not one per fill)."""


LISTED = frozenset(
    {
        MarketEvent.Type.CREATED,
        MarketEvent.Type.CLOSED,
        MarketEvent.Type.PROPOSED,
        MarketEvent.Type.UNDONE,
        MarketEvent.Type.RESOLVED,
        MarketEvent.Type.CANCELLED,
    }
)
"""Events that change which status lists a market (`Snapshots.listing`)."""


def dm_join(rows: list[dict], user_id: int, content: str, m: MarketSummary) -> None:
    """Add a DM to `rows`, or — where the event already owes this member one (one message per
    event and target) — append it to that DM, which then ends with this one's footer."""
    target = f"dm:{user_id}"
    for row in rows:
        if row["target"] == target and row["kind"] == NotificationDelivery.Kind.DM:
            first = row["content"].removesuffix(render.MSG_DM_FOOTER).rstrip()
            row["content"] = limits.fit(f"{first}\n\n{content}", limits.CONTENT)
            return
    rows.append(dm_row(user_id, content, m))


class Notifier:
    def __init__(
        self,
        bot: PredictionBot,
        *,
        name: str = "default",
        batch_size: int = 100,
        dm_interval: float = 0.5,
        max_age: dt.timedelta = dt.timedelta(hours=24),
        fill_dm_delay: dt.timedelta = FILL_DM_DELAY,
    ) -> None:
        self.bot = bot
        self.fill_dm_delay = fill_dm_delay
        self.name = name
        self.batch_size = batch_size
        self.dm_interval = dm_interval
        self.max_age = max_age
        self._dm_channels: Bounded = Bounded()
        self._dirty: set[int] = set()
        self._refreshed: Bounded = Bounded()
        self._plan_lock = asyncio.Lock()
        self._lane_locks: dict[str, asyncio.Lock] = {lane: asyncio.Lock() for lane in LANES}
        self._wake: dict[str, asyncio.Event] = {lane: asyncio.Event() for lane in LANES}
        self._paused_until: dict[str, float] = {lane: 0.0 for lane in LANES}
        self._too_fast = 0
        self._workers: list[asyncio.Task] = []
        self.allowed: Callable[[], bool] = lambda: True
        """Whether this process may send right now (its lease; checked before every row)."""

    # --- Planning ----------------------------------------------------------------------------

    async def plan_once(self) -> int:
        """Queue the messages of up to `batch_size` events after the cursor (the cursor moves
        past each event with its rows); returns how many events were planned."""
        async with self._plan_lock:
            now = timezone.now()
            cursor = await self.bot.db(
                actions.notification_cursor_start, name=self.name, after=now - self.max_age
            )
            events = await self.bot.db(market_events_after, after_id=cursor, limit=self.batch_size)
            for event in events:
                rows = await self.plan(event, now=now)
                await self.bot.db(
                    actions.notifications_enqueue, name=self.name, event_id=event.pk, rows=rows
                )
                for lane in {row["lane"] for row in rows}:
                    self._wake[lane].set()
            cursor = events[-1].pk if events else cursor
            backlog = await self.bot.db(selectors.events_backlog, after_id=cursor)
            metrics.notification_backlog_set(backlog)
            return len(events)

    async def plan(self, event: MarketEvent, *, now: dt.datetime) -> list[dict]:
        """The messages `event` owes (rows for `notifications_enqueue`); refreshes the market
        message where the event changed it."""
        if event.created_at and event.created_at < now - self.max_age:
            logger.info("skipping notification for old event %s", event.pk)
            return []
        # The bot's snapshot of the market (issue 21) is read again after any of its events
        # (another process's trades, a close, a settlement).
        self.bot.snapshots.drop(event.market_id)
        if event.type in LISTED:  # a market appeared or changed status: autocomplete's list
            self.bot.snapshots.drop_listings(event.guild_id)
        if event.type == MarketEvent.Type.ORDERS:  # the resting volume on the message
            self._dirty.add(event.market_id)
            if event.payload.get("change") == "expired":
                return await self.orders_ended_rows(event, "expired", [])
            return []
        if event.type == MarketEvent.Type.TRADE:
            self._dirty.add(event.market_id)
            if event.payload.get("order_id"):
                return await self.fills_rows(event)
            return []
        if event.type not in PLANNED:
            return []
        settled = event.type in (MarketEvent.Type.RESOLVED, MarketEvent.Type.CANCELLED)
        ctx = await self.bot.db(
            selectors.event_context,
            event_id=event.pk,
            market_id=event.market_id,
            guild_id=event.guild_id,
            with_results=settled or event.type == MarketEvent.Type.PROPOSED,
            dispute_round=dispute_round(event),
        )
        m = ctx.market
        if event.type == MarketEvent.Type.CREATED:
            if not ctx.announce_channel_id:
                return []
            return [channel_row(ctx.announce_channel_id, NotificationDelivery.Kind.ANNOUNCE, m)]
        if time.monotonic() - self._refreshed.get(m.id, -REFRESH_SECONDS) < REFRESH_SECONDS:
            self._dirty.add(m.id)
        else:
            await self._refresh_message(m)
        if event.type == MarketEvent.Type.CLOSED:
            rows = []
            if m.creator_id not in ctx.opted_out:
                how = render.how_text(ctx.settings, creator_id=m.creator_id)
                text = render.closed_dm(m, refund_hours=ctx.auto_refund_hours, how=how)
                rows.append(dm_row(m.creator_id, text, m))
            return await self.orders_ended_rows(event, "closed", rows, m)
        rows = []
        # The market's thread, where it has one (issue 26): the channel stays quiet.
        where = await market_thread_of(self.bot, m) or ctx.announce_channel_id or m.channel_id
        if event.type == MarketEvent.Type.DISPUTED:
            where = ctx.moderator_channel_id or where
        if where:
            rows.append(channel_row(where, NotificationDelivery.Kind.SETTLEMENT, m))
        if event.type == MarketEvent.Type.DISPUTED:
            return rows  # the disputer's acknowledgement is the reply to their form
        if event.type == MarketEvent.Type.PROPOSED:
            known_at = event.payload.get("known_at")
            late = (
                await self.bot.db(
                    selectors.late_trades,
                    market_id=m.id,
                    known_at=dt.datetime.fromisoformat(known_at),
                )
                if known_at
                else {}
            )
            for result in ctx.results:
                if result.user_id not in ctx.opted_out and result.spent:
                    note = render.known_at_dm_note(event.payload, late.get(result.user_id))
                    text = render.proposed_dm(m, event.payload, late=note)
                    rows.append(dm_row(result.user_id, text, m))
            return rows
        if event.type == MarketEvent.Type.UNDONE:
            text = render.undone_dm(m, event.payload)
            for user_id in ctx.disputers:
                if user_id not in ctx.opted_out:
                    rows.append(dm_row(user_id, text, m))
            return rows
        cancelled = event.type == MarketEvent.Type.CANCELLED
        refunded_all = bool(event.payload.get("refunded_all"))
        decision = (
            render.decision_text(m, event.payload)
            if not cancelled and event.payload.get("disputed")
            else render.MSG_DISPUTE_EXPIRED_DM.format(market_id=m.id)
            if cancelled and event.payload.get("dispute_expired")
            else ""
        )
        disputers = set(ctx.disputers) if decision else set()
        for result in ctx.results:
            reversal = render.reversal_note(event.payload, result.user_id)
            if result.user_id in ctx.opted_out or not (result.spent or reversal):
                continue
            text = render.result_dm(
                m,
                result,
                cancelled=cancelled,
                refunded_all=refunded_all,
                decision=decision if result.user_id in disputers else "",
                reversal=reversal,
            )
            rows.append(dm_row(result.user_id, text, m))
            disputers.discard(result.user_id)
        for user_id in sorted(disputers - ctx.opted_out):  # disputed, but no result to tell
            text = limits.fit(f"{decision} {render.MSG_DM_FOOTER}", limits.CONTENT)
            rows.append(dm_row(user_id, text, m))
        if cancelled:
            return await self.orders_ended_rows(event, "cancelled", rows, m)
        return rows

    async def orders_ended_rows(
        self, event: MarketEvent, why: str, rows: list[dict], m: MarketSummary | None = None
    ) -> list[dict]:
        """`rows` and the DMs owed for limit orders that ended on their own (DOMAIN §4.7): the
        orders an `orders_changed` event says expired (`why` "expired"), or those the market's
        close or cancellation released ("closed", "cancelled"; the event counts them). One DM
        per member, joined to the DM this event already owes them (one message per event and
        member). Nothing for members who turned DMs off."""
        if why == "expired":
            order_ids = [int(pk) for pk in event.payload.get("order_ids") or []]
            if not order_ids:
                return rows
        elif not event.payload.get("orders_released"):
            return rows
        else:
            order_ids = None
        ended = await self.bot.db(
            selectors.orders_ended, market_id=event.market_id, order_ids=order_ids
        )
        by_user: dict[int, list] = {}
        for order in ended:
            by_user.setdefault(order.user_id, []).append(order)
        if not by_user:
            return rows
        opted_out = await self.bot.db(
            selectors.dm_opt_outs, guild_id=event.guild_id, user_ids=sorted(by_user)
        )
        if m is None:
            m = await self.bot.db(market_get, market_id=event.market_id)
        for user_id, orders in sorted(by_user.items()):
            if user_id not in opted_out:
                dm_join(rows, user_id, render.orders_ended_dm(m, orders, why), m)
        return rows

    async def fills_rows(self, event: MarketEvent) -> list[dict]:
        """The DM a limit order's fill owes its member (DOMAIN §4.7), coalesced: the member's
        fills on one market join one queued DM until it is due, `fill_dm_delay` after its first
        fill — so a trade that fills five of their orders, or an order that fills on every trade
        for a minute, makes one DM. Nothing for members who turned DMs off."""
        user_id = int(event.payload["user_id"])
        if not await self.bot.db(selectors.dm_enabled, guild_id=event.guild_id, user_id=user_id):
            return []
        m = await self.bot.db(market_get, market_id=event.market_id)
        queued = await self.bot.db(
            actions.fills_dm_open, user_id=user_id, market_id=event.market_id
        )
        since = event.pk if queued is None else queued[1]
        fills = await self.bot.db(
            selectors.order_fills,
            market_id=event.market_id,
            user_id=user_id,
            from_event_id=since,
            to_event_id=event.pk,
        )
        alone = render.fills_dm(m, [event.payload])
        return [
            fills_row(
                user_id,
                render.fills_dm(m, fills) if queued else alone,
                m,
                not_before=timezone.now() + self.fill_dm_delay,
                merge_into=None if queued is None else queued[0],
                alone=alone,
            )
        ]

    # --- Running -----------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Plan a batch of events, then send what is due in both lanes; returns how many events
        were planned."""
        planned = await self.plan_once()
        await asyncio.gather(*(self.deliver_due(lane) for lane in LANES))
        await self.refresh_dirty()
        return planned

    async def drain(self) -> int:
        """Plan every event, then send until nothing is due (waiting out a lane's pause);
        returns how many events were planned. Rows postponed past now stay queued."""
        total = 0
        while True:
            planned = await self.plan_once()
            total += planned
            if planned < self.batch_size:
                break
        while True:
            sent = sum(await asyncio.gather(*(self.deliver_due(lane) for lane in LANES)))
            paused = [p - time.monotonic() for p in self._paused_until.values()]
            waiting = [p for p in paused if p > 0]
            if sent == 0 and not waiting:
                break
            if sent == 0:
                await asyncio.sleep(min(waiting))
        await self.refresh_dirty()
        return total

    def start(self) -> None:
        """Start one worker per lane (the bot's background tasks)."""
        if not self._workers:
            self._workers = [self.bot.spawn(self._work(lane)) for lane in LANES]

    async def stop(self) -> None:
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []

    async def _work(self, lane: str) -> None:
        """Send the lane's due rows; then sleep until the next row is due, the lane's pause
        ends, or new rows are planned (at most 5 s, in case another process planned them)."""
        while True:
            try:
                sent = await self.deliver_due(lane)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("notification lane %s failed; retrying", lane)
                sent = 0
            if sent:
                continue
            wait = 5.0
            pause = self._paused_until[lane] - time.monotonic()
            if pause > 0:
                wait = min(wait, pause)
            else:
                try:
                    due = await self.bot.db(actions.notification_next_due, lane=lane)
                except Exception:
                    due = None
                if due is not None:
                    wait = min(wait, max(0.05, (due - timezone.now()).total_seconds()))
            self._wake[lane].clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake[lane].wait(), timeout=wait)

    # --- Sending -----------------------------------------------------------------------------

    async def deliver_due(self, lane: str, *, now: dt.datetime | None = None) -> int:
        """Send the rows of `lane` that are due (one batch); returns how many were finished
        (sent, skipped or given up). Stops early when Discord pauses the lane."""
        async with self._lane_locks[lane]:
            if self._paused_until[lane] > time.monotonic():
                return 0
            rows = await self.bot.db(
                actions.notifications_due,
                lane=lane,
                now=now or timezone.now(),
                limit=self.batch_size,
            )
            finished = 0
            for i, row in enumerate(rows):
                if self._paused_until[lane] > time.monotonic() or not self.allowed():
                    break
                if lane == DM and i and self.dm_interval:
                    await asyncio.sleep(self.dm_interval)
                finished += await self._attempt(row)
            return finished

    async def _attempt(self, row: NotificationDelivery) -> int:
        """Send one row and record what happened; 1 if the row is finished, 0 if postponed."""
        status: str = SENT
        detail = ""
        try:
            try:
                await self._send(row)
            except AlreadyPosted:
                status, detail = SKIPPED, "already posted in this channel"
            except Stale:
                status, detail = SKIPPED, "stale: the market was proposed or decided meanwhile"
            except discord.HTTPException as exc:
                status, detail = self._classify(exc)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise Postpone("network", delay=0.0, pause_lane=False, count_attempt=True) from exc
        except Postpone as later:
            return await self._postpone(row, later)
        await self.bot.db(
            actions.notification_finish, delivery_id=row.pk, status=status, detail=detail
        )
        metrics.notification_finished(row.lane, status)
        if status == SENT and row.lane == DM:
            self._too_fast = 0
        if status != SENT:
            log = logger.info if status == SKIPPED else logger.error
            log("notification %s for event %s %s: %s", row.target, row.event_id, status, detail)
        return 1

    def _classify(self, exc: discord.HTTPException) -> tuple[str, str]:
        """A refusal's fate: skip (gone, DMs closed), postpone (raises `Postpone`), or fail."""
        detail = f"{exc.status} {exc.code} {exc.text}"[:200]
        if exc.code in SKIP_CODES:
            return SKIPPED, detail
        if exc.status == 429:
            retry = retry_after(exc)
            raise Postpone("429", delay=retry, pause_lane=True, count_attempt=False)
        if exc.code == 40003:
            self._too_fast += 1
            pause = min(DM_TOO_FAST_MAX_SECONDS, DM_TOO_FAST_SECONDS * 2 ** (self._too_fast - 1))
            raise Postpone("40003", delay=pause, pause_lane=True, count_attempt=False)
        if exc.status >= 500 or exc.status in (403, 404):
            raise Postpone(str(exc.status), delay=0.0, pause_lane=False, count_attempt=True)
        return FAILED, detail  # a 400: the payload is wrong, sending it again won't help

    async def _postpone(self, row: NotificationDelivery, later: Postpone) -> int:
        delay = later.delay
        if later.count_attempt:
            delay = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2**row.attempts)
            if row.attempts + 1 >= MAX_ATTEMPTS:
                await self.bot.db(
                    actions.notification_finish,
                    delivery_id=row.pk,
                    status=FAILED,
                    detail=f"gave up after {MAX_ATTEMPTS} attempts ({later.reason})",
                )
                metrics.notification_finished(row.lane, FAILED)
                logger.error("gave up on notification %s for event %s", row.target, row.event_id)
                return 1
        if later.pause_lane:
            self._paused_until[row.lane] = max(
                self._paused_until[row.lane], time.monotonic() + delay
            )
        await self.bot.db(
            actions.notification_postpone,
            delivery_id=row.pk,
            until=timezone.now() + dt.timedelta(seconds=delay),
            detail=f"retry: {later.reason}",
            count_attempt=later.count_attempt,
        )
        metrics.notification_retried(row.lane, later.reason)
        logger.warning(
            "notification %s for event %s postponed %.1f s (%s)",
            row.target,
            row.event_id,
            delay,
            later.reason,
        )
        return 0

    async def _send(self, row: NotificationDelivery) -> None:
        """Post one row. The nonce (enforced by Discord) makes a repeat of the same row return
        the message already posted instead of a second one."""
        nonce = f"pm{row.pk}"
        kind, target = row.kind, row.target
        if kind == NotificationDelivery.Kind.FILLS:
            await self._dm(int(target.split(":", 1)[1]), row.content, nonce=nonce)
            return
        if kind == NotificationDelivery.Kind.DM:
            if await self.bot.db(
                actions.notification_stale, event_id=row.event_id, market_id=row.market_id
            ):
                raise Stale()
            await self._dm(int(target.split(":", 1)[1]), row.content, nonce=nonce)
            return
        channel_id = int(target.split(":", 1)[1])
        channel = self.bot.get_partial_messageable(channel_id)
        m = await self.bot.db(market_get, market_id=row.market_id)
        if kind == NotificationDelivery.Kind.ANNOUNCE:
            here = await self.bot.db(
                actions.market_copy_in_channel, market_id=m.id, channel_id=channel_id
            )
            if here == "posted":  # `/market create` ran in this channel: one copy is enough
                raise AlreadyPosted()
            if here == "claimed":  # the reply is on its way; look again shortly
                raise Postpone("claimed", delay=2.0, pause_lane=False, count_attempt=False)
            message = await channel.send(
                content=render.announce_content(m),
                embed=render.market_embed(m),
                view=market_view(m),
                nonce=nonce,
            )
            await self.bot.db(
                actions.market_copy_record,
                market_id=m.id,
                channel_id=channel_id,
                message_id=message.id,
            )
            where = {"channel_id": channel_id, "message_id": message.id}
            await market_thread_start(self.bot, m, content=message.content, **where)
            return
        post = await self.bot.db(
            selectors.post_context,
            event_id=row.event_id,
            guild_id=m.guild_id,
            market_id=m.id,
        )
        await post_event(self.bot, channel, m, post, nonce=nonce)

    async def _dm(self, user_id: int, content: str, *, nonce: str) -> None:
        channel_id = self._dm_channels.get(user_id)
        if channel_id is None:
            data = await self.bot.http.start_private_message(user_id)
            channel_id = int(data["id"])
            self._dm_channels[user_id] = channel_id
        channel = self.bot.get_partial_messageable(channel_id, type=discord.ChannelType.private)
        await channel.send(content=content, nonce=nonce)

    # --- Market messages ---------------------------------------------------------------------

    async def _refresh_message(self, m: MarketSummary) -> None:
        """Edit every active copy of the market message to its current state (embed and
        buttons only: each copy keeps its own text). A copy Discord says is gone or out of
        reach (403, 404) is retired, never edited again; other failures wait for the next
        change."""
        copies = await self.bot.db(actions.market_copies, market_id=m.id)
        # Who holds it (issue 26): a pool's top predictors, a market maker's top holders.
        top = await self.bot.db(selectors.card_people, guild_id=m.guild_id, summary=m)
        embed, view = render.market_embed(m, top=top), market_view(m)
        for copy_id, channel_id, message_id in copies:
            channel = self.bot.get_partial_messageable(channel_id)
            try:
                await channel.get_partial_message(message_id).edit(embed=embed, view=view)
            except (discord.Forbidden, discord.NotFound) as exc:
                detail = f"{exc.status} {exc.code} {exc.text}"
                logger.info("market %s: copy %s retired: %s", m.id, message_id, detail)
                await self.bot.db(actions.market_copy_retire, copy_id=copy_id, detail=detail)
            except discord.HTTPException as exc:
                logger.info("could not refresh copy %s of market %s: %s", message_id, m.id, exc)
        self._refreshed[m.id] = time.monotonic()

    async def refresh_dirty(self) -> None:
        now = time.monotonic()
        for market_id in sorted(self._dirty):
            if now - self._refreshed.get(market_id, -REFRESH_SECONDS) < REFRESH_SECONDS:
                continue
            self._dirty.discard(market_id)
            try:
                m = await self.bot.db(market_get, market_id=market_id)
            except Exception:
                logger.exception("could not read market %s for a refresh", market_id)
                continue
            await self._refresh_message(m)
