"""A member's own things: balance, daily bonus, tips, notification preference."""

from __future__ import annotations

from django.utils import timezone

from points import selectors as points_selectors
from points import services as points_services
from points.errors import (
    validate_snowflake,
)
from points.models import Transfer
from points.services import wallet_get_or_create

from ..models import MemberPreference
from ..results import DailyClaim

# --- Members ---------------------------------------------------------------------------------


def balance_ensure_for_interaction(*, guild_id: int, user_id: int) -> int:
    """The member's balance; a first-time member receives the starting balance (DOMAIN §2)."""
    return wallet_get_or_create(guild_id=guild_id, user_id=user_id).balance


def daily_claim_for_interaction(*, guild_id: int, user_id: int) -> DailyClaim:
    """Claim the daily bonus; its key is `daily:<guild>:<user>:<date>` (DOMAIN §3), stronger than
    the interaction's, so two claims the same day from two interactions still pay once."""
    now = timezone.now()
    transfer = points_services.daily_claim(guild_id=guild_id, user_id=user_id, now=now)
    balance = points_selectors.balance_get(guild_id=guild_id, user_id=user_id) or 0
    return DailyClaim(transfer.amount, balance, points_services.next_daily_at(now))


def points_tip_for_interaction(
    *, guild_id: int, from_user_id: int, to_user_id: int, amount: int, idempotency_key: str
) -> Transfer:
    return points_services.points_tip(
        guild_id=guild_id,
        from_user_id=from_user_id,
        to_user_id=to_user_id,
        amount=amount,
        idempotency_key=idempotency_key,
    )


def notification_preference_set_for_interaction(
    *, guild_id: int, user_id: int, enabled: bool
) -> bool:
    """Turn the member's notification DMs on or off in this guild (idempotent)."""
    validate_snowflake(guild_id, what="guild_id")
    validate_snowflake(user_id, what="user_id")
    MemberPreference.objects.update_or_create(
        guild_id=guild_id, user_id=user_id, defaults={"dm_notifications": bool(enabled)}
    )
    return bool(enabled)
