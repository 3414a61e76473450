"""Trading (DOMAIN §4.3–§4.6, §5): buying shares or staking on an outcome, and selling shares
back to the market maker.

Every entry point is a `points.usecase.use_case`: one durable transaction that locks the market
row first (trades of a market are serialised by it), then the member's wallet, the escrow and
the treasury in one query ordered by primary key, recomputes the quote on the locked state,
writes the trade, the transfers, the position and a `trade` event, and is idempotent by its
request key."""

from __future__ import annotations

from django.utils import timezone

from core import signals
from markets import amm
from markets.errors import (
    MSG_BET_ABOVE_MAX,
    MSG_BET_TOO_SMALL_AFTER_FEE,
    MSG_NO_SHARES,
    MSG_NOT_ENOUGH_SHARES,
    MSG_SELL_PARIMUTUEL,
    MSG_SELL_WORTH_ZERO,
    MSG_SHARES_INVALID,
    MSG_SLIPPAGE_POINTS,
    MSG_SLIPPAGE_SHARES,
    InsufficientShares,
    InvalidMarketInput,
    MarketStateError,
    SlippageExceeded,
)
from markets.models import Market, MarketEvent, Outcome
from markets.services.base import (
    ensure_trading,
    event_write,
    format_shares,
    lock_with_escrow,
    market_lock,
    on_commit,
    outcome_at,
    outcomes_locked,
    prices_ppm,
)
from points.errors import (
    MSG_INSUFFICIENT_POINTS,
    InsufficientPoints,
    InvalidAmount,
    validate_amount,
    validate_snowflake,
)
from points.models import Account, Transfer
from points.services import Leg, guild_settings_get_or_create, members_prepare, transfers_post
from points.usecase import Call, stop_if_replayed, use_case

from .models import Position, Trade


def trade_by_key(key: str) -> Trade | None:
    """The trade a request wrote under `key`, if any (its first result)."""
    return Trade.objects.select_related("outcome").filter(idempotency_key=key).first()


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
    ppm_after = prices_ppm(market, outcomes)
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
    event_write(
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
    on_commit(
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


def _same_buy(trade: Trade, call: Call) -> bool:
    return (trade.market_id, trade.user_id, trade.outcome.position, trade.amount) == (
        call["market_id"],
        call["user_id"],
        call["outcome"],
        call["amount"],
    ) and trade.kind in (Trade.Kind.BUY, Trade.Kind.STAKE)


@use_case(lookup=trade_by_key, matches=_same_buy)
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

    market = market_lock(market_id)
    stop_if_replayed(trade_by_key, idempotency_key)
    ensure_trading(market, timezone.now())
    outcomes = outcomes_locked(market)
    chosen = outcome_at(market, outcomes, outcome)
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
    locked, escrow = lock_with_escrow(market, ids)
    transfers_post(members.starting_legs, locked)
    wallet = locked[members.wallets[user_id].pk]
    if wallet.balance < amount:
        raise InsufficientPoints(
            MSG_INSUFFICIENT_POINTS.format(balance=wallet.balance, needed=amount),
            details={"balance": wallet.balance, "needed": amount},
        )
    ppm_before = prices_ppm(market, outcomes)
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


def _same_sale(trade: Trade, call: Call) -> bool:
    same = (trade.market_id, trade.user_id, trade.outcome.position, trade.kind) == (
        call["market_id"],
        call["user_id"],
        call["outcome"],
        Trade.Kind.SELL,
    )
    event = MarketEvent.objects.filter(request_key=call["idempotency_key"]).first()
    return same and event is not None and event.payload.get("requested_shares") == call["shares"]


@use_case(lookup=trade_by_key, matches=_same_sale)
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

    market = market_lock(market_id)
    stop_if_replayed(trade_by_key, idempotency_key)
    ensure_trading(market, timezone.now())
    if market.mechanism != Market.Mechanism.AMM:
        raise MarketStateError(MSG_SELL_PARIMUTUEL)
    outcomes = outcomes_locked(market)
    chosen = outcome_at(market, outcomes, outcome)
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
    ppm_before = prices_ppm(market, outcomes)
    for o, pool in zip(outcomes, result.pools, strict=True):
        o.pool = pool
    Outcome.objects.bulk_update(outcomes, ["pool"])
    members = members_prepare(guild_id=market.guild_id, user_ids=[user_id])
    ids = members.account_ids + ([members.treasury.pk] if fee else [])
    locked, escrow = lock_with_escrow(market, ids)
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
    _position_add(market, chosen, user_id, shares=-result.shares, spent=0, received=result.points)
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
