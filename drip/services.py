"""DRIP bridge services (docs/drip.md): every write of the bridge, each one durable transaction.

Ledger shape (DOMAIN §3): each linked guild has one `drip` clearing account, an issuer like the
treasury (it may go negative). A confirmed deposit moves points clearing → wallet
(`drip_deposit`); a withdrawal moves them wallet → clearing at once (`drip_withdraw`) and, if DRIP
refuses it or a moderator reverses it, back with a `correction`. So `-clearing.balance` is always
confirmed deposits − withdrawals not reversed, and L1–L3 hold unchanged.

Lock order (STYLE §5): the `DripTransfer` rows first (ordered by id), then the accounts in one
query ordered by primary key (`points.services.accounts_lock`).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from points.db import retry_transient
from points.errors import (
    MAX_AMOUNT,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidInput,
    NotFound,
    validate_amount,
    validate_key,
    validate_reason,
    validate_snowflake,
)
from points.models import Account, Transfer
from points.services import (
    Leg,
    accounts_lock,
    audit_record,
    members_prepare,
    next_daily_at,
    transfers_post,
)

from . import crypto, metrics
from .errors import (
    MSG_DISABLED,
    MSG_LIMIT,
    MSG_NOT_IN_DOUBT,
    MSG_NOT_LINKED,
    DripLimitReached,
    DripNotLinked,
)
from .models import DripLink, DripTransfer

logger = logging.getLogger(__name__)
Status, Direction = DripTransfer.Status, DripTransfer.Direction

REALM_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MSG_REALM_ID = (
    "A DRIP realm id is 1–64 letters, digits, '-' or '_' (copy it from the DRIP dashboard)."
)
MSG_POINT_ID = "A DRIP realm point (currency) id is 1–64 letters, digits, '-' or '_', or empty."
MSG_API_KEY = (
    "A DRIP API key is 8–500 characters without spaces (copy it from DRIP's Developer page)."
)
MSG_API_KEY_NEEDED = "Linking a realm for the first time needs its API key."
MSG_LIMIT_RANGE = f"A daily limit is a whole number of points from 0 (no limit) to {MAX_AMOUNT:,}."


# --- Accounts --------------------------------------------------------------------------------


def clearing_get_or_create(*, guild_id: int) -> Account:
    """The guild's `drip` clearing account. Caller is in a transaction (or accepts autocommit)."""
    found = Account.objects.filter(guild_id=guild_id, kind=Account.Kind.DRIP).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return Account.objects.create(guild_id=guild_id, kind=Account.Kind.DRIP)
    except IntegrityError:
        return Account.objects.get(guild_id=guild_id, kind=Account.Kind.DRIP)


# --- Linking a realm ------------------------------------------------------------------------


@retry_transient()
@transaction.atomic(durable=True)
def drip_link_set(
    *,
    guild_id: int,
    realm_id: str,
    realm_point_id: str = "",
    api_key: str | None = None,
    deposit_limit_per_day: int | None = None,
    withdraw_limit_per_day: int | None = None,
    auto_withdraw_payouts: bool | None = None,
    actor_id: int | None = None,
    idempotency_key: str,
) -> DripLink:
    """Link (or re-link) the guild's DRIP realm. The API key is encrypted before it is stored
    (refused without `PM_ENCRYPTION_KEY`); keeping the stored key is allowed when re-linking.
    Audited without the key. The caller checked Manage Server (the cog's group requires it)."""
    if not crypto.encryption_available():
        raise crypto.EncryptionUnavailable(crypto.MSG_NO_ENCRYPTION_KEY)
    validate_snowflake(guild_id, what="guild_id")
    validate_key(idempotency_key)
    realm_id = (realm_id or "").strip()
    if not REALM_ID_RE.fullmatch(realm_id):
        raise InvalidInput(MSG_REALM_ID)
    realm_point_id = (realm_point_id or "").strip()
    if realm_point_id and not REALM_ID_RE.fullmatch(realm_point_id):
        raise InvalidInput(MSG_POINT_ID)
    for value in (deposit_limit_per_day, withdraw_limit_per_day):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_AMOUNT
        ):
            raise InvalidInput(MSG_LIMIT_RANGE)
    link = DripLink.objects.select_for_update().filter(guild_id=guild_id).first()
    before = _link_view(link) if link else {}
    encrypted = None
    if api_key is not None:
        api_key = api_key.strip()
        if not 8 <= len(api_key) <= 500 or any(c.isspace() for c in api_key):
            raise InvalidInput(MSG_API_KEY)
        encrypted = crypto.secret_encrypt(api_key)
    elif link is None:
        raise InvalidInput(MSG_API_KEY_NEEDED)
    if link is None:
        link = DripLink(guild_id=guild_id)
    link.realm_id = realm_id
    link.realm_point_id = realm_point_id
    if encrypted is not None:
        link.api_key_encrypted = encrypted
    if deposit_limit_per_day is not None:
        link.deposit_limit_per_day = deposit_limit_per_day
    if withdraw_limit_per_day is not None:
        link.withdraw_limit_per_day = withdraw_limit_per_day
    if auto_withdraw_payouts is not None:
        if auto_withdraw_payouts and not link.auto_withdraw_payouts:
            # Only payouts from now on: earlier ones may long be spent.
            last = Transfer.objects.order_by("-pk").values_list("pk", flat=True).first()
            link.auto_withdraw_after = last or 0
        link.auto_withdraw_payouts = auto_withdraw_payouts
    link.enabled = True
    link.last_error = ""
    link.linked_by = actor_id
    link.save()
    clearing_get_or_create(guild_id=guild_id)
    after = _link_view(link) | {"api_key": "replaced" if encrypted else "kept"}
    audit_record(
        action="drip_link",
        target_type="drip_link",
        target_id=guild_id,
        guild_id=guild_id,
        actor_id=actor_id,
        idempotency_key=idempotency_key,
        before=before,
        after=after,
    )
    return link


def _link_view(link: DripLink) -> dict:
    """What may be shown or audited about a link: everything but the key."""
    return {
        "realm_id": link.realm_id,
        "realm_point_id": link.realm_point_id,
        "deposit_limit_per_day": link.deposit_limit_per_day,
        "withdraw_limit_per_day": link.withdraw_limit_per_day,
        "auto_withdraw_payouts": link.auto_withdraw_payouts,
        "enabled": link.enabled,
    }


def drip_link_error_set(*, guild_id: int, message: str) -> None:
    """Remember the last link-level error (a rejected key) for moderators; '' clears it."""
    DripLink.objects.filter(guild_id=guild_id).exclude(last_error=message[:300]).update(
        last_error=message[:300]
    )


@transaction.atomic(durable=True)
def drip_key_rotate_all() -> int:
    """Re-encrypt every stored API key with the first `PM_ENCRYPTION_KEY` key."""
    links = list(DripLink.objects.select_for_update().order_by("guild_id"))
    for link in links:
        link.api_key_encrypted = crypto.secret_rotate(link.api_key_encrypted)
        link.save(update_fields=["api_key_encrypted", "updated_at"])
    return len(links)


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
    found = DripTransfer.objects.filter(idempotency_key=key).first()
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


@retry_transient()
@transaction.atomic(durable=True)
def drip_deposit_begin(
    *,
    guild_id: int,
    user_id: int,
    amount: int,
    idempotency_key: str,
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
    transfers_post(members.starting_legs, locked)
    found = _existing(
        idempotency_key,
        guild_id=guild_id,
        user_id=user_id,
        direction=Direction.DEPOSIT,
        amount=amount,
    )
    if found is not None:
        return found
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
    )
    row.just_created = True  # the caller sends only a row it created (not a replay)
    return row


@retry_transient()
@transaction.atomic(durable=True)
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
    return _withdraw(link, user_id=user_id, amount=amount, key=idempotency_key, now=now)


def _withdraw(
    link: DripLink, *, user_id: int, amount: int, key: str, now: dt.datetime | None = None
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


@retry_transient()
@transaction.atomic(durable=True)
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


# --- Outcomes ----------------------------------------------------------------------------------


def _lock_rows(ids: Iterable[int]) -> list[DripTransfer]:
    return list(DripTransfer.objects.select_for_update().filter(pk__in=set(ids)).order_by("pk"))


def _credit_deposit(row: DripTransfer, *, memo: str) -> None:
    """Caller holds the lock on `row`; locks the clearing account and the wallet."""
    clearing = clearing_get_or_create(guild_id=row.guild_id)
    members = members_prepare(guild_id=row.guild_id, user_ids=[row.user_id])
    locked = accounts_lock([*members.account_ids, clearing.pk])
    transfers_post(members.starting_legs, locked)
    leg = Leg(
        locked[clearing.pk],
        locked[members.wallets[row.user_id].pk],
        row.amount,
        Transfer.Code.DRIP_DEPOSIT,
        f"drip:{row.pk}:deposit",
        memo,
        actor_id=row.user_id,
    )
    transfers_post([leg], locked)


def _reverse_withdrawal(row: DripTransfer, *, memo: str, actor_user_id: int | None = None) -> None:
    """Caller holds the lock on `row`: the points go back clearing → wallet (`correction`)."""
    clearing = clearing_get_or_create(guild_id=row.guild_id)
    members = members_prepare(guild_id=row.guild_id, user_ids=[row.user_id])
    locked = accounts_lock([*members.account_ids, clearing.pk])
    transfers_post(members.starting_legs, locked)
    leg = Leg(
        locked[clearing.pk],
        locked[members.wallets[row.user_id].pk],
        row.amount,
        Transfer.Code.CORRECTION,
        f"drip:{row.pk}:reverse",
        memo[:500],
        actor_user_id=actor_user_id,
    )
    transfers_post([leg], locked)


def _finish(row: DripTransfer, status: str, now: dt.datetime, **fields: object) -> None:
    row.status = status
    row.resolved_at = now if status in (Status.CONFIRMED, Status.FAILED) else row.resolved_at
    for name, value in fields.items():
        setattr(row, name, value)
    row.save()
    metrics.transfer_observed(row.direction, status)


@retry_transient()
@transaction.atomic(durable=True)
def drip_deposit_settle(
    *, transfer_id: int, balance_after: int | None, request_id: str = ""
) -> DripTransfer:
    """DRIP confirmed the debit: credit the wallet (clearing → wallet, `drip_deposit`) and mark
    the deposit confirmed. Settling a row that is already settled changes nothing."""
    (row,) = _lock_rows([transfer_id]) or [None]
    if row is None:
        raise NotFound(f"There is no DRIP transfer #{transfer_id}.")
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
    )
    return row


@retry_transient()
@transaction.atomic(durable=True)
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


@retry_transient()
@transaction.atomic(durable=True)
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


@retry_transient()
@transaction.atomic(durable=True)
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


# --- The worker's batches ------------------------------------------------------------------


@retry_transient()
@transaction.atomic(durable=True)
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


@retry_transient()
@transaction.atomic(durable=True)
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


@retry_transient()
@transaction.atomic(durable=True)
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
    counts = {Status.CONFIRMED: 0, Status.FAILED: 0, Status.IN_DOUBT: 0}
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


@retry_transient()
@transaction.atomic(durable=True)
def drip_transfers_note(*, notes: dict[int, str]) -> None:
    """Write re-check evidence (DRIP balances seen after an in-doubt send) onto rows."""
    for row in _lock_rows(notes):
        row.recheck_note = notes[row.pk][:300]
        row.save(update_fields=["recheck_note", "updated_at"])


@transaction.atomic(durable=True)
def drip_member_notified(*, transfer_id: int, now: dt.datetime | None = None) -> None:
    """Record that the member was told (or deliberately not told) their withdrawal came back."""
    DripTransfer.objects.filter(pk=transfer_id, member_notified_at__isnull=True).update(
        member_notified_at=now or timezone.now()
    )


# --- Moderators ------------------------------------------------------------------------------


@retry_transient()
@transaction.atomic(durable=True)
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
    if row.status != Status.IN_DOUBT:
        from points.models import AuditEvent

        if AuditEvent.objects.filter(idempotency_key=idempotency_key).exists():
            return row
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
