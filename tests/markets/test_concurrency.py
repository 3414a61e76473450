"""Markets under real concurrency on PostgreSQL (DOMAIN §3, §4.5, §6): threads released together by
a barrier, each on its own connection (closed in `finally`). The market row lock must serialise
every trade and settlement: no lost update, the collateral identity exact, every market settled
and every scheduler step done exactly once.

Run with `-s` to see the counts and timings each test measured."""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from betting import services as betting_services
from betting.models import Position, Trade
from markets import amm, selectors, services
from markets.amm import SHARE_SCALE
from markets.errors import InsufficientShares, MarketStateError
from markets.models import Market, MarketEvent, Outcome
from points.audit import ledger_audit
from points.errors import InsufficientPoints, InvalidAmount
from points.models import Account, GuildSettings, Transfer
from points.rules import Actor
from tests.conftest import ALICE, BOB, CAROL, GUILD, MOD

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

JOIN_TIMEOUT = 120  # seconds; a hung thread fails the test instead of hanging the suite
STARTING = 1000
MEMBERS = [BOB, CAROL, CAROL + 1, CAROL + 2, CAROL + 3]


@dataclass
class Outcomes:
    results: dict[int, object] = field(default_factory=dict)
    errors: dict[int, BaseException] = field(default_factory=dict)

    def unexpected(self, *allowed: type[BaseException]) -> dict[int, BaseException]:
        return {i: e for i, e in self.errors.items() if not isinstance(e, allowed)}


def run_threads(count: int, work: Callable[[int], object]) -> tuple[Outcomes, float]:
    """Run `work(i)` on `count` threads released together; returns what each got and the wall
    time in seconds. Each thread uses, and finally closes, its own database connection."""
    barrier = threading.Barrier(count + 1)
    outcomes = Outcomes()
    lock = threading.Lock()

    def target(i: int) -> None:
        try:
            barrier.wait(timeout=JOIN_TIMEOUT)
            result = work(i)
            with lock:
                outcomes.results[i] = result
        except BaseException as exc:  # recorded; the test asserts on it
            with lock:
                outcomes.errors[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=target, args=(i,), name=f"market-{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    barrier.wait(timeout=JOIN_TIMEOUT)
    started = time.perf_counter()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    elapsed = time.perf_counter() - started
    hung = [t.name for t in threads if t.is_alive()]
    assert not hung, f"threads still running after {JOIN_TIMEOUT}s (deadlock?): {hung}"
    return outcomes, elapsed


def report(line: str) -> str:
    print(f"\n[market concurrency] {line}")
    return line


def guild_settings(**values: int) -> None:
    GuildSettings.objects.create(guild_id=GUILD, **{**settings.PM_GUILD_DEFAULTS, **values})


def create(key: str, mechanism: str = "amm", outcomes=("Yes", "No", "Maybe"), **kw) -> Market:
    return services.market_create(
        guild_id=GUILD,
        creator_id=ALICE,
        question=f"Concurrent market {key}?",
        outcomes=list(outcomes),
        duration=kw.pop("duration", "1d"),
        mechanism=mechanism,
        idempotency_key=key,
        **kw,
    )


def escrow_of(market: Market) -> int:
    return Account.objects.get(kind=Account.Kind.ESCROW, market=market).balance


def wallets() -> dict[int, int]:
    return dict(
        Account.objects.filter(guild_id=GUILD, kind=Account.Kind.WALLET).values_list(
            "owner_id", "balance"
        )
    )


# --- 20 threads × 25 trades on one market ------------------------------------------------------

THREADS, TRADES_EACH = 20, 25
REFUSALS = (InsufficientShares, InsufficientPoints, InvalidAmount)


def test_twenty_threads_trading_one_market_lose_no_update():
    guild_settings(starting_balance=STARTING, fee_bps=100)
    market = create("hot")

    def work(i: int) -> tuple[list[Trade], Counter[str], list[Trade]]:
        rng = random.Random(i)
        user = MEMBERS[i % len(MEMBERS)]
        done: list[Trade] = []
        asked: dict[str, int | None] = {}
        refused: Counter[str] = Counter()
        # Every thread also sends the same request (same key, same content): one trade.
        shared = betting_services.bet_place(
            market_id=market.pk, user_id=BOB, outcome=0, amount=10, idempotency_key="shared"
        )
        for k in range(TRADES_EACH):
            outcome = rng.randrange(3)
            try:
                if rng.random() < 0.6:
                    trade = betting_services.bet_place(
                        market_id=market.pk,
                        user_id=user,
                        outcome=outcome,
                        amount=rng.randint(5, 60),
                        idempotency_key=f"t:{i}:{k}",
                    )
                else:
                    asked[f"t:{i}:{k}"] = rng.choice([None, rng.randint(1, 80) * SHARE_SCALE])
                    trade = betting_services.shares_sell(
                        market_id=market.pk,
                        user_id=user,
                        outcome=outcome,
                        shares=asked[f"t:{i}:{k}"],
                        idempotency_key=f"t:{i}:{k}",
                    )
                done.append(trade)
            except REFUSALS as exc:
                refused[type(exc).__name__] += 1
        # A replay of this thread's first success returns it and moves nothing.
        replays = []
        if done:
            first = done[0]
            call = (
                betting_services.bet_place if first.kind == "buy" else betting_services.shares_sell
            )
            # The same request again: a buy's amount, or exactly the shares the sale asked for.
            extra = (
                {"amount": first.amount}
                if first.kind == "buy"
                else {"shares": asked[first.idempotency_key]}
            )
            replays.append(
                call(
                    market_id=market.pk,
                    user_id=first.user_id,
                    outcome=first.outcome.position,
                    idempotency_key=first.idempotency_key,
                    **extra,
                )
            )
        return done, refused, [shared, *replays]

    outcomes, elapsed = run_threads(THREADS, work)
    assert not outcomes.errors, outcomes.errors

    successes = [t for done, _, _ in outcomes.results.values() for t in done]
    refused = sum((r for _, r, _ in outcomes.results.values()), Counter())
    shared_ids = {echo[0].pk for _, _, echo in outcomes.results.values()}
    for done, _, echo in outcomes.results.values():
        if done:
            assert echo[1].pk == done[0].pk  # the replay returned the first result
    assert len(shared_ids) == 1
    shared = Trade.objects.get(pk=shared_ids.pop())
    trades = sorted([*successes, shared], key=lambda t: t.pk)
    buys = [t for t in trades if t.kind == "buy"]
    sells = [t for t in trades if t.kind == "sell"]
    summary = report(
        f"{THREADS} threads × {TRADES_EACH} trades on one market: {len(successes)} succeeded "
        f"({len(buys) - 1} buys, {len(sells)} sells) + 1 shared key sent by all, refused "
        f"{dict(refused)}, in {elapsed:.2f}s ({len(trades) / elapsed:.0f} trades/s)"
    )
    assert len(successes) + sum(refused.values()) == THREADS * TRADES_EACH
    assert len(sells) > 20 and len(buys) > 20, summary  # a real mix, not one kind

    # Trade count equals successes: nothing lost, nothing doubled.
    market.refresh_from_db()
    assert Trade.objects.filter(market=market).count() == len(trades) == market.trade_count
    assert sorted(Trade.objects.values_list("pk", flat=True)) == [t.pk for t in trades]
    assert market.volume == sum(t.amount for t in trades)

    # Replaying the log in commit order through the pure maths gives every trade's numbers and
    # the final pools: each trade saw its predecessor's state (no lost update).
    pools = amm.initial_pools(3, market.liquidity)
    for t in trades:
        i = t.outcome.position
        if t.kind == "buy":
            assert t.fee == amm.fee_for(t.amount, 100)
            result = amm.buy(pools, i, t.amount - t.fee)
            assert result.shares == t.shares, f"trade {t.pk} computed on a stale pool"
            pools = result.pools
        else:
            result = amm.sell(pools, i, t.shares)  # DOMAIN §4.4: exactly the shares sold
            assert result.points == t.amount, f"trade {t.pk} computed on a stale pool"
            pools = result.pools
    assert (
        list(
            Outcome.objects.filter(market=market)
            .order_by("position")
            .values_list("pool", flat=True)
        )
        == pools
    )

    # Wallets, positions and escrow equal what the returned trades say.
    expected_wallet: dict[int, int] = defaultdict(lambda: STARTING)
    expected_shares: dict[tuple[int, int], int] = defaultdict(int)
    for t in trades:
        key = (t.user_id, t.outcome.position)
        if t.kind == "buy":
            expected_wallet[t.user_id] -= t.amount
            expected_shares[key] += t.shares
        else:
            expected_wallet[t.user_id] += t.amount - t.fee
            expected_shares[key] -= t.shares
    found = wallets()
    assert found == dict(expected_wallet), summary
    assert all(balance >= 0 for balance in found.values())
    held = {
        (p.user_id, p.outcome.position): p.shares
        for p in Position.objects.filter(market=market).select_related("outcome")
    }
    assert held == dict(expected_shares)
    collateral = (
        market.liquidity + sum(t.amount - t.fee for t in buys) - sum(t.amount for t in sells)
    )
    assert escrow_of(market) == collateral
    for o, pool in enumerate(pools):  # §4.5, exactly
        assert pool + sum(v for (_, i), v in expected_shares.items() if i == o) == (
            collateral * SHARE_SCALE
        )
    fees = Transfer.objects.filter(code=Transfer.Code.FEE).values_list("amount", flat=True)
    assert sum(fees) == sum(t.fee for t in trades)
    audit = ledger_audit()
    assert audit.ok, audit.violations


# --- Votes and moderator resolution racing ------------------------------------------------------


def traded_closed_market(key: str, mechanism: str) -> Market:
    market = create(key, mechanism=mechanism)
    for n, (user, outcome, amount) in enumerate(
        [(BOB, 0, 120), (CAROL, 0, 80), (MEMBERS[2], 1, 200), (MEMBERS[3], 2, 50), (BOB, 1, 30)]
    ):
        betting_services.bet_place(
            market_id=market.pk,
            user_id=user,
            outcome=outcome,
            amount=amount,
            idempotency_key=f"{key}:bet:{n}",
        )
    services.market_close(
        market_id=market.pk, idempotency_key=f"{key}:close", actor=Actor.member(ALICE)
    )
    return market


def assert_settled_once(market: Market, preview) -> None:
    market.refresh_from_db()
    assert market.status == "resolved"
    assert MarketEvent.objects.filter(market=market, type="market_resolved").count() == 1
    paid = Counter(
        Transfer.objects.filter(
            market=market, code="payout", destination__kind="wallet"
        ).values_list("destination__owner_id", flat=True)
    )
    assert set(paid.values()) == {1}, f"a winner was paid more than once: {paid}"
    amounts = dict(
        Transfer.objects.filter(
            market=market, code="payout", destination__kind="wallet"
        ).values_list("destination__owner_id", "amount")
    )
    assert amounts == dict(preview.payments)
    assert escrow_of(market) == 0
    assert Position.objects.filter(market=market).exclude(payout=0).count() == len(amounts)


ROUNDS = 4


def test_three_moderators_voting_at_once_resolve_and_pay_exactly_once():
    guild_settings(starting_balance=STARTING, min_resolution_votes=2)
    markets = [
        traded_closed_market(f"vote{r}", "amm" if r % 2 == 0 else "parimutuel")
        for r in range(ROUNDS)
    ]
    previews = [selectors.settlement_preview(market_id=m.pk, outcome=0) for m in markets]
    timings = []
    for market, preview in zip(markets, previews, strict=True):

        def work(i: int, market: Market = market):
            return services.resolution_vote_cast(
                market_id=market.pk,
                outcome=0,
                idempotency_key=f"v:{i}:{market.pk}",
                actor=Actor.member(MOD + i, manage_guild=True),
            )

        outcomes, elapsed = run_threads(3, work)
        timings.append(elapsed)
        assert not outcomes.unexpected(MarketStateError), outcomes.errors
        # Two votes reach the threshold and resolve; the third finds the market resolved.
        assert len(outcomes.results) == 2 and len(outcomes.errors) == 1
        assert "already resolved" in str(next(iter(outcomes.errors.values())))
        assert_settled_once(market, preview)
    report(
        f"3 moderators voting at once, {ROUNDS} markets (amm and pool): each resolved and paid "
        f"once; {sum(len(p.payments) for p in previews)} payouts; "
        f"{max(timings) * 1000:.0f} ms slowest round"
    )
    assert ledger_audit().ok


def test_moderator_resolve_racing_votes_settles_once():
    guild_settings(starting_balance=STARTING, min_resolution_votes=2)
    markets = [
        traded_closed_market(f"race{r}", "amm" if r % 2 == 0 else "parimutuel")
        for r in range(ROUNDS)
    ]
    winners = Counter()
    for market in markets:
        previews = {o: selectors.settlement_preview(market_id=market.pk, outcome=o) for o in (0, 1)}

        def work(i: int, market: Market = market):
            if i < 2:
                return services.resolution_vote_cast(
                    market_id=market.pk,
                    outcome=0,
                    idempotency_key=f"v{i}:{market.pk}",
                    actor=Actor.member(MOD + i, manage_guild=True),
                )
            return services.market_resolve(
                market_id=market.pk,
                outcome=1,
                reason="moderator override",
                idempotency_key=f"override:{market.pk}",
                actor=Actor.member(MOD + 9, manage_guild=True),
            )

        outcomes, _ = run_threads(3, work)
        assert not outcomes.unexpected(MarketStateError), outcomes.errors
        market.refresh_from_db()
        winner = market.winning_outcome.position
        winners["votes" if winner == 0 else "moderator"] += 1
        assert_settled_once(market, previews[winner])
        if winner == 1:  # the moderator got there first or between the two votes
            assert 2 in outcomes.results
        else:
            assert isinstance(outcomes.errors.get(2), MarketStateError)
    report(
        f"moderator resolve racing 2 votes, {ROUNDS} markets: settled once each, {dict(winners)}"
    )
    assert ledger_audit().ok


# --- The scheduler from two processes at once ---------------------------------------------------

TICK_MARKETS = 40


def test_markets_tick_from_two_threads_handles_each_market_once():
    guild_settings(starting_balance=STARTING * 10, auto_refund_hours=120)
    closed_early, due = [], []
    for m in range(TICK_MARKETS):
        market = create(f"tick{m}", "amm" if m % 2 else "parimutuel", duration="1m")
        for n, user in enumerate(MEMBERS[: 1 + m % 3]):
            betting_services.bet_place(
                market_id=market.pk,
                user_id=user,
                outcome=n % 3,
                amount=10 + m,
                idempotency_key=f"tick{m}:{n}",
            )
        if m % 2 == 0:
            services.market_close(
                market_id=market.pk, idempotency_key=f"c{m}", actor=Actor.member(ALICE)
            )
            closed_early.append(market.pk)
        else:
            due.append(market.pk)
    start = timezone.now()
    first_tick = start + dt.timedelta(hours=121)
    second_tick = first_tick + dt.timedelta(hours=121)

    def tick_round(now: dt.datetime) -> tuple[list[services.TickReport], float]:
        outcomes, elapsed = run_threads(2, lambda i: services.markets_tick(now=now))
        assert not outcomes.errors, outcomes.errors
        return [outcomes.results[0], outcomes.results[1]], elapsed

    # Round 1: both threads close the due markets and refund the ones closed early.
    (a, b), first_elapsed = tick_round(first_tick)
    assert sorted(a.closed + b.closed) == sorted(due)
    assert not set(a.closed) & set(b.closed)
    assert sorted(a.refunded + b.refunded) == sorted(closed_early)
    assert not set(a.refunded) & set(b.refunded)
    split_1 = (len(a.closed), len(b.closed), len(a.refunded), len(b.refunded))

    # Round 2: the markets closed in round 1 are now due for refund.
    (a, b), second_elapsed = tick_round(second_tick)
    assert a.closed == b.closed == []
    assert sorted(a.refunded + b.refunded) == sorted(due)
    assert not set(a.refunded) & set(b.refunded)
    split_2 = (len(a.refunded), len(b.refunded))

    all_ids = closed_early + due
    closes = Counter(
        MarketEvent.objects.filter(type="market_closed").values_list("market_id", flat=True)
    )
    cancels = Counter(
        MarketEvent.objects.filter(type="market_cancelled").values_list("market_id", flat=True)
    )
    assert closes == Counter(all_ids) and cancels == Counter(all_ids)
    refunds = Counter(
        Transfer.objects.filter(code="refund", destination__kind="wallet").values_list(
            "market_id", "destination__owner_id"
        )
    )
    assert set(refunds.values()) == {1}
    assert len(refunds) == sum(1 + m % 3 for m in range(TICK_MARKETS))
    assert set(Market.objects.values_list("status", flat=True)) == {"cancelled"}
    assert not Account.objects.filter(kind="escrow").exclude(balance=0).exists()
    assert set(wallets().values()) == {STARTING * 10}  # everyone refunded in full
    report(
        f"markets_tick × 2 threads over {TICK_MARKETS} markets: round 1 closed {split_1[0]}+"
        f"{split_1[1]}, refunded {split_1[2]}+{split_1[3]} in {first_elapsed:.2f}s; round 2 "
        f"refunded {split_2[0]}+{split_2[1]} in {second_elapsed:.2f}s; each market closed once "
        f"and refunded once"
    )
    assert ledger_audit().ok
