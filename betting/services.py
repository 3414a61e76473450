"""Trading (DOMAIN §4.3–§4.6, §5): buying shares or staking on an outcome, and selling shares
back to the market maker.

There is one implementation of the trading rules: `trades_apply`, which applies a list of trade
requests on one market in one durable transaction with exactly the results that applying them one
by one would give. `bet_place` and `shares_sell` are one-request calls of it (the web, the admin
and scripts use them); the Discord bot batches the requests that arrive for a market while the
previous batch commits (`discordbot.batching`).

Inside the transaction: the market row is locked first (trades of a market are serialised by it),
every request key is looked up in one query, the members' wallets, the escrow and (when needed) the
treasury are locked in one query ordered by primary key, the requests are applied in order in
memory, and everything is written with a constant number of statements whatever the batch size."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import JSONField, OuterRef, Q, Subquery
from django.utils import timezone

from core import signals
from core.errors import DomainError
from markets import amm
from markets.errors import (
    MSG_BET_ABOVE_MAX,
    MSG_BET_TOO_SMALL_AFTER_FEE,
    MSG_MARKET_NOT_FOUND,
    MSG_NO_SHARES,
    MSG_NOT_ENOUGH_SHARES,
    MSG_SELL_PARIMUTUEL,
    MSG_SELL_WORTH_ZERO,
    MSG_SHARES_INVALID,
    MSG_SLIPPAGE_POINTS,
    MSG_SLIPPAGE_SHARES,
    InsufficientShares,
    InvalidMarketInput,
    MarketNotFound,
    MarketStateError,
    SlippageExceeded,
)
from markets.models import Market, MarketEvent, Outcome
from markets.realtime import events_publish_on_commit
from markets.services.base import ensure_trading, format_shares, outcome_at, prices_ppm
from points.db import integrity_constraint, retry_transient
from points.errors import (
    MSG_IDEMPOTENCY_CONFLICT,
    MSG_INSUFFICIENT_POINTS,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidAmount,
    InvalidInput,
    validate_amount,
    validate_key,
    validate_snowflake,
)
from points.models import Account, Transfer
from points.services import guild_settings_get_or_create, treasury_get_or_create
from points.usecase import (
    IDEMPOTENCY_CONSTRAINTS,
    UNKNOWN_OUTCOME_ATTEMPTS,
    OutcomeUnknown,
    commit_outcome_unknown,
    recheck,
)

from .models import Position, Trade

MAX_BATCH = 256
"""The most requests one `trades_apply` call should carry (the bot's queue takes at most this)."""

MSG_TRADE_KIND = "A trade request is “buy” or “sell”; got {kind!r}."
MSG_SOLD_REMAINDER = "the last fraction of a point stays in the market"


@dataclass(frozen=True)
class TradeRequest:
    """One member's trade on the market `trades_apply` is called for. "buy" on a pari-mutuel
    market is a stake (DOMAIN §5); `shares=None` on a sell means the whole position."""

    kind: Literal["buy", "sell"]
    user_id: int
    outcome: int
    idempotency_key: str
    amount: int | None = None
    shares: int | None = None
    min_shares: int | None = None
    min_points: int | None = None


def trade_by_key(key: str) -> Trade | None:
    """The trade a request wrote under `key`, if any (its first result)."""
    return Trade.objects.select_related("outcome").filter(idempotency_key=key).first()


# --- The one implementation of the rules --------------------------------------------------------


@retry_transient()
def trades_apply(*, market_id: int, requests: Sequence[TradeRequest]) -> list[Trade | DomainError]:
    """Apply `requests` on market `market_id` in order, in one durable transaction, and return,
    at each request's position, its `Trade` or the `DomainError` that refused it. A refused
    request leaves no trace and does not stop the others; a replayed key returns the first
    result (also within the batch), a key reused with other content `IdempotencyConflict`.

    Locks the market row, then the members' wallets, the escrow and the treasury (when a fee is
    charged or a wallet is new) in one query ordered by primary key (DOMAIN §3). Emits one
    `trade` event per trade, in request order, published after commit.

    If the batch hits an integrity error (a key raced in by a trade on another market, say), its
    requests are applied one by one so one request cannot sink the others."""
    requests = list(requests)
    if not requests:
        return []
    for attempt in range(1, UNKNOWN_OUTCOME_ATTEMPTS + 2):
        committing = False
        try:
            with transaction.atomic(durable=True):
                results = _Batch(market_id, requests).run()
                committing = True  # from here on only COMMIT can fail
            return results
        except IntegrityError as exc:
            if len(requests) > 1:
                return [_apply_alone(market_id, request) for request in requests]
            return [_integrity_answer(exc, market_id, requests[0])]
        except (OperationalError, InterfaceError) as exc:
            # Know before you say (the use-case decorator's rule, points.usecase): the
            # connection broke during or after COMMIT. Reconnect and ask; the same batch again
            # is then safe either way, because every request carries its key: what committed
            # comes back as a replay, what did not is applied now. `OutcomeUnknown` while the
            # database cannot be asked.
            if not (committing and commit_outcome_unknown(exc)):
                raise
            key = requests[0].idempotency_key
            recheck(trade_by_key, key, exc, "trades_apply")
            if attempt > UNKNOWN_OUTCOME_ATTEMPTS:
                raise OutcomeUnknown(key) from exc
    raise AssertionError("unreachable")  # pragma: no cover


def _apply_alone(market_id: int, request: TradeRequest) -> Trade | DomainError:
    return trades_apply(market_id=market_id, requests=[request])[0]


def _integrity_answer(
    exc: IntegrityError, market_id: int, request: TradeRequest
) -> Trade | DomainError:
    """A one-request batch hit a unique key: answer as a replay of the trade that holds it, as
    a conflict when another kind of request holds it (a vote's key, say), or re-raise."""
    constraint = integrity_constraint(exc)
    if constraint in IDEMPOTENCY_CONSTRAINTS:
        existing = trade_by_key(request.idempotency_key)
        if existing is None:
            return _conflict(request)
        requested = _requested_shares_of(existing) if existing.kind == Trade.Kind.SELL else None
        same = existing.market_id == market_id and _same_request(existing, requested, request)
        return existing if same else _conflict(request)
    if constraint == "account_balance_nonnegative":
        return InsufficientPoints(
            "You don't have enough points for that.", details={"constraint": constraint}
        )
    raise exc


def _requested_shares_of(trade: Trade) -> int | None:
    event = MarketEvent.objects.filter(request_key=trade.idempotency_key).first()
    return None if event is None else event.payload.get("requested_shares")


def _same_request(trade: Trade, requested_shares: int | None, request: TradeRequest) -> bool:
    """Whether the first result under a key was made by a request with this content: the same
    market-independent facts a member typed (outcome, amount or shares)."""
    if (trade.user_id, trade.outcome.position) != (request.user_id, request.outcome):
        return False
    if request.kind == "buy":
        return trade.kind != Trade.Kind.SELL and trade.amount == request.amount
    return trade.kind == Trade.Kind.SELL and requested_shares == request.shares


def _conflict(request: TradeRequest) -> IdempotencyConflict:
    key = request.idempotency_key
    return IdempotencyConflict(MSG_IDEMPOTENCY_CONFLICT.format(key=key), details={"key": key})


def _validate(request: TradeRequest) -> None:
    """The checks that need no database, in the order the one-request services always made them."""
    validate_key(request.idempotency_key)
    if request.kind not in ("buy", "sell"):
        raise InvalidInput(MSG_TRADE_KIND.format(kind=request.kind))
    validate_snowflake(request.user_id, what="user_id")
    if request.kind == "buy":
        validate_amount(request.amount, what="stake")
    elif request.shares is not None and (
        isinstance(request.shares, bool)
        or not isinstance(request.shares, int)
        or request.shares <= 0
    ):
        raise InvalidMarketInput(MSG_SHARES_INVALID)


@dataclass
class _Holding:
    """A position row as the batch sees it (existing or new)."""

    outcome: Outcome
    user_id: int
    shares: int = 0
    points_spent: int = 0
    points_received: int = 0
    touched: bool = False


@dataclass
class _Accounts:
    """The locked accounts' balances in memory, and what the batch will move."""

    wallets: dict[int, int]  # user_id → wallet pk
    created: set[int]  # user_ids whose wallet this batch created
    balances: dict[int, int]  # pk → balance (a created wallet starts with its starting balance)
    escrow: int
    treasury: int | None
    starting_balance: int
    delta: dict[int, int] = field(default_factory=dict)

    def move(self, source: int, destination: int, amount: int) -> None:
        self.balances[source] -= amount
        self.balances[destination] += amount
        self.delta[source] = self.delta.get(source, 0) - amount
        self.delta[destination] = self.delta.get(destination, 0) + amount


class _Batch:
    """One `trades_apply` call inside its transaction."""

    def __init__(self, market_id: int, requests: list[TradeRequest]) -> None:
        self.market_id = market_id
        self.requests = requests
        self.results: list[Trade | DomainError | None] = [None] * len(requests)
        self.trades: list[Trade] = []
        self.transfers: list[dict] = []  # Transfer fields, written by `_write`
        self.events: list[dict] = []  # MarketEvent fields, written by `_write`
        self.sold_remainder: dict[str, int] = {}
        self.by_key: dict[str, Trade] = {}  # keys this batch has written, for in-batch replays
        self.requested: dict[str, int | None] = {}

    def run(self) -> list[Trade | DomainError]:
        pending: list[int] = []
        for index, request in enumerate(self.requests):
            try:
                _validate(request)
            except DomainError as error:
                self.results[index] = error
            else:
                pending.append(index)
        if not pending:
            return self._answers()
        market = self._market_lock()
        if market is None:
            missing = MSG_MARKET_NOT_FOUND.format(market_id=self.market_id)
            for index in pending:
                self.results[index] = MarketNotFound(missing)
            return self._answers()
        self.market = market
        self.outcomes = list(Outcome.objects.filter(market=market).order_by("position"))
        self.now = timezone.now()
        existing = self._existing_trades([self.requests[i].idempotency_key for i in pending])
        fresh = self._answer_replays(pending, existing)
        users = sorted({self.requests[i].user_id for i in fresh})
        self.settings_row = guild_settings_get_or_create(guild_id=market.guild_id)
        self.accounts = self._accounts_lock(users) if users else None
        self.holdings = self._holdings(users)
        self.traders = {user_id for user_id, _ in self.holdings}
        for index in fresh:
            request = self.requests[index]
            earlier = self.by_key.get(request.idempotency_key)
            if earlier is not None:
                requested = self.requested[request.idempotency_key]
                same = _same_request(earlier, requested, request)
                self.results[index] = earlier if same else _conflict(request)
                continue
            try:
                self.results[index] = (
                    self._buy(request) if request.kind == "buy" else self._sell(request)
                )
            except DomainError as error:
                self.results[index] = error
        self._write()
        return self._answers()

    def _answers(self) -> list[Trade | DomainError]:
        answers = [r for r in self.results if r is not None]
        assert len(answers) == len(self.requests)
        return answers

    # --- reads -----------------------------------------------------------------------------

    def _market_lock(self) -> Market | None:
        market_id = self.market_id
        if isinstance(market_id, bool) or not isinstance(market_id, int) or market_id <= 0:
            return None
        return Market.objects.select_for_update().filter(pk=market_id).first()

    def _existing_trades(self, keys: list[str]) -> dict[str, tuple[Trade, int | None]]:
        """Every key's first result, with the shares its request asked for (sells), in one
        query. Caller holds the market lock, so a twin on this market has committed or waits."""
        asked = MarketEvent.objects.filter(request_key=OuterRef("idempotency_key")).values(
            "payload"
        )[:1]
        rows = (
            Trade.objects.select_related("outcome")
            .filter(idempotency_key__in=set(keys))
            .annotate(event_payload=Subquery(asked, output_field=JSONField()))
        )
        return {
            t.idempotency_key: (t, (t.event_payload or {}).get("requested_shares")) for t in rows
        }

    def _answer_replays(
        self, pending: list[int], existing: dict[str, tuple[Trade, int | None]]
    ) -> list[int]:
        fresh = []
        for index in pending:
            request = self.requests[index]
            found = existing.get(request.idempotency_key)
            if found is None:
                fresh.append(index)
            else:
                trade, requested = found
                same = trade.market_id == self.market.pk and _same_request(
                    trade, requested, request
                )
                self.results[index] = trade if same else _conflict(request)
        return fresh

    def _accounts_lock(self, users: list[int]) -> _Accounts:
        """Get or create the members' wallets (one insert for the new ones, in user order so two
        batches creating the same wallets cannot deadlock), then lock them, the escrow and the
        treasury in one query ordered by primary key (DOMAIN §3). A wallet this batch creates
        gets the guild's starting balance with its first trade; if none of its member's requests
        succeeds it is removed again, as if the one-request transaction had rolled back."""
        market = self.market
        guild_id = market.guild_id
        wallets: dict[int, int] = {
            owner: pk
            for owner, pk in Account.objects.filter(
                guild_id=guild_id, kind=Account.Kind.WALLET, owner_id__in=users
            ).values_list("owner_id", "pk")
            if owner is not None
        }
        missing = [u for u in users if u not in wallets]
        created: dict[int, int] = {}
        if missing:
            created = _wallets_insert(guild_id, missing)
            wallets.update(created)
            lost = [u for u in missing if u not in created]
            if lost:  # created meanwhile by another transaction, which gave the starting balance
                for owner, pk in Account.objects.filter(
                    guild_id=guild_id, kind=Account.Kind.WALLET, owner_id__in=lost
                ).values_list("owner_id", "pk"):
                    if owner is not None:
                        wallets[owner] = pk
        needs_treasury = bool(created) or market.fee_bps > 0
        treasury = treasury_get_or_create(guild_id=guild_id).pk if needs_treasury else None
        wanted = Q(pk__in=list(wallets.values())) | Q(kind=Account.Kind.ESCROW, market=market)
        if treasury is not None:
            wanted |= Q(pk=treasury)
        rows = list(
            Account.objects.select_for_update()
            .filter(wanted)
            .order_by("pk")
            .values_list("pk", "kind", "balance")
        )
        balances = {pk: balance for pk, _, balance in rows}
        escrow = next(pk for pk, kind, _ in rows if kind == Account.Kind.ESCROW)
        starting = self.settings_row.starting_balance
        for pk in created.values():
            balances[pk] += starting
        return _Accounts(
            wallets=wallets,
            created=set(created),
            balances=balances,
            escrow=escrow,
            treasury=treasury,
            starting_balance=starting,
        )

    def _holdings(self, users: list[int]) -> dict[tuple[int, int], _Holding]:
        """The members' positions in this market, by (user, outcome position). Caller holds the
        market lock: positions of a market change only under it."""
        if not users:
            return {}
        by_id = {o.pk: o for o in self.outcomes}
        holdings = {}
        rows = Position.objects.filter(market=self.market, user_id__in=users).values_list(
            "outcome_id", "user_id", "shares", "points_spent", "points_received"
        )
        for outcome_id, user_id, shares, spent, received in rows:
            outcome = by_id[outcome_id]
            holdings[(user_id, outcome.position)] = _Holding(
                outcome, user_id, shares, spent, received
            )
        return holdings

    # --- the rules (DOMAIN §4.3, §4.4, §4.6, §5), on the locked state in memory -------------

    def _buy(self, request: TradeRequest) -> Trade:
        market, outcomes, amount = self.market, self.outcomes, request.amount
        assert amount is not None and self.accounts is not None
        ensure_trading(market, self.now)
        chosen = outcome_at(market, outcomes, request.outcome)
        max_bet = self.settings_row.max_bet
        if amount > max_bet:
            raise InvalidAmount(
                MSG_BET_ABOVE_MAX.format(max_bet=max_bet), details={"max_bet": max_bet}
            )
        is_amm = market.mechanism == Market.Mechanism.AMM
        fee = amm.fee_for(amount, market.fee_bps) if is_amm else 0
        if amount - fee <= 0:
            raise InvalidAmount(MSG_BET_TOO_SMALL_AFTER_FEE.format(fee=fee))
        accounts = self.accounts
        wallet = accounts.wallets[request.user_id]
        balance = accounts.balances[wallet]
        if balance < amount:
            raise InsufficientPoints(
                MSG_INSUFFICIENT_POINTS.format(balance=balance, needed=amount),
                details={"balance": balance, "needed": amount},
            )
        ppm_before = prices_ppm(market, outcomes)
        shares = 0
        if is_amm:
            result = amm.buy([o.pool for o in outcomes], chosen.position, amount - fee)
            if request.min_shares is not None and result.shares < request.min_shares:
                raise SlippageExceeded(
                    MSG_SLIPPAGE_SHARES.format(
                        got=format_shares(result.shares), limit=format_shares(request.min_shares)
                    ),
                    details={"shares": result.shares, "min_shares": request.min_shares},
                )
            for o, pool in zip(outcomes, result.pools, strict=True):
                o.pool = pool
            shares = result.shares
            kind = Trade.Kind.BUY
        else:
            chosen.staked += amount
            kind = Trade.Kind.STAKE
        # Nothing can refuse the request from here on: record it.
        key = request.idempotency_key
        self._starting_balance(request.user_id)
        self._transfer(
            wallet,
            accounts.escrow,
            amount - fee,
            Transfer.Code.BUY,
            f"{key}:buy",
            f"Market #{market.pk}: {chosen.label}",
            request.user_id,
        )
        if fee:
            self._fee(wallet, fee, key, request.user_id)
        self._position_add(chosen, request.user_id, shares=shares, spent=amount, received=0)
        return self._trade(request, chosen, kind, amount, shares, fee, ppm_before)

    def _sell(self, request: TradeRequest) -> Trade:
        market, outcomes = self.market, self.outcomes
        assert self.accounts is not None
        ensure_trading(market, self.now)
        if market.mechanism != Market.Mechanism.AMM:
            raise MarketStateError(MSG_SELL_PARIMUTUEL)
        chosen = outcome_at(market, outcomes, request.outcome)
        holding = self.holdings.get((request.user_id, chosen.position))
        if holding is None or holding.shares == 0:
            raise InsufficientShares(MSG_NO_SHARES.format(label=chosen.label, market_id=market.pk))
        asked = holding.shares if request.shares is None else request.shares
        if asked > holding.shares:
            raise InsufficientShares(
                MSG_NOT_ENOUGH_SHARES.format(
                    held=format_shares(holding.shares),
                    label=chosen.label,
                    asked=format_shares(asked),
                )
            )
        result = amm.sell([o.pool for o in outcomes], chosen.position, asked)
        points = result.points
        fee = amm.fee_for(points, market.fee_bps)
        closing = request.shares is None and points - fee <= 0
        if closing:
            # DOMAIN §4.4: "all" of a position worth less than a point closes it as a 0-point
            # sale; the shares join the pool and no point moves.
            points = fee = 0
        elif points - fee <= 0:
            raise InvalidAmount(MSG_SELL_WORTH_ZERO, details={"points": points, "fee": fee})
        if request.min_points is not None and points - fee < request.min_points:
            raise SlippageExceeded(
                MSG_SLIPPAGE_POINTS.format(got=points - fee, limit=request.min_points),
                details={"points": points - fee, "min_points": request.min_points},
            )
        ppm_before = prices_ppm(market, outcomes)
        pools = result.pools
        if closing:
            pools = [o.pool + asked if o.position == chosen.position else o.pool for o in outcomes]
        for o, pool in zip(outcomes, pools, strict=True):
            o.pool = pool
        key = request.idempotency_key
        accounts = self.accounts
        wallet = accounts.wallets[request.user_id]
        self._starting_balance(request.user_id)
        if points:
            self._transfer(
                accounts.escrow,
                wallet,
                points,
                Transfer.Code.SELL,
                f"{key}:sell",
                f"Market #{market.pk}: sold {chosen.label}",
                request.user_id,
            )
        if fee:
            self._fee(wallet, fee, key, request.user_id)
        self._position_add(chosen, request.user_id, shares=-asked, spent=0, received=points)
        self.sold_remainder[key] = asked if closing else result.left_in_pool
        return self._trade(request, chosen, Trade.Kind.SELL, points, asked, fee, ppm_before)

    # --- recording (in memory, written by `_write`) ----------------------------------------

    def _transfer(
        self,
        source: int,
        destination: int,
        amount: int,
        code: str,
        key: str,
        memo: str,
        actor_id: int | None,
        *,
        market: bool = True,
    ) -> None:
        assert self.accounts is not None
        self.accounts.move(source, destination, amount)
        self.transfers.append(
            {
                "guild_id": self.market.guild_id,
                "source_id": source,
                "destination_id": destination,
                "amount": amount,
                "code": code,
                "idempotency_key": key,
                "memo": memo[:500],
                "actor_id": actor_id,
                "actor_user_id": None,
                "market_id": self.market.pk if market else None,
            }
        )

    def _fee(self, wallet: int, fee: int, key: str, user_id: int) -> None:
        """The trading fee, wallet → treasury (DOMAIN §4.3, §4.4)."""
        assert self.accounts is not None and self.accounts.treasury is not None
        self._transfer(
            wallet,
            self.accounts.treasury,
            fee,
            Transfer.Code.FEE,
            f"{key}:fee",
            f"Fee, market #{self.market.pk}",
            user_id,
        )

    def _starting_balance(self, user_id: int) -> None:
        """A wallet this batch created receives the starting balance with its first trade."""
        accounts = self.accounts
        assert accounts is not None
        if user_id not in accounts.created:
            return
        accounts.created.discard(user_id)
        if accounts.starting_balance > 0:
            assert accounts.treasury is not None
            wallet = accounts.wallets[user_id]
            accounts.balances[wallet] -= accounts.starting_balance  # counted in advance
            guild_id = self.market.guild_id
            self._transfer(
                accounts.treasury,
                wallet,
                accounts.starting_balance,
                Transfer.Code.STARTING_BALANCE,
                f"start:{guild_id}:{user_id}",
                "Starting balance",
                None,
                market=False,
            )

    def _position_add(
        self, outcome: Outcome, user_id: int, *, shares: int, spent: int, received: int
    ) -> None:
        holding = self.holdings.get((user_id, outcome.position))
        if holding is None:
            holding = self.holdings[(user_id, outcome.position)] = _Holding(outcome, user_id)
            if user_id not in self.traders:
                self.traders.add(user_id)
                self.market.trader_count += 1
        holding.shares += shares
        holding.points_spent += spent
        holding.points_received += received
        holding.touched = True

    def _trade(
        self,
        request: TradeRequest,
        outcome: Outcome,
        kind: str,
        amount: int,
        shares: int,
        fee: int,
        ppm_before: list[int],
    ) -> Trade:
        market = self.market
        ppm_after = prices_ppm(market, self.outcomes)
        trade = Trade(
            market=market,
            outcome=outcome,
            guild_id=market.guild_id,
            user_id=request.user_id,
            kind=kind,
            amount=amount,
            shares=shares,
            fee=fee,
            price_before_ppm=ppm_before[outcome.position],
            price_after_ppm=ppm_after[outcome.position],
            prices_after_ppm=ppm_after,
            idempotency_key=request.idempotency_key,
        )
        market.volume += amount
        market.trade_count += 1
        payload: dict[str, Any] = {
            "status": market.status,
            "user_id": str(request.user_id),
            "kind": kind,
            "outcome": outcome.position,
            "label": outcome.label,
            "amount": amount,
            "shares": shares,
            "fee": fee,
            "probabilities": [p / 1_000_000 for p in ppm_after],
            "volume": market.volume,
            "traders": market.trader_count,
        }
        if kind == Trade.Kind.SELL:
            payload["requested_shares"] = request.shares
            payload["left_in_pool"] = self.sold_remainder[request.idempotency_key]
        self.events.append(
            {
                "market_id": market.pk,
                "guild_id": market.guild_id,
                "type": MarketEvent.Type.TRADE.value,
                "payload": payload,
                "idempotency_key": None,
                "request_key": request.idempotency_key,
                "actor_id": request.user_id,
            }
        )
        if kind == Trade.Kind.SELL:
            trade.left_in_pool = payload["left_in_pool"]
        # The member's balance right after this trade, for the reply (no query needed).
        assert self.accounts is not None
        trade.balance_after = self.accounts.balances[self.accounts.wallets[request.user_id]]
        self.trades.append(trade)
        self.by_key[request.idempotency_key] = trade
        self.requested[request.idempotency_key] = request.shares
        return trade

    # --- writes: a constant number of statements whatever the batch size ------------------

    def _write(self) -> None:
        accounts = self.accounts
        if accounts is not None and accounts.created:
            # Wallets created for members none of whose requests succeeded.
            _rows_delete(Account, [accounts.wallets[u] for u in accounts.created])
        if not self.trades:
            return
        assert accounts is not None
        market = self.market
        now = timezone.now()
        _insert(Trade, self.trades, now, key="idempotency_key")
        for trade, event in zip(self.trades, self.events, strict=True):
            event["payload"] = {**event["payload"], "trade_id": trade.pk}
        _insert_rows(Transfer, self.transfers, now)
        self.published = _insert_rows(MarketEvent, self.events, now, key="request_key")
        _add_by_pk(Account, "balance", {pk: d for pk, d in accounts.delta.items() if d})
        _set_by_pk(Outcome, ("pool", "staked"), {o.pk: (o.pool, o.staked) for o in self.outcomes})
        _positions_upsert(market, [h for h in self.holdings.values() if h.touched], now)
        Market.objects.filter(pk=market.pk).update(
            volume=market.volume, trade_count=market.trade_count, trader_count=market.trader_count
        )
        self._after_commit()

    def _after_commit(self) -> None:
        events = self.published
        facts = [(t.kind, t.amount) for t in self.trades]
        mechanism = self.market.mechanism

        events_publish_on_commit(events)

        def count() -> None:
            for kind, amount in facts:
                signals.trade_committed.send(
                    sender=Trade, mechanism=mechanism, kind=kind, amount=amount
                )

        transaction.on_commit(count)


# --- Set-based SQL (PostgreSQL, and SQLite ≥ 3.33 for the embedded default) ---------------------


def _columns(model: Any, row: dict) -> list[tuple[str, str]]:
    """(attribute, column) of `row`'s fields, plus `created_at`."""
    fields = {f.attname: f.column for f in model._meta.concrete_fields}
    return [(name, fields[name]) for name in [*row, "created_at"]]


def _copy(model: Any, columns: list[tuple[str, str]], rows: list[list]) -> None:
    """PostgreSQL `COPY … FROM STDIN`: the fastest way to write many rows in one statement."""
    table = connection.ops.quote_name(model._meta.db_table)
    names = ", ".join(connection.ops.quote_name(column) for _, column in columns)
    with (
        connection.cursor() as cursor,
        connection.wrap_database_errors,
        cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)


def _ids_by(model: Any, key: str, values: list[str]) -> dict[str, int]:
    field = model._meta.get_field(key)
    return dict(model.objects.filter(**{f"{key}__in": values}).values_list(field.attname, "pk"))


def _json_ready(value: object) -> object:
    return json.dumps(value) if isinstance(value, (dict, list)) else value


def _insert(model: Any, objects: list, now: dt.datetime, *, key: str) -> None:
    """Write model instances in one statement and give them their pks and `created_at`
    (`key` is a unique field: on PostgreSQL the pks are read back by it, one more query)."""
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objects)
        return
    names = [
        f.attname
        for f in model._meta.concrete_fields
        if not f.primary_key and f.attname != "created_at"
    ]
    columns = _columns(model, dict.fromkeys(names))
    _copy(
        model,
        columns,
        [[_json_ready(getattr(o, n)) for n in names] + [now] for o in objects],
    )
    ids = _ids_by(model, key, [getattr(o, key) for o in objects])
    for o in objects:
        o.pk = ids[getattr(o, key)]
        o.created_at = now
        o._state.adding = False


def _insert_rows(model: Any, rows: list[dict], now: dt.datetime, *, key: str | None = None) -> list:
    """Write rows given as field dicts in one statement; with `key` (a unique field), return
    them as saved instances (one more query on PostgreSQL), e.g. events to publish."""
    if not rows:
        return []
    if connection.vendor != "postgresql":
        return model.objects.bulk_create([model(**row) for row in rows])
    columns = _columns(model, rows[0])
    _copy(model, columns, [[_json_ready(v) for v in row.values()] + [now] for row in rows])
    if key is None:
        return []
    ids = _ids_by(model, key, [row[key] for row in rows])
    return [model(pk=ids[row[key]], created_at=now, **row) for row in rows]


def _positions_upsert(market: Market, holdings: list[_Holding], now: dt.datetime) -> None:
    """Insert or update the positions a batch changed, in one statement: their new values
    (computed under the market lock, so absolute values are safe)."""
    if connection.vendor != "postgresql":
        Position.objects.bulk_create(
            [
                Position(
                    market=market,
                    outcome=h.outcome,
                    guild_id=market.guild_id,
                    user_id=h.user_id,
                    shares=h.shares,
                    points_spent=h.points_spent,
                    points_received=h.points_received,
                    updated_at=now,
                )
                for h in holdings
            ],
            update_conflicts=True,
            unique_fields=["market", "user_id", "outcome"],
            update_fields=["shares", "points_spent", "points_received", "updated_at"],
        )
        return
    table = connection.ops.quote_name(Position._meta.db_table)
    sql = (
        f"INSERT INTO {table} (market_id, outcome_id, guild_id, user_id, shares, points_spent, "
        "points_received, payout, created_at, updated_at) "
        "SELECT %s, o, %s, u, s, sp, r, 0, %s, %s FROM unnest("
        "%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[]) "
        "AS v(o, u, s, sp, r) "
        "ON CONFLICT (market_id, user_id, outcome_id) DO UPDATE SET shares = EXCLUDED.shares, "
        "points_spent = EXCLUDED.points_spent, points_received = EXCLUDED.points_received, "
        "updated_at = EXCLUDED.updated_at"
    )
    params: list[Any] = [
        market.pk,
        market.guild_id,
        now,
        now,
        [h.outcome.pk for h in holdings],
        [h.user_id for h in holdings],
        [h.shares for h in holdings],
        [h.points_spent for h in holdings],
        [h.points_received for h in holdings],
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _wallets_insert(guild_id: int, users: list[int]) -> dict[int, int]:
    """Insert wallets for `users` in one statement, skipping any that exist; returns the ones
    this statement created, user_id → pk."""
    table = connection.ops.quote_name(Account._meta.db_table)
    now = timezone.now()
    rows = ", ".join(["(%s, %s, %s, NULL, 0, %s)"] * len(users))
    params: list[Any] = []
    for user_id in users:
        params += [guild_id, Account.Kind.WALLET, user_id, _db_time(now)]
    sql = (
        f"INSERT INTO {table} (guild_id, kind, owner_id, market_id, balance, created_at) "
        f"VALUES {rows} ON CONFLICT DO NOTHING RETURNING owner_id, id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return dict(cursor.fetchall())


def _db_time(value: dt.datetime) -> object:
    return connection.ops.adapt_datetimefield_value(value)


def _values(rows: int, width: int) -> str:
    if connection.vendor == "postgresql":
        row = "(" + ", ".join(["%s::bigint"] * width) + ")"
    else:
        row = "(" + ", ".join(["%s"] * width) + ")"
    return ", ".join([row] * rows)


def _update_from_values(model: Any, assignments: str, columns: list[str], rows: list) -> None:
    """`UPDATE table SET … FROM (VALUES …) v WHERE table.id = v.id` in one statement.
    `assignments` uses `{t}` for the table and `{v.col}` style names from `columns`."""
    if not rows:
        return
    table = connection.ops.quote_name(model._meta.db_table)
    width = len(columns)
    params = [value for row in rows for value in row]
    if connection.vendor == "postgresql":
        alias = f"v({', '.join(columns)})"
        names = {c: f"v.{c}" for c in columns}
    else:  # SQLite names VALUES columns column1, column2, …
        alias = "v"
        names = {c: f"v.column{n + 1}" for n, c in enumerate(columns)}
    sets = assignments.format(t=table, **names)
    sql = (
        f"UPDATE {table} SET {sets} FROM (VALUES {_values(len(rows), width)}) AS {alias} "
        f"WHERE {table}.id = {names['id']}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _add_by_pk(model: Any, column: str, deltas: dict[int, int]) -> None:
    """Add `deltas[pk]` to `column` of each row, in one statement."""
    _update_from_values(
        model, f"{column} = {{t}}.{column} + {{delta}}", ["id", "delta"], sorted(deltas.items())
    )


def _set_by_pk(model: Any, columns: tuple[str, ...], values: dict[int, tuple]) -> None:
    """Set `columns` of each row to `values[pk]`, in one statement."""
    sets = ", ".join(f"{c} = {{{c}}}" for c in columns)
    _update_from_values(
        model, sets, ["id", *columns], [(pk, *v) for pk, v in sorted(values.items())]
    )


def _rows_delete(model: Any, pks: list[int]) -> None:
    table = connection.ops.quote_name(model._meta.db_table)
    marks = ", ".join(["%s"] * len(pks))
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE id IN ({marks})", pks)


# --- One-request services -------------------------------------------------------------------


def _one(market_id: int, request: TradeRequest) -> Trade:
    (result,) = trades_apply(market_id=market_id, requests=[request])
    if isinstance(result, DomainError):
        raise result
    return result


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
    wallet. Emits `trade`. A one-request `trades_apply`."""
    return _one(
        market_id,
        TradeRequest(
            kind="buy",
            user_id=user_id,
            outcome=outcome,
            idempotency_key=idempotency_key,
            amount=amount,
            min_shares=min_shares,
        ),
    )


def shares_sell(
    *,
    market_id: int,
    user_id: int,
    outcome: int,
    shares: int | None = None,
    idempotency_key: str,
    min_points: int | None = None,
) -> Trade:
    """Sell exactly `shares` micro-shares (None = the whole position) of `outcome` back to the
    market maker (DOMAIN §4.4): the member receives the largest whole number of points whose
    cost fits and the fraction of a point beyond it stays in the pool. Refuses a sale worth 0
    points, except "all" of a position worth less than a point (closed as a 0-point sale), and
    less than `min_points` after the fee (§4.6). Emits `trade`. A one-request `trades_apply`."""
    return _one(
        market_id,
        TradeRequest(
            kind="sell",
            user_id=user_id,
            outcome=outcome,
            idempotency_key=idempotency_key,
            shares=shares,
            min_points=min_points,
        ),
    )


def sale_left_in_pool(trade: Trade) -> int:
    """Micro-shares of a sale beyond what its points cost (the last fraction of a point, kept by
    the market, DOMAIN §4.4); 0 for buys and stakes."""
    if trade.kind != Trade.Kind.SELL:
        return 0
    if hasattr(trade, "left_in_pool"):  # set on the trades a batch just wrote
        return trade.left_in_pool
    event = MarketEvent.objects.filter(request_key=trade.idempotency_key).first()
    return 0 if event is None else int(event.payload.get("left_in_pool", 0))
