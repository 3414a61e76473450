"""Members' deposits and withdrawals as they are asked for, and payouts sent to DRIP
automatically (`drip.services`)."""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from points.errors import (
    IdempotencyConflict,
    InsufficientPoints,
    validate_amount,
    validate_key,
    validate_snowflake,
)
from points.models import Account, Transfer
from points.services import (
    Leg,
    accounts_lock,
    members_prepare,
    next_daily_at,
    transfers_post,
)
from points.usecase import Call, Replay, stop_if_replayed, use_case

from .. import metrics
from ..client import initiator_for_transfer
from ..errors import (
    MSG_DISABLED,
    MSG_LIMIT,
    MSG_NOT_LINKED,
    DripLimitReached,
    DripNotLinked,
)
from ..models import DripLink, DripTransfer
from .links import clearing_get_or_create

logger = logging.getLogger(__name__)
Status, Direction = DripTransfer.Status, DripTransfer.Direction


# --- Member requests --------------------------------------------------------------------------


def _link_usable(guild_id: int) -> DripLink:
    link = DripLink.objects.filter(guild_id=guild_id).first()
    if link is None:
        raise DripNotLinked(MSG_NOT_LINKED)
    if not link.enabled:
        raise DripNotLinked(MSG_DISABLED, code="drip_disabled")
    return link


def _limit_check(
    link: DripLink, *, user_id: int, direction: str, amount: int, now: dt.datetime
) -> None:
    """Caller holds the member's wallet lock, so two requests cannot both pass the limit."""
    limit = (
        link.deposit_limit_per_day
        if direction == Direction.DEPOSIT
        else link.withdraw_limit_per_day
    )
    if not limit:
        return
    day_start = dt.datetime.combine(now.astimezone(dt.UTC).date(), dt.time.min, tzinfo=dt.UTC)
    used = (
        DripTransfer.objects.filter(
            guild_id=link.guild_id, user_id=user_id, direction=direction, created_at__gte=day_start
        )
        .exclude(status=Status.FAILED)
        .aggregate(s=Sum("amount"))["s"]
        or 0
    )
    if used + amount > limit:
        reset = next_daily_at(now)
        raise DripLimitReached(
            MSG_LIMIT.format(
                direction=direction,
                limit=f"{limit:,}",
                left=f"{max(0, limit - used):,}",
                reset=f"<t:{int(reset.timestamp())}:R>",
            ),
            details={"limit": limit, "used": used},
        )


def _existing(key: str, *, guild_id: int, user_id: int, direction: str, amount: int):
    found = _transfer_by_key(key)
    if found is None:
        return None
    if (found.guild_id, found.user_id, found.direction, found.amount) != (
        guild_id,
        user_id,
        direction,
        amount,
    ):
        raise IdempotencyConflict(
            f"This request repeats an earlier one (key {key}) with different content; "
            "nothing was done."
        )
    return found


def _transfer_by_key(key: str) -> DripTransfer | None:
    return DripTransfer.objects.filter(idempotency_key=key).first()


def _same_deposit(row: DripTransfer, call: Call) -> bool:
    return (row.guild_id, row.user_id, row.direction, row.amount) == (
        call["guild_id"],
        call["user_id"],
        Direction.DEPOSIT,
        call["amount"],
    )


def _same_withdrawal(row: DripTransfer, call: Call) -> bool:
    return (row.guild_id, row.user_id, row.direction, row.amount) == (
        call["guild_id"],
        call["user_id"],
        Direction.WITHDRAW,
        call["amount"],
    )


@use_case(lookup=_transfer_by_key, matches=_same_deposit)
def drip_deposit_begin(
    *,
    guild_id: int,
    user_id: int,
    amount: int,
    idempotency_key: str,
    drip_balance_before: int | None = None,
    now: dt.datetime | None = None,
) -> DripTransfer:
    """Record a deposit about to be sent to DRIP (status `sending`), within the daily limit.
    Nothing moves here: the wallet is credited only by `drip_deposit_settle` once DRIP confirmed
    the debit. A repeated key returns the first row."""
    validate_snowflake(user_id, what="user_id")
    validate_amount(amount)
    validate_key(idempotency_key)
    now = now or timezone.now()
    link = _link_usable(guild_id)
    members = members_prepare(guild_id=guild_id, user_ids=[user_id])
    locked = accounts_lock(members.account_ids)
    stop_if_replayed(_transfer_by_key, idempotency_key)
    transfers_post(members.starting_legs, locked)
    _limit_check(link, user_id=user_id, direction=Direction.DEPOSIT, amount=amount, now=now)
    row = DripTransfer.objects.create(
        guild_id=guild_id,
        user_id=user_id,
        direction=Direction.DEPOSIT,
        amount=amount,
        status=Status.SENDING,
        idempotency_key=idempotency_key,
        attempts=1,
        sent_at=now,
        drip_balance_before=drip_balance_before,
    )
    row.initiator_id = initiator_for_transfer(row.pk)
    row.save(update_fields=["initiator_id"])
    row.just_created = True  # the caller sends only a row it created (not a replay)
    return row


@use_case(lookup=_transfer_by_key, matches=_same_withdrawal)
def drip_withdraw_request(
    *,
    guild_id: int,
    user_id: int,
    amount: int,
    idempotency_key: str,
    now: dt.datetime | None = None,
) -> DripTransfer:
    """Debit the member's wallet into the clearing account at once (they cannot spend it twice)
    and queue the DRIP credit for the worker (`pending`). Within the daily limit; never
    overdraws. A repeated key returns the first row and moves nothing."""
    validate_snowflake(user_id, what="user_id")
    validate_amount(amount)
    validate_key(idempotency_key)
    link = _link_usable(guild_id)
    return _withdraw(
        link, user_id=user_id, amount=amount, key=idempotency_key, now=now, replay=True
    )


def _withdraw(
    link: DripLink,
    *,
    user_id: int,
    amount: int,
    key: str,
    now: dt.datetime | None = None,
    replay: bool = False,
) -> DripTransfer:
    """Caller is in a transaction: the body of `drip_withdraw_request`."""
    guild_id, idempotency_key = link.guild_id, key
    now = now or timezone.now()
    clearing = clearing_get_or_create(guild_id=guild_id)
    members = members_prepare(guild_id=guild_id, user_ids=[user_id])
    locked = accounts_lock([*members.account_ids, clearing.pk])
    transfers_post(members.starting_legs, locked)
    found = _existing(
        idempotency_key,
        guild_id=guild_id,
        user_id=user_id,
        direction=Direction.WITHDRAW,
        amount=amount,
    )
    if found is not None:
        if replay:  # the use case answers with the first row
            raise Replay(found)
        return found
    _limit_check(link, user_id=user_id, direction=Direction.WITHDRAW, amount=amount, now=now)
    row = DripTransfer.objects.create(
        guild_id=guild_id,
        user_id=user_id,
        direction=Direction.WITHDRAW,
        amount=amount,
        status=Status.PENDING,
        idempotency_key=idempotency_key,
        next_attempt_at=now,
    )
    wallet = locked[members.wallets[user_id].pk]
    leg = Leg(
        wallet,
        locked[clearing.pk],
        amount,
        Transfer.Code.DRIP_WITHDRAW,
        f"drip:{row.pk}:withdraw",
        f"To DRIP (transfer #{row.pk})",
        actor_id=user_id,
    )
    transfers_post([leg], locked)
    metrics.transfer_observed(Direction.WITHDRAW, Status.PENDING)
    return row


AUTO_CODES = (Transfer.Code.PAYOUT, Transfer.Code.REFUND)


@use_case()
def drip_auto_withdraw_queue(*, guild_id: int, limit: int = 500) -> int:
    """For a guild that chose it: queue a withdrawal (key `drip:auto:<transfer id>`) of every
    market payout and refund posted since the last call, so winnings go back to DRIP. A payout
    the member already spent, or one past their daily withdraw limit, stays here. Returns how
    many withdrawals were queued."""
    link = DripLink.objects.select_for_update().filter(guild_id=guild_id).first()
    if link is None or not (link.enabled and link.auto_withdraw_payouts):
        return 0
    payouts = list(
        Transfer.objects.filter(
            guild_id=guild_id,
            code__in=AUTO_CODES,
            pk__gt=link.auto_withdraw_after,
            destination__kind=Account.Kind.WALLET,
        )
        .select_related("destination")
        .order_by("pk")[:limit]
    )
    queued = 0
    for payout in payouts:
        user_id = payout.destination.owner_id
        assert user_id is not None  # a wallet always has its member
        try:
            with transaction.atomic():
                _withdraw(link, user_id=user_id, amount=payout.amount, key=f"drip:auto:{payout.pk}")
            queued += 1
        except (InsufficientPoints, DripLimitReached) as exc:
            logger.info("DRIP: payout %s stays here (%s)", payout.pk, exc.code)
    if payouts:
        link.auto_withdraw_after = payouts[-1].pk
        link.save(update_fields=["auto_withdraw_after", "updated_at"])
    return queued
