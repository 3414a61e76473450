"""Trading (DOMAIN §4.3–§4.6, §5): buying shares or staking on an outcome, and selling shares
back to the market maker.

There is one implementation of the trading rules: `trades_apply`, which applies a list of trade
requests on one market in one durable transaction with exactly the results that applying them one
by one would give (`betting.services.batch`, deciding with `betting.rules`). `bet_place` and
`shares_sell` are one-request calls of it (the web, the admin and scripts use them); the Discord
bot batches the requests that arrive for a market while the previous batch commits
(`discordbot.batching`)."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import IntegrityError

from core.errors import DomainError
from markets.models import MarketEvent
from points.db import integrity_constraint
from points.errors import InsufficientPoints
from points.usecase import IDEMPOTENCY_CONSTRAINTS, Call, batch_use_case

from ..models import Trade
from .batch import Batch
from .requests import (
    TradeRequest,
    conflict,
    requested_shares_of,
    same_request,
    trade_by_key,
)


def trades_apply(*, market_id: int, requests: Sequence[TradeRequest]) -> list[Trade | DomainError]:
    """Apply `requests` on market `market_id` in order, in one durable transaction, and return,
    at each request's position, its `Trade` or the `DomainError` that refused it. A refused
    request leaves no trace and does not stop the others; a replayed key returns the first
    result (also within the batch), a key reused with other content `IdempotencyConflict`.

    Locks the market row, then the members' wallets, the escrow and the treasury (when a fee is
    charged or a wallet is new) in one query ordered by primary key (DOMAIN §3). Emits one
    `trade` event per trade, in request order, published after commit.

    The transaction, the retry and "know before you say" are `points.usecase.batch_use_case`'s.
    If the batch hits an integrity error (a key raced in by a trade on another market, say), its
    requests are applied one by one so one request cannot sink the others."""
    requests = list(requests)
    if not requests:
        return []
    return _trades_apply(market_id=market_id, requests=requests)


def _first_key(call: Call) -> str:
    key: str = call["requests"][0].idempotency_key
    return key


def _one_by_one(exc: IntegrityError, call: Call) -> list[Trade | DomainError]:
    market_id: int = call["market_id"]
    requests: list[TradeRequest] = call["requests"]
    if len(requests) > 1:
        return [_trades_apply(market_id=market_id, requests=[r])[0] for r in requests]
    return [_integrity_answer(exc, market_id, requests[0])]


@batch_use_case(lookup=trade_by_key, first_key=_first_key, on_integrity_error=_one_by_one)
def _trades_apply(*, market_id: int, requests: list[TradeRequest]) -> list[Trade | DomainError]:
    return Batch(market_id, requests).run()


def _integrity_answer(
    exc: IntegrityError, market_id: int, request: TradeRequest
) -> Trade | DomainError:
    """A one-request batch hit a unique key: answer as a replay of the trade that holds it, as
    a conflict when another kind of request holds it (a vote's key, say), or re-raise."""
    constraint = integrity_constraint(exc)
    if constraint in IDEMPOTENCY_CONSTRAINTS:
        existing = trade_by_key(request.idempotency_key)
        if existing is None:
            return conflict(request)
        requested = requested_shares_of(existing) if existing.kind == Trade.Kind.SELL else None
        same = existing.market_id == market_id and same_request(existing, requested, request)
        return existing if same else conflict(request)
    if constraint == "account_balance_nonnegative":
        return InsufficientPoints(
            "You don't have enough points for that.", details={"constraint": constraint}
        )
    raise exc


# --- One-request services -------------------------------------------------------------------


def _one(market_id: int, request: TradeRequest) -> Trade:
    (result,) = trades_apply(market_id=market_id, requests=[request])
    if isinstance(result, DomainError):
        raise result
    return result


def bet_place(
    *,
    market_id: int,
    user_id: int,
    outcome: int,
    amount: int,
    idempotency_key: str,
    min_shares: int | None = None,
) -> Trade:
    """Buy shares of `outcome` for `amount` points (amm, DOMAIN §4.3) or stake `amount` on it
    (pari-mutuel, §5). The quote is recomputed on the locked market; a result below `min_shares`
    is refused (§4.6). Refuses closed markets, unknown outcomes, stakes above `max_bet` or the
    wallet. Emits `trade`. A one-request `trades_apply`."""
    return _one(
        market_id,
        TradeRequest(
            kind="buy",
            user_id=user_id,
            outcome=outcome,
            idempotency_key=idempotency_key,
            amount=amount,
            min_shares=min_shares,
        ),
    )


def shares_sell(
    *,
    market_id: int,
    user_id: int,
    outcome: int,
    shares: int | None = None,
    idempotency_key: str,
    min_points: int | None = None,
) -> Trade:
    """Sell exactly `shares` micro-shares (None = the whole position) of `outcome` back to the
    market maker (DOMAIN §4.4): the member receives the largest whole number of points whose
    cost fits and the fraction of a point beyond it stays in the pool. Refuses a sale worth 0
    points, except "all" of a position worth less than a point (closed as a 0-point sale), and
    less than `min_points` after the fee (§4.6). Emits `trade`. A one-request `trades_apply`."""
    return _one(
        market_id,
        TradeRequest(
            kind="sell",
            user_id=user_id,
            outcome=outcome,
            idempotency_key=idempotency_key,
            shares=shares,
            min_points=min_points,
        ),
    )


def sale_left_in_pool(trade: Trade) -> int:
    """Micro-shares of a sale beyond what its points cost (the last fraction of a point, kept by
    the market, DOMAIN §4.4); 0 for buys and stakes."""
    if trade.kind != Trade.Kind.SELL:
        return 0
    if hasattr(trade, "left_in_pool"):  # set on the trades a batch just wrote
        return trade.left_in_pool
    event = MarketEvent.objects.filter(request_key=trade.idempotency_key).first()
    return 0 if event is None else int(event.payload.get("left_in_pool", 0))
