"""Trading from Discord: quotes, a member's trade, and the batch of trades the bot group-commits."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import DatabaseError

from betting import quotes as betting_quotes
from betting import rules
from betting import services as betting_services
from betting.models import Trade
from betting.services import TradeRequest
from core.errors import DomainError
from markets import amm
from markets import selectors as market_selectors
from markets.amm import SHARE_SCALE
from markets.errors import (
    MSG_MARKET_NOT_FOUND,
    MarketNotFound,
    SlippageExceeded,
)
from markets.models import Market
from markets.selectors import MarketSummary
from points import selectors as points_selectors
from points.errors import (
    MAX_AMOUNT,
    validate_amount,
)
from points.models import GuildSettings

from .. import parsing
from ..results import Quote, TradeAsk, TradeResult
from .common import _ensure_open, market_in_guild, percent_text, points_text, shares_text

MSG_PRICE_MOVED = (
    "The price moved before your trade: at its turn in its batch “{label}” was at {now} and "
    "{what}, short of your slippage limit ({limit}). Nothing was traded."
)
MSG_PRICE_MOVED_BUY = "{amount} points would buy {got} shares (average price {average:.3f})"
MSG_PRICE_MOVED_SELL = "{shares} shares would return {got} points"
MSG_FRESH_QUOTE = " Press **Fresh quote** for the same amount at the price now."
MSG_FRESH_QUOTE_SELL = " Press **Fresh quote** to sell the same shares at the price now."


# --- Trading ---------------------------------------------------------------------------------


def quote_buy_for_interaction(
    *, guild_id: int, user_id: int, market: object, outcome: object, amount: int
) -> Quote:
    """The quote for `amount` points on an outcome of an open market of this guild, refused as
    the trade would refuse it (`betting.quotes.member_quote_buy`: max bet, the fee eating the
    amount, the balance — a member without a wallet against the starting balance). Writes
    nothing."""
    summary = market_in_guild(guild_id=guild_id, market=market)
    position = parsing.outcome_ref(
        outcome, [o.label for o in summary.outcomes], market_id=summary.id
    )
    _ensure_open(summary)
    validate_amount(amount, maximum=MAX_AMOUNT)
    m = betting_quotes.member_quote_buy(
        guild_id=guild_id, user_id=user_id, market_id=summary.id, outcome=position, amount=amount
    )
    q = m.buy
    assert q is not None
    label = summary.outcomes[position].label
    if summary.mechanism == Market.Mechanism.AMM:
        return Quote(
            summary, "buy", position, label, amount, q.shares, q.fee, q.average_price,
            q.probability_before, q.probability_after, q.potential_payout, m.limit,
            m.slippage_bps,
        )  # fmt: skip
    pot = sum(o.staked for o in summary.outcomes) + amount
    return Quote(
        summary, "stake", position, label, amount, 0, 0, 0.0, q.probability_before,
        q.probability_after, q.potential_payout, 0, m.slippage_bps, pot,
    )  # fmt: skip


def guild_settings_or_defaults(*, guild_id: int) -> GuildSettings:
    """The guild's settings row, or an unsaved one with the defaults (no write)."""
    return betting_quotes.guild_settings_or_defaults(guild_id)


def quote_buy_seen(
    summary: MarketSummary,
    gs: GuildSettings,
    *,
    guild_id: int,
    outcome: object,
    amount: int,
    balance: int | None = None,
) -> Quote:
    """The quote for `amount` points on an outcome of `summary` as this process last saw it
    (`discordbot.snapshots`; no database), refused as the trade would refuse it: another
    guild's market, not open, the outcome, the amount, max bet, the fee eating it, and — when
    `balance` (None: no wallet yet, the starting balance). Its `limit` is the
    slippage limit a trade of it queues with: the shares at this price, less the guild's
    slippage."""
    return _quote_buy_seen(summary, gs, guild_id, outcome, amount, balance, check_balance=True)


def quote_buy_seen_unchecked(
    summary: MarketSummary, gs: GuildSettings, *, guild_id: int, outcome: object, amount: int
) -> Quote:
    """`quote_buy_seen` leaving the member's balance to the batch (the one-step path)."""
    return _quote_buy_seen(summary, gs, guild_id, outcome, amount, None, check_balance=False)


def _quote_buy_seen(
    summary: MarketSummary,
    gs: GuildSettings,
    guild_id: int,
    outcome: object,
    amount: int,
    balance: int | None,
    *,
    check_balance: bool,
) -> Quote:
    if summary.guild_id != guild_id:
        raise MarketNotFound(MSG_MARKET_NOT_FOUND.format(market_id=summary.id))
    labels = [o.label for o in summary.outcomes]
    position = parsing.outcome_ref(outcome, labels, market_id=summary.id)
    _ensure_open(summary)
    validate_amount(amount, maximum=MAX_AMOUNT)
    staked = [o.staked for o in summary.outcomes]
    state = _state_seen(summary)
    known = gs.starting_balance if balance is None else balance
    wallet = known if check_balance else amount  # unchecked: the batch checks the balance
    plan = rules.buy_plan(state, position, amount, max_bet=gs.max_bet, balance=wallet)
    before = summary.outcomes[position].probability
    label = labels[position]
    if plan.kind == "buy":
        after = float(amm.prices(plan.pools)[position])  # display
        limit = rules.slippage_limit(plan.shares, gs.slippage_bps)
        return Quote(
            summary, "buy", position, label, amount, plan.shares, plan.fee,
            amount * SHARE_SCALE / plan.shares, before, after, plan.shares // SHARE_SCALE,
            limit, gs.slippage_bps,
        )  # fmt: skip
    after = float(amm.parimutuel_probabilities(plan.staked)[position])  # display
    payout = amount * sum(plan.staked) // plan.staked[position]
    return Quote(
        summary, "stake", position, label, amount, 0, 0, 0.0, before, after, payout, 0,
        gs.slippage_bps, sum(staked) + amount,
    )  # fmt: skip


def quote_sell_for_interaction(
    *, guild_id: int, user_id: int, market: object, outcome: object, shares: object
) -> Quote:
    """The quote for selling `shares` ("all" or a number) of an outcome back to the market,
    refused as the confirmation would be (`betting.quotes.member_quote_sell`)."""
    summary = market_in_guild(guild_id=guild_id, market=market)
    position = parsing.outcome_ref(
        outcome, [o.label for o in summary.outcomes], market_id=summary.id
    )
    _ensure_open(summary)
    m = betting_quotes.member_quote_sell(
        guild_id=guild_id,
        user_id=user_id,
        market_id=summary.id,
        outcome=position,
        shares=parsing.shares(shares),
    )
    q = m.sell
    assert q is not None
    before = summary.outcomes[position].probability
    return Quote(
        summary, "sell", position, summary.outcomes[position].label, q.points,
        q.shares_burned, q.fee, q.points * SHARE_SCALE / q.shares_burned, before,
        q.probability_after, q.net_points, m.limit, m.slippage_bps, asked=q.shares_offered,
    )  # fmt: skip


def sell_seen(
    summary: MarketSummary, *, guild_id: int, outcome: object, shares: object
) -> tuple[int, int | None]:
    """The outcome's position and the micro-shares asked (None: all) for a sale of `summary`
    as this process last saw it, refused in the order `quote_sell_for_interaction` refuses
    before reading the holding: another guild's market, the outcome, not open, the shares
    typed, a pool."""
    if summary.guild_id != guild_id:
        raise MarketNotFound(MSG_MARKET_NOT_FOUND.format(market_id=summary.id))
    labels = [o.label for o in summary.outcomes]
    position = parsing.outcome_ref(outcome, labels, market_id=summary.id)
    _ensure_open(summary)
    asked = parsing.shares(shares)
    rules.sell_allowed(_state_seen(summary))
    return position, asked


def quote_sell_seen(
    summary: MarketSummary, gs: GuildSettings, *, position: int, shares: int | None, held: int
) -> Quote:
    """The quote for selling `shares` (None: all of `held`) of the outcome at `position` of
    `summary` as this process last saw it (no database), refused as the confirmation would be
    (`betting.quotes.member_quote_sell`'s rules on the snapshot and the holding read)."""
    asked = held if shares is None and held else shares
    plan = rules.sell_plan(_state_seen(summary), position, held, asked)
    after = float(amm.prices(plan.pools)[position])  # display
    return Quote(
        summary, "sell", position, summary.outcomes[position].label, plan.points, plan.asked,
        plan.fee, plan.points * SHARE_SCALE / plan.asked, summary.outcomes[position].probability,
        after, plan.net, rules.slippage_limit(plan.net, gs.slippage_bps), gs.slippage_bps,
        asked=plan.asked,
    )  # fmt: skip


def _state_seen(summary: MarketSummary) -> rules.MarketState:
    return rules.MarketState(
        summary.id, summary.mechanism, summary.fee_bps, [o.label for o in summary.outcomes],
        [o.pool for o in summary.outcomes], [o.staked for o in summary.outcomes],
    )  # fmt: skip


def trades_for_interactions(
    *, market_id: int, asks: Sequence[TradeAsk]
) -> list[TradeResult | DomainError]:
    """Serve a batch of members' trades on one market (the bot's group commit, issue 16): the
    market is read once per guild asking (a market of another guild is "not found", DOMAIN
    §2), each ask is parsed (its outcome and quantity), and the valid ones go to
    `trades_apply` together. Returns each ask's reply facts or its refusal, in order."""
    summaries: dict[int, MarketSummary | DomainError] = {}
    answers: list[TradeResult | DomainError | None] = [None] * len(asks)
    requests: list[TradeRequest] = []
    placed: list[int] = []
    for index, ask in enumerate(asks):
        if ask.guild_id not in summaries:
            try:
                summaries[ask.guild_id] = market_selectors.market_get(
                    market_id=market_id, guild_id=ask.guild_id
                )
            except DomainError as error:
                summaries[ask.guild_id] = error
        summary = summaries[ask.guild_id]
        if isinstance(summary, DomainError):
            answers[index] = summary
            continue
        try:
            request = _trade_request(summary, ask)
        except DomainError as error:
            answers[index] = error
            continue
        requests.append(request)
        placed.append(index)
    results = betting_services.trades_apply(market_id=market_id, requests=requests)
    for index, request, result in zip(placed, requests, results, strict=True):
        ask = asks[index]
        summary = summaries[ask.guild_id]
        assert not isinstance(summary, DomainError)
        answers[index] = (
            price_moved(summary, request, result)
            if isinstance(result, DomainError)
            else trade_result_for_interaction(
                guild_id=ask.guild_id, user_id=ask.user_id, summary=summary, trade=result
            )
        )
    return [a for a in answers if a is not None]


def trades_batch(
    *, market_id: int, asks: Sequence[TradeAsk]
) -> tuple[list[TradeResult | DomainError], MarketSummary | None]:
    """`trades_for_interactions`, and the market as the batch left it (one read per batch), for
    the bot's snapshot of the market (`discordbot.snapshots`)."""
    answers = trades_for_interactions(market_id=market_id, asks=asks)
    try:
        summary: MarketSummary | None = market_selectors.market_get(market_id=market_id)
    except (DomainError, DatabaseError):
        # The batch has committed: a read after it that fails (the database restarting, CI at
        # 76561e6) must not turn the members' trades into "something went wrong". The snapshot
        # is refreshed by the next batch or the market's events instead.
        summary = None
    return answers, summary


def _trade_request(summary: MarketSummary, ask: TradeAsk) -> TradeRequest:
    position = parsing.outcome_position(
        ask.outcome, [o.label for o in summary.outcomes], market_id=summary.id
    )
    selling = ask.kind == "sell"
    return TradeRequest(
        kind="sell" if selling else "buy",
        user_id=ask.user_id,
        outcome=position,
        idempotency_key=ask.idempotency_key,
        amount=None if selling else ask.amount,
        shares=parsing.share_count(ask.shares) if selling else None,
        min_shares=None if selling else (ask.min_shares or None),
        min_points=(ask.min_points or None) if selling else None,
    )


def _apart(got: int, limit: int) -> tuple[str, str]:
    """Micro-shares `got` and `limit` as shown elsewhere (two decimals) when that shows `got`
    below `limit`; else with as many decimals as it takes, `got` rounded down and `limit` up:
    never "19.70 shares, below your limit of 19.70"."""
    if shares_text(got) != shares_text(limit) and round(got, -4) < round(limit, -4):
        return shares_text(got), shares_text(limit)
    for places in range(3, 7):
        step = SHARE_SCALE // 10**places
        low, high = got // step * step, -(-limit // step) * step
        if low < high or places == 6:
            return (f"{low / SHARE_SCALE:,.{places}f}", f"{high / SHARE_SCALE:,.{places}f}")
    raise AssertionError("unreachable")


def price_moved(summary: MarketSummary, request: TradeRequest, refusal: DomainError) -> DomainError:
    """A slippage refusal reworded (DOMAIN §4.6) with the figures the request met at its turn in
    its batch (the trade rules put them in the refusal's details: the price then, what the
    amount would have bought or the sale returned, the limit), so the stated figure always
    breaks the stated limit — never a re-read after the batch, which saw later trades. Both
    offer a fresh quote (issue 23 item 10). Other refusals pass through."""
    if not isinstance(refusal, SlippageExceeded):
        return refusal
    details = refusal.details or {}
    if "probability" not in details:
        return refusal
    label = summary.outcomes[request.outcome].label
    if request.kind == "buy" and "shares" in details:
        got = int(details["shares"])
        amount = request.amount or 0
        minimum = int(details.get("min_shares", request.min_shares or 0))
        shown_got, shown_limit = _apart(got, minimum)
        what = MSG_PRICE_MOVED_BUY.format(
            amount=points_text(amount),
            got=shown_got,
            average=amount * SHARE_SCALE / got if got else 0.0,
        )
        limit = f"at least {shown_limit} shares"
        tail = MSG_FRESH_QUOTE
    elif request.kind == "sell" and "points" in details:
        sold = int(details.get("shares") or request.shares or 0)
        what = MSG_PRICE_MOVED_SELL.format(
            shares=shares_text(sold) if sold else "your",
            got=points_text(int(details["points"])),
        )
        minimum = int(details.get("min_points", request.min_points or 0))
        limit = f"at least {points_text(minimum)} points"
        tail = MSG_FRESH_QUOTE_SELL
    else:
        return refusal
    return SlippageExceeded(
        MSG_PRICE_MOVED.format(
            label=label, now=percent_text(details["probability"]), what=what, limit=limit
        )
        + tail,
        details=details,
    )


def trade_result_for_interaction(
    *, guild_id: int, user_id: int, summary: MarketSummary, trade: Trade
) -> TradeResult:
    """The reply's facts, from the trade itself (its price after the trade, the member's balance
    right after it when the batch recorded it, else one query)."""
    balance = getattr(trade, "balance_after", None)
    if balance is None:
        balance = points_selectors.balance_get(guild_id=guild_id, user_id=user_id)
    return TradeResult(
        market=summary,
        kind=trade.kind,
        outcome=trade.outcome.position,
        label=trade.outcome.label,
        amount=trade.amount,
        fee=trade.fee,
        shares=trade.shares,
        balance=balance,
        probability=trade.price_after_ppm / 1_000_000,
        left_in_pool=betting_services.sale_left_in_pool(trade),
    )
