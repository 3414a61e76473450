"""Through a real PgBouncer in transaction mode (issue 24 item 3): Debian's `pgbouncer` in front of
the private PostgreSQL with a pool of 4 server connections, Django connected with the settings
`DB_PGBOUNCER=1` gives (no startup `options`, no prepared statements) and the timeouts set on the
role instead. A rush of 40 members betting at once (10 clients per server connection), lease
claims, and a lost COMMIT acknowledgement between Django and PgBouncer: nothing lost or doubled,
ledger audit clean."""

from __future__ import annotations

import contextlib
import shutil
import threading
from collections.abc import Iterator

import psycopg
import pytest
from django.db import connection

from betting import services as trading
from betting.models import Trade
from core.leases import lease_claim, lease_get
from points.audit import ledger_audit
from tests.conftest import ALICE

from .conftest import DRILL_DATABASE, _unavailable, close_connection, django_database
from .proxy import FaultProxy
from .servers import PrivatePgBouncer
from .test_proxy_drills import STARTING, balance, open_market

pytestmark = [pytest.mark.faults, pytest.mark.postgres]

ROLE_SETTINGS = {
    "statement_timeout": "30s",
    "lock_timeout": "10s",
    "idle_in_transaction_session_timeout": "60s",
    "timezone": "UTC",
}
"""What `options` would have set, on the role instead (docs/deploy.md §8)."""


@pytest.fixture
def bouncer(private_postgres) -> Iterator[PrivatePgBouncer]:
    if shutil.which("pgbouncer") is None:
        _unavailable("pgbouncer is not installed (apt-get install pgbouncer)")
    with psycopg.connect(private_postgres.dsn(DRILL_DATABASE), autocommit=True) as admin:
        for name, value in ROLE_SETTINGS.items():
            admin.execute(
                f"ALTER ROLE postgres IN DATABASE {DRILL_DATABASE} SET {name} = '{value}'"
            )
    server = PrivatePgBouncer(private_postgres, pool_size=4).start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def pgbouncer_mode() -> Iterator[None]:
    """The default connection's options as `DB_PGBOUNCER=1` makes them (config/settings.py)."""
    conn = connection
    saved = conn.settings_dict["OPTIONS"]
    options = {k: v for k, v in saved.items() if k != "options"}
    conn.settings_dict["OPTIONS"] = {**options, "prepare_threshold": None}
    try:
        yield
    finally:
        conn.close()
        conn.settings_dict["OPTIONS"] = saved


@pytest.fixture
def through_bouncer(bouncer, transactional_db) -> Iterator[FaultProxy]:
    """Django → fault proxy → PgBouncer → the private PostgreSQL."""
    with (
        FaultProxy("127.0.0.1", bouncer.port) as proxy,
        django_database(host="127.0.0.1", port=proxy.port),
        pgbouncer_mode(),
    ):
        yield proxy


def test_the_role_carries_the_timeouts_through_pgbouncer(through_bouncer):
    with connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] == "10s"
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "30s"


RUSH = 40


def test_a_rush_through_pgbouncer_loses_and_doubles_nothing(through_bouncer, drill):
    guild = 444_444_444_444_444_951
    market = open_market(guild, "bouncer:market")
    start = threading.Barrier(RUSH)
    errors: list[BaseException] = []
    done: list[int] = []
    lock = threading.Lock()

    def member(i: int) -> None:
        try:
            start.wait(30)
            trade = drill.timed(
                lambda: trading.bet_place(
                    market_id=market.pk,
                    user_id=ALICE + 100 + i,
                    outcome=i % 2,
                    amount=10,
                    idempotency_key=f"bouncer:bet:{i}",
                )
            )
            claimed = lease_claim("bouncer-drill", f"member-{i}", seconds=30)
            with lock:
                done.append(trade.pk)
                if claimed:
                    done.append(-1)
        except BaseException as exc:  # asserted below
            with lock:
                errors.append(exc)
        finally:
            close_connection()

    threads = [threading.Thread(target=member, args=(i,), daemon=True) for i in range(RUSH)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    trades = Trade.objects.filter(market_id=market.pk).count()
    drill.acknowledged = len([d for d in done if d > 0])
    drill.in_database = trades
    drill.lost = drill.acknowledged - trades
    drill.notes.append("40 members, PgBouncer pool of 4, transaction mode")
    assert errors == [], errors[:3]
    assert trades == RUSH == drill.acknowledged
    assert done.count(-1) == 1, "one lease holder among 40 claimers"
    assert lease_get("bouncer-drill").epoch == 1
    assert ledger_audit().ok


def test_a_lost_commit_acknowledgement_through_pgbouncer_is_resolved_by_its_key(
    through_bouncer, drill
):
    guild, member = 444_444_444_444_444_952, ALICE + 53
    market = open_market(guild, "bouncer:ack:market")
    through_bouncer.drop_next_commit_ack()
    trade = drill.timed(
        lambda: trading.bet_place(
            market_id=market.pk, user_id=member, outcome=1, amount=100, idempotency_key="b:ack"
        )
    )
    assert through_bouncer.commit_acks_dropped == 1
    drill.acknowledged = 1
    drill.in_database = Trade.objects.filter(idempotency_key="b:ack").count()
    assert Trade.objects.get(idempotency_key="b:ack").pk == trade.pk
    assert balance(guild, member) == STARTING - 100  # charged once
    assert ledger_audit().ok
