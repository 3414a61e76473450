"""Market refusals (STYLE §7). Every message says what was wrong and what is allowed; tests and
interfaces reuse these constants."""

from points.errors import DomainError, InvalidInput, NotFound

MSG_QUESTION = "The question must be 1–500 characters of text (no control characters)."
MSG_OUTCOME_COUNT = "A market needs 2 to 10 outcomes; you gave {count}."
MSG_OUTCOME_LABEL = "Each outcome must be 1–100 characters of text (outcome {position} is not)."
MSG_OUTCOME_DUPLICATE = "Outcomes must be different (ignoring case): “{label}” appears twice."
MSG_DURATION_FORMAT = (
    "“{value}” is not a duration. Use minutes and units like 90m, 2h, 1d2h30m, or the d,h,m "
    "form 1,2,30."
)
MSG_DURATION_RANGE = (
    "A market must stay open between 1 minute and 30 days (43,200 minutes); you asked for "
    "{minutes:,} minutes."
)
MSG_CLOSES_AT_PAST = "The closing time must be in the future."
MSG_CATEGORY = "The category must be at most 50 characters."
MSG_DESCRIPTION_TYPE = (
    "The description must be text: what the question means and what counts as each outcome, "
    "at most 1,000 characters."
)
MSG_DESCRIPTION_LENGTH = (
    "The description is {length:,} characters long; at most 1,000 are allowed. Shorten it, or "
    "leave it empty."
)
MSG_MECHANISM = "The mechanism must be “amm” (market maker) or “parimutuel” (pool)."
MSG_LIQUIDITY = "Liquidity must be a whole number of points from 1 to 1,000,000,000."
MSG_MARKET_NOT_FOUND = "Market #{market_id} does not exist in this server."
MSG_OUTCOME_NOT_FOUND = "Market #{market_id} has no outcome {outcome}; choose 1 to {count}."
MSG_NOT_OPEN = "Market #{market_id} is {status}; trading is only possible while it is open."
MSG_NOT_CLOSED_FOR_VOTE = (
    "Market #{market_id} is {status}; resolution votes are taken once trading has closed."
)
MSG_NOT_CLOSED_FOR_RESOLVE = (
    "Market #{market_id} is {status}; only a closed market can be resolved (close it first)."
)
MSG_ALREADY_SETTLED = "Market #{market_id} is already {status}; nothing was changed."
MSG_BET_ABOVE_MAX = "The most you can bet at once in this server is {max_bet:,} points."
MSG_BET_TOO_SMALL_AFTER_FEE = (
    "That stake is too small: after the {fee:,}-point fee nothing is left."
)
MSG_SELL_PARIMUTUEL = "Pool markets don't support selling: stakes stay in until the market settles."
MSG_NO_SHARES = "You hold no shares of “{label}” in market #{market_id}."
MSG_NOT_ENOUGH_SHARES = "You hold {held} shares of “{label}”; you can't sell {asked}."
MSG_SHARES_INVALID = "The number of shares to sell must be a positive whole number of micro-shares."
MSG_SELL_WORTH_ZERO = (
    "Those shares are worth less than 1 point right now, so selling them would return nothing."
)
MSG_SLIPPAGE_SHARES = (
    "The price moved: this buy would now give {got} shares, below your minimum of {limit}. "
    "Nothing was charged; check the new price and try again."
)
MSG_SLIPPAGE_POINTS = (
    "The price moved: this sale would now return {got:,} points, below your minimum of "
    "{limit:,}. Nothing was sold; check the new price and try again."
)
MSG_PROPOSED_ALREADY = (
    "A result is already proposed for market #{market_id}: “{label}”. Members who traded can "
    "dispute it; moderators can confirm, change or undo it."
)
MSG_NOT_RESOLVING = (
    "Market #{market_id} has no proposed result to dispute or confirm; it is {status}."
)
MSG_DISPUTE_LATE = (
    "The dispute window of market #{market_id} ended {ended}; its result is being paid out."
)
MSG_DISPUTE_TWICE = (
    "You already disputed the proposed result of market #{market_id}; moderators have your "
    "reason. One dispute per member."
)
MSG_CONFLICT_PROPOSE = (
    "You hold a position in market #{market_id}, so you can't vote on, propose or decide its "
    "result (this server's conflict-of-interest rule). Ask another resolver or moderator."
)
MSG_CONFLICT_VOTE = MSG_CONFLICT_PROPOSE
"""A conflicted resolver's vote is refused for the same reason as their proposal or `force`
(docs/domain.md §6.1), whether or not it would decide."""
MSG_CONFLICT_CONFIRM_SELF = (
    "You proposed this result while holding a position in market #{market_id}; another resolver "
    "must confirm it, or it pays out when the dispute window ends."
)
MSG_KNOWN_AT_TYPE = (
    "“Known at” must be a moment in time (a date and time); leave it out if the outcome became "
    "known only after the market closed."
)
MSG_KNOWN_AT_FUTURE = (
    "“Known at” ({known_at}) is in the future; it must be a moment between the market's opening "
    "({opened}) and its closing ({closed})."
)
MSG_KNOWN_AT_RANGE = (
    "“Known at” ({known_at}) is {side} market #{market_id} {verb}; it must be between its "
    "opening ({opened}) and its closing ({closed})."
)


class MarketError(DomainError, code="market_error"): ...


class MarketNotFound(NotFound, code="market_not_found"): ...


class InvalidMarketInput(InvalidInput, code="invalid_market_input"): ...


class MarketStateError(MarketError, code="market_state"): ...


class SlippageExceeded(MarketError, code="slippage"): ...


class InsufficientShares(MarketError, code="insufficient_shares"): ...
