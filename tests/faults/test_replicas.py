"""Read replicas (issue 24 item 2, `core.replicas`) on a real hot standby: the private primary
copied with `pg_basebackup -R` and streaming. Lag-tolerant reads go to the standby; a member's
own reads wait for their writes even with the standby's replay paused (`pg_wal_replay_pause()`);
the standby stopped in the middle of a stream of reads costs no error, the reads move to the
primary, and `/health/ready` and the lag gauge say so."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test.utils import CaptureQueriesContext

from betting import services as trading
from betting.calibration import calibration_of
from betting.selectors import portfolio_get
from core import replicas
from markets.selectors import market_list
from points.audit import ledger_audit
from points.selectors import leaderboard
from tests.conftest import ALICE

from .conftest import DRILL_DATABASE
from .servers import PrivatePostgres
from .test_proxy_drills import open_market

pytestmark = [pytest.mark.faults, pytest.mark.postgres]

GUILD = 444_444_444_444_444_901
BOB = ALICE + 1
BOB_READER = f"member:{BOB}"


@pytest.fixture
def standby(on_private_postgres) -> Iterator[PrivatePostgres]:
    """A hot standby of the private primary, streaming, caught up at the start."""
    server = PrivatePostgres(on_private_postgres.bin_dir)
    try:
        server.standby_from(on_private_postgres).start()
        yield server
    finally:
        server.cleanup()


def _unguarded_connections(monkeypatch) -> None:
    """Django's test case refuses connections to aliases it was not told of when it started
    (`databases`); the replica's alias is added later, once the standby's port is known. Put
    the real `ensure_connection` back for the length of the test."""
    patched = BaseDatabaseWrapper.ensure_connection
    for cell in getattr(patched, "__closure__", None) or ():
        if getattr(cell.cell_contents, "__name__", "") == "ensure_connection":
            monkeypatch.setattr(BaseDatabaseWrapper, "ensure_connection", cell.cell_contents)


@contextlib.contextmanager
def replica_alias(port: int, monkeypatch) -> Iterator[str]:
    """`replica_0` → the standby, as `DATABASE_REPLICA_URLS` would configure it."""
    alias = "replica_0"
    _unguarded_connections(monkeypatch)
    connections.settings[alias] = {
        **connections["default"].settings_dict,
        "PORT": str(port),
        "TEST": {"MIRROR": None},
    }
    replicas._status.clear()
    try:
        yield alias
    finally:
        with contextlib.suppress(Exception):
            connections[alias].close()
        del connections[alias]
        connections.settings.pop(alias, None)
        replicas._status.clear()


def on_standby(server: PrivatePostgres, sql: str) -> object:
    with psycopg.connect(server.dsn(DRILL_DATABASE), autocommit=True) as conn:
        return conn.execute(sql).fetchone()[0]


def pause_replay(server: PrivatePostgres, timeout: float = 30) -> None:
    """Pause the standby's replay and wait until it is paused: `pg_wal_replay_pause()` only
    requests it (PostgreSQL 15 docs, "Recovery Control Functions")."""
    on_standby(server, "SELECT pg_wal_replay_pause()")
    deadline = time.monotonic() + timeout
    while on_standby(server, "SELECT pg_get_wal_replay_pause_state()") != "paused":
        if time.monotonic() >= deadline:
            raise TimeoutError("the standby's replay did not pause")
        time.sleep(0.02)


def wait_caught_up(server: PrivatePostgres, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT pg_current_wal_lsn()::text")
            (primary,) = cursor.fetchone()
        replayed = on_standby(server, "SELECT pg_last_wal_replay_lsn()::text")
        if replicas.lsn_int(replayed) >= replicas.lsn_int(primary):
            return
        time.sleep(0.05)
    raise TimeoutError("the standby did not catch up")


def bet(market_id: int, user_id: int, key: str) -> None:
    with replicas.reading_as(f"member:{user_id}"):
        trading.bet_place(
            market_id=market_id, user_id=user_id, outcome=1, amount=10, idempotency_key=key
        )


def test_reads_go_to_the_standby_and_members_read_their_own_writes_with_replay_paused(
    standby, monkeypatch
):
    market = open_market(GUILD, "replica:market")
    with replica_alias(standby.port, monkeypatch) as alias:
        bet(market.pk, ALICE, "replica:alice:1")
        wait_caught_up(standby)
        with CaptureQueriesContext(connections[alias]) as on_replica:
            with replicas.reading_as(f"member:{BOB}"):
                listed = market_list(guild_id=GUILD)
                board = leaderboard(guild_id=GUILD)
            with replicas.reading_as(f"member:{ALICE}"):
                mine = portfolio_get(guild_id=GUILD, user_id=ALICE)
        assert [m.id for m in listed] == [market.pk] and board
        assert len(mine.positions) == 1
        assert len(on_replica.captured_queries) >= 3, (
            "lag-tolerant reads went to the standby",
            replicas.replica_status(alias),
            [q["sql"][:80] for q in on_replica.captured_queries],
        )
        # /portfolio's calibration line, a guild-wide aggregate: one per /portfolio, the most
        # frequent read of a rush left on the primary before (bench/replica_rush.py --why).
        with CaptureQueriesContext(connections[alias]) as scored, replicas.reading_as(BOB_READER):
            calibration_of(guild_id=GUILD, user_id=ALICE)
        assert scored.captured_queries, "the calibration aggregate read the standby"

        pause_replay(standby)
        try:
            for i in range(2, 6):
                bet(market.pk, ALICE, f"replica:alice:{i}")
                with replicas.reading_as(f"member:{ALICE}"):
                    seen = portfolio_get(guild_id=GUILD, user_id=ALICE)
                assert seen.balance == on_primary_balance(GUILD, ALICE), "her own write, seen"
            # This market's trades only: the private primary lives for the session, and the
            # other drill's trade by Alice is on it when that drill runs first (CI at 0aae753).
            behind = on_standby(
                standby,
                "SELECT count(*) FROM betting_trade"
                f" WHERE user_id = {ALICE} AND market_id = {market.pk}",
            )
            assert behind == 1, "the paused standby really is behind"
            # Behind on what it received, and staying behind: the re-asks (`core.replicas._ask`)
            # must not read a real lag as a passing record's.
            status = replicas.replica_status(alias, fresh=True)
            assert status.up and status.lag > 0.0, status
        finally:
            on_standby(standby, "SELECT pg_wal_replay_resume()")
    assert ledger_audit().ok


def on_primary_balance(guild_id: int, user_id: int) -> int:
    from points.models import Account

    return Account.objects.get(guild_id=guild_id, owner_id=user_id, kind="wallet").balance


def test_the_standby_stopped_mid_run_costs_no_error_and_reads_move_to_the_primary(
    standby, drill, monkeypatch
):
    market = open_market(GUILD + 1, "replica:stop")
    errors: list[BaseException] = []
    reads = {"n": 0}
    stop = threading.Event()

    def reader(user_id: int) -> None:
        try:
            while not stop.is_set():
                try:
                    with replicas.reading_as(f"member:{user_id}"):
                        drill.timed(lambda: market_list(guild_id=GUILD + 1))
                        portfolio_get(guild_id=GUILD + 1, user_id=user_id)
                    reads["n"] += 1
                except Exception as exc:  # counted: the drill wants none
                    errors.append(exc)
        finally:
            connections.close_all()

    with replica_alias(standby.port, monkeypatch) as alias:
        bet(market.pk, ALICE, "replica:stop:1")
        threads = [threading.Thread(target=reader, args=(ALICE + i,)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        before_stop = reads["n"]
        standby.kill()
        time.sleep(2.0)
        stop.set()
        for t in threads:
            t.join(30)
        status, details = replicas.replicas_health()
        gauge = replicas.replica_readings()[0]
    drill.acknowledged = reads["n"]
    drill.notes.append(f"{before_stop} reads before the stop")
    assert errors == [], errors[:3]
    assert before_stop > 0 and reads["n"] > before_stop, "reads went on after the stop"
    assert status == "degraded" and "down" in details[alias]
    assert gauge.value == -1.0
    assert ledger_audit().ok
