"""The notifier's bookkeeping: its cursor over market events and the delivery queue."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from markets.models import MarketEvent

from ..models import NotificationCursor, NotificationDelivery

# --- Notifier bookkeeping --------------------------------------------------------------------


def notification_stale(*, event_id: int, market_id: int) -> bool:
    """Whether a queued DM about trading closing (the creator's "you propose" DM) is stale: the
    market was proposed or decided meanwhile, so what it asks is already done (issue 23)."""
    return (
        MarketEvent.objects.filter(pk=event_id, type=MarketEvent.Type.CLOSED, market_id=market_id)
        .exclude(market__status="closed")
        .exists()
    )


def notification_cursor_advance(*, name: str, event_id: int) -> int:
    """Move the cursor forward to `event_id` (never backward). Returns the new position."""
    NotificationCursor.objects.get_or_create(name=name)
    NotificationCursor.objects.filter(name=name, last_event_id__lt=event_id).update(
        last_event_id=event_id
    )
    return NotificationCursor.objects.values_list("last_event_id", flat=True).get(name=name)


def notification_cursor_start(*, name: str, after: dt.datetime) -> int:
    """The cursor of notifier `name`. A notifier running for the first time starts at the first
    event created after `after` (old news is not worth a notification)."""
    row = NotificationCursor.objects.filter(name=name).first()
    if row is not None:
        return row.last_event_id
    last_old = (
        MarketEvent.objects.filter(created_at__lt=after)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
    ) or 0
    row, _ = NotificationCursor.objects.get_or_create(
        name=name, defaults={"last_event_id": last_old}
    )
    return row.last_event_id


FILLS_MERGE_MARGIN = dt.timedelta(seconds=5)
"""A queued fills DM takes more fills only while it is due this much later or more: the DM lane
picks rows that are due, so the row it may be sending is never rewritten."""


def _mergeable(now: dt.datetime) -> Q:
    """Queued fills DMs that were never tried and are not due soon: safe to rewrite."""
    return Q(
        kind=NotificationDelivery.Kind.FILLS,
        status=NotificationDelivery.Status.PENDING,
        attempts=0,
        detail="",
        next_attempt_at__gt=now + FILLS_MERGE_MARGIN,
    )


def fills_dm_open(*, user_id: int, market_id: int) -> tuple[int, int] | None:
    """The queued fills DM of a member on a market that more fills may still join: (its id,
    the event it started at), or None."""
    row = (
        NotificationDelivery.objects.filter(_mergeable(timezone.now()))
        .filter(target=f"dm:{user_id}", market_id=market_id)
        .order_by("-id")
        .values_list("id", "event_id")
        .first()
    )
    return None if row is None else (row[0], row[1])


def notifications_enqueue(*, name: str, event_id: int, rows: list[dict]) -> int:
    """Queue the messages one event owes (`rows`: target, lane, kind, market_id, content, and
    optionally `not_before`) and move notifier `name`'s cursor past the event, in one
    transaction: a restart either plans the event again (adding nothing: one row per event and
    target) or not at all. A fills row with `merge_into` rewrites that queued row instead (its
    text then covers this event's fill too), unless it can no longer be rewritten (it is due or
    was tried): then it is queued with `alone`. Returns how many rows were new."""
    with transaction.atomic():
        before = NotificationDelivery.objects.filter(event_id=event_id).count()
        new = []
        for row in rows:
            content = row.get("content", "")
            if row.get("merge_into"):
                merged = (
                    NotificationDelivery.objects.filter(_mergeable(timezone.now()))
                    .filter(pk=row["merge_into"])
                    .update(content=content)
                )
                if merged:
                    continue
                content = row["alone"]
            new.append(
                NotificationDelivery(
                    event_id=event_id,
                    status=NotificationDelivery.Status.PENDING,
                    target=row["target"][:60],
                    lane=row["lane"],
                    kind=row["kind"],
                    market_id=row.get("market_id"),
                    content=content,
                    next_attempt_at=row.get("not_before"),
                )
            )
        NotificationDelivery.objects.bulk_create(new, ignore_conflicts=True)
        notification_cursor_advance(name=name, event_id=event_id)
        return NotificationDelivery.objects.filter(event_id=event_id).count() - before


def notifications_due(*, lane: str, now: dt.datetime, limit: int) -> list[NotificationDelivery]:
    """Pending rows of `lane` whose time has come, oldest first."""
    return list(
        NotificationDelivery.objects.filter(lane=lane, status=NotificationDelivery.Status.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .order_by("next_attempt_at", "id")[:limit]
    )


def notification_next_due(*, lane: str) -> dt.datetime | None:
    """When the next pending row of `lane` may be tried (None: nothing pending)."""
    row = (
        NotificationDelivery.objects.filter(lane=lane, status=NotificationDelivery.Status.PENDING)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", "id")
        .first()
    )
    if row is None:
        return None
    return row[0] or dt.datetime.min.replace(tzinfo=dt.UTC)


def notification_finish(*, delivery_id: int, status: str, detail: str = "") -> None:
    """Record the outcome of a pending row (sent, skipped or failed for good)."""
    NotificationDelivery.objects.filter(
        pk=delivery_id, status=NotificationDelivery.Status.PENDING
    ).update(status=status, detail=detail[:200], sent_at=timezone.now())


def notification_postpone(
    *, delivery_id: int, until: dt.datetime, detail: str, count_attempt: bool
) -> int:
    """Put a pending row back until `until`; `count_attempt` for failures (not for Discord
    asking to slow down). Returns the row's attempts."""
    changes: dict = {"next_attempt_at": until, "detail": detail[:200]}
    if count_attempt:
        changes["attempts"] = F("attempts") + 1
    NotificationDelivery.objects.filter(pk=delivery_id).update(**changes)
    return NotificationDelivery.objects.values_list("attempts", flat=True).get(pk=delivery_id)
