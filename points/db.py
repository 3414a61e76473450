"""Database helpers shared by every service: integrity-error classification and the retry of
whole use cases on transient errors (serialization failure, deadlock, lost connection)."""

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
TRANSIENT_SQLSTATES = {"40001", "40P01", "08000", "08003", "08006", "57P01"}


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


def is_transient(exc: BaseException) -> bool:
    """True for errors after which running the same use case again may succeed."""
    if not isinstance(exc, OperationalError):
        return False
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    if sqlstate in TRANSIENT_SQLSTATES:
        return True
    return "database is locked" in str(exc)


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
