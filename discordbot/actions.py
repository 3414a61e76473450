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

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from betting import selectors as betting_selectors
from betting import services as betting_services
from betting.models import Trade
from betting.services import TradeRequest
from core.errors import DomainError
from markets import selectors as market_selectors
from markets import services as market_services
from markets.amm import SHARE_SCALE
from markets.errors import (
    MSG_BET_ABOVE_MAX,
    MSG_BET_TOO_SMALL_AFTER_FEE,
    MSG_DISPUTE_TWICE,
    MSG_NOT_OPEN,
    MSG_NOT_RESOLVING,
    MSG_SELL_PARIMUTUEL,
    MSG_SELL_WORTH_ZERO,
    MarketStateError,
    SlippageExceeded,
)
from markets.holdings import holdings_get
from markets.models import Dispute, Market, MarketEvent, ResolutionVote
from markets.selectors import MarketSummary
from points import selectors as points_selectors
from points import services as points_services
from points.errors import (
    MAX_AMOUNT,
    MSG_INSUFFICIENT_POINTS,
    InsufficientPoints,
    InvalidAmount,
    validate_amount,
    validate_snowflake,
)
from points.models import GuildSettings, Transfer
from points.rules.permissions import MSG_DISPUTE
from points.services import guild_settings_get_or_create, wallet_get_or_create

from . import parsing, render
from .models import MarketMessage, MemberPreference, NotificationCursor, NotificationDelivery
from .permissions import Actor, Policy

MSG_PRICE_MOVED = (
    "The price moved: “{label}” is now at {now} and {what}, beyond your slippage limit "
    "({limit}). Nothing was traded; try again for a fresh quote."
)


def market_in_guild(*, guild_id: int, market: object) -> MarketSummary:
    """The market a member typed or picked, if it belongs to this guild."""
    return market_selectors.market_get(market_id=parsing.market_ref(market), guild_id=guild_id)


def policy_get(*, guild_id: int) -> Policy:
    return Policy.from_settings(points_selectors.guild_settings_get(guild_id=guild_id))


# --- Trading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TradeResult:
    market: MarketSummary
    """The market as it was before the trade (its id, question and outcomes)."""
    kind: str
    outcome: int
    label: str
    amount: int
    """Points paid (buy, stake) or returned before the fee (sell)."""
    fee: int
    shares: int
    """Micro-shares received (buy) or burned (sell)."""
    balance: int | None
    probability: float
    """The outcome's probability right after the trade (display)."""
    left_in_pool: int = 0
    """Sales: micro-shares sold beyond what the points cost, kept by the market (DOMAIN §4.4)."""


@dataclass(frozen=True)
class PreparedTrade:
    """A member's trade, checked against their guild and parsed: ready for `trades_apply`."""

    summary: MarketSummary
    request: TradeRequest


def trade_prepare_for_interaction(
    *,
    guild_id: int,
    user_id: int,
    market: object,
    outcome: object,
    kind: str,
    amount: int | None = None,
    shares: object = None,
    idempotency_key: str,
    min_shares: int | None = None,
    min_points: int | None = None,
) -> PreparedTrade:
    """The market of this guild a member typed, the outcome, and what they asked for ("all" or a
    number of shares with up to 6 decimals for a sale), as one `TradeRequest`."""
    summary = market_in_guild(guild_id=guild_id, market=market)
    ask = TradeAsk(
        guild_id, user_id, outcome, kind, idempotency_key, amount, shares, min_shares, min_points
    )
    request = _trade_request(summary, ask)
    return PreparedTrade(summary=summary, request=request)


@dataclass(frozen=True)
class Quote:
    """What a trade would do now (DOMAIN §4.6), shown before the member confirms it."""

    market: MarketSummary
    kind: str
    """"buy" (market maker), "stake" (pool) or "sell"."""
    outcome: int
    label: str
    amount: int
    """Points paid (buy, stake), or returned before the fee (sell)."""
    shares: int
    """Micro-shares received (buy) or sold (sell); 0 for a stake."""
    fee: int
    average_price: float  # display: points per share
    probability_before: float  # display
    probability_after: float  # display
    payout: int
    """Points if the outcome wins: whole shares (buy), the share of the pot as it stands
    (stake); for a sale, the points it returns after the fee."""
    limit: int
    """The slippage limit a confirmation trades with: `min_shares` (buy) or `min_points`
    (sell), `slippage_bps` below the quote; 0 for a stake (a pool's payout is only known at
    settlement)."""
    slippage_bps: int
    pot_after: int = 0
    """Pool: the whole pot with this stake in it."""
    asked: int = 0
    """Sell: the micro-shares asked for (a sale burns only what whole points pay for, so
    `shares` may be a little less)."""

    @property
    def net(self) -> int:
        return self.amount - self.fee


def _slippage_limit(value: int, bps: int) -> int:
    return value * (10_000 - bps) // 10_000


def quote_buy_for_interaction(
    *, guild_id: int, user_id: int, market: object, outcome: object, amount: int
) -> Quote:
    """The quote for `amount` points on an outcome of an open market of this guild, checked
    against what the trade itself would refuse (max bet, balance, a fee eating the amount)."""
    summary = market_in_guild(guild_id=guild_id, market=market)
    position = parsing.outcome_ref(
        outcome, [o.label for o in summary.outcomes], market_id=summary.id
    )
    _ensure_open(summary)
    validate_amount(amount, maximum=MAX_AMOUNT)
    gs = guild_settings_get_or_create(guild_id=guild_id)
    if amount > gs.max_bet:
        raise InvalidAmount(MSG_BET_ABOVE_MAX.format(max_bet=gs.max_bet))
    balance = wallet_get_or_create(guild_id=guild_id, user_id=user_id).balance
    if amount > balance:
        raise InsufficientPoints(MSG_INSUFFICIENT_POINTS.format(balance=balance, needed=amount))
    q = betting_selectors.quote_buy(market_id=summary.id, outcome=position, amount=amount)
    label = summary.outcomes[position].label
    if summary.mechanism == Market.Mechanism.AMM:
        if q.shares <= 0:
            raise InvalidAmount(MSG_BET_TOO_SMALL_AFTER_FEE.format(fee=q.fee))
        return Quote(
            summary, "buy", position, label, amount, q.shares, q.fee, q.average_price,
            q.probability_before, q.probability_after, q.potential_payout,
            _slippage_limit(q.shares, gs.slippage_bps), gs.slippage_bps,
        )  # fmt: skip
    pot = sum(o.staked for o in summary.outcomes) + amount
    return Quote(
        summary, "stake", position, label, amount, 0, 0, 0.0, q.probability_before,
        q.probability_after, q.potential_payout, 0, gs.slippage_bps, pot,
    )  # fmt: skip


def quote_sell_for_interaction(
    *, guild_id: int, user_id: int, market: object, outcome: object, shares: object
) -> Quote:
    """The quote for selling `shares` ("all" or a number) of an outcome back to the market."""
    summary = market_in_guild(guild_id=guild_id, market=market)
    position = parsing.outcome_ref(
        outcome, [o.label for o in summary.outcomes], market_id=summary.id
    )
    _ensure_open(summary)
    if summary.mechanism != Market.Mechanism.AMM:
        raise MarketStateError(MSG_SELL_PARIMUTUEL)
    q = betting_selectors.quote_sell(
        market_id=summary.id, user_id=user_id, outcome=position, shares=parsing.shares(shares)
    )
    if q.net_points <= 0:
        raise InvalidAmount(MSG_SELL_WORTH_ZERO)
    gs = guild_settings_get_or_create(guild_id=guild_id)
    before = summary.outcomes[position].probability
    return Quote(
        summary, "sell", position, summary.outcomes[position].label, q.points,
        q.shares_burned, q.fee, q.points * SHARE_SCALE / q.shares_burned, before,
        q.probability_after, q.net_points, _slippage_limit(q.net_points, gs.slippage_bps),
        gs.slippage_bps, asked=q.shares_offered,
    )  # fmt: skip


def percent_text(p: float) -> str:
    return f"{p * 100:.1f}%"


def points_text(n: int) -> str:
    return f"{n:,}"


def shares_text(micro: int) -> str:
    """Shares to two decimals, as Discord shows them (exact values stay in the admin)."""
    return f"{micro / SHARE_SCALE:,.2f}"


def _ensure_open(summary: MarketSummary) -> None:
    if not summary.is_open:
        raise MarketStateError(MSG_NOT_OPEN.format(market_id=summary.id, status=summary.status))


def bet_place_for_interaction(
    *,
    guild_id: int,
    user_id: int,
    market: object,
    outcome: object,
    amount: int,
    idempotency_key: str,
    min_shares: int | None = None,
) -> TradeResult:
    """Buy (amm) or stake on (pool) an outcome of a market of this guild."""
    prepared = trade_prepare_for_interaction(
        guild_id=guild_id,
        user_id=user_id,
        market=market,
        outcome=outcome,
        kind="buy",
        amount=amount,
        idempotency_key=idempotency_key,
    )
    return _one_trade(guild_id, user_id, prepared)


def shares_sell_for_interaction(
    *,
    guild_id: int,
    user_id: int,
    market: object,
    outcome: object,
    shares: object,
    idempotency_key: str,
    min_points: int | None = None,
) -> TradeResult:
    """Sell shares ("all" or a number with up to 6 decimals) of an outcome back to the market."""
    prepared = trade_prepare_for_interaction(
        guild_id=guild_id,
        user_id=user_id,
        market=market,
        outcome=outcome,
        kind="sell",
        shares=shares,
        idempotency_key=idempotency_key,
    )
    return _one_trade(guild_id, user_id, prepared)


def _one_trade(guild_id: int, user_id: int, prepared: PreparedTrade) -> TradeResult:
    (result,) = betting_services.trades_apply(
        market_id=prepared.summary.id, requests=[prepared.request]
    )
    if isinstance(result, DomainError):
        raise price_moved(prepared.summary, prepared.request, result)
    return trade_result_for_interaction(
        guild_id=guild_id, user_id=user_id, summary=prepared.summary, trade=result
    )


@dataclass(frozen=True)
class TradeAsk:
    """What a member asked for in one interaction, before anything was read: the bot queues it
    by market and `trades_for_interactions` serves a whole queue with one market read."""

    guild_id: int
    user_id: int
    outcome: object
    kind: str
    idempotency_key: str
    amount: int | None = None
    shares: object = None
    min_shares: int | None = None
    """The slippage limit of a confirmed quote (DOMAIN §4.6): a buy giving fewer is refused."""
    min_points: int | None = None
    """A sale returning fewer points (after the fee) is refused."""


def trades_for_interactions(
    *, market_id: int, asks: Sequence[TradeAsk]
) -> list[TradeResult | DomainError]:
    """Serve a batch of members' trades on one market (the bot's group commit, issue 16): the
    market is read once per guild asking (a market of another guild is "not found", DOMAIN
    §2), each ask is parsed as `trade_prepare_for_interaction` would, and the valid ones go to
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


def _trade_request(summary: MarketSummary, ask: TradeAsk) -> TradeRequest:
    position = parsing.outcome_ref(
        ask.outcome, [o.label for o in summary.outcomes], market_id=summary.id
    )
    selling = ask.kind == "sell"
    return TradeRequest(
        kind="sell" if selling else "buy",
        user_id=ask.user_id,
        outcome=position,
        idempotency_key=ask.idempotency_key,
        amount=None if selling else ask.amount,
        shares=parsing.shares(ask.shares) if selling else None,
        min_shares=None if selling else (ask.min_shares or None),
        min_points=(ask.min_points or None) if selling else None,
    )


def price_moved(summary: MarketSummary, request: TradeRequest, refusal: DomainError) -> DomainError:
    """A slippage refusal reworded with the price now (DOMAIN §4.6): "the price moved: now …,
    try again". Other refusals pass through."""
    if not isinstance(refusal, SlippageExceeded):
        return refusal
    label = summary.outcomes[request.outcome].label
    try:
        if request.kind == "buy":
            now = betting_selectors.quote_buy(
                market_id=summary.id, outcome=request.outcome, amount=request.amount or 0
            )
            price, what = (
                now.probability_before,
                (f"{points_text(request.amount or 0)} points buy {shares_text(now.shares)} shares"),
            )
            limit = f"{shares_text(request.min_shares or 0)} shares"
        else:
            sale = betting_selectors.quote_sell(
                market_id=summary.id,
                user_id=request.user_id,
                outcome=request.outcome,
                shares=request.shares,
            )
            fresh = market_selectors.market_get(market_id=summary.id, guild_id=summary.guild_id)
            price = fresh.outcomes[request.outcome].probability
            what = (
                f"{shares_text(sale.shares_burned)} shares return "
                f"{points_text(sale.net_points)} points"
            )
            limit = f"{points_text(request.min_points or 0)} points"
    except DomainError:
        return refusal
    return SlippageExceeded(
        MSG_PRICE_MOVED.format(label=label, now=percent_text(price), what=what, limit=limit)
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


# --- Market lifecycle ------------------------------------------------------------------------


def market_create_for_interaction(
    *,
    guild_id: int,
    actor: Actor,
    question: str,
    outcomes: str | list[str],
    duration: str | int | None,
    category: str | None = None,
    mechanism: str = Market.Mechanism.AMM,
    liquidity: int | None = None,
    description: str | None = None,
    idempotency_key: str,
    channel_id: int | None = None,
) -> MarketSummary:
    """Create a market if the guild lets this member (`creator_role_ids`, DOMAIN §2; only
    moderators choose the liquidity: the service's rules). `channel_id`: where the reply will
    post the market, claimed at once so the announcement does not post it there a second
    time."""
    labels = parsing.outcomes_text(outcomes) if isinstance(outcomes, str) else outcomes
    market = market_services.market_create(
        guild_id=guild_id,
        creator_id=actor.user_id,
        question=question,
        outcomes=labels,
        duration=duration,
        category=category or None,
        mechanism=mechanism,
        liquidity=liquidity,
        description=description or "",
        idempotency_key=idempotency_key,
        actor=actor,
    )
    if channel_id:
        market_copy_claim(market_id=market.pk, channel_id=channel_id)
    return market_selectors.market_get(market_id=market.pk, guild_id=guild_id)


def market_withdraw_for_interaction(
    *, guild_id: int, actor: Actor, market: object, idempotency_key: str
) -> MarketSummary:
    """The creator takes back a market they just created, while nobody has traded (the rule
    is the service's: `markets.services.market_withdraw`)."""
    summary = market_in_guild(guild_id=guild_id, market=market)
    market_services.market_withdraw(
        market_id=summary.id, actor_id=actor.user_id, idempotency_key=idempotency_key
    )
    return market_selectors.market_get(market_id=summary.id, guild_id=guild_id)


def market_message_set_for_interaction(*, market_id: int, channel_id: int, message_id: int) -> None:
    market_services.market_message_set(
        market_id=market_id, channel_id=channel_id, message_id=message_id
    )


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
    return list(
        MarketMessage.objects.filter(market_id=market_id, active=True)
        .exclude(message_id=None)
        .order_by("-id")
        .values_list("id", "channel_id", "message_id")[:MARKET_COPIES_REFRESHED]
    )


def market_copy_retire(*, copy_id: int, detail: str) -> None:
    """Stop refreshing a copy Discord says is gone or out of reach."""
    MarketMessage.objects.filter(pk=copy_id).update(active=False, detail=detail[:200])


def market_close_for_interaction(
    *, guild_id: int, actor: Actor, market: object, reason: str = "", idempotency_key: str
) -> MarketSummary:
    """Close trading early: the creator, or a moderator (DOMAIN §6)."""
    summary = market_in_guild(guild_id=guild_id, market=market)
    market_services.market_close(
        market_id=summary.id,
        actor=actor,
        reason=reason or "",
        idempotency_key=idempotency_key,
    )
    return market_selectors.market_get(market_id=summary.id, guild_id=guild_id)


@dataclass(frozen=True)
class VoteResult:
    """What `/market resolve` did without force: a vote recorded, a proposal (by agreeing votes
    or by the creator), a proposal that waits for a second resolver, or a resolution."""

    market: MarketSummary
    outcome: int
    label: str
    votes: int
    needed: int
    repeated: bool = False
    """The voter had already voted for this same outcome: nothing new to announce."""
    how: str = ""
    """Who resolves a market here and how, and how else it can end (`render.how_text`)."""
    by_creator: bool = False
    """The server resolves by creator: the creator's call was a proposal, not a vote."""

    @property
    def resolved(self) -> bool:
        return self.market.status == Market.Status.RESOLVED

    @property
    def proposed(self) -> bool:
        return self.market.status == Market.Status.RESOLVING

    @property
    def waits_for_second(self) -> bool:
        """Proposed by someone holding a position with no window: a second resolver confirms."""
        p = self.market.proposal
        return p is not None and p.deadline is None and not p.disputed


def market_vote_for_interaction(
    *, guild_id: int, actor: Actor, market: object, outcome: object, idempotency_key: str
) -> VoteResult:
    """A resolver's vote on the winning outcome; enough agreeing votes propose it (or resolve it,
    with no dispute window). In a server that resolves by creator, the creator's choice is a
    proposal (docs/domain.md §6.1). The rules are the services'."""
    gs = guild_settings_get_or_create(guild_id=guild_id)
    summary = market_in_guild(guild_id=guild_id, market=market)
    position = parsing.outcome_ref(
        outcome, [o.label for o in summary.outcomes], market_id=summary.id
    )
    by_creator = gs.resolution_mode == GuildSettings.ResolutionMode.CREATOR
    repeated = (
        not by_creator
        and summary.status == Market.Status.CLOSED
        and ResolutionVote.objects.filter(
            market_id=summary.id, voter_id=actor.user_id, outcome__position=position
        ).exists()
    )
    if by_creator:
        market_services.market_propose(
            market_id=summary.id, outcome=position, actor=actor, idempotency_key=idempotency_key
        )
    elif not repeated:  # the same vote again changes nothing: no second event (issue 13)
        market_services.resolution_vote_cast(
            market_id=summary.id,
            actor=actor,
            outcome=position,
            idempotency_key=idempotency_key,
        )
    after = market_selectors.market_get(market_id=summary.id, guild_id=guild_id)
    votes = sum(
        1 for _, pos, _ in market_selectors.votes_get(market_id=summary.id) if pos == position
    )
    return VoteResult(
        market=after,
        outcome=position,
        label=after.outcomes[position].label,
        votes=votes,
        needed=gs.min_resolution_votes,
        repeated=repeated,
        how=render.how_text(gs, creator_id=summary.creator_id),
        by_creator=by_creator,
    )


def resolution_how_for_market(*, guild_id: int, market_id: int) -> str:
    """Who resolves `market_id` and how, in this guild's words (`render.how_text`)."""
    gs = guild_settings_get_or_create(guild_id=guild_id)
    creator_id = Market.objects.values_list("creator_id", flat=True).get(pk=market_id)
    return render.how_text(gs, creator_id=creator_id)


def market_resolve_for_interaction(
    *,
    guild_id: int,
    actor: Actor,
    market: object,
    outcome: object,
    reason: str,
    idempotency_key: str,
) -> MarketSummary:
    """A member with Manage Server resolves a closed or resolving market directly ("force"),
    with a reason, overruling votes and any proposal (the service's rules)."""
    summary = market_in_guild(guild_id=guild_id, market=market)
    position = parsing.outcome_ref(
        outcome, [o.label for o in summary.outcomes], market_id=summary.id
    )
    market_services.market_resolve(
        market_id=summary.id,
        outcome=position,
        actor=actor,
        reason=reason,
        idempotency_key=idempotency_key,
    )
    return market_selectors.market_get(market_id=summary.id, guild_id=guild_id)


@dataclass(frozen=True)
class ConfirmResult:
    market: MarketSummary
    """The market after the decision (resolved)."""
    changed_from: str | None
    """The proposed outcome's label when a moderator changed it, else None."""


def market_proposal_confirm_for_interaction(
    *,
    guild_id: int,
    actor: Actor,
    market: object,
    outcome: object | None,
    reason: str,
    idempotency_key: str,
) -> ConfirmResult:
    """`/market confirm`: a moderator pays out a proposed result now, as proposed or changed to
    `outcome` (docs/domain.md §6.1; who may and when: the service `market_proposal_confirm`)."""
    summary = market_in_guild(guild_id=guild_id, market=market)
    position = (
        None
        if outcome is None or str(outcome).strip() == ""
        else parsing.outcome_ref(outcome, [o.label for o in summary.outcomes], market_id=summary.id)
    )
    before = summary.proposal
    market_services.market_proposal_confirm(
        market_id=summary.id,
        actor=actor,
        outcome=position,
        reason=reason,
        idempotency_key=idempotency_key,
    )
    after = market_selectors.market_get(market_id=summary.id, guild_id=guild_id)
    changed = (
        before.label
        if before is not None and position is not None and position != before.position
        else None
    )
    return ConfirmResult(market=after, changed_from=changed)


@dataclass(frozen=True)
class UndoResult:
    market: MarketSummary
    """The market after the undo (closed again)."""
    label: str
    """The outcome that had been proposed."""
    how: str


def market_proposal_undo_for_interaction(
    *, guild_id: int, actor: Actor, market: object, reason: str, idempotency_key: str
) -> UndoResult:
    """`/market undo`: a moderator withdraws a proposed result; the market is closed again and
    can be proposed anew (`markets.services.market_proposal_undo`)."""
    summary = market_in_guild(guild_id=guild_id, market=market)
    market_services.market_proposal_undo(
        market_id=summary.id, actor=actor, reason=reason, idempotency_key=idempotency_key
    )
    label = summary.proposal.label if summary.proposal else ""
    undone = (
        MarketEvent.objects.filter(market_id=summary.id, type=MarketEvent.Type.UNDONE)
        .order_by("-id")
        .values_list("payload", flat=True)
        .first()
    )
    if undone:  # also when this interaction is a replay (the market is closed already)
        label = undone.get("label", label)
    return UndoResult(
        market=market_selectors.market_get(market_id=summary.id, guild_id=guild_id),
        label=label,
        how=resolution_how_for_market(guild_id=guild_id, market_id=summary.id),
    )


@dataclass(frozen=True)
class DisputeResult:
    market: MarketSummary
    disputes: int
    """Disputes of this proposal, this one included."""


def market_dispute_precheck(*, guild_id: int, market: object, user_id: int) -> str | None:
    """Before the Dispute button opens its form: the refusal the service would give this member
    (not resolving, never traded, already disputed), so nobody writes a reason for nothing.
    None: open the form (the service decides on submission)."""
    summary = market_in_guild(guild_id=guild_id, market=market)
    if summary.proposal is None:
        return MSG_NOT_RESOLVING.format(market_id=summary.id, status=summary.status)
    row = Market.objects.get(pk=summary.id)
    if not holdings_get().traded(row, user_id):
        return MSG_DISPUTE.format(market=summary.id)
    if Dispute.objects.filter(
        market_id=summary.id, proposal_round=summary.proposal.round, user_id=user_id
    ).exists():
        return MSG_DISPUTE_TWICE.format(market_id=summary.id)
    return None


def market_dispute_for_interaction(
    *, guild_id: int, actor: Actor, market: object, reason: str, idempotency_key: str
) -> DisputeResult:
    """A trader disputes a proposed result with a reason (`markets.services.market_dispute`:
    one per member per proposal; the first holds the market for moderators)."""
    summary = market_in_guild(guild_id=guild_id, market=market)
    dispute = market_services.market_dispute(
        market_id=summary.id, actor=actor, reason=reason, idempotency_key=idempotency_key
    )
    after = market_selectors.market_get(market_id=summary.id, guild_id=guild_id)
    disputes = Dispute.objects.filter(
        market_id=summary.id, proposal_round=dispute.proposal_round
    ).count()
    return DisputeResult(market=after, disputes=disputes)


def market_cancel_for_interaction(
    *, guild_id: int, actor: Actor, market: object, reason: str, idempotency_key: str
) -> MarketSummary:
    """Cancel and refund (DOMAIN §6): moderators only (the service's rule)."""
    summary = market_in_guild(guild_id=guild_id, market=market)
    market_services.market_cancel(
        market_id=summary.id,
        actor=actor,
        reason=reason,
        idempotency_key=idempotency_key,
    )
    return market_selectors.market_get(market_id=summary.id, guild_id=guild_id)


# --- Members ---------------------------------------------------------------------------------


def balance_ensure_for_interaction(*, guild_id: int, user_id: int) -> int:
    """The member's balance; a first-time member receives the starting balance (DOMAIN §2)."""
    return wallet_get_or_create(guild_id=guild_id, user_id=user_id).balance


@dataclass(frozen=True)
class DailyClaim:
    amount: int
    balance: int
    next_at: dt.datetime


def daily_claim_for_interaction(*, guild_id: int, user_id: int) -> DailyClaim:
    """Claim the daily bonus; its key is `daily:<guild>:<user>:<date>` (DOMAIN §3), stronger than
    the interaction's, so two claims the same day from two interactions still pay once."""
    now = timezone.now()
    transfer = points_services.daily_claim(guild_id=guild_id, user_id=user_id, now=now)
    balance = points_selectors.balance_get(guild_id=guild_id, user_id=user_id) or 0
    return DailyClaim(transfer.amount, balance, points_services.next_daily_at(now))


def points_tip_for_interaction(
    *, guild_id: int, from_user_id: int, to_user_id: int, amount: int, idempotency_key: str
) -> Transfer:
    return points_services.points_tip(
        guild_id=guild_id,
        from_user_id=from_user_id,
        to_user_id=to_user_id,
        amount=amount,
        idempotency_key=idempotency_key,
    )


def notification_preference_set_for_interaction(
    *, guild_id: int, user_id: int, enabled: bool
) -> bool:
    """Turn the member's notification DMs on or off in this guild (idempotent)."""
    validate_snowflake(guild_id, what="guild_id")
    validate_snowflake(user_id, what="user_id")
    MemberPreference.objects.update_or_create(
        guild_id=guild_id, user_id=user_id, defaults={"dm_notifications": bool(enabled)}
    )
    return bool(enabled)


# --- Guild settings (/settings) --------------------------------------------------------------


def guild_settings_update_for_interaction(
    *,
    guild_id: int,
    actor: Actor,
    idempotency_key: str,
    values: dict[str, object] | None = None,
    announce_channel_id: int | Literal[False] | None = False,
    moderator_channel_id: int | Literal[False] | None = False,
    role_kind: str | None = None,
    role_action: str | None = None,
    role_id: int | None = None,
) -> GuildSettings:
    """`/settings`: the member Discord described changes this guild's settings through
    `points.services.guild_settings_update` (who may and which values: `points.rules`).
    `announce_channel_id` / `moderator_channel_id` None clears the channel, False leaves it."""
    return points_services.guild_settings_update(
        guild_id=guild_id,
        actor=actor,
        idempotency_key=idempotency_key,
        values=values,
        role_kind=role_kind,
        role_action=role_action,
        role_id=role_id,
        announce_channel_id=announce_channel_id,
        moderator_channel_id=moderator_channel_id,
    )


# --- Notifier bookkeeping --------------------------------------------------------------------


def notification_cursor_advance(*, name: str, event_id: int) -> int:
    """Move the cursor forward to `event_id` (never backward). Returns the new position."""
    NotificationCursor.objects.get_or_create(name=name)
    NotificationCursor.objects.filter(name=name, last_event_id__lt=event_id).update(
        last_event_id=event_id
    )
    return NotificationCursor.objects.values_list("last_event_id", flat=True).get(name=name)


def notification_cursor_start(*, name: str, after: dt.datetime) -> int:
    """The cursor of notifier `name`. A notifier running for the first time starts at the first
    event created after `after` (old news is not worth a notification)."""
    row = NotificationCursor.objects.filter(name=name).first()
    if row is not None:
        return row.last_event_id
    last_old = (
        MarketEvent.objects.filter(created_at__lt=after)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
    ) or 0
    row, _ = NotificationCursor.objects.get_or_create(
        name=name, defaults={"last_event_id": last_old}
    )
    return row.last_event_id


def notifications_enqueue(*, name: str, event_id: int, rows: list[dict]) -> int:
    """Queue the messages one event owes (`rows`: target, lane, kind, market_id, content) and
    move notifier `name`'s cursor past the event, in one transaction: a restart either plans the
    event again (adding nothing: one row per event and target) or not at all. Returns how many
    rows were new."""
    with transaction.atomic():
        before = NotificationDelivery.objects.filter(event_id=event_id).count()
        NotificationDelivery.objects.bulk_create(
            [
                NotificationDelivery(
                    event_id=event_id,
                    status=NotificationDelivery.Status.PENDING,
                    target=row["target"][:60],
                    lane=row["lane"],
                    kind=row["kind"],
                    market_id=row.get("market_id"),
                    content=row.get("content", ""),
                )
                for row in rows
            ],
            ignore_conflicts=True,
        )
        notification_cursor_advance(name=name, event_id=event_id)
        return NotificationDelivery.objects.filter(event_id=event_id).count() - before


def notifications_due(*, lane: str, now: dt.datetime, limit: int) -> list[NotificationDelivery]:
    """Pending rows of `lane` whose time has come, oldest first."""
    return list(
        NotificationDelivery.objects.filter(lane=lane, status=NotificationDelivery.Status.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .order_by("next_attempt_at", "id")[:limit]
    )


def notification_next_due(*, lane: str) -> dt.datetime | None:
    """When the next pending row of `lane` may be tried (None: nothing pending)."""
    row = (
        NotificationDelivery.objects.filter(lane=lane, status=NotificationDelivery.Status.PENDING)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", "id")
        .first()
    )
    if row is None:
        return None
    return row[0] or dt.datetime.min.replace(tzinfo=dt.UTC)


def notification_finish(*, delivery_id: int, status: str, detail: str = "") -> None:
    """Record the outcome of a pending row (sent, skipped or failed for good)."""
    NotificationDelivery.objects.filter(
        pk=delivery_id, status=NotificationDelivery.Status.PENDING
    ).update(status=status, detail=detail[:200], sent_at=timezone.now())


def notification_postpone(
    *, delivery_id: int, until: dt.datetime, detail: str, count_attempt: bool
) -> int:
    """Put a pending row back until `until`; `count_attempt` for failures (not for Discord
    asking to slow down). Returns the row's attempts."""
    changes: dict = {"next_attempt_at": until, "detail": detail[:200]}
    if count_attempt:
        changes["attempts"] = F("attempts") + 1
    NotificationDelivery.objects.filter(pk=delivery_id).update(**changes)
    return NotificationDelivery.objects.values_list("attempts", flat=True).get(pk=delivery_id)
