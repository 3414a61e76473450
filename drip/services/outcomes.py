"""What DRIP answered, applied to the transfers: credits, reversals and final states; and a
moderator's decision on a transfer in doubt (`drip.services`)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

from django.utils import timezone

from points.errors import (
    InvalidInput,
    NotFound,
    validate_key,
    validate_reason,
)
from points.models import Transfer
from points.services import (
    Leg,
    accounts_lock,
    audit_record,
    members_prepare,
    transfers_post,
)
from points.usecase import Call, stop_if_replayed, use_case

from .. import metrics
from ..errors import (
    MSG_NOT_IN_DOUBT,
)
from ..models import DripTransfer
from .links import clearing_get_or_create

logger = logging.getLogger(__name__)
Status, Direction = DripTransfer.Status, DripTransfer.Direction


# --- Outcomes ----------------------------------------------------------------------------------


def _lock_rows(ids: Iterable[int]) -> list[DripTransfer]:
    return list(DripTransfer.objects.select_for_update().filter(pk__in=set(ids)).order_by("pk"))


def _clearing_to_wallet(
    row: DripTransfer, code: str, step: str, memo: str, **actor: int | None
) -> None:
    """Caller holds the lock on `row`; locks the clearing account and the member's wallet and
    moves `row.amount` clearing → wallet (`code`, key `drip:<id>:<step>`)."""
    clearing = clearing_get_or_create(guild_id=row.guild_id)
    members = members_prepare(guild_id=row.guild_id, user_ids=[row.user_id])
    locked = accounts_lock([*members.account_ids, clearing.pk])
    transfers_post(members.starting_legs, locked)
    wallet = locked[members.wallets[row.user_id].pk]
    leg = Leg(locked[clearing.pk], wallet, row.amount, code, f"drip:{row.pk}:{step}", memo, **actor)
    transfers_post([leg], locked)


def _credit_deposit(row: DripTransfer, *, memo: str) -> None:
    """DRIP confirmed the deposit: the wallet is credited (`drip_deposit`)."""
    _clearing_to_wallet(row, Transfer.Code.DRIP_DEPOSIT, "deposit", memo, actor_id=row.user_id)


def _reverse_withdrawal(row: DripTransfer, *, memo: str, actor_user_id: int | None = None) -> None:
    """The withdrawal did not reach DRIP: the points go back to the wallet (`correction`)."""
    _clearing_to_wallet(
        row, Transfer.Code.CORRECTION, "reverse", memo[:500], actor_user_id=actor_user_id
    )


def _finish(row: DripTransfer, status: str, now: dt.datetime, **fields: object) -> None:
    row.status = status
    row.resolved_at = now if status in (Status.CONFIRMED, Status.FAILED) else row.resolved_at
    for name, value in fields.items():
        setattr(row, name, value)
    row.save()
    metrics.transfer_observed(row.direction, status)


@use_case()
def drip_deposit_settle(
    *, transfer_id: int, balance_after: int | None, request_id: str = "", note: str = ""
) -> DripTransfer:
    """DRIP confirmed the debit: credit the wallet (clearing → wallet, `drip_deposit`) and mark
    the deposit confirmed. Settling a row that is already settled changes nothing."""
    rows = _lock_rows([transfer_id])
    if not rows:
        raise NotFound(f"There is no DRIP transfer #{transfer_id}.")
    (row,) = rows
    if row.direction != Direction.DEPOSIT or row.status not in (Status.SENDING, Status.IN_DOUBT):
        return row
    _credit_deposit(row, memo=f"From DRIP (transfer #{row.pk})")
    _finish(
        row,
        Status.CONFIRMED,
        timezone.now(),
        drip_balance_after=balance_after,
        request_id=request_id[:100],
        resolution="drip",
        recheck_note=note[:300],
    )
    return row


@use_case()
def drip_transfers_fail(
    *, transfer_ids: list[int], error_code: str, message: str, request_id: str = ""
) -> list[DripTransfer]:
    """DRIP certainly did not apply these (it refused them): mark them failed; withdrawals are
    reversed (clearing → wallet, `correction`) so the member has their points back. Only rows
    in `sending` or `pending` are touched (a settled row stays as it is)."""
    now = timezone.now()
    rows = _lock_rows(transfer_ids)
    done = []
    for row in rows:
        if row.status not in (Status.SENDING, Status.PENDING):
            continue
        if row.direction == Direction.WITHDRAW:
            _reverse_withdrawal(row, memo=f"DRIP refused transfer #{row.pk}: {message[:200]}")
        _finish(
            row,
            Status.FAILED,
            now,
            error_code=error_code[:40],
            error_message=message[:300],
            request_id=request_id[:100],
            resolution="refused by DRIP",
        )
        done.append(row)
    return done


@use_case()
def drip_transfers_in_doubt(*, transfer_ids: list[int], reason: str) -> list[DripTransfer]:
    """DRIP may or may not have applied these: mark them `in_doubt` for a moderator. They are
    never sent again; their points stay where they are (a deposit credits nothing yet, a
    withdrawal stays in the clearing account)."""
    rows = _lock_rows(transfer_ids)
    out = []
    for row in rows:
        if row.status != Status.SENDING:
            continue
        _finish(
            row, Status.IN_DOUBT, timezone.now(), error_code="in_doubt", error_message=reason[:300]
        )
        out.append(row)
    return out


@use_case()
def drip_transfers_stale_flag(
    *, older_than_seconds: float, now: dt.datetime | None = None
) -> list[DripTransfer]:
    """Rows left in `sending` longer than `older_than_seconds`: the process that sent them
    stopped before it recorded DRIP's answer. They become `in_doubt` (never re-sent)."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(seconds=older_than_seconds)
    ids = list(
        DripTransfer.objects.filter(status=Status.SENDING, sent_at__lte=cutoff).values_list(
            "pk", flat=True
        )
    )
    rows = _lock_rows(ids)
    out = []
    for row in rows:
        if row.status != Status.SENDING:
            continue
        _finish(
            row,
            Status.IN_DOUBT,
            now,
            error_code="stale",
            error_message=(
                "The process that sent this stopped before it recorded DRIP's answer; it may "
                "or may not have been applied."
            ),
        )
        out.append(row)
    return out


# --- Moderators ------------------------------------------------------------------------------


def _resolved_by_key(key: str) -> DripTransfer | None:
    from points.models import AuditEvent

    event = AuditEvent.objects.filter(idempotency_key=key, target_type="drip_transfer").first()
    return DripTransfer.objects.filter(pk=event.target_id).first() if event else None


def _same_transfer(row: DripTransfer, call: Call) -> bool:
    return row.pk == call["transfer_id"]


@use_case(lookup=_resolved_by_key, matches=_same_transfer)
def drip_transfer_resolve(
    *,
    transfer_id: int,
    applied: bool,
    reason: str,
    actor_user_id: int | None = None,
    actor_id: int | None = None,
    idempotency_key: str,
) -> DripTransfer:
    """A moderator checked DRIP and decides an in-doubt transfer, audited:

    - `applied=True` ("Confirm applied"): DRIP did apply it. A deposit credits the wallet now
      (clearing → wallet); a withdrawal is confirmed (its points stay in clearing).
    - `applied=False` ("Reverse"): DRIP did not apply it. A deposit is marked failed (nothing
      was credited); a withdrawal is marked failed and its points go back to the wallet.

    Deciding a row twice with the same key returns it; any other decision of a settled row is
    refused, so no point can move twice."""
    validate_key(idempotency_key)
    reason = validate_reason(reason)
    rows = _lock_rows([transfer_id])
    if not rows:
        raise NotFound(f"There is no DRIP transfer #{transfer_id}.")
    row = rows[0]
    stop_if_replayed(_resolved_by_key, idempotency_key)
    if row.status != Status.IN_DOUBT:
        raise InvalidInput(MSG_NOT_IN_DOUBT.format(id=row.pk, status=row.get_status_display()))
    now = timezone.now()
    before = {"status": row.status}
    if applied:
        if row.direction == Direction.DEPOSIT:
            _credit_deposit(row, memo=f"From DRIP (transfer #{row.pk}, confirmed by a moderator)")
        _finish(row, Status.CONFIRMED, now, resolution="moderator: applied")
    else:
        if row.direction == Direction.WITHDRAW:
            _reverse_withdrawal(
                row,
                memo=f"DRIP transfer #{row.pk} reversed by a moderator: {reason}",
                actor_user_id=actor_user_id,
            )
        _finish(row, Status.FAILED, now, resolution="moderator: reversed")
    audit_record(
        action="drip_confirm_applied" if applied else "drip_reverse",
        target_type="drip_transfer",
        target_id=row.pk,
        guild_id=row.guild_id,
        actor_id=actor_id,
        actor_user_id=actor_user_id,
        reason=reason,
        idempotency_key=idempotency_key,
        before=before,
        after={"status": row.status, "direction": row.direction, "amount": row.amount},
    )
    return row
