"""The ledger against a plain-Python model (DOMAIN §2–§3), driven by a Hypothesis state machine.

Every step is a grant, deduct, tip, daily claim (on a clock the machine controls), an invalid
amount, or a replay of an earlier key — with the same content (→ the first transfer, nothing
moves) or different content (→ `IdempotencyConflict`). After every step every balance, the
treasury and the transfer count must equal the model's; the full ledger audit (which reads every
row of every example so far) runs every `AUDIT_EVERY` steps and when an example ends.

Each example runs in a guild of its own, so examples cannot see each other's rows (transfers are
append-only, and the services' durable transactions cannot nest inside a per-example savepoint);
the database test's rollback removes them all at the end."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass

import pytest
from django.conf import settings
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from points import selectors, services
from points.audit import ledger_audit
from points.errors import (
    MAX_AMOUNT,
    AlreadyClaimed,
    DomainError,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidAmount,
    InvalidInput,
)
from points.models import Account, GuildSettings, Transfer
from points.rules import SYSTEM, Actor

pytestmark = pytest.mark.django_db

MEMBERS = [500_000_000_000_000_001 + i for i in range(4)]
MOD = 500_000_000_000_000_900
_guilds = itertools.count(900_000_000_000_000_000)
AUDIT_EVERY = 5
"""Steps between full ledger audits (25-step examples: five audits each, the last at teardown)."""

members = st.sampled_from(MEMBERS)
# Mostly amounts a wallet can afford, sometimes more than it holds.
amounts = st.one_of(
    st.integers(min_value=1, max_value=120), st.integers(min_value=1, max_value=2_000)
)
bad_amounts = st.one_of(
    st.integers(max_value=0), st.integers(min_value=MAX_AMOUNT + 1), st.just(True), st.just(2.5)
)


@dataclass(frozen=True)
class Op:
    """A request that succeeded: enough to replay it exactly, or with one thing changed."""

    kind: str  # "grant" | "deduct" | "tip"
    key: str
    amount: int
    user_id: int
    to_user_id: int | None
    transfer_pk: int


class LedgerMachine(RuleBasedStateMachine):
    ops = Bundle("ops")

    def __init__(self) -> None:
        super().__init__()
        self.guild = next(_guilds)
        self.steps = 0
        self.balances: dict[int, int] = {}  # the model: member → balance, wallets that exist
        self.transfers = 0  # the guild's transfers the model expects
        self.pending_transfers = 0  # starting balances the request in progress would post
        self.claimed: set[tuple[int, dt.date]] = set()
        self.now = dt.datetime(2025, 3, 1, 23, 0, tzinfo=dt.UTC)
        self.keys = itertools.count()
        self.starting_balance = 0
        self.daily_bonus = 0

    # --- model helpers -------------------------------------------------------------------

    def key(self, kind: str) -> str:
        return f"{kind}:{self.guild}:{next(self.keys)}"

    def ensured(self, balances: dict[int, int], user_id: int) -> int:
        """Give `user_id` a wallet in `balances` (a draft of the model) as a service would."""
        if user_id not in balances:
            balances[user_id] = self.starting_balance
            if self.starting_balance > 0:
                self.pending_transfers += 1
        return balances[user_id]

    def begin(self) -> dict[int, int]:
        self.pending_transfers = 0
        return dict(self.balances)

    def commit(self, draft: dict[int, int], transfers: int) -> None:
        self.balances = draft
        self.transfers += self.pending_transfers + transfers

    # --- rules ---------------------------------------------------------------------------

    @initialize(
        starting_balance=st.sampled_from([0, 1, 100, 1000]),
        daily_bonus=st.sampled_from([0, 50, 100]),
    )
    def configure_guild(self, starting_balance: int, daily_bonus: int) -> None:
        self.starting_balance, self.daily_bonus = starting_balance, daily_bonus
        GuildSettings.objects.create(
            guild_id=self.guild,
            **{
                **settings.PM_GUILD_DEFAULTS,
                "starting_balance": starting_balance,
                "daily_bonus": daily_bonus,
            },
        )

    @rule(target=ops, user_id=members, amount=amounts)
    def grant(self, user_id: int, amount: int):
        draft = self.begin()
        key = self.key("grant")
        transfer = services.points_grant(
            guild_id=self.guild,
            user_id=user_id,
            amount=amount,
            reason="model grant",
            idempotency_key=key,
            actor=Actor.member(MOD, manage_guild=True),
        )
        draft[user_id] = self.ensured(draft, user_id) + amount
        self.commit(draft, 1)
        assert (transfer.code, transfer.amount) == ("grant", amount)
        return Op("grant", key, amount, user_id, None, transfer.pk)

    @rule(target=ops, user_id=members, amount=amounts)
    def deduct(self, user_id: int, amount: int):
        draft = self.begin()
        key = self.key("deduct")
        have = self.ensured(draft, user_id)
        if amount > have:
            with pytest.raises(InsufficientPoints):
                services.points_deduct(
                    guild_id=self.guild,
                    user_id=user_id,
                    amount=amount,
                    reason="model deduct",
                    idempotency_key=key,
                    actor=SYSTEM,
                )
            return multiple()  # the whole transaction rolled back, a new wallet included
        transfer = services.points_deduct(
            guild_id=self.guild,
            user_id=user_id,
            amount=amount,
            reason="model deduct",
            idempotency_key=key,
            actor=SYSTEM,
        )
        draft[user_id] = have - amount
        self.commit(draft, 1)
        return Op("deduct", key, amount, user_id, None, transfer.pk)

    @rule(target=ops, sender=members, receiver=members, amount=amounts)
    def tip(self, sender: int, receiver: int, amount: int):
        key = self.key("tip")
        call = dict(
            guild_id=self.guild,
            from_user_id=sender,
            to_user_id=receiver,
            amount=amount,
            idempotency_key=key,
        )
        if sender == receiver:
            with pytest.raises(InvalidInput):
                services.points_tip(**call)
            return multiple()
        draft = self.begin()
        self.ensured(draft, receiver)
        have = self.ensured(draft, sender)
        if amount > have:
            with pytest.raises(InsufficientPoints):
                services.points_tip(**call)
            return multiple()
        transfer = services.points_tip(**call)
        draft[sender] -= amount
        draft[receiver] += amount
        self.commit(draft, 1)
        return Op("tip", key, amount, sender, receiver, transfer.pk)

    @rule(hours=st.integers(min_value=1, max_value=30))
    def advance_clock(self, hours: int) -> None:
        self.now += dt.timedelta(hours=hours)

    @rule(user_id=members)
    def daily(self, user_id: int) -> None:
        if self.daily_bonus == 0:
            with pytest.raises(DomainError) as exc:
                services.daily_claim(guild_id=self.guild, user_id=user_id, now=self.now)
            assert exc.value.code == "daily_disabled"
            return
        day = self.now.date()
        if (user_id, day) in self.claimed:
            with pytest.raises(AlreadyClaimed) as refused:
                services.daily_claim(guild_id=self.guild, user_id=user_id, now=self.now)
            next_at = dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
            assert refused.value.details["next_at"] == next_at.isoformat()
            return
        draft = self.begin()
        transfer = services.daily_claim(guild_id=self.guild, user_id=user_id, now=self.now)
        draft[user_id] = self.ensured(draft, user_id) + self.daily_bonus
        self.commit(draft, 1)
        self.claimed.add((user_id, day))
        assert (transfer.code, transfer.amount) == ("daily_bonus", self.daily_bonus)

    @rule(user_id=members, amount=bad_amounts, kind=st.sampled_from(["grant", "deduct", "tip"]))
    def invalid_amount(self, user_id: int, amount: object, kind: str) -> None:
        with pytest.raises(InvalidAmount):
            self.call(kind, self.key("bad"), amount, user_id, MEMBERS[0] + MEMBERS[-1] - user_id)

    @rule(op=ops)
    def replay_same(self, op: Op) -> None:
        transfer = self.call(op.kind, op.key, op.amount, op.user_id, op.to_user_id)
        assert transfer.pk == op.transfer_pk  # and the invariants check that nothing moved

    @rule(op=ops, change=st.sampled_from(["amount", "member", "kind"]))
    def replay_different(self, op: Op, change: str) -> None:
        kind, amount, user_id, to_user_id = op.kind, op.amount, op.user_id, op.to_user_id
        if change == "amount":
            amount += 1
        elif change == "member":
            user_id = next(m for m in MEMBERS if m not in (op.user_id, op.to_user_id))
        else:
            kind = {"grant": "deduct", "deduct": "tip", "tip": "grant"}[op.kind]
            to_user_id = to_user_id or next(m for m in MEMBERS if m != op.user_id)
        with pytest.raises(IdempotencyConflict):
            self.call(kind, op.key, amount, user_id, to_user_id)

    @precondition(lambda self: self.balances)
    @rule(data=st.data())
    def spend_everything(self, data) -> None:
        """Drive a wallet to exactly zero: the boundary of the non-negative rule."""
        user_id = data.draw(st.sampled_from(sorted(self.balances)))
        have = self.balances[user_id]
        if have == 0:
            return
        draft = self.begin()
        services.points_deduct(
            guild_id=self.guild,
            user_id=user_id,
            amount=have,
            reason="to zero",
            idempotency_key=self.key("zero"),
            actor=SYSTEM,
        )
        draft[user_id] = 0
        self.commit(draft, 1)

    def call(self, kind: str, key: str, amount: object, user_id: int, to_user_id: int | None):
        if kind == "tip":
            return services.points_tip(
                guild_id=self.guild,
                from_user_id=user_id,
                to_user_id=to_user_id,
                amount=amount,
                idempotency_key=key,
            )
        service = services.points_grant if kind == "grant" else services.points_deduct
        return service(
            guild_id=self.guild,
            user_id=user_id,
            amount=amount,
            reason="r",
            idempotency_key=key,
            actor=SYSTEM,
        )

    def teardown(self) -> None:
        self.ledger_audit_passes()  # the last steps since the previous audit

    # --- invariants, checked after every step ---------------------------------------------

    @invariant()
    def ledger_audit_is_clean_every_few_steps(self) -> None:
        self.steps += 1
        if self.steps % AUDIT_EVERY == 0:
            self.ledger_audit_passes()

    def ledger_audit_passes(self) -> None:
        report = ledger_audit()
        assert report.ok, report.violations

    @invariant()
    def balances_equal_the_model(self) -> None:
        wallets = dict(
            Account.objects.filter(guild_id=self.guild, kind="wallet").values_list(
                "owner_id", "balance"
            )
        )
        assert wallets == self.balances
        for user_id in MEMBERS:
            assert selectors.balance_get(guild_id=self.guild, user_id=user_id) == (
                self.balances.get(user_id)
            )

    @invariant()
    def treasury_and_transfer_count_equal_the_model(self) -> None:
        treasury = (
            Account.objects.filter(guild_id=self.guild, kind="treasury")
            .values_list("balance", flat=True)
            .first()
        )
        assert (treasury or 0) == -sum(self.balances.values())
        assert Transfer.objects.filter(guild_id=self.guild).count() == self.transfers


def test_ledger_matches_its_model():
    run_state_machine_as_test(
        LedgerMachine,
        settings=hsettings(
            max_examples=40,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
