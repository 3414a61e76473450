"""The DRIP API v1 client: the one module that knows DRIP's paths, shapes and status codes.

Endpoints (base `DRIP_API_BASE`, `Authorization: Bearer <key>`):

- `PATCH /realms/{realm}/credentials/balance?type=discord-id&value=<user>` — one member's balance
  changes by `amount` (negative debits); answers `{credentialId, identifier, balance, …}`.
- `PATCH /realms/{realm}/credentials/transaction` — up to `BATCH_MAX` updates in one request;
  answers `{success, results: [{type, value, balance, …}], errors: [{type, value, error}]}`.
- `GET /realms/{realm}/members/search?type=discord-id&values=<ids>` — up to `SEARCH_MAX` members'
  balances: `{data: [{id, balances: [{balance, currencyId, …}]}], meta}`.

Every failure becomes one `DripError` subclass, and what matters for the caller is whether DRIP
*may have applied* a change (DRIP has no idempotency keys):

- `DripNotMember` 404, `DripInsufficient` 422, `DripAuth` 401/403, `DripRateLimited` 429 (with
  `retry_after`), `DripUnavailable` 5xx (but 504) or no connection: DRIP did **not** apply it;
- `DripInDoubt`: a timeout or a dropped connection after the request went out, a 504 (a gateway
  gave up waiting for DRIP), or an unreadable success: it **may** have applied. Never re-sent.

5xx, timeouts and connection errors count towards the circuit breaker (the `circuitbreaker`
library, which supports coroutines): after `DRIP_BREAKER_FAILURES` consecutive ones it opens,
calls fail at once with `DripCircuitOpen` for `DRIP_BREAKER_RECOVERY_SECONDS`, then one call is
let through (half-open) whose success closes it. An answer from DRIP — even a 4xx — closes it.

The API key is passed per call, used only in the `Authorization` header, and registered with the
log/Sentry scrubber; no exception or log line built here contains it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from circuitbreaker import STATE_OPEN, CircuitBreaker
from circuitbreaker import CircuitBreakerError as _BreakerOpen
from django.conf import settings

from core.secrets import secret_register

from . import metrics

logger = logging.getLogger(__name__)

DEFAULT_BASE = "https://api.drip.re/api/v1"
PATH_CREDENTIAL_BALANCE = "/realms/{realm_id}/credentials/balance"
PATH_CREDENTIAL_BATCH = "/realms/{realm_id}/credentials/transaction"
PATH_MEMBER_SEARCH = "/realms/{realm_id}/members/search"
IDENTITY_TYPE = "discord-id"
BATCH_MAX = 100
SEARCH_MAX = 50
BREAKER_NAME = "drip"


class DripError(Exception):
    """A DRIP call that did not succeed. `applied` says whether DRIP may have applied it:
    False (certainly not) or None (unknown: in doubt)."""

    code = "drip_error"
    applied: bool | None = False
    counts_as_outage = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str = "",
        retry_after: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.request_id = request_id
        self.retry_after = retry_after
        self.details = details or {}


class DripNotMember(DripError):
    code = "not_member"


class DripInsufficient(DripError):
    code = "insufficient"


class DripAuth(DripError):
    code = "auth"


class DripRateLimited(DripError):
    code = "rate_limited"


class DripBadRequest(DripError):
    code = "bad_request"


class DripUnavailable(DripError):
    code = "unavailable"
    counts_as_outage = True


class DripCircuitOpen(DripUnavailable):
    code = "circuit_open"
    counts_as_outage = False  # the breaker refused it; DRIP was not asked


class DripInDoubt(DripError):
    code = "in_doubt"
    applied = None
    counts_as_outage = True


def _is_outage(exc_type: type, exc: BaseException) -> bool:
    return isinstance(exc, DripError) and exc.counts_as_outage


def breaker_new(
    *, failure_threshold: int | None = None, recovery_timeout: float | None = None
) -> CircuitBreaker:
    """A circuit breaker for DRIP calls (one per process; tests make their own)."""
    return CircuitBreaker(
        failure_threshold=failure_threshold or settings.DRIP_BREAKER_FAILURES,
        recovery_timeout=recovery_timeout or settings.DRIP_BREAKER_RECOVERY_SECONDS,
        expected_exception=_is_outage,
        name=BREAKER_NAME,
    )


_process_breaker: CircuitBreaker | None = None


def process_breaker() -> CircuitBreaker:
    global _process_breaker
    if _process_breaker is None:
        _process_breaker = breaker_new()
    return _process_breaker


def breaker_state(breaker: CircuitBreaker) -> dict[str, Any]:
    state = breaker.state
    return {
        "state": state,
        "failures": breaker.failure_count,
        "retry_in_seconds": max(0, breaker.open_remaining) if state == STATE_OPEN else 0,
    }


@dataclass(frozen=True)
class Credential:
    user_id: int
    balance: int
    credential_id: str = ""


@dataclass
class BatchOutcome:
    """Per member (`value`): the new balance, or DRIP's error text."""

    balances: dict[int, int] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    request_id: str = ""


def _retry_after(headers: Any) -> float | None:
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


class DripClient:
    """Talks to one DRIP API base. `breaker` defaults to the process's breaker."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        timeout: float | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.base_url = (base_url or settings.DRIP_API_BASE or DEFAULT_BASE).rstrip("/")
        self.timeout = float(timeout or settings.DRIP_TIMEOUT_SECONDS)
        self.breaker = breaker or process_breaker()
        self._session: aiohttp.ClientSession | None = None
        self._guarded = self.breaker.decorate(self._request_once)
        self.rate: dict[str, tuple[int, float]] = {}
        """realm → (requests remaining, `time.monotonic()` when the window resets), from
        DRIP's `X-RateLimit-Remaining` / `X-RateLimit-Reset` headers."""

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def _client_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # A fresh connection per request: a kept-alive connection that DRIP closed would
            # make a PATCH fail after it may have been sent, turning a harmless reconnect into
            # an in-doubt transfer. DRIP's rate limits make the handshake cost irrelevant.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True),
                timeout=aiohttp.ClientTimeout(
                    total=self.timeout, sock_connect=min(self.timeout / 2, 5.0)
                ),
            )
        return self._session

    # --- Endpoints -------------------------------------------------------------------------

    async def balance_update(
        self, *, realm_id: str, api_key: str, user_id: int, amount: int, realm_point_id: str = ""
    ) -> Credential:
        """Change one member's balance by `amount` (negative debits)."""
        body: dict[str, Any] = {"amount": amount}
        if realm_point_id:
            body["realmPointId"] = realm_point_id
        data, _ = await self._call(
            "PATCH",
            PATH_CREDENTIAL_BALANCE.format(realm_id=realm_id),
            api_key=api_key,
            realm_id=realm_id,
            params={"type": IDENTITY_TYPE, "value": str(user_id)},
            json=body,
            writes=True,
        )
        try:
            return Credential(user_id, int(data["balance"]), str(data.get("credentialId", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise DripInDoubt("DRIP answered a balance change with an unreadable body.") from exc

    async def batch_update(
        self,
        *,
        realm_id: str,
        api_key: str,
        updates: list[tuple[int, int]],
        realm_point_id: str = "",
    ) -> BatchOutcome:
        """Apply `(user_id, amount)` updates in one request (at most `BATCH_MAX`, one per user)."""
        if not 1 <= len(updates) <= BATCH_MAX:
            raise ValueError(f"a DRIP batch holds 1–{BATCH_MAX} updates, not {len(updates)}")
        rows = []
        for user_id, amount in updates:
            row: dict[str, Any] = {"type": IDENTITY_TYPE, "value": str(user_id), "amount": amount}
            if realm_point_id:
                row["realmPointId"] = realm_point_id
            rows.append(row)
        data, request_id = await self._call(
            "PATCH",
            PATH_CREDENTIAL_BATCH.format(realm_id=realm_id),
            api_key=api_key,
            realm_id=realm_id,
            json={"updates": rows},
            writes=True,
        )
        outcome = BatchOutcome(request_id=request_id)
        try:
            for r in data.get("results") or []:
                outcome.balances[int(r["value"])] = int(r["balance"])
            for e in data.get("errors") or []:
                outcome.errors[int(e["value"])] = str(e.get("error") or "rejected")[:200]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DripInDoubt("DRIP answered a batch with an unreadable body.") from exc
        return outcome

    async def balances(
        self, *, realm_id: str, api_key: str, user_ids: list[int], realm_point_id: str = ""
    ) -> dict[int, int | None]:
        """Members' balances in the realm's currency (`realm_point_id`, or the first one);
        None for a user DRIP does not know. At most `SEARCH_MAX` per request; more are split."""
        out: dict[int, int | None] = {u: None for u in user_ids}
        for start in range(0, len(user_ids), SEARCH_MAX):
            chunk = user_ids[start : start + SEARCH_MAX]
            try:
                data, _ = await self._call(
                    "GET",
                    PATH_MEMBER_SEARCH.format(realm_id=realm_id),
                    api_key=api_key,
                    realm_id=realm_id,
                    params={"type": IDENTITY_TYPE, "values": ",".join(str(u) for u in chunk)},
                    writes=False,
                )
            except DripNotMember:
                continue
            for member in data.get("data") or []:
                found = _member_balance(member, realm_point_id)
                try:
                    out[int(member.get("discordId") or member.get("id"))] = found
                except (TypeError, ValueError):
                    continue
        return out

    # --- Plumbing --------------------------------------------------------------------------

    async def _call(
        self, method: str, path: str, *, api_key: str, realm_id: str, writes: bool, **kwargs: Any
    ) -> tuple[dict, str]:
        secret_register(api_key)
        try:
            result = await self._guarded(method, path, api_key, realm_id, writes, **kwargs)
        except _BreakerOpen as exc:
            metrics.breaker_refused()
            raise DripCircuitOpen(
                "DRIP is unavailable (too many failures in a row); not attempted.",
                retry_after=float(max(1, self.breaker.open_remaining)),
            ) from exc
        finally:
            metrics.breaker_observed(self.breaker.state)
        return result

    async def _request_once(
        self, method: str, path: str, api_key: str, realm_id: str, writes: bool, **kwargs: Any
    ) -> tuple[dict, str]:
        session = self._client_session()
        headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        endpoint = path.split("/")[-1]
        try:
            async with session.request(
                method, self.base_url + path, headers=headers, **kwargs
            ) as response:
                request_id = response.headers.get("X-Request-Id", "")
                self._note_rate(realm_id, response.headers)
                try:
                    data = await response.json(content_type=None)
                except (ValueError, aiohttp.ContentTypeError):
                    data = None
                status = response.status
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            metrics.request_observed(endpoint, "connect_error")
            raise DripUnavailable(f"DRIP could not be reached ({type(exc).__name__}).") from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            metrics.request_observed(endpoint, "timeout" if isinstance(exc, TimeoutError) else "io")
            cls = DripInDoubt if writes else DripUnavailable
            raise cls(
                f"DRIP did not answer in time ({type(exc).__name__}); the change may or may not "
                "have been applied."
            ) from exc
        metrics.request_observed(endpoint, str(status))
        if 200 <= status < 300:
            if not isinstance(data, dict):
                cls = DripInDoubt if writes else DripUnavailable
                raise cls("DRIP answered with an unreadable body.", status=status)
            return data, request_id
        raise _error_for(status, data, request_id, response.headers, writes=writes)

    def _note_rate(self, realm_id: str, headers: Any) -> None:
        try:
            remaining = int(headers["X-RateLimit-Remaining"])
            reset = float(headers.get("X-RateLimit-Reset", 0))
        except (KeyError, TypeError, ValueError):
            return
        self.rate[realm_id] = (remaining, time.monotonic() + reset)

    def rate_exhausted(self, realm_id: str) -> float:
        """Seconds until DRIP's window for `realm_id` resets when its last answer said no
        request is left; 0 otherwise."""
        remaining, reset_at = self.rate.get(realm_id, (1, 0.0))
        return max(0.0, reset_at - time.monotonic()) if remaining <= 0 else 0.0


def _member_balance(member: dict, realm_point_id: str) -> int | None:
    balances = member.get("balances") or []
    for b in balances:
        if not realm_point_id or str(b.get("currencyId") or b.get("realmPointId")) == str(
            realm_point_id
        ):
            try:
                return int(b.get("balance"))
            except (TypeError, ValueError):
                return None
    return 0 if balances == [] else None


def _error_for(status: int, data: Any, request_id: str, headers: Any, *, writes: bool) -> DripError:
    body = data if isinstance(data, dict) else {}
    request_id = str(body.get("requestId") or request_id or "")
    text = str(body.get("message") or body.get("error") or f"HTTP {status}")[:200]
    details = body.get("details") if isinstance(body.get("details"), dict) else {}
    if request_id:
        logger.info("DRIP answered %s (request id %s): %s", status, request_id, text)
    common = {"status": status, "request_id": request_id, "details": details}
    if status == 404:
        return DripNotMember(text, **common)
    if status == 422:
        return DripInsufficient(text, **common)
    if status in (401, 403):
        return DripAuth(text, **common)
    if status == 429:
        return DripRateLimited(text, retry_after=_retry_after(headers) or 60.0, **common)
    if status == 504 and writes:
        return DripInDoubt(f"DRIP's gateway timed out ({text}).", **common)
    if status >= 500:
        return DripUnavailable(text, retry_after=_retry_after(headers), **common)
    return DripBadRequest(text, **common)
