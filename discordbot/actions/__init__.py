"""What each Discord interaction does, as one synchronous function the cogs await through
`database_sync_to_async` (STYLE §1, §8). A use case serving an interaction is named
`<core service>_for_interaction`: it takes what Discord told us (guild, member, typed text,
interaction key) where the core service of the same stem takes validated ids, so the two are never
confused in an import.

Every function here keeps guilds apart (a market number typed in another server is "not found",
DOMAIN §2), applies the guild's permission rules to the member Discord described, and then calls
the one ledger or market service that does the work, with the interaction's idempotency key
(`discord:<interaction id>`). The money rules stay in `points` and `markets`; this module only
adds what only the Discord interface knows: who is asking and what they typed.
"""

from ..results import (
    ConfirmResult,
    DailyClaim,
    DisputeResult,
    Quote,
    TradeAsk,
    TradeResult,
    UndoResult,
    VoteResult,
)
from .common import (
    market_in_guild,
    percent_text,
    points_text,
    policy_get,
    shares_text,
)
from .copies import (
    CLAIM_SECONDS,
    MARKET_COPIES_REFRESHED,
    market_copies,
    market_copy_claim,
    market_copy_in_channel,
    market_copy_record,
    market_copy_retire,
)
from .lifecycle import (
    market_cancel_for_interaction,
    market_close_for_interaction,
    market_create_for_interaction,
    market_dispute_for_interaction,
    market_dispute_precheck,
    market_proposal_confirm_for_interaction,
    market_proposal_undo_for_interaction,
    market_resolve_for_interaction,
    market_vote_for_interaction,
    market_withdraw_for_interaction,
    resolution_how_for_market,
)
from .members import (
    balance_ensure_for_interaction,
    daily_claim_for_interaction,
    notification_preference_set_for_interaction,
    points_tip_for_interaction,
)
from .notifications import (
    fills_dm_open,
    notification_cursor_advance,
    notification_cursor_start,
    notification_finish,
    notification_next_due,
    notification_postpone,
    notification_stale,
    notifications_due,
    notifications_enqueue,
)
from .settings import (
    guild_settings_update_for_interaction,
)
from .threads import (
    THREAD_CLAIM_SECONDS,
    market_thread_claim,
    market_thread_of,
    market_thread_record,
    market_thread_release,
)
from .trading import (
    MSG_PRICE_MOVED,
    guild_settings_or_defaults,
    price_moved,
    quote_buy_for_interaction,
    quote_buy_seen,
    quote_buy_seen_unchecked,
    quote_sell_for_interaction,
    quote_sell_seen,
    sell_seen,
    trade_result_for_interaction,
    trades_batch,
    trades_for_interactions,
)

__all__ = [
    "CLAIM_SECONDS",
    "MARKET_COPIES_REFRESHED",
    "MSG_PRICE_MOVED",
    "THREAD_CLAIM_SECONDS",
    "ConfirmResult",
    "DailyClaim",
    "DisputeResult",
    "Quote",
    "TradeAsk",
    "TradeResult",
    "UndoResult",
    "VoteResult",
    "balance_ensure_for_interaction",
    "daily_claim_for_interaction",
    "fills_dm_open",
    "guild_settings_or_defaults",
    "guild_settings_update_for_interaction",
    "market_cancel_for_interaction",
    "market_close_for_interaction",
    "market_copies",
    "market_copy_claim",
    "market_copy_in_channel",
    "market_copy_record",
    "market_copy_retire",
    "market_create_for_interaction",
    "market_dispute_for_interaction",
    "market_dispute_precheck",
    "market_in_guild",
    "market_proposal_confirm_for_interaction",
    "market_proposal_undo_for_interaction",
    "market_resolve_for_interaction",
    "market_thread_claim",
    "market_thread_of",
    "market_thread_record",
    "market_thread_release",
    "market_vote_for_interaction",
    "market_withdraw_for_interaction",
    "notification_cursor_advance",
    "notification_cursor_start",
    "notification_finish",
    "notification_next_due",
    "notification_postpone",
    "notification_preference_set_for_interaction",
    "notification_stale",
    "notifications_due",
    "notifications_enqueue",
    "percent_text",
    "points_text",
    "points_tip_for_interaction",
    "policy_get",
    "price_moved",
    "quote_buy_for_interaction",
    "quote_buy_seen",
    "quote_buy_seen_unchecked",
    "quote_sell_for_interaction",
    "quote_sell_seen",
    "resolution_how_for_market",
    "sell_seen",
    "shares_text",
    "trade_result_for_interaction",
    "trades_batch",
    "trades_for_interactions",
]
