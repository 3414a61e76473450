"""Health checks for load balancers, orchestrators and humans.

Endpoints (Django views in `ops/views.py`; and the bot process's own server, `ops/server.py`):

    /health/live      the process is up and answering (no dependency is touched)
    /health/ready     database reachable, migrations applied, cache reachable
    /health/database  database only
    /health/cache     cache only
    /health/external  outside services registered in this process (the Discord gateway when
                      the bot runs here; `drip`, the DRIP bridge's breaker and outbox, which
                      the bot's drip cog registers — docs/drip.md)

Each answers `{"status": "healthy"|"degraded"|"unhealthy", "checks": [{"name", "status",
"response_time", "details"}], "timestamp"}` — `response_time` in seconds — with HTTP 200 when
healthy or degraded and 503 when unhealthy.

Every check runs in its own daemon thread and is abandoned at its deadline
(`HEALTH_CHECK_TIMEOUT`, 2 s): a blackholed database or Redis makes the probe fail in 2 s
instead of hanging it (the database's `connect_timeout` and Redis' socket timeouts then end the
abandoned thread). At most `HEALTH_MAX_INFLIGHT` checks may be running at once, so a flood of
probes against a hung dependency cannot pile up threads.

External checks are registered by whatever runs in the process:

    register_external_check("discord", lambda: ("healthy", {"latency_ms": 41, "shards": 1}))

A check returns `(status, details)` — or a bare status, or a bool — and raising means
unhealthy. With nothing registered `/health/external` is healthy with the detail "bot not
running in this process".
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.db import connections
from django.db.migrations.executor import MigrationExecutor

from core import replicas
from ops import metrics
from ops.redaction import scrub_text

logger = logging.getLogger(__name__)

HEALTHY, DEGRADED, UNHEALTHY = "healthy", "degraded", "unhealthy"
_RANK = {HEALTHY: 0, DEGRADED: 1, UNHEALTHY: 2}
STARTED_AT = time.time()

CheckFunction = Callable[[], Any]


@dataclass
class CheckResult:
    name: str
    status: str
    response_time: float
    details: Any = None


# --- Running a function under a deadline ---------------------------------------------------------

_inflight = threading.BoundedSemaphore(64)
_inflight_limit = 64
_inflight_lock = threading.Lock()


def _max_inflight() -> int:
    return int(getattr(settings, "HEALTH_MAX_INFLIGHT", 16))


def _spawn(fn: Callable[[], Any]) -> concurrent.futures.Future | None:
    """Run `fn` in a new daemon thread; `None` when too many earlier runs are still going.
    The thread closes its own database connections when done (each run has a fresh thread,
    so a connection left open would leak)."""
    global _inflight, _inflight_limit
    with _inflight_lock:
        limit = _max_inflight()
        if limit != _inflight_limit:
            _inflight, _inflight_limit = threading.BoundedSemaphore(limit), limit
        semaphore = _inflight
    if not semaphore.acquire(blocking=False):
        return None
    future: concurrent.futures.Future = concurrent.futures.Future()

    def target() -> None:
        try:
            future.set_result(fn())
        except BaseException as exc:
            future.set_exception(exc)
        finally:
            with contextlib.suppress(Exception):
                connections.close_all()
            semaphore.release()

    threading.Thread(target=target, name="health-check", daemon=True).start()
    return future


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return scrub_text(f"{type(exc).__name__}: {text}"[:300]) if text else type(exc).__name__


def run_with_deadline(fn: Callable[[], Any], *, timeout: float) -> tuple[bool, Any]:
    """Run `fn` with a deadline: `(True, result)`, or `(False, reason)` on error or timeout."""
    future = _spawn(fn)
    if future is None:
        return False, "too many earlier checks are still running (dependency hung?)"
    try:
        return True, future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        return False, f"no answer within {timeout:g}s"
    except Exception as exc:
        return False, _error_text(exc)


def check_timeout() -> float:
    return float(getattr(settings, "HEALTH_CHECK_TIMEOUT", 2.0))


def _normalise(name: str, outcome: Any, elapsed: float) -> CheckResult:
    status, details = HEALTHY, None
    if isinstance(outcome, CheckResult):
        return outcome
    if isinstance(outcome, bool):
        status = HEALTHY if outcome else UNHEALTHY
    elif isinstance(outcome, str):
        status = outcome
    elif isinstance(outcome, tuple) and len(outcome) == 2:
        status, details = outcome
    elif outcome is not None:
        details = outcome
    if status not in _RANK:
        status, details = UNHEALTHY, f"check returned an unknown status {status!r}"
    return CheckResult(name, status, round(elapsed, 4), details)


def run_checks(
    checks: Iterable[tuple[str, CheckFunction]], *, timeout: float | None = None
) -> list[CheckResult]:
    """Run `checks` concurrently, each under the same deadline; results in the given order.
    Each result also sets `pm_dependency_up{dependency=<name>}`."""
    timeout = check_timeout() if timeout is None else timeout
    started = time.perf_counter()
    pending = []
    for name, fn in checks:

        def timed(fn: CheckFunction = fn) -> tuple[Any, float]:
            t0 = time.perf_counter()
            return fn(), time.perf_counter() - t0

        pending.append((name, _spawn(timed)))
    results = []
    for name, future in pending:
        if future is None:
            results.append(
                CheckResult(name, UNHEALTHY, 0.0, "too many earlier checks are still running")
            )
            continue
        remaining = max(0.0, started + timeout - time.perf_counter())
        try:
            outcome, elapsed = future.result(timeout=remaining)
            results.append(_normalise(name, outcome, elapsed))
        except concurrent.futures.TimeoutError:
            results.append(
                CheckResult(name, UNHEALTHY, round(timeout, 4), f"no answer within {timeout:g}s")
            )
        except Exception as exc:
            elapsed = time.perf_counter() - started
            results.append(CheckResult(name, UNHEALTHY, round(elapsed, 4), _error_text(exc)))
    _observe(results)
    return results


def _observe(results: list[CheckResult]) -> None:
    for result in results:
        if result.details != NO_BOT:
            metrics.dependency_observed(result.name, result.status != UNHEALTHY)


# --- The checks ----------------------------------------------------------------------------------


def check_database() -> tuple[str, dict[str, Any]]:
    """`SELECT 1` on a new connection of `HEALTH_DATABASE_ALIAS` (closed afterwards)."""

    alias = getattr(settings, "HEALTH_DATABASE_ALIAS", "default")
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return HEALTHY, {"vendor": connection.vendor, "alias": alias}


_migrations_ok_until: dict[str, float] = {}


def check_migrations() -> tuple[str, Any]:
    """Every migration on disk is applied. A pass is remembered for a minute: the plan only
    changes with a deploy, and building it reads every migration file."""

    alias = getattr(settings, "HEALTH_DATABASE_ALIAS", "default")
    if time.monotonic() < _migrations_ok_until.get(alias, 0.0):
        return HEALTHY, "all migrations applied"
    executor = MigrationExecutor(connections[alias])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        names = [f"{migration.app_label}.{migration.name}" for migration, _ in plan]
        return UNHEALTHY, {"unapplied": names[:20], "count": len(names)}
    _migrations_ok_until[alias] = time.monotonic() + 60
    return HEALTHY, "all migrations applied"


def check_cache() -> tuple[str, dict[str, Any]]:
    """Write, read back and delete a random key; on Redis also PING, because django-redis is
    configured to swallow connection errors and would otherwise just miss."""

    alias = getattr(settings, "HEALTH_CACHE_ALIAS", "default")
    cache = caches[alias]
    backend = type(cache).__name__
    if hasattr(cache, "client") and hasattr(cache.client, "get_client"):
        cache.client.get_client(write=True).ping()  # raises when Redis is down
    key, value = f"health:{uuid.uuid4().hex}", uuid.uuid4().hex
    cache.set(key, value, timeout=10)
    read = cache.get(key)
    cache.delete(key)
    if read != value:
        return UNHEALTHY, {"backend": backend, "error": "the cache did not return what was written"}
    return HEALTHY, {"backend": backend}


_external: dict[str, CheckFunction] = {}
_external_lock = threading.Lock()


def register_external_check(name: str, fn: CheckFunction) -> None:
    """Add (or replace) an external check shown by `/health/external` (and by the bot process's
    `/health/ready`). `fn` must be cheap and thread-safe: read state, don't do I/O on an event
    loop that is not yours."""
    with _external_lock:
        _external[name] = fn


def unregister_external_check(name: str) -> None:
    with _external_lock:
        _external.pop(name, None)


def external_checks() -> list[tuple[str, CheckFunction]]:
    with _external_lock:
        return sorted(_external.items())


NO_BOT = "bot not running in this process"


def _no_bot() -> tuple[str, str]:
    return HEALTHY, NO_BOT


def live_checks() -> list[tuple[str, CheckFunction]]:
    return []


def ready_checks(*, include_external: bool = False) -> list[tuple[str, CheckFunction]]:
    checks = [
        ("database", check_database),
        ("migrations", check_migrations),
        ("cache", check_cache),
    ]
    if replicas.replica_aliases():  # lag or a replica down: degraded (reads use the primary)
        checks.append(("replicas", replicas.replicas_health))
    if include_external:
        checks += external_checks()
    return checks


def _external_or_placeholder() -> list[tuple[str, CheckFunction]]:
    return external_checks() or [("discord", _no_bot)]


PROBES: dict[str, Callable[[], list[tuple[str, CheckFunction]]]] = {
    "live": live_checks,
    "ready": ready_checks,
    "database": lambda: [("database", check_database)],
    "cache": lambda: [("cache", check_cache)],
    "external": _external_or_placeholder,
}


# --- Reports ------------------------------------------------------------------------------------


def overall(results: list[CheckResult]) -> str:
    worst = max((_RANK[r.status] for r in results), default=0)
    return next(status for status, rank in _RANK.items() if rank == worst)


def report(results: list[CheckResult]) -> tuple[dict[str, Any], int]:
    """The JSON body and the HTTP status for `results`."""
    status = overall(results)
    body = {
        "status": status,
        "checks": [asdict(r) for r in results],
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
    }
    return body, 503 if status == UNHEALTHY else 200


def probe(name: str, *, include_external_in_ready: bool = False) -> tuple[dict[str, Any], int]:
    """Run the checks of one endpoint (blocking for at most the deadline)."""
    if name == "live":
        results = [
            CheckResult(
                "process",
                HEALTHY,
                0.0,
                {"pid": os.getpid(), "uptime_seconds": round(time.time() - STARTED_AT, 1)},
            )
        ]
        return report(results)
    if name == "ready":
        checks = ready_checks(include_external=include_external_in_ready)
    else:
        checks = PROBES[name]()
    return report(run_checks(checks))


# --- Worker pools -------------------------------------------------------------------------------


class PoolWatch:
    """Calls in flight on a pool of worker threads (the bot's database threads), for a health
    check that reports a stalled pool (issue 12): a database that stops answering ties up the
    threads one by one while the process itself looks alive.

    `started()` returns a token that `finished(token)` removes. The check is degraded when a
    call has been running longer than `stall_after` seconds, unhealthy when every worker is
    held by such a call (nothing new can run)."""

    def __init__(self, workers: int, stall_after: float) -> None:
        self.workers = max(1, workers)
        self.stall_after = stall_after
        self._lock = threading.Lock()
        self._calls: dict[int, float] = {}
        self._next = 0

    def started(self) -> int:
        with self._lock:
            self._next += 1
            self._calls[self._next] = time.monotonic()
            return self._next

    def finished(self, token: int) -> None:
        with self._lock:
            self._calls.pop(token, None)

    def check(self) -> tuple[str, dict[str, Any]]:
        now = time.monotonic()
        with self._lock:
            ages = sorted((now - t for t in self._calls.values()), reverse=True)
        stalled = sum(1 for a in ages if a > self.stall_after)
        details = {
            "workers": self.workers,
            "in_flight": len(ages),
            "stalled": stalled,
            "oldest_seconds": round(ages[0], 1) if ages else 0.0,
        }
        if stalled >= self.workers:
            return UNHEALTHY, details
        if stalled:
            return DEGRADED, details
        return HEALTHY, details
