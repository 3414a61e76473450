"""Creating a market (DOMAIN §4.1, §5, §7) and remembering where the bot posted it."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from core import signals
from points.errors import InvalidAmount, validate_amount, validate_snowflake
from points.models import Account, Transfer
from points.services import (
    Leg,
    accounts_lock,
    audit_record,
    guild_settings_get_or_create,
    transfers_post,
    treasury_get_or_create,
)
from points.usecase import Call, use_case

from .. import amm
from ..errors import MSG_CLOSES_AT_PAST, MSG_LIQUIDITY, MSG_MECHANISM, InvalidMarketInput
from ..models import Market, MarketEvent, Outcome
from ..validation import (
    MAX_DURATION_MINUTES,
    clean_category,
    clean_outcomes,
    clean_question,
    parse_duration,
)
from .base import event_write, on_commit, outcomes_locked, probabilities

MAX_LIQUIDITY = 1_000_000_000


def market_by_key(key: str) -> Market | None:
    return Market.objects.filter(idempotency_key=key).first()


def _same_market(market: Market, call: Call) -> bool:
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
    idempotency_key: str,
    now: dt.datetime | None = None,
) -> Market:
    """Create a market (DOMAIN §4.1, §5, §7). An amm market's liquidity moves treasury → escrow;
    a pool market starts with an empty escrow. Emits `market_created`."""
    validate_snowflake(guild_id, what="guild_id")
    validate_snowflake(creator_id, what="creator_id")
    question = clean_question(question)
    labels = clean_outcomes(outcomes)
    category = clean_category(category)
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
    if liquidity is not None:
        try:
            validate_amount(liquidity, maximum=MAX_LIQUIDITY, what="liquidity")
        except InvalidAmount:
            raise InvalidMarketInput(MSG_LIQUIDITY) from None

    settings_row = guild_settings_get_or_create(guild_id=guild_id)
    is_amm = mechanism == Market.Mechanism.AMM
    points = (liquidity or settings_row.default_liquidity) if is_amm else 0
    market = Market.objects.create(
        guild_id=guild_id,
        creator_id=creator_id,
        question=question,
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
        after={"question": question, "outcomes": labels, "liquidity": points},
    )
    on_commit(
        lambda: signals.market_transitioned.send(
            sender=Market, event="created", mechanism=mechanism
        )
    )
    return market


@use_case()
def market_message_set(*, market_id: int, channel_id: int, message_id: int) -> None:
    """Remember where the bot posted the market message (for refreshes and summaries)."""
    validate_snowflake(channel_id, what="channel_id")
    validate_snowflake(message_id, what="message_id")
    Market.objects.filter(pk=market_id).update(channel_id=channel_id, message_id=message_id)
