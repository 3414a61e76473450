"""Ledger services (DOMAIN §3). Every entry point is one durable transaction that locks every
account it touches in one query ordered by primary key, checks balances on the locked rows and
posts through the ledger's one posting path (`points.ledger.post_many`). Every entry point is
idempotent by its key; the transaction, the retry and the replay rules are
`points.usecase.use_case`'s.

One module per concern; everything is re-exported here, so `from points.services import …`
keeps working."""

from ..ledger import BIGINT_MAX, Leg, accounts_lock, treasury_get_or_create
from .accounts import (
    Members,
    audit_record,
    guild_settings_get_or_create,
    members_prepare,
    transfer_by_key,
    transfers_post,
    wallet_get_or_create,
)
from .directory import member_forget, member_seen, members_seen
from .guild import MSG_ROLE_KIND, MSG_ROLE_PICK, guild_settings_update
from .transfers import daily_claim, next_daily_at, points_deduct, points_grant, points_tip

__all__ = [
    "BIGINT_MAX",
    "MSG_ROLE_KIND",
    "MSG_ROLE_PICK",
    "Leg",
    "Members",
    "accounts_lock",
    "audit_record",
    "daily_claim",
    "guild_settings_get_or_create",
    "guild_settings_update",
    "member_forget",
    "member_seen",
    "members_prepare",
    "members_seen",
    "next_daily_at",
    "points_deduct",
    "points_grant",
    "points_tip",
    "transfer_by_key",
    "transfers_post",
    "treasury_get_or_create",
    "wallet_get_or_create",
]
