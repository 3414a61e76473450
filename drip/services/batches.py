"""The worker's batches of withdrawals: claimed, prepared, released and settled
(`drip.services`)."""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from django.db.models import Q
from django.utils import timezone

from points.usecase import use_case

from ..models import DripTransfer
from .outcomes import _finish, _lock_rows, _reverse_withdrawal

logger = logging.getLogger(__name__)
Status, Direction = DripTransfer.Status, DripTransfer.Direction


# --- The worker's batches ------------------------------------------------------------------


@use_case()
def drip_batch_claim(
    *, guild_id: int, limit: int = 100, now: dt.datetime | None = None
) -> list[DripTransfer]:
    """Take up to `limit` due withdrawals of the guild and mark them `sending` *before* they are
    sent (committed here), so a worker that dies after sending leaves rows a restart flags as
    in doubt instead of sending them again. Rows another worker holds are skipped."""
    now = now or timezone.now()
    rows = list(
        DripTransfer.objects.select_for_update(skip_locked=True)
        .filter(guild_id=guild_id, direction=Direction.WITHDRAW, status=Status.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .order_by("pk")[:limit]
    )
    batch = uuid.uuid4().hex
    for row in rows:
        row.status = Status.SENDING
        row.batch_id = batch
        row.sent_at = now
        row.attempts += 1
        row.updated_at = now
    DripTransfer.objects.bulk_update(
        rows, ["status", "batch_id", "sent_at", "attempts", "updated_at"]
    )
    return rows


@use_case()
def drip_batch_prepare(
    *, transfer_ids: list[int], before: dict[int, int | None], initiator_id: str
) -> int:
    """Write what moderators need to find a batch in DRIP before it is sent: the `initiatorId`
    it carries and each member's DRIP balance just before. Rows no longer `sending` are left."""
    n = 0
    for row in _lock_rows(transfer_ids):
        if row.status != Status.SENDING:
            continue
        row.initiator_id = initiator_id[:64]
        row.drip_balance_before = before.get(row.user_id)
        row.save(update_fields=["initiator_id", "drip_balance_before", "updated_at"])
        n += 1
    return n


@use_case()
def drip_batch_release(
    *, transfer_ids: list[int], retry_at: dt.datetime, error_code: str, message: str
) -> int:
    """DRIP certainly did not apply this batch (no connection, a 5xx, a 429, a rejected key):
    put it back to `pending`, due again at `retry_at`."""
    rows = _lock_rows(transfer_ids)
    n = 0
    for row in rows:
        if row.status != Status.SENDING:
            continue
        row.status = Status.PENDING
        row.next_attempt_at = retry_at
        row.error_code = error_code[:40]
        row.error_message = message[:300]
        row.save()
        n += 1
    return n


@use_case()
def drip_batch_settle(
    *,
    transfer_ids: list[int],
    balances: dict[int, int],
    errors: dict[int, str],
    request_id: str = "",
) -> dict[str, int]:
    """Apply DRIP's answer to a batch: a member in `balances` → their rows are confirmed; in
    `errors` → failed and reversed; in neither (DRIP did not say) → in doubt."""
    now = timezone.now()
    counts: dict[str, int] = {Status.CONFIRMED: 0, Status.FAILED: 0, Status.IN_DOUBT: 0}
    for row in _lock_rows(transfer_ids):
        if row.status != Status.SENDING:
            continue
        if row.user_id in balances:
            _finish(
                row,
                Status.CONFIRMED,
                now,
                drip_balance_after=balances[row.user_id],
                request_id=request_id[:100],
                resolution="drip",
                error_code="",
                error_message="",
            )
        elif row.user_id in errors:
            _reverse_withdrawal(row, memo=f"DRIP refused transfer #{row.pk}: {errors[row.user_id]}")
            _finish(
                row,
                Status.FAILED,
                now,
                error_code="refused",
                error_message=errors[row.user_id][:300],
                request_id=request_id[:100],
                resolution="refused by DRIP",
            )
        else:
            _finish(
                row,
                Status.IN_DOUBT,
                now,
                error_code="unanswered",
                error_message="DRIP's answer to the batch did not mention this member.",
            )
        counts[row.status] += 1
    return counts


@use_case()
def drip_transfers_note(*, notes: dict[int, str]) -> None:
    """Write re-check evidence (DRIP balances seen after an in-doubt send) onto rows."""
    for row in _lock_rows(notes):
        row.recheck_note = notes[row.pk][:300]
        row.save(update_fields=["recheck_note", "updated_at"])


@use_case()
def drip_member_notified(*, transfer_id: int, now: dt.datetime | None = None) -> None:
    """Record that the member was told (or deliberately not told) their withdrawal came back."""
    DripTransfer.objects.filter(pk=transfer_id, member_notified_at__isnull=True).update(
        member_notified_at=now or timezone.now()
    )
