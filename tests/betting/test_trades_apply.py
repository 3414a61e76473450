"""`trades_apply` (issue 16): a batch of trade requests on one market gives exactly what applying
them one by one through `bet_place` / `shares_sell` gives (DOMAIN §4.3–§4.6, §5), writes with a
constant number of statements, and two processes batching on one market lose no update."""

from __future__ import annotations

import itertools
import multiprocessing
import random
from dataclasses import replace

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from betting import services
from betting.models import Position, Trade
from betting.services import TradeRequest, trades_apply
from markets import amm
from markets import services as services_markets
from markets.amm import SHARE_SCALE
from markets.models import Market, MarketEvent, Outcome
from markets.services import market_create
from points.audit import ledger_audit
from points.errors import DomainError
from points.models import Account, GuildSettings, Transfer
from points.rules import SYSTEM, Actor
from points.services import guild_settings_get_or_create, wallet_get_or_create

pytestmark = pytest.mark.django_db

CREATOR = 610_000_000_000_000_001
USERS = [610_000_000_000_000_010 + i for i in range(4)]
"""The first three have wallets before the first trade; the last one is new."""
MAX_BET = 300
_guilds = itertools.count(810_000_000_000_000_000)


def _guild(fee_bps: int) -> int:
    guild_id = next(_guilds)
    guild_settings_get_or_create(guild_id=guild_id)
    GuildSettings.objects.filter(guild_id=guild_id).update(
        starting_balance=1000, max_bet=MAX_BET, fee_bps=fee_bps
    )
    for user_id in USERS[:3]:
        wallet_get_or_create(guild_id=guild_id, user_id=user_id)
    return guild_id


def _market(guild_id: int, mechanism: str, n_outcomes: int = 2) -> Market:
    return market_create(
        guild_id=guild_id,
        creator_id=CREATOR,
        question="Will the batch agree with the one-by-one path?",
        outcomes=[f"Outcome {i}" for i in range(n_outcomes)],
        duration="1d",
        mechanism=mechanism,
        liquidity=200 if mechanism == Market.Mechanism.AMM else None,
        idempotency_key=f"create:{guild_id}",
        actor=SYSTEM,
    )


# --- the property -----------------------------------------------------------------------------

SHARES = st.one_of(
    st.none(),
    st.sampled_from([1, 999_999, SHARE_SCALE, 10 * SHARE_SCALE, 50 * SHARE_SCALE, 10**12]),
    st.integers(1, 400 * SHARE_SCALE),
)
REQUEST = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["buy", "buy", "sell"]),
        "user": st.integers(0, len(USERS) - 1),
        "outcome": st.sampled_from([0, 0, 1, 1, 2, -1]),  # 2 and -1 are unknown outcomes
        "amount": st.one_of(st.integers(1, 400), st.sampled_from([1, MAX_BET, MAX_BET + 1, 5000])),
        "shares": SHARES,
        "min_shares": st.one_of(st.none(), st.integers(1, 400 * SHARE_SCALE)),
        "min_points": st.one_of(st.none(), st.integers(1, 300)),
        # None: a fresh key; ("same", i): replay of request i; ("other", i): its key, other content
        "key": st.one_of(
            st.none(),
            st.none(),
            st.tuples(st.sampled_from(["same", "other"]), st.integers(0, 10**6)),
        ),
    }
)


def _requests(draws: list[dict]) -> list[TradeRequest]:
    made: list[TradeRequest] = []
    for n, d in enumerate(draws):
        request = TradeRequest(
            kind=d["kind"],
            user_id=USERS[d["user"]],
            outcome=d["outcome"],
            idempotency_key=f"k{n}",
            amount=d["amount"] if d["kind"] == "buy" else None,
            shares=d["shares"] if d["kind"] == "sell" else None,
            min_shares=d["min_shares"] if d["kind"] == "buy" else None,
            min_points=d["min_points"] if d["kind"] == "sell" else None,
        )
        if d["key"] is not None and made:
            how, index = d["key"]
            earlier = made[index % len(made)]
            if how == "same":
                request = earlier
            else:
                request = replace(request, idempotency_key=earlier.idempotency_key)
        made.append(request)
    return made


def _keyed(request: TradeRequest, prefix: str) -> TradeRequest:
    return replace(request, idempotency_key=prefix + request.idempotency_key)


def _answer(result: Trade | DomainError, market: Market, prefix: str) -> tuple:
    def clean(text: str) -> str:
        return text.replace(f"#{market.pk}", "#M").replace(f"key {prefix}", "key ")

    if isinstance(result, DomainError):
        return ("refused", type(result).__name__, clean(result.message))
    return (
        result.kind,
        result.user_id,
        result.outcome.position,
        result.amount,
        result.shares,
        result.fee,
        result.price_before_ppm,
        result.price_after_ppm,
        list(result.prices_after_ppm),
        result.idempotency_key.removeprefix(prefix),
    )


def _state(market: Market, prefix: str) -> dict:
    market.refresh_from_db()
    escrow = Account.objects.get(kind=Account.Kind.ESCROW, market=market)
    wallets = Account.objects.filter(guild_id=market.guild_id, kind=Account.Kind.WALLET)
    treasury = Account.objects.get(guild_id=market.guild_id, kind=Account.Kind.TREASURY)
    kinds = {a.pk: a.owner_id or a.kind for a in Account.objects.filter(guild_id=market.guild_id)}
    events = []
    for e in MarketEvent.objects.filter(market=market, type=MarketEvent.Type.TRADE).order_by("id"):
        payload = {k: v for k, v in e.payload.items() if k != "trade_id"}
        events.append((payload, e.request_key.removeprefix(prefix), e.actor_id))
    return {
        "counters": (market.volume, market.trade_count, market.trader_count),
        "pools": list(
            Outcome.objects.filter(market=market).order_by("position").values_list("pool", "staked")
        ),
        "balances": sorted(wallets.values_list("owner_id", "balance")),
        "escrow": escrow.balance,
        "treasury": treasury.balance,
        "positions": sorted(
            (p.user_id, p.outcome.position, p.shares, p.points_spent, p.points_received)
            for p in Position.objects.filter(market=market).select_related("outcome")
        ),
        "trades": [
            (t.kind, t.user_id, t.outcome_id and t.outcome.position, t.amount, t.shares, t.fee)
            for t in Trade.objects.filter(market=market).select_related("outcome").order_by("id")
        ],
        "events": events,
        "transfers": sorted(
            (
                t.code,
                t.amount,
                kinds[t.source_id],
                kinds[t.destination_id],
                t.idempotency_key.removeprefix(prefix).removeprefix(f"start:{market.guild_id}:"),
                t.memo.replace(f"#{market.pk}", "#M"),
            )
            for t in Transfer.objects.filter(guild_id=market.guild_id).exclude(
                code__in=[Transfer.Code.STARTING_BALANCE, Transfer.Code.LIQUIDITY]
            )
        )
        + sorted(
            (t.destination.owner_id or 0, t.amount)
            for t in Transfer.objects.filter(
                guild_id=market.guild_id, code=Transfer.Code.STARTING_BALANCE
            ).select_related("destination")
        ),
    }


def _one_by_one(market: Market, request: TradeRequest) -> Trade | DomainError:
    try:
        if request.kind == "buy":
            return services.bet_place(
                market_id=market.pk,
                user_id=request.user_id,
                outcome=request.outcome,
                amount=request.amount,
                idempotency_key=request.idempotency_key,
                min_shares=request.min_shares,
            )
        return services.shares_sell(
            market_id=market.pk,
            user_id=request.user_id,
            outcome=request.outcome,
            shares=request.shares,
            idempotency_key=request.idempotency_key,
            min_points=request.min_points,
        )
    except DomainError as error:
        return error


class _Rollback:
    """One example in a savepoint rolled back at its end, opened as Django's TestCase opens
    its own (`_from_testcase`), so the services' durable transactions may run inside it."""

    def __enter__(self) -> None:
        self.atomic = transaction.atomic()
        self.atomic._from_testcase = True
        self.atomic.__enter__()

    def __exit__(self, *exc: object) -> None:
        transaction.set_rollback(True)
        self.atomic.__exit__(None, None, None)


@hsettings(
    max_examples=100,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    mechanism=st.sampled_from([Market.Mechanism.AMM, Market.Mechanism.PARIMUTUEL]),
    fee_bps=st.sampled_from([0, 0, 150]),
    draws=st.lists(REQUEST, min_size=1, max_size=30),
    cuts=st.lists(st.integers(1, 29), max_size=6),
)
def test_batches_give_exactly_what_one_by_one_gives(mechanism, fee_bps, draws, cuts):
    """Random buys, stakes and sells (valid and invalid: unknown outcome, above the balance and
    `max_bet`, more than held, slippage limits, replays, keys reused with other content), on both
    mechanisms: one by one through `bet_place` / `shares_sell`, and through `trades_apply` in a
    random split into batches → the same trades, refusals and messages, pools, balances,
    positions, transfers and events; the ledger audit is clean."""
    requests = _requests(draws)
    with _Rollback():
        one_market = _market(_guild(fee_bps), mechanism)
        batch_market = _market(_guild(fee_bps), mechanism)
        one = [
            _answer(_one_by_one(one_market, _keyed(r, "a:")), one_market, "a:") for r in requests
        ]
        batched = []
        bounds = sorted({c for c in cuts if c < len(requests)} | {0, len(requests)})
        for start, end in itertools.pairwise(bounds):
            results = trades_apply(
                market_id=batch_market.pk,
                requests=[_keyed(r, "b:") for r in requests[start:end]],
            )
            batched += [_answer(r, batch_market, "b:") for r in results]
        assert batched == one
        assert _state(batch_market, "b:") == _state(one_market, "a:")
        report = ledger_audit()
        assert report.ok, report.violations


def test_a_key_twice_in_one_batch_counts_once_and_a_refusal_leaves_no_trace():
    guild_id = _guild(0)
    market = _market(guild_id, Market.Mechanism.AMM)
    new_member = USERS[3]
    buy = TradeRequest(kind="buy", user_id=USERS[0], outcome=0, idempotency_key="x", amount=50)
    results = trades_apply(
        market_id=market.pk,
        requests=[
            buy,
            replace(buy, amount=60),  # the same key with other content
            buy,  # a replay within the batch
            TradeRequest(
                kind="buy", user_id=new_member, outcome=1, idempotency_key="y", amount=5000
            ),
            TradeRequest(kind="buy", user_id=USERS[1], outcome=1, idempotency_key="z", amount=10),
        ],
    )
    first, conflict, replay, refused, other = results
    assert isinstance(first, Trade) and replay is first
    assert "different content" in conflict.message
    assert isinstance(refused, DomainError) and "most you can bet" in refused.message
    assert isinstance(other, Trade)
    assert Trade.objects.filter(market=market).count() == 2
    # The refused new member's wallet was not kept: as if their transaction had rolled back.
    assert not Account.objects.filter(guild_id=guild_id, owner_id=new_member).exists()
    assert MarketEvent.objects.filter(market=market, type=MarketEvent.Type.TRADE).count() == 2


def test_a_key_another_kind_of_request_used_is_refused_without_sinking_the_batch():
    guild_id = _guild(0)
    closed = _market(guild_id, Market.Mechanism.AMM)
    services_markets.market_close(
        market_id=closed.pk, idempotency_key="dup", actor=Actor.member(CREATOR)
    )
    market = market_create(
        guild_id=guild_id,
        creator_id=CREATOR,
        question="Another market?",
        outcomes=["A", "B"],
        duration="1d",
        idempotency_key="create:second",
    )
    buy = TradeRequest(kind="buy", user_id=USERS[0], outcome=0, idempotency_key="ok1", amount=5)
    first, reused, last = trades_apply(
        market_id=market.pk,
        requests=[buy, replace(buy, idempotency_key="dup"), replace(buy, idempotency_key="ok2")],
    )
    assert isinstance(first, Trade) and isinstance(last, Trade)
    assert "different content" in reused.message
    assert Trade.objects.filter(market=market).count() == 2


# --- a constant number of statements --------------------------------------------------------


def _buys(users: list[int], prefix: str) -> list[TradeRequest]:
    return [
        TradeRequest(kind="buy", user_id=u, outcome=n % 2, idempotency_key=f"{prefix}{n}", amount=7)
        for n, u in enumerate(users)
    ]


@pytest.mark.parametrize("fee_bps", [0, 100])
def test_queries_per_batch_stay_constant_as_the_batch_grows(fee_bps):
    guild_id = _guild(fee_bps)
    market = _market(guild_id, Market.Mechanism.AMM)
    counts = {}
    for size in (1, 10, 200):
        users = [700_000_000_000_000_000 + size * 1000 + i for i in range(size)]
        with CaptureQueriesContext(connection) as new_members:
            results = trades_apply(market_id=market.pk, requests=_buys(users, f"new{size}:"))
        assert all(isinstance(r, Trade) for r in results)
        with CaptureQueriesContext(connection) as known_members:
            sells = [
                TradeRequest(kind="sell", user_id=u, outcome=n % 2, idempotency_key=f"s{size}:{n}")
                for n, u in enumerate(users)
            ]
            results = trades_apply(
                market_id=market.pk, requests=_buys(users, f"old{size}:") + sells
            )
        assert all(isinstance(r, Trade) for r in results), results
        counts[size] = (len(new_members), len(known_members))
    if connection.vendor == "postgresql":
        assert counts[1] == counts[10] == counts[200], counts
    else:  # SQLite caps a statement's parameters: bulk inserts split, a bounded number of times
        assert counts[1] == counts[10], counts
        assert all(big <= small + 20 for big, small in zip(counts[200], counts[1], strict=True)), (
            counts
        )


# --- two processes on one market --------------------------------------------------------------


def _process_batches(market_id: int, worker: int, batches: int, size: int, seed: int, out) -> None:
    """Runs in a child process: submit `batches` batches of buys and sells on one market."""
    rng = random.Random(seed)
    summary = {"trades": 0, "refused": 0}
    try:
        for b in range(batches):
            requests = []
            for n in range(size):
                user_id = USERS[rng.randrange(len(USERS))]
                key = f"p{worker}:{b}:{n}"
                if rng.random() < 0.7:
                    requests.append(
                        TradeRequest(
                            kind="buy",
                            user_id=user_id,
                            outcome=rng.randrange(3),
                            idempotency_key=key,
                            amount=rng.randint(1, 60),
                        )
                    )
                else:
                    requests.append(
                        TradeRequest(
                            kind="sell",
                            user_id=user_id,
                            outcome=rng.randrange(3),
                            idempotency_key=key,
                            shares=rng.choice([None, rng.randint(1, 40) * SHARE_SCALE]),
                        )
                    )
            for result in trades_apply(market_id=market_id, requests=requests):
                summary["trades" if isinstance(result, Trade) else "refused"] += 1
    finally:
        connections.close_all()
    out.put(summary)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_processes_batching_on_one_market_lose_no_update():
    guild_id = _guild(100)
    market = _market(guild_id, Market.Mechanism.AMM, n_outcomes=3)
    connections.close_all()  # the children must not share this connection
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    workers = [
        context.Process(target=_process_batches, args=(market.pk, w, 8, 40, w, out))
        for w in range(2)
    ]
    for w in workers:
        w.start()
    summaries = [out.get(timeout=300) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    succeeded = sum(s["trades"] for s in summaries)
    assert succeeded > 0 and sum(s["refused"] for s in summaries) + succeeded == 2 * 8 * 40

    market.refresh_from_db()
    trades = list(Trade.objects.filter(market=market).select_related("outcome").order_by("id"))
    assert len(trades) == succeeded == market.trade_count
    assert market.volume == sum(t.amount for t in trades)
    # Replaying the log in commit order through the pure maths gives every trade's numbers and
    # the final pools: each batch saw the state the other left (no lost update).
    pools = amm.initial_pools(3, market.liquidity)
    for t in trades:
        i = t.outcome.position
        if t.kind == Trade.Kind.BUY:
            result = amm.buy(pools, i, t.amount - t.fee)
            assert result.shares == t.shares, f"trade {t.pk} computed on a stale pool"
        else:
            result = amm.sell(pools, i, t.shares)
            assert result.points == t.amount or t.amount == 0, f"trade {t.pk} stale"
            if t.amount == 0:  # "all" of a position worth less than a point
                result = amm.SellResult(
                    0, t.shares, 0, [p + t.shares if j == i else p for j, p in enumerate(pools)]
                )
        pools = result.pools
    assert list(market.outcomes.order_by("position").values_list("pool", flat=True)) == pools
    # DOMAIN §4.5: pool_i + Σ shares_i = collateral · SHARE_SCALE, exactly.
    escrow = Account.objects.get(kind=Account.Kind.ESCROW, market=market).balance
    for outcome in market.outcomes.all():
        held = sum(Position.objects.filter(outcome=outcome).values_list("shares", flat=True))
        assert outcome.pool + held == escrow * SHARE_SCALE
    report = ledger_audit()
    assert report.ok, report.violations
