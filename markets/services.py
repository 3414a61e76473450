"""Market use cases (DOMAIN §4–§7).

Every entry point is one durable transaction that locks the market row first, then the accounts
it touches in primary-key order (one query), recomputes on the locked state, writes trades,
transfers, positions and a `MarketEvent`, and is idempotent by its request key. Dashboard pushes
and metrics are queued with `transaction.on_commit` and never make the write fail.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from betting.models import Position, Trade
from core import signals
from points.db import retry_transient
from points.errors import (
    MSG_INSUFFICIENT_POINTS,
    InsufficientPoints,
    InvalidAmount,
    validate_amount,
    validate_key,
    validate_reason,
    validate_snowflake,
)
from points.models import Account, GuildSettings, Transfer
from points.services import (
    Leg,
    Replay,
    accounts_lock,
    audit_record,
    guild_settings_get_or_create,
    members_prepare,
    run_once,
    transfers_post,
    treasury_get_or_create,
)

from . import amm, settlement
from .errors import (
    MSG_ALREADY_SETTLED,
    MSG_BET_ABOVE_MAX,
    MSG_BET_TOO_SMALL_AFTER_FEE,
    MSG_CLOSE_NOT_ALLOWED,
    MSG_CLOSES_AT_PAST,
    MSG_LIQUIDITY,
    MSG_MARKET_NOT_FOUND,
    MSG_MECHANISM,
    MSG_NO_SHARES,
    MSG_NOT_CLOSED_FOR_RESOLVE,
    MSG_NOT_CLOSED_FOR_VOTE,
    MSG_NOT_ENOUGH_SHARES,
    MSG_NOT_OPEN,
    MSG_OUTCOME_NOT_FOUND,
    MSG_SELL_PARIMUTUEL,
    MSG_SELL_WORTH_ZERO,
    MSG_SHARES_INVALID,
    MSG_SLIPPAGE_POINTS,
    MSG_SLIPPAGE_SHARES,
    CloseNotAllowed,
    InsufficientShares,
    InvalidMarketInput,
    MarketNotFound,
    MarketStateError,
    SlippageExceeded,
)
from .models import Market, MarketEvent, Outcome, ResolutionVote
from .realtime import event_publish_on_commit
from .validation import (
    MAX_DURATION_MINUTES,
    clean_category,
    clean_outcomes,
    clean_question,
    parse_duration,
)

MAX_LIQUIDITY = 1_000_000_000
SHARE_SCALE = amm.SHARE_SCALE


# --- Helpers (run inside the caller's transaction) ------------------------------------------


def _market_lock(market_id: object) -> Market:
    """Lock and return the market row. Caller is in a transaction."""
    if isinstance(market_id, bool) or not isinstance(market_id, int) or market_id <= 0:
        raise MarketNotFound(MSG_MARKET_NOT_FOUND.format(market_id=market_id))
    market = Market.objects.select_for_update().filter(pk=market_id).first()
    if market is None:
        raise MarketNotFound(MSG_MARKET_NOT_FOUND.format(market_id=market_id))
    return market


def _outcomes(market: Market) -> list[Outcome]:
    """Caller holds a row lock on `market`; outcome rows change only under that lock."""
    return list(Outcome.objects.filter(market=market).order_by("position"))


def _outcome_at(market: Market, outcomes: list[Outcome], position: object) -> Outcome:
    if isinstance(position, bool) or not isinstance(position, int):
        position = -1
    if not 0 <= position < len(outcomes):
        raise InvalidMarketInput(
            MSG_OUTCOME_NOT_FOUND.format(
                market_id=market.pk,
                outcome=position + 1 if position >= 0 else "?",
                count=len(outcomes),
            )
        )
    return outcomes[position]


def _escrow(market: Market) -> Account:
    return Account.objects.get(kind=Account.Kind.ESCROW, market=market)


def _lock_with_escrow(market: Market, account_ids: list[int]) -> tuple[dict[int, Account], Account]:
    """Lock `account_ids` and the market's escrow in one query ordered by primary key (DOMAIN
    §3). Caller holds a row lock on `market`."""
    rows = (
        Account.objects.select_for_update()
        .filter(Q(pk__in=set(account_ids)) | Q(kind=Account.Kind.ESCROW, market=market))
        .order_by("pk")
    )
    locked = {row.pk: row for row in rows}
    escrow = next(a for a in locked.values() if a.kind == Account.Kind.ESCROW)
    return locked, escrow


def _probabilities(market: Market, outcomes: list[Outcome]) -> list[float]:
    if market.mechanism == Market.Mechanism.AMM:
        return [float(p) for p in amm.prices([o.pool for o in outcomes])]  # display
    return [float(p) for p in amm.parimutuel_probabilities([o.staked for o in outcomes])]  # display


def _ppm(market: Market, outcomes: list[Outcome]) -> list[int]:
    if market.mechanism == Market.Mechanism.AMM:
        return amm.prices_ppm([o.pool for o in outcomes])
    probabilities = amm.parimutuel_probabilities([o.staked for o in outcomes])
    return [round(p * 1_000_000) for p in probabilities]


def _ensure_trading(market: Market, now: dt.datetime) -> None:
    if market.status != Market.Status.OPEN or market.closes_at <= now:
        status = market.status if market.status != Market.Status.OPEN else "closed"
        raise MarketStateError(
            MSG_NOT_OPEN.format(market_id=market.pk, status=status),
            details={"status": market.status},
        )


def _ensure_not_settled(market: Market) -> None:
    if market.is_settled:
        raise MarketStateError(
            MSG_ALREADY_SETTLED.format(market_id=market.pk, status=market.status),
            details={"status": market.status},
        )


def _event(
    market: Market,
    type_: str,
    payload: dict[str, Any],
    *,
    request_key: str | None = None,
    natural_key: str | None = None,
    actor_id: int | None = None,
) -> MarketEvent:
    """Write the outbox row and queue its dashboard push after commit. Caller holds a row lock
    on `market`."""
    event = MarketEvent.objects.create(
        market=market,
        guild_id=market.guild_id,
        type=type_,
        payload={"status": market.status, **payload},
        idempotency_key=natural_key,
        request_key=request_key,
        actor_id=actor_id,
    )
    event_publish_on_commit(event)
    return event


def _event_replay(request_key: str) -> None:
    """After taking the market lock: stop if a twin already committed this request."""
    existing = MarketEvent.objects.filter(request_key=request_key).first()
    if existing is not None:
        raise Replay(existing)


def _on_commit(func: Callable[[], None]) -> None:
    transaction.on_commit(func)


def _lookup_event(key: str) -> Callable[[], MarketEvent | None]:
    return lambda: MarketEvent.objects.filter(request_key=key).first()


# --- Creation --------------------------------------------------------------------------------


@retry_transient()
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
    validate_key(idempotency_key)
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

    def matches(market: Market) -> bool:
        same = (market.guild_id, market.creator_id, market.question, market.mechanism)
        return same == (guild_id, creator_id, question, mechanism) and labels == list(
            market.outcomes.order_by("position").values_list("label", flat=True)
        )

    @transaction.atomic(durable=True)
    def body() -> Market:
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
        outcomes_rows = _outcomes(market)
        _event(
            market,
            MarketEvent.Type.CREATED,
            {
                "question": question,
                "outcomes": labels,
                "mechanism": mechanism,
                "closes_at": closes_at.isoformat(),
                "creator_id": str(creator_id),
                "probabilities": _probabilities(market, outcomes_rows),
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
        _on_commit(
            lambda: signals.market_transitioned.send(
                sender=Market, event="created", mechanism=mechanism
            )
        )
        return market

    return run_once(
        idempotency_key,
        lookup=lambda: Market.objects.filter(idempotency_key=idempotency_key).first(),
        matches=matches,
        run=body,
    )


@retry_transient()
def market_message_set(*, market_id: int, channel_id: int, message_id: int) -> None:
    """Remember where the bot posted the market message (for refreshes and summaries)."""
    validate_snowflake(channel_id, what="channel_id")
    validate_snowflake(message_id, what="message_id")
    with transaction.atomic(durable=True):
        Market.objects.filter(pk=market_id).update(channel_id=channel_id, message_id=message_id)


# --- Trading ---------------------------------------------------------------------------------


def _trade_lookup(key: str) -> Callable[[], Trade | None]:
    return lambda: Trade.objects.select_related("outcome").filter(idempotency_key=key).first()


def _trade_replay(key: str) -> None:
    existing = _trade_lookup(key)()
    if existing is not None:
        raise Replay(existing)


def _position_add(
    market: Market, outcome: Outcome, user_id: int, *, shares: int, spent: int, received: int
) -> Position:
    """Caller holds a row lock on `market`: positions of a market change only under it, so the
    arithmetic below works on current values."""
    position = Position.objects.filter(market=market, outcome=outcome, user_id=user_id).first()
    if position is None:
        if not Position.objects.filter(market=market, user_id=user_id).exists():
            market.trader_count += 1
        return Position.objects.create(
            market=market,
            outcome=outcome,
            guild_id=market.guild_id,
            user_id=user_id,
            shares=shares,
            points_spent=spent,
            points_received=received,
        )
    position.shares += shares
    position.points_spent += spent
    position.points_received += received
    position.save(update_fields=["shares", "points_spent", "points_received", "updated_at"])
    return position


def _trade_finish(
    market: Market,
    outcomes: list[Outcome],
    outcome: Outcome,
    *,
    user_id: int,
    kind: str,
    amount: int,
    shares: int,
    fee: int,
    ppm_before: list[int],
    idempotency_key: str,
    requested_shares: int | None = None,
) -> Trade:
    """Write the trade, the market counters and the `trade` event. Caller holds the locks.
    `requested_shares` (sells: what was asked, None = all) is kept in the event so a replay of
    the request can be told apart from a different request under the same key."""
    ppm_after = _ppm(market, outcomes)
    trade = Trade.objects.create(
        market=market,
        outcome=outcome,
        guild_id=market.guild_id,
        user_id=user_id,
        kind=kind,
        amount=amount,
        shares=shares,
        fee=fee,
        price_before_ppm=ppm_before[outcome.position],
        price_after_ppm=ppm_after[outcome.position],
        prices_after_ppm=ppm_after,
        idempotency_key=idempotency_key,
    )
    market.volume += amount
    market.trade_count += 1
    market.save(update_fields=["volume", "trade_count", "trader_count"])
    _event(
        market,
        MarketEvent.Type.TRADE,
        {
            "trade_id": trade.pk,
            "user_id": str(user_id),
            "kind": kind,
            "outcome": outcome.position,
            "label": outcome.label,
            "amount": amount,
            "shares": shares,
            "fee": fee,
            "probabilities": [p / 1_000_000 for p in ppm_after],
            "volume": market.volume,
            "traders": market.trader_count,
            **({"requested_shares": requested_shares} if kind == Trade.Kind.SELL else {}),
        },
        request_key=idempotency_key,
        actor_id=user_id,
    )
    mechanism = market.mechanism
    _on_commit(
        lambda: signals.trade_committed.send(
            sender=Trade, mechanism=mechanism, kind=kind, amount=amount
        )
    )
    return trade


def _fee_leg(market: Market, wallet: Account, treasury: Account, fee: int, key: str) -> Leg:
    """The trading fee, wallet → treasury (DOMAIN §4.3, §4.4). Caller holds both locks."""
    return Leg(
        wallet,
        treasury,
        fee,
        Transfer.Code.FEE,
        f"{key}:fee",
        f"Fee, market #{market.pk}",
        wallet.owner_id,
        None,
        market.pk,
    )


@retry_transient()
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
    wallet. Emits `trade`."""
    validate_snowflake(user_id, what="user_id")
    validate_amount(amount, what="stake")

    def matches(trade: Trade) -> bool:
        return (trade.market_id, trade.user_id, trade.outcome.position, trade.amount) == (
            market_id,
            user_id,
            outcome,
            amount,
        ) and trade.kind in (Trade.Kind.BUY, Trade.Kind.STAKE)

    @transaction.atomic(durable=True)
    def body() -> Trade:
        market = _market_lock(market_id)
        _trade_replay(idempotency_key)
        _ensure_trading(market, timezone.now())
        outcomes = _outcomes(market)
        chosen = _outcome_at(market, outcomes, outcome)
        settings_row = guild_settings_get_or_create(guild_id=market.guild_id)
        if amount > settings_row.max_bet:
            raise InvalidAmount(
                MSG_BET_ABOVE_MAX.format(max_bet=settings_row.max_bet),
                details={"max_bet": settings_row.max_bet},
            )
        is_amm = market.mechanism == Market.Mechanism.AMM
        fee = amm.fee_for(amount, market.fee_bps) if is_amm else 0
        if amount - fee <= 0:
            raise InvalidAmount(MSG_BET_TOO_SMALL_AFTER_FEE.format(fee=fee))
        members = members_prepare(guild_id=market.guild_id, user_ids=[user_id])
        ids = members.account_ids + ([members.treasury.pk] if fee else [])
        locked, escrow = _lock_with_escrow(market, ids)
        transfers_post(members.starting_legs, locked)
        wallet = locked[members.wallets[user_id].pk]
        if wallet.balance < amount:
            raise InsufficientPoints(
                MSG_INSUFFICIENT_POINTS.format(balance=wallet.balance, needed=amount),
                details={"balance": wallet.balance, "needed": amount},
            )
        ppm_before = _ppm(market, outcomes)
        shares = 0
        if is_amm:
            result = amm.buy([o.pool for o in outcomes], chosen.position, amount - fee)
            if min_shares is not None and result.shares < min_shares:
                raise SlippageExceeded(
                    MSG_SLIPPAGE_SHARES.format(
                        got=format_shares(result.shares), limit=format_shares(min_shares)
                    ),
                    details={"shares": result.shares, "min_shares": min_shares},
                )
            for o, pool in zip(outcomes, result.pools, strict=True):
                o.pool = pool
            Outcome.objects.bulk_update(outcomes, ["pool"])
            shares = result.shares
            kind = Trade.Kind.BUY
        else:
            chosen.staked += amount
            chosen.save(update_fields=["staked"])
            kind = Trade.Kind.STAKE
        legs = [
            Leg(
                wallet,
                locked[escrow.pk],
                amount - fee,
                Transfer.Code.BUY,
                f"{idempotency_key}:buy",
                f"Market #{market.pk}: {chosen.label}"[:500],
                user_id,
                None,
                market.pk,
            ),
        ]
        if fee:
            legs.append(_fee_leg(market, wallet, locked[members.treasury.pk], fee, idempotency_key))
        transfers_post(legs, locked)
        _position_add(market, chosen, user_id, shares=shares, spent=amount, received=0)
        return _trade_finish(
            market,
            outcomes,
            chosen,
            user_id=user_id,
            kind=kind,
            amount=amount,
            shares=shares,
            fee=fee,
            ppm_before=ppm_before,
            idempotency_key=idempotency_key,
        )

    return run_once(
        idempotency_key, lookup=_trade_lookup(idempotency_key), matches=matches, run=body
    )


@retry_transient()
def shares_sell(
    *,
    market_id: int,
    user_id: int,
    outcome: int,
    shares: int | None = None,
    idempotency_key: str,
    min_points: int | None = None,
) -> Trade:
    """Sell up to `shares` micro-shares (None = the whole position) of `outcome` back to the
    market maker (DOMAIN §4.4): the largest whole number of points whose cost fits. Refuses a
    sale worth 0 points or less than `min_points` after the fee (§4.6). Emits `trade`."""
    validate_snowflake(user_id, what="user_id")
    if shares is not None and (
        isinstance(shares, bool) or not isinstance(shares, int) or shares <= 0
    ):
        raise InvalidMarketInput(MSG_SHARES_INVALID)

    def matches(trade: Trade) -> bool:
        same = (trade.market_id, trade.user_id, trade.outcome.position, trade.kind) == (
            market_id,
            user_id,
            outcome,
            Trade.Kind.SELL,
        )
        event = MarketEvent.objects.filter(request_key=idempotency_key).first()
        return same and event is not None and event.payload.get("requested_shares") == shares

    @transaction.atomic(durable=True)
    def body() -> Trade:
        market = _market_lock(market_id)
        _trade_replay(idempotency_key)
        _ensure_trading(market, timezone.now())
        if market.mechanism != Market.Mechanism.AMM:
            raise MarketStateError(MSG_SELL_PARIMUTUEL)
        outcomes = _outcomes(market)
        chosen = _outcome_at(market, outcomes, outcome)
        position = Position.objects.filter(market=market, outcome=chosen, user_id=user_id).first()
        if position is None or position.shares == 0:
            raise InsufficientShares(MSG_NO_SHARES.format(label=chosen.label, market_id=market.pk))
        asked = position.shares if shares is None else shares
        if asked > position.shares:
            raise InsufficientShares(
                MSG_NOT_ENOUGH_SHARES.format(
                    held=format_shares(position.shares),
                    label=chosen.label,
                    asked=format_shares(asked),
                )
            )
        result = amm.sell([o.pool for o in outcomes], chosen.position, asked)
        fee = amm.fee_for(result.points, market.fee_bps)
        if result.points - fee <= 0:
            raise InvalidAmount(MSG_SELL_WORTH_ZERO, details={"points": result.points, "fee": fee})
        if min_points is not None and result.points - fee < min_points:
            raise SlippageExceeded(
                MSG_SLIPPAGE_POINTS.format(got=result.points - fee, limit=min_points),
                details={"points": result.points - fee, "min_points": min_points},
            )
        ppm_before = _ppm(market, outcomes)
        for o, pool in zip(outcomes, result.pools, strict=True):
            o.pool = pool
        Outcome.objects.bulk_update(outcomes, ["pool"])
        members = members_prepare(guild_id=market.guild_id, user_ids=[user_id])
        ids = members.account_ids + ([members.treasury.pk] if fee else [])
        locked, escrow = _lock_with_escrow(market, ids)
        wallet = locked[members.wallets[user_id].pk]
        legs = [
            Leg(
                locked[escrow.pk],
                wallet,
                result.points,
                Transfer.Code.SELL,
                f"{idempotency_key}:sell",
                f"Market #{market.pk}: sold {chosen.label}"[:500],
                user_id,
                None,
                market.pk,
            ),
        ]
        if fee:
            legs.append(_fee_leg(market, wallet, locked[members.treasury.pk], fee, idempotency_key))
        transfers_post([*members.starting_legs, *legs], locked)
        _position_add(
            market, chosen, user_id, shares=-result.shares, spent=0, received=result.points
        )
        return _trade_finish(
            market,
            outcomes,
            chosen,
            user_id=user_id,
            kind=Trade.Kind.SELL,
            amount=result.points,
            shares=result.shares,
            fee=fee,
            ppm_before=ppm_before,
            idempotency_key=idempotency_key,
            requested_shares=shares,
        )

    return run_once(
        idempotency_key, lookup=_trade_lookup(idempotency_key), matches=matches, run=body
    )


def format_shares(micro_shares: int) -> str:
    """Micro-shares as shares with up to 6 decimals, for messages: 1500000 → "1.5"."""
    whole, frac = divmod(micro_shares, SHARE_SCALE)
    return f"{whole:,}" + (f".{frac:06d}".rstrip("0") if frac else "")


# --- Lifecycle -------------------------------------------------------------------------------


def _close(
    market: Market,
    *,
    now: dt.datetime,
    actor_id: int | None,
    actor_user_id: int | None,
    reason: str,
    request_key: str | None,
    automatic: bool,
) -> MarketEvent:
    """Close trading. Caller holds a row lock on `market` and checked it is open."""
    Market.objects.filter(pk=market.pk, status=Market.Status.OPEN).update(
        status=Market.Status.CLOSED, closed_at=now, closed_by_id=actor_id
    )
    market.status, market.closed_at, market.closed_by_id = Market.Status.CLOSED, now, actor_id
    event = _event(
        market,
        MarketEvent.Type.CLOSED,
        {
            "automatic": automatic,
            "reason": reason,
            "creator_id": str(market.creator_id),
            "closed_at": now.isoformat(),
        },
        request_key=request_key,
        natural_key=f"close:{market.pk}",
        actor_id=actor_id,
    )
    audit_record(
        action="market_close",
        target_type="market",
        target_id=market.pk,
        guild_id=market.guild_id,
        actor_id=actor_id,
        actor_user_id=actor_user_id,
        reason=reason or ("closing time reached" if automatic else ""),
        idempotency_key=request_key or "",
        before={"status": "open"},
        after={"status": "closed"},
    )
    mechanism = market.mechanism
    _on_commit(
        lambda: signals.market_transitioned.send(sender=Market, event="closed", mechanism=mechanism)
    )
    return event


@retry_transient()
def market_close(
    *,
    market_id: int,
    actor_id: int | None = None,
    actor_user_id: int | None = None,
    moderator: bool = False,
    reason: str = "",
    idempotency_key: str,
) -> Market:
    """Close trading early (DOMAIN §6): the creator or a moderator. Emits `market_closed`."""
    reason = validate_reason(reason, required=False)

    def matches(event: MarketEvent) -> bool:
        return (
            event.market_id == market_id
            and event.type == MarketEvent.Type.CLOSED
            and event.actor_id == actor_id
        )

    @transaction.atomic(durable=True)
    def body() -> MarketEvent:
        market = _market_lock(market_id)
        _event_replay(idempotency_key)
        if not moderator and (actor_id is None or actor_id != market.creator_id):
            raise CloseNotAllowed(MSG_CLOSE_NOT_ALLOWED.format(market_id=market.pk))
        _ensure_not_settled(market)
        if market.status != Market.Status.OPEN:
            raise MarketStateError(
                MSG_ALREADY_SETTLED.format(market_id=market.pk, status=market.status)
            )
        return _close(
            market,
            now=timezone.now(),
            actor_id=actor_id,
            actor_user_id=actor_user_id,
            reason=reason,
            request_key=idempotency_key,
            automatic=False,
        )

    run_once(idempotency_key, lookup=_lookup_event(idempotency_key), matches=matches, run=body)
    return Market.objects.get(pk=market_id)


def _closed_for_resolution(
    market_id: int, outcome: int, request_key: str, refusal: str
) -> tuple[Market, list[Outcome], Outcome]:
    """Lock the market, answer a replayed request, and check it is closed (not open, not
    settled) and that `outcome` exists: what a vote and a moderator resolve both need.
    Caller is in a transaction."""
    market = _market_lock(market_id)
    _event_replay(request_key)
    _ensure_not_settled(market)
    if market.status != Market.Status.CLOSED:
        raise MarketStateError(refusal.format(market_id=market.pk, status=market.status))
    outcomes = _outcomes(market)
    return market, outcomes, _outcome_at(market, outcomes, outcome)


@retry_transient()
def resolution_vote_cast(
    *, market_id: int, voter_id: int, outcome: int, idempotency_key: str
) -> ResolutionVote:
    """A resolver votes for the winning outcome of a closed market (DOMAIN §6); a voter may
    change their vote until resolution. When `min_resolution_votes` votes agree, the market
    resolves in this same transaction, exactly once. Emits `vote_cast` (and `market_resolved`)."""
    validate_snowflake(voter_id, what="voter_id")

    def matches(event: MarketEvent) -> bool:
        return (
            event.market_id == market_id
            and event.type == MarketEvent.Type.VOTE
            and event.payload.get("voter_id") == str(voter_id)
            and event.payload.get("outcome") == outcome
        )

    @transaction.atomic(durable=True)
    def body() -> MarketEvent:
        market, outcomes, chosen = _closed_for_resolution(
            market_id, outcome, idempotency_key, MSG_NOT_CLOSED_FOR_VOTE
        )
        ResolutionVote.objects.update_or_create(
            market=market, voter_id=voter_id, defaults={"outcome": chosen}
        )
        agreeing = ResolutionVote.objects.filter(market=market, outcome=chosen).count()
        needed = guild_settings_get_or_create(guild_id=market.guild_id).min_resolution_votes
        event = _event(
            market,
            MarketEvent.Type.VOTE,
            {
                "voter_id": str(voter_id),
                "outcome": chosen.position,
                "label": chosen.label,
                "votes": agreeing,
                "needed": needed,
            },
            request_key=idempotency_key,
            actor_id=voter_id,
        )
        audit_record(
            action="resolution_vote",
            target_type="market",
            target_id=market.pk,
            guild_id=market.guild_id,
            actor_id=voter_id,
            idempotency_key=idempotency_key,
            after={"outcome": chosen.position, "votes": agreeing, "needed": needed},
        )
        if agreeing >= needed:
            _resolve(
                market,
                outcomes,
                chosen,
                actor_id=voter_id,
                actor_user_id=None,
                reason=f"{agreeing} resolvers voted for “{chosen.label}”",
                request_key=None,
            )
        return event

    run_once(idempotency_key, lookup=_lookup_event(idempotency_key), matches=matches, run=body)
    return ResolutionVote.objects.get(market_id=market_id, voter_id=voter_id)


@retry_transient()
def market_resolve(
    *,
    market_id: int,
    outcome: int,
    actor_id: int | None = None,
    actor_user_id: int | None = None,
    reason: str,
    idempotency_key: str,
) -> Market:
    """A moderator resolves a closed market directly, with a reason (DOMAIN §6). Pays out once.
    Emits `market_resolved`."""
    reason = validate_reason(reason)

    def matches(event: MarketEvent) -> bool:
        return (
            event.market_id == market_id
            and event.type == MarketEvent.Type.RESOLVED
            and event.payload.get("outcome") == outcome
        )

    @transaction.atomic(durable=True)
    def body() -> MarketEvent:
        market, outcomes, chosen = _closed_for_resolution(
            market_id, outcome, idempotency_key, MSG_NOT_CLOSED_FOR_RESOLVE
        )
        return _resolve(
            market,
            outcomes,
            chosen,
            actor_id=actor_id,
            actor_user_id=actor_user_id,
            reason=reason,
            request_key=idempotency_key,
        )

    run_once(idempotency_key, lookup=_lookup_event(idempotency_key), matches=matches, run=body)
    return Market.objects.get(pk=market_id)


@dataclass
class _Settlement:
    """Points each position (and so each member) receives from escrow."""

    per_position: dict[int, int] = field(default_factory=dict)
    per_user: dict[int, int] = field(default_factory=lambda: defaultdict(int))


def _resolve(
    market: Market,
    outcomes: list[Outcome],
    winner: Outcome,
    *,
    actor_id: int | None,
    actor_user_id: int | None,
    reason: str,
    request_key: str | None,
) -> MarketEvent:
    """Settle a closed market on `winner`. Caller holds a row lock on `market` and checked it
    is closed. The conditional status change plus the `resolve:<market>` keys make it once-only.
    amm: each winning position gets floor(shares / SHARE_SCALE); the rest returns to the
    treasury. pari-mutuel: winners split the pot (§5), or everyone is refunded if nobody backed
    the winner."""
    now = timezone.now()
    changed = Market.objects.filter(pk=market.pk, status=Market.Status.CLOSED).update(
        status=Market.Status.RESOLVED,
        winning_outcome=winner,
        settled_at=now,
        settled_by_id=actor_id,
        settled_by_user_id=actor_user_id,
        settle_reason=reason[:500],
    )
    if changed != 1:  # pragma: no cover - the caller checked under the lock
        raise MarketStateError(MSG_ALREADY_SETTLED.format(market_id=market.pk, status="settled"))
    market.status = Market.Status.RESOLVED
    positions = list(Position.objects.filter(market=market).order_by("pk"))
    per_position, refunded_all = settlement.resolve_plan(
        market.mechanism, outcomes, winner, positions
    )
    plan = _Settlement(per_position=per_position)
    total_paid = _pay(
        market,
        positions,
        plan,
        code=Transfer.Code.PAYOUT if not refunded_all else Transfer.Code.REFUND,
        key_prefix=f"resolve:{market.pk}",
        actor_id=actor_id,
        actor_user_id=actor_user_id,
    )
    winners = sorted(plan.per_user.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    event = _event(
        market,
        MarketEvent.Type.RESOLVED,
        {
            "outcome": winner.position,
            "label": winner.label,
            "reason": reason,
            "total_paid": total_paid,
            "refunded_all": refunded_all,
            "winners": [[str(user), amount] for user, amount in winners],
            "paid_count": len(plan.per_user),
        },
        request_key=request_key,
        natural_key=f"resolve:{market.pk}",
        actor_id=actor_id,
    )
    audit_record(
        action="market_resolve",
        target_type="market",
        target_id=market.pk,
        guild_id=market.guild_id,
        actor_id=actor_id,
        actor_user_id=actor_user_id,
        reason=reason,
        idempotency_key=request_key or f"resolve:{market.pk}",
        before={"status": "closed"},
        after={"status": "resolved", "outcome": winner.position, "total_paid": total_paid},
    )
    mechanism = market.mechanism
    _on_commit(
        lambda: signals.market_transitioned.send(
            sender=Market, event="resolved", mechanism=mechanism
        )
    )
    return event


def _pay(
    market: Market,
    positions: list[Position],
    plan: _Settlement,
    *,
    code: str,
    key_prefix: str,
    actor_id: int | None,
    actor_user_id: int | None,
) -> int:
    """Pay `plan.per_position` from escrow, return the escrow remainder to the treasury, and
    cover any shortfall from the treasury so the escrow ends at 0 (DOMAIN §6). Caller holds a
    row lock on `market`; this locks the escrow, the treasury and the paid wallets in one query.
    Returns the points paid to members."""
    by_pk = {p.pk: p for p in positions}
    for pk, amount in plan.per_position.items():
        plan.per_user[by_pk[pk].user_id] += amount
    users = sorted(u for u, amount in plan.per_user.items() if amount > 0)
    wallets = dict(
        Account.objects.filter(
            guild_id=market.guild_id, kind=Account.Kind.WALLET, owner_id__in=users
        ).values_list("owner_id", "pk")
    )
    escrow = _escrow(market)
    treasury = treasury_get_or_create(guild_id=market.guild_id)
    locked = accounts_lock([escrow.pk, treasury.pk, *wallets.values()])
    escrow_row, treasury_row = locked[escrow.pk], locked[treasury.pk]
    total = sum(plan.per_user[u] for u in users)
    legs: list[Leg] = []
    if total > escrow_row.balance:
        legs.append(
            Leg(
                treasury_row,
                escrow_row,
                total - escrow_row.balance,
                code,
                f"{key_prefix}:shortfall",
                f"Market #{market.pk}: treasury covers refunds",
                actor_id,
                actor_user_id,
                market.pk,
            )
        )
    for user in users:
        legs.append(
            Leg(
                escrow_row,
                locked[wallets[user]],
                plan.per_user[user],
                code,
                f"{key_prefix}:{code}:{user}",
                f"Market #{market.pk}: {code}",
                actor_id,
                actor_user_id,
                market.pk,
            )
        )
    remainder = escrow_row.balance - total
    if remainder > 0:
        legs.append(
            Leg(
                escrow_row,
                treasury_row,
                remainder,
                Transfer.Code.LIQUIDITY_RETURN,
                f"{key_prefix}:return",
                f"Market #{market.pk}: escrow remainder",
                actor_id,
                actor_user_id,
                market.pk,
            )
        )
    transfers_post(legs, locked)
    for pk, amount in plan.per_position.items():
        if amount:
            Position.objects.filter(pk=pk).update(payout=amount)
    return total


def _cancel(
    market: Market,
    *,
    actor_id: int | None,
    actor_user_id: int | None,
    reason: str,
    request_key: str | None,
    automatic: bool,
) -> MarketEvent:
    """Cancel and refund. Caller holds a row lock on `market` and checked it is not settled."""
    before = market.status
    now = timezone.now()
    Market.objects.filter(pk=market.pk, status=before).update(
        status=Market.Status.CANCELLED,
        settled_at=now,
        settled_by_id=actor_id,
        settled_by_user_id=actor_user_id,
        settle_reason=reason[:500],
        closed_at=market.closed_at or now,
    )
    market.status = Market.Status.CANCELLED
    positions = list(Position.objects.filter(market=market).order_by("pk"))
    plan = _Settlement(per_position=settlement.refund_plan(positions))
    total = _pay(
        market,
        positions,
        plan,
        code=Transfer.Code.REFUND,
        key_prefix=f"refund:{market.pk}",
        actor_id=actor_id,
        actor_user_id=actor_user_id,
    )
    event = _event(
        market,
        MarketEvent.Type.CANCELLED,
        {
            "reason": reason,
            "automatic": automatic,
            "total_refunded": total,
            "refunded_count": len([u for u, a in plan.per_user.items() if a]),
        },
        request_key=request_key,
        natural_key=f"cancel:{market.pk}",
        actor_id=actor_id,
    )
    audit_record(
        action="market_cancel",
        target_type="market",
        target_id=market.pk,
        guild_id=market.guild_id,
        actor_id=actor_id,
        actor_user_id=actor_user_id,
        reason=reason,
        idempotency_key=request_key or f"cancel:{market.pk}",
        before={"status": before},
        after={"status": "cancelled", "total_refunded": total},
    )
    mechanism = market.mechanism
    _on_commit(
        lambda: signals.market_transitioned.send(
            sender=Market, event="cancelled", mechanism=mechanism
        )
    )
    return event


@retry_transient()
def market_cancel(
    *,
    market_id: int,
    actor_id: int | None = None,
    actor_user_id: int | None = None,
    reason: str,
    idempotency_key: str,
) -> Market:
    """Cancel an open or closed market and refund every trader (DOMAIN §6). Emits
    `market_cancelled`."""
    reason = validate_reason(reason)

    def matches(event: MarketEvent) -> bool:
        return event.market_id == market_id and event.type == MarketEvent.Type.CANCELLED

    @transaction.atomic(durable=True)
    def body() -> MarketEvent:
        market = _market_lock(market_id)
        _event_replay(idempotency_key)
        _ensure_not_settled(market)
        return _cancel(
            market,
            actor_id=actor_id,
            actor_user_id=actor_user_id,
            reason=reason,
            request_key=idempotency_key,
            automatic=False,
        )

    run_once(idempotency_key, lookup=_lookup_event(idempotency_key), matches=matches, run=body)
    return Market.objects.get(pk=market_id)


# --- The scheduler ---------------------------------------------------------------------------


@dataclass
class TickReport:
    closed: list[int] = field(default_factory=list)
    refunded: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        return f"closed {len(self.closed)}, auto-refunded {len(self.refunded)}"


@retry_transient()
def _tick_close(market_id: int, now: dt.datetime) -> bool:
    with transaction.atomic(durable=True):
        market = _market_lock(market_id)
        if market.status != Market.Status.OPEN or market.closes_at > now:
            return False  # another process got here first
        _close(
            market,
            now=now,
            actor_id=None,
            actor_user_id=None,
            reason="",
            request_key=None,
            automatic=True,
        )
        return True


@retry_transient()
def _tick_refund(market_id: int, now: dt.datetime) -> bool:
    with transaction.atomic(durable=True):
        market = _market_lock(market_id)
        hours = guild_settings_get_or_create(guild_id=market.guild_id).auto_refund_hours
        due = market.closed_at is not None and market.closed_at + dt.timedelta(hours=hours) <= now
        if market.status != Market.Status.CLOSED or not due:
            return False
        _cancel(
            market,
            actor_id=None,
            actor_user_id=None,
            reason=f"Not resolved within {hours} hours of closing: refunded automatically",
            request_key=None,
            automatic=True,
        )
        return True


def markets_tick(*, now: dt.datetime | None = None) -> TickReport:
    """Close markets whose time is up and cancel (refund) those still unresolved
    `auto_refund_hours` after closing (DOMAIN §6). Each market is handled in its own durable
    transaction under its row lock, re-checked after locking, so several processes may tick at
    once and each market is closed or refunded exactly once."""
    now = now or timezone.now()
    report = TickReport()
    due = Market.objects.filter(status=Market.Status.OPEN, closes_at__lte=now).order_by("pk")
    for market_id in due.values_list("pk", flat=True):
        if _tick_close(market_id, now):
            report.closed.append(market_id)
    # Pre-filter in Python on each guild's `auto_refund_hours` (2 queries) so only markets that
    # are due get locked.
    candidates = list(
        Market.objects.filter(
            status=Market.Status.CLOSED, closed_at__lte=now - dt.timedelta(hours=1)
        )
        .order_by("pk")
        .values_list("pk", "guild_id", "closed_at")
    )
    hours = dict(
        GuildSettings.objects.filter(guild_id__in={g for _, g, _ in candidates}).values_list(
            "guild_id", "auto_refund_hours"
        )
    )
    for market_id, guild_id, closed_at in candidates:
        limit = hours.get(guild_id, settings.PM_GUILD_DEFAULTS["auto_refund_hours"])
        if closed_at + dt.timedelta(hours=limit) <= now and _tick_refund(market_id, now):
            report.refunded.append(market_id)
    return report
