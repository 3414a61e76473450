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
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

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


@database_sync_to_async
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
    return float(
        getattr(settings, "DASHBOARD_LAYER_TIMEOUT", None)
        or getattr(settings, "DASHBOARD_PUBLISH_TIMEOUT", PUBLISH_TIMEOUT_SECONDS)
    )


@database_sync_to_async
def _events_after(after_id: int, limit: int) -> list[dict[str, Any]]:
    events = selectors.market_events_after(after_id=after_id, limit=limit)
    names = names_for((e.guild_id, e.payload) for e in events)
    return [event_message(event, names) for event in events]


_with_summary = database_sync_to_async(with_summary)


class DashboardConsumer(AsyncJsonWebsocketConsumer):
    """Staff-only stream of market events. The staff check runs before the socket joins any
    group, so a refused client never receives a single event."""

    async def connect(self) -> None:
        self.joined = False
        if not await _user_may_watch(self.scope.get("user")):
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
            logger.warning("dashboard socket: channel layer unavailable: %r", exc)
            await self.accept()
            await self.send_json({"type": "paused", "message": "Live updates paused"})
            await self.close(code=CLOSE_PAUSED)
            return
        self.joined = True
        await self.accept()

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
        await self.replay(after)

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
        summary line (the members' names are read from the directory: 1 query)."""
        await self._deliver(await _with_summary(message))

    async def _deliver(self, message: dict[str, Any]) -> None:
        event_id = message.get("id")
        if event_id in self.sent_ids:
            return
        self.sent_ids.add(event_id)
        if len(self.sent_ids) > 4 * REPLAY_BATCH:
            # Duplicates can only come from the overlap of one replay with live traffic; old
            # ids are not needed to catch them.
            self.sent_ids = set(sorted(self.sent_ids)[-REPLAY_BATCH:])
        await self.send_json(message)
