"""Turning what members type into values the services take. Discord's own option limits are
not trusted (DOMAIN §7): every value is checked here or by the service, and a bad one raises an
`InvalidInput` whose message says what is allowed. Pure: no database, no Discord."""

from __future__ import annotations

import re
from collections.abc import Sequence

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
