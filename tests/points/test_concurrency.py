"""The ledger under real concurrency (DOMAIN §3): threads on real PostgreSQL, released together by
a barrier, each on its own connection. Row locks taken in primary-key order must make overdrafts,
double posts and deadlocks impossible, whatever the interleaving.

Run with `-s` to see the counts each test measured."""

from __future__ import annotations

import logging
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.conf import settings
from django.db import connection

from points import selectors, services
from points.errors import InsufficientPoints
from points.models import Account, GuildSettings, Transfer
from points.rules import SYSTEM, Actor
from tests.conftest import ALICE, BOB, GUILD, MOD

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

JOIN_TIMEOUT = 120  # seconds; a hung thread fails the test instead of hanging the suite


@dataclass
class Outcomes:
    """What every thread got back, by thread index."""

    results: dict[int, object] = field(default_factory=dict)
    errors: dict[int, BaseException] = field(default_factory=dict)

    def error_kinds(self) -> Counter[str]:
        return Counter(type(e).__name__ for e in self.errors.values())

    def unexpected(self, *allowed: type[BaseException]) -> dict[int, BaseException]:
        return {i: e for i, e in self.errors.items() if not isinstance(e, allowed)}


def run_threads(count: int, work: Callable[[int], object]) -> Outcomes:
    """Run `work(i)` for i in range(count) on `count` threads released together by a barrier.
    Each thread uses (and finally closes) its own database connection."""
    barrier = threading.Barrier(count)
    outcomes = Outcomes()
    lock = threading.Lock()

    def target(i: int) -> None:
        try:
            barrier.wait(timeout=JOIN_TIMEOUT)
            result = work(i)
            with lock:
                outcomes.results[i] = result
        except BaseException as exc:  # recorded; the test asserts on every one
            with lock:
                outcomes.errors[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=target, args=(i,), name=f"ledger-{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    hung = [t.name for t in threads if t.is_alive()]
    assert not hung, f"threads still running after {JOIN_TIMEOUT}s (deadlock?): {hung}"
    return outcomes


def guild_with_starting_balance(guild_id: int, starting_balance: int) -> None:
    GuildSettings.objects.create(
        guild_id=guild_id, **{**settings.PM_GUILD_DEFAULTS, "starting_balance": starting_balance}
    )


def report(line: str) -> str:
    print(f"\n[concurrency] {line}")
    return line


@pytest.mark.parametrize("spend", ["deduct", "tip"])
def test_fifty_spends_of_ten_from_two_hundred_exactly_twenty_succeed(spend):
    guild_with_starting_balance(GUILD, 200)
    wallet = services.wallet_get_or_create(guild_id=GUILD, user_id=ALICE)
    assert wallet.balance == 200

    def work(i: int) -> Transfer:
        if spend == "deduct":
            return services.points_deduct(
                guild_id=GUILD,
                user_id=ALICE,
                amount=10,
                reason="concurrency test",
                idempotency_key=f"spend:{i}",
                actor=Actor.member(MOD, manage_guild=True),
            )
        # BOB has no wallet yet: the first tips also race to create it.
        return services.points_tip(
            guild_id=GUILD,
            from_user_id=ALICE,
            to_user_id=BOB,
            amount=10,
            idempotency_key=f"spend:{i}",
        )

    outcomes = run_threads(50, work)

    balance = selectors.balance_get(guild_id=GUILD, user_id=ALICE)
    summary = report(
        f"50 threads × {spend} 10 from a 200-point wallet: {len(outcomes.results)} succeeded, "
        f"errors {dict(outcomes.error_kinds())}, final balance {balance}"
    )
    assert not outcomes.unexpected(InsufficientPoints), summary
    assert len(outcomes.results) == 20, summary
    assert len(outcomes.errors) == 30, summary
    assert balance == 0, summary
    assert Transfer.objects.filter(code=spend).count() == 20, summary
    assert len({t.pk for t in outcomes.results.values()}) == 20, summary
    if spend == "tip":
        assert selectors.balance_get(guild_id=GUILD, user_id=BOB) == 200 + 20 * 10, summary
        assert Account.objects.filter(kind="wallet", owner_id=BOB).count() == 1, summary


@pytest.mark.parametrize("use_case", ["tip", "grant"])
def test_twenty_threads_with_one_idempotency_key_post_one_transfer(use_case):
    services.wallet_get_or_create(guild_id=GUILD, user_id=ALICE)
    services.wallet_get_or_create(guild_id=GUILD, user_id=BOB)

    def work(_: int) -> Transfer:
        if use_case == "tip":
            return services.points_tip(
                guild_id=GUILD, from_user_id=ALICE, to_user_id=BOB, amount=7, idempotency_key="k"
            )
        return services.points_grant(
            guild_id=GUILD,
            user_id=ALICE,
            amount=7,
            reason="prize",
            idempotency_key="k",
            actor=SYSTEM,
        )

    outcomes = run_threads(20, work)

    pks = Counter(t.pk for t in outcomes.results.values())
    summary = report(
        f"20 threads × {use_case} with one key: {len(outcomes.results)} returned, transfer pks "
        f"{dict(pks)}, errors {dict(outcomes.error_kinds())}, "
        f"{Transfer.objects.filter(idempotency_key='k').count()} transfer(s) with the key"
    )
    assert not outcomes.errors, summary
    assert len(outcomes.results) == 20 and len(pks) == 1, summary
    assert Transfer.objects.filter(idempotency_key="k").count() == 1, summary
    alice = selectors.balance_get(guild_id=GUILD, user_id=ALICE)
    assert alice == (1000 - 7 if use_case == "tip" else 1000 + 7), summary


def test_opposite_direction_tips_neither_deadlock_nor_create_points(caplog):
    caplog.set_level(logging.WARNING, logger="points.db")
    services.wallet_get_or_create(guild_id=GUILD, user_id=ALICE)
    services.wallet_get_or_create(guild_id=GUILD, user_id=BOB)
    total = 2000
    rounds = 40

    def work(i: int) -> Counter[str]:
        # Even threads tip ALICE → BOB, odd threads BOB → ALICE: without pk-ordered locking two
        # such transactions each hold one wallet and wait for the other.
        sender, receiver = (ALICE, BOB) if i % 2 == 0 else (BOB, ALICE)
        rng = random.Random(i)
        tally: Counter[str] = Counter()
        for r in range(rounds):
            try:
                services.points_tip(
                    guild_id=GUILD,
                    from_user_id=sender,
                    to_user_id=receiver,
                    amount=rng.randint(1, 150),
                    idempotency_key=f"tip:{i}:{r}",
                )
                tally["ok"] += 1
            except InsufficientPoints:
                tally["insufficient"] += 1
        return tally

    outcomes = run_threads(8, work)

    tally = sum(outcomes.results.values(), Counter())
    alice = selectors.balance_get(guild_id=GUILD, user_id=ALICE)
    bob = selectors.balance_get(guild_id=GUILD, user_id=BOB)
    retries = [r.getMessage() for r in caplog.records if "transient database error" in r.message]
    summary = report(
        f"8 threads × {rounds} opposite-direction tips: {tally['ok']} posted, "
        f"{tally['insufficient']} refused (insufficient), errors {dict(outcomes.error_kinds())}, "
        f"transient retries {len(retries)}, balances {alice} + {bob} = {alice + bob}"
    )
    assert not outcomes.errors, summary  # an OperationalError (deadlock) would land here
    assert not retries, summary  # not even a deadlock that a retry papered over
    assert tally["ok"] + tally["insufficient"] == 8 * rounds, summary
    assert tally["ok"] > 0, summary
    assert alice + bob == total, summary
    assert Transfer.objects.filter(code="tip").count() == tally["ok"], summary


def test_concurrent_first_use_creates_one_wallet_with_one_starting_balance():
    # A guild nobody has used yet: its settings row and treasury are created in the race too.
    guild = GUILD + 7
    user = ALICE + 7

    outcomes = run_threads(
        20, lambda _: services.wallet_get_or_create(guild_id=guild, user_id=user)
    )

    pks = Counter(w.pk for w in outcomes.results.values())
    wallets = Account.objects.filter(guild_id=guild, kind="wallet", owner_id=user).count()
    starts = Transfer.objects.filter(guild_id=guild, code="starting_balance").count()
    summary = report(
        f"20 threads × first wallet_get_or_create: {len(outcomes.results)} returned, "
        f"wallet pks {dict(pks)}, {wallets} wallet(s), {starts} starting balance(s), "
        f"errors {dict(outcomes.error_kinds())}"
    )
    assert not outcomes.errors, summary
    assert len(pks) == 1 and wallets == 1 and starts == 1, summary
    assert Account.objects.filter(guild_id=guild, kind="treasury").count() == 1, summary
    assert GuildSettings.objects.filter(guild_id=guild).count() == 1, summary
    expected = settings.PM_GUILD_DEFAULTS["starting_balance"]
    assert selectors.balance_get(guild_id=guild, user_id=user) == expected, summary
