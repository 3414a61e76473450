"""DRIP bridge services (docs/drip.md): every write of the bridge, each one durable transaction.

Ledger shape (DOMAIN §3): each linked guild has one `drip` clearing account, an issuer like the
treasury (it may go negative). A confirmed deposit moves points clearing → wallet
(`drip_deposit`); a withdrawal moves them wallet → clearing at once (`drip_withdraw`) and, if DRIP
refuses it or a moderator reverses it, back with a `correction`. So `-clearing.balance` is always
confirmed deposits − withdrawals not reversed, and L1–L3 hold unchanged.

Lock order (STYLE §5): the `DripTransfer` rows first (ordered by id), then the accounts in one
query ordered by primary key (`points.services.accounts_lock`).
"""

from .batches import (
    drip_batch_claim,
    drip_batch_prepare,
    drip_batch_release,
    drip_batch_settle,
    drip_member_notified,
    drip_transfers_note,
)
from .links import (
    MSG_API_KEY,
    MSG_API_KEY_NEEDED,
    MSG_LIMIT_RANGE,
    MSG_POINT_ID,
    MSG_REALM_ID,
    POINT_ID_RE,
    REALM_ID_RE,
    clearing_get_or_create,
    drip_key_rotate_all,
    drip_link_error_set,
    drip_link_set,
)
from .outcomes import (
    drip_deposit_settle,
    drip_transfer_resolve,
    drip_transfers_fail,
    drip_transfers_in_doubt,
    drip_transfers_stale_flag,
)
from .requests import (
    AUTO_CODES,
    drip_auto_withdraw_queue,
    drip_deposit_begin,
    drip_withdraw_request,
)

__all__ = [
    "AUTO_CODES",
    "MSG_API_KEY",
    "MSG_API_KEY_NEEDED",
    "MSG_LIMIT_RANGE",
    "MSG_POINT_ID",
    "MSG_REALM_ID",
    "POINT_ID_RE",
    "REALM_ID_RE",
    "clearing_get_or_create",
    "drip_auto_withdraw_queue",
    "drip_batch_claim",
    "drip_batch_prepare",
    "drip_batch_release",
    "drip_batch_settle",
    "drip_deposit_begin",
    "drip_deposit_settle",
    "drip_key_rotate_all",
    "drip_link_error_set",
    "drip_link_set",
    "drip_member_notified",
    "drip_transfer_resolve",
    "drip_transfers_fail",
    "drip_transfers_in_doubt",
    "drip_transfers_note",
    "drip_transfers_stale_flag",
    "drip_withdraw_request",
]
