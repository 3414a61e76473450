"""The async half of the bridge: the steps that talk to DRIP between durable services
(docs/drip.md). `db` runs a sync service or selector off the event loop (the bot's `bot.db`,
or `database_sync_to_async` in the worker)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from . import metrics, selectors, services
from .client import DripClient, DripError, DripInDoubt, breaker_state
from .errors import (
    MSG_APPLIED_NOT_RECORDED,
    MSG_IN_DOUBT_DEPOSIT,
    MSG_UNAVAILABLE,
    DripRefused,
    refusal_for,
    when_text,
)
from .models import DripTransfer

logger = logging.getLogger(__name__)

Db = Callable[..., Awaitable[Any]]
Status = DripTransfer.Status


@dataclass(frozen=True)
class DepositResult:
    transfer: DripTransfer
    wallet: int
    drip_balance: int | None


def breaker_refusal(client: DripClient) -> DripRefused | None:
    """A refusal at once (no database, no network) while the breaker is open."""
    state = breaker_state(client.breaker)
    if state["state"] == "open":
        metrics.breaker_refused()
        return DripRefused(
            MSG_UNAVAILABLE.format(when=when_text(state["retry_in_seconds"])),
            code="drip_unavailable",
            retry_after=state["retry_in_seconds"],
        )
    return None


async def deposit(
    *, db: Db, client: DripClient, guild_id: int, user_id: int, amount: int, idempotency_key: str
) -> DepositResult:
    """DRIP → wallet. DRIP is debited first; only its confirmation credits the wallet. The row
    is recorded as `sending` before the request goes out, so a crash in between leaves a row
    the worker flags as in doubt, never a silent loss or a second debit."""
    refused = breaker_refusal(client)
    if refused is not None:
        raise refused
    creds = await db(selectors.drip_link_credentials, guild_id=guild_id)
    row: DripTransfer = await db(
        services.drip_deposit_begin,
        guild_id=guild_id,
        user_id=user_id,
        amount=amount,
        idempotency_key=idempotency_key,
    )
    if not getattr(row, "just_created", False):  # a repeated interaction: never sent twice
        return await _result(db, row)
    try:
        credential = await client.balance_update(
            realm_id=creds.realm_id,
            api_key=creds.api_key,
            user_id=user_id,
            amount=-amount,
            realm_point_id=creds.realm_point_id,
        )
    except DripInDoubt as exc:
        await db(services.drip_transfers_in_doubt, transfer_ids=[row.pk], reason=exc.message)
        raise DripRefused(MSG_IN_DOUBT_DEPOSIT.format(id=row.pk), code="drip_in_doubt") from exc
    except DripError as exc:
        await db(
            services.drip_transfers_fail,
            transfer_ids=[row.pk],
            error_code=exc.code,
            message=exc.message,
            request_id=exc.request_id,
        )
        if exc.code == "auth":
            await db(services.drip_link_error_set, guild_id=guild_id, message=exc.message)
        raise refusal_for(exc) from exc
    try:
        row = await db(
            services.drip_deposit_settle, transfer_id=row.pk, balance_after=credential.balance
        )
    except Exception as exc:
        # DRIP took the points but recording it failed (database down?): the row stays
        # `sending`, the worker flags it in doubt, a moderator confirms it. Say so, instead of
        # the generic "nothing was changed".
        logger.exception("DRIP deposit #%s applied but not recorded", row.pk)
        raise DripRefused(
            MSG_APPLIED_NOT_RECORDED.format(id=row.pk), code="drip_unrecorded"
        ) from exc
    return await _result(db, row, drip_balance=credential.balance)


async def _result(db: Db, row: DripTransfer, drip_balance: int | None = None) -> DepositResult:
    summary = await db(selectors.drip_member_summary, guild_id=row.guild_id, user_id=row.user_id)
    return DepositResult(row, summary.wallet, drip_balance or row.drip_balance_after)


async def withdraw(
    *, db: Db, guild_id: int, user_id: int, amount: int, idempotency_key: str
) -> DripTransfer:
    """Wallet → DRIP: debited here at once, sent by the worker."""
    return await db(
        services.drip_withdraw_request,
        guild_id=guild_id,
        user_id=user_id,
        amount=amount,
        idempotency_key=idempotency_key,
    )


async def drip_balance(*, db: Db, client: DripClient, guild_id: int, user_id: int) -> int | None:
    """The member's DRIP balance (None when DRIP does not know them)."""
    refused = breaker_refusal(client)
    if refused is not None:
        raise refused
    creds = await db(selectors.drip_link_credentials, guild_id=guild_id)
    try:
        found = await client.balances(
            realm_id=creds.realm_id,
            api_key=creds.api_key,
            user_ids=[user_id],
            realm_point_id=creds.realm_point_id,
        )
    except DripError as exc:  # a read: even a timeout changed nothing
        raise refusal_for(exc) from exc
    return found.get(user_id)
