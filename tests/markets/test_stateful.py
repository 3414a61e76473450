"""The whole market lifecycle against a plain-Python model (DOMAIN §4–§6), driven by a Hypothesis
state machine: create (amm and pool), buy, sell, close, vote, resolve, cancel, the scheduler tick
on a clock the machine advances, and replays of earlier keys; and resolution people can trust
(docs/domain.md §6.1): proposals by votes, by the creator and by moderators, the dispute window
(disputes by traders and non-traders, twice, too late), undo and re-proposal, confirm as proposed
or changed, the tick settling an undisputed proposal at its deadline, cancel and force while
resolving, and the conflict-of-interest rule. Each example's guild picks its resolution mode
(vote or creator), its dispute window (0 or 60 minutes) and whether the conflict-of-interest rule
is on. The model predicts every refusal (and why) and every number; after every step every
wallet, escrow and market status (and proposal) must equal the model's,
and the full ledger audit runs every `AUDIT_EVERY` steps and once more when an example ends (it
reads every account and transfer; after every step it took about a sixth of this test's time).

The model does its own bookkeeping and settlement (payouts, pari-mutuel split, refunds); only the
market maker's pool arithmetic comes from `markets.amm`, which `test_amm.py` checks on its own.

Each example runs inside a savepoint that is rolled back when it ends, opened the way Django's
`TestCase` opens its per-test transaction (marked `_from_testcase`, so the services' durable
transactions may run inside it): every example starts from an empty ledger, and the audit after
each step reads only that example's rows."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck
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

from betting import services as betting_services
from markets import amm, services
from markets.amm import SHARE_SCALE
from markets.errors import (
    InsufficientShares,
    InvalidMarketInput,
    MarketStateError,
)
from markets.models import Market
from points.audit import ledger_audit
from points.errors import (
    DomainError,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidAmount,
    NotAllowed,
)
from points.models import Account, GuildSettings
from points.rules import Actor
from points.rules import permissions as rules
from points.services import guild_settings_update

pytestmark = pytest.mark.django_db

CREATOR = 600_000_000_000_000_001
TRADERS = [CREATOR, *(600_000_000_000_000_010 + i for i in range(3))]
MODS = [600_000_000_000_000_900 + i for i in range(3)]
"""Moderators (Manage Server). MODS[0] also trades now and then (`moderator_trades`), so the
conflict-of-interest rule has someone to stop."""
OUTSIDER = 600_000_000_000_000_500
"""A member who never trades: their disputes are refused."""
WINDOW = 60
DISPUTERS = [
    [],
    [TRADERS[1]],
    [CREATOR, TRADERS[1], CREATOR],
    [OUTSIDER, MODS[0]],
    [TRADERS[2], TRADERS[3]],
]
"""Who disputes in a story: nobody, a trader, two traders and the first again, a non-trader."""
STORY_ENDINGS = [
    "force",
    "tick",
    "self_confirm",
    "confirm",
    "change",
    "undo",
    "dispute_undo",
    "cancel",
    "hold",
]
GUILD_RULES = [
    (mode, window, coi)
    for mode in ("vote", "creator")
    for window in (0, WINDOW)
    for coi in (True, False)
]
"""The dispute window (minutes) of a guild that has one; the hourly ticks land on deadlines."""
STARTING = 1000
LIQUIDITY_DEFAULT = 500
REFUND_HOURS = 120
HOLD_HOURS = 48
"""The default `dispute_hold_hours`: a disputed market is cancelled and refunded after it."""
MAX_MARKETS = 16
OPEN_MARKETS = 3
AUDIT_EVERY = 10
"""Steps between full ledger audits; the cheap per-step invariants compare with the model."""
_guilds = itertools.count(800_000_000_000_000_000)
SEEN: Counter[str] = Counter()
"""What the examples exercised, so the test can fail if a path was never reached."""

pick = st.integers(min_value=0, max_value=10**6)
# Round amounts often, so pool backers tie on their remainders (the §5 tie-break).
amounts = st.one_of(st.sampled_from([1, 5, 10, 50, 100]), st.integers(1, 400))
traders = st.sampled_from([*TRADERS, MODS[0]])  # a moderator trades too (conflict of interest)
any_outcome = st.integers(min_value=0, max_value=3)  # sometimes past the last outcome
likely_outcome = st.integers(min_value=0, max_value=1)  # exists in every market; votes agree
PORTIONS = [None, "half", "tenth", "one", "more"]


@dataclass
class Holding:
    shares: int = 0
    spent: int = 0
    received: int = 0
    order: int = 0
    """Creation order of the position row: the pari-mutuel tie-break (earliest first bet)."""


@dataclass
class ModelMarket:
    pk: int
    mechanism: str
    n: int
    fee_bps: int
    closes_at: dt.datetime
    escrow: int
    pools: list[int]
    staked: list[int]
    status: str = "open"
    closed_at: dt.datetime | None = None
    holdings: dict[tuple[int, int], Holding] = field(default_factory=dict)
    votes: dict[int, int] = field(default_factory=dict)
    # The proposal while `resolving` (docs/domain.md §6.1).
    proposed: int | None = None
    deadline: dt.datetime | None = None
    """When an undisputed proposal pays out; None = it waits for a second resolver."""
    proposed_by: int | None = None
    proposal_conflicted: bool = False
    disputers: set[int] = field(default_factory=set)
    disputed: bool = False
    disputed_at: dt.datetime | None = None
    round: int = 0


@dataclass
class Done:
    """A request that succeeded, to replay: the service, its arguments, and the pk it returned."""

    call: Callable[..., object]
    kwargs: dict
    pk: int


class MarketLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.savepoint = transaction.atomic()
        self.savepoint._from_testcase = True  # as TestCase does; see the module docstring
        self.savepoint.__enter__()
        self.guild = next(_guilds)
        self.clock = timezone.now()
        self.markets: list[ModelMarket] = []
        self.wallets: dict[int, int] = {}
        self.done: list[Done] = []
        self.keys = itertools.count()
        self.positions_made = itertools.count()
        self.steps = 0

    def teardown(self) -> None:
        try:
            self.ledger_audit_passes()  # the last steps since the previous audit
        finally:
            transaction.set_rollback(True)
            self.savepoint.__exit__(None, None, None)

    # --- helpers -----------------------------------------------------------------------------

    def key(self, kind: str) -> str:
        return f"{kind}:{self.guild}:{next(self.keys)}"

    def fitting(self, *statuses: str, mechanism: str | None = None) -> list[ModelMarket]:
        return [
            m for m in self.markets if m.status in statuses and mechanism in (None, m.mechanism)
        ]

    def spread(self, choice: int, *options: list) -> list:
        """One option of each list, from `choice` and the step count: evenly spread, where
        Hypothesis's own draws favour the first option (so a derandomized run reaches them
        all); still a function of the example, so a failure replays."""
        spreader = random.Random(choice * 1_000_003 + self.steps)
        return [spreader.choice(values) for values in options]

    @property
    def markets_by_pk(self) -> dict[int, ModelMarket]:
        return {m.pk: m for m in self.markets}

    def has(self, *statuses: str, mechanism: str | None = None) -> bool:
        return bool(self.fitting(*statuses, mechanism=mechanism))

    def holdings(self) -> list[tuple[ModelMarket, int, int]]:
        """(market, user, outcome) of every amm share holding in an open market."""
        return [
            (m, user, outcome)
            for m in self.fitting("open", mechanism="amm")
            for (user, outcome), h in m.holdings.items()
            if h.shares
        ]

    def sold_in(self) -> list[ModelMarket]:
        return [
            m
            for m in self.fitting("open", "closed")
            if any(h.received for h in m.holdings.values())
        ]

    def balance(self, user: int) -> int:
        return self.wallets.get(user, STARTING)

    def expect_refusal(
        self,
        error: type[DomainError],
        call: Callable[[], object],
        why: str = "",
        says: str = "",
    ) -> None:
        """`call` must fail with `error`; `says` is the refusal's message (or a part of it) when
        the model knows why, `why` a label for MUST_SEE."""
        try:
            call()
        except DomainError as exc:
            assert isinstance(exc, error), f"expected {error.__name__} ({why}), got {exc!r}"
            assert exc.message
            assert says in exc.message, f"expected “{says}” in “{exc.message}”"
            SEEN.update([f"refused: {error.__name__}"])
            if why:
                SEEN.update([f"refused: {why}"])
        else:
            raise AssertionError(f"expected {error.__name__} ({why}), but the request succeeded")

    def holds(self, m: ModelMarket, user: int) -> bool:
        """Whether the conflict-of-interest rule stops `user` from deciding `m`: the rule is on
        and they hold shares (amm) or a stake (pool) now (docs/domain.md §6.1)."""
        if not self.coi:
            return False
        return any(
            (h.shares if m.mechanism == "amm" else h.spent) > 0
            for (u, _), h in m.holdings.items()
            if u == user
        )

    def traded(self, m: ModelMarket, user: int) -> bool:
        return any(u == user for (u, _) in m.holdings)

    def proposal_made(
        self, m: ModelMarket, outcome: int, by: int, how: str, conflicted: bool = False
    ) -> None:
        """A proposal: with no window and no conflict it pays out at once, else `resolving`."""
        if self.window == 0 and not conflicted:
            self.settle_resolve(m, outcome)
            SEEN.update([f"resolved at once when proposed ({how})"])
            return
        m.status, m.proposed, m.proposed_by = "resolving", outcome, by
        m.deadline = self.clock + dt.timedelta(minutes=self.window) if self.window else None
        m.proposal_conflicted, m.disputed, m.disputers = conflicted, False, set()
        m.round += 1
        waits = "waits for a second resolver" if m.deadline is None else "window"
        SEEN.update([f"proposed ({how}, {waits})"])
        if conflicted:
            SEEN.update(["proposed by a conflicted creator"])
        if m.round > 1:
            SEEN.update(["proposed again after an undo"])

    def proposal_clear(self, m: ModelMarket) -> None:
        m.proposed, m.deadline, m.proposed_by = None, None, None
        m.proposal_conflicted, m.disputed, m.disputers = False, False, set()
        m.disputed_at = None

    def pay(self, m: ModelMarket, amounts: dict[int, int]) -> None:
        for user, amount in amounts.items():
            if amount:
                self.wallets[user] += amount
        m.escrow = 0

    def settle_resolve(self, m: ModelMarket, winner: int) -> None:
        """§6 payout (amm) or §5 split (pool), computed here from the model's own holdings."""
        m.status = "resolved"
        self.proposal_clear(m)
        paid: dict[int, int] = defaultdict(int)
        if m.mechanism == "amm":
            for (user, o), h in m.holdings.items():
                if o == winner:
                    paid[user] += h.shares // SHARE_SCALE
            self.pay(m, paid)
            return
        pot = sum(m.staked)
        backers = {u: h for (u, o), h in m.holdings.items() if o == winner and h.spent}
        total = sum(h.spent for h in backers.values())
        if not total:  # nobody backed the winner: everyone gets their stakes back
            for (user, _), h in m.holdings.items():
                paid[user] += h.spent
            self.pay(m, paid)
            return
        for user, h in backers.items():
            paid[user] = h.spent * pot // total
        leftover = pot - sum(paid.values())
        by_remainder = sorted(
            backers, key=lambda u: (-(backers[u].spent * pot % total), backers[u].order)
        )
        for user in by_remainder[:leftover]:
            paid[user] += 1
        remainders = [backers[u].spent * pot % total for u in by_remainder]
        if 0 < leftover < len(remainders) and remainders[leftover - 1] == remainders[leftover]:
            SEEN.update(["pool leftover tie broken by the first bet"])
        assert sum(paid.values()) == pot
        self.pay(m, paid)

    def settle_cancel(self, m: ModelMarket) -> None:
        m.status = "cancelled"
        self.proposal_clear(m)
        if any(h.received for h in m.holdings.values()):
            SEEN.update(["refund after sales (spent − received)"])
        net: dict[int, int] = defaultdict(int)
        for (user, _), h in m.holdings.items():
            net[user] += h.spent - h.received
        self.pay(m, {user: max(0, owed) for user, owed in net.items()})

    def holding(self, m: ModelMarket, user: int, outcome: int) -> Holding:
        if (user, outcome) not in m.holdings:
            m.holdings[(user, outcome)] = Holding(order=next(self.positions_made))
        return m.holdings[(user, outcome)]

    # --- actions: the model predicts the refusal or the exact result, then checks it -------------

    def do_buy(self, m: ModelMarket, user: int, outcome: int, amount: int) -> None:
        kwargs = dict(
            market_id=m.pk,
            user_id=user,
            outcome=outcome,
            amount=amount,
            idempotency_key=self.key("buy"),
        )
        fee = amm.fee_for(amount, m.fee_bps)

        def call():
            return betting_services.bet_place(**kwargs)

        if m.status != "open":
            return self.expect_refusal(MarketStateError, call)
        if outcome >= m.n:
            return self.expect_refusal(InvalidMarketInput, call)
        if amount > self.max_bet or amount - fee <= 0:
            return self.expect_refusal(InvalidAmount, call)
        if amount > self.balance(user):
            return self.expect_refusal(InsufficientPoints, call)
        trade = call()
        self.wallets[user] = self.balance(user) - amount
        h = self.holding(m, user, outcome)
        h.spent += amount
        assert (trade.amount, trade.fee) == (amount, fee)
        if m.mechanism == "amm":
            result = amm.buy(m.pools, outcome, amount - fee)
            assert trade.shares == result.shares
            m.pools = result.pools
            h.shares += result.shares
            m.escrow += amount - fee
        else:
            m.staked[outcome] += amount
            m.escrow += amount
        self.done.append(Done(betting_services.bet_place, kwargs, trade.pk))
        SEEN.update([f"bought ({m.mechanism})"])

    def do_sell(self, m: ModelMarket, user: int, outcome: int, portion: str | None) -> None:
        held = m.holdings.get((user, outcome), Holding()).shares
        shares = {
            None: None,
            "half": max(1, held // 2),
            "tenth": max(1, held // 10),
            "one": SHARE_SCALE,
            "more": held + 1,
        }[portion]
        kwargs = dict(
            market_id=m.pk,
            user_id=user,
            outcome=outcome,
            shares=shares,
            idempotency_key=self.key("sell"),
        )

        def call():
            return betting_services.shares_sell(**kwargs)

        if m.status != "open" or m.mechanism != "amm":
            return self.expect_refusal(MarketStateError, call)
        if outcome >= m.n:
            return self.expect_refusal(InvalidMarketInput, call)
        asked = held if shares is None else shares
        if held == 0 or asked > held:
            return self.expect_refusal(InsufficientShares, call)
        result = amm.sell(m.pools, outcome, asked)
        fee = amm.fee_for(result.points, m.fee_bps)
        if result.points - fee <= 0 and shares is not None:
            return self.expect_refusal(InvalidAmount, call)
        if result.points - fee <= 0:
            # DOMAIN §4.4: "all" of a position worth less than a point (after the fee) closes
            # it as a 0-point sale: the shares join the pool, no point moves.
            trade = call()
            assert (trade.amount, trade.shares, trade.fee) == (0, asked, 0)
            m.pools = [p + asked if j == outcome else p for j, p in enumerate(m.pools)]
            m.holdings[(user, outcome)].shares -= asked
            self.done.append(Done(betting_services.shares_sell, kwargs, trade.pk))
            SEEN.update(["sold"])
            return None
        trade = call()
        assert (trade.amount, trade.shares, trade.fee) == (result.points, result.shares, fee)
        m.pools = result.pools
        h = m.holdings[(user, outcome)]
        h.shares -= result.shares
        h.received += result.points
        m.escrow -= result.points
        self.wallets[user] += result.points - fee
        self.done.append(Done(betting_services.shares_sell, kwargs, trade.pk))
        SEEN.update(["sold"])

    def do_close(self, m: ModelMarket, who: str) -> None:
        actor = {"creator": CREATOR, "stranger": TRADERS[1], "moderator": MODS[0]}[who]
        kwargs = dict(
            market_id=m.pk,
            actor=Actor.member(actor, manage_guild=who == "moderator"),
            idempotency_key=self.key("close"),
        )

        def call():
            return services.market_close(**kwargs)

        if who == "stranger":
            return self.expect_refusal(NotAllowed, call)
        if m.status != "open":
            return self.expect_refusal(MarketStateError, call)
        market = call()
        assert market.status == "closed"
        m.status, m.closed_at = "closed", market.closed_at
        self.done.append(Done(services.market_close, kwargs, market.pk))

    def do_vote(self, m: ModelMarket, voter: int, outcome: int) -> None:
        kwargs = dict(
            market_id=m.pk,
            actor=Actor.member(voter, manage_guild=True),
            outcome=outcome,
            idempotency_key=self.key("vote"),
            now=self.clock,
        )

        def call():
            return services.resolution_vote_cast(**kwargs)

        if self.mode == "creator":
            return self.expect_refusal(
                NotAllowed, call, "vote in creator mode", "This server resolves by creator"
            )
        if m.status == "resolving":
            return self.expect_refusal(MarketStateError, call, "vote on a proposed market")
        if m.status != "closed":
            return self.expect_refusal(MarketStateError, call)
        if outcome >= m.n:
            return self.expect_refusal(InvalidMarketInput, call)
        votes = {**m.votes, voter: outcome}
        deciding = sum(1 for o in votes.values() if o == outcome) >= 2
        if self.holds(m, voter):
            # Any vote of a holder, deciding or not; nothing is recorded (docs/domain.md §6.1).
            return self.expect_refusal(
                NotAllowed, call, "conflict: a vote", "you can't vote on, propose or decide"
            )
        vote = call()
        assert vote.outcome.position == outcome
        m.votes = votes
        if deciding:
            self.proposal_made(m, outcome, voter, "votes")
            if m.status == "resolved":
                SEEN.update([f"resolved by votes ({m.mechanism})"])
        self.done.append(Done(services.resolution_vote_cast, kwargs, vote.pk))

    def do_propose(self, m: ModelMarket, who: str, user: int, outcome: int) -> None:
        """`who`: "creator" (no roles), "creator_mod" (the creator with Manage Server),
        "moderator" (`user`, Manage Server) or "stranger" (a trader with no roles)."""
        user = {"creator": CREATOR, "creator_mod": CREATOR, "stranger": TRADERS[1]}.get(who, user)
        is_mod = who in ("creator_mod", "moderator")
        kwargs = dict(
            market_id=m.pk,
            outcome=outcome,
            actor=Actor.member(user, manage_guild=is_mod),
            reason="",
            idempotency_key=self.key("propose"),
            now=self.clock,
        )

        def call():
            return services.market_propose(**kwargs)

        is_creator = user == CREATOR
        if not is_mod and not (self.mode == "creator" and is_creator):
            says = "Only the creator" if self.mode == "creator" else "Only members with"
            return self.expect_refusal(NotAllowed, call, f"propose ({who})", says)
        if m.status == "resolving":
            return self.expect_refusal(
                MarketStateError, call, "propose twice", "A result is already proposed"
            )
        if m.status != "closed":
            return self.expect_refusal(MarketStateError, call)
        if outcome >= m.n:
            return self.expect_refusal(InvalidMarketInput, call)
        conflicted = self.holds(m, user)
        if conflicted and not (is_creator and self.mode == "creator"):
            return self.expect_refusal(
                NotAllowed, call, "conflict: propose", "propose or decide its"
            )
        market = call()
        how = "creator" if is_creator and self.mode == "creator" else "moderator"
        self.proposal_made(m, outcome, user, how, conflicted=conflicted)
        assert market.status == m.status
        self.done.append(Done(services.market_propose, kwargs, market.pk))

    def do_dispute(self, m: ModelMarket, user: int) -> None:
        kwargs = dict(
            market_id=m.pk,
            actor=Actor.member(user),
            reason="That is not what happened",
            idempotency_key=self.key("dispute"),
            now=self.clock,
        )

        def call():
            return services.market_dispute(**kwargs)

        if m.status in ("resolved", "cancelled"):
            return self.expect_refusal(MarketStateError, call)
        if m.status != "resolving":
            return self.expect_refusal(MarketStateError, call, says="no proposed result")
        if not m.disputed and m.deadline is not None and m.deadline <= self.clock:
            return self.expect_refusal(
                MarketStateError, call, "dispute after the deadline", "dispute window"
            )
        if not self.traded(m, user):
            return self.expect_refusal(
                NotAllowed, call, "dispute by a non-trader", "Only members who traded"
            )
        if user in m.disputers:
            return self.expect_refusal(
                MarketStateError, call, "dispute twice", "You already disputed"
            )
        dispute = call()
        assert (dispute.user_id, dispute.proposal_round) == (user, m.round)
        SEEN.update(["disputed" if not m.disputed else "disputed by a second member"])
        if not m.disputed:
            m.disputed_at = self.clock
        m.disputed = True
        m.disputers.add(user)
        self.done.append(Done(services.market_dispute, kwargs, dispute.pk))

    def do_undo(self, m: ModelMarket, who: str, mod: int) -> None:
        user = TRADERS[1] if who == "stranger" else mod
        kwargs = dict(
            market_id=m.pk,
            actor=Actor.member(user, manage_guild=who != "stranger"),
            reason="proposed too early",
            idempotency_key=self.key("undo"),
        )

        def call():
            return services.market_proposal_undo(**kwargs)

        if who == "stranger":
            return self.expect_refusal(NotAllowed, call, "undo (stranger)", rules.MSG_CONFIRM)
        if m.status != "resolving":
            return self.expect_refusal(MarketStateError, call)
        market = call()
        assert market.status == "closed" and market.proposed_outcome_id is None
        SEEN.update(["undone" + (" after a dispute" if m.disputed else "")])
        m.status, m.votes = "closed", {}
        self.proposal_clear(m)
        self.done.append(Done(services.market_proposal_undo, kwargs, market.pk))

    def do_confirm(self, m: ModelMarket, who: str, mod: int, outcome: int | None) -> None:
        """`who`: "moderator" (`mod`), "creator" (no roles), "creator_mod" or "stranger"."""
        user = {"creator": CREATOR, "creator_mod": CREATOR, "stranger": TRADERS[1]}.get(who, mod)
        is_mod = who in ("creator_mod", "moderator")
        kwargs = dict(
            market_id=m.pk,
            actor=Actor.member(user, manage_guild=is_mod),
            outcome=outcome,
            reason="checked the source",
            idempotency_key=self.key("confirm"),
        )

        def call():
            return services.market_proposal_confirm(**kwargs)

        if not is_mod:
            return self.expect_refusal(NotAllowed, call, f"confirm ({who})", rules.MSG_CONFIRM)
        if m.status != "resolving":
            return self.expect_refusal(MarketStateError, call)
        if m.proposal_conflicted and user == m.proposed_by:
            return self.expect_refusal(
                NotAllowed, call, "conflicted proposer confirms", "another resolver must"
            )
        if self.holds(m, user):
            return self.expect_refusal(
                NotAllowed, call, "conflict: confirm", "propose or decide its"
            )
        if outcome is not None and outcome >= m.n:
            return self.expect_refusal(InvalidMarketInput, call)
        assert m.proposed is not None
        winner = m.proposed if outcome is None else outcome
        if m.proposal_conflicted:
            SEEN.update(["a second resolver confirmed a conflicted proposal"])
        SEEN.update(["confirmed " + ("as proposed" if winner == m.proposed else "changed")])
        market = call()
        assert market.status == "resolved" and market.winning_outcome.position == winner
        self.settle_resolve(m, winner)
        self.done.append(Done(services.market_proposal_confirm, kwargs, market.pk))

    def do_resolve(self, m: ModelMarket, outcome: int, mod: int = MODS[2]) -> None:
        kwargs = dict(
            market_id=m.pk,
            outcome=outcome,
            actor=Actor.member(mod, manage_guild=True),
            reason="moderator decision",
            idempotency_key=self.key("resolve"),
        )

        def call():
            return services.market_resolve(**kwargs)

        if m.status not in ("closed", "resolving"):
            return self.expect_refusal(MarketStateError, call)
        if self.holds(m, mod):
            return self.expect_refusal(NotAllowed, call, "conflict: force", "propose or decide its")
        if outcome >= m.n:
            return self.expect_refusal(InvalidMarketInput, call)
        before = m.status
        market = call()
        assert market.status == "resolved" and market.winning_outcome.position == outcome
        self.settle_resolve(m, outcome)
        SEEN.update([f"resolved by a moderator ({m.mechanism})"])
        if before == "resolving":
            SEEN.update(["forced on a resolving market"])
        self.done.append(Done(services.market_resolve, kwargs, market.pk))

    def do_cancel(self, m: ModelMarket) -> None:
        kwargs = dict(
            market_id=m.pk,
            actor=Actor.member(MODS[1], manage_guild=True),
            reason="void",
            idempotency_key=self.key("cancel"),
        )

        def call():
            return services.market_cancel(**kwargs)

        if m.status in ("resolved", "cancelled"):
            return self.expect_refusal(MarketStateError, call)
        before = m.status
        if before == "resolving" and m.disputed:
            SEEN.update(["cancelled a disputed market"])
        market = call()
        assert market.status == "cancelled"
        self.settle_cancel(m)
        SEEN.update([f"cancelled ({before})"])
        self.done.append(Done(services.market_cancel, kwargs, market.pk))

    # --- rules: most steps act where the action can succeed; `anything_anywhere` tries any action
    # on any market, where the model must predict the refusal (or the success) ---------------

    @initialize(
        fee_bps=st.sampled_from([0, 100, 250]),
        max_bet=st.sampled_from([250, 1_000_000]),
        mode=st.sampled_from(["vote", "creator"]),
        # The first choice is what a derandomized run draws most: the window and the rule on.
        window=st.sampled_from([WINDOW, 0]),
        coi=st.sampled_from([True, False]),
        mechanism=st.sampled_from(["amm", "parimutuel"]),
        outcomes=st.lists(likely_outcome, min_size=3, max_size=3),
    )
    def guild_setup(
        self,
        fee_bps: int,
        max_bet: int,
        mode: str,
        window: int,
        coi: bool,
        mechanism: str,
        outcomes: list[int],
    ) -> None:
        SEEN.update(["examples", f"guild: {mode} mode, {window}-minute window, coi {coi}"])
        GuildSettings.objects.create(
            guild_id=self.guild,
            **{
                **settings.PM_GUILD_DEFAULTS,
                "starting_balance": STARTING,
                "default_liquidity": LIQUIDITY_DEFAULT,
                "fee_bps": fee_bps,
                "max_bet": max_bet,
                "min_resolution_votes": 2,
                "auto_refund_hours": REFUND_HOURS,
                "resolution_mode": mode,
                "dispute_window_minutes": window,
                "conflict_of_interest": coi,
            },
        )
        self.fee_bps, self.max_bet = fee_bps, max_bet
        self.mode, self.window, self.coi = mode, window, coi
        # Start with one market of each kind so trading begins at the first step.
        self.create(mechanism="amm", n=3, liquidity=None, minutes=7 * 1440)
        self.create(mechanism="parimutuel", n=2, liquidity=None, minutes=7 * 1440)
        self.closed_market_with_traders(mechanism, outcomes)

    def closed_market_with_traders(self, mechanism: str, outcomes: list[int]) -> None:
        """A market the creator, a trader and a moderator traded in, closed: resolution (and
        the conflict-of-interest rule) can start at the first step."""
        self.create(mechanism=mechanism, n=2, liquidity=None, minutes=7 * 1440)
        m = self.markets[-1]
        for user, outcome in zip((CREATOR, TRADERS[1], MODS[0]), outcomes, strict=True):
            self.do_buy(m, user, outcome, 40)
        self.do_close(m, "moderator")

    @precondition(
        lambda self: (
            len(self.markets) < MAX_MARKETS
            and sum(m.status == "open" for m in self.markets) < OPEN_MARKETS
        )
    )
    @rule(
        mechanism=st.sampled_from(["amm", "parimutuel"]),
        n=st.integers(min_value=2, max_value=4),
        liquidity=st.sampled_from([None, 1, 40, 2000]),
        minutes=st.sampled_from([60, 3 * 1440, 7 * 1440]),
    )
    def create(self, mechanism: str, n: int, liquidity: int | None, minutes: int) -> None:
        kwargs = dict(
            guild_id=self.guild,
            creator_id=CREATOR,
            question=f"Market {len(self.markets)}: will it happen?",
            outcomes=[f"Outcome {i}" for i in range(n)],
            duration=minutes,
            mechanism=mechanism,
            liquidity=liquidity,
            idempotency_key=self.key("create"),
            now=self.clock,
            # The creator is a moderator here, so they may choose the liquidity (points.rules).
            actor=Actor.member(CREATOR, manage_guild=True),
        )
        if mechanism != "amm" and liquidity is not None:
            # A pool has no liquidity to set (issue 13): refused, nothing created.
            return self.expect_refusal(InvalidMarketInput, lambda: services.market_create(**kwargs))
        market = services.market_create(**kwargs)
        is_amm = mechanism == "amm"
        points = (liquidity or LIQUIDITY_DEFAULT) if is_amm else 0
        assert market.liquidity == points
        assert market.closes_at == self.clock + dt.timedelta(minutes=minutes)
        self.markets.append(
            ModelMarket(
                pk=market.pk,
                mechanism=mechanism,
                n=n,
                fee_bps=self.fee_bps if is_amm else 0,
                closes_at=market.closes_at,
                escrow=points,
                pools=amm.initial_pools(n, points) if is_amm else [0] * n,
                staked=[0] * n,
            )
        )
        self.done.append(Done(services.market_create, kwargs, market.pk))

    @precondition(lambda self: self.has("open"))
    @rule(i=pick, user=traders, outcome=likely_outcome, amount=amounts)
    def buy(self, i: int, user: int, outcome: int, amount: int) -> None:
        markets = self.fitting("open")
        self.do_buy(markets[i % len(markets)], user, outcome, amount)

    @precondition(lambda self: self.has("open"))
    @rule(i=pick, user=traders, outcome=likely_outcome, amount=st.integers(1, 60))
    def buy_small(self, i: int, user: int, outcome: int, amount: int) -> None:
        """Trading is most of what happens: a second buy rule gives it more of the steps."""
        markets = self.fitting("open")
        self.do_buy(markets[i % len(markets)], user, outcome, amount)

    @precondition(lambda self: self.has("open", mechanism="parimutuel"))
    @rule(
        i=pick,
        backers=st.permutations(TRADERS),
        outcome=likely_outcome,
        amount=st.sampled_from([1, 10, 25, 100]),
    )
    def same_stake(self, i: int, backers: list[int], outcome: int, amount: int) -> None:
        """Two members stake the same round amount on the same outcome of a pool: their
        remainders are equal if it wins, so any leftover point goes by first bet (§5)."""
        markets = self.fitting("open", mechanism="parimutuel")
        m = markets[i % len(markets)]
        self.do_buy(m, backers[0], outcome, amount)
        self.do_buy(m, backers[1], outcome, amount)

    @precondition(lambda self: self.has("open", mechanism="amm"))
    @rule(i=pick, user=traders, outcome=likely_outcome, amount=st.integers(1, 300))
    def buy_shares(self, i: int, user: int, outcome: int, amount: int) -> None:
        """Buys in market-maker markets, so there are shares to sell."""
        markets = self.fitting("open", mechanism="amm")
        self.do_buy(markets[i % len(markets)], user, outcome, amount)

    @precondition(lambda self: self.holdings())
    @rule(i=pick, portion=st.sampled_from(PORTIONS))
    def sell(self, i: int, portion: str | None) -> None:
        holdings = self.holdings()
        m, user, outcome = holdings[i % len(holdings)]
        self.do_sell(m, user, outcome, portion)

    @precondition(lambda self: self.holdings())
    @rule(i=pick, portion=st.sampled_from([None, "half"]))
    def sell_back(self, i: int, portion: str | None) -> None:
        holdings = self.holdings()
        m, user, outcome = holdings[i % len(holdings)]
        self.do_sell(m, user, outcome, portion)

    @precondition(lambda self: self.has("open"))
    @rule(i=pick, who=st.sampled_from(["creator", "stranger", "moderator"]))
    def close(self, i: int, who: str) -> None:
        markets = self.fitting("open")
        self.do_close(markets[i % len(markets)], who)

    @precondition(lambda self: self.has("closed"))
    @rule(i=pick, voter=st.sampled_from(MODS), outcome=likely_outcome)
    def vote(self, i: int, voter: int, outcome: int) -> None:
        markets = self.fitting("closed")
        self.do_vote(markets[i % len(markets)], voter, outcome)

    @precondition(lambda self: self.has("closed"))
    @rule(i=pick, voters=st.permutations(MODS), outcome=likely_outcome)
    def votes_agree(self, i: int, voters: list[int], outcome: int) -> None:
        """Two resolvers vote the same way in a row: the usual way a market resolves."""
        m = self.fitting("closed")[i % len(self.fitting("closed"))]
        self.do_vote(m, voters[0], outcome)
        self.do_vote(m, voters[1], outcome)

    @precondition(lambda self: self.has("closed"))
    @rule(i=pick, outcome=any_outcome)
    def resolve(self, i: int, outcome: int) -> None:
        markets = self.fitting("closed")
        self.do_resolve(markets[i % len(markets)], outcome)

    @precondition(lambda self: self.has("closed"))
    @rule(i=pick)
    def cancel(self, i: int) -> None:
        markets = self.fitting("closed")
        self.do_cancel(markets[i % len(markets)])

    @precondition(lambda self: self.sold_in())
    @rule(i=pick)
    def cancel_after_sales(self, i: int) -> None:
        """A refund is spent − received: cancel a market where someone has sold (DOMAIN §6)."""
        markets = self.sold_in()
        self.do_cancel(markets[i % len(markets)])

    # --- resolution people can trust (docs/domain.md §6.1) -------------------------------------

    @precondition(lambda self: self.has("open"))
    @rule(i=pick, outcome=likely_outcome, amount=st.sampled_from([5, 60]))
    def moderator_trades(self, i: int, outcome: int, amount: int) -> None:
        """A moderator takes a position: the conflict-of-interest rule now concerns them."""
        markets = self.fitting("open")
        self.do_buy(markets[i % len(markets)], MODS[0], outcome, amount)

    @precondition(lambda self: self.has("closed"))
    @rule(
        i=pick,
        who=st.sampled_from(["creator", "creator", "creator_mod", "moderator", "stranger"]),
        mod=st.sampled_from(MODS),
        outcome=likely_outcome,
    )
    def propose(self, i: int, who: str, mod: int, outcome: int) -> None:
        markets = self.fitting("closed")
        self.do_propose(markets[i % len(markets)], who, mod, outcome)

    @precondition(lambda self: self.has("resolving"))
    @rule(i=pick, user=st.sampled_from([*TRADERS, MODS[0], OUTSIDER]))
    def dispute(self, i: int, user: int) -> None:
        markets = self.fitting("resolving")
        self.do_dispute(markets[i % len(markets)], user)

    @precondition(lambda self: self.has("resolving"))
    @rule(i=pick, users=st.permutations(TRADERS))
    def dispute_twice(self, i: int, users: list[int]) -> None:
        """Two traders dispute, then the first again: the third is refused."""
        markets = self.fitting("resolving")
        m = markets[i % len(markets)]
        for user in (users[0], users[1], users[0]):
            self.do_dispute(m, user)

    @precondition(lambda self: self.has("resolving"))
    @rule(
        i=pick,
        who=st.sampled_from(["moderator", "moderator", "stranger"]),
        mod=st.sampled_from(MODS),
    )
    def undo(self, i: int, who: str, mod: int) -> None:
        markets = self.fitting("resolving")
        self.do_undo(markets[i % len(markets)], who, mod)

    @precondition(lambda self: self.has("resolving"))
    @rule(
        i=pick,
        who=st.sampled_from(["moderator", "moderator", "creator", "creator_mod", "stranger"]),
        mod=st.sampled_from(MODS),
        outcome=st.one_of(st.none(), any_outcome),
    )
    def confirm(self, i: int, who: str, mod: int, outcome: int | None) -> None:
        markets = self.fitting("resolving")
        self.do_confirm(markets[i % len(markets)], who, mod, outcome)

    @precondition(lambda self: self.has("resolving"))
    @rule(i=pick, mod=st.sampled_from(MODS), outcome=any_outcome)
    def force(self, i: int, mod: int, outcome: int) -> None:
        """Manage Server resolves directly, overruling the proposal."""
        markets = self.fitting("resolving")
        self.do_resolve(markets[i % len(markets)], outcome, mod)

    @precondition(lambda self: self.has("resolving"))
    @rule(i=pick)
    def cancel_resolving(self, i: int) -> None:
        markets = self.fitting("resolving")
        self.do_cancel(markets[i % len(markets)])

    @precondition(lambda self: self.has("closed", "open"))
    @rule(choice=pick)
    def proposal_story(self, choice: int) -> None:
        """A proposal's whole life in one step, so every example gets deep into §6.1. The
        server picks its rules (mode, window, conflict-of-interest); a market is traded by the
        creator, a member and a moderator (MODS[0]) and closed; it is proposed (by votes, the
        creator or a moderator); the refusals that must come are tried (a vote or a second
        proposal on a proposed market, someone holding a position proposing, confirming or
        forcing, the conflicted proposer confirming, a stranger undoing); perhaps time passes
        to its deadline; some members dispute; then a moderator confirms, changes or undoes it
        (and it is proposed again), the scheduler runs (at the deadline, or when a dispute's
        hold runs out), Manage Server forces a result, or it is cancelled.

        One argument whose choices `spread` makes: Hypothesis draws rules with fewer arguments
        more often, and this rule should have many of the steps."""
        rules_, proposer, late, ending, outcome, disputers, i = self.spread(
            choice,
            GUILD_RULES,
            ["creator_mod", "votes", "creator", "moderator"],
            [False, False, True],
            STORY_ENDINGS,
            [0, 1],
            DISPUTERS,
            [0, 1, 2],
        )
        mode, window, coi = rules_
        if ending in ("undo", "dispute_undo", "hold") and window == 0:
            # These endings act on a proposal that waits; with no window most proposals pay at
            # once and the story would end before them, leaving the MUST_SEE guard to the luck
            # of the draw (which differs between runs in one process and in a full suite).
            window = WINDOW
        self.rules_set(mode, window, coi)
        markets = self.fitting("open") or self.fitting("closed")
        m = markets[i % len(markets)]
        if m.status == "open":
            for user in (CREATOR, TRADERS[1], MODS[0]):
                self.do_buy(m, user, outcome, 20)
            self.do_close(m, "moderator")
        SEEN.update([f"story: {proposer} … {ending}"])
        if self.holds(m, MODS[0]):
            self.do_propose(m, "moderator", MODS[0], outcome)  # refused: conflict

        def make_proposal() -> None:
            if proposer == "votes":
                # MODS[0] (perhaps holding a position) votes first, where its vote decides
                # nothing; or second, where it would decide.
                first, second = (MODS[0], MODS[1]) if outcome == 0 else (MODS[1], MODS[0])
                self.do_vote(m, first, outcome)
                self.do_vote(m, second, outcome)
            else:
                self.do_propose(m, proposer, MODS[1], outcome)

        make_proposal()
        if m.status != "resolving":
            return
        self.do_vote(m, MODS[2], outcome)  # refused: proposed already (or creator mode)
        self.do_propose(m, "moderator", MODS[2], outcome)  # refused: proposed already
        if m.proposal_conflicted:
            self.do_confirm(m, "creator_mod", MODS[2], None)  # refused: the proposer
        if self.holds(m, MODS[0]):
            self.do_confirm(m, "moderator", MODS[0], None)  # refused: conflict
            self.do_resolve(m, outcome, MODS[0])  # refused: conflict
        self.do_undo(m, "stranger", MODS[2])  # refused: not a moderator
        if late and m.deadline is not None and ending != "dispute_undo":
            self.clock = max(self.clock, m.deadline)
        for user in disputers:
            self.do_dispute(m, user)
        second = MODS[2]  # a second resolver: holds nothing, proposed nothing
        if ending in ("confirm", "change"):
            self.do_confirm(m, "moderator", second, None if ending == "confirm" else 1 - outcome)
        elif ending == "self_confirm":
            self.do_confirm(m, "creator_mod", second, None)
        elif ending == "undo":
            self.do_undo(m, "moderator", second)
            make_proposal()
        elif ending == "dispute_undo":  # a trader disputes in time, then a moderator undoes
            if not m.disputed:
                self.do_dispute(m, TRADERS[1])
            self.do_undo(m, "moderator", second)
            make_proposal()
        elif ending == "tick":
            self.clock = max(self.clock, m.deadline or self.clock)
            self.do_tick()
        elif ending == "force":
            self.do_resolve(m, 1 - outcome, second)
        elif ending == "hold":  # a trader disputes, nobody decides: the hold runs out
            if not m.disputed:
                self.do_dispute(m, TRADERS[1])
            if m.disputed and m.deadline is not None:
                # At its deadline the scheduler leaves the disputed market waiting: a path of
                # its own, which only the luck of the draw reached before (CI, 2026-12-07).
                self.clock = max(self.clock, m.deadline)
                self.do_tick()
            if m.disputed_at is not None:
                self.clock = max(self.clock, m.disputed_at + dt.timedelta(hours=HOLD_HOURS))
            self.do_tick()
        else:
            self.do_cancel(m)

    def rules_set(self, mode: str, window: int, coi: bool) -> None:
        """Manage Server sets the server's resolution rules (when they change)."""
        if (mode, window, coi) == (self.mode, self.window, self.coi):
            return
        guild_settings_update(
            guild_id=self.guild,
            actor=Actor.member(MODS[2], manage_guild=True),
            idempotency_key=self.key("settings"),
            values={
                "resolution_mode": mode,
                "dispute_window_minutes": window,
                "conflict_of_interest": coi,
            },
        )
        self.mode, self.window, self.coi = mode, window, coi
        SEEN.update([f"guild: {mode} mode, {window}-minute window, coi {coi}"])

    # Stories are where §6.1 gets deep; a second name gives them more of the steps.
    another_proposal_story = proposal_story

    @precondition(lambda self: self.steps % 4 == 0)
    @rule(choice=pick)
    def settings_change(self, choice: int) -> None:
        """Manage Server changes the rules mid-way: proposals already made keep their deadline
        and their conflict flag; what comes next follows the new rules."""
        self.rules_set(*self.spread(choice, GUILD_RULES)[0])

    @precondition(lambda self: any(m.deadline for m in self.fitting("resolving")))
    @rule(early=st.booleans())
    def tick_at_the_deadline(self, early: bool) -> None:
        """The scheduler runs exactly at the next deadline (or a second before it)."""
        deadline = min(m.deadline for m in self.fitting("resolving") if m.deadline)
        target = deadline - dt.timedelta(seconds=1) if early else deadline
        self.clock = max(self.clock, target)
        self.do_tick()

    @rule(minutes=st.sampled_from([30, 61]))
    def time_passes(self, minutes: int) -> None:
        """Time passes before the scheduler's next run: a window may have ended unsettled."""
        self.clock += dt.timedelta(minutes=minutes)

    @rule(
        action=st.sampled_from(
            [
                *("buy", "sell", "close", "vote", "resolve", "cancel"),
                *("propose", "dispute", "undo", "confirm"),
            ]
        ),
        i=pick,
        user=traders,
        voter=st.sampled_from(MODS),
        outcome=any_outcome,
        amount=st.sampled_from([1, 50, 251, 400]),
        portion=st.sampled_from(PORTIONS),
        who=st.sampled_from(["creator", "stranger", "moderator"]),
    )
    def anything_anywhere(
        self,
        action: str,
        i: int,
        user: int,
        voter: int,
        outcome: int,
        amount: int,
        portion: str | None,
        who: str,
    ) -> None:
        m = self.markets[i % len(self.markets)]
        if action == "buy":
            self.do_buy(m, user, outcome, amount)
        elif action == "sell":
            self.do_sell(m, user, outcome, portion)
        elif action == "close":
            self.do_close(m, who)
        elif action == "vote":
            self.do_vote(m, voter, outcome)
        elif action == "resolve":
            self.do_resolve(m, outcome, voter)
        elif action == "propose":
            self.do_propose(m, who, voter, outcome)
        elif action == "dispute":
            self.do_dispute(m, user)
        elif action == "undo":
            self.do_undo(m, who, voter)
        elif action == "confirm":
            self.do_confirm(m, who, voter, outcome)
        else:
            self.do_cancel(m)

    @rule(hours=st.sampled_from([0, 1, 2, 6, 23, 71, 121, 200]))
    def tick(self, hours: int) -> None:
        self.clock += dt.timedelta(hours=hours)
        self.do_tick()

    def do_tick(self) -> None:
        report = services.markets_tick(now=self.clock)
        mine = {m.pk for m in self.markets}
        expected_closed, expected_refunded, expected_settled = [], [], []
        expected_expired = []
        for m in self.markets:
            if m.status == "open" and m.closes_at <= self.clock:
                m.status, m.closed_at = "closed", self.clock
                expected_closed.append(m.pk)
            elif (
                m.status == "resolving"
                and not m.disputed
                and m.deadline is not None
                and m.deadline <= self.clock
            ):
                assert m.proposed is not None
                at = "at" if m.deadline == self.clock else "after"
                SEEN.update([f"tick settled an undisputed proposal ({at} its deadline)"])
                if m.proposal_conflicted:
                    SEEN.update(["tick settled a conflicted creator's proposal"])
                self.settle_resolve(m, m.proposed)
                expected_settled.append(m.pk)
            elif (
                m.status == "closed"
                and m.closed_at + dt.timedelta(hours=REFUND_HOURS) <= self.clock
            ):
                self.settle_cancel(m)
                expected_refunded.append(m.pk)
            elif (
                m.status == "resolving"
                and m.disputed_at is not None
                and m.disputed_at + dt.timedelta(hours=HOLD_HOURS) <= self.clock
            ):
                # A dispute holds a market at most `dispute_hold_hours` (docs/domain.md §6.1).
                SEEN.update(["tick cancelled a market held too long by a dispute"])
                self.settle_cancel(m)
                expected_expired.append(m.pk)
        if expected_closed or expected_refunded:
            SEEN.update(["tick closed or refunded"])
        assert [pk for pk in report.closed if pk in mine] == expected_closed
        assert [pk for pk in report.refunded if pk in mine] == expected_refunded
        assert [pk for pk in report.settled if pk in mine] == expected_settled
        assert [pk for pk in report.expired if pk in mine] == expected_expired
        if any(m.status == "resolving" and m.disputed for m in self.markets):
            SEEN.update(["tick left a disputed market waiting"])

    @precondition(lambda self: self.done)
    @rule(pick=st.integers(min_value=0), conflicting=st.booleans())
    def replay(self, pick: int, conflicting: bool) -> None:
        """The same key again returns the first result and moves nothing; a bet's key reused
        with a different amount is refused."""
        bets = [d for d in self.done if d.call is betting_services.bet_place]
        if conflicting and bets:
            done = bets[pick % len(bets)]
            changed = {**done.kwargs, "amount": done.kwargs["amount"] + 1}
            return self.expect_refusal(IdempotencyConflict, lambda: done.call(**changed))
        done = self.done[pick % len(self.done)]
        result = done.call(**done.kwargs)
        SEEN.update(["replayed"])
        if done.call is services.resolution_vote_cast:
            assert result.market_id == done.kwargs["market_id"]
            assert result.voter_id == done.kwargs["actor"].user_id
            if not self.markets_by_pk[result.market_id].votes:
                SEEN.update(["replayed a vote an undo cleared"])
        else:
            assert result.pk == done.pk

    # --- invariants --------------------------------------------------------------------------

    @invariant()
    def ledger_is_clean_every_few_steps(self) -> None:
        SEEN.update(["steps"])
        self.steps += 1
        if self.steps % AUDIT_EVERY == 0:
            self.ledger_audit_passes()

    def ledger_audit_passes(self) -> None:
        SEEN.update(["audits"])
        audit = ledger_audit()
        assert audit.ok, audit.violations

    @invariant()
    def wallets_match_the_model(self) -> None:
        found = dict(
            Account.objects.filter(guild_id=self.guild, kind=Account.Kind.WALLET).values_list(
                "owner_id", "balance"
            )
        )
        assert found == self.wallets
        assert all(balance >= 0 for balance in found.values())

    @invariant()
    def markets_match_the_model(self) -> None:
        rows = self._market_rows()
        expected = {
            m.pk: (
                m.status,
                m.escrow,
                m.proposed,
                m.deadline,
                m.disputed,
                m.proposal_conflicted if m.status == "resolving" else None,
                m.round,
            )
            for m in self.markets
        }
        assert rows == expected
        for m in self.markets:
            if m.status in ("resolved", "cancelled"):
                assert m.escrow == 0

    def _market_rows(self) -> dict[int, tuple]:
        rows = Market.objects.filter(guild_id=self.guild).values_list(
            "pk",
            "status",
            "proposed_outcome__position",
            "dispute_deadline",
            "disputed_at",
            "proposal_conflicted",
            "proposal_round",
        )
        escrows = dict(
            Account.objects.filter(guild_id=self.guild, kind=Account.Kind.ESCROW).values_list(
                "market_id", "balance"
            )
        )
        return {
            pk: (
                status,
                escrows[pk],
                proposed,
                deadline,
                disputed is not None and status == "resolving",
                conflicted if status == "resolving" else None,
                round_,
            )
            for pk, status, proposed, deadline, disputed, conflicted, round_ in rows
        }


MUST_SEE = [
    "bought (amm)",
    "bought (parimutuel)",
    "sold",
    "resolved by votes",
    "resolved by a moderator",
    "cancelled",
    "refund after sales",
    "tick closed or refunded",
    "replayed",
    "refused: MarketStateError",
    "refused: IdempotencyConflict",
    # Resolution people can trust (docs/domain.md §6.1).
    "guild: vote mode, 0-minute window, coi True",
    "guild: vote mode, 60-minute window, coi False",
    "guild: creator mode, 0-minute window, coi True",
    "guild: creator mode, 60-minute window, coi True",
    "proposed (votes, window)",
    "proposed (creator, window)",
    "proposed (moderator, window)",
    "proposed (creator, waits for a second resolver)",
    "proposed by a conflicted creator",
    "proposed again after an undo",
    "resolved at once when proposed (creator)",
    "resolved at once when proposed (moderator)",
    "refused: vote in creator mode",
    "refused: vote on a proposed market",
    "refused: propose (stranger)",
    "refused: propose (creator)",
    "refused: propose twice",
    "disputed",
    "disputed by a second member",
    "refused: dispute by a non-trader",
    "refused: dispute twice",
    "refused: dispute after the deadline",
    "undone",
    "undone after a dispute",
    "refused: undo (stranger)",
    "confirmed as proposed",
    "confirmed changed",
    "refused: confirm (creator)",
    "refused: confirm (stranger)",
    "a second resolver confirmed a conflicted proposal",
    "refused: conflicted proposer confirms",
    "tick settled an undisputed proposal (at its deadline)",
    "tick settled an undisputed proposal (after its deadline)",
    "tick left a disputed market waiting",
    "tick cancelled a market held too long by a dispute",
    "cancelled (resolving)",
    "cancelled a disputed market",
    "forced on a resolving market",
    "refused: conflict: a vote",
    "refused: conflict: propose",
    "refused: conflict: confirm",
    "refused: conflict: force",
]
"""Paths every run must reach (the `ci` Hypothesis profile runs a fixed sequence, see below); the
counts by mechanism are printed with `-s`."""


def test_market_lifecycle_matches_the_model():
    SEEN.clear()
    run_state_machine_as_test(
        MarketLifecycle,
        settings=hsettings(
            # The `ci` profile (tests/conftest.py) runs a fixed sequence, so the MUST_SEE guard
            # cannot flake there; it is derived from the machine's source, so after editing the
            # machine run with CI=true and check the guard still holds (100 examples reach every
            # path today; the audit every AUDIT_EVERY steps pays for them). `dev` runs explore
            # new sequences every time, and fewer of them.
            max_examples=100 if hsettings.default.derandomize else 20,
            stateful_step_count=50,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    missing = [label for label in MUST_SEE if not any(k.startswith(label) for k in SEEN)]
    # The fixed sequence follows the system's answers, so a change elsewhere (a new refusal, a
    # new setting) can steer it past a rare path. Before calling a path unreachable, up to three
    # rounds of fresh draws look for it: a path none of them reaches is a machine that cannot.
    for _ in range(3 if missing and hsettings.default.derandomize else 0):
        run_state_machine_as_test(
            MarketLifecycle,
            settings=hsettings(
                derandomize=False,
                database=None,
                max_examples=20,
                stateful_step_count=50,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
        missing = [label for label in MUST_SEE if not any(k.startswith(label) for k in SEEN)]
        if not missing:
            break
    print("\n[stateful] " + ", ".join(f"{k}: {v}" for k, v in sorted(SEEN.items())))
    assert SEEN["audits"] >= SEEN["steps"] // AUDIT_EVERY > 0
    if hsettings.default.derandomize:
        assert not missing, f"never exercised: {missing}"
    elif missing:
        # A random local run may miss a rare path; only the fixed CI sequence is held to it,
        # so `make test` never flakes.
        warnings.warn(f"stateful run never exercised: {missing}", stacklevel=1)
