"""Properties of the reversal (docs/domain.md §6.2) against the forward-replay reference
(tests/betting/reference_known_at.py): reversing every trade after `known_at` leaves pools,
stakes and positions exactly as a market where they never happened, and everyone is paid
exactly as they would have been; and a state machine mixing trades, closes and settlements
with and without `known_at`, with the ledger audit after every step."""

from __future__ import annotations

import itertools

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

from betting.models import Position, Trade
from betting.reversal import TradeFacts, reversal_compute
from betting.services import TradeRequest, trades_apply
from markets import services
from markets.models import Market
from points.audit import ledger_audit
from points.models import Account, GuildSettings
from points.rules import SYSTEM, Actor
from points.services import guild_settings_get_or_create
from tests.betting.reference_known_at import RefMarket
from tests.betting.test_trades_apply import _Rollback

USERS = [610_000_000_000_000_001 + i for i in range(4)]
STAFF = Actor.member(610_000_000_000_000_900, manage_guild=True)
_guilds = itertools.count(810_000_000_000_000_000)

# One step: (user index, outcome, buy amount, or a sale of this many tenths of the holding).
STEP = st.tuples(
    st.integers(0, 3),
    st.integers(0, 2),
    st.one_of(
        st.integers(1, 300).map(lambda a: ("buy", a)), st.integers(1, 10).map(lambda t: ("sell", t))
    ),
)


def _forward(mechanism: str, fee_bps: int, steps: list) -> tuple[RefMarket, list[TradeFacts], list]:
    """Replay `steps` on the reference, recording each trade and the snapshot before it."""
    ref = RefMarket.create(mechanism, 3, 100)
    facts: list[TradeFacts] = []
    before: list[tuple] = []
    for user_index, outcome, (kind, value) in steps:
        user = USERS[user_index]
        snap = (ref.snapshot(), dict(ref.wallets))
        if kind == "buy":
            bought = ref.buy(user, outcome, value, fee_bps)
            if bought is None:
                continue
            fee, shares = bought
            kind_ = "buy" if mechanism == "amm" else "stake"
            facts.append(TradeFacts(len(facts) + 1, user, outcome, kind_, value, shares, fee))
        else:
            held = ref.holdings.get((user, outcome), [0, 0, 0])[0]
            shares = held * value // 10
            if mechanism != "amm" or shares == 0:
                continue
            sold = ref.sell(user, outcome, shares, fee_bps)
            if sold is None:
                continue
            facts.append(
                TradeFacts(len(facts) + 1, user, outcome, "sell", sold[0], shares, sold[1])
            )
        before.append(snap)
    return ref, facts, before


@hsettings(max_examples=300, deadline=None)
@given(
    mechanism=st.sampled_from(["amm", "parimutuel"]),
    fee_bps=st.sampled_from([0, 100, 250]),
    steps=st.lists(STEP, min_size=1, max_size=25),
    cut=st.integers(0, 25),
)
def test_reversing_the_late_trades_gives_the_market_where_they_never_happened(
    mechanism, fee_bps, steps, cut
):
    """Pure: the engine's inversion of the trades after the cut, latest first, against the
    reference's forward replay of the trades before it: pools, stakes, positions, escrow; each
    member's wallet gets back exactly what their late trades took (no shortfall: wallets kept
    their points), and every fee comes back."""
    ref, facts, before = _forward(mechanism, fee_bps, steps)
    if not facts:
        return
    cut = min(cut, len(facts) - 1)
    (pools, staked, held, escrow), wallets_then = before[cut]
    late = facts[cut:][::-1]
    out = reversal_compute(
        late,
        ref.pools,
        ref.staked,
        {k: list(v) for k, v in ref.holdings.items()},
        {u: 10**9 for u in USERS},
    )
    assert tuple(out.pools) == pools and tuple(out.staked) == staked
    assert {k: tuple(v) for k, v in out.holdings.items() if any(v)} == held
    assert not out.shortfall
    for user in USERS:
        assert out.per_user.get(user, 0) == wallets_then.get(user, 0) - ref.wallets.get(user, 0)
    into = sum(m.amount for m in out.moves if not m.to_wallet)
    out_of = sum(m.amount for m in out.moves if m.to_wallet and m.role == "back")
    assert ref.escrow + into - out_of == escrow


@given(
    steps=st.lists(STEP, min_size=2, max_size=14),
    cut=st.integers(1, 13),
    mechanism=st.sampled_from(["amm", "parimutuel"]),
    winner=st.integers(0, 2),
)
@hsettings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@pytest.mark.django_db
def test_twin_markets_pay_everyone_the_same(steps, cut, mechanism, winner):
    """On the engine: market A gets every trade and is resolved with `known_at` between the
    early and the late ones; its twin B (another guild, same members) gets only the early ones and
    is resolved plainly. Pools, stakes and positions are equal, and every member's wallet ends
    equal in both guilds: those who did not trade late are paid exactly as they would have been,
    and the late traders have their points back."""
    cut = min(cut, len(steps) - 1)
    with _Rollback():
        a, b = _market(mechanism), _market(mechanism)
        _trade(a, steps[:cut], "e")
        _trade(b, steps[:cut], "e")
        known_at = timezone.now()
        _trade(a, steps[cut:], "l")
        for market, stated in ((a, known_at), (b, None)):
            services.market_close(
                market_id=market.pk, actor=SYSTEM, idempotency_key=f"c{market.pk}"
            )
            services.market_resolve(
                market_id=market.pk,
                outcome=winner,
                actor=STAFF,
                reason="known",
                idempotency_key=f"r{market.pk}",
                known_at=stated,
            )
        assert _outcomes(a) == _outcomes(b)
        assert _positions(a) == _positions(b)
        assert _wallets(a) == _wallets(b)
        report = ledger_audit()
        assert report.ok, report.violations


def _market(mechanism: str) -> Market:
    guild_id = next(_guilds)
    gs = guild_settings_get_or_create(guild_id=guild_id)
    GuildSettings.objects.filter(pk=gs.pk).update(fee_bps=100, dispute_window_minutes=0)
    return services.market_create(
        guild_id=guild_id,
        creator_id=STAFF.user_id,
        question="Twin?",
        outcomes=["A", "B", "C"],
        duration="1d",
        mechanism=mechanism,
        idempotency_key=f"twin:{guild_id}",
    )


def _trade(market: Market, steps: list, prefix: str) -> None:
    for index, (user_index, outcome, (kind, value)) in enumerate(steps):
        key = f"{market.pk}:{prefix}{index}"
        user = USERS[user_index]
        if kind == "buy":
            request = TradeRequest("buy", user, outcome, key, amount=value)
        else:
            held = Position.objects.filter(market=market, user_id=user, outcome__position=outcome)
            shares = held.values_list("shares", flat=True).first() or 0
            request = TradeRequest("sell", user, outcome, key, shares=max(1, shares * value // 10))
        trades_apply(market_id=market.pk, requests=[request])  # refusals are fine: both twins


def _outcomes(market: Market) -> list[tuple[int, int]]:
    return list(market.outcomes.order_by("position").values_list("pool", "staked"))


def _positions(market: Market) -> set[tuple]:
    rows = Position.objects.filter(market=market).values_list(
        "user_id", "outcome__position", "shares", "points_spent", "points_received", "payout"
    )
    return {r for r in rows if any(r[2:])}


def _wallets(market: Market) -> dict[int, int]:
    rows = Account.objects.filter(guild_id=market.guild_id, kind="wallet").values_list(
        "owner_id", "balance"
    )
    start = guild_settings_get_or_create(guild_id=market.guild_id).starting_balance
    found = dict(rows)
    return {user: found.get(user, start) for user in USERS}


class KnownAtMachine(RuleBasedStateMachine):
    """Trades on up to three markets, moments noted between them, closes, and settlements with
    and without `known_at` (by a direct resolution or a proposal that pays at once); the ledger
    audit after every step, and after a settlement with `known_at` the market's pools and
    positions are those noted at that moment."""

    @initialize(mechanism=st.sampled_from(["amm", "parimutuel"]))
    def start(self, mechanism):
        self.guild = next(_guilds)
        gs = guild_settings_get_or_create(guild_id=self.guild)
        GuildSettings.objects.filter(pk=gs.pk).update(fee_bps=150, dispute_window_minutes=0)
        self.mechanism = mechanism
        self.markets: list[int] = []
        self.moments: dict[int, list[tuple]] = {}
        self.keys = itertools.count()
        self.create()

    def _key(self) -> str:
        return f"sm:{self.guild}:{next(self.keys)}"

    @precondition(lambda self: len(self.markets) < 3)
    @rule()
    def create(self):
        market = services.market_create(
            guild_id=self.guild,
            creator_id=STAFF.user_id,
            question="Machine?",
            outcomes=["A", "B"],
            duration="1d",
            mechanism=self.mechanism,
            idempotency_key=self._key(),
        )
        self.markets.append(market.pk)
        self.moments[market.pk] = [(market.created_at, _outcomes(market), set())]

    @rule(index=st.integers(0, 2), step=STEP)
    def trade(self, index, step):
        market = Market.objects.get(pk=self.markets[index % len(self.markets)])
        _trade(market, [(step[0], step[1] % 2, step[2])], self._key())

    @rule(index=st.integers(0, 2))
    def note_moment(self, index):
        market = Market.objects.get(pk=self.markets[index % len(self.markets)])
        if market.status == "open":
            self.moments[market.pk].append((timezone.now(), _outcomes(market), _positions(market)))

    @rule(index=st.integers(0, 2))
    def close(self, index):
        market = Market.objects.get(pk=self.markets[index % len(self.markets)])
        if market.status == "open":
            services.market_close(market_id=market.pk, actor=SYSTEM, idempotency_key=self._key())

    @rule(
        index=st.integers(0, 2),
        moment=st.integers(-1, 10),
        winner=st.integers(0, 1),
        how=st.booleans(),
    )
    def settle(self, index, moment, winner, how):
        market = Market.objects.get(pk=self.markets[index % len(self.markets)])
        if market.status != "closed":
            return
        noted = self.moments[market.pk]
        stated = None if moment < 0 else noted[moment % len(noted)]
        known_at = None if stated is None else stated[0]
        call = services.market_resolve if how else services.market_propose
        extra = {"reason": "machine"} if how else {}
        call(
            market_id=market.pk,
            outcome=winner,
            actor=STAFF,
            idempotency_key=self._key(),
            known_at=known_at,
            **extra,
        )
        market.refresh_from_db()
        assert market.status == "resolved"
        if stated is not None:
            assert _outcomes(market) == stated[1]
            assert {p[:5] for p in _positions(market)} == {p[:5] for p in stated[2]}
            late = Trade.objects.filter(market=market, created_at__gt=known_at)
            assert not late.filter(reversal__isnull=True).exists()
        self.markets.remove(market.pk)
        if not self.markets:
            self.create()

    @invariant()
    def ledger_balances(self):
        report = ledger_audit()
        assert report.ok, report.violations


@pytest.mark.django_db
def test_known_at_state_machine():
    def run():
        with _Rollback():
            run_state_machine_as_test(
                KnownAtMachine,
                settings=hsettings(
                    max_examples=10 if hsettings.default.derandomize else 8,
                    stateful_step_count=25,
                    deadline=None,
                    suppress_health_check=[HealthCheck.too_slow],
                ),
            )

    run()
