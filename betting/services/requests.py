"""Trade requests as `trades_apply` takes them, and the idempotency rules a request is answered
by (a replay returns the first result; a key reused with other content is a conflict)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from markets.errors import MSG_SHARES_INVALID, InvalidMarketInput
from markets.models import MarketEvent
from points.errors import (
    MSG_IDEMPOTENCY_CONFLICT,
    IdempotencyConflict,
    InvalidInput,
    validate_amount,
    validate_key,
    validate_snowflake,
)

from ..models import Trade

MAX_BATCH = 256
"""The most requests one `trades_apply` call should carry (the bot's queue takes at most this)."""

MSG_TRADE_KIND = "A trade request is “buy” or “sell”; got {kind!r}."
MSG_SOLD_REMAINDER = "the last fraction of a point stays in the market"


@dataclass(frozen=True)
class TradeRequest:
    """One member's trade on the market `trades_apply` is called for. "buy" on a pari-mutuel
    market is a stake (DOMAIN §5); `shares=None` on a sell means the whole position."""

    kind: Literal["buy", "sell"]
    user_id: int
    outcome: int
    idempotency_key: str
    amount: int | None = None
    shares: int | None = None
    min_shares: int | None = None
    min_points: int | None = None


def trade_by_key(key: str) -> Trade | None:
    """The trade a request wrote under `key`, if any (its first result)."""
    return Trade.objects.select_related("outcome").filter(idempotency_key=key).first()


def requested_shares_of(trade: Trade) -> int | None:
    """The micro-shares the request that made a sale asked for (None: all)."""
    event = MarketEvent.objects.filter(request_key=trade.idempotency_key).first()
    if event is None:
        return None
    requested: int | None = event.payload.get("requested_shares")
    return requested


def same_request(trade: Trade, requested_shares: int | None, request: TradeRequest) -> bool:
    """Whether the first result under a key was made by a request with this content: the same
    market-independent facts a member typed (outcome, amount or shares)."""
    if (trade.user_id, trade.outcome.position) != (request.user_id, request.outcome):
        return False
    if request.kind == "buy":
        return trade.kind != Trade.Kind.SELL and trade.amount == request.amount
    return trade.kind == Trade.Kind.SELL and requested_shares == request.shares


def conflict(request: TradeRequest) -> IdempotencyConflict:
    key = request.idempotency_key
    return IdempotencyConflict(MSG_IDEMPOTENCY_CONFLICT.format(key=key), details={"key": key})


def validate(request: TradeRequest) -> None:
    """The checks that need no database, in the order the one-request services always made them."""
    validate_key(request.idempotency_key)
    if request.kind not in ("buy", "sell"):
        raise InvalidInput(MSG_TRADE_KIND.format(kind=request.kind))
    validate_snowflake(request.user_id, what="user_id")
    if request.kind == "buy":
        validate_amount(request.amount, what="stake")
    elif request.shares is not None and (
        isinstance(request.shares, bool)
        or not isinstance(request.shares, int)
        or request.shares <= 0
    ):
        raise InvalidMarketInput(MSG_SHARES_INVALID)
