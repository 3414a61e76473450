"""Undoing a one-click pool stake (issue 26): within `UNDO_SECONDS` of placing it and while the
market is open, the member who staked takes the stake back.

The reversal is the stake's mirror, under the same locks as a trade (the market row, then the
wallet and the escrow by primary key, DOMAIN §3): the points go escrow → wallet through the
ledger's one posting path (`points.ledger.post_many`, code `refund`), the outcome's `staked` and
the position's `points_spent` fall by the stake, so L4 (escrow = outcome stakes = position
stakes, DOMAIN §5) holds before and after. A pool stake pays no fee (`betting.rules.buy_plan`),
so there is nothing else to give back. The stake's `Trade` row stays in the trade log; a `trade`
event of kind `undo` (published after commit) tells the dashboard and the market message.

Idempotent by the stake: the refund's key is `undo:<the stake's key>`, so a second click (or a
replayed request) answers with the first undo and never pays twice."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import F, Q
from django.utils import timezone

from markets.errors import MarketStateError
from markets.models import Market, MarketEvent, Outcome
from markets.realtime import events_publish_on_commit
from markets.services.base import prices_ppm
from points import ledger
from points.errors import NotFound
from points.ledger import Leg
from points.models import Account, Transfer
from points.usecase import Call, stop_if_replayed, use_case

from ..models import Position, Trade

UNDO_SECONDS = 10
"""How long after a one-click stake its Undo button takes it back."""

MSG_UNDO_NOTHING = "There is no stake of yours to undo here; nothing was changed."
MSG_UNDO_NOT_POOL = (
    "Only a stake in a pool market can be undone; market-maker shares are sold with Sell."
)
MSG_UNDO_LATE = (
    "Too late to undo: a stake can be taken back within {seconds} seconds of placing it, and "
    "this one is {age} seconds old. It stays in until market #{market_id} settles."
)
MSG_UNDO_CLOSED = (
    "Market #{market_id} is {status}: its stakes can no longer be taken back; they stay in "
    "until it settles."
)


@dataclass(frozen=True)
class StakeUndone:
    """What an undo gave back: `amount` points of `user_id`'s stake on `label` in `market_id`,
    and their balance right after (None when answering a second click: the first one paid)."""

    market_id: int
    user_id: int
    guild_id: int
    label: str
    amount: int
    balance_after: int | None
    repeated: bool = False


def _undo_key(stake_key: str) -> str:
    return f"undo:{stake_key}"


def _undone(stake_key: str) -> StakeUndone | None:
    """The first undo of the stake under `stake_key`, as a repeated answer; None if none."""
    refund = Transfer.objects.filter(idempotency_key=_undo_key(stake_key)).first()
    if refund is None:
        return None
    stake = Trade.objects.select_related("outcome").get(idempotency_key=stake_key)
    return StakeUndone(
        stake.market_id,
        stake.user_id,
        stake.guild_id,
        stake.outcome.label,
        refund.amount,
        None,
        repeated=True,
    )


def _same_member(first: StakeUndone, call: Call) -> bool:
    return bool(first.user_id == call["user_id"] and first.guild_id == call["guild_id"])


@use_case(lookup=_undone, matches=_same_member, key="stake_key")
def stake_undo(*, guild_id: int, user_id: int, stake_key: str) -> StakeUndone:
    """Take back the pool stake that the member `user_id` placed under `stake_key`, if it is at
    most `UNDO_SECONDS` old and its market is still open (DOMAIN §5: escrow → wallet)."""
    stake = (
        Trade.objects.select_related("outcome")
        .filter(idempotency_key=stake_key, guild_id=guild_id, user_id=user_id)
        .first()
    )
    if stake is None:
        raise NotFound(MSG_UNDO_NOTHING)
    market = Market.objects.select_for_update().get(pk=stake.market_id)
    stop_if_replayed(_undone, stake_key)
    if stake.kind != Trade.Kind.STAKE:
        raise NotFound(MSG_UNDO_NOT_POOL)
    now = timezone.now()
    if market.status != Market.Status.OPEN or market.closes_at <= now:
        status = market.status if market.status != Market.Status.OPEN else "closed"
        raise MarketStateError(MSG_UNDO_CLOSED.format(market_id=market.pk, status=status))
    age = (now - stake.created_at).total_seconds()
    if age > UNDO_SECONDS:
        raise MarketStateError(
            MSG_UNDO_LATE.format(seconds=UNDO_SECONDS, age=int(age), market_id=market.pk)
        )
    wallet = Account.objects.get(guild_id=guild_id, kind=Account.Kind.WALLET, owner_id=user_id)
    locked = ledger.accounts_lock([wallet.pk], also=Q(kind=Account.Kind.ESCROW, market=market))
    escrow = next(a for a in locked.values() if a.kind == Account.Kind.ESCROW)
    amount, label = stake.amount, stake.outcome.label
    memo = f"Market #{market.pk}: stake on {label} undone"
    ledger.post_many(
        [
            Leg(
                escrow,
                locked[wallet.pk],
                amount,
                Transfer.Code.REFUND,
                _undo_key(stake_key),
                memo,
                user_id,
                None,
                market.pk,
            )
        ],
        locked,
    )
    Outcome.objects.filter(pk=stake.outcome_id).update(staked=F("staked") - amount)
    Position.objects.filter(market=market, user_id=user_id, outcome_id=stake.outcome_id).update(
        points_spent=F("points_spent") - amount, updated_at=now
    )
    Market.objects.filter(pk=market.pk).update(volume=F("volume") - amount)
    outcomes = list(Outcome.objects.filter(market=market).order_by("position"))
    event = MarketEvent.objects.create(
        market=market,
        guild_id=guild_id,
        type=MarketEvent.Type.TRADE,
        payload={
            "status": market.status,
            "user_id": str(user_id),
            "kind": "undo",
            "outcome": stake.outcome.position,
            "label": label,
            "amount": amount,
            "shares": 0,
            "fee": 0,
            "probabilities": [p / 1_000_000 for p in prices_ppm(market, outcomes)],
            "volume": market.volume - amount,
            "traders": market.trader_count,
            "trade_id": stake.pk,
        },
        request_key=_undo_key(stake_key),
        actor_id=user_id,
    )
    events_publish_on_commit([event])
    return StakeUndone(market.pk, user_id, guild_id, label, amount, locked[wallet.pk].balance)
