"""Database helpers shared by every service: integrity-error classification and the retry of
whole use cases on transient errors (serialization failure, deadlock, lost connection, a
connection that could not be established)."""

from __future__ import annotations

import functools
import logging
import random
import re
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.db import IntegrityError, OperationalError, close_old_connections, connection

from core import signals

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# PostgreSQL SQLSTATEs worth a retry of the whole use case.
TRANSIENT_SQLSTATES = {"40001", "40P01", "08000", "08003", "08006", "57P01", "57P03"}

CONNECT_FAILURES = (
    "connection failed:",  # psycopg 3: every failure to establish a connection
    "connection refused",
    "connection timeout expired",  # connect_timeout
    "could not connect",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is not yet accepting connections",
    "the database system is in recovery mode",
)
"""What psycopg says when a connection could not be established: a server restarting or not
there yet. Most of these carry no SQLSTATE (the server never answered, or answered before a
session existed), so they are recognised by their text."""


def integrity_constraint(exc: IntegrityError) -> str | None:
    """The name of the constraint an `IntegrityError` violated, on PostgreSQL or SQLite."""
    cause = exc.__cause__
    diag = getattr(cause, "diag", None)
    if diag is not None and getattr(diag, "constraint_name", None):
        return diag.constraint_name
    text = str(exc)
    # SQLite names CHECK constraints but not unique ones: map "UNIQUE constraint failed:
    # table.col" back to our constraint names by their columns.
    match = re.search(r"CHECK constraint failed: (\w+)", text)
    if match:
        return match.group(1)
    match = re.search(r"UNIQUE constraint failed: ([\w., ]+)", text)
    if match:
        return SQLITE_UNIQUE_NAMES.get(match.group(1).strip())
    return None


SQLITE_UNIQUE_NAMES = {
    "points_transfer.idempotency_key": "transfer_idempotency_key",
    "betting_trade.idempotency_key": "trade_idempotency_key",
    "markets_market.idempotency_key": "market_idempotency_key",
    "markets_marketevent.idempotency_key": "marketevent_idempotency_key",
    "markets_marketevent.request_key": "marketevent_request_key",
    "points_account.guild_id": "one_treasury_per_guild",
    "points_account.guild_id, points_account.owner_id": "one_wallet_per_member",
    "points_account.market_id": "one_escrow_per_market",
    "markets_resolutionvote.market_id, markets_resolutionvote.voter_id": "one_vote_per_voter",
}


def connection_failed(exc: BaseException) -> bool:
    """True when `exc` is a failure to *establish* a database connection (refused, timed out,
    the server starting up or shutting down): nothing was sent, so running anything again —
    a read, a write, a commit — is safe."""
    if not isinstance(exc, OperationalError):
        return False
    if getattr(exc.__cause__, "sqlstate", None) == "57P03":  # cannot_connect_now
        return True
    text = str(exc).lower()
    return any(marker in text for marker in CONNECT_FAILURES)


CONNECTION_LOST = (
    "server closed the connection unexpectedly",  # libpq: the server's side went away
    "consuming input failed",  # psycopg 3: reading the answer to a statement failed
    "the connection is lost",
)
"""What psycopg says when an established connection died under a statement: no SQLSTATE (the
server sent none). Running the use case again is safe for the same reason as after 08006: every
use case is idempotent by its key."""


def is_transient(exc: BaseException) -> bool:
    """True for errors after which running the same use case again may succeed: serialization
    failures and deadlocks, a lost connection (with its SQLSTATE, or without one:
    `CONNECTION_LOST`), and a connection that could not be established (a 2–3 s database
    restart, issue 27)."""
    if not isinstance(exc, OperationalError):
        return False
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    if sqlstate in TRANSIENT_SQLSTATES:
        return True
    text = str(exc).lower()
    return (
        connection_failed(exc)
        or any(marker in text for marker in CONNECTION_LOST)
        or "database is locked" in text
    )


def retry_transient(
    attempts: int = 4, base_delay: float = 0.02, max_delay: float = 0.5
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Retry a durable use case on transient database errors with exponential backoff and full
    jitter. Safe because every use case is idempotent by its key: a retry after a commit whose
    acknowledgement was lost returns the first result instead of acting twice."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            for attempt in range(1, attempts + 1):
                try:
                    return func(*args, **kwargs)
                except OperationalError as exc:
                    if attempt == attempts or not is_transient(exc):
                        raise
                    delay = random.uniform(0, min(max_delay, base_delay * 2**attempt))
                    sqlstate = getattr(exc.__cause__, "sqlstate", None)
                    logger.warning(
                        "transient database error in %s, retry %d/%d in %.3fs: %s",
                        func.__qualname__,
                        attempt,
                        attempts - 1,
                        delay,
                        exc,
                        extra={"attempt": attempt},
                    )
                    signals.transient_error_retried.send(
                        sender=func, operation=func.__qualname__, sqlstate=sqlstate
                    )
                    if connection.in_atomic_block is False:
                        close_old_connections()
                    time.sleep(delay)
            raise AssertionError("unreachable")  # pragma: no cover

        return wrapper

    return decorate
