"""What DRIP's answers mean: the errors a call to DRIP ends with (`DripError` and its kinds),
read from the status, body and headers of an answer (docs/drip.md, "DRIP's API as documented").
`drip.client` raises them and re-exports them."""

from __future__ import annotations

import logging
from typing import Any

from core.errors import Coded

logger = logging.getLogger("drip.client")  # its log lines are the client's

REFUSAL_STATUSES = frozenset({400, 401, 403, 404, 409, 422, 429})
"""The statuses DRIP's error guide defines as client errors: proof that nothing was applied."""


class DripError(Coded, Exception):
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
        reason: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.request_id = request_id
        self.retry_after = retry_after
        self.details = details or {}
        self.reason = reason


class DripNotMember(DripError, code="not_member"): ...


class DripInsufficient(DripError, code="insufficient"): ...


class DripAuth(DripError, code="auth"): ...


class DripRateLimited(DripError, code="rate_limited"): ...


class DripBadRequest(DripError):
    """400 (validation) or 409 (conflict): DRIP refused the request as a whole."""

    code = "bad_request"


class DripUnavailable(DripError):
    code = "unavailable"
    counts_as_outage = True


class DripCircuitOpen(DripUnavailable):
    code = "circuit_open"
    counts_as_outage = False  # the breaker refused it; DRIP was not asked


class DripInDoubt(DripError):
    """A write DRIP may have applied. `reason`: "no_answer" (timeout, dropped connection),
    "server_error" (5xx or an undocumented status), "unreadable" (an answer we cannot read)."""

    code = "in_doubt"
    applied = None
    counts_as_outage = True


REFUSALS = (DripNotMember, DripInsufficient, DripBadRequest)
"""A write refused for what it asked (not for the key or the rate): isolate and fail it."""


ERROR_BY_STATUS: dict[int, type[DripError]] = {
    404: DripNotMember,
    422: DripInsufficient,
    401: DripAuth,
    403: DripAuth,
    400: DripBadRequest,  # validation
    409: DripBadRequest,  # conflict
}
"""The error each status DRIP refuses a request with (nothing applied), but 429."""


def retry_after_of(headers: Any, body: Any = None) -> float | None:
    raw = headers.get("Retry-After")
    if raw is None and isinstance(body, dict):
        raw = body.get("retryAfter")
    if raw is None:
        return None
    try:
        return min(3600.0, max(0.0, float(raw)))
    except (TypeError, ValueError):
        return None


MSG_UNREADABLE = "DRIP answered but its answer could not be read."


def unreadable(*, writes: bool, status: int | None = None) -> DripError:
    if writes:
        return DripInDoubt(MSG_UNREADABLE, status=status, reason="unreadable")
    return DripUnavailable(MSG_UNREADABLE, status=status, reason="unreadable")


def error_for(status: int, data: Any, request_id: str, headers: Any, *, writes: bool) -> DripError:
    body = data if isinstance(data, dict) else {}
    request_id = str(body.get("requestId") or request_id or "")
    text = str(body.get("message") or body.get("error") or f"HTTP {status}")[:200]
    details = body.get("details") if isinstance(body.get("details"), dict) else {}
    logger.info("DRIP answered %s (request id %s): %s", status, request_id or "-", text)
    refused = ERROR_BY_STATUS.get(status)
    if refused is not None:
        return refused(text, status=status, request_id=request_id, details=details)
    if status == 429:
        return DripRateLimited(
            text,
            status=status,
            request_id=request_id,
            details=details,
            retry_after=retry_after_of(headers, body) or 60.0,
        )
    if writes:  # a 5xx, or a status the docs do not define: it may have been applied
        return DripInDoubt(
            f"DRIP answered HTTP {status} ({text}); the change may or may not have been applied.",
            status=status,
            request_id=request_id,
            details=details,
            reason="server_error",
        )
    return DripUnavailable(
        text,
        status=status,
        request_id=request_id,
        details=details,
        retry_after=retry_after_of(headers, body),
    )
