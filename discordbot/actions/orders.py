"""Limit orders from Discord (DOMAIN §4.7): `/order buy|sell|cancel` and `/orders`. What only
Discord knows — the market and outcome as typed, a limit in percent, "all" shares, an expiry
like "2h" — becomes the ids and integers `betting.services.order_place` takes."""

from __future__ import annotations

import re

from django.utils import timezone

from betting import selectors as betting_selectors
from betting import services as betting_services
from betting.models import Order
from betting.services.orders import MSG_ORDER_NOT_FOUND
from markets.errors import MarketStateError
from markets.validation import parse_duration
from points.errors import InvalidInput, NotFound

from .. import parsing
from .common import _ensure_open, market_in_guild

MSG_LIMIT_TEXT = (
    "“{value}” is not a limit price. Type a percentage strictly between 0 and 100, e.g. 40 or "
    "37.5 (up to 4 decimals)."
)
_PERCENT = re.compile(r"^\s*(\d{1,2}(?:\.\d{1,4})?)\s*%?\s*$")


def limit_ppm(value: object) -> int:
    """Parts per million from a percentage typed as "40", "40 %" or "37.5"."""
    match = _PERCENT.match(str(value or ""))
    ppm = round(float(match.group(1)) * 10_000) if match else 0
    if not 0 < ppm < 1_000_000:
        raise InvalidInput(MSG_LIMIT_TEXT.format(value=str(value)[:40]))
    return ppm


def order_place_for_interaction(
    *,
    guild_id: int,
    user_id: int,
    market: object,
    outcome: object,
    side: str,
    limit: object,
    idempotency_key: str,
    amount: int | None = None,
    shares: object = None,
    expires: object = None,
) -> Order:
    """Place a buy order of `amount` points or a sell order of `shares` ("all" or a number) on
    an open market of this guild, at `limit` percent, expiring after `expires` (e.g. "2h")."""
    summary = market_in_guild(guild_id=guild_id, market=market)
    position = parsing.outcome_ref(
        outcome, [o.label for o in summary.outcomes], market_id=summary.id
    )
    _ensure_open(summary)
    expires_at = None
    if expires not in (None, ""):
        expires_at = timezone.now() + parse_duration(expires)
    return betting_services.order_place(
        market_id=summary.id,
        user_id=user_id,
        outcome=position,
        side=side,
        limit_ppm=limit_ppm(limit),
        budget=amount if side == Order.Side.BUY else None,
        shares=parsing.shares(shares) if side == Order.Side.SELL else None,
        expires_at=expires_at,
        idempotency_key=idempotency_key,
    )


def order_cancel_for_interaction(*, guild_id: int, user_id: int, order_id: int) -> Order:
    """Cancel one of the member's waiting orders in this guild (another guild's is "not
    found")."""
    if not Order.objects.filter(pk=order_id, guild_id=guild_id).exists():
        raise NotFound(MSG_ORDER_NOT_FOUND.format(order_id=order_id))
    return betting_services.order_cancel(order_id=order_id, user_id=user_id)


def order_cancel_from_list(
    *, guild_id: int, user_id: int, order_id: int
) -> tuple[Order, bool, list[Order]]:
    """A Cancel button under `/orders`: cancel the member's order if it still waits. Returns
    the order, whether this click cancelled it (False: it had already filled, expired, been
    cancelled or released — a second click changes nothing) and the member's waiting orders
    afterwards. Another member's order or another guild's is refused as `order_cancel` does."""
    order = Order.objects.filter(pk=order_id, guild_id=guild_id).first()
    if order is None:
        raise NotFound(MSG_ORDER_NOT_FOUND.format(order_id=order_id))
    changed = False
    if order.user_id != user_id or order.status == Order.Status.RESTING:
        try:
            order = betting_services.order_cancel(order_id=order_id, user_id=user_id)
            changed = True
        except MarketStateError:  # it ended between the read above and the market's lock
            order = Order.objects.get(pk=order_id)
    return order, changed, orders_for_interaction(guild_id=guild_id, user_id=user_id)


def orders_for_interaction(*, guild_id: int, user_id: int, market: object = None) -> list[Order]:
    """The member's waiting orders, in one market of this guild or all of them (up to 26: a
    message shows 25 Cancel buttons and says when there are more)."""
    market_id = None
    if market not in (None, ""):
        market_id = market_in_guild(guild_id=guild_id, market=market).id
    return betting_selectors.orders_of_member(
        guild_id=guild_id, user_id=user_id, market_id=market_id, limit=26
    )
