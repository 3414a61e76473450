"""`trades_apply`'s batch inside its transaction (DOMAIN §4.3–§4.6, §5): the market row is
locked first (trades of a market are serialised by it), every request key is looked up in one
query, the members' wallets are opened where missing (`points.ledger.wallets_open`), the wallets,
the escrow and (when needed) the treasury are locked in one query ordered by primary key, and
the requests are applied in order: `betting.rules` decides each one on the locked state in
memory, and its transfers are staged in a `points.ledger.Journal`, which checks them as the
ledger's one posting path does and sees the balances the next request needs. Everything is
written with a constant number of statements whatever the batch size; the transfers and balances
by `Journal.post` (`points.ledger.post_many`), the rest (trades, events, pools, positions,
the market's counters) by the set-based helpers of `core.sql`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import JSONField, OuterRef, Q, Subquery
from django.utils import timezone

from core import signals
from core.errors import DomainError
from core.sql import ids_by, insert_instances, insert_rows, set_by_pk
from markets.errors import MSG_MARKET_NOT_FOUND, MarketNotFound
from markets.models import Market, MarketEvent, Outcome
from markets.realtime import events_publish_on_commit
from markets.services.base import ensure_trading, outcome_at, prices_ppm
from points import ledger
from points.ledger import Leg
from points.models import Account, Transfer
from points.services import guild_settings_get_or_create

from .. import rules
from ..models import Position, Trade
from .book import Book, order_account_q, resting_rows
from .positions import positions_upsert
from .requests import TradeRequest, conflict, same_request, validate


@dataclass
class _Holding:
    """A position row as the batch sees it (existing or new)."""

    outcome: Outcome
    user_id: int
    shares: int = 0
    points_spent: int = 0
    points_received: int = 0
    touched: bool = False


class Batch:
    """One `trades_apply` call inside its transaction."""

    def __init__(self, market_id: int, requests: list[TradeRequest]) -> None:
        self.market_id = market_id
        self.requests = requests
        self.results: list[Trade | DomainError | None] = [None] * len(requests)
        self.trades: list[Trade] = []
        self.events: list[dict[str, Any]] = []  # MarketEvent fields, written by `_write`
        self.published: list[MarketEvent] = []
        self.sold_remainder: dict[str, int] = {}
        self.by_key: dict[str, Trade] = {}  # keys this batch has written, for in-batch replays
        self.requested: dict[str, int | None] = {}
        self.opened: ledger.Opened | None = None
        self.unstarted: set[int] = set()  # opened here, starting balance not yet staged
        self.wallet: dict[int, Account] = {}
        self.journal = ledger.Journal({})
        self.book = Book([])
        self.book_read = False
        self.order_account: Account | None = None
        self.owners: set[int] | None = None
        """Order owners whose wallets and positions `open_for` loads besides the requesters':
        every owner when None (an order placement), else the owners a first run found filling
        (`run`)."""
        self.loaded: set[int] = set()
        self.missing: set[int] = set()
        """Owners whose orders filled in this run without their rows loaded (`Book._fill`)."""

    def run(self) -> list[Trade | DomainError]:
        pending: list[int] = []
        for index, request in enumerate(self.requests):
            try:
                validate(request)
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
        requesters = {self.requests[i].user_id for i in fresh}
        self.book_read_for(market)
        if not self.book.orders:
            self.owners = set()
            self._apply(fresh, requesters)
            self._write()
            return self._answers()
        # Resting orders: run first with the rows of the requesters and of the owners of the
        # orders nearest the price, the other orders' fills computed from the pools alone
        # (docs/architecture.md, "Group commit and resting orders"). If orders of members not
        # loaded filled, undo the run to the savepoint (its locks and new wallets with it) and
        # run again with those owners' rows locked in the same one query: the same fills, now
        # recorded.
        savepoint = transaction.savepoint()
        initial = self._state()
        self.owners = self.book.heads(self.now)
        self._apply(fresh, requesters)
        if self.missing:
            self.owners |= self.missing
            transaction.savepoint_rollback(savepoint)
            self._restore(initial, fresh)
            self._apply(fresh, requesters)
            assert not self.missing, "a second run fills the same orders"
        self._write()
        return self._answers()

    def _apply(self, fresh: list[int], requesters: set[int]) -> None:
        self.open_for(requesters)
        for index in fresh:
            request = self.requests[index]
            earlier = self.by_key.get(request.idempotency_key)
            if earlier is not None:
                requested = self.requested[request.idempotency_key]
                same = same_request(earlier, requested, request)
                self.results[index] = earlier if same else conflict(request)
                continue
            try:
                self.results[index] = (
                    self._buy(request) if request.kind == "buy" else self._sell(request)
                )
            except DomainError as error:
                self.results[index] = error
            else:
                self.book.run_pass(self)

    def book_read_for(self, market: Market) -> None:
        """The market's resting orders (`Book`), once per run. Caller holds the market lock."""
        if not self.book_read:
            self.book = Book(resting_rows(market), self.outcomes)
            self.book_read = True

    def open_for(self, requesters: set[int]) -> None:
        """Open and lock the wallets of the members who trade and of the loaded owners of sell
        orders (a fill pays them), and read the positions every request or loaded owner's fill
        may change (`self.owners`: every owner when None). Caller holds the market lock."""
        market = self.market
        self.settings_row = guild_settings_get_or_create(guild_id=market.guild_id)
        self.book_read_for(market)
        owners = self.book.users if self.owners is None else self.owners & self.book.users
        self.loaded = requesters | owners
        self.missing = set()
        users = sorted(requesters | (self.book.sellers() & owners))
        if users or self.book.orders:
            self._accounts_lock(users)
        self.holdings = self._holdings(sorted(self.loaded))
        self.traders = {user_id for user_id, _ in self.holdings}

    def _state(self) -> tuple[list[tuple[int, int]], tuple[int, int, int]]:
        """What a run changes in memory on the rows read before it (`_restore`)."""
        market = self.market
        return (
            [(o.pool, o.staked) for o in self.outcomes],
            (market.volume, market.trade_count, market.trader_count),
        )

    def _restore(
        self, state: tuple[list[tuple[int, int]], tuple[int, int, int]], fresh: list[int]
    ) -> None:
        """Back to before the first run, after its savepoint was rolled back: the pools and
        counters as read, the orders read again, nothing staged, the fresh requests unanswered."""
        pools, counters = state
        for o, (pool, staked) in zip(self.outcomes, pools, strict=True):
            o.pool, o.staked = pool, staked
        self.market.volume, self.market.trade_count, self.market.trader_count = counters
        for index in fresh:
            self.results[index] = None
        self.trades, self.events = [], []
        self.sold_remainder, self.by_key, self.requested = {}, {}, {}
        self.book_read = False
        self.book_read_for(self.market)

    def prices(self) -> list[int]:
        return prices_ppm(self.market, self.outcomes)

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
        query (two when some exist: whether any does is asked first, in plain SQL, because
        building the full query costs more than running it and a rush's keys are all new).
        Caller holds the market lock, so a twin on this market has committed or waits."""
        found = ids_by(Trade, "idempotency_key", keys)
        if not found:
            return {}
        asked = MarketEvent.objects.filter(request_key=OuterRef("idempotency_key")).values(
            "payload"
        )[:1]
        rows = (
            Trade.objects.select_related("outcome")
            .filter(idempotency_key__in=list(found))
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
                same = trade.market_id == self.market.pk and same_request(trade, requested, request)
                self.results[index] = trade if same else conflict(request)
        return fresh

    def _accounts_lock(self, users: list[int]) -> None:
        """Open the members' missing wallets (`points.ledger.wallets_open`, one statement), then
        lock the wallets, the escrow and the treasury (when a fee is charged or a wallet is new)
        in one query ordered by primary key (DOMAIN §3). A wallet opened here receives its
        starting balance with its member's first trade; if none of the member's requests
        succeeds it is discarded again, as if the one-request transaction had rolled back."""
        market = self.market
        opened = ledger.wallets_open(
            market.guild_id, users, starting_balance=self.settings_row.starting_balance
        )
        treasury = opened.treasury
        if treasury is None and market.fee_bps > 0:
            treasury = ledger.treasury_get_or_create(guild_id=market.guild_id)
        ids = list(opened.wallets.values())
        if treasury is not None:
            ids.append(treasury.pk)
        locked = ledger.accounts_lock(
            ids, also=Q(kind=Account.Kind.ESCROW, market=market) | order_account_q(market)
        )
        self.escrow = next(a for a in locked.values() if a.kind == Account.Kind.ESCROW)
        self.order_account = next(
            (a for a in locked.values() if a.kind == Account.Kind.ORDERS), None
        )
        self.treasury = None if treasury is None else locked[treasury.pk]
        self.wallet = {user: locked[pk] for user, pk in opened.wallets.items()}
        self.opened, self.unstarted = opened, set(opened.created)
        self.journal = ledger.Journal(locked)

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

    # --- the rules (`betting.rules`) on the locked state in memory ----------------------------

    def _balance(self, user_id: int) -> int:
        """The member's balance with what this batch staged (and, for a wallet opened here, the
        starting balance its first trade brings)."""
        balance = self.journal.balance(self.wallet[user_id].pk)
        if user_id in self.unstarted and self.opened is not None:
            start = self.opened.starting_legs.get(user_id)
            balance += 0 if start is None else start.amount
        return balance

    def _buy(self, request: TradeRequest) -> Trade:
        market, outcomes, amount = self.market, self.outcomes, request.amount
        assert amount is not None
        ensure_trading(market, self.now)
        chosen = outcome_at(market, outcomes, request.outcome)
        plan = rules.buy_plan(
            rules.state_of(market, outcomes),
            chosen.position,
            amount,
            max_bet=self.settings_row.max_bet,
            balance=self._balance(request.user_id),
            min_shares=request.min_shares,
        )
        key, user_id = request.idempotency_key, request.user_id
        wallet = self.wallet[user_id]
        legs = [
            self._leg(
                wallet,
                self.escrow,
                plan.net,
                Transfer.Code.BUY,
                f"{key}:buy",
                f"Market #{market.pk}: {chosen.label}",
                user_id,
            )
        ]
        if plan.fee:
            legs.append(self._fee(wallet, plan.fee, key, user_id))
        self._stage(user_id, legs)
        # Nothing can refuse the request from here on: record it.
        ppm_before = self.prices()
        for o, pool, staked in zip(outcomes, plan.pools, plan.staked, strict=True):
            o.pool, o.staked = pool, staked
        self._position_add(chosen, user_id, shares=plan.shares, spent=amount, received=0)
        kind = Trade.Kind.BUY if plan.kind == "buy" else Trade.Kind.STAKE
        return self._trade(request, chosen, kind, amount, plan.shares, plan.fee, ppm_before)

    def _sell(self, request: TradeRequest) -> Trade:
        market, outcomes = self.market, self.outcomes
        ensure_trading(market, self.now)
        state = rules.state_of(market, outcomes)
        rules.sell_allowed(state)
        chosen = outcome_at(market, outcomes, request.outcome)
        holding = self.holdings.get((request.user_id, chosen.position))
        plan = rules.sell_plan(
            state,
            chosen.position,
            0 if holding is None else holding.shares,
            request.shares,
            min_points=request.min_points,
            reserved=self.book.reserved(request.user_id, chosen.pk),
        )
        key, user_id = request.idempotency_key, request.user_id
        wallet = self.wallet[user_id]
        legs = []
        if plan.points:
            legs.append(
                self._leg(
                    self.escrow,
                    wallet,
                    plan.points,
                    Transfer.Code.SELL,
                    f"{key}:sell",
                    f"Market #{market.pk}: sold {chosen.label}",
                    user_id,
                )
            )
        if plan.fee:
            legs.append(self._fee(wallet, plan.fee, key, user_id))
        self._stage(user_id, legs)
        ppm_before = self.prices()
        for o, pool in zip(outcomes, plan.pools, strict=True):
            o.pool = pool
        self._position_add(chosen, user_id, shares=-plan.asked, spent=0, received=plan.points)
        self.sold_remainder[key] = plan.left_in_pool
        return self._trade(
            request, chosen, Trade.Kind.SELL, plan.points, plan.asked, plan.fee, ppm_before
        )

    # --- recording (in memory, written by `_write`) ----------------------------------------

    def _leg(
        self,
        source: Account,
        destination: Account,
        amount: int,
        code: str,
        key: str,
        memo: str,
        actor_id: int,
    ) -> Leg:
        return Leg(source, destination, amount, code, key, memo, actor_id, None, self.market.pk)

    def _fee(self, wallet: Account, fee: int, key: str, user_id: int) -> Leg:
        """The trading fee, wallet → treasury (DOMAIN §4.3, §4.4)."""
        assert self.treasury is not None
        return self._leg(
            wallet,
            self.treasury,
            fee,
            Transfer.Code.FEE,
            f"{key}:fee",
            f"Fee, market #{self.market.pk}",
            user_id,
        )

    def _stage(self, user_id: int, legs: list[Leg]) -> None:
        """Stage a request's legs; a wallet this batch opened receives its starting balance
        first, with its member's first trade."""
        start = None
        if user_id in self.unstarted and self.opened is not None:
            start = self.opened.starting_legs.get(user_id)
        self.journal.stage(legs if start is None else [start, *legs])
        self.unstarted.discard(user_id)

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
        # The member's balance right after this trade, for the reply (no query needed); a buy
        # order's fill comes from the order account and leaves the wallet unlocked.
        wallet = self.wallet.get(request.user_id)
        if wallet is not None:
            trade.balance_after = self.journal.balance(wallet.pk)
        self.trades.append(trade)
        self.by_key[request.idempotency_key] = trade
        self.requested[request.idempotency_key] = request.shares
        return trade

    # --- writes: a constant number of statements whatever the batch size ------------------

    def _write(self) -> None:
        if self.opened is not None and self.unstarted:
            # Wallets opened for members none of whose requests succeeded.
            ledger.wallets_discard(self.opened, self.unstarted)
        self.journal.post()  # before the orders: a placement's budget, then its first fill
        self.book.write()
        if not self.trades:
            return
        market = self.market
        now = timezone.now()
        insert_instances(Trade, self.trades, now, key="idempotency_key")
        for trade, event in zip(self.trades, self.events, strict=True):
            event["payload"] = {**event["payload"], "trade_id": trade.pk}
        self.published = insert_rows(MarketEvent, self.events, now, key="request_key")
        set_by_pk(Outcome, ("pool", "staked"), {o.pk: (o.pool, o.staked) for o in self.outcomes})
        positions_upsert(market, [h for h in self.holdings.values() if h.touched], now)
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
