"""Linking a guild to its DRIP realm, and its clearing account (`drip.services`)."""

from __future__ import annotations

import logging
import re

from points import ledger
from points.errors import (
    MAX_AMOUNT,
    InvalidInput,
    validate_key,
    validate_snowflake,
)
from points.models import Account, Transfer
from points.services import (
    audit_record,
)
from points.usecase import Call, stop_if_replayed, use_case

from .. import crypto
from ..models import DripLink, DripTransfer

logger = logging.getLogger(__name__)
Status, Direction = DripTransfer.Status, DripTransfer.Direction


REALM_ID_RE = re.compile(r"^[0-9a-fA-F]{24}$")
"""DRIP's OpenAPI pattern for `realmId` (docs/drip.md, "DRIP's API as documented")."""
POINT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MSG_REALM_ID = (
    "A DRIP realm id is 24 characters 0–9 and a–f (copy it from the DRIP dashboard header, "
    "where the realm — 'project' — is selected)."
)
MSG_POINT_ID = "A DRIP realm point (currency) id is 1–64 letters, digits, '-' or '_', or empty."
MSG_API_KEY = (
    "A DRIP API key is 8–500 characters without spaces (copy it from DRIP's Developer page)."
)
MSG_API_KEY_NEEDED = "Linking a realm for the first time needs its API key."
MSG_LIMIT_RANGE = f"A daily limit is a whole number of points from 0 (no limit) to {MAX_AMOUNT:,}."


# --- Accounts --------------------------------------------------------------------------------


def clearing_get_or_create(*, guild_id: int) -> Account:
    """The guild's `drip` clearing account, opened by the ledger on first use."""
    return ledger.issuer_get_or_create(guild_id=guild_id, kind=Account.Kind.DRIP)


# --- Linking a realm ------------------------------------------------------------------------


def _link_by_key(key: str) -> DripLink | None:
    from points.models import AuditEvent

    event = AuditEvent.objects.filter(idempotency_key=key, action="drip_link").first()
    return DripLink.objects.filter(guild_id=event.target_id).first() if event else None


def _same_link(link: DripLink, call: Call) -> bool:
    return link.guild_id == call["guild_id"]


@use_case(lookup=_link_by_key, matches=_same_link)
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
    if realm_point_id and not POINT_ID_RE.fullmatch(realm_point_id):
        raise InvalidInput(MSG_POINT_ID)
    for value in (deposit_limit_per_day, withdraw_limit_per_day):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_AMOUNT
        ):
            raise InvalidInput(MSG_LIMIT_RANGE)
    link = DripLink.objects.select_for_update().filter(guild_id=guild_id).first()
    stop_if_replayed(_link_by_key, idempotency_key)
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


@use_case()
def drip_key_rotate_all() -> int:
    """Re-encrypt every stored API key with the first `PM_ENCRYPTION_KEY` key."""
    links = list(DripLink.objects.select_for_update().order_by("guild_id"))
    for link in links:
        link.api_key_encrypted = crypto.secret_rotate(link.api_key_encrypted)
        link.save(update_fields=["api_key_encrypted", "updated_at"])
    return len(links)
