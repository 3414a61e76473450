"""What members and moderators are told about DRIP (STYLE §7): message constants tests reuse,
and the mapping of `drip.client` errors to `DomainError`s an interface shows as they are."""

from __future__ import annotations

import time

from points.errors import DomainError

from .client import (
    DripAuth,
    DripCircuitOpen,
    DripError,
    DripInDoubt,
    DripInsufficient,
    DripNotMember,
    DripRateLimited,
    DripUnavailable,
)

MSG_NOT_LINKED = (
    "This server has not linked a DRIP realm; a member with Manage Server can link one with "
    "`/settings drip`."
)
MSG_DISABLED = "DRIP transfers are paused in this server by its moderators."
MSG_NOT_MEMBER = (
    "DRIP doesn't know you in this server's realm. Join the realm first (open the realm's DRIP "
    "page and connect your Discord account), then try again. Nothing was moved."
)
MSG_INSUFFICIENT = (
    "You don't have enough DRIP points: DRIP says you have {balance} and need {needed}."
)
MSG_INSUFFICIENT_UNKNOWN = "You don't have enough DRIP points for that. Nothing was moved."
MSG_NOT_MEMBER_WITHDRAW = (
    "DRIP doesn't know you in this server's realm, so it has nowhere to send points. Join the "
    "realm first (open the realm's DRIP page and connect your Discord account), then try "
    "again. Nothing was moved."
)
MSG_AUTH = (
    "DRIP refused this server's link (its API key or realm); nothing was moved. This server's "
    "moderators can see it in the back office and link the realm again."
)
MSG_AUTH_MODERATORS = "DRIP refused the API key or realm (HTTP {status}): {text}"
MSG_RATE_LIMITED = "DRIP is rate-limiting this server; nothing was moved. Try again {when}."
MSG_UNAVAILABLE = "DRIP is unavailable right now; nothing was moved. Try again {when}."
MSG_REFUSED = "DRIP refused the request ({reason}); nothing was moved."
MSG_REFUSED_PLAIN = "DRIP refused the request; nothing was moved."
MSG_IN_DOUBT_DEPOSIT = (
    "{why}, so it is not known whether it took the points. Nothing was added here yet: a "
    "moderator will check DRIP (transfer #{id}) and credit your wallet if it did."
)
IN_DOUBT_WHY = {
    "no_answer": "DRIP did not answer in time",
    "server_error": "DRIP answered with an error after the request reached it",
    "unreadable": "DRIP answered but its answer could not be read — we are checking",
}
MSG_UNREADABLE = (
    "DRIP answered but its answer could not be read — we are checking; nothing was moved."
)
REASON_WORDS = {
    "not found": "DRIP does not know you in this server's realm (join the realm first)",
    "not_member": "DRIP does not know you in this server's realm (join the realm first)",
    "insufficient balance": "DRIP refused the amount",
    "invalid identifier": "DRIP refused the request",
    "realm point not found": "this server's DRIP currency is not set up right (moderators know)",
}


def reason_words(text: str) -> str:
    """A DRIP error text (its `error`/`message`, English for developers) as member words."""
    key = (text or "").strip().lower().rstrip(".")
    if key in {w.lower() for w in REASON_WORDS.values()}:
        return text
    return REASON_WORDS.get(key, "DRIP refused it")


MSG_APPLIED_NOT_RECORDED = (
    "DRIP took the points, but recording the deposit here failed. Nothing is lost: a moderator "
    "will confirm transfer #{id} and your wallet will be credited."
)
MSG_LIMIT = (
    "That passes this server's DRIP {direction} limit of {limit} points per member per day: "
    "{left} left today (the day resets {reset})."
)
MSG_NOT_IN_DOUBT = "Transfer #{id} is {status}, not in doubt; only in-doubt transfers are resolved."


class DripNotLinked(DomainError, code="drip_not_linked"): ...


class DripRefused(DomainError):
    """DRIP said no (or could not be asked); nothing moved. `retry_after` when known."""

    code = "drip_refused"

    def __init__(self, message: str, *, code: str | None = None, retry_after: float | None = None):
        super().__init__(message, code=code)
        self.retry_after = retry_after


class DripLimitReached(DomainError, code="drip_limit"): ...


def when_text(seconds: float | None) -> str:
    """`<t:…:R>` for `seconds` from now (Discord renders "in 30 seconds")."""
    return f"<t:{int(time.time() + max(1.0, seconds or 30.0)) + 1}:R>"


def refusal_for(exc: DripError) -> DripRefused:
    """The member-facing refusal for a DRIP error that certainly moved nothing."""
    if isinstance(exc, DripNotMember):
        return DripRefused(MSG_NOT_MEMBER, code="drip_not_member")
    if isinstance(exc, DripInsufficient):
        balance, needed = exc.details.get("balance"), exc.details.get("required")
        if isinstance(balance, int) and isinstance(needed, int):
            text = MSG_INSUFFICIENT.format(balance=f"{balance:,}", needed=f"{needed:,}")
        else:
            text = MSG_INSUFFICIENT_UNKNOWN
        return DripRefused(text, code="drip_insufficient")
    if isinstance(exc, DripAuth):
        return DripRefused(MSG_AUTH, code="drip_auth")
    if isinstance(exc, DripRateLimited):
        return DripRefused(
            MSG_RATE_LIMITED.format(when=when_text(exc.retry_after)),
            code="drip_rate_limited",
            retry_after=exc.retry_after,
        )
    if isinstance(exc, DripUnavailable) and exc.reason == "unreadable":
        return DripRefused(MSG_UNREADABLE, code="drip_unreadable")
    if isinstance(exc, DripCircuitOpen | DripUnavailable):
        return DripRefused(
            MSG_UNAVAILABLE.format(when=when_text(exc.retry_after)),
            code="drip_unavailable",
            retry_after=exc.retry_after,
        )
    if isinstance(exc, DripInDoubt):  # pragma: no cover - callers handle in-doubt first
        raise AssertionError("an in-doubt error is not a refusal")
    return DripRefused(MSG_REFUSED_PLAIN, code="drip_refused")


def in_doubt_text(exc: DripInDoubt, transfer_id: int) -> str:
    why = IN_DOUBT_WHY.get(exc.reason, IN_DOUBT_WHY["no_answer"])
    return MSG_IN_DOUBT_DEPOSIT.format(why=why, id=transfer_id)
