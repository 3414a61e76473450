"""Turning what members type into values the services take. Discord's own option limits are
not trusted (DOMAIN §7): every value is checked here or by the service, and a bad one raises an
`InvalidInput` whose message says what is allowed. Pure: no database, no Discord."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from markets.amm import SHARE_SCALE
from markets.validation import split_outcomes
from points.errors import MAX_AMOUNT, InvalidAmount, InvalidInput

MSG_MARKET_REF = "“{value}” is not a market. Pick one from the list, or type its number like #12."
MSG_OUTCOME_REF = "“{value}” is not an outcome of market #{market_id}. Choose one of: {labels}."
MSG_SHARES = (
    "“{value}” is not a number of shares. Type “all” or a positive number with up to 6 decimals, "
    "like 2.5."
)
MSG_AMOUNT_TEXT = "“{value}” is not an amount. Type a whole number of points from 1 to {maximum:,}."

MSG_KNOWN_AT = (
    "“{value}” is not a moment. Give when the outcome became known as a Discord timestamp "
    "(<t:1700000000> or <t:1700000000:R>), a time of day like 21:00 ({zone}), or “15 minutes "
    "ago” / “2 hours ago”."
)

_DISCORD_TIME = re.compile(r"^\s*<t:(-?\d{1,12})(?::[tTdDfFR])?>\s*$")
_TIME_OF_DAY = re.compile(r"^\s*([01]?\d|2[0-3])[:.h]([0-5]\d)(?::([0-5]\d))?\s*$")
_AGO = re.compile(
    r"^\s*(\d{1,5})\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hrs?|hours?|d|days?)\s+ago\s*$",
    re.IGNORECASE,
)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_MARKET_REF = re.compile(r"^\s*#?\s*(\d{1,18})\b")
_SHARES = re.compile(r"^\s*(\d{1,15})(?:\.(\d{1,6}))?\s*$")
_AMOUNT = re.compile(r"^\s*(\d{1,3}(?:[,_ ]\d{3})+|\d{1,16})\s*$")


def _show(value: object) -> str:
    """A typed value quoted back in a message: one line, at most 40 characters, and encodable
    (a lone surrogate would make the whole reply impossible to send)."""
    text = str(value).strip().replace("\n", " ").encode("utf-8", "replace").decode("utf-8")
    return text[:40] + ("…" if len(text) > 40 else "")


def market_ref(value: object) -> int:
    """A market number from an autocomplete value ("12"), a typed "#12", or a choice label that
    starts with the number ("#12 · Will it rain?")."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _MARKET_REF.match(value) if isinstance(value, str) else None
    if not match or int(match.group(1)) <= 0 or int(match.group(1)) >= 2**63:
        raise InvalidInput(MSG_MARKET_REF.format(value=_show(value)))
    return int(match.group(1))


def outcome_ref(value: object, labels: Sequence[str], *, market_id: int) -> int:
    """The 0-based position of an outcome given as its 1-based number (what autocomplete sends)
    or its label (exact, ignoring case; else the only label that starts with the text)."""
    text = str(value).strip() if value is not None else ""
    if text.isascii() and text.isdecimal() and len(text) <= 3 and 1 <= int(text) <= len(labels):
        return int(text) - 1
    folded = text.casefold()
    exact = [i for i, label in enumerate(labels) if label.casefold() == folded]
    if exact:
        return exact[0]
    prefix = [i for i, label in enumerate(labels) if folded and label.casefold().startswith(folded)]
    if len(prefix) == 1:
        return prefix[0]
    shown = ", ".join(f"{i + 1}. {label}" for i, label in enumerate(labels))
    raise InvalidInput(
        MSG_OUTCOME_REF.format(value=_show(value), market_id=market_id, labels=shown[:1000])
    )


def outcome_position(position: int, labels: Sequence[str], *, market_id: int) -> int:
    """An outcome's position (0-based) that a quote or a button carries, checked against the
    market's outcomes (a button may outlive a change, or be forged)."""
    if 0 <= position < len(labels):
        return position
    shown = ", ".join(f"{i + 1}. {label}" for i, label in enumerate(labels))
    raise InvalidInput(
        MSG_OUTCOME_REF.format(value=position + 1, market_id=market_id, labels=shown[:1000])
    )


def share_count(micro: int | None) -> int | None:
    """Micro-shares that a quote or a button carries (None: all), held to what `shares`
    accepts when typed: positive, at most 15 digits of whole shares."""
    if micro is not None and not 0 < micro < 10**15 * SHARE_SCALE:
        raise InvalidInput(MSG_SHARES.format(value=_show(f"{micro / SHARE_SCALE:g}")))
    return micro


def shares(value: object) -> int | None:
    """Micro-shares from "2.5" (2,500,000), or None for "all" / nothing typed."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in ("", "all", "max"):
        return None
    match = _SHARES.match(text.replace(",", ""))
    if not match:
        raise InvalidInput(MSG_SHARES.format(value=_show(value)))
    whole, frac = match.group(1), (match.group(2) or "").ljust(6, "0")
    micro = int(whole) * SHARE_SCALE + int(frac or 0)
    if micro <= 0:
        raise InvalidInput(MSG_SHARES.format(value=_show(value)))
    return micro


def amount_text(value: object, *, maximum: int = MAX_AMOUNT) -> int:
    """A whole number of points typed in a modal ("1,500" and "1500" are both fine)."""
    text = str(value or "").strip()
    match = _AMOUNT.match(text)
    if not match:
        raise InvalidAmount(MSG_AMOUNT_TEXT.format(value=_show(value), maximum=maximum))
    amount = int(re.sub(r"[,_ ]", "", match.group(1)))
    if not 1 <= amount <= maximum:
        raise InvalidAmount(MSG_AMOUNT_TEXT.format(value=_show(value), maximum=maximum))
    return amount


def outcomes_text(value: str) -> list[str]:
    """Outcomes typed in one field: one per line (modal), or separated by `|` or commas."""
    return split_outcomes(value or "")


def known_at_text(value: object, *, now: dt.datetime, zone: str = "UTC") -> dt.datetime | None:
    """When the outcome became known (docs/domain.md §6.2), as a member types it: a Discord
    timestamp (`<t:1700000000>`, any style such as `<t:1700000000:R>`), a time of day in the
    server's time zone `zone` (the latest such moment not after `now`), or "15 minutes ago".
    Empty: None. Whether the moment fits the market is the service's check."""
    text = "" if value is None else str(value)
    if not text.strip():
        return None
    refused = InvalidInput(MSG_KNOWN_AT.format(value=_show(value), zone=zone))
    if match := _DISCORD_TIME.match(text):
        try:
            return dt.datetime.fromtimestamp(int(match.group(1)), tz=dt.UTC)
        except (OverflowError, OSError, ValueError):
            raise refused from None
    if match := _TIME_OF_DAY.match(text):
        local = now.astimezone(ZoneInfo(zone))
        hour, minute, second = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
        moment = local.replace(hour=hour, minute=minute, second=second, microsecond=0)
        if moment > local:
            moment -= dt.timedelta(days=1)
        return moment.astimezone(dt.UTC)
    if match := _AGO.match(text):
        seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)[0].lower()]
        return now - dt.timedelta(seconds=seconds)
    raise refused
