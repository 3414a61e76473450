"""Reversing the trades made after the outcome was known (docs/domain.md §6.2), latest first.

`reversal_compute` is the rule as a pure function: each trade is inverted from what it recorded,
in exact integers (a buy of net `a − fee` points for `s` micro-shares of outcome `i` took every
pool up by `x = (a − fee) · SHARE_SCALE` and pool `i` down by `s`; a sale of `s` micro-shares for
`r` gross points took every pool down by `y = r · SHARE_SCALE` and pool `i` up by `s`; a stake
added its amount to its outcome's `staked`), so the pools end exactly where they were before the
earliest reversed trade. `reversal_apply` runs it inside the settling transaction on the locked
rows and writes everything set-based: the transfers (per member, not per trade: `_legs`) in one
statement through the ledger's one posting path (`points.ledger.post_many`, `COPY`), their ids
read back by key in one query, then the marks with their links (rows of `TradeReversal`, one
`COPY`), the positions and the pools in one statement each, whatever the number of trades."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from django.db import connection
from django.db.models import Q
from django.utils import timezone

from core.sql import copy_rows, ids_by, set_by_pk
from markets import amm
from markets.holdings import Reversal
from markets.models import Market, Outcome
from points import ledger
from points.models import Account, Transfer
from points.services import audit_record

from .models import Position, Trade, TradeReversal

BACK, FEE, SHORTFALL = "back", "fee", "shortfall"


@dataclass(frozen=True)
class TradeFacts:
    """What a reversal reads of one trade (`Trade`, or the reference maths' own record)."""

    pk: int
    user_id: int
    outcome: int
    """The outcome's position."""
    kind: str
    amount: int
    shares: int
    fee: int


@dataclass(frozen=True)
class Move:
    """What reversing one trade moves, as the rule states it: `BACK` (escrow → wallet for a buy
    or stake, wallet → escrow for a sale), `FEE` (treasury → wallet, or treasury → escrow),
    `SHORTFALL` (treasury → escrow, what the wallet could not give back). The ledger receives
    them summed per member (`_legs`)."""

    trade: int
    user_id: int
    role: str
    amount: int
    to_wallet: bool


@dataclass
class Reversed:
    """The market after the reversal: pools, stakes, holdings by (user, outcome position) as
    [shares, points_spent, points_received], the moves in order, and per member the points
    their wallet gets back (negative: gives back) and the shortfall the treasury paid."""

    pools: list[int]
    staked: list[int]
    holdings: dict[tuple[int, int], list[int]]
    moves: list[Move] = field(default_factory=list)
    per_user: dict[int, int] = field(default_factory=dict)
    shortfall: dict[int, int] = field(default_factory=dict)


def reversal_compute(
    trades: Sequence[TradeFacts],
    pools: Sequence[int],
    staked: Sequence[int],
    holdings: dict[tuple[int, int], list[int]],
    balances: dict[int, int],
) -> Reversed:
    """Reverse `trades` (latest first) from the market's current state and the members' wallet
    balances (docs/domain.md §6.2). Pure: the inputs are not changed."""
    out = Reversed(list(pools), list(staked), {k: list(v) for k, v in holdings.items()})
    balance = dict(balances)
    for t in trades:
        held = out.holdings.setdefault((t.user_id, t.outcome), [0, 0, 0])
        net = t.amount - t.fee
        if t.kind == Trade.Kind.SELL:
            y = t.amount * amm.SHARE_SCALE
            out.pools = [p + y for p in out.pools]
            out.pools[t.outcome] -= t.shares
            held[0] += t.shares
            held[2] -= t.amount
            paid = min(balance.get(t.user_id, 0), net)
            balance[t.user_id] = balance.get(t.user_id, 0) - paid
            out.per_user[t.user_id] = out.per_user.get(t.user_id, 0) - paid
            _move(out, t, BACK, paid, to_wallet=False)
            _move(out, t, SHORTFALL, net - paid, to_wallet=False)
            _move(out, t, FEE, t.fee, to_wallet=False)
            if net > paid:
                out.shortfall[t.user_id] = out.shortfall.get(t.user_id, 0) + net - paid
            continue
        if t.kind == Trade.Kind.STAKE:
            out.staked[t.outcome] -= t.amount
        else:
            x = net * amm.SHARE_SCALE
            out.pools = [p - x for p in out.pools]
            out.pools[t.outcome] += t.shares
        held[0] -= t.shares
        held[1] -= t.amount
        balance[t.user_id] = balance.get(t.user_id, 0) + t.amount
        out.per_user[t.user_id] = out.per_user.get(t.user_id, 0) + t.amount
        _move(out, t, BACK, net, to_wallet=True)
        _move(out, t, FEE, t.fee, to_wallet=True)
    return out


def _move(out: Reversed, t: TradeFacts, role: str, amount: int, *, to_wallet: bool) -> None:
    if amount > 0:
        out.moves.append(Move(t.pk, t.user_id, role, amount, to_wallet))


# --- on the database ------------------------------------------------------------------------


def _late_trades(
    market: Market, known_at: dt.datetime, outcomes: list[Outcome]
) -> list[TradeFacts]:
    """The trades after `known_at` not yet reversed, latest first (1 query, read as plain
    values: a thousand of them as model instances cost more than the query)."""
    position = {o.pk: o.position for o in outcomes}
    rows = (
        Trade.objects.filter(market=market, created_at__gt=known_at, reversal__isnull=True)
        .order_by("-id")
        .values_list("pk", "user_id", "outcome_id", "kind", "amount", "shares", "fee")
    )
    return [
        TradeFacts(pk, user_id, position[outcome_id], kind, amount, shares, fee)
        for pk, user_id, outcome_id, kind, amount, shares, fee in rows
    ]


def _positions(
    market: Market, users: set[int] | None
) -> dict[tuple[int, int], tuple[int, list[int]]]:
    """(user, outcome position) -> (position row id, [shares, points_spent, points_received]),
    of `users` (None: every member with a position in the market)."""
    held = Position.objects.filter(market=market)
    if users is not None:
        held = held.filter(user_id__in=users)
    rows = held.values_list(
        "pk", "user_id", "outcome__position", "shares", "points_spent", "points_received"
    )
    return {
        (user_id, position): (pk, [shares, spent, received])
        for pk, user_id, position, shares, spent, received in rows
    }


def _holdings(
    positions: dict[tuple[int, int], tuple[int, list[int]]],
) -> dict[tuple[int, int], list[int]]:
    return {k: list(held) for k, (_, held) in positions.items()}


def _wallets(market: Market, users: set[int]) -> dict[int, int]:
    """user id → wallet account id."""
    rows = Account.objects.filter(
        guild_id=market.guild_id, kind=Account.Kind.WALLET, owner_id__in=users
    ).values_list("owner_id", "pk")
    return {owner: pk for owner, pk in rows if owner is not None}


def reversal_plan(market: Market, known_at: dt.datetime) -> Reversal:
    """What settling with `known_at` would reverse, on the balances as read now (a preview: the
    settlement recomputes it on the locked rows)."""
    outcomes = list(Outcome.objects.filter(market=market).order_by("position"))
    trades = _late_trades(market, known_at, outcomes)
    if not trades:
        return Reversal(known_at)
    users = {t.user_id for t in trades}
    wallets = _wallets(market, users)
    balances = dict(Account.objects.filter(pk__in=wallets.values()).values_list("pk", "balance"))
    result = reversal_compute(
        trades,
        [o.pool for o in outcomes],
        [o.staked for o in outcomes],
        _holdings(_positions(market, users)),
        {u: balances.get(pk, 0) for u, pk in wallets.items()},
    )
    return Reversal(
        known_at, len(trades), result.per_user, result.shortfall, [t.pk for t in trades]
    )


def reversal_apply(
    market: Market,
    outcomes: list[Outcome],
    known_at: dt.datetime,
    *,
    actor_id: int | None,
    actor_user_id: int | None,
) -> Reversal:
    """Reverse the trades after `known_at` inside the settling transaction (the caller holds the
    market's row lock and changed its status, so this runs once). Locks the escrow, the treasury
    and the wallets of everyone holding a position in the market in one query ordered by primary
    key: the payout that follows locks a subset of them, so no second lock order appears."""
    trades = _late_trades(market, known_at, outcomes)
    if not trades:
        return Reversal(known_at)
    users = {t.user_id for t in trades}
    every = _positions(market, None)
    holders = {user for user, _ in every}
    treasury = ledger.treasury_get_or_create(guild_id=market.guild_id)
    # The wallets are found by owner in the locking query itself (one query, not two).
    locked = ledger.accounts_lock(
        [treasury.pk],
        also=Q(kind=Account.Kind.ESCROW, market=market)
        | Q(guild_id=market.guild_id, kind=Account.Kind.WALLET, owner_id__in=users | holders),
    )
    escrow = next(a for a in locked.values() if a.kind == Account.Kind.ESCROW)
    wallets = {a.owner_id: a.pk for a in locked.values() if a.kind == Account.Kind.WALLET}
    positions = {key: value for key, value in every.items() if key[0] in users}
    result = reversal_compute(
        trades,
        [o.pool for o in outcomes],
        [o.staked for o in outcomes],
        _holdings(positions),
        {u: locked[wallets[u]].balance for u in users},
    )
    members = {u: locked[wallets[u]] for u in users}
    legs = _legs(market, result, escrow, locked[treasury.pk], members)
    legs = [replace(leg, actor_id=actor_id, actor_user_id=actor_user_id) for leg in legs]
    ledger.post_many(legs, locked, returning=False)
    now = timezone.now()
    transfer_ids = ids_by(Transfer, "idempotency_key", [leg.idempotency_key for leg in legs])
    # A member whose reversed trades net to 0 points has no transfer: their trades link to none.
    links = {t.pk: transfer_ids.get(_member_key(market, t.user_id)) for t in trades}
    _trades_mark(links, now)
    _positions_write(positions, result.holdings)
    for o, pool, staked in zip(outcomes, result.pools, result.staked, strict=True):
        o.pool, o.staked = pool, staked
    set_by_pk(Outcome, ("pool", "staked"), {o.pk: (o.pool, o.staked) for o in outcomes})
    reversal = Reversal(
        known_at, len(trades), result.per_user, result.shortfall, [t.pk for t in trades]
    )
    if result.shortfall:
        audit_record(
            action="reversal_shortfall",
            target_type="market",
            target_id=market.pk,
            guild_id=market.guild_id,
            actor_id=actor_id,
            actor_user_id=actor_user_id,
            reason=f"Trades after {known_at.isoformat()} reversed; wallets fell short",
            after={"shortfall": {str(u): a for u, a in sorted(result.shortfall.items())}},
        )
    return reversal


def _member_key(market: Market, user_id: int) -> str:
    return f"reversal:{market.pk}:{user_id}"


def _legs(
    market: Market,
    result: Reversed,
    escrow: Account,
    treasury: Account,
    wallet: dict[int, Account],
) -> list[ledger.Leg]:
    """The reversal's transfers, per member and not per trade (so their number follows the
    members, as a payout's does): the treasury puts every reversed fee back into the escrow in
    one transfer, each member's wallet gets back (or gives back) the net of their reversed trades
    in one, and a member's shortfall is paid by the treasury into the escrow in one."""
    memo = f"Market #{market.pk}: trades after the outcome was known, reversed"
    fees = sum(m.amount for m in result.moves if m.role == FEE)
    legs = []
    if fees:
        key = f"reversal:{market.pk}:fees"
        legs.append(_leg(treasury, escrow, fees, Transfer.Code.REVERSAL, key, memo, market))
    for user, net in sorted(result.per_user.items()):
        short = result.shortfall.get(user, 0)
        if short:
            key = f"{_member_key(market, user)}:shortfall"
            code = Transfer.Code.REVERSAL_SHORTFALL
            legs.append(_leg(treasury, escrow, short, code, key, memo, market))
        if net:  # whole amounts: a reversed buy's fee comes back through the escrow
            source, destination = (escrow, wallet[user]) if net > 0 else (wallet[user], escrow)
            key = _member_key(market, user)
            legs.append(
                _leg(source, destination, abs(net), Transfer.Code.REVERSAL, key, memo, market)
            )
    return legs


def _leg(
    source: Account,
    destination: Account,
    amount: int,
    code: str,
    key: str,
    memo: str,
    market: Market,
) -> ledger.Leg:
    return ledger.Leg(source, destination, amount, code, key, memo, market_id=market.pk)


def _trades_mark(links: dict[int, int | None], now: dt.datetime) -> None:
    """Mark the reversed trades and link each to its member's reversal transfer: one row each in
    `TradeReversal`, written in one statement (`COPY` on PostgreSQL)."""
    if connection.vendor != "postgresql":
        TradeReversal.objects.bulk_create(
            [TradeReversal(trade_id=pk, reversed_at=now, transfer_id=t) for pk, t in links.items()]
        )
        return
    columns = [(name, name) for name in ("trade_id", "reversed_at", "transfer_id")]
    copy_rows(TradeReversal, columns, [[pk, now, t] for pk, t in links.items()])


def _positions_write(
    positions: dict[tuple[int, int], tuple[int, list[int]]],
    holdings: dict[tuple[int, int], list[int]],
) -> None:
    """The reversed trades' positions back to what they were at `known_at` (one statement).
    A reversed trade's position exists: the trade made or changed it."""
    values: dict[int, tuple[int, ...]] = {
        positions[key][0]: (shares, spent, received)
        for key, (shares, spent, received) in holdings.items()
        if key in positions
    }
    set_by_pk(Position, ("shares", "points_spent", "points_received"), values)
