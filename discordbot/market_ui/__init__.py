"""The market message and everything on it (STYLE §10).

The message is an embed plus buttons: one **Buy** per outcome (up to 10), then **Sell**, **My
position**, **Refresh**, **Chart** (a PNG of the price history, drawn by `charts.py`) and, on a
market-maker market, **Order** (a limit order's form, `orders.py`). Every
button and select is a `DynamicItem` whose `custom_id` carries the market (and outcome), so
buttons keep working after a restart and always re-read the market from the database; a click on
a market that is no longer open says so. Buy and Sell open small stateless modals (`pm:m:…`)
whose submissions `ModalRouter` dispatches.

The parts: `base` (ids, words, the `MarketButton` base), `card` (the message and Refresh),
`trading` (Buy, Sell and their forms), `quotes` (Confirm / Cancel of a quote, and taking back a
new market), `browse` (My position, Chart, list pages), `dispute` (the Dispute button and form),
`quick` (one-click amounts and the Undo of a pool stake, issue 26).
Every handler states how it answers with `discordbot.responders`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import (
    BUY_MODAL_ID,
    CONFIRM_ID,
    DISPUTE_MODAL_ID,
    MSG_CLOSED,
    MSG_DISPUTED,
    MSG_NO_SELL_POOL,
    MSG_NOT_YOUR_QUOTE,
    MSG_NOTHING_TO_SELL,
    MSG_PICK_SELL,
    MSG_QUOTE_CANCELLED,
    MSG_QUOTE_EXPIRED,
    MSG_WITHDRAWN,
    QUOTE_SECONDS,
    SELL_MODAL_ID,
    MarketButton,
    b36,
    closed_hint,
)
from .browse import (
    ChartButton,
    ChartRangeButton,
    ChartReply,
    ListPageButton,
    PositionButton,
    chart_png,
    chart_post,
    chart_show,
    market_list_reply,
)
from .card import RefreshButton, copy_recorder, market_reply, market_view
from .dispute import DisputeButton, dispute_submit
from .orders import ORDER_MODAL_ID, OrderButton, OrderCancelButton, order_submit
from .quick import (
    QuickButton,
    QuickSelect,
    UndoButton,
    amounts_lookup_set,
    quick_click,
)
from .quotes import (
    QuoteCancelButton,
    QuoteConfirmButton,
    RequoteButton,
    RequoteSellButton,
    WithdrawButton,
    quote_or_trade,
    quote_reply,
    withdraw_view,
)
from .trading import BuyButton, SellButton, SellSelect, buy_submit, sell_submit

if TYPE_CHECKING:
    from ..bot import PredictionBot

DYNAMIC_ITEMS = (
    BuyButton,
    SellButton,
    PositionButton,
    RefreshButton,
    ChartButton,
    ChartRangeButton,
    DisputeButton,
    SellSelect,
    ListPageButton,
    QuoteConfirmButton,
    QuoteCancelButton,
    RequoteButton,
    RequoteSellButton,
    WithdrawButton,
    QuickButton,
    QuickSelect,
    UndoButton,
    OrderCancelButton,
    OrderButton,
)


def register(bot: PredictionBot) -> None:
    bot.add_dynamic_items(*DYNAMIC_ITEMS)
    amounts_lookup_set(
        lambda guild_id: getattr(bot.policies.cached(guild_id), "quick_amounts", ()) or ()
    )
    bot.modals.add(DISPUTE_MODAL_ID, dispute_submit)
    bot.modals.add(BUY_MODAL_ID, buy_submit)
    bot.modals.add(SELL_MODAL_ID, sell_submit)
    bot.modals.add(ORDER_MODAL_ID, order_submit)


__all__ = [
    "CONFIRM_ID",
    "DYNAMIC_ITEMS",
    "MSG_CLOSED",
    "MSG_DISPUTED",
    "MSG_NOTHING_TO_SELL",
    "MSG_NOT_YOUR_QUOTE",
    "MSG_NO_SELL_POOL",
    "MSG_PICK_SELL",
    "MSG_QUOTE_CANCELLED",
    "MSG_QUOTE_EXPIRED",
    "MSG_WITHDRAWN",
    "QUOTE_SECONDS",
    "BuyButton",
    "ChartButton",
    "ChartRangeButton",
    "ChartReply",
    "DisputeButton",
    "ListPageButton",
    "MarketButton",
    "OrderButton",
    "OrderCancelButton",
    "PositionButton",
    "QuickButton",
    "QuickSelect",
    "QuoteCancelButton",
    "QuoteConfirmButton",
    "RefreshButton",
    "RequoteButton",
    "RequoteSellButton",
    "SellButton",
    "SellSelect",
    "UndoButton",
    "WithdrawButton",
    "b36",
    "chart_png",
    "chart_post",
    "chart_show",
    "closed_hint",
    "copy_recorder",
    "market_list_reply",
    "market_reply",
    "market_view",
    "quick_click",
    "quote_or_trade",
    "quote_reply",
    "register",
    "withdraw_view",
]
