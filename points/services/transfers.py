"""The member-facing point use cases (DOMAIN §3): a moderator's grant or deduction, a tip,
the daily bonus. Each is a `points.usecase.use_case` that posts through `transfers_post`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Protocol

from django.utils import timezone

from ..errors import (
    MSG_DAILY_ALREADY_CLAIMED,
    MSG_DAILY_DISABLED,
    MSG_TIP_SELF,
    AlreadyClaimed,
    DomainError,
    InvalidInput,
    validate_amount,
    validate_reason,
    validate_snowflake,
)
from ..ledger import Leg, accounts_lock
from ..models import Transfer
from ..rules import Action, Actor, require
from ..usecase import Call, stop_if_replayed, use_case
from .accounts import (
    audit_record,
    guild_settings_get_or_create,
    members_prepare,
    transfer_by_key,
    transfers_post,
)


def _same_adjustment(code: str) -> Callable[[Transfer, Call], bool]:
    def matches(t: Transfer, call: Call) -> bool:
        wallet = t.destination if code == Transfer.Code.GRANT else t.source
        return (t.code, t.amount, t.guild_id, wallet.owner_id) == (
            code,
            call["amount"],
            call["guild_id"],
            call["user_id"],
        )

    return matches


def _adjust(
    *,
    guild_id: int,
    user_id: int,
    amount: int,
    reason: str,
    actor: Actor,
    idempotency_key: str,
    code: str,
) -> Transfer:
    """A moderator's grant or deduction between the treasury and a wallet, audited. Caller is
    the use case's durable transaction."""
    validate_snowflake(guild_id, what="guild_id")
    validate_snowflake(user_id, what="user_id")
    validate_amount(amount)
    reason = validate_reason(reason)
    require(Action.ADJUST, actor, guild_settings_get_or_create(guild_id=guild_id))
    actor_id, actor_user_id = actor.user_id, actor.admin_user_id
    members = members_prepare(guild_id=guild_id, user_ids=[user_id])
    locked = accounts_lock([*members.account_ids, members.treasury.pk])
    stop_if_replayed(transfer_by_key, idempotency_key)
    treasury, wallet = locked[members.treasury.pk], locked[members.wallets[user_id].pk]
    transfers_post(members.starting_legs, locked)
    before = wallet.balance
    source, destination = (treasury, wallet) if code == Transfer.Code.GRANT else (wallet, treasury)
    leg = Leg(source, destination, amount, code, idempotency_key, reason, actor_id, actor_user_id)
    (transfer,) = transfers_post([leg], locked)
    audit_record(
        action=f"points_{code}",
        target_type="wallet",
        target_id=user_id,
        guild_id=guild_id,
        actor_id=actor_id,
        actor_user_id=actor_user_id,
        reason=reason,
        idempotency_key=idempotency_key,
        before={"balance": before},
        after={"balance": wallet.balance},
    )
    return transfer


class Adjustment(Protocol):
    """A moderator's grant or deduction (`points_grant`, `points_deduct`)."""

    def __call__(
        self,
        *,
        guild_id: int,
        user_id: int,
        amount: int,
        reason: str,
        actor: Actor,
        idempotency_key: str,
    ) -> Transfer: ...


def _adjustment(code: str, name: str, doc: str) -> Adjustment:
    """The use case `name` that posts a moderator's `code` transfer (`_adjust`)."""

    def adjust(
        *,
        guild_id: int,
        user_id: int,
        amount: int,
        reason: str,
        actor: Actor,
        idempotency_key: str,
    ) -> Transfer:
        return _adjust(
            guild_id=guild_id,
            user_id=user_id,
            amount=amount,
            reason=reason,
            actor=actor,
            idempotency_key=idempotency_key,
            code=code,
        )

    adjust.__name__ = adjust.__qualname__ = name
    adjust.__doc__ = doc
    return use_case(lookup=transfer_by_key, matches=_same_adjustment(code))(adjust)


points_grant = _adjustment(
    Transfer.Code.GRANT,
    "points_grant",
    "A moderator adds points to a member's wallet (treasury → wallet, `grant`), audited.",
)
points_deduct = _adjustment(
    Transfer.Code.DEDUCT,
    "points_deduct",
    "A moderator removes points (wallet → treasury, `deduct`), audited; never overdraws.",
)


def _same_tip(t: Transfer, call: Call) -> bool:
    return (t.code, t.amount, t.source.owner_id, t.destination.owner_id, t.guild_id) == (
        Transfer.Code.TIP,
        call["amount"],
        call["from_user_id"],
        call["to_user_id"],
        call["guild_id"],
    )


@use_case(lookup=transfer_by_key, matches=_same_tip)
def points_tip(
    *, guild_id: int, from_user_id: int, to_user_id: int, amount: int, idempotency_key: str
) -> Transfer:
    """One member gives points to another (wallet → wallet, `tip`); not to themselves, not more
    than they have."""
    validate_snowflake(guild_id, what="guild_id")
    validate_snowflake(from_user_id, what="from_user_id")
    validate_snowflake(to_user_id, what="to_user_id")
    if from_user_id == to_user_id:
        raise InvalidInput(MSG_TIP_SELF)
    validate_amount(amount)
    members = members_prepare(guild_id=guild_id, user_ids=[from_user_id, to_user_id])
    locked = accounts_lock(members.account_ids)
    stop_if_replayed(transfer_by_key, idempotency_key)
    transfers_post(members.starting_legs, locked)
    source = locked[members.wallets[from_user_id].pk]
    destination = locked[members.wallets[to_user_id].pk]
    leg = Leg(source, destination, amount, Transfer.Code.TIP, idempotency_key, "Tip")
    return transfers_post([leg], locked)[0]


def next_daily_at(now: dt.datetime) -> dt.datetime:
    """The start of the next UTC day after `now`."""
    day = now.astimezone(dt.UTC).date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def daily_claim(*, guild_id: int, user_id: int, now: dt.datetime | None = None) -> Transfer:
    """Claim the guild's daily bonus, once per UTC day (key `daily:<guild>:<user>:<date>`).
    A second claim the same day is refused with the time of the next one."""
    validate_snowflake(guild_id, what="guild_id")
    validate_snowflake(user_id, what="user_id")
    now = now or timezone.now()
    key = f"daily:{guild_id}:{user_id}:{now.astimezone(dt.UTC).date().isoformat()}"
    return _daily_bonus_pay(guild_id=guild_id, user_id=user_id, now=now, idempotency_key=key)


def _already_claimed(_: Transfer, call: Call) -> bool:
    next_at = next_daily_at(call["now"])
    raise AlreadyClaimed(
        MSG_DAILY_ALREADY_CLAIMED.format(next_at=f"<t:{int(next_at.timestamp())}:R>"),
        details={"next_at": next_at.isoformat()},
    )


@use_case(lookup=transfer_by_key, matches=_already_claimed)
def _daily_bonus_pay(
    *, guild_id: int, user_id: int, now: dt.datetime, idempotency_key: str
) -> Transfer:
    """The daily bonus under its day's key; a replay is the refusal of a second claim."""
    gs = guild_settings_get_or_create(guild_id=guild_id)
    if gs.daily_bonus <= 0:
        raise DomainError(MSG_DAILY_DISABLED, code="daily_disabled")
    members = members_prepare(guild_id=guild_id, user_ids=[user_id])
    locked = accounts_lock([*members.account_ids, members.treasury.pk])
    stop_if_replayed(transfer_by_key, idempotency_key)
    transfers_post(members.starting_legs, locked)
    treasury, wallet = locked[members.treasury.pk], locked[members.wallets[user_id].pk]
    leg = Leg(
        treasury, wallet, gs.daily_bonus, Transfer.Code.DAILY_BONUS, idempotency_key, "Daily bonus"
    )
    return transfers_post([leg], locked)[0]
