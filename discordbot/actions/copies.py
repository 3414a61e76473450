"""The copies of a market's message posted in channels, and which are kept up to date."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from markets import services as market_services
from markets.models import Market
from points.errors import (
    validate_snowflake,
)

from ..models import MarketMessage

# --- Copies of market messages ---------------------------------------------------------------

MARKET_COPIES_REFRESHED = 20
"""The newest copies of a market that are kept up to date (each costs one edit per refresh)."""


def market_copy_claim(*, market_id: int, channel_id: int) -> bool:
    """Claim `channel_id` for a copy about to be posted. False if the market already has a
    copy (or a claim) there: then nothing is posted a second time."""
    validate_snowflake(channel_id, what="channel_id")
    with transaction.atomic():
        if MarketMessage.objects.filter(market_id=market_id, channel_id=channel_id).exists():
            return False
        MarketMessage.objects.create(market_id=market_id, channel_id=channel_id)
    return True


def market_copy_record(*, market_id: int, channel_id: int, message_id: int) -> None:
    """Remember a posted copy (filling the channel's claim if there is one). The first copy
    is also the market's own message (where summaries go when no channel is set)."""
    validate_snowflake(channel_id, what="channel_id")
    validate_snowflake(message_id, what="message_id")
    with transaction.atomic():
        claimed = MarketMessage.objects.filter(
            market_id=market_id, channel_id=channel_id, message_id=None
        ).update(message_id=message_id)
        if not claimed:
            MarketMessage.objects.get_or_create(
                channel_id=channel_id, message_id=message_id, defaults={"market_id": market_id}
            )
    if not Market.objects.filter(pk=market_id).exclude(message_id=None).exists():
        market_services.market_message_set(
            market_id=market_id, channel_id=channel_id, message_id=message_id
        )


def market_copy_in_channel(*, market_id: int, channel_id: int) -> str | None:
    """ "posted" if the market has a copy in the channel, "claimed" if one is being posted there
    (claimed less than `CLAIM_SECONDS` ago), None otherwise."""
    rows = MarketMessage.objects.filter(market_id=market_id, channel_id=channel_id).values_list(
        "message_id", "created_at"
    )
    now = timezone.now()
    state = None
    for message_id, created_at in rows:
        if message_id is not None:
            return "posted"
        if (now - created_at).total_seconds() < CLAIM_SECONDS:
            state = "claimed"
    return state


CLAIM_SECONDS = 60.0
"""How long a claim holds a channel: a reply that never arrived frees it after this."""


def market_copies(*, market_id: int) -> list[tuple[int, int, int]]:
    """(row id, channel id, message id) of the market's active copies, newest first."""
    rows = (
        MarketMessage.objects.filter(market_id=market_id, active=True)
        .exclude(message_id=None)
        .order_by("-id")
        .values_list("id", "channel_id", "message_id")[:MARKET_COPIES_REFRESHED]
    )
    return [(pk, channel_id, message_id) for pk, channel_id, message_id in rows if message_id]


def market_copy_retire(*, copy_id: int, detail: str) -> None:
    """Stop refreshing a copy Discord says is gone or out of reach."""
    MarketMessage.objects.filter(pk=copy_id).update(active=False, detail=detail[:200])
