"""Failing fast when an outside service is down.

Transient *database* errors are retried by `points.db.retry_transient` (whole use case, same
idempotency key, exponential backoff with full jitter); this module is the other half: a
circuit breaker for outbound HTTP (the DRIP API, webhooks).

After `failure_threshold` consecutive failures the circuit *opens*: calls fail at once with
`CircuitOpen` (and a user-facing message) instead of each waiting for a timeout from a service
that is down. After `reset_timeout` seconds one trial call is let through (*half-open*); its
success closes the circuit, its failure opens it again for another `reset_timeout`.

    drip = circuit_breaker("drip", failure_threshold=5, reset_timeout=30)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        data = await drip.call_async(fetch_balance, session, user_id)

What counts as a failure is `failure_exceptions` (connection errors, timeouts, and by default
any exception) plus, through `is_failure(result)`, results such as an HTTP 5xx. A 4xx is the
caller's fault, not the service's, and does not trip the breaker.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from points.errors import DomainError

T = TypeVar("T")

CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"
_STATE_VALUE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}

MSG_CIRCUIT_OPEN = (
    "{service} is not answering right now, so this was not attempted. Try again in a minute or so."
)


class CircuitOpen(DomainError):
    """Refused without trying: the service failed repeatedly and is cooling down."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(
            MSG_CIRCUIT_OPEN.format(service=name),
            code="circuit_open",
            details={"service": name, "retry_after": round(retry_after, 1)},
        )
        self.name = name
        self.retry_after = retry_after


class CircuitBreaker:
    """A thread-safe circuit breaker, usable from sync and async code alike."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        failure_exceptions: tuple[type[BaseException], ...] = (Exception,),
        is_failure: Callable[[Any], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or reset_timeout <= 0:
            raise ValueError("failure_threshold must be ≥ 1 and reset_timeout > 0")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.failure_exceptions = failure_exceptions
        self.is_failure = is_failure
        self.clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_running = False
        self._publish()

    @property
    def state(self) -> str:
        with self._lock:
            return self._current_state()

    def _current_state(self) -> str:
        if self._state == OPEN and self.clock() - self._opened_at >= self.reset_timeout:
            return HALF_OPEN
        return self._state

    def _publish(self) -> None:
        from config import metrics

        with contextlib.suppress(Exception):
            metrics.CIRCUIT_STATE.labels(self.name).set(_STATE_VALUE[self._current_state()])

    def _before(self) -> None:
        """Admit a call or raise `CircuitOpen`. In half-open state only one trial at a time."""
        with self._lock:
            state = self._current_state()
            if state == CLOSED:
                return
            if state == HALF_OPEN and not self._trial_running:
                self._state, self._trial_running = HALF_OPEN, True
                self._publish()
                return
            retry_after = max(0.0, self._opened_at + self.reset_timeout - self.clock())
        from config import metrics

        with contextlib.suppress(Exception):
            metrics.CIRCUIT_REFUSALS.labels(self.name).inc()
        raise CircuitOpen(self.name, retry_after)

    def record_success(self) -> None:
        with self._lock:
            self._state, self._failures, self._trial_running = CLOSED, 0, False
            self._publish()

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._state == HALF_OPEN or self._failures >= self.failure_threshold:
                self._state, self._opened_at = OPEN, self.clock()
            self._trial_running = False
            self._publish()

    def _settle(self, result: Any) -> Any:
        if self.is_failure is not None and self.is_failure(result):
            self.record_failure()
        else:
            self.record_success()
        return result

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        self._before()
        try:
            result = fn(*args, **kwargs)
        except self.failure_exceptions:
            self.record_failure()
            raise
        except BaseException:
            self._release_trial()
            raise
        return self._settle(result)

    async def call_async(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        self._before()
        try:
            result = await fn(*args, **kwargs)
        except asyncio.CancelledError:
            self._release_trial()
            raise
        except self.failure_exceptions:
            self.record_failure()
            raise
        except BaseException:
            self._release_trial()
            raise
        return self._settle(result)

    def _release_trial(self) -> None:
        """A call that neither succeeded nor failed (cancelled, or an exception that is not a
        failure): let the next caller try."""
        with self._lock:
            self._trial_running = False


def http_status_is_failure(response: Any) -> bool:
    """`is_failure` for HTTP responses (aiohttp `status`, requests/urllib `status_code`): 5xx
    and 429 mean the service is in trouble; other statuses are the caller's business."""
    status = getattr(response, "status", None) or getattr(response, "status_code", 0)
    return status >= 500 or status == 429


_breakers: dict[str, CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def circuit_breaker(name: str, **options: Any) -> CircuitBreaker:
    """The process-wide breaker for `name` (created with `options` on first use), so every
    caller of one service shares its state."""
    with _breakers_lock:
        breaker = _breakers.get(name)
        if breaker is None:
            breaker = _breakers[name] = CircuitBreaker(name, **options)
        return breaker
