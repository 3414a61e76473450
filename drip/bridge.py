"""The async half of the bridge: the steps that talk to DRIP between durable services
(docs/drip.md). `db` runs a sync service or selector off the event loop (the bot's `bot.db`,
or `database_sync_to_async` in the worker)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from . import crypto, metrics, selectors, services
from .client import (
    Credential,
    DripClient,
    DripError,
    DripInDoubt,
    breaker_state,
)
from .errors import (
    MSG_APPLIED_NOT_RECORDED,
    MSG_INSUFFICIENT,
    MSG_NOT_MEMBER,
    MSG_NOT_MEMBER_WITHDRAW,
    MSG_UNAVAILABLE,
    DripRefused,
    in_doubt_text,
    refusal_for,
    when_text,
)
from .models import DripTransfer
from .selectors import LinkCredentials

logger = logging.getLogger(__name__)

Db = Callable[..., Awaitable[Any]]
Status = DripTransfer.Status

MSG_GHOST_NOTE = (
    "DRIP applied this to a credential no realm member has connected yet (a ghost credential, "
    "`linked: false`); it moves to the member's account when they connect this Discord id."
)


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


async def credentials(db: Db, guild_id: int) -> LinkCredentials:
    """The guild's link; a key that cannot be decrypted is shown to moderators on the link
    (`last_error`) and refused to the member in member words."""
    try:
        return await db(selectors.drip_link_credentials, guild_id=guild_id)
    except crypto.EncryptionUnavailable as exc:
        host = str(exc.details.get("host") or exc.message)
        await db(services.drip_link_error_set, guild_id=guild_id, message=host)
        raise DripRefused(crypto.MSG_KEY_UNAVAILABLE, code="drip_key_unavailable") from exc


async def member_balance(
    db: Db, client: DripClient, creds: LinkCredentials, user_id: int
) -> int | None:
    """The member's DRIP balance, or None when they are not a linked member of the realm. A
    read: DRIP's failures become refusals that moved nothing (a refused key is also written
    on the link for moderators)."""
    try:
        found = await client.members(
            realm_id=creds.realm_id,
            api_key=creds.api_key,
            user_ids=[user_id],
            realm_point_id=creds.realm_point_id,
        )
    except DripError as exc:
        if exc.code == "auth":
            await db(
                services.drip_link_error_set,
                guild_id=creds.guild_id,
                message=f"DRIP refused the API key or realm (HTTP {exc.status}): {exc.message}",
            )
        raise refusal_for(exc) from exc
    member = found.get(user_id)
    return None if member is None else (member.balance or 0)


async def deposit(
    *, db: Db, client: DripClient, guild_id: int, user_id: int, amount: int, idempotency_key: str
) -> DepositResult:
    """DRIP → wallet. Membership first (a search: a read); then DRIP is debited, and only its
    confirmation credits the wallet. The row is recorded as `sending` before the write goes
    out, so a crash in between leaves a row the worker flags as in doubt, never a silent loss
    or a second debit. Any answer that does not prove a refusal leaves it in doubt."""
    refused = breaker_refusal(client)
    if refused is not None:
        raise refused
    creds = await credentials(db, guild_id)
    replay = await db(selectors.drip_transfer_by_key, idempotency_key=idempotency_key)
    if replay is not None:  # a repeated interaction: never sent twice, not even checked again
        return await _result(db, replay)
    before = await member_balance(db, client, creds, user_id)
    if before is None:
        raise DripRefused(MSG_NOT_MEMBER, code="drip_not_member")
    if before < amount:
        raise DripRefused(
            MSG_INSUFFICIENT.format(balance=f"{before:,}", needed=f"{amount:,}"),
            code="drip_insufficient",
        )
    row: DripTransfer = await db(
        services.drip_deposit_begin,
        guild_id=guild_id,
        user_id=user_id,
        amount=amount,
        idempotency_key=idempotency_key,
        drip_balance_before=before,
    )
    if not row.just_created:  # a twin won the race: never sent twice
        return await _result(db, row)
    try:
        credential: Credential = await client.balance_update(
            realm_id=creds.realm_id,
            api_key=creds.api_key,
            user_id=user_id,
            amount=-amount,
            initiator_id=row.initiator_id,
            realm_point_id=creds.realm_point_id,
        )
    except DripInDoubt as exc:
        await db(services.drip_transfers_in_doubt, transfer_ids=[row.pk], reason=exc.message)
        raise DripRefused(in_doubt_text(exc, row.pk), code="drip_in_doubt") from exc
    except DripError as exc:
        await db(
            services.drip_transfers_fail,
            transfer_ids=[row.pk],
            error_code=exc.code,
            message=exc.message,
            request_id=exc.request_id,
        )
        if exc.code == "auth":
            await db(
                services.drip_link_error_set,
                guild_id=guild_id,
                message=f"DRIP refused the API key or realm (HTTP {exc.status}): {exc.message}",
            )
        raise refusal_for(exc) from exc
    try:
        row = await db(
            services.drip_deposit_settle,
            transfer_id=row.pk,
            balance_after=credential.balance,
            note="" if credential.linked else MSG_GHOST_NOTE,
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
    *,
    db: Db,
    guild_id: int,
    user_id: int,
    amount: int,
    idempotency_key: str,
    client: DripClient | None = None,
) -> DripTransfer:
    """Wallet → DRIP: membership first (with `client`: a withdrawal to someone DRIP would only
    hold on a ghost credential is refused up front), then debited here at once and sent by
    the worker."""
    if client is not None:
        replay = await db(selectors.drip_transfer_by_key, idempotency_key=idempotency_key)
        if replay is None:
            refused = breaker_refusal(client)
            if refused is not None:
                raise refused
            creds = await credentials(db, guild_id)
            if await member_balance(db, client, creds, user_id) is None:
                raise DripRefused(MSG_NOT_MEMBER_WITHDRAW, code="drip_not_member")
    return await db(
        services.drip_withdraw_request,
        guild_id=guild_id,
        user_id=user_id,
        amount=amount,
        idempotency_key=idempotency_key,
    )


async def drip_balance(*, db: Db, client: DripClient, guild_id: int, user_id: int) -> int | None:
    """The member's DRIP balance (None when they are not a member of the realm)."""
    refused = breaker_refusal(client)
    if refused is not None:
        raise refused
    creds = await credentials(db, guild_id)
    return await member_balance(db, client, creds, user_id)
