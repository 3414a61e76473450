"""Accounts for the use cases (run inside the caller's transaction): guild settings, the
members' wallets, posting through `points.ledger`, the audit record and the key lookup."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from .. import ledger
from ..db import integrity_constraint, retry_transient
from ..errors import validate_snowflake
from ..ledger import Leg, accounts_lock, treasury_get_or_create, wallets_open
from ..models import Account, AuditEvent, GuildSettings, Transfer
from ..usecase import IDEMPOTENCY_CONSTRAINTS


def guild_settings_get_or_create(*, guild_id: int) -> GuildSettings:
    """The guild's settings row, created from `PM_GUILD_DEFAULTS` on first use (DOMAIN §2)."""
    validate_snowflake(guild_id, what="guild_id")
    found = GuildSettings.objects.filter(guild_id=guild_id).first()
    if found is not None:
        return found
    row, _ = GuildSettings.objects.get_or_create(
        guild_id=guild_id, defaults=dict(settings.PM_GUILD_DEFAULTS)
    )
    return row


class Members:
    """Accounts prepared for a use case: the members' wallets, the legs that give a starting
    balance to the wallets this transaction opened, and the treasury (fetched on first use)."""

    def __init__(
        self,
        guild_id: int,
        wallets: dict[int, Account],
        starting_legs: list[Leg],
        treasury: Account | None,
    ) -> None:
        self.guild_id = guild_id
        self.wallets = wallets
        self.starting_legs = starting_legs
        self._treasury = treasury

    @property
    def treasury(self) -> Account:
        if self._treasury is None:
            self._treasury = treasury_get_or_create(guild_id=self.guild_id)
        return self._treasury

    @property
    def account_ids(self) -> list[int]:
        ids = [w.pk for w in self.wallets.values()]
        if self.starting_legs:
            ids.append(self.treasury.pk)
        return ids


def members_prepare(*, guild_id: int, user_ids: Iterable[int]) -> Members:
    """Get or open the wallets of `user_ids` (`points.ledger.wallets_open`, one statement). A
    wallet opened here receives the guild's starting balance once (key `start:<guild>:<user>`)
    when the caller posts `starting_legs`. Caller is in a transaction and must lock
    `account_ids` before posting. One query when every wallet exists."""
    wanted = sorted(set(user_ids))
    for user_id in wanted:
        validate_snowflake(user_id, what="user_id")
    opened = wallets_open(guild_id, wanted)
    if opened.created:  # a guild's first member: its settings row, as every first use makes it
        guild_settings_get_or_create(guild_id=guild_id)
    wallets = {
        user_id: Account(pk=pk, guild_id=guild_id, kind=Account.Kind.WALLET, owner_id=user_id)
        for user_id, pk in opened.wallets.items()
    }
    return Members(guild_id, wallets, list(opened.starting_legs.values()), opened.treasury)


def transfers_post(legs: Sequence[Leg], locked: dict[int, Account]) -> list[Transfer]:
    """Post `legs` through the ledger (`points.ledger.post_many`): the caller holds row locks on
    every account in them (`accounts_lock`) and `locked` holds those rows. Checks the resulting
    balances, writes the transfers and moves the balances; the locked rows' `balance` is
    updated in memory so the caller sees the new balances."""
    return ledger.post_many(legs, locked)


def audit_record(
    *,
    action: str,
    target_type: str,
    target_id: object,
    guild_id: int | None,
    actor_id: int | None = None,
    actor_user_id: int | None = None,
    reason: str = "",
    idempotency_key: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """Write an append-only audit record. Caller is in the transaction that makes the change."""
    return AuditEvent.objects.create(
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        guild_id=guild_id,
        actor_discord_id=actor_id,
        actor_user_id=actor_user_id,
        reason=reason[:500],
        idempotency_key=idempotency_key,
        before=before or {},
        after=after or {},
    )


def transfer_by_key(key: str) -> Transfer | None:
    """The transfer a use case wrote under `key`, if any (its first result)."""
    return (
        Transfer.objects.select_related("source", "destination").filter(idempotency_key=key).first()
    )


@retry_transient()
def wallet_get_or_create(*, guild_id: int, user_id: int) -> Account:
    """The member's wallet; a new one receives the guild's `starting_balance` once."""
    validate_snowflake(guild_id, what="guild_id")
    validate_snowflake(user_id, what="user_id")
    wallet = Account.objects.filter(
        guild_id=guild_id, kind=Account.Kind.WALLET, owner_id=user_id
    ).first()
    if wallet is not None:
        return wallet
    try:
        with transaction.atomic(durable=True):
            members = members_prepare(guild_id=guild_id, user_ids=[user_id])
            locked = accounts_lock(members.account_ids)
            transfers_post(members.starting_legs, locked)
            return locked[members.wallets[user_id].pk]
    except IntegrityError as exc:
        if integrity_constraint(exc) not in IDEMPOTENCY_CONSTRAINTS | {"one_wallet_per_member"}:
            raise
    return Account.objects.get(guild_id=guild_id, kind=Account.Kind.WALLET, owner_id=user_id)
