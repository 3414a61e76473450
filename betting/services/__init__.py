"""Trading (DOMAIN §4.3–§4.6, §5). `trades_apply` is the one implementation of the trading
rules (`betting.services.trades`); `bet_place` and `shares_sell` are one-request calls of it.
The batch inside its transaction is `betting.services.batch`, the requests and their
idempotency rules `betting.services.requests`. Everything is re-exported here, so
`from betting.services import …` keeps working."""

from .orders import order_cancel, order_place, orders_expire
from .requests import MAX_BATCH, MSG_SOLD_REMAINDER, MSG_TRADE_KIND, TradeRequest, trade_by_key
from .trades import bet_place, sale_left_in_pool, shares_sell, trades_apply
from .undo import UNDO_SECONDS, StakeUndone, stake_undo

__all__ = [
    "MAX_BATCH",
    "MSG_SOLD_REMAINDER",
    "MSG_TRADE_KIND",
    "UNDO_SECONDS",
    "StakeUndone",
    "TradeRequest",
    "bet_place",
    "order_cancel",
    "order_place",
    "orders_expire",
    "sale_left_in_pool",
    "shares_sell",
    "stake_undo",
    "trade_by_key",
    "trades_apply",
]
