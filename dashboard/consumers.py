"""The dashboard's WebSocket: live market events for staff (issue 6, STYLE §11).

Protocol (JSON both ways):
- The page sends `{"type": "replay", "after": <last event id it saw>}` after every (re)connect;
  the consumer answers with every `MarketEvent` whose id is greater, in id order, read from the
  outbox table, then `{"type": "replayed", "last_id": …}`. If more than `REPLAY_MAX` events were
  missed it sends `{"type": "stale"}` instead and the page reloads (a fresh render is cheaper
  than thousands of messages).
- Live events arrive as `{"type": "market.event", "id": …, "market_id": …, "event": …,
  "payload": {…}, "summary": …}` (`dashboard.events.event_message`), the same shape as replayed
  ones: markets publish the facts and this consumer adds the summary line on the way out.
- Anything else from the client gets `{"type": "error", "message": …}`; the socket stays open.

Visibility: every active staff user with `dashboard.view_dashboard` sees every guild's markets
(the dashboard is a back-office tool, like the admin); finer per-guild visibility would filter
here and in the views.

A channel-layer outage (Redis down or hanging) never hangs a socket longer than the layer
timeout and never answers HTTP 500: the socket is accepted, told `{"type": "paused"}` and closed
with 4503; the page shows "Live updates paused" and reconnects with backoff.

A database read that fails on a broken connection (PostgreSQL restarted under a persistent or
pooled connection) is tried once more on a fresh one (`_db`); if that fails too (the database is
still down) the socket is told `{"type": "paused"}` and closed with 4503 in the same way, and the
page reconnects and replays what it missed (docs/performance.md, "The soak").
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, close_old_connections

from markets import selectors
from markets.realtime import DASHBOARD_GROUP, PUBLISH_TIMEOUT_SECONDS

from .events import event_message, names_for, with_summary

logger = logging.getLogger(__name__)

REPLAY_BATCH = 500
REPLAY_MAX = 5000
# Close code for refused sockets (4000–4999 are application codes; 4403 reads as "forbidden").
CLOSE_FORBIDDEN = 4403
# The channel layer (Redis) is unavailable: the page shows "live updates paused" and reconnects.
CLOSE_PAUSED = 4503


P = ParamSpec("P")
T = TypeVar("T")


def _db(func: Callable[P, T]) -> Callable[P, T]:
    """`func` (a read) once more on a fresh connection when it fails on a broken one: after a
    PostgreSQL restart a connection kept open (CONN_MAX_AGE, a pool without health checks) is
    dead, and only a failed query tells. The broken one is closed here, in the thread that owns
    it, so the second try connects again whatever cleaned up around the call."""

    @functools.wraps(func)
    def once_more(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return func(*args, **kwargs)
        except (OperationalError, InterfaceError) as exc:
            logger.info("dashboard socket: %s failed (%r); once more", func.__name__, exc)
            close_old_connections()  # an errored connection that no longer answers is closed
            return func(*args, **kwargs)

    return once_more


@database_sync_to_async
@_db
def _user_may_watch(user: Any) -> bool:
    return bool(
        user is not None
        and getattr(user, "is_authenticated", False)
        and user.is_active
        and user.is_staff
        and user.has_perm("dashboard.view_dashboard")
    )


def layer_timeout() -> float:
    """How long a socket waits for the channel layer (`DASHBOARD_LAYER_TIMEOUT`, default the
    publish timeout): during a Redis outage no connection hangs longer."""
    configured = getattr(settings, "DASHBOARD_LAYER_TIMEOUT", None)
    if configured:
        return float(configured)
    return float(getattr(settings, "DASHBOARD_PUBLISH_TIMEOUT", PUBLISH_TIMEOUT_SECONDS))


@database_sync_to_async
@_db
def _events_after(after_id: int, limit: int) -> list[dict[str, Any]]:
    events = selectors.market_events_after(after_id=after_id, limit=limit)
    names = names_for((e.guild_id, e.payload) for e in events)
    return [event_message(event, names) for event in events]


_with_summary = database_sync_to_async(_db(with_summary))

# Summaries of the latest live events, one per event in this process, shared by every socket: a
# socket that receives an event another socket is already summarising awaits that lookup
# instead of sending its own. Each socket reading the directory for the same event queued one
# query per socket on Django's one thread-sensitive executor thread: 200 sockets × 100 trades
# made 20,000 queries and a p99 of 33 s from commit to delivery (docs/performance.md,
# "Current figures", `ws_latency`).
SUMMARIES_KEPT = 256
_summaries: OrderedDict[int, asyncio.Future[dict[str, Any]]] = OrderedDict()


async def summarised(message: dict[str, Any]) -> dict[str, Any]:
    """`message` with its summary (`with_summary`), looked up once per event in this process."""
    event_id: int = message["id"]
    loop = asyncio.get_running_loop()
    future = _summaries.get(event_id)
    if future is None or future.get_loop() is not loop or future.cancelled():
        future = loop.create_task(_with_summary(message))
        _summaries[event_id] = future
        while len(_summaries) > SUMMARIES_KEPT:
            _summaries.popitem(last=False)
    try:
        # Shielded: a socket closing while it waits does not cancel the others' lookup.
        return await asyncio.shield(future)
    except Exception:
        if _summaries.get(event_id) is future:
            del _summaries[event_id]  # a failed lookup (database down) is tried again
        raise


class DashboardConsumer(AsyncJsonWebsocketConsumer):
    """Staff-only stream of market events. The staff check runs before the socket joins any
    group, so a refused client never receives a single event."""

    async def connect(self) -> None:
        self.joined = False
        try:
            may_watch = await _user_may_watch(self.scope.get("user"))
        except DatabaseError as exc:  # the database is down: the page retries
            await self.accept()
            await self.pause("database", exc)
            return
        if not may_watch:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        # Join before replaying: an event committed while the replay query runs is then both
        # replayed and delivered live, never lost; `sent_ids` drops the second copy.
        self.sent_ids: set[int] = set()
        try:
            await asyncio.wait_for(
                self.channel_layer.group_add(DASHBOARD_GROUP, self.channel_name),
                timeout=layer_timeout(),
            )
        except Exception as exc:  # Redis down or hanging: say so, the page retries
            await self.accept()
            await self.pause("channel layer", exc)
            return
        self.joined = True
        await self.accept()

    async def pause(self, what: str, exc: BaseException) -> None:
        """Tell the page live updates are paused and close with 4503: it reconnects with
        backoff and replays from the last event it saw, so nothing is missed."""
        if getattr(self, "paused", False):  # another event met the same outage: closed already
            return
        self.paused = True
        logger.warning("dashboard socket: %s unavailable: %r", what, exc)
        await self.send_json({"type": "paused", "message": "Live updates paused"})
        await self.close(code=CLOSE_PAUSED)

    async def disconnect(self, code: int) -> None:
        if getattr(self, "joined", False):
            try:
                await asyncio.wait_for(
                    self.channel_layer.group_discard(DASHBOARD_GROUP, self.channel_name),
                    timeout=layer_timeout(),
                )
            except Exception as exc:  # the group entry expires by itself
                logger.info("dashboard socket: could not leave the group: %r", exc)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict) or content.get("type") != "replay":
            await self.send_json({"type": "error", "message": 'expected {"type": "replay"}'})
            return
        after = content.get("after", 0)
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            await self.send_json(
                {"type": "error", "message": '"after" must be a non-negative event id'}
            )
            return
        try:
            await self.replay(after)
        except DatabaseError as exc:  # tried twice (`_db`): the database is down
            await self.pause("database", exc)

    async def replay(self, after: int) -> None:
        """Send every event with id > `after` in id order, in batches."""
        sent = 0
        last_id = after
        while True:
            batch = await _events_after(last_id, REPLAY_BATCH)
            if sent + len(batch) > REPLAY_MAX:
                await self.send_json({"type": "stale", "after": after})
                return
            for message in batch:
                await self._deliver(message)
            sent += len(batch)
            if batch:
                last_id = batch[-1]["id"]
            if len(batch) < REPLAY_BATCH:
                break
        await self.send_json({"type": "replayed", "after": after, "last_id": last_id})

    async def market_event(self, message: dict[str, Any]) -> None:
        """Channel-layer handler for `market.event`: forward to the browser, with the feed's
        summary line (the members' names are read from the directory: 1 query per event in
        this process, whatever the number of sockets)."""
        try:
            message = await summarised(message)
        except DatabaseError as exc:  # tried twice (`_db`): the database is down
            await self.pause("database", exc)
            return
        await self._deliver(message)

    async def market_events(self, message: dict[str, Any]) -> None:
        """Channel-layer handler for `market.events`: a batch's events, each handled in order as
        a `market.event` (the browser receives one frame per event, as before)."""
        for event in message["events"]:
            await self.market_event(event)

    async def _deliver(self, message: dict[str, Any]) -> None:
        if getattr(self, "paused", False):  # closing: the page replays after it reconnects
            return
        event_id: int = message["id"]  # every market.event carries its outbox id
        if event_id in self.sent_ids:
            return
        self.sent_ids.add(event_id)
        if len(self.sent_ids) > 4 * REPLAY_BATCH:
            # Duplicates can only come from the overlap of one replay with live traffic; old
            # ids are not needed to catch them.
            self.sent_ids = set(sorted(self.sent_ids)[-REPLAY_BATCH:])
        await self.send_json(message)
