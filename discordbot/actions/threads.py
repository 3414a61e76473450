"""A market's discussion thread (issue 26): the claim that keeps it to one per market across
restarts, and where it is."""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, transaction
from django.utils import timezone

from points.errors import validate_snowflake

from ..models import MarketThread

THREAD_CLAIM_SECONDS = 60.0
"""A claim older than this was left by a process that stopped while starting the thread: the
next one finishes it (Discord answers 160004 if the thread was started, and its id is the
message's)."""


def market_thread_claim(
    *, market_id: int, channel_id: int, message_id: int
) -> tuple[str, int | None, int | None]:
    """Whether to start the market's thread, and from which message: ("have", thread, None)
    when it exists, ("none", None, None) when it failed for good or another process is starting
    it, ("start", channel, message) when the caller starts it (a new claim on `message_id`, or a
    stale claim taken over on the message it named)."""
    validate_snowflake(channel_id, what="channel_id")
    validate_snowflake(message_id, what="message_id")
    now = timezone.now()
    try:
        with transaction.atomic():
            row, created = MarketThread.objects.select_for_update().get_or_create(
                market_id=market_id,
                defaults={"channel_id": channel_id, "message_id": message_id},
            )
            if created:
                return "start", channel_id, message_id
            if row.thread_id:
                return "have", row.thread_id, None
            if row.detail or now - row.created_at < dt.timedelta(seconds=THREAD_CLAIM_SECONDS):
                return "none", None, None
            MarketThread.objects.filter(pk=row.pk).update(created_at=now)
            return "start", row.channel_id, row.message_id
    except IntegrityError:  # a twin claimed it meanwhile
        return "none", None, None


def market_thread_record(*, market_id: int, thread_id: int | None, detail: str = "") -> None:
    """The thread started (`thread_id`), or why there is none (`detail`, kept: not tried
    again)."""
    MarketThread.objects.filter(market_id=market_id).update(
        thread_id=thread_id, detail=detail[:200]
    )


def market_thread_release(*, market_id: int) -> None:
    """Give up a claim after a failure worth trying again (5xx, network)."""
    MarketThread.objects.filter(market_id=market_id, thread_id=None).delete()


def market_thread_of(*, market_id: int) -> int | None:
    """The market's thread, if it has one."""
    row = MarketThread.objects.filter(market_id=market_id).exclude(thread_id=None).first()
    return row.thread_id if row else None
