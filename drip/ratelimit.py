"""DRIP's rate limit, counted once for every process of the bot (docs/drip.md, "Rate limits").

DRIP limits requests per realm, not per key, in a sliding window (Free plan: 24 a minute for the
Points endpoints; https://docs.drip.re/developer/rate-limits). The bot process (deposits,
balances, membership checks) and the worker (batches) spend the same budget, so the count lives
in Redis: a sorted set per realm holds the send times of the last window, and a request is sent
only when fewer than `DRIP_RATE_LIMIT_PER_MINUTE` were sent in the last `DRIP_RATE_WINDOW_SECONDS`.

DRIP's own answers correct the count: `X-RateLimit-Remaining: 0` blocks the realm until
`X-RateLimit-Reset` (a UNIX timestamp per the docs; a value that cannot be one is read as
seconds from now, and either is capped at `RESET_CAP` so a wrong header can never park the
worker for years), and a 429 blocks it for `Retry-After` seconds.

Without Redis (a test or a single-process demo on the local-memory cache) the same rule is
counted in this process only, under the same namespaced keys as in Redis: a new
`DRIP_RATELIMIT_NAMESPACE` starts every realm's count afresh either way (each test has its own;
before, the local count was per realm only, so one test's used-up window refused the next
test's requests when `make test` ran with no Redis)."""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache

RESET_CAP = 3600.0
"""The longest a header can block a realm (seconds)."""

EPOCH_FLOOR = 1_000_000_000
"""A reset value below this is not a UNIX timestamp (2001) but a number of seconds."""

KEY_TTL_MARGIN = 60.0
"""How long (seconds of real time) a realm's Redis keys outlive what they hold. They expire only
to be tidy: the scores and the stored reset time, compared with the limiter's clock, decide."""

_SCRIPT = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local until_ts = tonumber(redis.call('GET', KEYS[2]) or '0')
if until_ts > now then return tostring(until_ts - now) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
if n < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.ceil((window + tonumber(ARGV[5])) * 1000))
  return '0'
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return tostring(tonumber(oldest[2]) + window - now)
"""


def _limit() -> int:
    return int(getattr(settings, "DRIP_RATE_LIMIT_PER_MINUTE", 24))


def _window() -> float:
    return float(getattr(settings, "DRIP_RATE_WINDOW_SECONDS", 60.0))


def _namespace() -> str:
    return str(getattr(settings, "DRIP_RATELIMIT_NAMESPACE", "") or "drip")


def _redis() -> Any | None:
    client = getattr(cache, "client", None)
    if client is None or not hasattr(client, "get_client"):
        return None
    try:
        return client.get_client(write=True)
    except Exception:  # pragma: no cover - misconfigured cache: count locally
        return None


_local_lock = threading.Lock()
_local_sent: dict[str, deque[float]] = {}
_local_until: dict[str, float] = {}


def reset_parse(raw: str | None, *, now: float) -> float | None:
    """`X-RateLimit-Reset` as the UNIX time the window resets (None when absent or unreadable)."""
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    if value != value or value < 0:  # NaN or negative
        return None
    at = value if value >= EPOCH_FLOOR else now + value
    return min(max(at, now), now + RESET_CAP)


class RealmLimiter:
    """Take a slot in a realm's window before each request; note DRIP's answers.

    `clock` is the UNIX time the window is counted in (`time.time`; DRIP's `X-RateLimit-Reset`
    is on that clock). Tests pass one they move themselves, so a used-up window resets when
    the test says so, however slowly a loaded machine runs."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    def _keys(self, realm_id: str) -> tuple[str, str]:
        base = f"{_namespace()}:drip:rate:{realm_id}"
        return f"{base}:sent", f"{base}:until"

    def acquire(self, realm_id: str, *, now: float | None = None) -> float:
        """0 when a request may be sent now (its slot is taken); else the seconds to wait."""
        now = self.clock() if now is None else now
        redis = _redis()
        if redis is not None:
            try:
                sent, until = self._keys(realm_id)
                answer = redis.eval(
                    _SCRIPT,
                    2,
                    sent,
                    until,
                    now,
                    _window(),
                    _limit(),
                    uuid.uuid4().hex,
                    KEY_TTL_MARGIN,
                )
                return max(0.0, float(answer))
            except Exception:  # Redis down: count in this process rather than stop
                pass
        sent_key, until_key = self._keys(realm_id)
        with _local_lock:
            if _local_until.get(until_key, 0.0) > now:
                return _local_until[until_key] - now
            sent_local = _local_sent.setdefault(sent_key, deque())
            while sent_local and sent_local[0] <= now - _window():
                sent_local.popleft()
            if len(sent_local) < _limit():
                sent_local.append(now)
                return 0.0
            return sent_local[0] + _window() - now

    def blocked_for(self, realm_id: str, *, now: float | None = None) -> float:
        """Seconds until a request to the realm could be sent (without taking a slot)."""
        now = self.clock() if now is None else now
        redis = _redis()
        if redis is not None:
            try:
                sent, until = self._keys(realm_id)
                until_ts = float(redis.get(until) or 0)
                if until_ts > now:
                    return until_ts - now
                redis.zremrangebyscore(sent, "-inf", now - _window())
                if redis.zcard(sent) < _limit():
                    return 0.0
                oldest = redis.zrange(sent, 0, 0, withscores=True)
                return max(0.0, float(oldest[0][1]) + _window() - now) if oldest else 0.0
            except Exception:
                pass
        sent_key, until_key = self._keys(realm_id)
        with _local_lock:
            if _local_until.get(until_key, 0.0) > now:
                return _local_until[until_key] - now
            sent_local = _local_sent.get(sent_key) or deque()
            live = [t for t in sent_local if t > now - _window()]
            return 0.0 if len(live) < _limit() else live[0] + _window() - now

    def block_until(self, realm_id: str, until_ts: float, *, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        until_ts = min(until_ts, now + RESET_CAP)
        if until_ts <= now:
            return
        redis = _redis()
        if redis is not None:
            try:
                _, until = self._keys(realm_id)
                current = float(redis.get(until) or 0)
                if until_ts > current:
                    ttl = until_ts - now + KEY_TTL_MARGIN
                    redis.set(until, repr(until_ts), px=int(ttl * 1000))
                return
            except Exception:
                pass
        _, until_key = self._keys(realm_id)
        with _local_lock:
            _local_until[until_key] = max(_local_until.get(until_key, 0.0), until_ts)

    def observe(self, realm_id: str, headers: Any, status: int, retry_after: float | None) -> None:
        """DRIP's answer: a used-up window blocks the realm until its reset; a 429 for
        `Retry-After`."""
        now = self.clock()
        if status == 429 and retry_after is not None:
            self.block_until(realm_id, now + retry_after, now=now)
        try:
            remaining = int(headers.get("X-RateLimit-Remaining"))
        except (TypeError, ValueError):
            return
        if remaining <= 0:
            at = reset_parse(headers.get("X-RateLimit-Reset"), now=now)
            if at is None:
                at = now + _window()
            self.block_until(realm_id, at, now=now)


def local_reset() -> None:
    """Forget the in-process counts (tests)."""
    with _local_lock:
        _local_sent.clear()
        _local_until.clear()
