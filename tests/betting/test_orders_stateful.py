"""Limit orders against the independent reference (tests/betting/reference.py), driven by a
Hypothesis state machine (DOMAIN §4.7): trades, buy and sell orders (placed, partly filled,
cancelled, expired by the clock), closing, resolution and cancellation. After every step every
wallet, position, pool, the escrow, the order account and every order equal the reference's, and
the ledger audit (L1–L4, §4.5 and §4.7's invariants) is clean.

And the property: a trade's own result (shares bought, points received, prices) is the same
with and without resting orders on the market — orders fill after it, never change it."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
from collections import Counter

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from betting.models import Order, Position
from betting.services import bet_place, book, order_cancel, order_place, shares_sell
from betting.services.batch import Batch
from markets import amm
from markets import services as markets_services
from markets.amm import SHARE_SCALE
from markets.models import Market, Outcome
from markets.services import market_create, markets_tick
from points.audit import ledger_audit
from points.errors import DomainError
from points.models import Account, GuildSettings
from points.rules import SYSTEM
from points.services import guild_settings_get_or_create
from tests.betting.reference import Reference, Refused
from tests.betting.test_trades_apply import _Rollback

pytestmark = pytest.mark.django_db

CREATOR = 640_000_000_000_000_001
USERS = [640_000_000_000_000_010 + i for i in range(3)]
STARTING, LIQUIDITY, MAX_BET = 1000, 100, 300
_guilds = itertools.count(840_000_000_000_000_000)
SEEN: Counter[str] = Counter()
"""What the examples exercised, so the test fails if a path was never reached."""

users = st.sampled_from(USERS)
outcomes = st.integers(0, 1)
limits = st.one_of(
    st.integers(1, 999_999), st.sampled_from([300_000, 450_000, 500_000, 550_000, 700_000])
)
amounts = st.one_of(st.integers(1, 60), st.sampled_from([1, 2, 5, 301]))


def _market(fee_bps: int) -> Market:
    guild_id = next(_guilds)
    guild_settings_get_or_create(guild_id=guild_id)
    GuildSettings.objects.filter(guild_id=guild_id).update(
        starting_balance=STARTING, max_bet=MAX_BET, fee_bps=fee_bps
    )
    return market_create(
        guild_id=guild_id,
        creator_id=CREATOR,
        question="Do the orders agree with the reference?",
        outcomes=["Yes", "No"],
        duration="1d",
        liquidity=LIQUIDITY,
        idempotency_key=f"create:{guild_id}",
        actor=SYSTEM,
    )


class OrdersMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.keys = itertools.count()
        self.ids: list[int] = []  # reference order number → engine order id

    @initialize(fee_bps=st.sampled_from([0, 0, 150]))
    def start(self, fee_bps):
        self.market = _market(fee_bps)
        self.ref = Reference(
            outcomes=2, liquidity=LIQUIDITY, fee_bps=fee_bps, max_bet=MAX_BET, starting=STARTING
        )
        self.start_time = timezone.now()
        self.clock = self.start_time

    def _key(self) -> str:
        return f"m{self.market.pk}:{next(self.keys)}"

    def _both(self, engine, reference) -> object:
        """Run the step on both; both refuse or both succeed."""
        try:
            expected = reference()
        except Refused as refusal:
            with pytest.raises(DomainError):
                engine()
            return refusal
        return engine(), expected

    def _fills_after_trade(self, before: int) -> None:
        """Count the step if the trade filled resting orders (the pass after a trade, §4.7)."""
        if len(self.ref.fills) > before:
            SEEN["fill after a trade"] += 1

    @rule(user=users, outcome=outcomes, amount=amounts)
    def buy(self, user, outcome, amount):
        before = len(self.ref.fills)
        done = self._both(
            lambda: bet_place(
                market_id=self.market.pk,
                user_id=user,
                outcome=outcome,
                amount=amount,
                idempotency_key=self._key(),
            ),
            lambda: self.ref.buy(user, outcome, amount),
        )
        if isinstance(done, tuple):
            trade, shares = done
            assert trade.shares == shares
        self._fills_after_trade(before)

    @rule(user=users, outcome=outcomes, part=st.sampled_from([None, 1, 2, 3]))
    def sell(self, user, outcome, part):
        held = self.ref.shares[(user, outcome)]
        shares = None if part is None else max(1, held // part)
        before = len(self.ref.fills)
        done = self._both(
            lambda: shares_sell(
                market_id=self.market.pk,
                user_id=user,
                outcome=outcome,
                shares=shares,
                idempotency_key=self._key(),
            ),
            lambda: self.ref.sell(user, outcome, shares),
        )
        if isinstance(done, tuple):
            trade, points = done
            assert trade.amount == points
        self._fills_after_trade(before)

    @rule(
        user=users,
        outcome=outcomes,
        limit=limits,
        budget=amounts,
        hours=st.one_of(st.none(), st.integers(1, 6)),
    )
    def place_buy(self, user, outcome, limit, budget, hours):
        expires = None if hours is None else self.start_time + dt.timedelta(hours=hours)
        self._place(user, "buy", outcome, limit, budget=budget, expires=expires)

    @rule(
        user=users,
        outcome=outcomes,
        side=st.sampled_from(["buy", "sell"]),
        gap=st.integers(1, 80_000),
        budget=st.integers(1, 8),
        hours=st.one_of(st.none(), st.integers(1, 6)),
    )
    def place_near(self, user, outcome, side, gap, budget, hours):
        """An order just off the price (none fills at once): the next trades that move the
        price past it fill it, the main path of §4.7 (a small budget, so a trade can fill it
        whole as well as in part)."""
        price = amm.prices_ppm(self.ref.pools)[outcome]
        expires = None if hours is None else self.start_time + dt.timedelta(hours=hours)
        if side == "buy":
            self._place(user, "buy", outcome, max(1, price - gap), budget=budget, expires=expires)
        else:
            limit = min(999_999, price + gap)
            self._place(user, "sell", outcome, limit, shares=None)

    @rule(user=users, outcome=outcomes, limit=limits, part=st.sampled_from([None, 1, 2, 4]))
    def place_sell(self, user, outcome, limit, part):
        free = self.ref.shares[(user, outcome)] - self.ref.reserved(user, outcome)
        shares = None if part is None else max(1, free // part)
        self._place(user, "sell", outcome, limit, shares=shares)

    def _place(self, user, side, outcome, limit, **kw):
        done = self._both(
            lambda: order_place(
                market_id=self.market.pk,
                user_id=user,
                outcome=outcome,
                side=side,
                limit_ppm=limit,
                idempotency_key=self._key(),
                budget=kw.get("budget"),
                shares=kw.get("shares"),
                expires_at=kw.get("expires"),
            ),
            lambda: self.ref.place(user, side, outcome, limit, **kw),
        )
        if isinstance(done, tuple):
            order, _ = done
            self.ids.append(order.pk)

    @precondition(lambda self: self.ids)
    @rule(pick=st.integers(0, 10**6), owner=st.booleans())
    def cancel(self, pick, owner):
        number = pick % len(self.ids)
        user = self.ref.orders[number].user if owner else USERS[pick % len(USERS)]
        self._both(
            lambda: order_cancel(order_id=self.ids[number], user_id=user),
            lambda: self.ref.cancel_order(number, user),
        )

    @rule(hours=st.integers(1, 4))
    def tick(self, hours):
        self.clock += dt.timedelta(hours=hours)
        markets_tick(now=self.clock)
        self.ref.expire(self.clock)
        if self.ref.status == "open" and self.clock >= self.market.closes_at:
            self.ref.close()

    @precondition(lambda self: len(self.ids) >= 3)  # orders first: stories worth checking
    @rule()
    def close(self):
        self._both(
            lambda: markets_services.market_close(
                market_id=self.market.pk, idempotency_key=self._key(), actor=SYSTEM
            ),
            self.ref.close,
        )

    @rule(winner=outcomes)
    def resolve(self, winner):
        self._both(
            lambda: markets_services.market_resolve(
                market_id=self.market.pk,
                outcome=winner,
                actor=SYSTEM,
                reason="test",
                idempotency_key=self._key(),
            ),
            lambda: self.ref.resolve(winner),
        )

    @precondition(lambda self: len(self.ids) >= 3)
    @rule()
    def cancel_market(self):
        self._both(
            lambda: markets_services.market_cancel(
                market_id=self.market.pk, reason="test", idempotency_key=self._key(), actor=SYSTEM
            ),
            self.ref.cancel_market,
        )

    @invariant()
    def equals_the_reference(self):
        if not hasattr(self, "market"):
            return
        ref, market = self.ref, self.market
        guild = market.guild_id
        wallets = dict(
            Account.objects.filter(guild_id=guild, kind="wallet").values_list("owner_id", "balance")
        )
        assert wallets == {u: ref.balance(u) for u in wallets}
        assert set(wallets) == set(ref.wallets)
        escrow = Account.objects.get(kind="escrow", market=market).balance
        assert escrow == ref.escrow
        order_account = (
            Account.objects.filter(kind=Account.Kind.ORDERS, market=market)
            .values_list("balance", flat=True)
            .first()
        )
        assert (order_account or 0) == ref.order_account
        if ref.status in ("open", "closed"):
            pools = list(
                Outcome.objects.filter(market=market)
                .order_by("position")
                .values_list("pool", flat=True)
            )
            assert pools == ref.pools
        held = {
            (p.user_id, p.outcome.position): p.shares
            for p in Position.objects.filter(market=market).select_related("outcome")
        }
        assert held == {k: v for k, v in ref.shares.items() if k in held}
        assert all(v == 0 for k, v in ref.shares.items() if k not in held)
        orders = list(Order.objects.filter(market=market).order_by("pk"))
        assert [
            (o.status, o.remaining, o.fills, o.filled_points, o.filled_shares) for o in orders
        ] == [
            (r.status, r.remaining, r.fills, r.filled_points, r.filled_shares) for r in ref.orders
        ]
        # §4.5: pool_i + Σ shares_i = collateral · SHARE_SCALE while the market holds collateral.
        if ref.status in ("open", "closed"):
            for i, pool in enumerate(ref.pools):
                total = sum(v for (u, o), v in ref.shares.items() if o == i)
                assert pool + total == ref.escrow * SHARE_SCALE
        report = ledger_audit()
        assert report.ok, report.violations
        for r in ref.orders:
            SEEN[r.status] += 1
            SEEN["partly filled"] += r.fills > 0 and r.remaining > 0
            SEEN[f"{r.side} fill"] += r.fills > 0


@pytest.mark.parametrize("head_depth", [book.HEAD_DEPTH, 0])
def test_orders_agree_with_the_reference_after_every_step(head_depth, monkeypatch):
    """With `head_depth` 0 a batch loads no order owner before it runs, so every fill of a
    trade comes from the batch's second run (docs/architecture.md, "Group commit and resting
    orders")."""
    monkeypatch.setattr(book, "HEAD_DEPTH", head_depth)
    restore = Batch._restore

    def counted(self, *args, **kwargs):
        SEEN["second run"] += 1
        return restore(self, *args, **kwargs)

    monkeypatch.setattr(Batch, "_restore", counted)

    def run():
        with _Rollback():
            run_state_machine_as_test(
                OrdersMachine,
                settings=hsettings(
                    max_examples=20,
                    stateful_step_count=30,
                    deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
                ),
            )

    # A member's cancel of a resting order is checked in test_orders.py; here it is often
    # refused (the order filled or was released first), which the reference also predicts.
    paths = (
        "buy fill",
        "sell fill",
        "partly filled",
        "filled",
        "expired",
        "released",
        "fill after a trade",
    )
    if head_depth == 0:
        # A fill after a trade runs twice only when its owner is not the trader: not every
        # draw has one (seen once in five local runs with the default profile).
        paths += ("second run",)
    SEEN.clear()
    # Which paths 20 examples reach depends on the draw (the seed differs per run and per xdist
    # worker); a path no draw reaches in three rounds is a machine that cannot reach it.
    for _ in range(3):
        run()
        if all(SEEN[path] for path in paths):
            break
    for path in paths:
        assert SEEN[path], f"no example reached: {path} ({dict(SEEN)})"


@hsettings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    fee_bps=st.sampled_from([0, 150]),
    orders=st.lists(
        st.tuples(
            st.sampled_from(["buy", "sell"]), outcomes, st.integers(1, 200_000), st.integers(1, 80)
        ),
        max_size=8,
    ),
    trade=st.tuples(st.sampled_from(["buy", "sell"]), outcomes, st.integers(1, 200)),
)
def test_a_trade_is_the_same_with_and_without_resting_orders(fee_bps, orders, trade):
    """The trade that moves the price is computed before the orders it triggers (§4.7): on two
    markets in the same state, one with resting orders (none fillable when placed), the same
    trade gets the same shares, points, fee and prices."""
    kind, outcome, amount = trade
    trader = USERS[2]
    results = []
    with _Rollback():
        for with_orders in (False, True):
            market = _market(fee_bps)
            for n, user in enumerate(USERS):
                bet_place(
                    market_id=market.pk,
                    user_id=user,
                    outcome=n % 2,
                    amount=100,
                    idempotency_key=f"seed:{market.pk}:{n}",
                )
            for n, (side, at, gap, size) in enumerate(orders if with_orders else []):
                price = amm.prices_ppm(_pools(market))[at]
                limit = max(1, price - 1 - gap) if side == "buy" else min(999_999, price + 1 + gap)
                with contextlib.suppress(DomainError):  # no shares to sell: no order
                    order_place(
                        market_id=market.pk,
                        user_id=USERS[n % 2],
                        outcome=at,
                        side=side,
                        limit_ppm=limit,
                        budget=size if side == "buy" else None,
                        shares=size * SHARE_SCALE // 4 if side == "sell" else None,
                        idempotency_key=f"o:{market.pk}:{n}",
                    )
            before = _pools(market)
            try:
                if kind == "buy":
                    done = bet_place(
                        market_id=market.pk,
                        user_id=trader,
                        outcome=outcome,
                        amount=amount,
                        idempotency_key=f"t:{market.pk}",
                    )
                else:
                    done = shares_sell(
                        market_id=market.pk,
                        user_id=trader,
                        outcome=outcome,
                        idempotency_key=f"t:{market.pk}",
                    )
                got = (
                    done.amount,
                    done.shares,
                    done.fee,
                    done.price_before_ppm,
                    done.price_after_ppm,
                    list(done.prices_after_ppm),
                )
            except DomainError as error:
                got = (type(error).__name__, error.message.replace(f"#{market.pk}", "#M"))
            results.append((before, got))
        assert results[0] == results[1]
        report = ledger_audit()
        assert report.ok, report.violations


def _pools(market: Market) -> list[int]:
    return list(
        Outcome.objects.filter(market=market).order_by("position").values_list("pool", flat=True)
    )
