"""Fixtures for the fault drills (tests/faults/README.md): a private PostgreSQL and Redis per
session, a fault proxy in front of PostgreSQL per test, and `django_database(...)`, which points
Django's default connection — in every thread — at another server for the length of a block."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, connections
from django.db.backends.signals import connection_created

from tests.conftest import IN_CI

from .proxy import FaultProxy
from .servers import PrivatePostgres, PrivateRedis, postgres_bin

DRILL_DATABASE = "pm_drill"


def _unavailable(message: str) -> None:
    if IN_CI:
        pytest.fail(message + " (CI must run the fault drills, not skip them)")
    pytest.skip(message)


@contextlib.contextmanager
def django_database(*, host: str, port: int, name: str = DRILL_DATABASE) -> Iterator[None]:
    """Point the default connection at `host:port/name` (user `postgres`, trust) inside the block.

    Every thread's connection is built from the same settings dict, so threads opened inside the
    block connect there too; each must close its connection before the block ends (the drills'
    workers do, in `finally`)."""
    conn = connections["default"]
    if conn.vendor != "postgresql":
        _unavailable("fault drills need DATABASE_URL=postgres://…")
    conn.close()
    saved = dict(conn.settings_dict)
    conn.settings_dict.update(HOST=host, PORT=str(port), NAME=name, USER="postgres", PASSWORD="")
    opened: list[Any] = []

    def track(sender: object, connection: Any, **kwargs: object) -> None:
        opened.append(connection)

    connection_created.connect(track)
    try:
        yield
    finally:
        connection_created.disconnect(track)
        conn.close()
        # A thread that outlives the block (asgiref's executor behind database_sync_to_async,
        # a server's worker) would keep its connection to `host:port` into the next tests,
        # which then read another database ("Market #N does not exist") or fail when the
        # private server stops ("terminating connection due to administrator command"). Django
        # closes a connection only from its own thread: close the driver's connection here and
        # let that thread's next query connect again, with the restored settings.
        for wrapper in opened:
            raw = wrapper.connection
            if raw is not None and not wrapper.in_atomic_block:
                with contextlib.suppress(Exception):
                    raw.close()
                wrapper.connection = None
        conn.settings_dict.clear()
        conn.settings_dict.update(saved)


@pytest.fixture(scope="session")
def private_postgres(django_db_setup, django_db_blocker) -> Iterator[PrivatePostgres]:
    """A PostgreSQL started for this session, with the project's schema in `pm_drill`."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        _unavailable("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        _unavailable("fault drills need DATABASE_URL=postgres://…")
    server = PrivatePostgres(bin_dir)
    try:
        server.init().start()
        import psycopg

        with psycopg.connect(server.dsn(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {DRILL_DATABASE}")
        with django_db_blocker.unblock(), django_database(host="127.0.0.1", port=server.port):
            call_command("migrate", verbosity=0, interactive=False)
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def private_redis() -> Iterator[PrivateRedis]:
    import shutil

    if shutil.which("redis-server") is None:
        _unavailable("redis-server is not installed")
    server = PrivateRedis().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def pg_proxy(private_postgres) -> Iterator[FaultProxy]:
    """A fault proxy in front of the private PostgreSQL (passing traffic until told otherwise)."""
    with FaultProxy("127.0.0.1", private_postgres.port) as proxy:
        yield proxy


@pytest.fixture
def through_proxy(pg_proxy, transactional_db) -> Iterator[FaultProxy]:
    """Django's default connection goes through `pg_proxy` to the private PostgreSQL."""
    with django_database(host="127.0.0.1", port=pg_proxy.port):
        yield pg_proxy


@pytest.fixture
def on_private_postgres(private_postgres, transactional_db) -> Iterator[PrivatePostgres]:
    """Django's default connection goes straight to the private PostgreSQL."""
    with django_database(host="127.0.0.1", port=private_postgres.port):
        yield private_postgres


# --- Measuring a drill ---------------------------------------------------------------------------


@dataclass
class Drill:
    """What one drill measured: the row of the drill table."""

    name: str
    acknowledged: int = 0
    in_database: int = 0
    lost: int = 0
    doubled: int = 0
    longest_wait: float = 0.0
    notes: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def timed(self, call: Callable[[], object]) -> object:
        """Run `call`, keeping the longest wall time any call took (raising or not)."""
        started = time.monotonic()
        try:
            return call()
        finally:
            elapsed = time.monotonic() - started
            with self._lock:
                self.longest_wait = max(self.longest_wait, elapsed)

    def line(self) -> str:
        return (
            f"[drill] {self.name}: acknowledged {self.acknowledged}, in database "
            f"{self.in_database}, lost {self.lost}, doubled {self.doubled}, longest wait "
            f"{self.longest_wait:.2f}s" + "".join(f"; {note}" for note in self.notes)
        )


@pytest.fixture
def drill(request) -> Iterator[Drill]:
    """A drill's measurements, printed (run with -s) and attached to the report."""
    measured = Drill(name=request.node.name)
    yield measured
    print("\n" + measured.line())
    request.node.user_properties.append(("drill", measured.line()))


def close_connection() -> None:
    """Close this thread's connection, ignoring a connection that is already broken."""
    with contextlib.suppress(Exception):
        connection.close()
