"""Read replicas (issue 24 item 2): reads that tolerate a little lag go to a streaming replica.

`DATABASE_REPLICA_URLS` (comma-separated) adds the databases `replica_0`, `replica_1`, …
(`config/settings.py`); unset, everything stays on `default` and this module does nothing.

- **Which reads.** Only those marked lag-tolerant: a selector decorated with `lag_tolerant`
  (autocomplete, market list and show, leaderboards, portfolio and history, dashboard pages,
  CSV exports). Everything else — and any read inside a transaction on the primary, where the
  services lock what they read — stays on the primary (`ReplicaRouter`).
- **Read-your-writes.** After a member's write commits (`points.usecase` calls
  `writes_committed`), the primary's WAL position is kept in the cache under the reader's key
  (`reading_as`, set by the bot per interaction and by the web per staff user). That reader's
  lag-tolerant reads go to a replica only once its `pg_last_wal_replay_lsn()` has reached that
  position; until then, to the primary. A member never sees their trade missing.
- **Health.** A replica is asked at most every `REPLICA_CHECK_SECONDS` for its replay position
  and lag (`now() - pg_last_xact_replay_timestamp()`, 0 when it has replayed all it received);
  one that is down, not in recovery, or lagging past `DATABASE_REPLICA_MAX_LAG` (2 s) is
  skipped. A replica that fails during a read is marked down and the read runs again on the
  primary (a lag-tolerant read is read-only, so running it again is safe): a replica stopped
  mid-run costs no error. `replica_readings` feeds the `pm_db_replica_lag_seconds` gauge and
  `/health/ready`.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from .telemetry import Reading

P = ParamSpec("P")
T = TypeVar("T")

logger = logging.getLogger(__name__)

REPLICA_PREFIX = "replica_"
REPLICA_CHECK_SECONDS = 1.0
DOWN_SECONDS = 5.0
"""A replica that failed is not asked again for this long."""
LSN_KEEP_SECONDS = 600
"""How long a reader's last write position is kept: longer than any sane replica lag."""

_tolerant: contextvars.ContextVar[bool] = contextvars.ContextVar("pm_lag_tolerant", default=False)
_reader: contextvars.ContextVar[str | None] = contextvars.ContextVar("pm_reader", default=None)
_routed: contextvars.ContextVar[str | None] = contextvars.ContextVar("pm_routed", default=None)


def replica_aliases() -> list[str]:
    return sorted(a for a in settings.DATABASES if a.startswith(REPLICA_PREFIX))


def max_lag() -> float:
    return float(getattr(settings, "DATABASE_REPLICA_MAX_LAG", 2.0))


@dataclass
class ReplicaStatus:
    alias: str
    up: bool
    lag: float = 0.0
    replay_lsn: int = 0
    checked: float = 0.0
    detail: str = ""


_lock = threading.Lock()
_status: dict[str, ReplicaStatus] = {}
_turn = itertools.count()


def lsn_int(text: str | None) -> int:
    """A `pg_lsn` ('16/B374D848') as an integer (0 for none)."""
    if not text:
        return 0
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


_STATUS_SQL = (
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, pg_last_wal_receive_lsn()::text,"
    " coalesce(extract(epoch from now() - pg_last_xact_replay_timestamp()), 0)"
)
RECHECKS = 3
"""Times a standby seen behind what it received is asked again (`RECHECK_PAUSE` apart)."""
RECHECK_PAUSE = 0.005


def _ask(alias: str) -> ReplicaStatus:
    """Ask the standby. Caught up (replayed all it received): no lag. Behind: the lag is the
    age of the last transaction it replayed — an overestimate when what is pending is no
    transaction (a checkpoint's or a running-transactions snapshot record, which a primary
    with no commits still writes every 15 s): the standby would read as minutes behind for a
    moment (docs/deploy.md §8, read replicas). So a standby seen behind is
    asked again, a few milliseconds apart; one that has meanwhile replayed everything it had
    received at the first ask is behind by no more than the time between the asks."""
    started = time.monotonic()
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute(_STATUS_SQL)
            recovering, replay, received, since_commit = cursor.fetchone()
            if received is not None and lsn_int(replay) >= lsn_int(received):
                lag = 0.0
            else:
                lag = float(since_commit)
                for _ in range(RECHECKS if recovering and received is not None else 0):
                    time.sleep(RECHECK_PAUSE)
                    cursor.execute(_STATUS_SQL)
                    _, later, _, since_commit = cursor.fetchone()
                    if lsn_int(later) >= lsn_int(received):
                        lag, replay = time.monotonic() - started, later
                        break
                    lag = float(since_commit)
    except DatabaseError as exc:
        with contextlib.suppress(Exception):
            connections[alias].close()
        return ReplicaStatus(alias, False, checked=time.monotonic(), detail=str(exc)[:200])
    if not recovering:
        return ReplicaStatus(alias, False, checked=time.monotonic(), detail="not a standby")
    return ReplicaStatus(alias, True, max(0.0, lag), lsn_int(replay), time.monotonic())


def replica_status(alias: str, *, fresh: bool = False) -> ReplicaStatus:
    """What this process knows of replica `alias`, asked again when older than
    `REPLICA_CHECK_SECONDS` (a replica marked down: `DOWN_SECONDS`), or now with `fresh`."""
    with _lock:
        known = _status.get(alias)
    wait = REPLICA_CHECK_SECONDS if known is None or known.up else DOWN_SECONDS
    if known is None or fresh or time.monotonic() - known.checked >= wait:
        known = _ask(alias)
        with _lock:
            _status[alias] = known
    return known


def replica_down(alias: str, detail: str) -> None:
    with _lock:
        _status[alias] = ReplicaStatus(alias, False, checked=time.monotonic(), detail=detail)


def _usable(status: ReplicaStatus, need: int) -> bool:
    return status.up and status.lag <= max_lag() and status.replay_lsn >= need


def replica_for_read() -> str | None:
    """The replica this lag-tolerant read may use, or None for the primary."""
    aliases = replica_aliases()
    if not aliases or not _tolerant.get() or connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return None
    reader = _reader.get()
    need = lsn_int(cache.get(_lsn_key(reader))) if reader else 0
    start = next(_turn)
    for i in range(len(aliases)):
        alias = aliases[(start + i) % len(aliases)]
        status = replica_status(alias)
        if status.up and status.replay_lsn < need:
            status = replica_status(alias, fresh=True)  # it may have caught up since
        if _usable(status, need):
            return alias
    return None


class ReplicaRouter:
    """Django's router: lag-tolerant reads to a replica (`replica_for_read`), the rest to the
    primary; migrations only on the primary (replicas copy it)."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        alias = replica_for_read()
        if alias is None:
            # Explicitly the primary: without a router's answer Django would follow an object
            # read from a replica (its related objects, a refresh) back to that replica.
            return DEFAULT_DB_ALIAS
        _routed.set(alias)
        return alias

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return not db.startswith(REPLICA_PREFIX)


def _lsn_key(reader: str | None) -> str:
    return f"replica:lsn:{reader}"


@contextlib.contextmanager
def reading_as(reader: str | None) -> Iterator[None]:
    """Reads and writes in this block are `reader`'s (e.g. `member:<guild>:<user>`,
    `staff:<id>`): their writes are remembered, their lag-tolerant reads wait for them."""
    token = _reader.set(reader)
    try:
        yield
    finally:
        _reader.reset(token)


def current_reader() -> str | None:
    return _reader.get()


def current_reader_set(reader: str | None) -> contextvars.Token[str | None]:
    """`reading_as` for code that cannot wrap a block (reset with `current_reader_reset`)."""
    return _reader.set(reader)


def current_reader_reset(token: contextvars.Token[str | None]) -> None:
    _reader.reset(token)


def writes_committed(reader: str | None = None) -> None:
    """After a write committed on the primary: remember its WAL position for the reader (one
    query, only when replicas are configured and a reader is known)."""
    reader = reader or _reader.get()
    if not reader or not replica_aliases():
        return
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT pg_current_wal_lsn()::text")
            (lsn,) = cursor.fetchone()
        cache.set(_lsn_key(reader), lsn, LSN_KEEP_SECONDS)
    except Exception:
        # Not remembered: mark the reader as needing the primary for a while instead.
        logger.warning("could not remember %s's write position", reader, exc_info=True)
        cache.set(_lsn_key(reader), "FFFFFFFF/FFFFFFFF", 30)


def lag_tolerant(func: Callable[P, T]) -> Callable[P, T]:
    """Mark a read-only selector whose result may lag the primary a little (never past
    `DATABASE_REPLICA_MAX_LAG`, never behind the reader's own writes): it may read a replica.
    A replica failing during the call marks it down and the call runs again on the primary."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        if not replica_aliases() or _tolerant.get():
            return func(*args, **kwargs)
        tolerant, routed = _tolerant.set(True), _routed.set(None)
        try:
            return func(*args, **kwargs)
        except DatabaseError as exc:
            alias = _routed.get()
            if alias is None:
                raise
            logger.warning("replica %s failed during a read; reading the primary", alias)
            replica_down(alias, str(exc)[:200])
            with contextlib.suppress(Exception):
                connections[alias].close()
            _tolerant.set(False)
            return func(*args, **kwargs)
        finally:
            _tolerant.reset(tolerant)
            _routed.reset(routed)

    return wrapper


def replica_readings() -> list[Reading]:
    """The lag of every replica (-1: down), for `/metrics`."""
    readings = []
    for alias in replica_aliases():
        status = replica_status(alias)
        readings.append(
            Reading(
                "pm_db_replica_lag_seconds",
                "Seconds the replica's replay is behind the primary (-1: down or not a standby)",
                status.lag if status.up else -1.0,
                {"replica": alias},
            )
        )
    return readings


def replicas_health() -> tuple[str, dict[str, Any]]:
    """For `/health/ready`: degraded when a replica is down or lagging (reads then stay on the
    primary, so the process still serves); healthy with none configured."""
    details: dict[str, Any] = {}
    worst = "healthy"
    for alias in replica_aliases():
        status = replica_status(alias)
        if status.up:
            details[alias] = {"lag_seconds": round(status.lag, 3)}
            if status.lag > max_lag():
                worst = "degraded"
        else:
            details[alias] = {"down": status.detail}
            worst = "degraded"
    return worst, details
