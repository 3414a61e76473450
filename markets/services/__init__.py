"""Market use cases (DOMAIN §4–§7), one module per part of a market's life.

Every entry point is a `points.usecase.use_case`: one durable transaction that locks the market
row first, then the accounts it touches in primary-key order (one query), recomputes on the
locked state, writes transfers and a `MarketEvent`, and is idempotent by its request key.
Dashboard pushes and metrics are queued with `transaction.on_commit` and never make the write
fail. Trading (`bet_place`, `shares_sell`) is `betting.services`'."""

from .base import SHARE_SCALE, format_shares
from .creation import MAX_LIQUIDITY, market_create, market_message_set, market_withdraw
from .lifecycle import market_close, resolution_vote_cast
from .proposal import (
    market_dispute,
    market_proposal_confirm,
    market_proposal_undo,
    market_propose,
)
from .scheduler import TickReport, markets_tick
from .settlement import market_cancel, market_resolve

__all__ = [
    "MAX_LIQUIDITY",
    "SHARE_SCALE",
    "TickReport",
    "format_shares",
    "market_cancel",
    "market_close",
    "market_create",
    "market_dispute",
    "market_message_set",
    "market_proposal_confirm",
    "market_proposal_undo",
    "market_propose",
    "market_resolve",
    "market_withdraw",
    "markets_tick",
    "resolution_vote_cast",
]
