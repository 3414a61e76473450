"""The DRIP API v1 client: the one module that knows DRIP's paths and shapes (what its status
codes mean is `drip.api_errors`, re-exported here). Every behaviour relied on here is cited in
docs/drip.md ("DRIP's API as documented").

Endpoints (base `DRIP_API_BASE`, `Authorization: Bearer <key>`):

- `PATCH /realms/{realmId}/credentials/balance?type=discord-id&value=<user>` body
  `{amount, realmPointId?, initiatorId}` — one credential's balance changes by `amount`
  (negative debits); answers `{credentialId, identifier, balance, realmPointId, linked}`.
  `linked: false` is a ghost credential: the Discord id is not connected to a realm member.
- `PATCH /realms/{realmId}/credentials/transaction` body `{updates: [{type, value, amount,
  realmPointId?}], initiatorId}`; answers `{success, results: [{type, value, credentialId,
  balance, realmPointId}], errors: [{type, value, error}]}`.
- `GET /realms/{realmId}/members/search?type=discord-id&values=<ids>&page=&limit=` — realm
  members with `credentials[].oauthAccountId` (the Discord id; `id` is DRIP's own id) and
  `balances[]` per currency; `meta` pages the answer.

What a failure means for a **write** (DRIP has no idempotency keys; docs/drip.md "In doubt"):
a write is applied until proven otherwise. Only an answer that proves DRIP refused it — 400,
404, 409, 422 (the docs' client errors), 401/403 (not authenticated) or 429 (not admitted) — is
a refusal. A 5xx, a timeout, a dropped connection, an unreadable body or any status the docs do
not define is `DripInDoubt`: never re-sent, never reversed automatically. A connection that
could not be opened carried nothing, so it is `DripUnavailable`. Reads change nothing: they
may fail as `DripUnavailable` and are retried.

Every request first takes a slot in the realm's shared window (`drip.ratelimit`, Redis): when
none is free the call fails at once with `DripRateLimited` without reaching DRIP.

5xx, timeouts and connection errors count towards the circuit breaker (the `circuitbreaker`
library, which supports coroutines): after `DRIP_BREAKER_FAILURES` consecutive ones it opens,
calls fail at once with `DripCircuitOpen` for `DRIP_BREAKER_RECOVERY_SECONDS`, then one call is
let through (half-open) whose success closes it. An answer from DRIP — even a 4xx — closes it.

The API key is passed per call, used only in the `Authorization` header, and registered with the
log/Sentry scrubber; no exception or log line built here contains it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from circuitbreaker import STATE_OPEN, CircuitBreaker
from circuitbreaker import CircuitBreakerError as _BreakerOpen
from django.conf import settings

from core.secrets import secret_register

from . import metrics
from .api_errors import (
    REFUSAL_STATUSES,
    REFUSALS,
    DripAuth,
    DripBadRequest,
    DripCircuitOpen,
    DripError,
    DripInDoubt,
    DripInsufficient,
    DripNotMember,
    DripRateLimited,
    DripUnavailable,
    error_for,
    retry_after_of,
    unreadable,
)
from .ratelimit import RealmLimiter

logger = logging.getLogger(__name__)

__all__ = [  # the error kinds live in `drip.api_errors`; callers import them from here
    "REFUSALS",
    "REFUSAL_STATUSES",
    "BatchOutcome",
    "Credential",
    "DripAuth",
    "DripBadRequest",
    "DripCircuitOpen",
    "DripClient",
    "DripError",
    "DripInDoubt",
    "DripInsufficient",
    "DripNotMember",
    "DripRateLimited",
    "DripUnavailable",
    "Member",
    "breaker_new",
    "breaker_state",
    "initiator_for_batch",
    "initiator_for_transfer",
    "process_breaker",
]

DEFAULT_BASE = "https://api.drip.re/api/v1"
PATH_CREDENTIAL_BALANCE = "/realms/{realm_id}/credentials/balance"
PATH_CREDENTIAL_BATCH = "/realms/{realm_id}/credentials/transaction"
PATH_MEMBER_SEARCH = "/realms/{realm_id}/members/search"
IDENTITY_TYPE = "discord-id"
BATCH_MAX = 100
SEARCH_MAX = 50
SEARCH_PAGES_MAX = 20
READ_ATTEMPTS = 3
READ_RETRY_DELAY = 0.25
BREAKER_NAME = "drip"


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
    """DRIP's answer to a single balance change. `linked` False: a ghost credential."""

    user_id: int
    balance: int
    credential_id: str = ""
    linked: bool = True


@dataclass(frozen=True)
class Member:
    """A realm member found by their Discord id (`credentials[].oauthAccountId`)."""

    user_id: int
    drip_id: str
    balance: int | None


@dataclass
class BatchOutcome:
    """Per member (`value`): the new balance, or DRIP's error text."""

    balances: dict[int, int] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    request_id: str = ""


def initiator_for_transfer(transfer_id: int) -> str:
    """`initiatorId` of a write for one transfer (shown to moderators; DRIP's activity log)."""
    return f"pm-drip-{transfer_id}"


def initiator_for_batch(batch_id: str) -> str:
    return f"pm-drip-batch-{batch_id}"


class DripClient:
    """Talks to one DRIP API base. `breaker` defaults to the process's breaker."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        timeout: float | None = None,
        breaker: CircuitBreaker | None = None,
        limiter: RealmLimiter | None = None,
    ) -> None:
        self.base_url = (base_url or settings.DRIP_API_BASE or DEFAULT_BASE).rstrip("/")
        self.timeout = float(timeout or settings.DRIP_TIMEOUT_SECONDS)
        self.breaker = breaker or process_breaker()
        self.limiter = limiter or RealmLimiter()
        self._session: aiohttp.ClientSession | None = None
        self._guarded = self.breaker.decorate(self._request_once)

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
        self,
        *,
        realm_id: str,
        api_key: str,
        user_id: int,
        amount: int,
        initiator_id: str,
        realm_point_id: str = "",
    ) -> Credential:
        """Change one member's balance by `amount` (negative debits)."""
        body: dict[str, Any] = {"amount": amount}
        if realm_point_id:
            body["realmPointId"] = realm_point_id
        body["initiatorId"] = initiator_id
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
            linked = data.get("linked", True)
            if not isinstance(linked, bool):
                raise TypeError("linked")
            return Credential(
                user_id, int(data["balance"]), str(data.get("credentialId", "")), linked
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise unreadable(writes=True) from exc

    async def batch_update(
        self,
        *,
        realm_id: str,
        api_key: str,
        updates: list[tuple[int, int]],
        initiator_id: str,
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
            json={"updates": rows, "initiatorId": initiator_id},
            writes=True,
        )
        outcome = BatchOutcome(request_id=request_id)
        try:
            for r in data.get("results") or []:
                outcome.balances[int(r["value"])] = int(r["balance"])
            for e in data.get("errors") or []:
                outcome.errors[int(e["value"])] = str(e.get("error") or "refused")[:200]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise unreadable(writes=True) from exc
        return outcome

    async def members(
        self, *, realm_id: str, api_key: str, user_ids: list[int], realm_point_id: str = ""
    ) -> dict[int, Member]:
        """The realm members among `user_ids`, by Discord id; a user who is not a (linked)
        member is absent. At most `SEARCH_MAX` ids per request; every page of each answer is
        read. A read: retried on an outage."""
        wanted = {str(u) for u in user_ids}
        found: dict[int, Member] = {}
        for start in range(0, len(user_ids), SEARCH_MAX):
            chunk = user_ids[start : start + SEARCH_MAX]
            page = 1
            while page <= SEARCH_PAGES_MAX:
                try:
                    data, _ = await self._read(
                        "GET",
                        PATH_MEMBER_SEARCH.format(realm_id=realm_id),
                        api_key=api_key,
                        realm_id=realm_id,
                        params={
                            "type": IDENTITY_TYPE,
                            "values": ",".join(str(u) for u in chunk),
                            "page": str(page),
                            "limit": str(SEARCH_MAX),
                        },
                    )
                except DripNotMember:
                    break
                try:
                    for record in data.get("data") or []:
                        member = _member_from(record, wanted, realm_point_id)
                        if member is not None:
                            found[member.user_id] = member
                    meta = data.get("meta") or {}
                    total_pages = int(meta.get("totalPages") or 1)
                except (TypeError, ValueError, AttributeError) as exc:
                    raise unreadable(writes=False) from exc
                if page >= total_pages:
                    break
                page += 1
        return found

    async def balances(
        self, *, realm_id: str, api_key: str, user_ids: list[int], realm_point_id: str = ""
    ) -> dict[int, int | None]:
        """Members' balances in the realm's currency; None for a user who is not a member."""
        found = await self.members(
            realm_id=realm_id, api_key=api_key, user_ids=user_ids, realm_point_id=realm_point_id
        )
        return {u: (found[u].balance if u in found else None) for u in user_ids}

    # --- Plumbing --------------------------------------------------------------------------

    async def _read(self, method: str, path: str, **kwargs: Any) -> tuple[dict, str]:
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                return await self._call(method, path, writes=False, **kwargs)
            except DripCircuitOpen:
                raise
            except DripUnavailable:
                if attempt == READ_ATTEMPTS:
                    raise
                await asyncio.sleep(READ_RETRY_DELAY * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _call(
        self, method: str, path: str, *, api_key: str, realm_id: str, writes: bool, **kwargs: Any
    ) -> tuple[dict, str]:
        secret_register(api_key)
        wait = await asyncio.to_thread(self.limiter.acquire, realm_id)
        if wait > 0:
            metrics.request_observed(path.split("/")[-1], "local_rate_limit")
            raise DripRateLimited(
                "DRIP's rate limit for this realm is used up; not sent.",
                retry_after=wait,
                reason="local",
            )
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
                status = response.status
                raw = await response.read()
                response_headers = response.headers
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            metrics.request_observed(endpoint, "connect_error")
            raise DripUnavailable(f"DRIP could not be reached ({type(exc).__name__}).") from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            metrics.request_observed(endpoint, "timeout" if isinstance(exc, TimeoutError) else "io")
            if writes:
                raise DripInDoubt(
                    f"DRIP did not answer ({type(exc).__name__}); the change may or may not "
                    "have been applied.",
                    reason="no_answer",
                ) from exc
            raise DripUnavailable(f"DRIP did not answer ({type(exc).__name__}).") from exc
        try:
            data = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            data = None
        metrics.request_observed(endpoint, str(status))
        await asyncio.to_thread(
            self.limiter.observe,
            realm_id,
            response_headers,
            status,
            retry_after_of(response_headers, data),
        )
        if 200 <= status < 300:
            if not isinstance(data, dict):
                raise unreadable(writes=writes, status=status)
            return data, request_id
        raise error_for(status, data, request_id, response_headers, writes=writes)

    def rate_exhausted(self, realm_id: str) -> float:
        """Seconds until a request to `realm_id` may be sent (0: now)."""
        return self.limiter.blocked_for(realm_id)


def _member_from(record: Any, wanted: set[str], realm_point_id: str) -> Member | None:
    """A search result's Discord id is a credential's `oauthAccountId` (DRIP's `id` is its own
    account id): the one among the values searched, preferring a `discord` credential."""
    if not isinstance(record, dict):
        return None
    creds = [c for c in record.get("credentials") or [] if isinstance(c, dict)]
    creds.sort(key=lambda c: str(c.get("oauthProvider") or "").lower() != "discord")
    for cred in creds:
        account = str(cred.get("oauthAccountId") or "")
        if account in wanted and account.isdigit():
            return Member(
                int(account), str(record.get("id") or ""), _member_balance(record, realm_point_id)
            )
    return None


def _member_balance(member: dict, realm_point_id: str) -> int | None:
    """The balance in `realm_point_id` (`balances[].currencyId`); with no currency set, the
    first listed. A member with no balance listed in that currency holds 0."""
    balances = [b for b in member.get("balances") or [] if isinstance(b, dict)]
    for b in balances:
        if not realm_point_id or str(b.get("currencyId")) == str(realm_point_id):
            try:
                return int(b["balance"])
            except (KeyError, TypeError, ValueError):
                return None
    return 0
