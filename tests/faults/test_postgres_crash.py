"""Drill: PostgreSQL crashes under load (issue 12). Threads bet and tip on a private PostgreSQL;
the whole server is SIGKILLed mid-load and restarted. Every operation whose outcome the caller
did not learn is retried once with its idempotency key. Then: every acknowledged operation is
in the database, nothing is in the database that was not asked for, no key took effect twice,
the ledger audit is clean, and no call waited longer than its budget.

Run with `-s` to see the drill line."""

from __future__ import annotations

import random
import threading
import time

import pytest
from django.conf import settings
from django.db import Error as DatabaseLayerError
from django.db.models import Count

from betting import services as trading
from betting.models import Trade
from markets import services as market_services
from points import services as points_services
from points.audit import ledger_audit
from points.errors import DomainError
from points.models import GuildSettings, Transfer
from tests.conftest import ALICE

from .conftest import close_connection

pytestmark = [pytest.mark.faults, pytest.mark.postgres]

GUILD = 444_444_444_444_444_401
MEMBERS = [ALICE + n for n in range(1, 7)]
THREADS = 6
CALL_BUDGET = 12.0  # seconds: connect_timeout (5 s) plus a retry's backoff, with room to spare
LOAD_BEFORE_CRASH, DOWN_FOR, LOAD_AFTER_RESTART = 1.5, 1.0, 1.5


def test_postgres_killed_mid_load_loses_and_doubles_nothing(on_private_postgres, drill):
    server = on_private_postgres
    GuildSettings.objects.create(
        guild_id=GUILD, **{**settings.PM_GUILD_DEFAULTS, "starting_balance": 2_000}
    )
    market = market_services.market_create(
        guild_id=GUILD,
        creator_id=ALICE,
        question="Will the drill survive a crash?",
        outcomes=["Yes", "No"],
        duration="1d",
        idempotency_key="crash:market",
    )
    close_connection()

    requests: dict[str, tuple[str, dict]] = {}
    acknowledged: set[str] = set()
    refused: set[str] = set()
    unknown: dict[str, str] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def call(kind: str, params: dict):
        if kind == "bet":
            return trading.bet_place(**params)
        return points_services.points_tip(**params)

    def attempt(key: str) -> None:
        kind, params = requests[key]
        try:
            drill.timed(lambda: call(kind, params))
        except DomainError:
            with lock:
                refused.add(key)
                unknown.pop(key, None)
        except DatabaseLayerError as exc:
            close_connection()
            with lock:
                unknown[key] = type(exc).__name__
        else:
            with lock:
                acknowledged.add(key)
                unknown.pop(key, None)

    def worker(index: int) -> None:
        rng = random.Random(index)
        try:
            for n in range(10_000):
                if stop.is_set():
                    return
                member = MEMBERS[index % len(MEMBERS)]
                key = f"crash:{index}:{n}"
                if n % 2 == 0:
                    params = dict(market_id=market.pk, user_id=member, outcome=rng.randint(1, 2),
                                  amount=rng.randint(1, 30), idempotency_key=key)  # fmt: skip
                    requests[key] = ("bet", params)
                else:
                    other = rng.choice([m for m in MEMBERS if m != member])
                    params = dict(guild_id=GUILD, from_user_id=member, to_user_id=other,
                                  amount=rng.randint(1, 20), idempotency_key=key)  # fmt: skip
                    requests[key] = ("tip", params)
                attempt(key)
                if key in unknown:
                    time.sleep(0.05)  # the server is down: do not spin
        finally:
            close_connection()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    time.sleep(LOAD_BEFORE_CRASH)
    server.kill()
    time.sleep(DOWN_FOR)
    server.start()
    time.sleep(LOAD_AFTER_RESTART)
    stop.set()
    for thread in threads:
        thread.join(CALL_BUDGET * 3)
    assert not [t for t in threads if t.is_alive()], "a worker hung"

    acknowledged_before_retry = set(acknowledged)
    outcome_unknown = dict(unknown)
    committed_unheard = set(
        Trade.objects.filter(idempotency_key__in=outcome_unknown).values_list(
            "idempotency_key", flat=True
        )
    ) | set(
        Transfer.objects.filter(
            code=Transfer.Code.TIP, idempotency_key__in=outcome_unknown
        ).values_list("idempotency_key", flat=True)
    )
    for key in list(outcome_unknown):  # reconcile: ask again with the same key
        attempt(key)
    assert not unknown, f"still unknown after a retry on a running server: {unknown}"

    bets = Trade.objects.filter(idempotency_key__startswith="crash:").exclude(
        idempotency_key="crash:market"
    )
    tips = Transfer.objects.filter(code=Transfer.Code.TIP, idempotency_key__startswith="crash:")
    in_database = set(bets.values_list("idempotency_key", flat=True)) | set(
        tips.values_list("idempotency_key", flat=True)
    )
    doubled = [
        row
        for query in (bets, tips)
        for row in query.values("idempotency_key").annotate(n=Count("id")).filter(n__gt=1)
    ]
    drill.acknowledged = len(acknowledged)
    drill.in_database = len(in_database)
    drill.lost = len(acknowledged_before_retry - in_database)
    drill.doubled = len(doubled)
    drill.notes.append(
        f"{len(requests)} requests, {len(outcome_unknown)} outcome unknown during the crash "
        f"({sorted(set(outcome_unknown.values()))}; {len(committed_unheard)} of them had "
        "committed), "
        f"{len(refused)} refused"
    )
    report = ledger_audit()

    assert outcome_unknown, "the crash hit no operation: the drill proved nothing"
    assert acknowledged_before_retry, "no operation succeeded before or after the crash"
    assert drill.lost == 0, sorted(acknowledged_before_retry - in_database)
    assert drill.doubled == 0, doubled
    assert in_database == acknowledged, {
        "in the database, never acknowledged": sorted(in_database - acknowledged),
        "acknowledged, not in the database": sorted(acknowledged - in_database),
    }
    assert not in_database & refused
    assert report.ok, report.violations
    assert drill.longest_wait <= CALL_BUDGET
