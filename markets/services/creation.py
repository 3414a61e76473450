"""Creating a market (DOMAIN §4.1, §5, §7) and remembering where the bot posted it."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from points.errors import InvalidAmount, NotAllowed, validate_amount, validate_snowflake
from points.models import Account, Transfer
from points.rules import Action, Actor, require
from points.services import (
    Leg,
    accounts_lock,
    audit_record,
    guild_settings_get_or_create,
    transfers_post,
    treasury_get_or_create,
)
from points.usecase import Call, stop_if_replayed, use_case

from .. import amm
from ..errors import (
    MSG_CLOSES_AT_PAST,
    MSG_LIQUIDITY,
    MSG_MECHANISM,
    InvalidMarketInput,
    MarketStateError,
)
from ..models import Market, MarketEvent, Outcome
from ..validation import (
    MAX_DURATION_MINUTES,
    clean_category,
    clean_description,
    clean_outcomes,
    clean_question,
    parse_duration,
)
from .base import (
    ensure_not_settled,
    event_write,
    market_lock,
    outcomes_locked,
    probabilities,
    transition_announce,
)
from .settlement import cancel

MAX_LIQUIDITY = 1_000_000_000
WITHDRAW_SECONDS = 60
"""How long a creator may take back a market nobody has traded on (issue 13: a split they did
not mean, a typo), without a moderator."""
MSG_LIQUIDITY_POOL = (
    "A pool has no liquidity to set: its pot is the members' stakes. Leave “liquidity” empty, "
    "or choose the market maker."
)
MSG_WITHDRAW_CREATOR = "Only the market's creator can take it back."
MSG_WITHDRAW_LATE = (
    "Market #{market_id} can only be taken back within {seconds} seconds of its creation; ask "
    "a moderator to cancel it."
)
MSG_WITHDRAW_TRADED = (
    "Market #{market_id} already has trades, so it can no longer be taken back; ask a "
    "moderator to cancel it."
)
MSG_WITHDRAW_REASON = "Taken back by its creator right after creation."


def _cancel_event_by_key(key: str) -> MarketEvent | None:
    return MarketEvent.objects.filter(request_key=key, type=MarketEvent.Type.CANCELLED).first()


def market_by_key(key: str) -> Market | None:
    return Market.objects.filter(idempotency_key=key).first()


def _same_market(market: Market, call: Call) -> bool:
    if market.description != clean_description(call["description"]):
        return False
    same = (market.guild_id, market.creator_id, market.question, market.mechanism)
    return same == (
        call["guild_id"],
        call["creator_id"],
        clean_question(call["question"]),
        call["mechanism"],
    ) and clean_outcomes(call["outcomes"]) == list(
        market.outcomes.order_by("position").values_list("label", flat=True)
    )


@use_case(lookup=market_by_key, matches=_same_market)
def market_create(
    *,
    guild_id: int,
    creator_id: int,
    question: str,
    outcomes: list[str],
    duration: str | int | dt.timedelta | None = None,
    closes_at: dt.datetime | None = None,
    category: str | None = None,
    mechanism: str = Market.Mechanism.AMM,
    liquidity: int | None = None,
    description: str = "",
    idempotency_key: str,
    now: dt.datetime | None = None,
    actor: Actor | None = None,
) -> Market:
    """Create a market (DOMAIN §4.1, §5, §7). An amm market's liquidity moves treasury → escrow;
    a pool market starts with an empty escrow. Emits `market_created`.
    `actor` is who asks (`points.rules`): by default the creator as a member with no roles, so
    a server's creator roles apply; choosing the liquidity is for moderators."""
    validate_snowflake(guild_id, what="guild_id")
    validate_snowflake(creator_id, what="creator_id")
    actor = actor or Actor.member(creator_id)
    question = clean_question(question)
    labels = clean_outcomes(outcomes)
    category = clean_category(category)
    description = clean_description(description)
    if mechanism not in Market.Mechanism.values:
        raise InvalidMarketInput(MSG_MECHANISM)
    now = now or timezone.now()
    if closes_at is None:
        closes_at = now + parse_duration(duration if duration is not None else "")
    else:
        if closes_at <= now:
            raise InvalidMarketInput(MSG_CLOSES_AT_PAST)
        parse_duration(max(1, int((closes_at - now).total_seconds() // 60)))
        if closes_at - now > dt.timedelta(minutes=MAX_DURATION_MINUTES):
            parse_duration(MAX_DURATION_MINUTES + 1)
    if liquidity is not None and mechanism == Market.Mechanism.PARIMUTUEL:
        raise InvalidMarketInput(MSG_LIQUIDITY_POOL)
    if liquidity is not None:
        try:
            validate_amount(liquidity, maximum=MAX_LIQUIDITY, what="liquidity")
        except InvalidAmount:
            raise InvalidMarketInput(MSG_LIQUIDITY) from None

    settings_row = guild_settings_get_or_create(guild_id=guild_id)
    require(Action.CREATE, actor, settings_row)
    if liquidity is not None:
        require(Action.CHOOSE_LIQUIDITY, actor, settings_row)
    is_amm = mechanism == Market.Mechanism.AMM
    points = (liquidity or settings_row.default_liquidity) if is_amm else 0
    market = Market.objects.create(
        guild_id=guild_id,
        creator_id=creator_id,
        question=question,
        description=description,
        category=category,
        mechanism=mechanism,
        closes_at=closes_at,
        liquidity=points,
        fee_bps=settings_row.fee_bps if is_amm else 0,
        idempotency_key=idempotency_key,
    )
    pools = amm.initial_pools(len(labels), points) if is_amm else [0] * len(labels)
    Outcome.objects.bulk_create(
        Outcome(market=market, position=i, label=label, pool=pools[i])
        for i, label in enumerate(labels)
    )
    treasury = treasury_get_or_create(guild_id=guild_id)
    escrow = Account.objects.create(guild_id=guild_id, kind=Account.Kind.ESCROW, market=market)
    if points:
        locked = accounts_lock([treasury.pk, escrow.pk])
        leg = Leg(
            locked[treasury.pk],
            locked[escrow.pk],
            points,
            Transfer.Code.LIQUIDITY,
            f"{idempotency_key}:liquidity",
            "Market liquidity",
            creator_id,
            None,
            market.pk,
        )
        transfers_post([leg], locked)
    outcomes_rows = outcomes_locked(market)
    event_write(
        market,
        MarketEvent.Type.CREATED,
        {
            "question": question,
            "description": description,
            "outcomes": labels,
            "mechanism": mechanism,
            "closes_at": closes_at.isoformat(),
            "creator_id": str(creator_id),
            "probabilities": probabilities(market, outcomes_rows),
        },
        request_key=idempotency_key,
        natural_key=f"create:{market.pk}",
        actor_id=creator_id,
    )
    audit_record(
        action="market_create",
        target_type="market",
        target_id=market.pk,
        guild_id=guild_id,
        actor_id=creator_id,
        idempotency_key=idempotency_key,
        after={
            "question": question,
            "description": description,
            "outcomes": labels,
            "liquidity": points,
        },
    )
    transition_announce(market, "created")
    return market


@use_case()
def market_message_set(*, market_id: int, channel_id: int, message_id: int) -> None:
    """Remember where the bot posted the market message (for refreshes and summaries)."""
    validate_snowflake(channel_id, what="channel_id")
    validate_snowflake(message_id, what="message_id")
    Market.objects.filter(pk=market_id).update(channel_id=channel_id, message_id=message_id)


def _same_withdrawal(event: MarketEvent, call: Call) -> bool:
    return event.market_id == call["market_id"] and event.type == MarketEvent.Type.CANCELLED


def _market_of(event: MarketEvent, call: Call) -> Market:
    return Market.objects.get(pk=event.market_id)


@use_case(lookup=_cancel_event_by_key, matches=_same_withdrawal, result=_market_of)
def market_withdraw(
    *, market_id: int, actor_id: int, idempotency_key: str, now: dt.datetime | None = None
) -> MarketEvent:
    """The creator takes back a market they just created (issue 13): only within
    `WITHDRAW_SECONDS` and while nobody has traded, so nobody loses a position or a refund
    matters. It is cancelled like any cancellation (DOMAIN §6): the liquidity goes back to the
    treasury. Emits `market_cancelled`. Returns the market."""
    validate_snowflake(actor_id, what="actor_id")
    market = market_lock(market_id)
    stop_if_replayed(_cancel_event_by_key, idempotency_key)
    now = now or timezone.now()
    if market.creator_id != actor_id:
        raise NotAllowed(MSG_WITHDRAW_CREATOR)
    ensure_not_settled(market)
    if market.trade_count:
        raise MarketStateError(MSG_WITHDRAW_TRADED.format(market_id=market.pk))
    if (now - market.created_at).total_seconds() > WITHDRAW_SECONDS:
        raise MarketStateError(
            MSG_WITHDRAW_LATE.format(market_id=market.pk, seconds=WITHDRAW_SECONDS)
        )
    return cancel(
        market,
        actor_id=actor_id,
        actor_user_id=None,
        reason=MSG_WITHDRAW_REASON,
        request_key=idempotency_key,
        automatic=False,
    )
